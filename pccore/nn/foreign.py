"""Foreign: a block from framework code, ``y = fn(params, x)``, differentiated by the
backend's autodiff (``torch.func`` / ``jax.vjp``); for what the built-in ops don't cover."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs

from .. import host
from ..errors import InputError
from .op import Op, ShapeError, describe


@attrs.frozen(init=False)
class Foreign(Op):
    """``fn(params, x) -> y`` on batched arrays, with ``params`` a tuple of arrays of the
    runtime's framework (the network copies them; they are its parameters from then on).
    ``out_shape`` (per sample) is found by running ``fn`` once when the network is built.
    Needs a backend with autodiff (torch or jax)."""

    fn: Callable
    param_shapes_: tuple
    name: str
    out: tuple | None = None
    initial: tuple = attrs.field(default=(), eq=False, hash=False, repr=False)

    def __init__(self, fn: Callable, params: Sequence[Any] = (), name: str | None = None):
        if not callable(fn):
            raise InputError(f"Foreign needs a callable fn(params, x), got {type(fn).__name__}")
        if isinstance(params, dict) or not isinstance(params, (list, tuple)):
            raise InputError(f"Foreign params must be a tuple or list of arrays, got {type(params).__name__}")
        for i, p in enumerate(params):
            if not hasattr(p, "shape"):
                raise InputError(f"Foreign params[{i}] must be an array, got {type(p).__name__}")
        shapes = tuple(tuple(int(n) for n in p.shape) for p in params)
        label = name if name is not None else getattr(fn, "__name__", type(fn).__name__)
        self.__attrs_init__(fn, shapes, str(label), None, tuple(params))

    def _with(self, out: tuple | None, initial: tuple) -> "Foreign":
        new = object.__new__(Foreign)
        new.__attrs_init__(self.fn, self.param_shapes_, self.name, out, initial)
        return new

    def __repr__(self) -> str:
        return f"Foreign({self.name})"

    @property
    def n_params(self) -> int:
        return len(self.param_shapes_)

    def resolve(self, runtime, in_shape):
        kernels = runtime.kernels
        self.check(kernels, repr(self))
        params = tuple(runtime.asarray(p) for p in self.initial)
        try:
            y = self.fn(params, runtime.asarray(host._np().zeros((1, *in_shape))))
        except Exception as err:  # the user's function failed on an input of this shape
            raise ShapeError(f"{self!r} failed on an input of per-sample shape {describe(in_shape)}: "
                             f"{type(err).__name__}: {err}") from err
        out = tuple(int(n) for n in y.shape[1:])
        return self._with(out, self.initial), out

    def out_shape(self, in_shape):
        if self.out is None:
            raise ShapeError(f"{self!r}: output shape unknown until the network is built (pccore.network)")
        return self.out

    def param_shapes(self, in_shape):
        return self.param_shapes_

    def init_params(self, rng, in_shape, init, gain):
        if len(self.initial) != self.n_params:
            raise InputError(f"{self!r} has no parameter values; pass params= when building the network")
        return self.initial

    def check(self, kernels, where):
        for name in ("vjp", "jvp"):
            kernels.require(name, f"{where} (a Foreign block)")

    def static(self):
        return self._with(self.out, ())

    def config(self):
        raise InputError(f"{self!r} wraps a Python function, which cannot be saved; save the "
                         "parameters yourself (net.params) and rebuild the network with it")

    def forward(self, k, params, x):
        y, pullback = k.vjp(self.fn, tuple(params), x)
        return y, (x, pullback)

    def vjp(self, k, params, res, g, need_input=True, need_params=True):
        gparams, gx = res[1](g)
        return (gx if need_input else None), (tuple(gparams) if need_params else None)

    def jvp(self, k, params, res, t):
        return k.jvp(self.fn, tuple(params), res[0], t)[1]

    def hvp_term(self, k, params, res, g, t):
        return k.vjp_jvp(self.fn, tuple(params), res[0], g, t)
