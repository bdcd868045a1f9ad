"""Inference (EO and SO): equilibrium, first EO step = backprop, cross-backend agreement,
EO vs SO speed on a 20-layer net, observers never change results, tol, divergence, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import pccore
from conftest import BACKENDS, host_batch
from pccore_trackers import DistanceToOptimum, EnergyTrace, History

METHODS = {"EO": pccore.ErrorOptimization, "SO": pccore.StateOptimization}


# --------------------------------------------------------------------- helpers
def perturbed_net(rt, widths, eps=0.1, bias=False, activation="linear", seed=0):
    """Orthogonal init plus a small host-drawn perturbation of every parameter (biases too).

    Exactly orthogonal deep linear nets are degenerate for EO (S = depth * I, so lr = 1/depth
    solves EO in one step); the perturbation mimics the seed's briefly pretrained weights.
    """
    net = pccore.mlp(rt, widths, activation=activation, bias=bias, seed=seed)
    rng = np.random.default_rng(seed + 100)
    params = []
    for p in net.flat_params():
        host = rt.to_numpy(p)
        params.append(rt.asarray(host + eps * rng.standard_normal(host.shape) / np.sqrt(host.shape[-1])))
    return net.with_params(params)


def rel(a, b):
    """||a - b|| / ||b|| on host copies."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def host(rt, arrays):
    return [rt.to_numpy(a) for a in arrays]


# ------------------------------------------------------------- equilibrium
@pytest.mark.parametrize("method,lr", [("EO", 0.1), ("SO", 0.3)])
def test_converges_to_linear_equilibrium(backend, method, lr):
    rt = pccore.runtime(backend, dtype="float64")
    widths = [16] * 8 + [4]  # 8 layers
    net = perturbed_net(rt, widths, bias=True)
    x, y = (rt.asarray(a) for a in host_batch(widths, batch=8, seed=1))
    eq = pccore.analytic.linear_equilibrium(net, x, y)
    res = METHODS[method](iters=5000, lr=lr, tol=1e-11).run(net, x, y)
    assert res.converged and res.iterations < 5000
    for k, (s, o) in enumerate(zip(host(rt, res.states), host(rt, eq.states))):
        assert rel(s, o) < 1e-6, f"layer {k}"
    for e, o in zip(host(rt, res.errors), host(rt, eq.errors)):
        assert np.linalg.norm(e - o) < 1e-6 * np.linalg.norm(o) + 1e-12
    assert float(rt.to_numpy(res.energy)) == pytest.approx(float(np.sum(rt.to_numpy(eq.energy))), rel=1e-9)


# ------------------------------------------------------ first EO step = backprop
def _backprop_wrt_outputs(backend, rt, net, x, y):
    """dC/ds_k for each hidden output s_k (C = 1/2 ||yhat - y||^2), without pccore's gradients."""
    if backend == "torch":
        import torch

        def loss(deltas):
            s = x
            for (W, b), act, d in zip(net.params, ACTS, list(deltas) + [0.0]):
                s = act(s @ W.T + b) + d
            return 0.5 * torch.sum((s - y) ** 2)

        ACTS = [torch.tanh] * (net.depth - 1) + [lambda a: a]

        zeros = tuple(torch.zeros(x.shape[0], w, dtype=x.dtype, device=x.device) for w in net.widths[1:-1])
        return host(rt, torch.func.grad(loss)(zeros))
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        def loss(deltas):
            s = x
            for (W, b), act, d in zip(net.params, ACTS, list(deltas) + [0.0]):
                s = act(s @ W.T + b) + d
            return 0.5 * jnp.sum((s - y) ** 2)

        ACTS = [jnp.tanh] * (net.depth - 1) + [lambda a: a]

        zeros = tuple(jnp.zeros((x.shape[0], w), dtype=x.dtype) for w in net.widths[1:-1])
        return host(rt, jax.grad(loss)(zeros))
    # hand-written chain rule for tanh hidden layers and a linear output layer
    W = [rt.to_numpy(p[0]) for p in net.params]
    b = [rt.to_numpy(p[1]) for p in net.params]
    s, pre = rt.to_numpy(x), []
    for k in range(len(W)):
        a = s @ W[k].T + b[k]
        pre.append(a)
        s = a if k == len(W) - 1 else np.tanh(a)
    g, grads = s - rt.to_numpy(y), []
    for k in range(len(W) - 1, 0, -1):
        g = g @ W[k]  # dC/ds_{k-1} (host layer k-1's output)
        grads.append(g)
        g = g * (1 - np.tanh(pre[k - 1]) ** 2)
    return grads[::-1]


