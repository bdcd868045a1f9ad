"""Bad input raises early, with a message that names the argument and what was expected."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import batch_on

import pccore
from pccore import analytic
from pccore.errors import DeviceNotFound, InputError, TrainingDiverged, UnknownNameError
from pccore_trackers import History

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
    ({"iters": 5, "lr": -0.1}, r"lr must be a number > 0 \(finite\), got -0.1"),
    ({"iters": 5, "lr": float("inf")}, r"lr must be a number > 0 \(finite\), got inf"),
    ({"iters": 2**31, "lr": 0.1}, r"iters must be at most 2147483647 \(device loops count in int32\)"),
    ({"iters": "5", "lr": 0.1}, r"iters must be an integer >= 1, got '5' \(str\)"),
    ({"iters": 5, "lr": 0.1, "tol": float("nan")}, "tol must be None or a finite number >= 0, got nan"),
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


# ------------------------------------------------------- numbers and types
def _toy_data(n=32, d=4, classes=2, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, d)) * scale).astype(np.float32)
    y = np.eye(classes, dtype=np.float32)[rng.integers(0, classes, n)]
    return pccore.Dataset("toy", x, y, x[:8].copy(), y[:8].copy())


def _trainer(rt, method, **kw):
    inference = {"eo": pccore.ErrorOptimization(iters=5, lr=0.1),
                 "so": pccore.StateOptimization(iters=5, lr=0.1), "bp": None}[method]
    kw = {"batch_size": 16, "progress": False, **kw}
    return pccore.Trainer(method, inference=inference, runtime=rt, **kw)


def test_numpy_integers_and_floats_are_accepted(backend):
    """np.int32 / np.int64 / np.float32 are numbers like any other (they come out of arrays)."""
    rt = pccore.runtime(backend, dtype="float64")
    net = pccore.mlp(rt, WIDTHS, seed=np.int32(5))
    np.testing.assert_array_equal(rt.to_numpy(net.params[0][0]), rt.to_numpy(pccore.mlp(rt, WIDTHS, seed=5).params[0][0]))
    x, y = batch_on(rt, WIDTHS)
    result = pccore.ErrorOptimization(iters=np.int32(5), lr=np.float32(0.125), tol=np.float32(0.0)).run(net, x, y)
    assert result.iterations == 5 and isinstance(result.iterations, int)
    trainer = pccore.Trainer("bp", seed=np.int64(3), batch_size=np.int32(16), lr=np.float64(0.01),
                             optimizer="adam", b1=np.float32(0.5), runtime=rt, progress=False)
    assert (trainer.seed, trainer.batch_size) == (3, 16) and type(trainer.seed) is int
    _, history = trainer.fit(pccore.mlp(rt, [4, 3, 2]), _toy_data(), epochs=np.int64(1), max_steps=np.int32(1))
    assert history.step == [1]


@pytest.mark.parametrize("make, match", [
    (lambda: pccore.Trainer("bp", seed="0"), r"seed must be an integer >= 0, got '0' \(str\)"),
    (lambda: pccore.Trainer("bp", seed=1.0), r"seed must be an integer >= 0, got 1.0 \(float\)"),
    (lambda: pccore.Trainer("bp", batch_size=True), r"batch_size must be an integer >= 1, got True \(bool\)"),
    (lambda: pccore.MSE(precision="2"), r"precision must be > 0 \(a finite number\), got '2'"),
    (lambda: pccore.MSE(precision=float("inf")), r"precision must be > 0 \(a finite number\), got inf"),
    (lambda: pccore.Trainer("bp", optimizer="momentum", momentum="high"),
     r"momentum \(momentum optimizer\) must be a number >= 0 and < 1 \(finite\), got 'high' \(str\)"),
    (lambda: pccore.Trainer("bp", lr=float("inf")), r"lr must be a number > 0 \(finite\), got inf"),
    (lambda: pccore.Trainer("bp", lr="0.1"), r"lr must be a number > 0 \(finite\), got '0.1'"),
    (lambda: pccore.ErrorOptimization(iters=5, lr=0.1, tol="0"), "tol must be None or a finite number >= 0, got '0'"),
])
def test_numbers_of_the_wrong_type(make, match):
    with pytest.raises(InputError, match=match):
        make()


def test_mlp_settings(backend):
    rt = pccore.runtime(backend)
    with pytest.raises(InputError, match="bias must be True or False, got 'no'"):
        pccore.mlp(rt, WIDTHS, bias="no")
    with pytest.raises(InputError, match="bias must be True or False, got 1"):
        pccore.mlp(rt, WIDTHS, bias=1)
    with pytest.raises(InputError, match=r"gain must be a number > 0 \(finite\), got inf"):
        pccore.mlp(rt, WIDTHS, gain=float("inf"))
    with pytest.raises(InputError, match="seed must be an integer >= 0, got '0'"):
        pccore.mlp(rt, WIDTHS, seed="0")


BAD_HYPER = [
    ("momentum", {"momentum": -0.5}, r"momentum \(momentum optimizer\) must be a number >= 0 and < 1 \(finite\), got -0.5"),
    ("momentum", {"momentum": 1.0}, r"momentum \(momentum optimizer\) must be a number >= 0 and < 1"),
    ("adam", {"b1": 1.0}, r"b1 \(adam optimizer\) must be a number >= 0 and < 1 \(finite\), got 1.0"),
    ("adam", {"b1": 1.5}, r"b1 \(adam optimizer\) must be a number >= 0 and < 1"),
    ("adam", {"b2": -0.1}, r"b2 \(adam optimizer\) must be a number >= 0 and < 1"),
    ("adam", {"eps": 0.0}, r"eps \(adam optimizer\) must be a number > 0 \(finite\), got 0.0"),
    ("adam", {"eps": float("nan")}, r"eps \(adam optimizer\) must be a number > 0 \(finite\), got nan"),
    ("sgd", {"momentum": 0.9}, r"optimizer 'sgd' got unknown hyper-parameters \['momentum'\]; it takes \['lr'\]"),
]


@pytest.mark.parametrize("name, hyper, match", BAD_HYPER, ids=[f"{n}-{list(h)[0]}" for n, h, _ in BAD_HYPER])
def test_optimizer_settings_are_checked_in_the_core(backend, name, hyper, match):
    """The same message from the Trainer, the inference constructor and the runtime, on
    every backend (the core checks them before a backend builds the optimizer)."""
    rt = pccore.runtime(backend)
    with pytest.raises(InputError, match=match):
        pccore.Trainer("bp", optimizer=name, **hyper)
    with pytest.raises(InputError, match=match):
        pccore.ErrorOptimization(iters=3, lr=0.1, optimizer=name, **hyper)
    with pytest.raises(InputError, match=match):
        rt.optimizer(name, lr=0.1, **hyper)


def test_optimizer_must_be_a_name():
    with pytest.raises(InputError, match="optimizer must be a name"):
        pccore.Trainer("bp", optimizer=None)
    with pytest.raises(InputError, match="optimizer must be a name"):
        pccore.ErrorOptimization(iters=3, lr=0.1, optimizer=3)


# ------------------------------------------------- missing and empty inputs
def test_y_none_is_refused(setup):
    rt, net, x, y, states = setup
    msg = r"y must be an array of targets \(batch, \*output_shape\), got None"
    with pytest.raises(InputError, match=msg):
        pccore.ErrorOptimization(iters=2, lr=0.1).run(net, x, None)
    with pytest.raises(InputError, match=msg):
        pccore.state_energy(net, x, None, states)
    with pytest.raises(InputError, match=msg):
        pccore.backprop_grads(net, x, None)
    with pytest.raises(InputError, match=msg):
        pccore.Trainer("bp", batch_size=6, progress=False).session(net).step(x, None)
    with pytest.raises(InputError, match=r"x must be an array of inputs \(batch, \*input_shape\), got None"):
        pccore.StateOptimization(iters=2, lr=0.1).run(net, None, y)
    with pytest.raises(InputError, match="net must be a pccore.Network, got str"):
        pccore.ErrorOptimization(iters=2, lr=0.1).run("net", x, y)


def test_empty_batch_is_refused(setup):
    rt, net, x, y, states = setup
    msg = r"x holds an empty batch \(shape \(0, 3\)\); pass at least one sample"
    with pytest.raises(InputError, match=msg):
        pccore.ErrorOptimization(iters=5, lr=0.1, tol=1e-3).run(net, x[:0], y[:0])
    with pytest.raises(InputError, match=msg):
        net.forward(x[:0])
    with pytest.raises(InputError, match=msg):
        pccore.state_energy(net, x[:0], y[:0], [s[:0] for s in states])
    with pytest.raises(InputError, match=msg):
        pccore.backprop_grads(net, x[:0], y[:0])


def test_depth_one_net_with_tol(backend):
    """No hidden state: nothing to infer; converged at once, energy = the loss (no 0/0)."""
    rt = pccore.runtime(backend, dtype="float64")
    net = pccore.mlp(rt, [3, 2], seed=1)
    x, y = batch_on(rt, [3, 2])
    result = pccore.ErrorOptimization(iters=5, lr=0.1, tol=1e-6).run(net, x, y)
    assert (result.iterations, result.converged, result.states, result.errors) == (0, True, [], [])
    W = rt.to_numpy(net.params[0][0])
    expected = 0.5 * np.sum((rt.to_numpy(x) @ W.T - rt.to_numpy(y)) ** 2)  # closed form of the MSE energy
    assert float(rt.to_numpy(result.energy)) == pytest.approx(expected, rel=1e-12)


def test_integer_class_labels_say_how_to_one_hot(setup):
    rt, net, x, y, states = setup
    labels = rt.xp.asarray(np.array([0, 1, 0, 1, 1, 0]))
    msg = r"y holds integer class labels \(shape \(6,\), .*int.*\) .* shape \(6, 2\): one-hot them first, e.g. rt.asarray\(numpy.eye\(2\)\[labels\]\)"
    with pytest.raises(InputError, match=msg):
        pccore.ErrorOptimization(iters=2, lr=0.1).run(net, x, labels)
    with pytest.raises(InputError, match=msg):
        pccore.backprop_grads(net, x, labels)
    with pytest.raises(InputError, match=r"dataset 'toy': y_train must be \(n, classes\), got \(4,\); these look like "
                                         r"integer class labels: one-hot them first"):
        pccore.Dataset("toy", np.zeros((4, 3), np.float32), np.array([0, 1, 0, 1]),
                       np.zeros((2, 3), np.float32), np.eye(2, dtype=np.float32))


# ------------------------------------------------------ non-finite numbers
@pytest.mark.parametrize("method", [pccore.ErrorOptimization, pccore.StateOptimization], ids=["EO", "SO"])
@pytest.mark.parametrize("observed", [False, True], ids=["fused", "observed"])
def test_nan_inputs_are_named_not_blamed_on_the_lr(setup, method, observed):
    rt, net, x, y, states = setup
    bad_x, bad_y = rt.to_numpy(x).copy(), rt.to_numpy(y).copy()
    bad_x[2, 1], bad_y[4, 0] = np.nan, np.inf
    tracker = rt.register(History()) if observed else None
    try:
        with pytest.raises(InputError, match=r"x holds 1 non-finite value \(NaN or inf\), the first at index \(2, 1\)"):
            method(iters=5, lr=0.1).run(net, rt.asarray(bad_x), y)
        with pytest.raises(InputError, match=r"y holds 1 non-finite value \(NaN or inf\), the first at index \(4, 0\)"):
            method(iters=5, lr=0.1, tol=1e-6).run(net, x, rt.asarray(bad_y))
        weights = [rt.to_numpy(p).copy() for p in net.flat_params()]
        weights[2][0, 0] = np.nan  # W of block 1 (W, b per block)
        with pytest.raises(InputError, match=r"the network's parameter 0 of block 1 holds 1 non-finite value"):
            method(iters=5, lr=0.1).run(net.with_params([rt.asarray(w) for w in weights]), x, y)
    finally:
        if tracker is not None:
            rt.unregister(tracker)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_diverging_lr_is_still_named(setup):
    rt, net, x, y, states = setup
    with pytest.raises(pccore.InferenceDiverged, match=r"EO diverged: .* with lr=1e\+30"):
        pccore.ErrorOptimization(iters=20, lr=1e30).run(net, x, y)


@pytest.mark.parametrize("method", ["bp", "eo", "so"])
@pytest.mark.parametrize("split, kind", [("train", "x"), ("train", "y"), ("test", "x")])
def test_training_data_with_nan_is_refused_before_training(backend, method, split, kind):
    rt = pccore.runtime(backend)
    data = _toy_data()
    arrays = {k: getattr(data, k).copy() for k in ("x_train", "y_train", "x_test", "y_test")}
    arrays[f"{kind}_{split}"][5, 1] = np.nan
    bad = pccore.Dataset("toy", **arrays)
    steps = []

    class Spy:
        @pccore.hookimpl
        def pccore_train_step(self, info):
            steps.append(info.step)

    rt.register(Spy())
    with pytest.raises(InputError, match=rf"dataset 'toy': {kind}_{split} holds 1 non-finite value \(NaN or inf\), "
                                         r"the first at index \(5, 1\); clean or drop those samples"):
        _trainer(rt, method).fit(pccore.mlp(rt, [4, 3, 2]), bad)
    assert steps == []  # refused before the first step


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("compile", [True, False], ids=["compiled", "eager"])
@pytest.mark.parametrize("method", ["bp", "eo", "so"])
def test_overflowing_weight_lr_stops_training(backend, method, compile):
    """Every method stops with TrainingDiverged naming the step, the method and the weight lr,
    also when the very last update overflows (no later loss would report it)."""
    rt = pccore.runtime(backend)
    net = pccore.mlp(rt, [4, 3, 2])
    trainer = _trainer(rt, method, optimizer="sgd", lr=1e38, compile=compile, log_every=1)
    with pytest.raises(TrainingDiverged, match=rf"{method} training diverged at step 1: the weights became non-finite "
                                               r"in the last update \(sgd weight update, lr=1e\+38\); lower the weight lr"):
        trainer.fit(net, _toy_data(scale=100.0), max_steps=1)
    trainer = _trainer(rt, method, optimizer="sgd", lr=1e30, compile=compile, log_every=1)
    with pytest.raises(TrainingDiverged, match=rf"{method} training diverged at step 2: the loss became non-finite.*"
                                               r"\(sgd weight update, lr=1e\+30\)"):
        trainer.fit(net, _toy_data(), epochs=2)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("compile", [True, False], ids=["compiled", "eager"])
def test_weight_lr_that_breaks_inference_is_named(backend, compile):
    """Weights moved too far by the weight updates make the (unchanged) inference diverge:
    the message names the weight lr, not only the inference lr."""
    rt = pccore.runtime(backend)
    trainer = _trainer(rt, "eo", optimizer="sgd", lr=1e3, compile=compile, log_every=1)
    trainer.inference = pccore.ErrorOptimization(iters=30, lr=0.1)
    with pytest.raises(TrainingDiverged) as err:
        trainer.fit(pccore.mlp(rt, [4, 5, 2], activation="tanh"), _toy_data(n=64), epochs=5)
    msg = str(err.value)
    assert re.search(r"eo training diverged at step (\d+): the inference energy became non-finite \(EO inference, "
                     r"lr=0.1\) on the weights after \d+ sgd update\(s\) \(weight lr=1000\); lower the weight lr", msg), msg
    assert err.value.step > 1 and err.value.lr == 1e3


# ----------------------------------------------------- torch autograd, frameworks
def test_tensors_that_require_grad_are_refused_where_pccore_updates_them():
    torch = pytest.importorskip("torch")
    if "torch" not in pccore.available_backends():
        pytest.skip("needs the torch backend")
    rt = pccore.runtime("torch")
    net = pccore.mlp(rt, WIDTHS)
    x, y = torch.randn(6, 3, requires_grad=True), torch.randn(6, 2)
    msg = r"x is a tensor that requires grad \(part of an autograd graph\); pccore computes its gradients itself: pass x.detach\(\)"
    with pytest.raises(InputError, match=msg):
        pccore.ErrorOptimization(iters=2, lr=0.1).run(net, x, y)
    with pytest.raises(InputError, match=msg):
        pccore.Trainer("bp", batch_size=6, progress=False).session(net).step(x, y)
    # the energy functions and the forward pass accept them: autograd differentiates through
    # them (the tests' oracles do), and the gradient agrees with pccore's own
    states = [torch.zeros(6, 4, requires_grad=True, dtype=torch.float32), torch.zeros(6, 5)]
    pccore.state_energy(net, x.detach(), y, states).backward()
    own = pccore.state_energy_grad(net, x.detach(), y, [s.detach() for s in states])[0]
    assert torch.allclose(states[0].grad, own, atol=1e-5)
    assert net.forward(x).requires_grad
    assert pccore.ErrorOptimization(iters=2, lr=0.1).run(net, x.detach(), y).iterations == 2


def test_arrays_of_another_framework_are_converted_with_a_runtime(backend):
    """With runtime= given, x and y of another framework (host NumPy data, a torch batch) are
    moved with rt.asarray; the numbers equal those of converting by hand."""
    rt = pccore.runtime(backend, dtype="float64")
    net = pccore.mlp(rt, WIDTHS, activation="tanh", seed=2)
    hx, hy = host_batch_f64()
    others = [b for b in pccore.available_backends() if b != backend]
    inputs = [(hx, hy)] if backend != "numpy" else []
    inputs += [(o.asarray(hx), o.asarray(hy)) for o in (pccore.runtime(b, dtype="float32") for b in others)]
    if not inputs:
        pytest.skip("needs a second framework")
    x, y = rt.asarray(hx), rt.asarray(hy)
    want = pccore.ErrorOptimization(iters=4, lr=0.1).run(net, x, y)
    for fx, fy in inputs:
        got = pccore.ErrorOptimization(iters=4, lr=0.1).run(net, fx, fy, runtime=rt)
        np.testing.assert_allclose(rt.to_numpy(got.energy), rt.to_numpy(want.energy), rtol=1e-6)
        session = pccore.Trainer("bp", batch_size=6, runtime=rt, progress=False).session(net)
        loss, _ = session.step(fx, fy)
        np.testing.assert_allclose(float(rt.to_numpy(loss)),
                                   0.5 * np.sum((rt.to_numpy(net.forward(x)) - hy) ** 2) / 6, rtol=1e-6)
    if backend != "numpy":  # without a runtime: an error that says how
        with pytest.raises(InputError, match=rf"x, y from numpy; net from {backend}; convert them with rt.asarray"):
            pccore.ErrorOptimization(iters=2, lr=0.1).run(net, hx, hy)


def host_batch_f64():
    rng = np.random.default_rng(7)
    return rng.standard_normal((6, 3)), rng.standard_normal((6, 2))


# -------------------------------------------------------------- iteration counts
def test_huge_iters_refused_on_every_backend(backend):
    with pytest.raises(InputError, match=r"iters must be at most 2147483647"):
        pccore.ErrorOptimization(iters=2**40, lr=0.1)
    rt = pccore.runtime(backend)
    net = pccore.mlp(rt, WIDTHS)
    x, y = batch_on(rt, WIDTHS)
    # the largest count runs (and stops at once on a loose tol): no int32 overflow, no unrolled loop
    result = pccore.ErrorOptimization(iters=2**31 - 1, lr=0.1, tol=1e30).run(net, x, y)
    assert result.iterations == 1 and result.converged


def test_jax_training_step_loops_above_the_unroll_threshold():
    """On JAX a training step unrolls only a few inference steps; above the threshold the
    loop is one scan/while whatever the count, so a huge ``iters`` traces as fast as 100."""
    if "jax" not in pccore.available_backends():
        pytest.skip("needs the jax backend")
    import jax
    from pccore_jax.loop import UNROLL_MAX

    rt = pccore.runtime("jax")
    net = pccore.mlp(rt, [4, 5, 3, 2])
    x, y = rt.asarray(np.ones((6, 4))), rt.asarray(np.ones((6, 2)))

    def traced(iters):
        trainer = pccore.Trainer("eo", inference=pccore.ErrorOptimization(iters=iters, lr=0.1), batch_size=6,
                                 runtime=rt, progress=False)
        session = trainer.session(net)
        jaxpr = jax.make_jaxpr(session.step_function())((session.params, session.opt_state), (x, y)).jaxpr
        return len(jaxpr.eqns), {e.primitive.name for e in jaxpr.eqns}

    small, loop, huge = traced(UNROLL_MAX), traced(100), traced(2**31 - 1)
    assert not {"scan", "while"} & small[1]
    assert {"scan", "while"} & loop[1] and huge == loop
    assert small[0] > loop[0]


# ---------------------------------------------------------------- files
def _saved(tmp_path, kind):
    """(path, arrays) of a saved network or a training checkpoint."""
    rt = pccore.runtime("numpy")
    net = pccore.mlp(rt, [4, 3, 2], activation="tanh", bias=True)
    if kind == "network":
        path = pccore.save(net, tmp_path / "net.npz")
    else:
        path = tmp_path / "ck.npz"
        _trainer(rt, "bp").fit(net, _toy_data(), checkpoint=path)
    with np.load(path) as f:
        return path, {k: f[k] for k in f.files}


def _load(kind, path):
    rt = pccore.runtime("numpy")
    if kind == "network":
        return pccore.load(path)
    return _trainer(rt, "bp").fit(pccore.mlp(rt, [4, 3, 2], activation="tanh", bias=True), _toy_data(),
                                  checkpoint=path, resume=True)


def _rewrite(path, arrays, checksum=True):
    """Write ``arrays`` as a .npz with a valid checksum (as pccore would), or without one."""
    from pccore.io import _checksum

    arrays = {k: v for k, v in arrays.items() if k != "checksum"}
    if checksum:
        arrays["checksum"] = np.array(_checksum(arrays))
    np.savez(path, **arrays)


@pytest.mark.parametrize("kind", ["network", "checkpoint"])
def test_damaged_npz_files_are_named(tmp_path, kind):
    path, arrays = _saved(tmp_path, kind)
    data = path.read_bytes()
    cases = {
        "truncated.npz": data[: len(data) * 2 // 3],
        "empty.npz": b"",
        "flipped.npz": bytes(data[:200]) + bytes([data[200] ^ 0xFF]) + bytes(data[201:]),
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(InputError, match=rf"'{re.escape(str(tmp_path / name))}' is (not a readable pccore "
                                             rf"{kind} file|damaged)"):
            _load(kind, tmp_path / name)
    edited = dict(arrays)
    first = "p0_0"
    edited[first] = edited[first] + 1.0  # a changed weight in an otherwise well-formed file
    np.savez(tmp_path / "edited.npz", **edited)
    with pytest.raises(InputError, match="is damaged: its checksum does not match its contents"):
        _load(kind, tmp_path / "edited.npz")
    _rewrite(tmp_path / "nosum.npz", arrays, checksum=False)
    with pytest.raises(InputError, match=r"nosum.npz' is incomplete: its 'checksum' entry is missing"):
        _load(kind, tmp_path / "nosum.npz")


@pytest.mark.parametrize("kind", ["network", "checkpoint"])
def test_files_of_a_newer_format_are_refused(tmp_path, kind):
    path, arrays = _saved(tmp_path, kind)
    arrays["version"] = np.array(99)
    _rewrite(path, arrays)
    with pytest.raises(InputError, match=r"has file format version 99, written by pccore \d+\.\d+.*; this pccore "
                                         r"reads versions up to 2: upgrade pccore"):
        _load(kind, path)


@pytest.mark.parametrize("kind, entry", [
    ("network", "dtype"), ("network", "structure"), ("network", "p1_1"),
    ("checkpoint", "train/counters"), ("checkpoint", "train/config"), ("checkpoint", "hist/loss"),
    ("checkpoint", "structure"),
])
def test_incomplete_npz_files_name_the_missing_entry(tmp_path, kind, entry):
    """Entries removed, checksum recomputed: the file is consistent but incomplete."""
    path, arrays = _saved(tmp_path, kind)
    del arrays[entry]
    _rewrite(path, arrays)
    match = (r"parameter 1 of block 1 is missing" if entry == "p1_1" else
             rf"'{re.escape(str(path))}' is an incomplete pccore (network|checkpoint) file: the entry '{entry}' is missing")
    with pytest.raises(InputError, match=match):
        _load(kind, path)


def _write_idx(folder, prefix, n, seed=0):
    import struct

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(
        struct.pack(">4B3i", 0, 0, 8, 3, n, 28, 28) + rng.integers(0, 256, (n, 28, 28)).astype(np.uint8).tobytes())
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(
        struct.pack(">4Bi", 0, 0, 8, 1, n) + rng.integers(0, 10, n).astype(np.uint8).tobytes())


@pytest.mark.parametrize("file, keep, reason", [
    ("train-images-idx3-ubyte", 16 + 784 * 5 + 3, r"\d+ bytes where the header \(12, 28, 28\) needs 9424"),
    ("t10k-labels-idx1-ubyte", 6, r"the header is cut after 6 bytes"),
    ("t10k-images-idx3-ubyte", 0, r"not an IDX header \(0 of 4 magic bytes: empty\)"),
    ("train-labels-idx1-ubyte", None, r"12 images but 11 labels in train-labels-idx1-ubyte"),
    ("t10k-images-idx3-ubyte", -7, r"4727 bytes where the header \(6, 28, 28\) needs 4720"),  # 7 bytes appended
])
def test_truncated_mnist_file_is_named(tmp_path, file, keep, reason):
    pytest.importorskip("torchvision")
    raw = tmp_path / "MNIST" / "raw"
    _write_idx(raw, "train", 12)
    _write_idx(raw, "t10k", 6, seed=1)
    if keep is None:  # a consistent file with one label fewer
        _write_idx(tmp_path / "other", "train", 11)
        (raw / file).write_bytes((tmp_path / "other" / file).read_bytes())
        file = "train-images-idx3-ubyte"
    elif keep < 0:
        (raw / file).write_bytes((raw / file).read_bytes() + bytes(-keep))
    else:
        (raw / file).write_bytes((raw / file).read_bytes()[:keep])
    with pytest.raises(InputError, match=rf"dataset 'mnist': the file '{re.escape(str((raw / file).resolve()))}' is "
                                         rf"damaged or truncated \({reason}\); delete it and fetch it again"):
        pccore.load_dataset("mnist", root=tmp_path)


@pytest.fixture
def read_only(tmp_path):
    """A folder where files cannot be created: a chmod 555 folder, or for root (who ignores
    permissions) a sysfs folder."""
    import os

    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    from pathlib import Path

    folder = Path("/sys")
    try:
        (folder / "pccore-probe").write_bytes(b"")
    except OSError:
        yield folder
        return
    (folder / "pccore-probe").unlink()
    pytest.skip("no read-only folder available to root here")


def test_read_only_checkpoint_fails_before_training(backend, read_only):
    rt = pccore.runtime(backend)
    steps = []

    class Spy:
        @pccore.hookimpl
        def pccore_train_step(self, info):
            steps.append(info.step)

    rt.register(Spy())
    with pytest.raises(InputError, match=rf"checkpoint: cannot write to folder '{re.escape(str(read_only))}' \("):
        _trainer(rt, "bp").fit(pccore.mlp(rt, [4, 3, 2]), _toy_data(), checkpoint=read_only / "ck.npz")
    assert steps == []
    with pytest.raises(InputError, match=rf"cannot save to .*: cannot write to folder '{re.escape(str(read_only))}'"):
        pccore.save(pccore.mlp(rt, [4, 3, 2]), read_only / "net.npz")


def test_stale_tmp_files_of_a_crashed_save_are_removed(tmp_path):
    """A save killed midway (the process dies inside np.savez) leaves its temporary file; the
    next save of that path removes it, but not the file of a writer that is still alive."""
    import os
    import socket
    import subprocess
    import sys

    path = tmp_path / "net.npz"
    crash = ("import os, numpy as np, pccore\n"
             "net = pccore.mlp(pccore.runtime('numpy'), [4, 3, 2])\n"
             "def dies(f, **arrays):\n    f.write(b'partial'); f.flush(); os._exit(9)\n"
             f"np.savez = dies\npccore.save(net, {str(path)!r})\n")
    assert subprocess.run([sys.executable, "-c", crash]).returncode == 9
    left = sorted(p.name for p in tmp_path.iterdir())
    assert len(left) == 1 and left[0].startswith(".net.npz.") and left[0].endswith(".tmp")
    legacy = tmp_path / ".net.npz.abc123.tmp"  # an older pccore's name (no writer in it)
    legacy.write_bytes(b"junk")
    alive = tmp_path / f".net.npz.{socket.gethostname()}-{os.getpid()}.xyz.tmp"  # a save in progress
    alive.write_bytes(b"busy")
    other = tmp_path / ".other.npz.abc.tmp"  # another file's
    other.write_bytes(b"")
    pccore.save(pccore.mlp(pccore.runtime("numpy"), [4, 3, 2]), path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["net.npz", alive.name, other.name])
    pccore.load(path)


def test_stale_tmp_files_of_a_checkpoint_are_removed(tmp_path):
    stale = tmp_path / ".checkpoint.npz.abc.tmp"
    stale.write_bytes(b"junk")
    rt = pccore.runtime("numpy")
    _trainer(rt, "bp").fit(pccore.mlp(rt, [4, 3, 2]), _toy_data(), checkpoint=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.npz"]


# ------------------------------------------------------------------ CLI
def test_cli_checks_out_before_training(read_only, capsys):
    from pccore.cli import main

    pytest.importorskip("sklearn")
    assert main(["train", "--out", str(read_only / "run"), "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert re.search(rf"pccore train: error: --out: cannot write to folder '{re.escape(str(read_only))}/run' \(",
                     err) and "Traceback" not in err
    assert "loading dataset" not in err


def test_cli_tracker_that_needs_arguments(tmp_path, capsys):
    from pccore.cli import main

    assert main(["train", "--out", str(tmp_path), "--tracker", "distance_to_optimum", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "tracker 'distance_to_optimum' needs the argument optimum" in err and "Traceback" not in err


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_cli_diverged_training_is_one_line(tmp_path, capsys):
    from pccore.cli import main

    pytest.importorskip("sklearn")
    out = tmp_path / "run"
    args = ["train", "--out", str(out), "--method", "bp", "--optimizer", "sgd", "--lr", "1e30", "--steps", "4",
            "--width", "8", "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert re.search(r"pccore train: error: bp training diverged at step \d+: .*lr=1e\+30", err), err
    assert not (out / "summary.json").exists()


def test_cli_json_never_holds_inf(tmp_path):
    import json

    from pccore.host import write_json

    write_json(tmp_path / "s.json", {"a": float("inf"), "b": [1.0, float("nan")], "c": np.float32("nan"),
                                      "d": np.array([1.0, np.inf]), "e": "inf"})
    assert json.loads((tmp_path / "s.json").read_text()) == {"a": None, "b": [1.0, None], "c": None,
                                                             "d": [1.0, None], "e": "inf"}
