"""pccore benchmarks: inference steps, closed-form equilibria and tracker overhead on every
installed backend, against naive baselines and the machine's matmul rate (``python -m benchmarks``)."""
