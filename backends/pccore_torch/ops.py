"""PyTorch kernels for ``pccore_ops``: ATen convolution and pooling, ``torch.func`` autodiff.

Every function takes NCHW images and OIHW weights; ``stride``, ``padding``, ``dilation``
and ``kernel`` are (h, w) pairs of Python ints. The input transpose is ``conv_transpose2d``;
the weight transpose calls ``aten.convolution_backward`` directly (what
``torch.nn.grad.conv2d_weight`` wraps) with an expanded one-element placeholder for the
weight, so nothing of that size is allocated. ``vjp`` / ``jvp`` are ``torch.func``
transforms, which differentiate the same inside ``torch.no_grad()`` (the inference loop
runs under it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pccore.nn.kernels import OpSet

_aten = torch.ops.aten


def conv2d(x, w, stride, padding, dilation, groups, bias=None):
    return F.conv2d(x, w, bias, stride, padding, dilation, groups)


def conv2d_input_grad(g, w, input_shape, stride, padding, dilation, groups):
    # conv_transpose2d is the transpose of conv2d; output_padding restores the rows and
    # columns the forward stride dropped (always < stride). On CPU it measured 2-27 %
    # faster than aten.convolution_backward(input only); on CUDA both are cuDNN bwd-data.
    extra = tuple(
        (size + 2 * p - d * (k - 1) - 1) - (o - 1) * s
        for size, o, k, s, p, d in zip(input_shape[2:], g.shape[2:], w.shape[2:], stride, padding, dilation)
    )
    return F.conv_transpose2d(g, w, None, stride, padding, extra, groups, dilation)


def conv2d_weight_grad(x, g, weight_shape, stride, padding, dilation, groups):
    w = g.new_empty(1).expand(weight_shape)
    return _aten.convolution_backward(
        g, x, w, None, stride, padding, dilation, False, (0, 0), groups, (False, True, False)
    )[1]


def max_pool2d(x, kernel, stride, padding):
    y, index = F.max_pool2d(x, kernel, stride, padding, return_indices=True)
    return y, (index, tuple(x.shape))


def max_pool2d_vjp(res, g):
    index, (n, c, h, w) = res
    gx = g.new_zeros((n, c, h * w))
    gx.scatter_add_(2, index.reshape(n, c, -1), g.reshape(n, c, -1))
    return gx.reshape(n, c, h, w)


def max_pool2d_jvp(res, t):
    index, (n, c, _, _) = res
    return t.reshape(n, c, -1).gather(2, index.reshape(n, c, -1)).reshape(index.shape)


def avg_pool2d(x, kernel, stride, padding):
    return F.avg_pool2d(x, kernel, stride, padding, ceil_mode=False, count_include_pad=True)


def avg_pool2d_vjp(g, input_shape, kernel, stride, padding):
    x = g.new_empty(1).expand(input_shape)  # only its shape is read
    return _aten.avg_pool2d_backward(g, x, kernel, stride, padding, False, True, None)


_ACT = {
    "relu": lambda a, s: torch.relu(a),
    "tanh": lambda a, s: torch.tanh(a),
    "sigmoid": lambda a, s: torch.sigmoid(a),
    "gelu": lambda a, s: F.gelu(a, approximate="tanh"),
    "leaky_relu": lambda a, s: F.leaky_relu(a, s[0]),
    "hard_tanh": lambda a, s: F.hardtanh(a, s[0], s[1]),
}
_ACT_VJP = {  # ATen's fused backward kernels: one pass instead of derivative-then-multiply
    "relu": lambda a, y, g, s: _aten.threshold_backward(g, y, 0),
    "tanh": lambda a, y, g, s: _aten.tanh_backward(g, y),
    "sigmoid": lambda a, y, g, s: _aten.sigmoid_backward(g, y),
    "gelu": lambda a, y, g, s: _aten.gelu_backward(g, a, approximate="tanh"),
    "leaky_relu": lambda a, y, g, s: _aten.leaky_relu_backward(g, a, s[0], False),
    "hard_tanh": lambda a, y, g, s: _aten.hardtanh_backward(g, a, s[0], s[1]),
}


def activation(name, a, settings):
    return _ACT[name](a, settings)


def activation_vjp(name, a, y, g, settings):
    return _ACT_VJP[name](a, y, g, settings)


def vjp(fn, params, x):
    y, pull = torch.func.vjp(fn, tuple(params), x)

    def pullback(g):
        gparams, gx = pull(g)
        return tuple(gparams), gx

    return y, pullback


def vjp_jvp(fn, params, x, g, t):
    """d/de [J(x + e t)^T g] at e = 0: forward-mode over reverse-mode."""
    params = tuple(params)

    def pull(x_):
        return torch.func.vjp(lambda z: fn(params, z), x_)[1](g)[0]

    return torch.func.jvp(pull, (x,), (t,))[1]


def jvp(fn, params, x, t):
    params = tuple(params)
    return torch.func.jvp(lambda x_: fn(params, x_), (x,), (t,))


OPS = OpSet(
    "torch",
    conv2d=conv2d,
    conv2d_input_grad=conv2d_input_grad,
    conv2d_weight_grad=conv2d_weight_grad,
    max_pool2d=max_pool2d,
    max_pool2d_vjp=max_pool2d_vjp,
    max_pool2d_jvp=max_pool2d_jvp,
    avg_pool2d=avg_pool2d,
    avg_pool2d_vjp=avg_pool2d_vjp,
    activation=activation,
    activation_vjp=activation_vjp,
    vjp=vjp,
    jvp=jvp,
    vjp_jvp=vjp_jvp,
)
