"""Tracker plugins: History, EnergyTrace, DistanceToOptimum, GradientAlignment, loading by
name, and a third-party tracker found through the same entry-point group."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

import pccore
from conftest import host_batch
from pccore_trackers import (
    DistanceToOptimum,
    EnergyTrace,
    GradientAlignment,
    History,
    cosine_similarity,
)

METHODS = {"EO": pccore.ErrorOptimization, "SO": pccore.StateOptimization}
WIDTHS = [6, 8, 8, 8, 3]  # 3 hidden layers


def setup(backend, widths=WIDTHS, plugins=(), bias=True, batch=5):
    """float64 runtime, a slightly perturbed orthogonal linear net and a batch."""
    rt = pccore.runtime(backend, dtype="float64", plugins=plugins)
    net = pccore.mlp(rt, widths, bias=bias, seed=1)
    rng = np.random.default_rng(7)
    net = net.with_params([
        rt.asarray(rt.to_numpy(p) + 0.1 * rng.standard_normal(p.shape) / np.sqrt(p.shape[-1]))
        for p in net.flat_params()
    ])
    x, y = (rt.asarray(a) for a in host_batch(widths, batch=batch, seed=3))
    return rt, net, x, y


def find(rt, cls):
    (plugin,) = [p for p in rt.plugins if isinstance(p, cls)]
    return plugin


class ToNumpyCounter:
    """Spy on the backend's host-copy hook (returns None so the backend still answers)."""

    def __init__(self):
        self.calls = 0

    @pccore.hookimpl
    def pccore_to_numpy(self, array):
        self.calls += 1


# ------------------------------------------------------------------ History
@pytest.mark.parametrize("method", ["EO", "SO"])
def test_history_records_every_kth_step_and_the_last(backend, method):
    rt, net, x, y = setup(backend)
    history = rt.register(History(every=4, layers=[0, -1]))
    res = METHODS[method](iters=10, lr=0.1).run(net, x, y, runtime=rt)
    assert history.iterations == [0, 4, 8, 10]
    assert len(history.states) == len(history.errors) == len(history.energies) == 4
    assert all(set(d) == {0, 2} for d in history.states + history.errors)
    assert history.states[0][2].shape == (5, 8) and isinstance(history.states[0][2], np.ndarray)
    # the last record is the result; the first is the feed-forward pass (copied, not live)
    for k in (0, 2):
        assert np.array_equal(history.states[-1][k], rt.to_numpy(res.states[k]))
        assert np.array_equal(history.errors[-1][k], rt.to_numpy(res.errors[k]))
    ff = net.feedforward_states(x)
    np.testing.assert_allclose(history.states[0][0], rt.to_numpy(ff[0]), rtol=1e-14)
    assert np.all(history.errors[0][0] == 0) if method == "EO" else np.allclose(history.errors[0][0], 0)
    assert history.energies[-1] == float(rt.to_numpy(res.energy))
    assert history.energies[0] > history.energies[-1]


def test_history_copies_only_at_recorded_steps_and_resets(backend):
    rt, net, x, y = setup(backend)
    history = rt.register(History(every=7))
    spy = rt.register(ToNumpyCounter())
    pccore.ErrorOptimization(iters=70, lr=0.1).run(net, x, y, runtime=rt)
    assert history.iterations == list(range(0, 71, 7))
    # nothing at the 60 other steps (+1: the run reads its end status once)
    assert 0 < spy.calls <= 2 * len(history.iterations) + 1
    pccore.StateOptimization(iters=3, lr=0.1).run(net, x, y, runtime=rt)
    assert history.iterations == [0, 3] and len(history.states) == 2  # one run per History


def test_history_with_tol_records_the_stopping_step(backend):
    rt, net, x, y = setup(backend)
    history = rt.register(History(every=1000))
    res = pccore.ErrorOptimization(iters=5000, lr=0.1, tol=1e-6).run(net, x, y, runtime=rt)
    assert res.converged and res.iterations < 1000
    assert history.iterations == [0, res.iterations]


