"""Energies and their closed-form gradients, checked in float64 against central finite
differences (every backend) and against the framework's own autodiff of the energy
functions (torch.func.grad on torch, jax.grad on jax; finite differences on numpy)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import host_batch

import pccore

WIDTHS = [3, 4, 5, 2]
BATCH = 3
# (hidden activation, output activation, bias, loss)
CONFIGS = [
    ("linear", "linear", False, "mse"),
    ("linear", "linear", True, "mse2"),
    ("relu", "linear", True, "mse"),
    ("tanh", "sigmoid", True, "mse"),
    ("sigmoid", "linear", True, "ce"),
    ("gelu", "tanh", True, "ce"),
]
IDS = ["-".join(str(v) for v in c) for c in CONFIGS]


def _loss(name):
    return pccore.MSE(precision=2.0) if name == "mse2" else name


def _setup(rt, config, seed=0):
    """A small net with non-zero biases, a batch, and random (off-equilibrium) hidden values."""
    act, out, bias, loss = config
    net = pccore.mlp(rt, WIDTHS, activation=act, output_activation=out, bias=bias,
                     init="xavier_uniform", gain=1.5, seed=seed)
    rng = np.random.default_rng(seed + 100)
    params = [rt.to_numpy(p) + (0.3 * rng.standard_normal(p.shape) if p.ndim == 1 else 0.0)
              for p in net.flat_params()]
    net = net.with_params([rt.asarray(p) for p in params])
    x, y = host_batch(WIDTHS, batch=BATCH, seed=seed, onehot=loss == "ce")
    hidden = [0.5 * rng.standard_normal((BATCH, w)) for w in WIDTHS[1:-1]]
    return net, rt.asarray(x), rt.asarray(y), hidden, _loss(loss)


def _fd_grad(f, values, h=1e-6):
    """Central finite differences of scalar f(list of host arrays) w.r.t. every entry."""
    grads = []
    for k, v in enumerate(values):
        g = np.zeros_like(v)
        for idx in np.ndindex(v.shape):
            plus = [u.copy() for u in values]
            minus = [u.copy() for u in values]
            plus[k][idx] += h
            minus[k][idx] -= h
            g[idx] = (f(plus) - f(minus)) / (2 * h)
        grads.append(g)
    return grads


def _assert_grads(rt, got, expected, rtol=1e-6, atol=1e-7):
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        g = rt.to_numpy(g) if not isinstance(g, np.ndarray) else g
        assert g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol)


# ---------------------------------------------------------- energy functions
def _state_f(rt, net, x, y, loss):
    return lambda hs: float(pccore.state_energy(net, x, y, [rt.asarray(h) for h in hs], loss))


def _error_f(rt, net, x, y, loss):
    return lambda es: float(pccore.error_energy(net, x, y, [rt.asarray(e) for e in es], loss))


def _param_f(rt, net, x, y, states, loss):
    return lambda ps: float(pccore.state_energy(net.with_params([rt.asarray(p) for p in ps]), x, y, states, loss))


# -------------------------------------------------- finite differences (all)
@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_state_energy_grad_matches_finite_differences(rt64, config):
    net, x, y, hidden, loss = _setup(rt64, config)
    got = pccore.state_energy_grad(net, x, y, [rt64.asarray(h) for h in hidden], loss)
    _assert_grads(rt64, got, _fd_grad(_state_f(rt64, net, x, y, loss), hidden))


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_error_energy_grad_matches_finite_differences(rt64, config):
    net, x, y, hidden, loss = _setup(rt64, config)
    got = pccore.error_energy_grad(net, x, y, [rt64.asarray(e) for e in hidden], loss)
    _assert_grads(rt64, got, _fd_grad(_error_f(rt64, net, x, y, loss), hidden))


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_local_weight_grads_match_finite_differences(rt64, config):
    net, x, y, hidden, loss = _setup(rt64, config)
    states = [rt64.asarray(h) for h in hidden]
    got = net.structure.flatten(pccore.local_weight_grads(net, x, y, states, loss))
    params = [rt64.to_numpy(p) for p in net.flat_params()]
    assert len(got) == len(params) == (6 if config[2] else 3)
    _assert_grads(rt64, got, _fd_grad(_param_f(rt64, net, x, y, states, loss), params))


# ------------------------------------------------------------------ autodiff
def _autodiff(backend):
    """Gradient transform of the framework: f(list of arrays) -> list of gradients."""
    if backend == "torch":
        import torch

        return lambda f: torch.func.grad(f)
    if backend == "jax":
        import jax

        return lambda f: jax.grad(f)
    return None


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_gradients_match_autodiff(rt64, config):
    """The closed forms equal the framework's autodiff of the energy functions themselves."""
    net, x, y, hidden, loss = _setup(rt64, config, seed=1)
    values = [rt64.asarray(h) for h in hidden]
    grad = _autodiff(rt64.backend)
    if grad is None:  # numpy has no autodiff: the closed forms against finite differences
        grad = lambda f: lambda vs: [rt64.asarray(g) for g in _fd_grad(
            lambda hs: float(f([rt64.asarray(h) for h in hs])), [rt64.to_numpy(v) for v in vs])]
    ad_state = grad(lambda s: pccore.state_energy(net, x, y, list(s), loss))(values)
    ad_error = grad(lambda e: pccore.error_energy(net, x, y, list(e), loss))(values)
    ad_param = grad(lambda p: pccore.state_energy(net.with_params(list(p)), x, y, values, loss))(list(net.flat_params()))
    expected = lambda gs: [rt64.to_numpy(g) for g in gs]
    tol = (1e-6, 1e-7) if rt64.backend == "numpy" else (1e-9, 1e-11)
    _assert_grads(rt64, pccore.state_energy_grad(net, x, y, values, loss), expected(ad_state), *tol)
    _assert_grads(rt64, pccore.error_energy_grad(net, x, y, values, loss), expected(ad_error), *tol)
    _assert_grads(rt64, net.structure.flatten(pccore.local_weight_grads(net, x, y, values, loss)),
                  expected(ad_param), *tol)


