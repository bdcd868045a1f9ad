"""The op protocol: one differentiable operation of a PC block, described statically.

An op is a frozen, hashable attrs value that holds configuration only (sizes, strides,
activation names), never arrays. Its parameters travel separately as a tuple of arrays,
so whole sweeps can be compiled with the structure static. Every op supplies, in closed
form (no framework autodiff, except for ``Foreign``):

- ``forward(k, params, x) -> (y, res)``: the output and what the products below need;
- ``vjp(k, params, res, g, need_input, need_params) -> (gx, gparams)``: J^T g for the
  input (None unless ``need_input``) and the parameters (tuple, or None unless
  ``need_params``);
- ``jvp(k, params, res, t) -> ty``: J t for an input tangent t.

Shapes are per sample (no batch axis); arrays carry a leading batch axis. ``k`` is the
backend's :class:`~pccore.nn.kernels.Kernels` (``k.xp`` is the Array API namespace).
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from ..errors import InputError

Shape = tuple[int, ...]


class ShapeError(InputError):
    """An op got an input of a shape it cannot take."""


class Op:
    """Base of every op (subclasses are ``attrs.frozen``)."""

    n_params: ClassVar[int] = 0  # number of parameter arrays (overridden where it varies)

    # ---------------------------------------------------------------- structure
    def out_shape(self, in_shape: Shape) -> Shape:
        """Output shape for input shape ``in_shape``; raises :class:`ShapeError` if unfit."""
        return tuple(in_shape)

    def param_shapes(self, in_shape: Shape) -> tuple[Shape, ...]:
        """Shapes of the parameter arrays for input shape ``in_shape``."""
        return ()

    def init_params(self, rng: Any, in_shape: Shape, init: str, gain: float) -> tuple:
        """Initial parameters as host arrays, drawn from ``rng`` (NumPy Generator)."""
        return ()

    def check(self, kernels: Any, where: str) -> None:
        """Raise if the backend lacks an op this one needs (``where`` names the block)."""

    def static(self) -> "Op":
        """This op without any arrays it was built with (only ``Foreign`` holds some)."""
        return self

    def leaves(self) -> tuple["Op", ...]:
        """The primitive ops, in order (composites flatten themselves)."""
        return (self,)

    def config(self) -> dict:
        """JSON-ready configuration, enough to rebuild the op (see ``pccore.nn.serialize``)."""
        return {f.name: getattr(self, f.name) for f in attrs.fields(type(self))}

    # ------------------------------------------------------------------ numerics
    def forward(self, k: Any, params: tuple, x: Any) -> tuple[Any, Any]:
        raise NotImplementedError

    def vjp(self, k: Any, params: tuple, res: Any, g: Any,
            need_input: bool = True, need_params: bool = True) -> tuple[Any, Any]:
        raise NotImplementedError

    def jvp(self, k: Any, params: tuple, res: Any, t: Any) -> Any:
        raise NotImplementedError

    def hvp_term(self, k: Any, params: tuple, res: Any, g: Any, t: Any) -> Any:
        """The second-order term d/de [J(x + e t)^T g] at e = 0 (input Hessian of <g, f>
        applied to t), or None where it is zero (linear and piecewise-linear ops)."""
        return None

    def __call__(self, k: Any, params: tuple, x: Any) -> Any:
        """Forward output only."""
        return self.forward(k, params, x)[0]


def pair(value: Any, name: str) -> tuple[int, int]:
    """An int or a pair of ints as an (h, w) pair of ints >= 0."""
    if isinstance(value, (list, tuple)):
        items = tuple(value)
    else:
        items = (value, value)
    if len(items) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in items):
        raise InputError(f"{name} must be an int >= 0 or a pair of them, got {value!r}")
    return (int(items[0]), int(items[1]))


def positive_pair(value: Any, name: str) -> tuple[int, int]:
    """Like :func:`pair` but every entry must be >= 1."""
    out = pair(value, name)
    if min(out) < 1:
        raise InputError(f"{name} must be >= 1, got {value!r}")
    return out


def positive_int(value: Any, name: str) -> int:
    """An int >= 1 (NumPy integers accepted)."""
    if isinstance(value, bool) or not hasattr(value, "__index__") or int(value) < 1:
        raise InputError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def window_out(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    """Output length of a sliding window: floor((size + 2p - d(k-1) - 1) / s) + 1."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def describe(shape: Shape) -> str:
    """``(1, 28, 28)`` style text of a per-sample shape."""
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def expect_ndim(op: Op, in_shape: Shape, ndim: int, layout: str) -> None:
    """Raise :class:`ShapeError` unless the per-sample input has ``ndim`` axes."""
    if len(in_shape) != ndim:
        hint = " (add Flatten() before it)" if ndim == 1 else ""
        raise ShapeError(f"{op!r} takes per-sample inputs of shape {layout}, got {describe(in_shape)}{hint}")