def test_tracker_arguments_are_checked():
    with pytest.raises(pccore.InputError, match="every must be an integer >= 1"):
        History(every=0)
    with pytest.raises(pccore.InputError, match="layers"):
        History(layers="0")
    with pytest.raises(pccore.InputError, match="layers"):
        History(layers=[0.5])
    with pytest.raises(pccore.InputError, match="optimum"):
        DistanceToOptimum([])
    with pytest.raises(pccore.InputError, match=r"layers \[3\] out of range"):
        DistanceToOptimum([np.zeros((2, 3))] * 3, layers=[3])


def test_history_layer_out_of_range_is_named(backend):
    rt, net, x, y = setup(backend)
    rt.register(History(layers=[5]))
    with pytest.raises(pccore.InputError, match=r"layers \[5\] out of range"):
        pccore.ErrorOptimization(iters=2, lr=0.1).run(net, x, y, runtime=rt)


# -------------------------------------------------------------- EnergyTrace
def test_energy_trace_matches_history_and_decreases(backend):
    rt, net, x, y = setup(backend)
    trace = rt.register(EnergyTrace(every=3))
    history = rt.register(History(every=3))
    res = pccore.StateOptimization(iters=20, lr=0.1).run(net, x, y, runtime=rt)
    assert list(trace.iterations) == [0, 3, 6, 9, 12, 15, 18, 20]
    assert isinstance(trace.energies, np.ndarray) and trace.energies.shape == (8,)
    np.testing.assert_array_equal(trace.energies, history.energies)
    assert trace.energies[-1] == float(rt.to_numpy(res.energy))
    assert np.all(np.diff(trace.energies) < 0)  # gradient descent on a convex quadratic, small lr


# -------------------------------------------------------- DistanceToOptimum
@pytest.mark.parametrize("method,lr", [("EO", 0.1), ("SO", 0.3)])
def test_distance_to_optimum_goes_to_zero(backend, method, lr):
    rt, net, x, y = setup(backend)
    eq = pccore.analytic.linear_equilibrium(net, x, y)
    host_optimum = [rt.to_numpy(s) for s in eq.states]
    absolute = rt.register(DistanceToOptimum(eq.states, every=5))
    relative = rt.register(DistanceToOptimum(host_optimum, layers=[1], relative=True, every=5))
    history = rt.register(History(every=5))
    METHODS[method](iters=600, lr=lr).run(net, x, y, runtime=rt)
    d = absolute.distances
    assert set(d) == {0, 1, 2} and d[0].shape == (len(absolute.iterations), 5)
    assert list(absolute.iterations) == history.iterations
    assert all(d[k][0].min() > 1e-3 and d[k][-1].max() < 1e-8 for k in d)
    # the backend arithmetic matches a host computation from History's copies
    for i, states in enumerate(history.states):
        for k in range(3):
            expect = np.linalg.norm(states[k] - host_optimum[k], axis=1)
            np.testing.assert_allclose(d[k][i], expect, rtol=1e-10, atol=1e-14)
    scale = np.linalg.norm(host_optimum[1], axis=1)
    np.testing.assert_allclose(relative.distances[1], d[1] / scale, rtol=1e-10, atol=1e-14)
    q1, med, q3 = relative.quartiles()
    assert q1.shape == med.shape == q3.shape == (len(relative.iterations),)
    assert np.all(q1 <= med) and np.all(med <= q3)
    assert np.allclose(med, np.median(relative.distances[1], axis=1))


