"""Benchmark shapes (seed 000's deep linear net) and their nominal FLOP counts."""

from __future__ import annotations

import attrs
import numpy as np

D_IN, D_OUT, DEPTH = 784, 10, 20  # seed 000: 784-128x19-10, 20 layers, 19 hidden
EO_LR, SO_LR = 0.05, 0.1  # stable at every benchmark width (orthogonal init)


@attrs.frozen
class Shape:
    """A net ``784 - width x (depth-1) - 10`` and a batch size."""

    batch: int
    width: int
    depth: int = DEPTH

    @property
    def widths(self) -> list[int]:
        return [D_IN] + [self.width] * (self.depth - 1) + [D_OUT]

    @property
    def layer_sizes(self) -> list[int]:
        """d_in * d_out of each layer."""
        w = self.widths
        return [a * b for a, b in zip(w[:-1], w[1:])]

    @property
    def step_flops(self) -> float:
        """Nominal FLOPs of one EO/SO step: forward 2B*sum(d_in d_out) + backward
        2B*sum over layers > 0 (the first layer's input is clamped)."""
        sizes = self.layer_sizes
        return 2.0 * self.batch * (sum(sizes) + sum(sizes[1:]))

    @property
    def executed_flops(self) -> float:
        """FLOPs pccore's step executes: the nominal count less the first layer's forward
        matmul, which is hoisted out of the loop (x is clamped)."""
        return self.step_flops - 2.0 * self.batch * self.layer_sizes[0]

    @property
    def label(self) -> str:
        return f"B{self.batch} w{self.width}"


def steps_for(shape: Shape, quick: bool) -> int:
    """Inference steps per timed sample: about 3 GFLOP of work (1.5 in quick mode), 5..60."""
    budget = 1.5e9 if quick else 3e9
    return int(min(60, max(5, round(budget / shape.step_flops))))


def problem(shape: Shape, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A batch on the host: x ~ N(0, 0.5^2) (batch, 784) float64 and one-hot y (batch, 10)."""
    rng = np.random.default_rng(seed)
    x = 0.5 * rng.standard_normal((shape.batch, D_IN))
    y = np.eye(D_OUT)[rng.integers(0, D_OUT, shape.batch)]
    return x, y
