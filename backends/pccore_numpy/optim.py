"""SGD, momentum and Adam written on the Array API (used by the NumPy backend).

Updates write into the parameter arrays in place (no per-step copies); pass arrays you own.
"""

from __future__ import annotations

from typing import Any

import attrs

from pccore.checks import check_positive_float
from pccore.errors import InputError, UnknownNameError

DEFAULTS = {
    "sgd": {"lr": 0.1},
    "momentum": {"lr": 0.1, "momentum": 0.9},
    "adam": {"lr": 1e-3, "b1": 0.9, "b2": 0.999, "eps": 1e-8},
}


def resolve_hyper(name: str, hyper: dict) -> dict:
    """Defaults of optimizer ``name`` updated with ``hyper``; unknown names/keys raise."""
    if name not in DEFAULTS:
        raise UnknownNameError(f"unknown optimizer {name!r}; expected one of {', '.join(DEFAULTS)}")
    unknown = set(hyper) - set(DEFAULTS[name])
    if unknown:
        raise InputError(
            f"optimizer {name!r} got unknown hyper-parameters {sorted(unknown)}; "
            f"it takes {sorted(DEFAULTS[name])}"
        )
    merged = {**DEFAULTS[name], **hyper}
    check_positive_float("lr", merged["lr"])
    return merged


@attrs.frozen
class ArrayAPIOptimizer:
    """Functional optimizer: ``init(params) -> state``, ``update(params, grads, state)``."""

    name: str
    hyper: tuple = attrs.field(converter=lambda h: tuple(sorted(dict(h).items())))

    @property
    def h(self) -> dict:
        return dict(self.hyper)

    def init(self, params: tuple) -> Any:
        if self.name == "sgd":
            return ()
        zeros = tuple(p * 0 for p in params)
        if self.name == "momentum":
            return zeros
        return (0, zeros, tuple(p * 0 for p in params))

    def update(self, params: tuple, grads: tuple, state: Any) -> tuple[tuple, Any]:
        h = self.h
        if self.name == "sgd":
            for p, g in zip(params, grads):
                p -= h["lr"] * g
            return params, state
        if self.name == "momentum":
            for p, g, v in zip(params, grads, state):
                v *= h["momentum"]
                v += g
                p -= h["lr"] * v
            return params, state
        return self._adam(params, grads, state, h)

    @staticmethod
    def _adam(params, grads, state, h):
        t, m, v = state
        t += 1
        c1, c2 = 1 - h["b1"] ** t, 1 - h["b2"] ** t
        for p, g, mi, vi in zip(params, grads, m, v):
            mi *= h["b1"]
            mi += (1 - h["b1"]) * g
            vi *= h["b2"]
            vi += (1 - h["b2"]) * (g * g)
            p -= (h["lr"] / c1) * mi / ((vi / c2) ** 0.5 + h["eps"])
        return params, (t, m, v)


def make_optimizer(name: str, hyper: dict) -> ArrayAPIOptimizer:
    """Array API optimizer ``name`` with validated hyper-parameters."""
    return ArrayAPIOptimizer(name, resolve_hyper(name, hyper))
