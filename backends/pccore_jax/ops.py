"""JAX kernels for ``pccore_ops``: ``lax.conv_general_dilated``, ``lax.reduce_window``, autodiff.

Every function takes NCHW images and OIHW weights; ``stride``, ``padding``, ``dilation``
and ``kernel`` are (h, w) pairs of Python ints and shapes are tuples of Python ints, so
all of them trace under ``jax.jit`` (arrays may be tracers). Each kernel is one
``jax.jit`` with those as static arguments: called eagerly it compiles once per
configuration instead of dispatching op by op; under an outer jit it is inlined.

The convolution transposes are ``jax.linear_transpose`` of the convolution (they lower to
``conv_general_dilated`` again). Average pooling is a ``reduce_window`` sum and its VJP
the linear transpose of that. Max pooling keeps the argmax of each window (over kh*kw
strided slices) as its residual: the JVP selects the tangent there and the VJP pads each
offset's share of the cotangent back, exact in float64 on every device (see max_pool2d).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

from pccore.nn.kernels import OpSet

_DIMS = ("NCHW", "OIHW", "NCHW")


def _pair(v):
    return (int(v[0]), int(v[1]))


def _shape(s):
    return tuple(int(d) for d in s)


def _edges(padding, value=0):
    return ((0, 0, value), (0, 0, value), (padding[0], padding[0], value), (padding[1], padding[1], value))


# ------------------------------------------------------------------------ convolution
# XLA:CPU runs an NCHW convolution inside a while loop's body (a compiled inference run, a
# CG solve) ~20x slower than the same convolution unrolled: layout assignment cannot give
# the loop-carried arrays the NHWC layout its fast kernels want. So the forward convolution
# and its input gradient are written as NHWC/HWIO convolutions between explicit transposes,
# which run at unrolled speed in loops too. The weight gradient (outside the loops) keeps
# the NCHW form, which XLA lays out well unrolled.
def _conv_nchw(x, w, stride, padding, dilation, groups):
    return lax.conv_general_dilated(
        x,
        w,
        window_strides=stride,
        padding=((padding[0], padding[0]), (padding[1], padding[1])),
        rhs_dilation=dilation,
        dimension_numbers=_DIMS,
        feature_group_count=groups,
    )


def _nhwc(x):
    return jnp.transpose(x, (0, 2, 3, 1))


def _nchw(x):
    return jnp.transpose(x, (0, 3, 1, 2))


def _conv(x, w, stride, padding, dilation, groups):
    """The NCHW/OIHW convolution, computed as NHWC/HWIO."""
    y = lax.conv_general_dilated(
        _nhwc(x),
        jnp.transpose(w, (2, 3, 1, 0)),
        window_strides=stride,
        padding=((padding[0], padding[0]), (padding[1], padding[1])),
        rhs_dilation=dilation,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=groups,
    )
    return _nchw(y)


def _transposed_kernel(w, groups):
    """HWIO kernel of the convolution's transpose: flipped in space, in/out channels swapped
    within each group: (O, I/G, kh, kw) -> (kh, kw, O/G, I)."""
    o, i_g, kh, kw = w.shape
    w = jnp.flip(w, (2, 3)).reshape(groups, o // groups, i_g, kh, kw)
    return jnp.transpose(w, (3, 4, 1, 0, 2)).reshape(kh, kw, o // groups, groups * i_g)


def _input_grad(g, w, input_shape, stride, padding, dilation, groups):
    """J^T g of the convolution: a stride-1 convolution of the stride-dilated cotangent with
    the transposed kernel; the high pad adds back the rows/columns the forward stride skipped."""
    pads = []
    for d in (0, 1):
        k = dilation[d] * (w.shape[2 + d] - 1)
        skipped = (input_shape[2 + d] + 2 * padding[d] - k - 1) % stride[d]
        pads.append((k - padding[d], k - padding[d] + skipped))
    gx = lax.conv_general_dilated(
        _nhwc(g),
        _transposed_kernel(w, groups),
        window_strides=(1, 1),
        padding=pads,
        lhs_dilation=stride,
        rhs_dilation=dilation,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=groups,
    )
    return _nchw(gx)


@partial(jax.jit, static_argnums=(2, 3, 4, 5))
def _conv2d(x, w, stride, padding, dilation, groups):
    return _conv(x, w, stride, padding, dilation, groups)


@partial(jax.jit, static_argnums=(2, 3, 4, 5, 6))
def _conv2d_input_grad(g, w, input_shape, stride, padding, dilation, groups):
    return _input_grad(g, w, input_shape, stride, padding, dilation, groups)


@partial(jax.jit, static_argnums=(2, 3, 4, 5, 6))
def _conv2d_weight_grad(x, g, weight_shape, stride, padding, dilation, groups):
    def lin(w):
        return _conv_nchw(x, w, stride, padding, dilation, groups)

    (gw,) = jax.linear_transpose(lin, jax.ShapeDtypeStruct(weight_shape, x.dtype))(g)
    return gw


def conv2d(x, w, stride, padding, dilation, groups, bias=None):
    y = _conv2d(x, w, _pair(stride), _pair(padding), _pair(dilation), int(groups))
    return y if bias is None else y + bias.reshape(1, -1, 1, 1)


def conv2d_input_grad(g, w, input_shape, stride, padding, dilation, groups):
    config = (_pair(stride), _pair(padding), _pair(dilation), int(groups))
    return _conv2d_input_grad(g, w, _shape(input_shape), *config)


def conv2d_weight_grad(x, g, weight_shape, stride, padding, dilation, groups):
    config = (_pair(stride), _pair(padding), _pair(dilation), int(groups))
    return _conv2d_weight_grad(x, g, _shape(weight_shape), *config)


# ------------------------------------------------------------------------ max pooling
def _windows(shape, kernel, stride, padding):
    """(start, stop) of the strided slice of the padded image that holds entry (i, j) of
    every window, for each kernel offset in row-major order (the argmax's order)."""
    n, c, h, w = shape
    ho = (h + 2 * padding[0] - kernel[0]) // stride[0] + 1
    wo = (w + 2 * padding[1] - kernel[1]) // stride[1] + 1
    return [
        ((0, 0, i, j), (n, c, i + stride[0] * (ho - 1) + 1, j + stride[1] * (wo - 1) + 1))
        for i in range(kernel[0])
        for j in range(kernel[1])
    ]


@partial(jax.jit, static_argnums=(1, 2, 3))
def _max_pool2d(x, kernel, stride, padding):
    # The argmax is kept explicitly (first maximum in row-major window order, as NumPy and
    # PyTorch choose) instead of differentiating reduce_window max: XLA's JVP of that packs
    # value and tangent into one word and, for float64 on GPU, rounds both to float32.
    xp = lax.pad(x, jnp.asarray(-jnp.inf, x.dtype), _edges(padding))
    steps = (1, 1, *stride)
    stack = jnp.stack([lax.slice(xp, a, b, steps) for a, b in _windows(x.shape, kernel, stride, padding)])
    return jnp.max(stack, axis=0), jnp.argmax(stack, axis=0)  # stack: (kh*kw, N, C, Ho, Wo)


@partial(jax.jit, static_argnums=(2, 3, 4, 5))
def _max_pool2d_jvp(index, t, shape, kernel, stride, padding):
    tp = lax.pad(t, jnp.zeros((), t.dtype), _edges(padding))
    ty = jnp.zeros(index.shape, t.dtype)
    for k, (a, b) in enumerate(_windows(shape, kernel, stride, padding)):
        ty = ty + jnp.where(index == k, lax.slice(tp, a, b, (1, 1, *stride)), 0)
    return ty


@partial(jax.jit, static_argnums=(2, 3, 4, 5))
def _max_pool2d_vjp(index, g, shape, kernel, stride, padding):
    # the transpose of the JVP: each offset's share of g, spread back by a pad with
    # (stride - 1) interior zeros; negative edge pads crop the pooling padding again
    zero = jnp.zeros((), g.dtype)
    gx = jnp.zeros(shape, g.dtype)
    for k, (a, b) in enumerate(_windows(shape, kernel, stride, padding)):
        edges = [(a[d] - padding[d - 2], shape[d] + padding[d - 2] - b[d], stride[d - 2] - 1) for d in (2, 3)]
        gx = gx + lax.pad(jnp.where(index == k, g, zero), zero, ((0, 0, 0), (0, 0, 0), *edges))
    return gx


def max_pool2d(x, kernel, stride, padding):
    kernel, stride, padding = _pair(kernel), _pair(stride), _pair(padding)
    y, index = _max_pool2d(x, kernel, stride, padding)
    return y, (index, _shape(x.shape), kernel, stride, padding)


def max_pool2d_jvp(res, t):
    index, shape, kernel, stride, padding = res
    return _max_pool2d_jvp(index, t, shape, kernel, stride, padding)


def max_pool2d_vjp(res, g):
    index, shape, kernel, stride, padding = res
    return _max_pool2d_vjp(index, g, shape, kernel, stride, padding)


# ------------------------------------------------------------------------ avg pooling
def _avg(x, kernel, stride, padding):
    # a Python 0.0 init (concrete) lets jax recognise the sum and give it a transpose
    window_padding = ((0, 0), (0, 0), (padding[0], padding[0]), (padding[1], padding[1]))
    total = lax.reduce_window(x, 0.0, lax.add, (1, 1, *kernel), (1, 1, *stride), window_padding)
    return total / (kernel[0] * kernel[1])


@partial(jax.jit, static_argnums=(1, 2, 3))
def _avg_pool2d(x, kernel, stride, padding):
    return _avg(x, kernel, stride, padding)


@partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _avg_pool2d_vjp(g, input_shape, kernel, stride, padding):
    def lin(x):
        return _avg(x, kernel, stride, padding)

    (gx,) = jax.linear_transpose(lin, jax.ShapeDtypeStruct(input_shape, g.dtype))(g)
    return gx


def avg_pool2d(x, kernel, stride, padding):
    return _avg_pool2d(x, _pair(kernel), _pair(stride), _pair(padding))


def avg_pool2d_vjp(g, input_shape, kernel, stride, padding):
    return _avg_pool2d_vjp(g, _shape(input_shape), _pair(kernel), _pair(stride), _pair(padding))


# ------------------------------------------------------------- autodiff of Foreign blocks
def vjp(fn, params, x):
    y, pull = jax.vjp(fn, tuple(params), x)

    def pullback(g):
        gparams, gx = pull(g)
        return tuple(gparams), gx

    return y, pullback


def vjp_jvp(fn, params, x, g, t):
    """d/de [J(x + e t)^T g] at e = 0: forward-mode over reverse-mode."""
    params = tuple(params)

    def pull(x_):
        return jax.vjp(lambda z: fn(params, z), x_)[1](g)[0]

    return jax.jvp(pull, (x,), (t,))[1]


def jvp(fn, params, x, t):
    params = tuple(params)
    return jax.jvp(lambda x_: fn(params, x_), (x,), (t,))


OPS = OpSet(
    "jax",
    conv2d=conv2d,
    conv2d_input_grad=conv2d_input_grad,
    conv2d_weight_grad=conv2d_weight_grad,
    max_pool2d=max_pool2d,
    max_pool2d_vjp=max_pool2d_vjp,
    max_pool2d_jvp=max_pool2d_jvp,
    avg_pool2d=avg_pool2d,
    avg_pool2d_vjp=avg_pool2d_vjp,
    vjp=vjp,
    jvp=jvp,
    vjp_jvp=vjp_jvp,
)
