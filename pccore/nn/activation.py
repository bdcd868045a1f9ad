"""Elementwise activations phi as ops, with phi' (from the input a and output y = phi(a))."""

from __future__ import annotations

import math
from typing import Any

import attrs

from ..errors import InputError, UnknownNameError
from .op import Op

_GELU_C = math.sqrt(2.0 / math.pi)


class Activation(Op):
    """Base of the elementwise ops: ``y = fn(a)``; J^T g = J g = phi'(a) * g.

    A backend may supply fused kernels ``activation(name, a, settings)`` and
    ``activation_vjp(name, a, y, g, settings)`` (``pccore_ops``): one kernel instead of
    several for eager frameworks; the Array API formulas below are used otherwise."""

    name = ""
    linear = False  # identity: products pass through untouched

    def fn(self, xp: Any, a: Any) -> Any:
        raise NotImplementedError

    def deriv(self, xp: Any, a: Any, y: Any) -> Any:
        """phi'(a), given also y = phi(a) (cheaper for tanh and sigmoid)."""
        raise NotImplementedError

    def deriv2(self, xp: Any, a: Any, y: Any) -> Any:
        """phi''(a), or None where it is zero almost everywhere (piecewise-linear ops)."""
        return None

    def hvp_term(self, k, params, res, g, t):
        if self.linear:
            return None
        d2 = self.deriv2(k.xp, *res)
        return None if d2 is None else d2 * t * g

    def config(self) -> dict:
        return {f.name: getattr(self, f.name) for f in attrs.fields(type(self))}

    def settings(self) -> tuple:
        """The activation's own numbers (slope, bounds), for backend kernels."""
        return tuple(getattr(self, f.name) for f in attrs.fields(type(self)))

    def forward(self, k, params, x):
        if self.linear:
            return x, None
        fused = getattr(k.ops, "activation", None)
        y = self.fn(k.xp, x) if fused is None else fused(self.name, x, self.settings())
        return y, (x, y)

    def _times_deriv(self, k, res, v):
        fused = getattr(k.ops, "activation_vjp", None)
        if fused is None:
            return self.deriv(k.xp, *res) * v
        return fused(self.name, res[0], res[1], v, self.settings())

    def vjp(self, k, params, res, g, need_input=True, need_params=True):
        if not need_input:
            return None, ()
        return (g if self.linear else self._times_deriv(k, res, g)), ()

    def jvp(self, k, params, res, t):
        return t if self.linear else self._times_deriv(k, res, t)


@attrs.frozen
class Identity(Activation):
    """phi(a) = a (the "linear" activation)."""

    name = "linear"
    linear = True

    def fn(self, xp, a):
        return a

    def deriv(self, xp, a, y):
        return xp.ones_like(a)


@attrs.frozen
class ReLU(Activation):
    """phi(a) = max(a, 0); phi'(0) = 0."""

    name = "relu"

    def fn(self, xp, a):
        return xp.clip(a, min=0)

    def deriv(self, xp, a, y):
        return xp.sign(y)  # y = max(a, 0): 1 where a > 0, else 0 (float ops only: faster than a cast)


@attrs.frozen
class LeakyReLU(Activation):
    """phi(a) = a for a > 0, ``negative_slope * a`` otherwise."""

    negative_slope: float = attrs.field(default=0.01, converter=float)
    name = "leaky_relu"

    def fn(self, xp, a):
        return xp.where(a > 0, a, self.negative_slope * a)

    def deriv(self, xp, a, y):
        return xp.where(a > 0, xp.ones_like(a), xp.full_like(a, self.negative_slope))


@attrs.frozen
class Tanh(Activation):
    """phi(a) = tanh(a); phi' = 1 - y^2."""

    name = "tanh"

    def fn(self, xp, a):
        return xp.tanh(a)

    def deriv(self, xp, a, y):
        return 1.0 - y * y

    def deriv2(self, xp, a, y):
        return -2.0 * y * (1.0 - y * y)


@attrs.frozen
class HardTanh(Activation):
    """phi(a) = clip(a, min_val, max_val); phi' = 1 strictly inside, 0 outside."""

    min_val: float = attrs.field(default=-1.0, converter=float)
    max_val: float = attrs.field(default=1.0, converter=float)
    name = "hard_tanh"

    def __attrs_post_init__(self):
        if not self.min_val < self.max_val:
            raise InputError(f"hard_tanh needs min_val < max_val, got {self.min_val} and {self.max_val}")

    def fn(self, xp, a):
        return xp.clip(a, self.min_val, self.max_val)

    def deriv(self, xp, a, y):
        return xp.astype((a > self.min_val) & (a < self.max_val), a.dtype)


@attrs.frozen
class Sigmoid(Activation):
    """phi(a) = 1 / (1 + exp(-a)), computed as (1 + tanh(a/2)) / 2 (stable); phi' = y(1 - y)."""

    name = "sigmoid"

    def fn(self, xp, a):
        return 0.5 * (1.0 + xp.tanh(0.5 * a))

    def deriv(self, xp, a, y):
        return y * (1.0 - y)

    def deriv2(self, xp, a, y):
        return y * (1.0 - y) * (1.0 - 2.0 * y)


@attrs.frozen
class GELU(Activation):
    """GELU, tanh approximation (the Array API has no erf; ``jax.nn.gelu``'s default and
    ``torch.nn.GELU(approximate="tanh")``)."""

    name = "gelu"

    def fn(self, xp, a):
        return 0.5 * a * (1.0 + xp.tanh(_GELU_C * (a + 0.044715 * a * a * a)))

    def deriv(self, xp, a, y):
        t = xp.tanh(_GELU_C * (a + 0.044715 * a * a * a))
        dt = (1.0 - t * t) * _GELU_C * (1.0 + 3 * 0.044715 * a * a)
        return 0.5 * (1.0 + t) + 0.5 * a * dt

    def deriv2(self, xp, a, y):
        u = _GELU_C * (a + 0.044715 * a * a * a)
        du = _GELU_C * (1.0 + 3 * 0.044715 * a * a)
        t = xp.tanh(u)
        dt = (1.0 - t * t) * du  # d tanh(u) / da
        ddt = -2.0 * t * dt * du + (1.0 - t * t) * _GELU_C * 6 * 0.044715 * a
        return dt + 0.5 * a * ddt


ACTIVATIONS: dict[str, type[Activation]] = {
    cls.name: cls for cls in (Identity, ReLU, LeakyReLU, Tanh, HardTanh, Sigmoid, GELU)
}


def get_activation(name: str | Activation) -> Activation:
    """Activation op by name (linear, relu, leaky_relu, tanh, hard_tanh, sigmoid, gelu),
    or an activation op passed through."""
    if isinstance(name, Activation):
        return name
    if name == "identity":
        name = "linear"
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise UnknownNameError(f"unknown activation {name!r}; expected one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()
