"""Conv2d on NCHW images; weights OIHW. The convolution (with its bias) and its two
transposes come from the backend (``pccore_ops``); the bias gradient is Array API code."""

from __future__ import annotations

import attrs

from .. import host
from ..errors import InputError
from .op import Op, ShapeError, describe, expect_ndim, pair, positive_int, positive_pair, window_out


@attrs.frozen
class Conv2d(Op):
    """2-D convolution with ``out_channels`` filters of ``kernel_size`` (the bias added by the
    backend's kernel); in_channels from the input shape. ``stride``, ``padding`` (zeros), ``dilation``: int or (h, w) pair."""

    out_channels: int = attrs.field(converter=lambda v: positive_int(v, "out_channels"))
    kernel_size: tuple = attrs.field(converter=lambda v: positive_pair(v, "kernel_size"))
    stride: tuple = attrs.field(default=1, converter=lambda v: positive_pair(v, "stride"))
    padding: tuple = attrs.field(default=0, converter=lambda v: pair(v, "padding"))
    dilation: tuple = attrs.field(default=1, converter=lambda v: positive_pair(v, "dilation"))
    groups: int = attrs.field(default=1, converter=lambda v: positive_int(v, "groups"))
    bias: bool = attrs.field(default=True)

    def __attrs_post_init__(self):
        if not isinstance(self.bias, bool):
            raise InputError(f"bias must be True or False, got {self.bias!r}")
        if self.out_channels % self.groups:
            raise InputError(f"out_channels={self.out_channels} is not divisible by groups={self.groups}")

    @property
    def n_params(self) -> int:
        return 2 if self.bias else 1

    def out_shape(self, in_shape):
        expect_ndim(self, in_shape, 3, "(C, H, W)")
        c, h, w = in_shape
        if c % self.groups:
            raise ShapeError(f"{self!r}: input channels {c} are not divisible by groups={self.groups}")
        out = tuple(window_out(n, k, s, p, d) for n, k, s, p, d in
                    zip((h, w), self.kernel_size, self.stride, self.padding, self.dilation))
        if min(out) < 1:
            raise ShapeError(f"{self!r}: input {describe(in_shape)} is smaller than the (dilated) kernel")
        return (self.out_channels, *out)

    def param_shapes(self, in_shape):
        W = (self.out_channels, in_shape[0] // self.groups, *self.kernel_size)
        return (W, (self.out_channels,)) if self.bias else (W,)

    def init_params(self, rng, in_shape, init, gain):
        shape = self.param_shapes(in_shape)[0]
        fan_in = shape[1] * shape[2] * shape[3]
        W = host.draw(init, rng, self.out_channels, fan_in, gain).reshape(shape)
        return (W, host._np().zeros(self.out_channels)) if self.bias else (W,)

    def check(self, kernels, where):
        for name in ("conv2d", "conv2d_input_grad", "conv2d_weight_grad"):
            kernels.require(name, where)

    def _conv(self, k, W, x):
        return k.conv2d(x, W, self.stride, self.padding, self.dilation, self.groups)

    def forward(self, k, params, x):
        bias = params[1] if self.bias else None
        return k.conv2d(x, params[0], self.stride, self.padding, self.dilation, self.groups, bias), x

    def vjp(self, k, params, res, g, need_input=True, need_params=True):
        W, x = params[0], res
        args = (self.stride, self.padding, self.dilation, self.groups)
        gx = k.conv2d_input_grad(g, W, tuple(x.shape), *args) if need_input else None
        if not need_params:
            return gx, None
        gW = k.conv2d_weight_grad(x, g, tuple(W.shape), *args)
        return gx, ((gW, k.xp.sum(g, axis=(0, 2, 3))) if self.bias else (gW,))

    def jvp(self, k, params, res, t):
        return self._conv(k, params[0], t)
