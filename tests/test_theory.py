"""Linear theory (pccore.analytic.theory, Trainer(method="theory")): the closed-form gradient
of the equilibrium energy F* against framework autodiff of F*, central finite differences
and the local weight gradients at a converged EO run; the state Hessian against second
differences of the SO energy; the residual closed form against a dense state-space solve;
training on dF*/dW against a manual SGD step."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import host_batch

import pccore
from pccore import analytic
from pccore.nn import Linear, Residual

CASES = ["dense-nobias", "dense-bias-prec2", "residual", "depth1"]


def _net(rt, case, seed=0):
    """A small linear net with random (non-zero) weights and biases, and its MSE loss."""
    rng = np.random.default_rng(seed)
    if case == "residual":
        net = pccore.network(rt, [Linear(6), Residual(Linear(6)), Residual(Linear(6, bias=False)), Linear(3)],
                             (5,), seed=seed)
        scale = 0.3
    else:
        widths = {"dense-nobias": [4, 6, 5, 3], "dense-bias-prec2": [4, 6, 5, 3], "depth1": [4, 3]}[case]
        net = pccore.mlp(rt, widths, bias=case != "dense-nobias", seed=seed)
        scale = 0.5
    net = net.with_params([rt.asarray(scale * rng.standard_normal(p.shape)) for p in net.flat_params()])
    return net, pccore.MSE(precision=2.0 if "prec2" in case else 1.0)


def _batch(rt, net, batch=5, seed=1):
    x, y = host_batch([net.widths[0], net.widths[-1]], batch=batch, seed=seed)
    return rt.asarray(x), rt.asarray(y)


def _host(rt, grads):
    return [rt.to_numpy(g) for block in grads for g in block]


def _rel(got, want):
    got, want = np.concatenate([g.ravel() for g in got]), np.concatenate([w.ravel() for w in want])
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


# --------------------------------------------------------------- F* gradient
def _autodiff_grads(rt, net, x, y, loss):
    """dF*/dtheta by the framework's autodiff through ``linear_equilibrium_energy``."""
    if rt.backend == "torch":
        import torch

        leaves = [p.detach().clone().requires_grad_(True) for p in net.flat_params()]
        analytic.linear_equilibrium_energy(net.with_params(leaves), x, y, loss).backward()
        return [leaf.grad.numpy() for leaf in leaves]
    if rt.backend == "jax":
        import jax

        fn = jax.grad(lambda flat: analytic.linear_equilibrium_energy(net.with_params(flat), x, y, loss))
        return [np.asarray(g) for g in fn(list(net.flat_params()))]
    pytest.skip(f"the {rt.backend} backend has no autodiff (finite differences cover it)")


@pytest.mark.parametrize("case", CASES[:3])
def test_fstar_grad_matches_autodiff(rt64, case):
    net, loss = _net(rt64, case)
    x, y = _batch(rt64, net)
    got = analytic.equilibrium_energy_grads(net, x, y, loss)
    assert [len(g) for g in got] == [len(p) for p in net.params]
    assert [tuple(g.shape) for b in got for g in b] == [tuple(p.shape) for p in net.flat_params()]
    assert _rel(_host(rt64, got), _autodiff_grads(rt64, net, x, y, loss)) < 1e-10


@pytest.mark.parametrize("case", CASES)
def test_fstar_grad_matches_finite_differences(rt64, case):
    net, loss = _net(rt64, case, seed=2)
    x, y = _batch(rt64, net, seed=3)
    flat = [rt64.to_numpy(p) for p in net.flat_params()]

    def fstar(params):
        return float(analytic.linear_equilibrium_energy(net.with_params([rt64.asarray(p) for p in params]), x, y, loss))

    h, want = 1e-5, []
    for i, p in enumerate(flat):
        fd = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            up, down = [q.copy() for q in flat], [q.copy() for q in flat]
            up[i][idx] += h
            down[i][idx] -= h
            fd[idx] = (fstar(up) - fstar(down)) / (2 * h)
        want.append(fd)
    assert _rel(_host(rt64, analytic.equilibrium_energy_grads(net, x, y, loss)), want) < 1e-8


def test_fstar_grad_is_the_local_gradient_at_a_converged_eo_run(rt64):
    """Envelope theorem, by an independent route: iterate EO to the equilibrium, then take
    the block-local weight gradients there (batch sums, so / batch)."""
    net, _ = _net(rt64, "residual", seed=4)
    loss = pccore.MSE(precision=2.0)
    x, y = _batch(rt64, net, seed=5)
    res = pccore.ErrorOptimization(iters=4000, lr=0.1, tol=1e-13).run(net, x, y, loss=loss)
    local = pccore.local_weight_grads(net, x, y, res.states, loss)
    want = [g / 5 for g in _host(rt64, local)]
    assert _rel(_host(rt64, analytic.equilibrium_energy_grads(net, x, y, loss)), want) < 1e-8
    # not vacuous: the gradient at the feed-forward states differs
    ff = pccore.local_weight_grads(net, x, y, net.feedforward_states(x), loss)
    assert _rel([g / 5 for g in _host(rt64, ff)], want) > 1e-2


