"""NumPy kernels for ``pccore_ops``: convolution by im2col, max/avg pooling.

Every function takes NCHW images and OIHW weights; ``stride``, ``padding``, ``dilation``
and ``kernel`` are (h, w) pairs of Python ints. Convolution gathers the receptive fields
with ``sliding_window_view`` into one contiguous (groups, C/groups*kh*kw, N*Ho*Wo) matrix
and multiplies it once; the input gradient scatters the columns back with one strided add
per kernel offset (col2im). NumPy has no autodiff, so ``vjp`` / ``jvp`` are left out.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from pccore.nn.kernels import OpSet


def _pad(x, padding, value=0.0):
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def _windows(xp, kernel, stride, dilation):
    """Strided view (N, C, Ho, Wo, kh, kw) of the receptive fields of padded ``xp``."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    view = sliding_window_view(xp, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3))
    return view[:, :, ::sh, ::sw, ::dh, ::dw]


def _cols(x, kernel, stride, padding, dilation, groups):
    """im2col: contiguous (groups, C/groups*kh*kw, N*Ho*Wo) matrix and (Ho, Wo). Pixels
    are the fast axis, so the gather copies rows of the image and the matmuls stream."""
    n, c = x.shape[:2]
    win = _windows(_pad(x, padding), kernel, stride, dilation)  # (N, C, Ho, Wo, kh, kw)
    ho, wo = win.shape[2:4]
    cg = c // groups
    win = win.reshape(n, groups, cg, ho, wo, *kernel)
    cols = np.ascontiguousarray(win.transpose(1, 2, 5, 6, 0, 3, 4))  # (G, Cg, kh, kw, N, Ho, Wo)
    return cols.reshape(groups, cg * kernel[0] * kernel[1], n * ho * wo), (ho, wo)


def _g_rows(g, groups):
    """(N, O, Ho, Wo) -> (G, O/G, N*Ho*Wo)."""
    n, o, ho, wo = g.shape
    g = g.reshape(n, groups, o // groups, ho, wo).transpose(1, 2, 0, 3, 4)
    return g.reshape(groups, o // groups, n * ho * wo)


def conv2d(x, w, stride, padding, dilation, groups, bias=None):
    o, cg, kh, kw = w.shape
    n = x.shape[0]
    cols, (ho, wo) = _cols(x, (kh, kw), stride, padding, dilation, groups)
    wm = w.reshape(groups, o // groups, cg * kh * kw)
    y = np.matmul(wm, cols)  # (G, O/G, N*Ho*Wo)
    if bias is not None:
        y = y.reshape(o, -1)
        y += bias.reshape(o, 1)
    y = y.reshape(o, n, ho, wo).transpose(1, 0, 2, 3)
    return np.ascontiguousarray(y, dtype=x.dtype)


def conv2d_input_grad(g, w, input_shape, stride, padding, dilation, groups):
    n, c, h, wd = input_shape
    o, cg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    ho, wo = g.shape[2:]
    wm = w.reshape(groups, o // groups, cg * kh * kw)
    gcols = np.matmul(wm.transpose(0, 2, 1), _g_rows(g, groups))  # (G, Cg*kh*kw, N*Ho*Wo)
    gcols = gcols.reshape(c, kh, kw, n, ho, wo)
    gxp = np.zeros((c, n, h + 2 * ph, wd + 2 * pw), dtype=g.dtype)
    for i in range(kh):
        for j in range(kw):
            hi, wj = i * dh, j * dw
            gxp[:, :, hi : hi + sh * (ho - 1) + 1 : sh, wj : wj + sw * (wo - 1) + 1 : sw] += gcols[:, i, j]
    gx = gxp[:, :, ph : ph + h, pw : pw + wd].transpose(1, 0, 2, 3)
    return np.ascontiguousarray(gx)


def conv2d_weight_grad(x, g, weight_shape, stride, padding, dilation, groups):
    o, cg, kh, kw = weight_shape
    cols, _ = _cols(x, (kh, kw), stride, padding, dilation, groups)
    gw = np.matmul(_g_rows(g, groups), cols.transpose(0, 2, 1))  # (G, O/G, Cg*kh*kw)
    return gw.reshape(weight_shape).astype(x.dtype, copy=False)


def max_pool2d(x, kernel, stride, padding):
    n, c, h, w = x.shape
    (kh, kw), (ph, pw) = kernel, padding
    xp = _pad(x, padding, -np.inf)
    win = _windows(xp, kernel, stride, (1, 1))  # (N, C, Ho, Wo, kh, kw)
    ho, wo = win.shape[2:4]
    flat = win.reshape(n, c, ho, wo, kh * kw)
    arg = flat.argmax(axis=-1)
    y = np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]
    # flat index of each maximum into the padded image of all (N, C) planes
    hp, wp = h + 2 * ph, w + 2 * pw
    rows = np.arange(ho)[:, None] * stride[0] + arg // kw
    cols = np.arange(wo)[None, :] * stride[1] + arg % kw
    planes = np.arange(n * c).reshape(n, c, 1, 1) * (hp * wp)
    index = planes + rows * wp + cols
    return y, (index, x.shape, (ph, pw))


def max_pool2d_vjp(res, g):
    index, (n, c, h, w), (ph, pw) = res
    hp, wp = h + 2 * ph, w + 2 * pw
    gxp = np.bincount(index.ravel(), weights=g.ravel(), minlength=n * c * hp * wp)
    gx = gxp.reshape(n, c, hp, wp)[:, :, ph : ph + h, pw : pw + w]
    return np.ascontiguousarray(gx, dtype=g.dtype)


def max_pool2d_jvp(res, t):
    index, _, padding = res
    return _pad(t, padding).ravel()[index]


def avg_pool2d(x, kernel, stride, padding):
    win = _windows(_pad(x, padding), kernel, stride, (1, 1))
    return win.mean(axis=(-2, -1), dtype=x.dtype)


def avg_pool2d_vjp(g, input_shape, kernel, stride, padding):
    n, c, h, w = input_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    ho, wo = g.shape[2:]
    ga = g / (kh * kw)
    gxp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=g.dtype)
    for i in range(kh):
        for j in range(kw):
            gxp[:, :, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw] += ga
    return np.ascontiguousarray(gxp[:, :, ph : ph + h, pw : pw + w])


OPS = OpSet(
    "numpy",
    conv2d=conv2d,
    conv2d_input_grad=conv2d_input_grad,
    conv2d_weight_grad=conv2d_weight_grad,
    max_pool2d=max_pool2d,
    max_pool2d_vjp=max_pool2d_vjp,
    max_pool2d_jvp=max_pool2d_jvp,
    avg_pool2d=avg_pool2d,
    avg_pool2d_vjp=avg_pool2d_vjp,
)
