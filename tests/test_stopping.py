"""Stopping on what users measure: a target distance to reference states, and observers
asking the loop to stop; on every backend, fused and observed runs alike."""

from __future__ import annotations

import numpy as np
import pytest

import pccore

WIDTHS = [4, 6, 5, 3]


def _batch(rt, seed=0, n=8):
    rng = np.random.default_rng(seed)
    return rt.asarray(rng.standard_normal((n, WIDTHS[0]))), rt.asarray(rng.standard_normal((n, WIDTHS[-1])))


def _distance(rt, states, reference):
    """||s - s_ref|| / ||s_ref|| computed on the host (the oracle)."""
    s = np.concatenate([rt.to_numpy(a).ravel() for a in states])
    r = np.concatenate([rt.to_numpy(a).ravel() for a in reference])
    return np.linalg.norm(s - r) / np.linalg.norm(r)


class _StopAt:
    """Observer that asks to stop at a given iteration."""

    def __init__(self, at):
        self.at, self.seen = at, []

    @pccore.hookimpl
    def pccore_inference_step(self, step):
        self.seen.append(step.iteration)
        if step.iteration == self.at:
            step.request_stop()


@pytest.mark.parametrize("method", ["EO", "SO"])
def test_target_stops_at_first_point_within_rtol(rt64, method):
    net = pccore.mlp(rt64, WIDTHS, activation="tanh", seed=1)
    x, y = _batch(rt64)
    cls = pccore.ErrorOptimization if method == "EO" else pccore.StateOptimization
    reference = cls(3000, 0.1, tol=1e-13).run(net, x, y).states
    rtol = 1e-4
    result = cls(3000, 0.1).run(net, x, y, target=pccore.Target(reference, rtol))
    n = result.iterations
    assert result.stopped == "target" and 0 < n < 3000
    assert result.distance == pytest.approx(_distance(rt64, result.states, reference), rel=1e-8)
    assert result.distance <= rtol
    before = cls(n - 1, 0.1).run(net, x, y).states  # one update earlier: still too far
    assert _distance(rt64, before, reference) > rtol


def test_target_same_in_observed_run(backend):
    rt = pccore.runtime(backend, dtype="float64", plugins=[_StopAt(-1)])
    net = pccore.mlp(rt, WIDTHS, activation="linear", seed=2)
    x, y = _batch(rt, 1)
    eq = pccore.analytic.linear_equilibrium(net, x, y)
    target = pccore.Target(eq.states, 1e-7)
    fused = pccore.ErrorOptimization(500, 0.1).run(net, x, y, target=target)
    observed = pccore.ErrorOptimization(500, 0.1).run(net, x, y, runtime=rt, target=target)
    assert observed.iterations == fused.iterations and observed.stopped == fused.stopped == "target"
    np.testing.assert_allclose(rt.to_numpy(observed.errors[0]), rt.to_numpy(fused.errors[0]), rtol=1e-12, atol=1e-14)


def test_tol_reported_as_stop_reason(rt64):
    net = pccore.mlp(rt64, WIDTHS, activation="tanh", seed=1)
    x, y = _batch(rt64)
    result = pccore.ErrorOptimization(3000, 0.1, tol=1e-6).run(net, x, y)
    assert result.stopped == "tol" and result.converged and result.distance is None
    full = pccore.ErrorOptimization(5, 0.1).run(net, x, y)
    assert full.stopped is None and full.iterations == 5


def test_observer_stops_the_loop(backend):
    stop = _StopAt(7)
    rt = pccore.runtime(backend, dtype="float64", plugins=[stop])
    net = pccore.mlp(rt, WIDTHS, activation="tanh", seed=3)
    x, y = _batch(rt, 2)
    result = pccore.ErrorOptimization(100, 0.1).run(net, x, y, runtime=rt)
    assert result.iterations == 7 and result.stopped == "observer" and stop.seen[-1] == 7
    plain = pccore.ErrorOptimization(7, 0.1).run(net, x, y)  # same point as 7 fused updates
    np.testing.assert_allclose(rt.to_numpy(result.errors[1]), rt.to_numpy(plain.errors[1]), rtol=1e-12, atol=1e-15)


def test_newton_with_target(rt64):
    net = pccore.mlp(rt64, WIDTHS, activation="linear", seed=4)
    x, y = _batch(rt64, 3)
    eq = pccore.analytic.linear_equilibrium(net, x, y)
    result = pccore.NewtonCG(max_iters=5, cg_iters=5).run(net, x, y, target=pccore.Target(eq.states, 1e-9))
    assert result.stopped == "target" and result.iterations == 1 and result.distance <= 1e-9


def test_bad_targets(rt64):
    net = pccore.mlp(rt64, WIDTHS, seed=0)
    x, y = _batch(rt64)
    eo = pccore.ErrorOptimization(5, 0.1)
    with pytest.raises(pccore.InputError, match="target must be a pccore.Target"):
        eo.run(net, x, y, target=[x])
    with pytest.raises(pccore.InputError, match="target has 1 states; the network has 2"):
        eo.run(net, x, y, target=pccore.Target([x]))
    with pytest.raises(pccore.InputError, match=r"target state 0 must have shape \(8, 6\)"):
        eo.run(net, x, y, target=pccore.Target([x, x]))
    for bad in (float("nan"), -1.0, "1e-6"):
        with pytest.raises(pccore.InputError, match="rtol"):
            pccore.Target([x, x], bad)
    with pytest.raises(pccore.InputError, match="list of arrays"):
        pccore.Target("states")
