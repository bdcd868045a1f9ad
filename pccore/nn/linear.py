"""Linear: ``y = x W^T + b`` on (batch, d_in) inputs; W is (d_out, d_in), b is (d_out,)."""

from __future__ import annotations

import attrs

from .. import host
from .op import Op, expect_ndim, positive_int


@attrs.frozen
class Linear(Op):
    """Fully connected layer with ``out_features`` outputs; d_in comes from the input shape."""

    out_features: int = attrs.field(converter=lambda v: positive_int(v, "out_features"))
    bias: bool = attrs.field(default=True)

    def __attrs_post_init__(self):
        if not isinstance(self.bias, bool):
            from ..errors import InputError

            raise InputError(f"bias must be True or False, got {self.bias!r}")

    @property
    def n_params(self) -> int:
        return 2 if self.bias else 1

    def out_shape(self, in_shape):
        expect_ndim(self, in_shape, 1, "(d_in,)")
        return (self.out_features,)

    def param_shapes(self, in_shape):
        W = (self.out_features, in_shape[0])
        return (W, (self.out_features,)) if self.bias else (W,)

    def init_params(self, rng, in_shape, init, gain):
        W = host.draw(init, rng, self.out_features, in_shape[0], gain)
        return (W, host._np().zeros(self.out_features)) if self.bias else (W,)

    def forward(self, k, params, x):
        y = x @ params[0].T
        return (y + params[1] if self.bias else y), x

    def vjp(self, k, params, res, g, need_input=True, need_params=True):
        gx = g @ params[0] if need_input else None
        if not need_params:
            return gx, None
        gW = g.T @ res
        return gx, ((gW, k.xp.sum(g, axis=0)) if self.bias else (gW,))

    def jvp(self, k, params, res, t):
        return t @ params[0].T