# ------------------------------------------------------------ consistency
@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_state_and_error_forms_agree(rt64, config):
    """E_state(s(e)) = E_error(e), and errors_from_states inverts states_from_errors."""
    net, x, y, hidden, loss = _setup(rt64, config)
    errors = [rt64.asarray(e) for e in hidden]
    states = pccore.states_from_errors(net, x, errors)
    back = pccore.errors_from_states(net, x, states)
    _assert_grads(rt64, back, [rt64.to_numpy(e) for e in errors], 1e-12, 1e-12)
    assert float(pccore.state_energy(net, x, y, states, loss)) == pytest.approx(
        float(pccore.error_energy(net, x, y, errors, loss)), rel=1e-12)


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_zero_errors_are_the_feedforward_pass(rt64, config):
    """At e = 0 the energy is the output loss of the feed-forward prediction."""
    net, x, y, hidden, loss = _setup(rt64, config)
    zeros = [rt64.xp.zeros_like(s) for s in net.feedforward_states(x)]
    loss_obj = pccore.get_loss(loss)
    expected = float(loss_obj.value(rt64.xp, net.forward(x), y))
    assert float(pccore.error_energy(net, x, y, zeros, loss)) == pytest.approx(expected, rel=1e-12)
    ff = net.feedforward_states(x)
    assert float(pccore.state_energy(net, x, y, ff, loss)) == pytest.approx(expected, rel=1e-12)
    # only the output error is non-zero there, so the hidden error gradient is J^T dC/dyhat != 0
    assert any(np.abs(rt64.to_numpy(g)).max() > 1e-3 for g in pccore.error_energy_grad(net, x, y, zeros, loss))


def test_energy_value_by_hand(rt64):
    """state_energy = sum_k 1/2 ||s_k - f_k(s_{k-1})||^2 + 1/2 ||f_L(s_{L-1}) - y||^2, in NumPy."""
    net, x, y, hidden, loss = _setup(rt64, ("tanh", "linear", True, "mse"))
    p = [rt64.to_numpy(q) for q in net.flat_params()]
    xh, yh = rt64.to_numpy(x), rt64.to_numpy(y)
    s1, s2 = hidden
    e1 = s1 - np.tanh(xh @ p[0].T + p[1])
    e2 = s2 - np.tanh(s1 @ p[2].T + p[3])
    out = s2 @ p[4].T + p[5]
    expected = 0.5 * (np.sum(e1**2) + np.sum(e2**2) + np.sum((out - yh) ** 2))
    got = pccore.state_energy(net, x, y, [rt64.asarray(h) for h in hidden])
    assert tuple(got.shape) == ()
    assert float(got) == pytest.approx(expected, rel=1e-12)
    assert pccore.local_energy is pccore.state_energy


def test_energies_in_float32(rt32):
    net, x, y, hidden, loss = _setup(rt32, ("tanh", "linear", True, "mse"))
    states = [rt32.asarray(h) for h in hidden]
    e = pccore.state_energy(net, x, y, states)
    assert str(e.dtype).endswith("float32")
    assert all(str(g.dtype).endswith("float32") for g in pccore.state_energy_grad(net, x, y, states))
    assert all(str(g.dtype).endswith("float32")
               for g in net.structure.flatten(pccore.local_weight_grads(net, x, y, states)))
