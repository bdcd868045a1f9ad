"""Stop tests of the inference loop, as hashable specs that compiled loops cache on.

- ``Converged(tol)``: the last gradient's RMS (the vector field's norm) is <= tol;
- ``Target(states, rtol)``: the user's reference states are within relative distance
  ``rtol`` (given to ``run(target=...)``; bound to its arrays inside the run: ``Near``);
- ``AnyOf``: either fires.
Observers stop an observed run through ``InferenceStep.request_stop()`` (no spec needed:
the fused path is untouched).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import attrs

from ..errors import InputError


@attrs.frozen
class Converged:
    """Loop stop test: the last gradient's RMS is <= tol (or is NaN)."""

    tol: float

    def __call__(self, carry: tuple, args: tuple) -> Any:
        return ~(carry[2] > self.tol)


@attrs.frozen(eq=False)
class Target:
    """Reference hidden states (a list of (batch, *shape_k) arrays, k = 1..L-1) and the
    relative distance ``rtol`` at which inference may stop:
    ||s - s_ref|| / ||s_ref|| <= rtol over all hidden layers of the batch."""

    states: Sequence[Any]
    rtol: float = 1e-6

    def __attrs_post_init__(self) -> None:
        if isinstance(self.states, (str, bytes)) or not isinstance(self.states, Sequence):
            raise InputError(f"Target states must be a list of arrays (one per hidden layer), got "
                             f"{type(self.states).__name__}")
        r = self.rtol
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not (r >= 0 and math.isfinite(r)):
            raise InputError(f"Target rtol must be a finite number >= 0, got {r!r}")


@attrs.frozen
class Near:
    """The spec of a Target stop (hashable: ``rtol`` only); ``bind`` gives the test."""

    step: Any
    rtol: float

    def bind(self, reference: tuple) -> "_NearBound":
        return _NearBound(self, tuple(reference))


@attrs.frozen(eq=False)
class _NearBound:
    """Stop test with its reference arrays: the relative distance of the states is <= rtol."""

    spec: Near
    reference: tuple

    def distance(self, args: tuple, values: tuple) -> Any:
        """||s - s_ref|| / ||s_ref|| over every hidden layer (a 0-d array)."""
        step = self.spec.step
        xp = step.kernels.xp
        states = values if step.method == "SO" else step.grads_energy(args, values, backward=False)[2]
        return relative_distance(xp, states, self.reference)

    def __call__(self, carry: tuple, args: tuple) -> Any:
        return ~(self.distance(args, tuple(carry[0])) > self.spec.rtol)


@attrs.frozen(eq=False)
class AnyOf:
    """Stops when either test does."""

    first: Any
    second: Any

    def __call__(self, carry: tuple, args: tuple) -> Any:
        return self.first(carry, args) | self.second(carry, args)


def relative_distance(xp: Any, states: Sequence[Any], reference: Sequence[Any]) -> Any:
    """||s - s_ref|| / ||s_ref|| over all layers (a 0-d array)."""
    num = sum(xp.sum((s - r) ** 2) for s, r in zip(states, reference))
    return xp.sqrt(num / sum(xp.sum(r * r) for r in reference))


def combined(tests: list) -> Any:
    """One stop test from several (None when there are none)."""
    tests = [t for t in tests if t is not None]
    if not tests:
        return None
    out = tests[0]
    for t in tests[1:]:
        out = AnyOf(out, t)
    return out
