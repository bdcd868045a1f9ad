"""The backend kernels of ``pccore_ops`` (convolution, pooling, Foreign autodiff) against
independent oracles written here: naive float64 loops by definition, the adjoint
identities of the convolution transposes, and central finite differences."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

KERNEL_OPS = (
    "conv2d",
    "conv2d_input_grad",
    "conv2d_weight_grad",
    "max_pool2d",
    "max_pool2d_vjp",
    "max_pool2d_jvp",
    "avg_pool2d",
    "avg_pool2d_vjp",
)

# (x shape, out channels, kernel, stride, padding, dilation, groups)
CONV_CASES = [
    ((2, 3, 7, 9), 4, (3, 3), (1, 1), (0, 0), (1, 1), 1),
    ((2, 3, 8, 9), 2, (3, 2), (2, 2), (1, 1), (1, 1), 1),  # stride leaves a remainder
    ((2, 4, 8, 9), 4, (2, 3), (1, 2), (1, 0), (2, 1), 2),
    ((2, 4, 9, 7), 6, (3, 3), (2, 1), (1, 1), (2, 2), 2),
    ((2, 4, 7, 8), 4, (1, 1), (2, 2), (0, 0), (1, 1), 4),
    ((2, 2, 6, 9), 3, (3, 2), (1, 1), (1, 1), (1, 2), 1),
    ((2, 2, 5, 6), 3, (1, 2), (2, 1), (2, 2), (1, 1), 1),  # padding wider than the kernel's reach
]

# (kernel, stride, padding): kernel 2 and 3, stride 1 and 2, padding 0 and 1, every pair of
# two of these values in some case (a pairwise cover of the 8 combinations), one non-square
POOL_CASES = [
    ((2, 2), (1, 1), (0, 0)),
    ((2, 2), (2, 2), (1, 1)),
    ((3, 3), (1, 1), (1, 1)),
    ((3, 3), (2, 2), (0, 0)),
    ((3, 2), (2, 1), (1, 0)),
]
POOL_SHAPE = (2, 3, 7, 8)


# ------------------------------------------------------------------------ oracles
def _out(size, k, s, p, d=1):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _taps(in_hw, out_hw, kernel, stride, padding, dilation):
    """Every (oy, ox, a, b, iy, ix) with the input pixel inside the (unpadded) image."""
    for oy in range(out_hw[0]):
        for ox in range(out_hw[1]):
            for a in range(kernel[0]):
                for b in range(kernel[1]):
                    iy = oy * stride[0] - padding[0] + a * dilation[0]
                    ix = ox * stride[1] - padding[1] + b * dilation[1]
                    if 0 <= iy < in_hw[0] and 0 <= ix < in_hw[1]:
                        yield oy, ox, a, b, iy, ix


def naive_conv(x, w, stride, padding, dilation, groups):
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    og = o // groups
    ho, wo = _out(h, kh, stride[0], padding[0], dilation[0]), _out(wd, kw, stride[1], padding[1], dilation[1])
    y = np.zeros((n, o, ho, wo))
    for grp in range(groups):
        oc, ic = slice(grp * og, (grp + 1) * og), slice(grp * cg, (grp + 1) * cg)
        for oy, ox, a, b, iy, ix in _taps((h, wd), (ho, wo), (kh, kw), stride, padding, dilation):
            y[:, oc, oy, ox] += x[:, ic, iy, ix] @ w[oc, :, a, b].T
    return y


def naive_conv_input_grad(g, w, input_shape, stride, padding, dilation, groups):
    o, cg, kh, kw = w.shape
    og = o // groups
    gx = np.zeros(input_shape)
    for grp in range(groups):
        oc, ic = slice(grp * og, (grp + 1) * og), slice(grp * cg, (grp + 1) * cg)
        for oy, ox, a, b, iy, ix in _taps(input_shape[2:], g.shape[2:], (kh, kw), stride, padding, dilation):
            gx[:, ic, iy, ix] += g[:, oc, oy, ox] @ w[oc, :, a, b]
    return gx


def naive_conv_weight_grad(x, g, weight_shape, stride, padding, dilation, groups):
    o, cg, kh, kw = weight_shape
    og = o // groups
    gw = np.zeros(weight_shape)
    for grp in range(groups):
        oc, ic = slice(grp * og, (grp + 1) * og), slice(grp * cg, (grp + 1) * cg)
        for oy, ox, a, b, iy, ix in _taps(x.shape[2:], g.shape[2:], (kh, kw), stride, padding, dilation):
            gw[oc, :, a, b] += g[:, oc, oy, ox].T @ x[:, ic, iy, ix]
    return gw


def naive_pool(x, kernel, stride, padding, kind):
    """Max over the in-image part of each window (= -inf padding); avg = sum / (kh*kw)."""
    h, w = x.shape[-2:]
    ho, wo = _out(h, kernel[0], stride[0], padding[0]), _out(w, kernel[1], stride[1], padding[1])
    y = np.zeros(x.shape[:-2] + (ho, wo))
    for oy in range(ho):
        for ox in range(wo):
            r0, c0 = oy * stride[0] - padding[0], ox * stride[1] - padding[1]
            win = x[..., max(r0, 0) : min(r0 + kernel[0], h), max(c0, 0) : min(c0 + kernel[1], w)]
            if kind == "max":
                y[..., oy, ox] = win.max(axis=(-2, -1))
            else:
                y[..., oy, ox] = win.sum(axis=(-2, -1)) / (kernel[0] * kernel[1])
    return y


def fd_pool_jacobian_t(x, kernel, stride, padding, kind, eps=1e-2):
    """Transposed Jacobian (x.size, y.size) of the naive pool by central differences along
    every basis direction, all in one batched call. Exact up to rounding while no window's
    maximum changes: the inputs of the max pool are spaced 0.1 apart."""
    m = x.size
    basis = np.eye(m).reshape((m,) + x.shape)
    plus = naive_pool((x + eps * basis).reshape((-1,) + x.shape[1:]), kernel, stride, padding, kind)
    minus = naive_pool((x - eps * basis).reshape((-1,) + x.shape[1:]), kernel, stride, padding, kind)
    return (plus - minus).reshape(m, -1) / (2 * eps)


def tie_free(shape, seed):
    """Distinct values spaced 0.1 apart in random order (no ties, no near ties)."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) - n / 2) * 0.1