def test_first_eo_step_is_minus_lr_times_backprop(backend):
    rt = pccore.runtime(backend, dtype="float64")
    widths = [7, 9, 8, 6, 3]
    net = perturbed_net(rt, widths, eps=0.5, bias=True, activation="tanh", seed=3)
    x, y = (rt.asarray(a) for a in host_batch(widths, batch=5, seed=2))
    lr = 0.07
    res = pccore.ErrorOptimization(iters=1, lr=lr, optimizer="sgd").run(net, x, y)
    bp = _backprop_wrt_outputs(backend, rt, net, x, y)
    assert res.iterations == 1
    for k, (e, g) in enumerate(zip(host(rt, res.errors), bp)):
        assert np.abs(g).max() > 1e-3, "degenerate test data"
        np.testing.assert_allclose(e, -lr * g, rtol=1e-12, atol=1e-14, err_msg=f"layer {k}")


# -------------------------------------------------------------- cross-backend
def _cross_run(backend, dtype, method, optimizer, lr):
    rt = pccore.runtime(backend, dtype=dtype)
    widths = [10, 12, 12, 12, 12, 12, 4]
    net = perturbed_net(rt, widths, eps=0.3, bias=True, activation="tanh", seed=5)
    x, y = (rt.asarray(a) for a in host_batch(widths, batch=8, seed=5))
    res = METHODS[method](iters=100, lr=lr, optimizer=optimizer).run(net, x, y)
    return host(rt, res.states), float(rt.to_numpy(res.energy)), res.iterations


@pytest.mark.parametrize("method,optimizer,lr", [
    ("EO", "sgd", 0.1), ("EO", "momentum", 0.05), ("EO", "adam", 0.01), ("SO", "sgd", 0.2),
])
def test_same_result_across_backends(backend, method, optimizer, lr):
    states, energy, n = _cross_run(backend, "float32", method, optimizer, lr)
    references = [_cross_run("numpy", "float64", method, optimizer, lr)]
    if backend != "numpy":
        references.append(_cross_run("numpy", "float32", method, optimizer, lr))
    # on GPUs JAX multiplies float32 matrices in TF32 by default (jax_default_matmul_precision)
    tol = 1e-3 if backend == "jax" and not pccore.runtime("jax").device.startswith("cpu") else 1e-4
    for ref_states, ref_energy, ref_n in references:
        assert n == ref_n == 100
        for k, (s, r) in enumerate(zip(states, ref_states)):
            assert rel(s, r) < tol, f"layer {k}"
        assert energy == pytest.approx(ref_energy, rel=tol)


# ------------------------------------------------------ EO vs SO, 20 layers
def _steps_to(rt, method, lr, iters, net, x, y, optimum, threshold):
    """First iteration where max over layers of the batch-median relative distance to
    ``optimum`` is below ``threshold``; None if not within ``iters`` (or diverged)."""
    tracker = rt.register(DistanceToOptimum(optimum, relative=True))
    try:
        METHODS[method](iters=iters, lr=lr).run(net, x, y, runtime=rt)
    except pccore.InferenceDiverged:
        return None
    finally:
        rt.unregister(tracker)
    return tracker.steps_to(threshold)


def test_eo_reaches_optimum_20x_faster_than_so_on_20_layers(backend):
    """Seed 000's shape (d -> width x19 -> 10, orthogonal init, slightly perturbed), narrowed
    to width 32 and batch 8 to stay fast. Criterion: max over layers of the batch median of
    ||s_t - s*|| / ||s*|| below 1e-3. Each method at its best lr of a small grid; SO is capped
    at 20x EO's steps and "not reached within the cap" counts as the cap."""
    rt = pccore.runtime(backend, dtype="float64")
    widths = [32] + [32] * 19 + [10]
    net = perturbed_net(rt, widths, eps=0.1)
    x, y = (rt.asarray(a) for a in host_batch(widths, batch=8, seed=1))
    optimum = pccore.analytic.linear_equilibrium(net, x, y).states
    threshold = 1e-3
    eo = [_steps_to(rt, "EO", lr, 50, net, x, y, optimum, threshold) for lr in (0.05, 0.1, 0.2, 0.3)]
    eo_best = min(s for s in eo if s is not None)
    assert 1 < eo_best <= 20, eo
    cap = 20 * eo_best
    so = [_steps_to(rt, "SO", lr, cap, net, x, y, optimum, threshold) for lr in (0.1, 0.3, 0.5)]
    so_best = min(cap if s is None else s for s in so)
    assert so_best >= 20 * eo_best, (eo, so)