# ------------------------------------------------------------ state Hessian
def _fd_hessian(rt, net, x, y, loss):
    """Second central differences of the SO energy of one sample at the feed-forward
    states. E is quadratic in the states, so a step of 0.5 is exact up to rounding."""
    dims = net.widths[1:-1]
    base = np.concatenate([rt.to_numpy(s)[0] for s in net.feedforward_states(x)])
    offs = np.concatenate([[0], np.cumsum(dims)])
    n, h = int(offs[-1]), 0.5

    def energy(z):
        states = [rt.asarray(z[None, offs[l]:offs[l + 1]]) for l in range(len(dims))]
        return float(pccore.state_energy(net, x, y, states, loss))

    H = np.zeros((n, n))
    for i in range(n):
        for j in range(i, n):
            val = 0.0
            for si, sj, sign in ((1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1)):
                z = base.copy()
                z[i] += si * h
                z[j] += sj * h
                val += sign * energy(z)
            H[i, j] = H[j, i] = val / (4 * h * h)
    return H


@pytest.mark.parametrize("case", ["dense-bias-prec2", "residual"])
def test_state_hessian_matches_second_differences(rt64, case):
    net, loss = _net(rt64, case, seed=6)
    x, y = _batch(rt64, net, batch=1, seed=7)
    H = analytic.state_hessian(net, x, loss)
    D = sum(net.widths[1:-1])
    assert tuple(H.shape) == (D, D)
    np.testing.assert_allclose(rt64.to_numpy(H), _fd_hessian(rt64, net, x, y, loss), rtol=0, atol=1e-11)
    eig = rt64.to_numpy(rt64.xp.linalg.eigvalsh(H))
    assert eig.min() > 0  # positive definite: a unique equilibrium
    assert analytic.state_hessian(net).shape == H.shape  # x only validated


@pytest.mark.parametrize("case", ["dense-bias-prec2", "residual"])
def test_minimiser_of_the_quadratic_is_the_linear_equilibrium(rt64, case):
    """E(s) = E(0) + g0 . s + 1/2 s^T H s per sample, so s* = -H^{-1} g0 (g0: dE/ds at s = 0)."""
    net, loss = _net(rt64, case, seed=8)
    x, y = _batch(rt64, net, batch=5, seed=9)
    zeros = [rt64.asarray(np.zeros((5, d))) for d in net.widths[1:-1]]
    g0 = np.concatenate([rt64.to_numpy(g) for g in pccore.state_energy_grad(net, x, y, zeros, loss)], axis=1)
    s = -np.linalg.solve(rt64.to_numpy(analytic.state_hessian(net, loss=loss)), g0.T).T
    eq = analytic.linear_equilibrium(net, x, y, loss)
    np.testing.assert_allclose(s, np.concatenate([rt64.to_numpy(e) for e in eq.states], axis=1),
                               rtol=1e-10, atol=1e-11)


def test_depth_one_state_hessian_is_empty(rt64):
    net, loss = _net(rt64, "depth1")
    assert tuple(analytic.state_hessian(net, loss=loss).shape) == (0, 0)