def test_steps_to_threshold(backend):
    rt, net, x, y = setup(backend)
    eq = pccore.analytic.linear_equilibrium(net, x, y)
    tracker = rt.register(DistanceToOptimum(eq.states, relative=True, every=2))
    pccore.ErrorOptimization(iters=100, lr=0.1).run(net, x, y, runtime=rt)
    worst = np.max([np.median(tracker.distances[k], axis=1) for k in range(3)], axis=0)
    for threshold in (1e-2, 1e-5, 1e-9):
        step = tracker.steps_to(threshold)
        index = list(tracker.iterations).index(step)
        assert worst[index] < threshold and (index == 0 or worst[index - 1] >= threshold)
        assert all(tracker.steps_to(threshold, k) <= step for k in range(3))
    assert tracker.steps_to(1e6) == 0
    assert tracker.steps_to(0.0) is None
    with pytest.raises(pccore.InputError, match="layer must be given"):
        tracker.quartiles()


def test_distance_optimum_shape_mismatch_is_named(backend):
    rt, net, x, y = setup(backend)
    rt.register(DistanceToOptimum([np.zeros((5, 8))] * 2))
    with pytest.raises(pccore.InputError, match="optimum has 2 layers but the network has 3"):
        pccore.ErrorOptimization(iters=2, lr=0.1).run(net, x, y, runtime=rt)
    rt2, *_ = setup(backend)
    rt2.register(DistanceToOptimum([np.zeros((4, 8))] * 3))
    with pytest.raises(pccore.InputError, match=r"optimum\[0\] has shape \(4, 8\)"):
        pccore.ErrorOptimization(iters=2, lr=0.1).run(net, x, y, runtime=rt2)


# -------------------------------------------------------- GradientAlignment
def test_cosine_similarity_helper():
    a = np.arange(6.0).reshape(2, 3)
    assert cosine_similarity(a, a) == pytest.approx(1.0)
    assert cosine_similarity(a, -2 * a) == pytest.approx(-1.0)
    assert cosine_similarity([1, 0], [0, 3]) == 0.0
    assert cosine_similarity(np.zeros(3), [1, 2, 3]) == 0.0
    with pytest.raises(pccore.InputError, match="same number of elements"):
        cosine_similarity([1, 2], [1, 2, 3])


def test_gradient_alignment_at_equilibrium_is_one(backend):
    rt, net, x, y = setup(backend)
    batch = x.shape[0]
    eq = pccore.analytic.linear_equilibrium(net, x, y)
    reference = [g / batch for g in net.structure.flatten(pccore.local_weight_grads(net, x, y, eq.states))]
    host_ref = [rt.to_numpy(g) for g in reference]
    tracker = rt.register(GradientAlignment(net, x, y, reference, every=10))
    history = rt.register(History(every=10))
    pccore.ErrorOptimization(iters=300, lr=0.1).run(net, x, y, runtime=rt)
    assert set(tracker.cosine) == set(range(len(net.flat_params()))) == {0, 1, 2, 3, 4, 5, 6, 7}
    for k in tracker.cosine:
        assert tracker.cosine[k].shape == tracker.norms[k].shape == (31,)
        assert tracker.cosine[k][-1] == pytest.approx(1.0, abs=1e-10)
        assert tracker.norms[k][-1] == pytest.approx(np.linalg.norm(host_ref[k]), rel=1e-8)
    # hidden layers have zero local gradient at the feed-forward states: cosine 0 by convention
    assert tracker.cosine[0][0] == 0 and tracker.norms[0][0] == 0
    # backend arithmetic agrees with the host helper applied to History's states
    for i in (1, 5):
        states = [rt.asarray(history.states[i][k]) for k in range(3)]
        grads = net.structure.flatten(pccore.local_weight_grads(net, x, y, states))
        for k in (0, 3, 6):
            g = rt.to_numpy(grads[k]) / batch
            assert tracker.cosine[k][i] == pytest.approx(cosine_similarity(g, host_ref[k]), abs=1e-10)
            assert tracker.norms[k][i] == pytest.approx(np.linalg.norm(g), rel=1e-10)


