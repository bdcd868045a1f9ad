"""Composite ops: ``Sequential`` chains ops; ``Residual`` adds a shortcut,
``f(s) = act(body(s) + shortcut(s))``. Their parameters are the children's, concatenated."""

from __future__ import annotations

from typing import Any

import attrs

from ..errors import InputError
from .activation import Activation, get_activation
from .op import Op, ShapeError, describe


def as_op(obj: Any, where: str = "block") -> Op:
    """``obj`` as an op: ops pass through, a list/tuple becomes a Sequential, a string names
    an activation. Anything else is refused with a hint."""
    if isinstance(obj, Op):
        return obj
    if isinstance(obj, (list, tuple)):
        return Sequential(*obj)
    if isinstance(obj, str):
        return get_activation(obj)
    raise InputError(
        f"{where} must be a pccore.nn op (Linear, Conv2d, MaxPool2d, AvgPool2d, Flatten, an "
        f"activation, Sequential, Residual), a list of them or an activation name; got "
        f"{type(obj).__module__}.{type(obj).__name__}. Wrap framework modules with "
        "pccore.nn.Foreign(fn, params) or import them with pccore.from_torch / pccore.from_equinox"
    )


def _split(ops: tuple, params: tuple) -> list[tuple]:
    out, i = [], 0
    for op in ops:
        out.append(tuple(params[i:i + op.n_params]))
        i += op.n_params
    return out


@attrs.frozen(init=False)
class Sequential(Op):
    """Ops applied in order: ``Sequential(Conv2d(16, 3, padding=1), "relu", MaxPool2d(2))``."""

    ops: tuple

    def __init__(self, *ops: Any):
        if len(ops) == 1 and isinstance(ops[0], (list, tuple)):
            ops = tuple(ops[0])
        if not ops:
            raise InputError("Sequential needs at least one op")
        self.__attrs_init__(tuple(as_op(op, f"Sequential op {i}") for i, op in enumerate(ops)))

    def __repr__(self) -> str:
        return "Sequential(" + ", ".join(repr(op) for op in self.ops) + ")"

    @property
    def n_params(self) -> int:
        return sum(op.n_params for op in self.ops)

    def resolve(self, runtime, in_shape):
        ops, shape = [], tuple(in_shape)
        for op in self.ops:
            op, shape = resolve(op, runtime, shape)
            ops.append(op)
        return Sequential(*ops), shape

    def out_shape(self, in_shape):
        shape = tuple(in_shape)
        for op in self.ops:
            shape = op.out_shape(shape)
        return shape

    def param_shapes(self, in_shape):
        out, shape = [], tuple(in_shape)
        for op in self.ops:
            out.extend(op.param_shapes(shape))
            shape = op.out_shape(shape)
        return tuple(out)

    def init_params(self, rng, in_shape, init, gain):
        out, shape = [], tuple(in_shape)
        for op in self.ops:
            out.extend(op.init_params(rng, shape, init, gain))
            shape = op.out_shape(shape)
        return tuple(out)

    def check(self, kernels, where):
        for op in self.ops:
            op.check(kernels, where)

    def static(self):
        return Sequential(*(op.static() for op in self.ops))

    def leaves(self):
        return tuple(leaf for op in self.ops for leaf in op.leaves())

    def config(self):
        return {"ops": list(self.ops)}

    def forward(self, k, params, x):
        res = []
        for op, p in zip(self.ops, _split(self.ops, params)):
            x, r = op.forward(k, p, x)
            res.append(r)
        return x, res

    def vjp(self, k, params, res, g, need_input=True, need_params=True):
        parts = _split(self.ops, params)
        grads: list = [None] * len(self.ops)
        for i in range(len(self.ops) - 1, -1, -1):
            if not need_params and not need_input:
                break
            inner = need_input or i > 0
            g, grads[i] = self.ops[i].vjp(k, parts[i], res[i], g, inner, need_params)
        gparams = tuple(p for gp in grads for p in gp) if need_params else None
        return (g if need_input else None), gparams

    def jvp(self, k, params, res, t):
        for op, p, r in zip(self.ops, _split(self.ops, params), res):
            t = op.jvp(k, p, r, t)
        return t

    def hvp_term(self, k, params, res, g, t):
        # forward tangents at each op's input, cotangents at each op's output, then
        # sum_i J_1^T .. J_{i-1}^T (d J_i^T / dt_i) g_i, accumulated backwards
        parts, ts = _split(self.ops, params), [t]
        for op, p, r in zip(self.ops[:-1], parts, res):
            ts.append(op.jvp(k, p, r, ts[-1]))
        cs, c = [None] * len(self.ops), g
        for i in range(len(self.ops) - 1, -1, -1):
            cs[i] = c
            if i > 0:
                c = self.ops[i].vjp(k, parts[i], res[i], c, True, False)[0]
        acc = None
        for i in range(len(self.ops) - 1, -1, -1):
            if acc is not None:
                acc = self.ops[i].vjp(k, parts[i], res[i], acc, True, False)[0]
            term = self.ops[i].hvp_term(k, parts[i], res[i], cs[i], ts[i])
            if term is not None:
                acc = term if acc is None else acc + term
        return acc


