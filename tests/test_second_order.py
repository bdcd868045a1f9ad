"""Second-order inference: Hessian-vector products of the error energy (Gauss-Newton and
exact) against finite differences and autodiff, Lanczos extremes against a dense
eigendecomposition, and NewtonCG against the closed form and long EO runs."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import BACKENDS

import pccore
from pccore.inference.hessian import hvp, linearize
from test_models import MODEL_NAMES, _build, _energies, _models_for


def pytest_generate_tests(metafunc):
    if "model" in metafunc.fixturenames:
        cases = [(b, m) for b in BACKENDS for m in _models_for(b) + ["tanh_mlp"]]
        metafunc.parametrize("backend,model", cases, ids=[f"{b}-{m}" for b, m in cases])


def _setup(rt, model, loss="mse"):
    if model == "tanh_mlp":
        net = pccore.mlp(rt, [5, 6, 6, 6, 3], activation="tanh", bias=True, init="xavier_uniform", seed=1)
        rng = np.random.default_rng(3)
        x, y = rng.standard_normal((4, 5)), np.eye(3)[rng.integers(0, 3, 4)]
        hidden = [0.3 * rng.standard_normal((4, 6)) for _ in range(3)]
        net, x, y = net, rt.asarray(x), rt.asarray(y)
    else:
        net, x, y, hidden = _build(rt, model)
    step = pccore.NewtonCG().step_for(rt, net, loss)
    args = (net.params, net.blocks[0](net.kernels, net.params[0], x), y)
    return net, x, y, [rt.asarray(h) for h in hidden], step, args


def _yhat(net, x, errors):
    s = net.blocks[0](net.kernels, net.params[0], x)
    for block, p, e in zip(net.blocks[1:], net.params[1:], errors):
        s = block(net.kernels, p, s + e)
    return s


@pytest.mark.parametrize("loss", ["mse", "ce"])
def test_gauss_newton_products_match_finite_differences(backend, model, loss):
    """<w, H v> = <w, v> + <J w, H_C J v>, with J v and J w by central differences."""
    rt = pccore.runtime(backend, dtype="float64")
    net, x, y, e, step, args = _setup(rt, model, loss)
    rng = np.random.default_rng(11)
    v = [rt.asarray(rng.standard_normal(tuple(a.shape))) for a in e]
    w = [rt.asarray(rng.standard_normal(tuple(a.shape))) for a in e]
    hv = hvp(step, args, linearize(step, args, tuple(e)), v)
    h = 1e-6

    def jdir(d):
        plus = _yhat(net, x, [a + h * b for a, b in zip(e, d)])
        minus = _yhat(net, x, [a - h * b for a, b in zip(e, d)])
        return (rt.to_numpy(plus) - rt.to_numpy(minus)) / (2 * h)

    yhat = rt.to_numpy(_yhat(net, x, e))
    jv, jw = jdir(v), jdir(w)
    if loss == "mse":
        hc_jv = jv
    else:
        p = np.exp(yhat - yhat.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        hc_jv = p * jv - p * (p * jv).sum(1, keepdims=True)
    want = sum(float(np.sum(rt.to_numpy(a) * rt.to_numpy(b))) for a, b in zip(w, v)) + float(np.sum(jw * hc_jv))
    got = sum(float(np.sum(rt.to_numpy(a) * rt.to_numpy(b))) for a, b in zip(w, hv))
    assert got == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("loss", ["mse", "ce"])
def test_exact_products_match_autodiff_and_finite_differences(backend, model, loss):
    rt = pccore.runtime(backend, dtype="float64")
    net, x, y, e, step, args = _setup(rt, model, loss)
    rng = np.random.default_rng(12)
    v = [rt.asarray(rng.standard_normal(tuple(a.shape))) for a in e]
    ours = [rt.to_numpy(a) for a in hvp(step, args, linearize(step, args, tuple(e), exact=True), v, exact=True)]
    h = 1e-5  # central differences of the (separately tested) gradient
    plus = pccore.error_energy_grad(net, x, y, [a + h * b for a, b in zip(e, v)], loss)
    minus = pccore.error_energy_grad(net, x, y, [a - h * b for a, b in zip(e, v)], loss)
    for a, p, m in zip(ours, plus, minus):
        np.testing.assert_allclose(a, (rt.to_numpy(p) - rt.to_numpy(m)) / (2 * h), rtol=1e-5, atol=1e-7)
    if backend == "numpy" or model == "tanh_mlp":
        return
    _, error_e, _ = _energies(backend, net, loss)
    if backend == "torch":
        import torch

        ref = torch.func.jvp(torch.func.grad(lambda es: error_e(es, net.params, x, y)), (tuple(e),), (tuple(v),))[1]
    else:
        import jax

        ref = jax.jvp(jax.grad(lambda es: error_e(es, net.params, x, y)), (tuple(e),), (tuple(v),))[1]
    loose = backend == "jax" and rt.device.startswith("gpu")  # JAX's max-pool 2nd derivative on GPU
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, rt.to_numpy(b), rtol=1e-5 if loose else 1e-8, atol=1e-10)


def _dense(rt, step, args, e, exact):
    """Per-sample dense Hessians (batch, n, n) by products with unit vectors."""
    point = linearize(step, args, tuple(e), exact)
    shapes = [tuple(a.shape[1:]) for a in e]
    sizes = [int(np.prod(s)) for s in shapes]
    batch, n = e[0].shape[0], sum(sizes)
    cols = []
    for j in range(n):
        unit = np.zeros((batch, n))
        unit[:, j] = 1.0
        parts = np.split(unit, np.cumsum(sizes)[:-1], axis=1)
        v = [rt.asarray(p.reshape((batch, *s))) for p, s in zip(parts, shapes)]
        hv = hvp(step, args, point, v, exact)
        cols.append(np.concatenate([rt.to_numpy(a).reshape(batch, -1) for a in hv], axis=1))
    return np.stack(cols, axis=2)


@pytest.mark.parametrize("exact", [False, True])
def test_lanczos_extremes_match_a_dense_eigendecomposition(backend, exact):
    rt = pccore.runtime(backend, dtype="float64")
    net, x, y, e, step, args = _setup(rt, "tanh_mlp", "ce")
    dense = _dense(rt, step, args, e, exact)
    np.testing.assert_allclose(dense, np.swapaxes(dense, 1, 2), atol=1e-10)  # symmetric
    eig = np.linalg.eigvalsh(dense)
    spec = pccore.analytic.error_hessian_spectrum(net, x, y, e, k=dense.shape[1], exact=exact, loss="ce")
    np.testing.assert_allclose(rt.to_numpy(spec.lambda_max), eig[:, -1], rtol=1e-6)
    np.testing.assert_allclose(rt.to_numpy(spec.lambda_min), eig[:, 0], rtol=1e-5, atol=1e-8)
    assert spec.stable_lr == pytest.approx(2 / eig[:, -1].max(), rel=1e-8)
    if not exact:
        assert eig.min() >= 1 - 1e-10  # Gauss-Newton: I + J^T H_C J


def test_newton_reaches_the_closed_form_in_dy_plus_one_products(rt64):
    rng = np.random.default_rng(4)
    widths = [8] + [16] * 6 + [4]
    net = pccore.mlp(rt64, widths, bias=True, seed=2)
    net = net.with_params([p if p.ndim == 2 else p + rt64.asarray(rng.standard_normal(p.shape)) for p in net.flat_params()])
    x, y = rt64.asarray(rng.standard_normal((5, 8))), rt64.asarray(rng.standard_normal((5, 4)))
    eq = pccore.analytic.linear_equilibrium(net, x, y)
    res = pccore.NewtonCG(max_iters=1, cg_iters=widths[-1] + 1, line_search=0).run(net, x, y)
    for s, o in zip(res.states, eq.states):
        s, o = rt64.to_numpy(s), rt64.to_numpy(o)
        assert np.abs(s - o).max() <= 1e-10 * np.abs(o).max()
    spec = pccore.analytic.error_hessian_spectrum(net, x, y, k=widths[-1] + 1)
    assert float(rt64.to_numpy(spec.lambda_min).min()) == pytest.approx(1.0, rel=1e-10)


@pytest.mark.parametrize("loss", ["mse", "ce"])
def test_newton_agrees_with_a_long_eo_run(backend, loss):
    rt = pccore.runtime(backend, dtype="float64")
    net, x, y, _, _, _ = _setup(rt, "tanh_mlp", loss)
    eo = pccore.ErrorOptimization(iters=20000, lr=0.1, tol=1e-11).run(net, x, y, loss)
    gn = pccore.NewtonCG(max_iters=40, tol=1e-11).run(net, x, y, loss)
    exact = pccore.NewtonCG(max_iters=40, tol=1e-11, exact=True).run(net, x, y, loss)
    assert eo.converged and gn.converged and exact.converged
    # exact Newton converges quadratically near the solution, Gauss-Newton linearly
    assert exact.iterations <= gn.iterations < 40 and gn.iterations < eo.iterations / 5
    for a, b, c in zip(eo.states, gn.states, exact.states):
        np.testing.assert_allclose(rt.to_numpy(b), rt.to_numpy(a), atol=1e-9)
        np.testing.assert_allclose(rt.to_numpy(c), rt.to_numpy(a), atol=1e-9)


def test_newton_settings_are_checked():
    with pytest.raises(pccore.InputError, match="cg_iters must be an integer >= 1"):
        pccore.NewtonCG(cg_iters=0)
    with pytest.raises(pccore.InputError, match="exact must be True or False"):
        pccore.NewtonCG(exact=1)
    with pytest.raises(pccore.InputError, match="tol must be None or a finite number"):
        pccore.NewtonCG(tol=float("nan"))
