"""``python -m benchmarks [--suite inference|train|all] [--quick] [--backends numpy,torch] [--device cuda] [--threads N]``.

Thread settings must be in the environment before NumPy/torch/JAX load, so arguments are
parsed first and the measuring modules are imported afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("--suite", default="all", choices=["inference", "train", "all"],
                   help="inference steps and closed forms (latest.*), training steps (train.*), or both")
    p.add_argument("--quick", action="store_true", help="seed shape only, fewer repeats (< 1 minute)")
    p.add_argument("--backends", default=None, help="comma-separated subset, e.g. numpy,torch (default: all installed)")
    p.add_argument("--device", default=None, help="cpu (default) or cuda/gpu where available")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--repeats", type=int, default=None, help="timed samples per entry (default 7, quick 5)")
    p.add_argument("--matmul-n", type=int, default=2048, help="size of the roofline matmul (default 2048)")
    p.add_argument("--threads", type=int, default=None,
                   help="intra-op threads for every framework (default: leave each at its default)")
    p.add_argument("--out", type=Path, default=RESULTS, help=f"results folder (default {RESULTS})")
    args = p.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        p.error("--repeats must be >= 1")
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be >= 1")
    return args


def _set_threads(n: int) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    if n == 1:  # XLA:CPU has no thread-count flag; this keeps Eigen's ops single-threaded
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.threads is not None:
        _set_threads(args.threads)
    import pccore

    from .run import run

    installed = pccore.registry.available_backends()
    backends = installed if args.backends is None else [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in backends if b not in installed]
    if unknown:
        print(f"unknown or unavailable backend(s) {unknown}; installed: {installed}", file=sys.stderr)
        return 2
    if args.threads is not None and "torch" in backends:
        import torch

        torch.set_num_threads(args.threads)
    repeats = args.repeats or (5 if args.quick else 7)
    command = ("python -m benchmarks " + " ".join(sys.argv[1:] if argv is None else argv)).strip()
    if args.suite in ("inference", "all"):
        print(run(backends, args.device, args.dtype, args.quick, repeats, args.matmul_n, args.out, command))
    if args.suite in ("train", "all"):
        from .train_suite import run_train

        print(run_train(backends, args.device, args.quick, repeats, args.out, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
