"""Activation functions phi and their derivatives phi', written on the Array API."""

from __future__ import annotations

import math
from typing import Any, Callable

import attrs

from .errors import UnknownNameError

_GELU_C = math.sqrt(2.0 / math.pi)


@attrs.frozen
class Activation:
    """A named elementwise function with its derivative; hashable so compiled loops cache."""

    name: str
    fn: Callable[[Any, Any], Any] = attrs.field(eq=False, repr=False)
    deriv: Callable[[Any, Any], Any] = attrs.field(eq=False, repr=False)
    linear: bool = attrs.field(default=False, eq=False)

    def __call__(self, xp: Any, a: Any) -> Any:
        return self.fn(xp, a)


def _sigmoid(xp, a):
    return 0.5 * (1.0 + xp.tanh(0.5 * a))  # stable for large |a|


def _sigmoid_d(xp, a):
    s = _sigmoid(xp, a)
    return s * (1.0 - s)


def _tanh_d(xp, a):
    t = xp.tanh(a)
    return 1.0 - t * t


def _gelu(xp, a):
    return 0.5 * a * (1.0 + xp.tanh(_GELU_C * (a + 0.044715 * a * a * a)))


def _gelu_d(xp, a):
    t = xp.tanh(_GELU_C * (a + 0.044715 * a * a * a))
    dt = (1.0 - t * t) * _GELU_C * (1.0 + 3 * 0.044715 * a * a)
    return 0.5 * (1.0 + t) + 0.5 * a * dt


def _relu_d(xp, a):
    return xp.astype(a > 0, a.dtype)


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation("linear", lambda xp, a: a, lambda xp, a: xp.ones_like(a), linear=True),
    "relu": Activation("relu", lambda xp, a: xp.maximum(a, xp.zeros_like(a)), _relu_d),
    "tanh": Activation("tanh", lambda xp, a: xp.tanh(a), _tanh_d),
    "sigmoid": Activation("sigmoid", _sigmoid, _sigmoid_d),
    "gelu": Activation("gelu", _gelu, _gelu_d),  # tanh approximation (no erf in the Array API)
}


def get_activation(name: str | Activation) -> Activation:
    """Activation by name: one of linear, relu, tanh, sigmoid, gelu."""
    if isinstance(name, Activation):
        return name
    if name not in ACTIVATIONS:
        raise UnknownNameError(
            f"unknown activation {name!r}; expected one of {', '.join(ACTIVATIONS)}"
        )
    return ACTIVATIONS[name]