def assert_rel(got, expected, rtol):
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    scale = max(np.abs(expected).max(initial=0.0), 1e-300)
    err = np.abs(got - expected).max(initial=0.0)
    assert err <= rtol * scale, f"max abs error {err:.3e} > {rtol:.0e} * {scale:.3e}"


# ----------------------------------------------------------------------- helpers
def ops_of(rt):
    return rt.pm.hook.pccore_ops()


def no_grad(backend):
    """The torch inference loop runs under ``torch.no_grad()``: test the kernels there."""
    if backend == "torch":
        import torch

        return torch.no_grad()
    return contextlib.nullcontext()


def run(backend, fn, *arrays):
    """``fn(*arrays)`` as the core runs kernels: under ``torch.no_grad()`` on torch, inside
    ``jax.jit`` on jax (the float32 smoke test calls the jax kernels eagerly)."""
    if backend == "jax":
        import jax

        return jax.jit(fn)(*arrays)
    with no_grad(backend):
        return fn(*arrays)


def check_out(rt, arr, dtype="float64"):
    """Host copy of a backend result after checking its dtype and device."""
    assert rt.pm.hook.pccore_device_name(array=arr) == rt.device
    host = rt.to_numpy(arr)
    assert host.dtype == np.dtype(dtype), host.dtype
    return host