@attrs.frozen(init=False)
class Residual(Op):
    """``f(s) = activation(body(s) + shortcut(s))``; the shortcut is the identity when None
    (then body must keep the shape) or an op such as a 1x1 ``Conv2d`` projection."""

    body: Op
    shortcut: Op | None
    activation: Activation

    def __init__(self, body: Any, shortcut: Any = None, activation: Any = "linear"):
        self.__attrs_init__(as_op(body, "Residual body"),
                            None if shortcut is None else as_op(shortcut, "Residual shortcut"),
                            get_activation(activation))

    @property
    def n_params(self) -> int:
        return self.body.n_params + (0 if self.shortcut is None else self.shortcut.n_params)

    def _parts(self, params):
        n = self.body.n_params
        return tuple(params[:n]), tuple(params[n:])

    def resolve(self, runtime, in_shape):
        body, shape = resolve(self.body, runtime, in_shape)
        short = None if self.shortcut is None else resolve(self.shortcut, runtime, in_shape)[0]
        op = Residual(body, short, self.activation)
        return op, op.out_shape(in_shape)

    def out_shape(self, in_shape):
        body = self.body.out_shape(in_shape)
        short = tuple(in_shape) if self.shortcut is None else self.shortcut.out_shape(in_shape)
        if body != short:
            what = "the input (identity shortcut)" if self.shortcut is None else "the shortcut's output"
            raise ShapeError(f"Residual: the body's output {describe(body)} does not match {what} "
                             f"{describe(short)}; give a shortcut that maps to {describe(body)}")
        return body

    def param_shapes(self, in_shape):
        short = () if self.shortcut is None else self.shortcut.param_shapes(in_shape)
        return tuple(self.body.param_shapes(in_shape)) + tuple(short)

    def init_params(self, rng, in_shape, init, gain):
        short = () if self.shortcut is None else self.shortcut.init_params(rng, in_shape, init, gain)
        return tuple(self.body.init_params(rng, in_shape, init, gain)) + tuple(short)

    def check(self, kernels, where):
        self.body.check(kernels, where)
        if self.shortcut is not None:
            self.shortcut.check(kernels, where)

    def static(self):
        return Residual(self.body.static(), None if self.shortcut is None else self.shortcut.static(),
                        self.activation)

    def leaves(self):
        short = () if self.shortcut is None else self.shortcut.leaves()
        return self.body.leaves() + short + (self.activation,)

    def config(self):
        return {"body": self.body, "shortcut": self.shortcut, "activation": self.activation}

    def forward(self, k, params, x):
        pb, ps = self._parts(params)
        yb, rb = self.body.forward(k, pb, x)
        ys, rs = (x, None) if self.shortcut is None else self.shortcut.forward(k, ps, x)
        y, ra = self.activation.forward(k, (), yb + ys)
        return y, (rb, rs, ra)

    def vjp(self, k, params, res, g, need_input=True, need_params=True):
        pb, ps = self._parts(params)
        rb, rs, ra = res
        ga, _ = self.activation.vjp(k, (), ra, g)
        gxb, gpb = self.body.vjp(k, pb, rb, ga, need_input, need_params)
        if self.shortcut is None:
            gxs, gps = ga, ()
        else:
            gxs, gps = self.shortcut.vjp(k, ps, rs, ga, need_input, need_params)
        gx = gxb + gxs if need_input else None
        return gx, (tuple(gpb) + tuple(gps) if need_params else None)

    def jvp(self, k, params, res, t):
        pb, ps = self._parts(params)
        rb, rs, ra = res
        tb = self.body.jvp(k, pb, rb, t)
        ts = t if self.shortcut is None else self.shortcut.jvp(k, ps, rs, t)
        return self.activation.jvp(k, (), ra, tb + ts)

    def hvp_term(self, k, params, res, g, t):
        pb, ps = self._parts(params)
        rb, rs, ra = res
        ga = self.activation.vjp(k, (), ra, g)[0]
        ta = self.body.jvp(k, pb, rb, t) + (t if self.shortcut is None else self.shortcut.jvp(k, ps, rs, t))
        acc, act = None, self.activation.hvp_term(k, (), ra, g, ta)
        if act is not None:  # the activation's term, pulled back through both branches
            acc = self.body.vjp(k, pb, rb, act, True, False)[0]
            acc = acc + (act if self.shortcut is None else self.shortcut.vjp(k, ps, rs, act, True, False)[0])
        for term in (self.body.hvp_term(k, pb, rb, ga, t),
                     None if self.shortcut is None else self.shortcut.hvp_term(k, ps, rs, ga, t)):
            if term is not None:
                acc = term if acc is None else acc + term
        return acc


def resolve(op: Op, runtime: Any, in_shape: tuple) -> tuple[Op, tuple]:
    """(op with anything runtime-dependent settled, its output shape) for input ``in_shape``.
    Only ``Foreign`` needs the runtime (it runs its function once to learn its output shape)."""
    method = getattr(op, "resolve", None)
    if method is not None:
        return method(runtime, tuple(in_shape))
    return op, op.out_shape(tuple(in_shape))
