"""Expected time of a reproduction on this machine, from a few timed training steps of each
(variant, method) on random inputs of the dataset's shape: no data files needed."""

from __future__ import annotations

import time
from collections.abc import Sequence

from .. import host
from ..checks import check_positive_int
from ..data import Dataset
from ..runtime import Runtime
from ..train import Trainer
from .spec import Method, Spec


def _random_batch(spec: Spec) -> Dataset:
    """One batch of standard-normal inputs (batch, *input_shape) and one-hot targets."""
    rng = host.generator(0)
    n = spec.batch_size
    x = rng.standard_normal((n, *spec.input_shape)).astype("float32")
    y = host._np().eye(spec.classes, dtype="float32")[rng.integers(0, spec.classes, n)]
    return Dataset("random", x, y, x, y)


def estimate(spec: Spec, rt: Runtime, methods: Sequence[Method], seconds: float = 2.0,
             max_steps: int = 100) -> list[dict]:
    """Per (variant, method): seconds per step and per epoch of ``spec.train_samples``
    samples, from the mean of the steps timed after two warm-up steps that compile: at
    least 2, then more until ``seconds`` have passed or ``max_steps`` were timed."""
    max_steps = check_positive_int("max_steps", max_steps, minimum=2)
    data = _random_batch(spec)
    per_epoch = spec.train_samples // spec.batch_size
    rows = []
    for variant in spec.variants:
        for method in methods:
            trainer = Trainer(method.name, inference=method.inference(), optimizer=spec.optimizer,
                              lr=method.weight_lr or spec.lr, batch_size=spec.batch_size, loss=spec.loss,
                              runtime=rt, progress=False)
            session = trainer.session(variant.build(rt, data, 0))
            x, y = rt.asarray(data.x_train), rt.asarray(data.y_train)
            for _ in range(2):  # compile (JAX traces again once the optimizer state is set), and wait
                rt.to_numpy(session.step(x, y)[0])
            start, steps = time.perf_counter(), 0
            while steps < 2 or (steps < max_steps and time.perf_counter() - start < seconds):
                rt.to_numpy(session.step(x, y)[0])  # a step is done when its loss reaches the host
                steps += 1
            step_s = (time.perf_counter() - start) / steps
            rows.append({"variant": variant.name, "method": method.name, "step_s": step_s, "timed_steps": steps,
                         "epoch_s": step_s * per_epoch, "steps_per_epoch": per_epoch})
    return rows
