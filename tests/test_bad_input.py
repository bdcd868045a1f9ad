"""Bad input raises early, with a message that names the argument and what was expected."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import batch_on

import pccore
from pccore import analytic
from pccore.errors import DeviceNotFound, InputError, UnknownNameError

WIDTHS = [3, 4, 5, 2]


@pytest.fixture
def setup(rt64):
    net = pccore.mlp(rt64, WIDTHS, activation="tanh", bias=True)
    x, y = batch_on(rt64, WIDTHS, batch=6)
    return rt64, net, x, y, net.feedforward_states(x)


ENERGY_FUNCTIONS = [pccore.state_energy, pccore.state_energy_grad, pccore.error_energy,
                    pccore.error_energy_grad, pccore.local_weight_grads]
FN_IDS = [f.__name__ for f in ENERGY_FUNCTIONS]
ARG = {"state_energy": "states", "state_energy_grad": "states", "local_weight_grads": "states",
       "error_energy": "errors", "error_energy_grad": "errors"}


# ------------------------------------------------------------------ shapes
def test_x_with_wrong_width(setup):
    rt, net, x, y, states = setup
    bad = rt.asarray(np.zeros((6, 4)))
    with pytest.raises(InputError, match=r"x must have shape \(\*, 3\), got \(6, 4\)"):
        net.forward(bad)
    with pytest.raises(InputError, match=r"x must have shape \(\*, 3\), got \(6, 4\)"):
        pccore.state_energy(net, bad, y, states)


def test_x_with_wrong_rank(setup):
    rt, net, x, y, states = setup
    with pytest.raises(InputError, match=r"x must have shape \(\*, 3\), got \(3,\)"):
        net.forward(rt.asarray(np.zeros(3)))


@pytest.mark.parametrize("fn", ENERGY_FUNCTIONS, ids=FN_IDS)
def test_y_with_wrong_shape(setup, fn):
    rt, net, x, y, states = setup
    with pytest.raises(InputError, match=r"y must have shape \(6, 2\), got \(6, 3\)"):
        fn(net, x, rt.asarray(np.zeros((6, 3))), states)
    with pytest.raises(InputError, match=r"y must have shape \(6, 2\), got \(5, 2\)"):
        fn(net, x, rt.asarray(np.zeros((5, 2))), states)


@pytest.mark.parametrize("fn", ENERGY_FUNCTIONS, ids=FN_IDS)
def test_wrong_number_of_layers(setup, fn):
    rt, net, x, y, states = setup
    arg = ARG[fn.__name__]
    with pytest.raises(InputError, match=rf"{arg} must hold one array per hidden layer \(2\), got 1"):
        fn(net, x, y, states[:1])
    with pytest.raises(InputError, match=rf"{arg} must hold one array per hidden layer \(2\), got 3"):
        fn(net, x, y, states + states[:1])
    with pytest.raises(InputError, match=rf"{arg} must be a list of 2 arrays, got"):
        fn(net, x, y, states[0])


@pytest.mark.parametrize("fn", ENERGY_FUNCTIONS, ids=FN_IDS)
def test_hidden_array_with_wrong_shape(setup, fn):
    rt, net, x, y, states = setup
    arg = ARG[fn.__name__]
    swapped = [states[1], states[0]]
    with pytest.raises(InputError, match=rf"{arg}\[0\] must have shape \(6, 4\), got \(6, 5\)"):
        fn(net, x, y, swapped)


def test_states_from_errors_checks_shapes(setup):
    rt, net, x, y, states = setup
    with pytest.raises(InputError, match=r"errors\[1\] must have shape \(6, 5\), got \(6, 4\)"):
        pccore.states_from_errors(net, x, [states[0], states[0]])
    with pytest.raises(InputError, match=r"states must hold one array per hidden layer \(2\), got 0"):
        pccore.errors_from_states(net, x, [])


# ------------------------------------------------------- frameworks, dtypes
def _other_backend(backend):
    others = [b for b in pccore.available_backends() if b != backend]
    if not others:
        pytest.skip("needs a second installed backend")
    return pccore.runtime(others[0], dtype="float64")


def test_arrays_from_two_frameworks(setup):
    rt, net, x, y, states = setup
    other = _other_backend(rt.backend)
    fx = other.asarray(rt.to_numpy(x))
    with pytest.raises(InputError, match=rf"mixed in one call: x from {other.backend}; .*net from {rt.backend}"):
        net.forward(fx)
    with pytest.raises(InputError, match=rf"two frameworks.*y from {other.backend}"):
        pccore.state_energy(net, x, other.asarray(rt.to_numpy(y)), states)
    foreign = [states[0], other.asarray(rt.to_numpy(states[1]))]
    with pytest.raises(InputError, match=rf"two frameworks.*states\[1\] from {other.backend}"):
        pccore.state_energy_grad(net, x, y, foreign)
    with pytest.raises(InputError, match=rf"two frameworks.*x from {other.backend}"):
        analytic.linear_equilibrium(pccore.mlp(rt, WIDTHS), fx, y)


def test_numpy_x_with_torch_net():
    if "torch" not in pccore.available_backends():
        pytest.skip("needs the torch backend")
    net = pccore.mlp(pccore.runtime("torch"), WIDTHS)
    with pytest.raises(InputError, match="x from numpy; net from torch"):
        net.forward(np.zeros((2, 3), dtype=np.float32))


def test_inference_runtime_of_another_framework(setup):
    rt, net, x, y, states = setup
    other = _other_backend(rt.backend)
    with pytest.raises(InputError, match=f"x is a {rt.backend} array but the runtime's backend is '{other.backend}'"):
        pccore.ErrorOptimization(iters=2, lr=0.1).run(net, x, y, runtime=other)


def test_not_an_array(setup):
    rt, net, x, y, states = setup
    with pytest.raises(InputError, match="x must be an array, got list"):
        net.forward([[1.0, 2.0, 3.0]])


def test_integer_dtypes(setup):
    rt, net, x, y, states = setup
    ix = rt.xp.asarray(np.ones((6, 3), dtype=np.int32))
    iy = rt.xp.asarray(np.ones((6, 2), dtype=np.int32))
    with pytest.raises(InputError, match="x must have a floating-point dtype, got .*int"):
        net.forward(ix)
    with pytest.raises(InputError, match="y must have a floating-point dtype, got .*int"):
        pccore.error_energy(net, x, iy, states)
    istates = [states[0], rt.xp.asarray(np.ones((6, 5), dtype=np.int32))]
    with pytest.raises(InputError, match=r"states\[1\] must have a floating-point dtype, got .*int"):
        pccore.state_energy(net, x, y, istates)
    with pytest.raises(InputError, match="x must have a floating-point dtype"):
        analytic.linear_equilibrium(pccore.mlp(rt, WIDTHS), ix, y)


def test_dtype_differs_from_the_network(setup):
    """float32 data with a float64 net: one clear error on every backend (torch would
    fail deep inside a matmul, NumPy and JAX would silently promote)."""
    rt, net, x, y, states = setup
    rt32 = pccore.runtime(rt.backend, dtype="float32")
    x32, y32 = batch_on(rt32, WIDTHS, batch=6)
    with pytest.raises(InputError, match="x has dtype .*float32 but the network's weights are .*float64"):
        net.forward(x32)
    with pytest.raises(InputError, match="y has dtype .*float32 but the network's weights are .*float64"):
        pccore.state_energy(net, x, y32, states)
    with pytest.raises(InputError, match=r"errors\[0\] has dtype .*float32"):
        pccore.error_energy(net, x, y, [rt32.asarray(rt.to_numpy(states[0])), states[1]])
    with pytest.raises(InputError, match="x has dtype .*float32"):
        pccore.ErrorOptimization(iters=2, lr=0.1).run(net, x32, y32)


# --------------------------------------------------------- construction
@pytest.mark.parametrize("widths, match", [
    ([3], r"widths needs at least 2 entries \(input and output\), got \[3\]"),
    ([], r"widths needs at least 2 entries"),
    ([3, 0, 2], r"widths must be positive integers, got \[3, 0, 2\]"),
    ([3, -4, 2], r"widths must be positive integers"),
    ([3, 2.5, 2], r"widths must be positive integers"),
    ([3, True, 2], r"widths must be positive integers"),
])
def test_bad_widths(backend, widths, match):
    rt = pccore.runtime(backend)
    with pytest.raises(InputError, match=match):
        pccore.mlp(rt, widths)


def test_unknown_activation(backend):
    rt = pccore.runtime(backend)
    msg = "unknown activation 'swish'; expected one of linear, relu, leaky_relu, tanh, hard_tanh, sigmoid, gelu"
    with pytest.raises(UnknownNameError, match=msg):
        pccore.mlp(rt, WIDTHS, activation="swish")
    with pytest.raises(UnknownNameError, match=msg):
        pccore.mlp(rt, WIDTHS, output_activation="swish")


def test_unknown_init(backend):
    rt = pccore.runtime(backend)
    with pytest.raises(UnknownNameError, match="unknown init 'he'; expected one of orthogonal, xavier_uniform"):
        pccore.mlp(rt, WIDTHS, init="he")


def test_unknown_loss(setup):
    rt, net, x, y, states = setup
    with pytest.raises(UnknownNameError, match="unknown loss 'l1'; expected one of mse, ce"):
        pccore.state_energy(net, x, y, states, loss="l1")
    with pytest.raises(UnknownNameError, match="unknown loss 'l1'"):
        pccore.ErrorOptimization(iters=2, lr=0.1).run(net, x, y, loss="l1")


def test_unknown_backend_and_device(backend):
    with pytest.raises(UnknownNameError, match=r"unknown backend 'numpyy'; installed backends: .*numpy"):
        pccore.runtime("numpyy")
    devices = pccore.runtime(backend).devices()
    with pytest.raises(DeviceNotFound, match=rf"device 'cuda:77' is not available .*available devices: {devices[0]}"):
        pccore.runtime(backend, device="cuda:77")


# ------------------------------------------------------------ analytic
def test_linear_equilibrium_rejects_nonlinear_net(backend):
    rt = pccore.runtime(backend, dtype="float64")
    net = pccore.mlp(rt, WIDTHS, activation="relu")
    x, y = batch_on(rt, WIDTHS)
    with pytest.raises(InputError, match=r"closed form needs affine blocks .*; block 0 is Sequential\(Linear\(out_features=4, bias=False\), ReLU\(\)\)"):
        analytic.linear_equilibrium(net, x, y)
    out = pccore.mlp(rt, WIDTHS, output_activation="sigmoid")
    with pytest.raises(InputError, match=r"block 2 is Sequential\(Linear\(out_features=2, bias=False\), Sigmoid\(\)\)"):
        analytic.linear_equilibrium_energy(out, x, y)


def test_linear_equilibrium_rejects_ce_loss(backend):
    rt = pccore.runtime(backend, dtype="float64")
    net = pccore.mlp(rt, WIDTHS)
    x, y = batch_on(rt, WIDTHS, onehot=True)
    with pytest.raises(InputError, match="closed form needs the 'mse' loss, got 'ce'"):
        analytic.linear_equilibrium(net, x, y, loss="ce")
    with pytest.raises(InputError, match="closed form needs the 'mse' loss"):
        analytic.linear_equilibrium(net, x, y, loss=pccore.CrossEntropy())


def test_linear_equilibrium_checks_shapes(backend):
    rt = pccore.runtime(backend, dtype="float64")
    net = pccore.mlp(rt, WIDTHS)
    x, y = batch_on(rt, WIDTHS)
    with pytest.raises(InputError, match=r"y must have shape \(6, 2\), got \(6, 3\)"):
        analytic.linear_equilibrium(net, x, rt.asarray(np.zeros((6, 3))))


# ------------------------------------------------------------ inference
@pytest.mark.parametrize("kwargs, match", [
    ({"iters": 0, "lr": 0.1}, "iters must be an integer >= 1, got 0"),
    ({"iters": 2.5, "lr": 0.1}, "iters must be an integer >= 1"),
    ({"iters": 5, "lr": -0.1}, "lr must be a number > 0, got -0.1"),
    ({"iters": 5, "lr": 0.1, "tol": -1.0}, "tol must be None or a finite number >= 0"),
])
def test_bad_inference_settings(backend, kwargs, match):
    with pytest.raises(InputError, match=match):
        pccore.StateOptimization(**kwargs)


def test_unknown_inference_optimizer(setup):
    rt, net, x, y, states = setup
    with pytest.raises(UnknownNameError, match="unknown optimizer 'lbfgs'"):
        pccore.ErrorOptimization(iters=2, lr=0.1, optimizer="lbfgs").run(net, x, y, runtime=rt)
    with pytest.raises(InputError, match=r"unknown hyper-parameters \['nesterov'\]"):
        pccore.ErrorOptimization(iters=2, lr=0.1, optimizer="momentum", nesterov=True).run(net, x, y, runtime=rt)