def conv_data(case, seed=0):
    xshape, o, kernel, stride, padding, dilation, groups = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xshape)
    w = rng.standard_normal((o, xshape[1] // groups) + kernel)
    n, _, h, wd = xshape
    ho = _out(h, kernel[0], stride[0], padding[0], dilation[0])
    wo = _out(wd, kernel[1], stride[1], padding[1], dilation[1])
    yshape = (n, o, ho, wo)
    g = rng.standard_normal(yshape)
    return x, w, g, (stride, padding, dilation, groups)


# ------------------------------------------------------------------------- tests
def test_ops_object(rt64, backend):
    ops = ops_of(rt64)
    assert ops is ops_of(rt64)
    hash(ops)
    for name in KERNEL_OPS:
        assert callable(getattr(ops, name)), name
    if backend == "numpy":
        assert not hasattr(ops, "vjp") and not hasattr(ops, "jvp")
    else:
        assert callable(ops.vjp) and callable(ops.jvp)


def _conv_id(c):
    return "k{}x{}-s{}{}-p{}{}-d{}{}-g{}".format(*c[2], *c[3], *c[4], *c[5], c[6])


@pytest.mark.parametrize("case", CONV_CASES, ids=_conv_id)
def test_conv2d_float64(rt64, backend, case):
    ops = ops_of(rt64)
    x, w, g, (stride, padding, dilation, groups) = conv_data(case)
    bx, bw, bg = rt64.asarray(x), rt64.asarray(w), rt64.asarray(g)

    def kernels(bx, bw, bg):
        return (
            ops.conv2d(bx, bw, stride, padding, dilation, groups),
            ops.conv2d_input_grad(bg, bw, x.shape, stride, padding, dilation, groups),
            ops.conv2d_weight_grad(bx, bg, w.shape, stride, padding, dilation, groups),
        )

    y, gx, gw = (check_out(rt64, a) for a in run(backend, kernels, bx, bw, bg))
    assert_rel(y, naive_conv(x, w, stride, padding, dilation, groups), 1e-10)
    assert_rel(gx, naive_conv_input_grad(g, w, x.shape, stride, padding, dilation, groups), 1e-10)
    assert_rel(gw, naive_conv_weight_grad(x, g, w.shape, stride, padding, dilation, groups), 1e-10)
    # adjoint identities: <conv(x), g> = <x, conv^T_x(g)> = <w, conv^T_w(g)>
    inner = float(np.sum(y * g))
    assert abs(inner - float(np.sum(x * gx))) <= 1e-10 * max(1.0, abs(inner))
    assert abs(inner - float(np.sum(w * gw))) <= 1e-10 * max(1.0, abs(inner))
    # inputs are never changed in place
    for host, arr in ((x, bx), (w, bw), (g, bg)):
        np.testing.assert_array_equal(rt64.to_numpy(arr), host)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: "k{}x{}-s{}{}-p{}{}".format(*c[0], *c[1], *c[2]))
def test_pool_float64(rt64, backend, case, kind):
    ops = ops_of(rt64)
    kernel, stride, padding = case
    x = tie_free(POOL_SHAPE, seed=1)
    rng = np.random.default_rng(2)
    expected_y = naive_pool(x, kernel, stride, padding, kind)
    g = rng.standard_normal(expected_y.shape)
    t = rng.uniform(-1.0, 1.0, x.shape)
    jac_t = fd_pool_jacobian_t(x, kernel, stride, padding, kind)
    bx, bg, bt = rt64.asarray(x), rt64.asarray(g), rt64.asarray(t)

    def kernels(bx, bg, bt):
        if kind == "max":
            by, res = ops.max_pool2d(bx, kernel, stride, padding)
            return by, ops.max_pool2d_vjp(res, bg), ops.max_pool2d_jvp(res, bt)
        by = ops.avg_pool2d(bx, kernel, stride, padding)
        return by, ops.avg_pool2d_vjp(bg, x.shape, kernel, stride, padding), by

    by, gx, ty = run(backend, kernels, bx, bg, bt)
    if kind == "max":
        assert_rel(check_out(rt64, ty), (t.reshape(-1) @ jac_t).reshape(expected_y.shape), 1e-10)
    assert_rel(check_out(rt64, by), expected_y, 1e-10)
    assert_rel(check_out(rt64, gx), (jac_t @ g.reshape(-1)).reshape(x.shape), 1e-10)
    for host, arr in ((x, bx), (g, bg), (t, bt)):
        np.testing.assert_array_equal(rt64.to_numpy(arr), host)


def test_float32_smoke(rt32, backend):
    ops = ops_of(rt32)
    x, w, g, (stride, padding, dilation, groups) = conv_data(CONV_CASES[3], seed=3)
    bx, bw, bg = (rt32.asarray(a) for a in (x, w, g))
    kernel, pstride, ppad = (3, 3), (2, 2), (1, 1)
    xp = tie_free(POOL_SHAPE, seed=4)
    ypool = naive_pool(xp, kernel, pstride, ppad, "max")
    gp = np.random.default_rng(5).standard_normal(ypool.shape)
    jac_max = fd_pool_jacobian_t(xp, kernel, pstride, ppad, "max")
    jac_avg = fd_pool_jacobian_t(xp, kernel, pstride, ppad, "avg")
    bxp, bgp = rt32.asarray(xp), rt32.asarray(gp)
    with no_grad(backend):
        y = ops.conv2d(bx, bw, stride, padding, dilation, groups)
        gx = ops.conv2d_input_grad(bg, bw, x.shape, stride, padding, dilation, groups)
        gw = ops.conv2d_weight_grad(bx, bg, w.shape, stride, padding, dilation, groups)
        ym, res = ops.max_pool2d(bxp, kernel, pstride, ppad)
        gxm = ops.max_pool2d_vjp(res, bgp)
        tym = ops.max_pool2d_jvp(res, bxp)
        ya = ops.avg_pool2d(bxp, kernel, pstride, ppad)
        gxa = ops.avg_pool2d_vjp(bgp, xp.shape, kernel, pstride, ppad)
    f32, conv_args = "float32", (stride, padding, dilation, groups)
    assert_rel(check_out(rt32, y, f32), naive_conv(x, w, *conv_args), 1e-5)
    assert_rel(check_out(rt32, gx, f32), naive_conv_input_grad(g, w, x.shape, *conv_args), 1e-5)
    assert_rel(check_out(rt32, gw, f32), naive_conv_weight_grad(x, g, w.shape, *conv_args), 1e-5)
    assert_rel(check_out(rt32, ym, f32), ypool, 1e-6)
    assert_rel(check_out(rt32, gxm, f32), (jac_max @ gp.reshape(-1)).reshape(xp.shape), 1e-5)
    assert_rel(check_out(rt32, tym, f32), ypool, 1e-6)  # the max pool is linear along x
    assert_rel(check_out(rt32, ya, f32), naive_pool(xp, kernel, pstride, ppad, "avg"), 1e-6)
    assert_rel(check_out(rt32, gxa, f32), (jac_avg @ gp.reshape(-1)).reshape(xp.shape), 1e-5)


def _foreign_data(seed=6):
    rng = np.random.default_rng(seed)
    params = (rng.standard_normal((3, 4)) * 0.5, rng.standard_normal(3) * 0.5)
    x = rng.standard_normal((2, 4))
    return params, x, rng.standard_normal((2, 3)), rng.standard_normal(x.shape)


def _foreign_fn(xp):
    return lambda p, x: xp.tanh(x @ p[0].T + p[1])


def test_foreign_autodiff(rt64, backend):
    ops = ops_of(rt64)
    if backend == "numpy":
        pytest.skip("numpy has no autodiff: vjp/jvp are absent (checked in test_ops_object)")
    fn = _foreign_fn(rt64.xp)
    params, x, g, t = _foreign_data()
    bparams = tuple(rt64.asarray(p) for p in params)
    bx, bg, bt = rt64.asarray(x), rt64.asarray(g), rt64.asarray(t)

    def f(p, xx):  # host -> host, for finite differences
        return rt64.to_numpy(fn(tuple(rt64.asarray(a) for a in p), rt64.asarray(xx)))

    with no_grad(backend):
        y, pullback = ops.vjp(fn, bparams, bx)
        gparams, gx = pullback(bg)
        y2, ty = ops.jvp(fn, bparams, bx, bt)
    assert isinstance(gparams, tuple) and len(gparams) == 2
    expected_y = np.tanh(x @ params[0].T + params[1])
    assert_rel(check_out(rt64, y), expected_y, 1e-12)
    assert_rel(check_out(rt64, y2), expected_y, 1e-12)

    eps = 1e-6
    assert_rel(check_out(rt64, ty), (f(params, x + eps * t) - f(params, x - eps * t)) / (2 * eps), 1e-8)

    def fd_grad(which):  # d<f, g>/d(argument `which`) element by element
        base = [np.array(params[0]), np.array(params[1]), np.array(x)]
        out = np.zeros_like(base[which])
        for i in np.ndindex(out.shape):
            plus, minus = [a.copy() for a in base], [a.copy() for a in base]
            plus[which][i] += eps
            minus[which][i] -= eps
            fp, fm = f(plus[:2], plus[2]), f(minus[:2], minus[2])
            out[i] = np.sum((fp - fm) * g) / (2 * eps)
        return out

    assert_rel(check_out(rt64, gparams[0]), fd_grad(0), 1e-8)
    assert_rel(check_out(rt64, gparams[1]), fd_grad(1), 1e-8)
    assert_rel(check_out(rt64, gx), fd_grad(2), 1e-8)
    if backend == "torch":  # the outer no_grad left nothing requiring grad behind
        assert not any(a.requires_grad for a in (y, gx, ty, *gparams))


def test_jax_ops_under_jit(rt64, backend):
    if backend != "jax":
        pytest.skip("jax only")
    import jax

    ops = ops_of(rt64)
    x, w, g, (stride, padding, dilation, groups) = conv_data(CONV_CASES[3], seed=7)
    kernel, pstride, ppad = (3, 3), (2, 1), (1, 1)
    xp = tie_free(POOL_SHAPE, seed=8)
    rng = np.random.default_rng(9)
    ypool = naive_pool(xp, kernel, pstride, ppad, "max")
    gp, tp = rng.standard_normal(ypool.shape), rng.uniform(-1.0, 1.0, xp.shape)
    params, fx, fg, ft = _foreign_data()
    fn = _foreign_fn(rt64.xp)

    @jax.jit
    def everything(x, w, g, xp, gp, tp, params, fx, fg, ft):
        y = ops.conv2d(x, w, stride, padding, dilation, groups)
        gx = ops.conv2d_input_grad(g, w, x.shape, stride, padding, dilation, groups)
        gw = ops.conv2d_weight_grad(x, g, w.shape, stride, padding, dilation, groups)
        ym, res = ops.max_pool2d(xp, kernel, pstride, ppad)
        gxm, tym = ops.max_pool2d_vjp(res, gp), ops.max_pool2d_jvp(res, tp)
        ya = ops.avg_pool2d(xp, kernel, pstride, ppad)
        gxa = ops.avg_pool2d_vjp(gp, xp.shape, kernel, pstride, ppad)
        fy, pull = ops.vjp(fn, params, fx)
        fgp, fgx = pull(fg)
        _, fty = ops.jvp(fn, params, fx, ft)
        return y, gx, gw, ym, gxm, tym, ya, gxa, fy, fgp, fgx, fty

    a = rt64.asarray
    out = everything(a(x), a(w), a(g), a(xp), a(gp), a(tp), tuple(a(p) for p in params), a(fx), a(fg), a(ft))
    y, gx, gw, ym, gxm, tym, ya, gxa, fy, fgp, fgx, fty = (jax.tree.map(rt64.to_numpy, o) for o in out)
    conv_args = (stride, padding, dilation, groups)
    assert_rel(y, naive_conv(x, w, *conv_args), 1e-10)
    assert_rel(gx, naive_conv_input_grad(g, w, x.shape, *conv_args), 1e-10)
    assert_rel(gw, naive_conv_weight_grad(x, g, w.shape, *conv_args), 1e-10)
    jac_max = fd_pool_jacobian_t(xp, kernel, pstride, ppad, "max")
    jac_avg = fd_pool_jacobian_t(xp, kernel, pstride, ppad, "avg")
    assert_rel(ym, ypool, 1e-10)
    assert_rel(gxm, (jac_max @ gp.reshape(-1)).reshape(xp.shape), 1e-10)
    assert_rel(tym, (tp.reshape(-1) @ jac_max).reshape(ypool.shape), 1e-10)
    assert_rel(ya, naive_pool(xp, kernel, pstride, ppad, "avg"), 1e-10)
    assert_rel(gxa, (jac_avg @ gp.reshape(-1)).reshape(xp.shape), 1e-10)
    # Foreign: against the analytic derivatives of tanh(x W^T + b)
    pre = fx @ params[0].T + params[1]
    d = 1.0 - np.tanh(pre) ** 2
    assert_rel(fy, np.tanh(pre), 1e-12)
    assert_rel(fgx, (fg * d) @ params[0], 1e-10)
    assert_rel(fgp[0], (fg * d).T @ fx, 1e-10)
    assert_rel(fgp[1], (fg * d).sum(axis=0), 1e-10)
    assert_rel(fty, d * (ft @ params[0].T), 1e-10)
