"""Same seed -> same numbers on every backend. Each backend is compared, on host copies,
against the NumPy backend (float32: relative difference <= 1e-5), and the NumPy backend
itself against a float64 host computation."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import host_batch

import pccore

WIDTHS = [8, 16, 12, 16, 5]
RTOL = 1e-5
CONFIGS = [("linear", False, "mse"), ("tanh", True, "mse"), ("gelu", True, "ce")]
IDS = ["-".join(map(str, c)) for c in CONFIGS]


def _rel(a, b) -> float:
    """Relative difference ||a - b|| / ||b|| (0 when both vanish)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / scale) if scale else float(np.linalg.norm(a))


def _assert_close(got, want, rtol=RTOL):
    assert np.shape(got) == np.shape(want)
    assert _rel(got, want) <= rtol, f"relative difference {_rel(got, want):.3g} > {rtol:g}"


def _build(rt, config, seed=11):
    act, bias, loss = config
    net = pccore.mlp(rt, WIDTHS, activation=act, bias=bias, init="xavier_uniform", seed=seed)
    if bias:  # the same non-zero biases everywhere, drawn on the host
        rng = np.random.default_rng(seed)
        net = net.with_params([p + rt.asarray(0.1 * rng.standard_normal(p.shape)) if p.ndim == 1 else p
                               for p in net.flat_params()])
    xh, yh = host_batch(WIDTHS, batch=7, seed=seed, onehot=loss == "ce")
    rng = np.random.default_rng(seed + 1)
    hidden = [rng.standard_normal((7, w)) for w in WIDTHS[1:-1]]
    return net, rt.asarray(xh), rt.asarray(yh), [rt.asarray(h) for h in hidden], loss


def _quantities(rt, config):
    """Host copies of everything a backend computes for one seed."""
    net, x, y, hidden, loss = _build(rt, config)
    h = rt.to_numpy
    return {
        "params": [h(p) for p in net.flat_params()],
        "forward": h(net.forward(x)),
        "ff_states": [h(s) for s in net.feedforward_states(x)],
        "state_energy": float(pccore.state_energy(net, x, y, hidden, loss)),
        "error_energy": float(pccore.error_energy(net, x, y, hidden, loss)),
        "state_grad": [h(g) for g in pccore.state_energy_grad(net, x, y, hidden, loss)],
        "error_grad": [h(g) for g in pccore.error_energy_grad(net, x, y, hidden, loss)],
        "weight_grads": [h(g) for g in net.structure.flatten(pccore.local_weight_grads(net, x, y, hidden, loss))],
    }


@pytest.fixture(scope="module")
def numpy_reference():
    cache = {}

    def get(config, dtype="float32"):
        if (config, dtype) not in cache:
            cache[config, dtype] = _quantities(pccore.runtime("numpy", dtype=dtype), config)
        return cache[config, dtype]

    return get


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_same_seed_same_numbers(rt32, numpy_reference, config):
    got, ref = _quantities(rt32, config), numpy_reference(config)
    for W, R in zip(got["params"], ref["params"]):  # initial weights are bit-identical
        np.testing.assert_array_equal(W, R)
    for key, value in ref.items():
        if isinstance(value, list):
            assert len(got[key]) == len(value), key
            for a, b in zip(got[key], value):
                _assert_close(a, b)
        else:
            _assert_close(got[key], value)


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_float32_is_close_to_float64(rt32, numpy_reference, config):
    """Not a tautology on the numpy backend: float32 results against float64 ones."""
    got, ref = _quantities(rt32, config), numpy_reference(config, "float64")
    for key in ("forward", "state_energy", "error_energy"):
        _assert_close(got[key], ref[key], rtol=1e-5)
    for a, b in zip(got["weight_grads"], ref["weight_grads"]):
        _assert_close(a, b, rtol=1e-4)


def test_analytic_equilibrium_across_backends(rt32):
    linear = ("linear", True, "mse")
    net, x, y, _, _ = _build(rt32, linear)
    eq = pccore.analytic.linear_equilibrium(net, x, y)
    ref_rt = pccore.runtime("numpy", dtype="float32")
    rnet, rx, ry, _, _ = _build(ref_rt, linear)
    ref = pccore.analytic.linear_equilibrium(rnet, rx, ry)
    _assert_close(rt32.to_numpy(eq.energy), ref_rt.to_numpy(ref.energy))
    for a, b in zip(eq.states, ref.states):
        _assert_close(rt32.to_numpy(a), ref_rt.to_numpy(b))


@pytest.mark.parametrize("method", [pccore.ErrorOptimization, pccore.StateOptimization])
@pytest.mark.parametrize("optimizer, lr", [("sgd", 0.1), ("momentum", 0.05), ("adam", 0.01)])
def test_inference_across_backends(rt32, method, optimizer, lr):
    """A few inference steps with each backend's own optimizer give the same point."""
    config = ("tanh", True, "mse")
    algo = method(iters=8, lr=lr, optimizer=optimizer)
    net, x, y, _, _ = _build(rt32, config)
    res = algo.run(net, x, y, runtime=rt32)
    ref_rt = pccore.runtime("numpy", dtype="float32")
    rnet, rx, ry, _, _ = _build(ref_rt, config)
    ref = algo.run(rnet, rx, ry, runtime=ref_rt)
    assert res.iterations == ref.iterations == 8
    _assert_close(float(res.energy), float(ref.energy))
    for a, b in zip(res.states, ref.states):
        _assert_close(rt32.to_numpy(a), ref_rt.to_numpy(b))
    start = float(pccore.error_energy(rnet, rx, ry, [ref_rt.xp.zeros_like(s) for s in ref.errors]))
    assert float(ref.energy) < start  # inference actually moved