def test_gradient_alignment_first_eo_step_aligns_with_backprop(backend):
    """After one tiny EO step the PC weight gradients point along backprop's (seed 000)."""
    rt, net, x, y = setup(backend, bias=False)
    batch, lr = x.shape[0], 1e-4
    W = [rt.to_numpy(p[0]) for p in net.params]
    s, inputs = rt.to_numpy(x), []
    for w in W:
        inputs.append(s)
        s = s @ w.T
    g, bp = s - rt.to_numpy(y), [None] * len(W)
    for k in range(len(W) - 1, -1, -1):
        bp[k] = g.T @ inputs[k] / batch
        g = g @ W[k]
    tracker = rt.register(GradientAlignment(net, x, y, bp, layers=[0, 1, 3]))
    pccore.ErrorOptimization(iters=1, lr=lr).run(net, x, y, runtime=rt)
    for k in (0, 1, 3):
        assert tracker.cosine[k][1] > 1 - 1e-3
    assert tracker.cosine[3][0] == pytest.approx(1.0)  # output layer at e = 0: exactly BP
    assert tracker.norms[0][1] == pytest.approx(lr * np.linalg.norm(bp[0]), rel=1e-3)


def test_gradient_alignment_reference_is_checked(backend):
    rt, net, x, y = setup(backend)
    with pytest.raises(pccore.InputError, match="one gradient per entry of net.flat_params"):
        GradientAlignment(net, x, y, [np.zeros((8, 6))])
    bad = [np.zeros(p.shape) for p in net.flat_params()]
    bad[2] = np.zeros((3, 3))
    with pytest.raises(pccore.InputError, match=r"reference\[2\] must have shape \(8, 8\)"):
        GradientAlignment(net, x, y, bad)


# ---------------------------------------------------------- plugins by name
def test_trackers_by_entry_point_name(backend):
    rt, net, x, y = setup(backend, plugins=["history", "energy_trace"])
    history, trace = find(rt, History), find(rt, EnergyTrace)
    pccore.ErrorOptimization(iters=4, lr=0.1).run(net, x, y, runtime=rt)
    assert history.iterations == [0, 1, 2, 3, 4] and list(trace.iterations) == [0, 1, 2, 3, 4]


def test_plugin_names_errors(backend):
    with pytest.raises(pccore.UnknownNameError, match=r"unknown plugin 'histroy'.*history"):
        pccore.runtime(backend, plugins=["histroy"])
    with pytest.raises(pccore.InputError, match="plugin 'distance_to_optimum' needs arguments.*pass an instance"):
        pccore.runtime(backend, plugins=["distance_to_optimum"])


THIRD_PARTY = '''
import pccore


class StepLog:
    """A tracker shipped by another package."""

    def __init__(self):
        self.events = []

    @pccore.hookimpl
    def pccore_inference_start(self, info):
        self.events.append(("start", info.method, info.iters))

    @pccore.hookimpl
    def pccore_inference_step(self, step):
        self.events.append(("step", step.iteration, float(step.runtime.to_numpy(step.energy))))

    @pccore.hookimpl
    def pccore_inference_end(self, result):
        self.events.append(("end", result.iterations))
'''


def test_third_party_tracker_through_entry_points(backend, tmp_path, monkeypatch):
    (tmp_path / "my_pccore_tracker.py").write_text(textwrap.dedent(THIRD_PARTY))
    info = tmp_path / "my_pccore_tracker-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-pccore-tracker\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[pccore.plugins]\nmy_tracker = my_pccore_tracker:StepLog\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "my_tracker" in pccore.registry.names(pccore.registry.PLUGINS)
    rt, net, x, y = setup(backend, plugins=["my_tracker"])
    (log,) = [p for p in rt.plugins if type(p).__name__ == "StepLog"]
    res = pccore.StateOptimization(iters=6, lr=0.1).run(net, x, y, runtime=rt)
    assert log.events[0] == ("start", "SO", 6) and log.events[-1] == ("end", 6)
    steps = log.events[1:-1]
    assert [s[1] for s in steps] == list(range(7))
    assert steps[-1][2] == float(rt.to_numpy(res.energy))