# -------------------------------------------------- observers change nothing
def _observer_run(backend, method, tol, trackers):
    rt = pccore.runtime(backend, dtype="float64")
    widths = [10, 12, 12, 12, 12, 12, 4]
    net = perturbed_net(rt, widths, eps=0.3, bias=True, activation="tanh", seed=5)
    x, y = (rt.asarray(a) for a in host_batch(widths, batch=8, seed=5))
    if trackers:
        optimum = [rt.to_numpy(s) for s in net.feedforward_states(x)]
        for t in (History(every=3), DistanceToOptimum(optimum, every=2), EnergyTrace()):
            rt.register(t)
        assert rt.observes("pccore_inference_step")
    res = METHODS[method](iters=250, lr=0.1, optimizer="momentum", tol=tol).run(net, x, y, runtime=rt)
    return res, host(rt, res.states), host(rt, res.errors), rt.to_numpy(res.energy)


@pytest.mark.parametrize("tol", [None, 1e-4])
@pytest.mark.parametrize("method", ["EO", "SO"])
def test_observers_never_change_results(backend, method, tol):
    fast, *fast_arrays = _observer_run(backend, method, tol, trackers=False)
    seen, *seen_arrays = _observer_run(backend, method, tol, trackers=True)
    assert (fast.iterations, fast.converged) == (seen.iterations, seen.converged)
    if tol is not None:
        assert fast.converged and fast.iterations < 250
    for a, b in zip(fast_arrays[:2], seen_arrays[:2]):
        for k, (u, v) in enumerate(zip(a, b)):
            assert np.array_equal(u, v), f"layer {k} differs"
    assert np.array_equal(fast_arrays[2], seen_arrays[2])


# ---------------------------------------------------------------------- tol
def _grad_rms(rt, method, net, x, y, res):
    """RMS of the gradient the method descends, at the result (what ``tol`` bounds)."""
    if method == "EO":
        grads = pccore.error_energy_grad(net, x, y, res.errors)
    else:
        grads = pccore.state_energy_grad(net, x, y, res.states)
    g = np.concatenate([rt.to_numpy(a).ravel() for a in grads])
    return float(np.sqrt(np.mean(g * g)))


@pytest.mark.parametrize("method,lr", [("EO", 0.1), ("SO", 0.3)])
def test_tol_stops_early_and_flags_convergence(backend, method, lr):
    rt = pccore.runtime(backend, dtype="float64")
    widths = [6, 8, 8, 8, 3]
    net = perturbed_net(rt, widths, bias=True)
    x, y = (rt.asarray(a) for a in host_batch(widths, batch=4, seed=0))
    tol = 1e-8
    done = METHODS[method](iters=3000, lr=lr, tol=tol).run(net, x, y)
    assert done.converged and 2 < done.iterations < 3000
    assert _grad_rms(rt, method, net, x, y, done) <= tol
    # the loop did not stop one step earlier, so two steps fewer are not converged
    short = METHODS[method](iters=done.iterations - 2, lr=lr, tol=tol).run(net, x, y)
    assert short.iterations == done.iterations - 2 and not short.converged
    assert _grad_rms(rt, method, net, x, y, short) > tol
    none = METHODS[method](iters=20, lr=lr).run(net, x, y)
    assert none.iterations == 20 and not none.converged
    unreachable = METHODS[method](iters=20, lr=lr, tol=1e-300).run(net, x, y)
    assert unreachable.iterations == 20 and not unreachable.converged