def test_residual_closed_form_matches_a_dense_state_space_solve(rt64):
    """The normal equations of E(s) built on the host from the raw weights (A = I + W for
    Residual blocks), solved with the backend's xp.linalg.solve: states, F* per sample and
    the system matrix (= the state Hessian) match the closed form."""
    net, _ = _net(rt64, "residual", seed=10)
    loss = pccore.MSE(precision=1.5)
    x, y = _batch(rt64, net, seed=11)
    p = [rt64.to_numpy(q) for q in net.flat_params()]  # W0 b0 | W1 b1 | W2 | W3 b3
    As = [p[0], np.eye(6) + p[2], np.eye(6) + p[4], p[5]]
    bs = [p[1], p[3], np.zeros(6), p[6]]
    xh, yh, lam = rt64.to_numpy(x), rt64.to_numpy(y), loss.precision
    # residual rows: e_l = s_l - A_l s_{l-1} - b_l (l = 0, 1, 2), sqrt(lam) (A_3 s_2 + b_3 - y)
    B, C = np.zeros((21, 18)), np.zeros((5, 21))
    for l in range(3):
        B[6 * l:6 * l + 6, 6 * l:6 * l + 6] = np.eye(6)
        if l > 0:
            B[6 * l:6 * l + 6, 6 * (l - 1):6 * l] = -As[l]
        C[:, 6 * l:6 * l + 6] = bs[l]
    C[:, :6] += xh @ As[0].T
    B[18:, 12:] = np.sqrt(lam) * As[3]
    C[:, 18:] = np.sqrt(lam) * (yh - bs[3])
    xp = rt64.xp
    H, rhs = rt64.asarray(B.T @ B), rt64.asarray(B.T @ C.T)
    Z = rt64.to_numpy(xp.linalg.solve(H, rhs)).T  # (batch, 18)
    energy = 0.5 * np.sum((Z @ B.T - C) ** 2, axis=1)
    eq = analytic.linear_equilibrium(net, x, y, loss)
    np.testing.assert_allclose(np.concatenate([rt64.to_numpy(s) for s in eq.states], axis=1), Z,
                               rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(rt64.to_numpy(eq.energy), energy, rtol=1e-10)
    np.testing.assert_allclose(rt64.to_numpy(analytic.state_hessian(net, x, loss)), B.T @ B, rtol=0, atol=1e-12)


# ---------------------------------------------------------------- training
def _teacher_data(n=5, seed=12):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    y = (x @ rng.standard_normal((4, 3)) + 0.1 * rng.standard_normal((n, 3))).astype(np.float32)
    return pccore.Dataset("teacher", x, y, x[:8], y[:8])


def test_theory_step_is_an_sgd_step_on_the_fstar_gradient(rt64):
    net, loss = _net(rt64, "dense-bias-prec2", seed=13)
    x, y = _batch(rt64, net, seed=14)
    lr = 0.05
    for compile in (True, False):
        session = pccore.Trainer("theory", optimizer="sgd", lr=lr, batch_size=5, loss=loss, runtime=rt64,
                                 progress=False, compile=compile).session(net)
        assert session.eager == (not compile)
        step_loss, energy = session.step(x, y)
        grads = _host(rt64, analytic.equilibrium_energy_grads(net, x, y, loss))
        want = [rt64.to_numpy(p) - lr * g for p, g in zip(net.flat_params(), grads)]
        for got, w in zip(session.params, want):
            np.testing.assert_allclose(rt64.to_numpy(got), w, rtol=0, atol=1e-12)
        ff = float(loss.value(rt64.xp, net.forward(x), y)) / 5
        assert float(step_loss) == pytest.approx(ff, rel=1e-12)
        assert float(energy) == pytest.approx(float(analytic.linear_equilibrium_energy(net, x, y, loss)), rel=1e-12)


def test_fit_with_theory_decreases_fstar(rt64):
    data = _teacher_data()
    net = pccore.mlp(rt64, [4, 6, 5, 3], bias=True, seed=15)
    trainer = pccore.Trainer("theory", optimizer="sgd", lr=0.05, batch_size=5, runtime=rt64, progress=False)
    trained, history = trainer.fit(net, data, epochs=6)
    x, y = rt64.asarray(data.x_train), rt64.asarray(data.y_train)
    assert history.energy[0] == pytest.approx(float(analytic.linear_equilibrium_energy(net, x, y)), rel=1e-10)
    assert len(history.energy) == 6 and all(b < a for a, b in zip(history.energy, history.energy[1:]))
    assert float(analytic.linear_equilibrium_energy(trained, x, y)) < history.energy[-1]


def test_bad_uses_of_theory_raise(rt64):
    x, y = _batch(rt64, pccore.mlp(rt64, [4, 3]))
    with pytest.raises(pccore.InputError, match=r"inference must be None for method='theory'"):
        pccore.Trainer("theory", inference=pccore.ErrorOptimization(iters=5, lr=0.1))
    tanh = pccore.mlp(rt64, [4, 6, 3], activation="tanh")
    data = _teacher_data()
    with pytest.raises(pccore.InputError, match=r"method='theory'.*block 0"):
        pccore.Trainer("theory", batch_size=5, runtime=rt64, progress=False).fit(tanh, data)
    linear = pccore.mlp(rt64, [4, 6, 3])
    with pytest.raises(pccore.InputError, match=r"method='theory'.*'mse' loss"):
        pccore.Trainer("theory", loss="ce", runtime=rt64, progress=False).session(linear)
    with pytest.raises(pccore.InputError, match=r"block 0"):
        analytic.state_hessian(tanh)
    with pytest.raises(pccore.InputError, match=r"'mse' loss"):
        analytic.equilibrium_energy_grads(linear, x, y, "ce")
    with pytest.raises(pccore.InputError, match=r"x must have shape"):
        analytic.state_hessian(linear, rt64.asarray(np.zeros((2, 5))))
