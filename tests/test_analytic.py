"""The closed-form equilibrium of deep linear networks (pccore.analytic), checked three ways:
both energy gradients vanish there, its energy equals the sum of per-sample F*, and it
equals an independent host solution of the full state-form least-squares problem."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import host_batch

import pccore
from pccore import analytic

CASES = [  # (widths, bias, precision)
    ([4, 5, 3], False, 1.0),
    ([4, 6, 5, 3], True, 1.0),
    ([4, 6, 5, 3], True, 2.0),
    ([5, 3, 7, 4, 2], True, 0.5),  # a bottleneck wider than the output
]
IDS = [f"{'x'.join(map(str, w))}-{'bias' if b else 'nobias'}-prec{p:g}" for w, b, p in CASES]


def _net(rt, widths, bias, seed=0):
    """A linear net with random (non-zero) biases."""
    net = pccore.mlp(rt, widths, bias=bias, init="normal", gain=1.2, seed=seed)
    rng = np.random.default_rng(seed + 1)
    return net.with_params([p + rt.asarray(rng.standard_normal(p.shape)) if p.ndim == 1 else p
                            for p in net.flat_params()])


def _loss(precision):
    return pccore.MSE(precision=precision)


def host_equilibrium(params, bias, x, y, precision):
    """Independent solution on the host: minimise, per sample, the state-form energy
    sum_l 1/2 ||s_l - W_l s_{l-1} - b_l||^2 + lambda/2 ||W_L s_{L-1} + b_L - y||^2
    over the stacked hidden states z = (s_1, ..., s_{L-1}) by least squares ||A z - c||.
    Returns (states per layer (batch, d_l), energy per sample (batch,))."""
    step = 2 if bias else 1
    Ws = params[::step]
    bs = params[1::2] if bias else [np.zeros(W.shape[0]) for W in Ws]
    dims = [W.shape[0] for W in Ws[:-1]]
    offs = np.concatenate([[0], np.cumsum(dims)])
    n, rows = offs[-1], sum(dims) + Ws[-1].shape[0]
    A = np.zeros((rows, n))
    for l, d in enumerate(dims):  # residual row block l: s_l - W_l s_{l-1}
        A[offs[l]:offs[l + 1], offs[l]:offs[l + 1]] = np.eye(d)
        if l > 0:
            A[offs[l]:offs[l + 1], offs[l - 1]:offs[l]] = -Ws[l]
    w = np.sqrt(precision)
    A[n:, offs[-2]:offs[-1]] = w * Ws[-1]
    C = np.zeros((x.shape[0], rows))  # right-hand side, one row per sample
    C[:, :dims[0]] = x @ Ws[0].T + bs[0]
    for l in range(1, len(dims)):
        C[:, offs[l]:offs[l + 1]] = bs[l]
    C[:, n:] = w * (y - bs[-1])
    Z, *_ = np.linalg.lstsq(A, C.T, rcond=None)
    resid = A @ Z - C.T
    energy = 0.5 * np.sum(resid**2, axis=0)
    return [Z[offs[l]:offs[l + 1]].T for l in range(len(dims))], energy


@pytest.mark.parametrize("widths, bias, precision", CASES, ids=IDS)
def test_matches_independent_host_solution(rt64, widths, bias, precision):
    net = _net(rt64, widths, bias)
    xh, yh = host_batch(widths, batch=5, seed=3)
    eq = analytic.linear_equilibrium(net, rt64.asarray(xh), rt64.asarray(yh), _loss(precision))
    states, energy = host_equilibrium([rt64.to_numpy(p) for p in net.flat_params()], bias, xh, yh, precision)
    assert len(eq.states) == len(eq.errors) == len(widths) - 2
    for got, want in zip(eq.states, states):
        np.testing.assert_allclose(rt64.to_numpy(got), want, rtol=1e-9, atol=1e-10)
    assert tuple(eq.energy.shape) == (5,)
    np.testing.assert_allclose(rt64.to_numpy(eq.energy), energy, rtol=1e-9, atol=1e-12)
    # the equilibrium is a real improvement over the feed-forward pass
    ff_energy = 0.5 * precision * np.sum((rt64.to_numpy(net.forward(rt64.asarray(xh))) - yh) ** 2, axis=1)
    assert np.all(energy < ff_energy)


@pytest.mark.parametrize("widths, bias, precision", CASES, ids=IDS)
def test_gradients_vanish_and_energy_is_sum_of_F_star(rt64, widths, bias, precision):
    net = _net(rt64, widths, bias, seed=4)
    xh, yh = host_batch(widths, batch=6, seed=5)
    x, y, loss = rt64.asarray(xh), rt64.asarray(yh), _loss(precision)
    eq = analytic.linear_equilibrium(net, x, y, loss)
    for g in pccore.state_energy_grad(net, x, y, eq.states, loss):
        np.testing.assert_allclose(rt64.to_numpy(g), 0.0, atol=1e-10)
    for g in pccore.error_energy_grad(net, x, y, eq.errors, loss):
        np.testing.assert_allclose(rt64.to_numpy(g), 0.0, atol=1e-10)
    total = float(rt64.xp.sum(eq.energy))
    assert float(pccore.state_energy(net, x, y, eq.states, loss)) == pytest.approx(total, rel=1e-10)
    assert float(pccore.error_energy(net, x, y, eq.errors, loss)) == pytest.approx(total, rel=1e-10)
    mean = analytic.linear_equilibrium_energy(net, x, y, loss)
    assert tuple(mean.shape) == ()
    assert float(mean) == pytest.approx(total / 6, rel=1e-12)


def test_gradients_do_not_vanish_off_equilibrium(rt64):
    """Guard against a vacuous check: nudging the equilibrium makes the gradient non-zero."""
    net = _net(rt64, [4, 6, 5, 3], True)
    xh, yh = host_batch([4, 6, 5, 3], batch=4, seed=1)
    x, y = rt64.asarray(xh), rt64.asarray(yh)
    eq = analytic.linear_equilibrium(net, x, y)
    nudged = [s + 1e-2 for s in eq.states]
    assert max(np.abs(rt64.to_numpy(g)).max() for g in pccore.state_energy_grad(net, x, y, nudged)) > 1e-3
    assert float(pccore.state_energy(net, x, y, nudged)) > float(rt64.xp.sum(eq.energy))


def test_parts_of_the_equilibrium(rt64):
    """S = I/lambda + sum_k P_k P_k^T, residual = y - yhat_ff, s_k = f_k(s_{k-1}) + e_k."""
    widths = [4, 6, 5, 3]
    net = _net(rt64, widths, True)
    xh, yh = host_batch(widths, batch=4, seed=2)
    x, y = rt64.asarray(xh), rt64.asarray(yh)
    eq = analytic.linear_equilibrium(net, x, y, pccore.MSE(precision=2.0))
    W1, W2, W3 = (rt64.to_numpy(W) for W in net.flat_params()[::2])
    S = np.eye(3) / 2.0 + W3 @ W3.T + (W3 @ W2) @ (W3 @ W2).T
    np.testing.assert_allclose(rt64.to_numpy(eq.S), S, rtol=1e-12)
    np.testing.assert_allclose(rt64.to_numpy(eq.residual), yh - rt64.to_numpy(net.forward(x)), rtol=1e-12)
    P = analytic.error_to_output_maps(net)
    assert [tuple(p.shape) for p in P] == [(3, 6), (3, 5)]
    again = pccore.states_from_errors(net, x, eq.errors)
    for a, b in zip(again, eq.states):
        np.testing.assert_allclose(rt64.to_numpy(a), rt64.to_numpy(b), rtol=1e-12)


def test_depth_one_network(rt64):
    """No hidden layer: the equilibrium is the feed-forward pass, F* = lambda/2 ||r||^2."""
    net = _net(rt64, [4, 3], True)
    xh, yh = host_batch([4, 3], batch=4, seed=2)
    eq = analytic.linear_equilibrium(net, rt64.asarray(xh), rt64.asarray(yh), pccore.MSE(precision=2.0))
    assert eq.states == [] and eq.errors == []
    r = yh - rt64.to_numpy(net.forward(rt64.asarray(xh)))
    np.testing.assert_allclose(rt64.to_numpy(eq.energy), np.sum(r * r, axis=1), rtol=1e-12)


def test_float32(rt32):
    widths = [4, 6, 5, 3]
    net = _net(rt32, widths, True)
    xh, yh = host_batch(widths, batch=5, seed=3)
    eq = analytic.linear_equilibrium(net, rt32.asarray(xh), rt32.asarray(yh))
    assert str(eq.energy.dtype).endswith("float32")
    params64 = [rt32.to_numpy(p).astype(np.float64) for p in net.flat_params()]
    states, energy = host_equilibrium(params64, True, xh, yh, 1.0)
    np.testing.assert_allclose(rt32.to_numpy(eq.energy), energy, rtol=1e-4, atol=1e-5)
    for got, want in zip(eq.states, states):
        np.testing.assert_allclose(rt32.to_numpy(got), want, rtol=1e-4, atol=1e-4)


def test_closed_form_with_linear_residual_blocks(rt64):
    """f(s) = (I + W) s + b blocks: the closed form with A = I + W zeroes both gradients and
    matches a long EO run; non-linear residuals are refused."""
    from pccore.nn import Linear, Residual

    rng = np.random.default_rng(7)
    net = pccore.network(rt64, [Linear(6), Residual(Linear(6)), Residual(Linear(6, bias=False)), Linear(3)],
                         (5,), seed=2)
    net = net.with_params([rt64.asarray(0.3 * rng.standard_normal(p.shape)) for p in net.flat_params()])
    x, y = rt64.asarray(rng.standard_normal((4, 5))), rt64.asarray(rng.standard_normal((4, 3)))
    eq = pccore.analytic.linear_equilibrium(net, x, y)
    for g in pccore.state_energy_grad(net, x, y, eq.states) + pccore.error_energy_grad(net, x, y, eq.errors):
        assert float(np.abs(rt64.to_numpy(g)).max()) < 1e-12
    assert float(pccore.state_energy(net, x, y, eq.states)) == pytest.approx(float(np.sum(rt64.to_numpy(eq.energy))), rel=1e-12)
    res = pccore.ErrorOptimization(iters=5000, lr=0.1, tol=1e-12).run(net, x, y)
    for s, o in zip(res.states, eq.states):
        np.testing.assert_allclose(rt64.to_numpy(s), rt64.to_numpy(o), atol=1e-9)
    bad = pccore.network(rt64, [Linear(6), Residual(Linear(6), activation="tanh"), Linear(3)], (5,))
    with pytest.raises(pccore.InputError, match=r"block 1 is Residual"):
        pccore.analytic.linear_equilibrium(bad, x, y)
