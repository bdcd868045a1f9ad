"""Networks: mlp construction (widths, inits, biases, activations), the feed-forward pass
and states, parameters, and the two output losses — checked against plain NumPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import batch_on, host_batch

import pccore
from pccore.host import draw_weights

WIDTHS = [4, 6, 5, 3]
ACTS = ["linear", "relu", "leaky_relu", "tanh", "hard_tanh", "sigmoid", "gelu"]
INITS = ["orthogonal", "xavier_uniform", "kaiming_normal", "normal", "uniform"]


def _np_act(name, a):
    """Independent NumPy reference of each activation (gelu: tanh approximation)."""
    if name == "linear":
        return a
    if name == "relu":
        return np.where(a > 0, a, 0.0)
    if name == "leaky_relu":
        return np.where(a > 0, a, 0.01 * a)
    if name == "hard_tanh":
        return np.minimum(np.maximum(a, -1.0), 1.0)
    if name == "tanh":
        return np.tanh(a)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-a))
    c = math.sqrt(2.0 / math.pi)
    return 0.5 * a * (1.0 + np.tanh(c * (a + 0.044715 * a**3)))


def _host_params(rt, net):
    return [rt.to_numpy(p) for p in net.flat_params()]


# ------------------------------------------------------------ construction
def test_mlp_shapes_and_params(rt64):
    net = pccore.mlp(rt64, WIDTHS, bias=True)
    assert net.widths == WIDTHS and net.depth == 3
    assert [tuple(p[0].shape) for p in net.params] == [(6, 4), (5, 6), (3, 5)]
    assert net.structure.shapes == ((6,), (5,), (3,)) and net.structure.input_shape == (4,)
    shapes = [tuple(p.shape) for p in net.flat_params()]
    assert shapes == [(6, 4), (6,), (5, 6), (5,), (3, 5), (3,)]
    for b in net.flat_params()[1::2]:
        np.testing.assert_array_equal(rt64.to_numpy(b), 0.0)
    assert all(pccore.checks.framework_of(p) == rt64.backend for p in net.flat_params())
    assert all(str(p.dtype).endswith("float64") for p in net.flat_params())


def test_mlp_without_bias_has_weights_only(rt32):
    net = pccore.mlp(rt32, WIDTHS)
    assert len(net.flat_params()) == 3
    assert all(len(p) == 1 for p in net.params)
    assert all(str(p.dtype).endswith("float32") for p in net.flat_params())


def test_activations_hidden_and_output(rt64):
    net = pccore.mlp(rt64, WIDTHS, activation="tanh", output_activation="sigmoid")
    assert [b.ops[1].name for b in net.blocks] == ["tanh", "tanh", "sigmoid"]


def test_with_params_round_trip(rt64):
    net = pccore.mlp(rt64, WIDTHS, activation="relu", bias=True, seed=3)
    doubled = net.with_params([2 * p for p in net.flat_params()])
    assert [b.ops[1].name for b in doubled.blocks] == ["relu", "relu", "linear"]
    assert doubled.structure == net.structure
    for p, q in zip(_host_params(rt64, net), _host_params(rt64, doubled)):
        np.testing.assert_allclose(q, 2 * p)


def test_seed_controls_the_weights(rt64):
    a = _host_params(rt64, pccore.mlp(rt64, WIDTHS, seed=1))
    b = _host_params(rt64, pccore.mlp(rt64, WIDTHS, seed=1))
    c = _host_params(rt64, pccore.mlp(rt64, WIDTHS, seed=2))
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p, q)
    assert not np.allclose(a[0], c[0])


# -------------------------------------------------------------------- inits
def _weights(rt, init, widths, gain=1.0, seed=0):
    return _host_params(rt, pccore.mlp(rt, widths, init=init, gain=gain, seed=seed))


@pytest.mark.parametrize("shape", [(30, 50), (50, 30), (40, 40)])
def test_orthogonal_init(rt64, shape):
    d_out, d_in = shape
    (W,) = _weights(rt64, "orthogonal", [d_in, d_out], gain=1.5)
    small = min(shape)
    gram = W @ W.T if d_out <= d_in else W.T @ W
    np.testing.assert_allclose(gram, 1.5**2 * np.eye(small), atol=1e-12)


@pytest.mark.parametrize("init, expected_std, bound", [
    ("xavier_uniform", math.sqrt(6 / 400) / math.sqrt(3), math.sqrt(6 / 400)),
    ("uniform", 1 / math.sqrt(200) / math.sqrt(3), 1 / math.sqrt(200)),
    ("kaiming_normal", math.sqrt(2 / 200), None),
    ("normal", 1 / math.sqrt(200), None),
])
def test_random_init_statistics(rt64, init, expected_std, bound):
    (W,) = _weights(rt64, init, [200, 200], gain=2.0)  # 40 000 draws
    assert W.shape == (200, 200)
    assert abs(W.mean()) < 0.05 * 2 * expected_std
    assert W.std() == pytest.approx(2 * expected_std, rel=0.03)
    if bound is not None:
        assert np.abs(W).max() <= 2 * bound
        assert np.abs(W).max() > 0.99 * 2 * bound


@pytest.mark.parametrize("init", INITS)
def test_init_is_drawn_on_the_host(rt64, init):
    """The backend holds exactly the host draw (same seed -> same weights anywhere)."""
    host = draw_weights(WIDTHS, init, 1.0, 7)
    for W, H in zip(_weights(rt64, init, WIDTHS, seed=7), host):
        np.testing.assert_array_equal(W, H)


# ------------------------------------------------------------ forward pass
def _np_forward(params, acts, x, bias):
    """Hidden states and output in plain NumPy; params as (W, b) or W per layer."""
    step = 2 if bias else 1
    states, s = [], x
    for k, act in enumerate(acts):
        W = params[step * k]
        a = s @ W.T + (params[step * k + 1] if bias else 0.0)
        s = _np_act(act, a)
        states.append(s)
    return states[:-1], states[-1]


@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("bias", [False, True])
def test_forward_and_feedforward_states(rt64, activation, bias):
    net = pccore.mlp(rt64, WIDTHS, activation=activation, bias=bias, init="xavier_uniform", gain=2.0, seed=5)
    if bias:  # non-zero biases so they matter
        rng = np.random.default_rng(1)
        net = net.with_params([p if p.ndim == 2 else p + rt64.asarray(rng.standard_normal(p.shape[0]))
                               for p in net.flat_params()])
    xh, _ = host_batch(WIDTHS, batch=5, seed=2)
    x = rt64.asarray(xh)
    ref_states, ref_out = _np_forward(_host_params(rt64, net), [activation] * 2 + ["linear"], xh, bias)
    out = net.forward(x)
    assert tuple(out.shape) == (5, 3)
    np.testing.assert_allclose(rt64.to_numpy(out), ref_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rt64.to_numpy(pccore.forward(net, x)), ref_out, rtol=1e-12, atol=1e-12)
    states = pccore.feedforward_states(net, x)
    assert len(states) == 2
    for s, r in zip(states, ref_states):
        np.testing.assert_allclose(rt64.to_numpy(s), r, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("activation", ACTS)
def test_activation_values_and_derivatives(rt64, activation):
    act = pccore.get_activation(activation)
    a_host = np.linspace(-4.0, 4.0, 41) + 0.013  # avoid relu's kink at exactly 0
    a = rt64.asarray(a_host)
    y = act.fn(rt64.xp, a)
    np.testing.assert_allclose(rt64.to_numpy(y), _np_act(activation, a_host), rtol=1e-12, atol=1e-14)
    h = 1e-6
    fd = (_np_act(activation, a_host + h) - _np_act(activation, a_host - h)) / (2 * h)
    np.testing.assert_allclose(rt64.to_numpy(act.deriv(rt64.xp, a, y)), fd, rtol=1e-6, atol=1e-8)


def test_sigmoid_is_stable_for_large_inputs(rt32):
    act = pccore.get_activation("sigmoid")
    out = rt32.to_numpy(act.fn(rt32.xp, rt32.asarray([-100.0, 0.0, 100.0])))
    np.testing.assert_allclose(out, [0.0, 0.5, 1.0], atol=1e-7)


def test_depth_one_network_has_no_hidden_states(rt64):
    net = pccore.mlp(rt64, [4, 3], bias=True)
    x, _ = batch_on(rt64, [4, 3])
    assert net.feedforward_states(x) == []
    np.testing.assert_allclose(rt64.to_numpy(net.forward(x)), rt64.to_numpy(x) @ rt64.to_numpy(net.flat_params()[0]).T,
                               rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------- losses
def test_mse_is_half_sum_of_squares(rt64):
    rng = np.random.default_rng(0)
    yhat, y = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    xp = rt64.xp
    value = float(pccore.MSE().value(xp, rt64.asarray(yhat), rt64.asarray(y)))
    assert value == pytest.approx(0.5 * np.sum((yhat - y) ** 2), rel=1e-12)
    value2 = float(pccore.MSE(precision=2.0).value(xp, rt64.asarray(yhat), rt64.asarray(y)))
    assert value2 == pytest.approx(np.sum((yhat - y) ** 2), rel=1e-12)
    grad = rt64.to_numpy(pccore.get_loss("mse").grad(xp, rt64.asarray(yhat), rt64.asarray(y)))
    np.testing.assert_allclose(grad, yhat - y, rtol=1e-12)


def test_ce_is_cross_entropy_on_logits(rt64):
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((5, 4)) * 3
    logits[0] += 500.0  # large logits must not overflow
    y = np.eye(4)[[0, 3, 1, 1, 2]]
    xp = rt64.xp
    ce = pccore.get_loss("ce")
    m = logits.max(axis=1, keepdims=True)
    logp = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
    value = float(ce.value(xp, rt64.asarray(logits), rt64.asarray(y)))
    assert np.isfinite(value)
    assert value == pytest.approx(-np.sum(y * logp), rel=1e-12)
    grad = rt64.to_numpy(ce.grad(xp, rt64.asarray(logits), rt64.asarray(y)))
    np.testing.assert_allclose(grad, np.exp(logp) - y, rtol=1e-10, atol=1e-14)


def test_loss_objects_and_names():
    assert isinstance(pccore.get_loss("mse"), pccore.MSE)
    assert isinstance(pccore.get_loss("ce"), pccore.CrossEntropy)
    mse = pccore.MSE(precision=3.0)
    assert pccore.get_loss(mse) is mse
    with pytest.raises(pccore.InputError, match="precision must be > 0"):
        pccore.MSE(precision=0.0)