# ---------------------------------------------------------------- divergence
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("method,lr", [("EO", 30.0), ("SO", 30.0)])
def test_divergence_names_method_lr_and_first_bad_iteration(backend, method, lr):
    rt = pccore.runtime(backend, dtype="float64")
    widths = [6, 8, 8, 8, 3]
    net = perturbed_net(rt, widths)
    x, y = (rt.asarray(a) for a in host_batch(widths, batch=4, seed=0))
    opt = METHODS[method](iters=2000, lr=lr)
    with pytest.raises(pccore.InferenceDiverged) as fast:
        opt.run(net, x, y, runtime=rt)
    history = rt.register(History())
    with pytest.raises(pccore.InferenceDiverged) as seen:
        opt.run(net, x, y, runtime=rt)
    i = fast.value.iteration
    assert i == seen.value.iteration > 1
    assert f"{method} diverged" in str(fast.value) and f"iteration {i}" in str(fast.value)
    assert f"lr={lr:g}" in str(fast.value) and str(fast.value) == str(seen.value)
    # every step before i was finite and seen by the observer; i is the first non-finite one
    assert history.iterations == list(range(i)) and np.all(np.isfinite(history.energies))
    rt.unregister(history)
    ok = METHODS[method](iters=i - 1, lr=lr).run(net, x, y, runtime=rt)
    assert np.isfinite(float(rt.to_numpy(ok.energy)))


# ----------------------------------------------------------------- bad input
def _other_framework(backend):
    others = [b for b in BACKENDS if b != backend]
    return others[0] if others else None


def test_bad_inputs_are_named(backend):
    rt = pccore.runtime(backend, dtype="float64")
    widths = [5, 6, 3]
    net = pccore.mlp(rt, widths)
    xh, yh = host_batch(widths, batch=4)
    x, y = rt.asarray(xh), rt.asarray(yh)
    eo = pccore.ErrorOptimization(iters=3, lr=0.1)
    with pytest.raises(pccore.InputError, match=r"x must have shape \(\*, 5\)"):
        eo.run(net, rt.asarray(np.zeros((4, 4))), y)
    with pytest.raises(pccore.InputError, match=r"y must have shape \(4, 3\)"):
        eo.run(net, x, rt.asarray(np.zeros((4, 2))))
    with pytest.raises(pccore.InputError, match=r"y must have shape \(4, 3\)"):
        eo.run(net, x, rt.asarray(np.zeros((3, 3))))
    with pytest.raises(pccore.InputError, match="x must have a floating-point dtype"):
        eo.run(net, rt.xp.asarray(np.zeros((4, 5), dtype=np.int64)), y)
    other = _other_framework(backend)
    if other is not None:
        x_other = pccore.runtime(other, dtype="float64").asarray(xh)
        with pytest.raises(pccore.InputError, match="two frameworks"):
            eo.run(net, x_other, y)
        with pytest.raises(pccore.InputError, match="runtime"):
            eo.run(net, x, y, runtime=pccore.runtime(other, dtype="float64"))


@pytest.mark.parametrize("kwargs,match", [
    ({"iters": 0}, "iters must be an integer >= 1"),
    ({"iters": 2.5}, "iters must be an integer >= 1"),
    ({"iters": True}, "iters must be an integer >= 1"),
    ({"lr": 0.0}, "lr must be a number > 0"),
    ({"lr": -0.1}, "lr must be a number > 0"),
    ({"lr": "0.1"}, "lr must be a number > 0"),
    ({"tol": "1e-3"}, "tol must be None or a finite number >= 0"),
    ({"tol": -1.0}, "tol must be None or a finite number >= 0"),
    ({"tol": float("nan")}, "tol must be None or a finite number >= 0"),
    ({"optimizer": 3}, "optimizer must be a name"),
])
@pytest.mark.parametrize("method", ["EO", "SO"])
def test_bad_settings_are_named(method, kwargs, match):
    args = {"iters": 5, "lr": 0.1, **kwargs}
    with pytest.raises(pccore.InputError, match=match):
        METHODS[method](**args)


def test_unknown_optimizer_is_named(backend):
    rt = pccore.runtime(backend, dtype="float64")
    net = pccore.mlp(rt, [4, 5, 2])
    x, y = (rt.asarray(a) for a in host_batch([4, 5, 2], batch=3))
    with pytest.raises(pccore.UnknownNameError, match="unknown optimizer 'nesterov'.*sgd"):
        pccore.StateOptimization(iters=3, lr=0.1, optimizer="nesterov").run(net, x, y)
