"""Flatten: (batch, C, H, W) (or any per-sample shape) -> (batch, C*H*W)."""

from __future__ import annotations

import math

import attrs

from .op import Op


@attrs.frozen
class Flatten(Op):
    """Merge every per-sample axis into one (row-major, as ``torch.nn.Flatten``)."""


    def out_shape(self, in_shape):
        return (math.prod(in_shape),)

    def forward(self, k, params, x):
        return k.xp.reshape(x, (x.shape[0], -1)), tuple(x.shape)

    def vjp(self, k, params, res, g, need_input=True, need_params=True):
        return (k.xp.reshape(g, res) if need_input else None), ()

    def jvp(self, k, params, res, t):
        return k.xp.reshape(t, (t.shape[0], -1))
