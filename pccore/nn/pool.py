"""MaxPool2d and AvgPool2d on NCHW images, from the backend's pooling kernels."""

from __future__ import annotations

import attrs

from .op import Op, ShapeError, describe, expect_ndim, pair, positive_pair, window_out


def _stride(value):
    return None if value is None else positive_pair(value, "stride")


@attrs.frozen
class _Pool(Op):
    kernel_size: tuple = attrs.field(converter=lambda v: positive_pair(v, "kernel_size"))
    stride: tuple | None = attrs.field(default=None, converter=_stride)  # None: = kernel_size
    padding: tuple = attrs.field(default=0, converter=lambda v: pair(v, "padding"))

    def __attrs_post_init__(self):
        if self.stride is None:
            object.__setattr__(self, "stride", self.kernel_size)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise ShapeError(f"{self!r}: padding must be at most half the kernel size")

    def out_shape(self, in_shape):
        expect_ndim(self, in_shape, 3, "(C, H, W)")
        c, h, w = in_shape
        out = tuple(window_out(n, k, s, p) for n, k, s, p in
                    zip((h, w), self.kernel_size, self.stride, self.padding))
        if min(out) < 1:
            raise ShapeError(f"{self!r}: input {describe(in_shape)} is smaller than the window")
        return (c, *out)

    @property
    def _args(self):
        return self.kernel_size, self.stride, self.padding


@attrs.frozen
class MaxPool2d(_Pool):
    """Max over ``kernel_size`` windows (stride defaults to the kernel size; -inf padding)."""


    def check(self, kernels, where):
        for name in ("max_pool2d", "max_pool2d_vjp", "max_pool2d_jvp"):
            kernels.require(name, where)

    def forward(self, k, params, x):
        return k.max_pool2d(x, *self._args)

    def vjp(self, k, params, res, g, need_input=True, need_params=True):
        return (k.max_pool2d_vjp(res, g) if need_input else None), ()

    def jvp(self, k, params, res, t):
        return k.max_pool2d_jvp(res, t)


@attrs.frozen
class AvgPool2d(_Pool):
    """Mean over ``kernel_size`` windows (zero padding counts in the mean, as in PyTorch)."""


    def check(self, kernels, where):
        for name in ("avg_pool2d", "avg_pool2d_vjp"):
            kernels.require(name, where)

    def forward(self, k, params, x):
        return k.avg_pool2d(x, *self._args), tuple(x.shape)

    def vjp(self, k, params, res, g, need_input=True, need_params=True):
        return (k.avg_pool2d_vjp(g, res, *self._args) if need_input else None), ()

    def jvp(self, k, params, res, t):
        return k.avg_pool2d(t, *self._args)
