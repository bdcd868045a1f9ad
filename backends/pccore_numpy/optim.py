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

    def state_to_host(self, state: Any) -> dict:
        """Optimizer state as host NumPy arrays keyed "0", "1", ... (leaves in order),
        for checkpoints."""
        import numpy as np

        return {str(i): np.array(leaf, copy=True) for i, leaf in enumerate(_leaves(state))}

    def state_from_host(self, params: tuple, host: dict) -> Any:
        """Inverse of :meth:`state_to_host`: a state for ``params`` holding ``host``'s values."""
        template = self.init(params)
        count = len(_leaves(template))
        if sorted(host, key=int) != [str(i) for i in range(count)]:
            raise InputError(f"optimizer state for {self.name!r} needs {count} arrays, got keys {sorted(host)}")
        values = iter(host[str(i)] for i in range(count))
        return _fill(template, values)

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


def _leaves(tree: Any) -> list:
    if isinstance(tree, tuple):
        return [leaf for item in tree for leaf in _leaves(item)]
    return [tree]


def _fill(tree: Any, values: Any) -> Any:
    """``tree`` with its leaves replaced, in order, by ``values`` (ints stay ints)."""
    if isinstance(tree, tuple):
        return tuple(_fill(item, values) for item in tree)
    value = next(values)
    if isinstance(tree, int):
        return int(value)
    import array_api_compat

    xp = array_api_compat.array_namespace(tree)
    return xp.asarray(xp.asarray(value), dtype=tree.dtype, copy=True)


def make_optimizer(name: str, hyper: dict) -> ArrayAPIOptimizer:
    """Array API optimizer ``name`` with validated hyper-parameters."""
    return ArrayAPIOptimizer(name, resolve_hyper(name, hyper))
