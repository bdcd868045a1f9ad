"""Continuous-time inference (ErrorODE / StateODE): adaptive Euler and Heun reach the closed-form
linear equilibrium and a long EO run's end point, fixed-step Euler is gradient descent with
lr = dt, the solvers' orders against the exact solution of the linear ODE, adaptive steps
against fixed ones, observed runs, t1, training, divergence and bad settings."""

from __future__ import annotations

import numpy as np
import pytest

import pccore
from pccore_trackers import History

ODES = {"EO": pccore.ErrorODE, "SO": pccore.StateODE}
GD = {"EO": pccore.ErrorOptimization, "SO": pccore.StateOptimization}
WIDTHS = [4, 6, 5, 3]


def linear_net(rt):
    """A deep linear net whose error Hessian spans 1..44 (a stiff ODE)."""
    return pccore.mlp(rt, WIDTHS, activation="linear", bias=True, init="xavier_uniform", gain=2.0, seed=3)


def tanh_net(rt):
    return pccore.mlp(rt, [5, 6, 6, 6, 3], activation="tanh", bias=True, init="xavier_uniform", seed=1)


def batch(rt, net, size=5, seed=0):
    rng = np.random.default_rng(seed)
    return (rt.asarray(rng.standard_normal((size, net.widths[0]))),
            rt.asarray(rng.standard_normal((size, net.widths[-1]))))


def flat(rt, arrays):
    """Host (batch, n) with every hidden layer's entries side by side."""
    return np.concatenate([rt.to_numpy(a).reshape(a.shape[0], -1) for a in arrays], axis=1)


def variables(method, result):
    return result.errors if method == "EO" else result.states


# ------------------------------------------------------------- equilibria
@pytest.mark.parametrize("method", ["EO", "SO"])
@pytest.mark.parametrize("solver", ["euler", "heun"])
def test_adaptive_reaches_the_linear_equilibrium(rt64, method, solver):
    net = linear_net(rt64)
    x, y = batch(rt64, net)
    eq = pccore.analytic.linear_equilibrium(net, x, y)
    # t1 far away: the steady-state stop comes first
    res = ODES[method](solver=solver, tol=1e-10, t1=1e4, max_steps=2000).run(net, x, y)
    assert res.converged and res.stopped == "tol" and res.iterations < 2000
    for got, want in ((res.states, eq.states), (res.errors, eq.errors)):
        got, want = flat(rt64, got), flat(rt64, want)
        assert np.linalg.norm(got - want) <= 1e-8 * np.linalg.norm(want)


def test_end_point_agrees_with_a_long_eo_run_on_a_tanh_net(rt64):
    net = tanh_net(rt64)
    x, y = batch(rt64, net, size=4, seed=3)
    eo = pccore.ErrorOptimization(iters=5000, lr=0.1, tol=1e-12).run(net, x, y)
    heun = pccore.ErrorODE(solver="heun", tol=1e-12, max_steps=3000).run(net, x, y)
    euler = pccore.StateODE(solver="euler", tol=1e-12, max_steps=3000).run(net, x, y)
    assert eo.converged and heun.converged and euler.converged
    for res in (heun, euler):
        np.testing.assert_allclose(flat(rt64, res.states), flat(rt64, eo.states), rtol=0, atol=1e-9)
        np.testing.assert_allclose(flat(rt64, res.errors), flat(rt64, eo.errors), rtol=0, atol=1e-9)


# ------------------------------------------------- fixed Euler = gradient descent
@pytest.mark.parametrize("method", ["EO", "SO"])
def test_fixed_step_euler_is_gradient_descent_with_lr_dt(rt64, method):
    """Every iterate: fused runs of n = 1..12 steps (one compilation each on JAX: n is traced)."""
    net = tanh_net(rt64)
    x, y = batch(rt64, net, size=4, seed=3)
    for n in range(1, 13):
        ode = ODES[method](solver="euler", adaptive=False, dt=0.1, max_steps=n).run(net, x, y)
        gd = GD[method](iters=n, lr=0.1).run(net, x, y)
        assert ode.iterations == gd.iterations == n
        for a, b in ((ode.states, gd.states), (ode.errors, gd.errors)):
            np.testing.assert_allclose(flat(rt64, a), flat(rt64, b), rtol=1e-13, atol=1e-15)
        assert float(rt64.to_numpy(ode.energy)) == pytest.approx(float(rt64.to_numpy(gd.energy)), rel=1e-13)


def test_an_observed_adaptive_run_equals_the_fused_one(rt64):
    net = linear_net(rt64)
    x, y = batch(rt64, net)
    ode = pccore.ErrorODE(solver="heun", tol=1e-10, t1=1e4, max_steps=2000)  # as above: compiled once
    fused = ode.run(net, x, y)
    history = rt64.register(History())
    seen = ode.run(net, x, y, runtime=rt64)
    rt64.unregister(history)
    assert seen.iterations == fused.iterations and history.iterations == list(range(fused.iterations + 1))
    assert seen.converged and fused.converged
    np.testing.assert_allclose(flat(rt64, seen.errors), flat(rt64, fused.errors), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(history.errors[-1][1], rt64.to_numpy(fused.errors[1]), rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------- orders of accuracy
def _dense_problem(method):
    """y' = -(H y + b) per sample for ``linear_net`` on ``batch``, on the host: H (batch, n, n)
    and b (batch, n) from NumPy gradients at unit vectors (exact: the energy is quadratic),
    and the start point (zero errors, or the feed-forward states)."""
    rt = pccore.runtime("numpy", dtype="float64")  # same seed, same weights on every backend
    net = linear_net(rt)
    x, y = batch(rt, net)
    grad = pccore.error_energy_grad if method == "EO" else pccore.state_energy_grad
    shapes = [(x.shape[0], w) for w in net.widths[1:-1]]
    cuts = np.cumsum([s[1] for s in shapes])[:-1]

    def at(v):
        return flat(rt, grad(net, x, y, list(np.split(v, cuts, axis=1))))

    n = sum(s[1] for s in shapes)
    b = at(np.zeros((x.shape[0], n)))
    H = np.stack([at(np.tile(np.eye(n)[j], (x.shape[0], 1))) - b for j in range(n)], axis=2)
    zeros = [np.zeros(s) for s in shapes]
    start = np.zeros_like(b) if method == "EO" else flat(rt, pccore.states_from_errors(net, x, zeros))
    return H, b, start


def _exact(H, b, start, t):
    """The exact solution at time t, by eigendecomposition of each (symmetric) H."""
    out = []
    for h, c, y0 in zip(H, b, start):
        lam, V = np.linalg.eigh(0.5 * (h + h.T))
        fixed = -np.linalg.solve(h, c)
        out.append(fixed + V @ (np.exp(-lam * t) * (V.T @ (y0 - fixed))))
    return np.array(out)


def test_halving_dt_divides_the_error_by_two_for_euler_and_four_for_heun(rt64):
    method = "EO"
    net = linear_net(rt64)
    x, y = batch(rt64, net)
    H, b, start = _dense_problem(method)
    t1 = 0.5
    exact = _exact(H, b, start, t1)
    for solver, order in (("euler", 1), ("heun", 2)):
        errors = []
        for dt in (1 / 64, 1 / 128):
            res = ODES[method](solver=solver, adaptive=False, dt=dt, t1=t1, tol=1e-10, max_steps=1000).run(net, x, y)
            # stopped at t1, short of the steady state
            assert res.stopped == "t1" and res.iterations == round(t1 / dt) and not res.converged
            errors.append(np.abs(flat(rt64, variables(method, res)) - exact).max())
        assert errors[0] / errors[1] == pytest.approx(2 ** order, rel=0.1), (solver, errors)


def test_adaptive_steps_reach_the_steady_state_in_fewer_steps_than_fixed_euler(rt64):
    """No step size to choose (even a first step of 1e30 is cut down, not diverging), and fewer
    steps than fixed-step Euler (gradient descent) with any stable step tried (each adaptive
    step evaluates the gradient twice)."""
    net = linear_net(rt64)
    x, y = batch(rt64, net)
    lam = np.linalg.eigvalsh(_dense_problem("EO")[0])
    adaptive = pccore.ErrorODE(solver="euler", dt=1e30, tol=1e-10, max_steps=2000).run(net, x, y)
    assert adaptive.converged
    for fraction in (0.7, 0.9):
        fixed = pccore.ErrorODE(solver="euler", adaptive=False, dt=fraction * 2 / lam.max(), tol=1e-10,
                                max_steps=5000).run(net, x, y)
        assert fixed.converged and adaptive.iterations < fixed.iterations, fraction
        np.testing.assert_allclose(flat(rt64, adaptive.errors), flat(rt64, fixed.errors), rtol=0, atol=1e-9)


# --------------------------------------------------------------------- training
@pytest.mark.parametrize("method", ["eo", "so"])
def test_trainer_with_ode_inference_matches_an_eager_numpy_run(backend, method):
    rng = np.random.default_rng(5)
    w = rng.standard_normal((3, 6))
    xs = rng.standard_normal((80, 6))
    ys = np.eye(3)[np.argmax(xs @ w.T, axis=1)]
    data = pccore.Dataset("teacher", xs[:64], ys[:64], xs[64:], ys[64:])
    results = {}
    for name, compiled in {("numpy", False), (backend, True)}:
        rt = pccore.runtime(name, dtype="float64")
        net = pccore.mlp(rt, [6, 8, 3], activation="tanh", bias=True, seed=0)
        inference = ODES[method.upper()](solver="heun", t1=2.0, max_steps=40)
        trainer = pccore.Trainer(method, inference=inference, lr=1e-2, batch_size=16, progress=False,
                                 compile=compiled)
        trained, hist = trainer.fit(net, data, epochs=1)
        results[compiled] = ([rt.to_numpy(p) for p in trained.flat_params()], hist.loss)
    for a, b in zip(results[False][0], results[True][0]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(results[False][1], results[True][1], rtol=1e-10)
    assert len(results[True][1]) == 4 and np.all(np.isfinite(results[True][1]))


# ------------------------------------------------------------- divergence, input
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_names_the_solver_setting(rt64):
    net = linear_net(rt64)
    x, y = batch(rt64, net)
    with pytest.raises(pccore.InferenceDiverged, match=r"EO diverged.*iteration \d+ with solver=euler, dt=1e\+30"):
        pccore.ErrorODE(solver="euler", adaptive=False, dt=1e30, max_steps=100).run(net, x, y)


@pytest.mark.parametrize("kwargs,match", [
    ({"solver": "rk4"}, "solver must be one of"),
    ({"adaptive": 1}, "adaptive must be True or False"),
    ({"dt": 0}, "dt must be a finite number > 0"),
    ({"dt": float("inf")}, "dt must be a finite number > 0"),
    ({"rtol": -1e-3}, "rtol must be a finite number >= 0"),
    ({"rtol": float("nan")}, "rtol must be a finite number >= 0"),
    ({"atol": 0.0}, "atol must be a finite number > 0"),
    ({"atol": True}, "atol must be a finite number > 0"),
    ({"max_steps": 0}, "max_steps must be an integer >= 1"),
    ({"max_steps": 2.5}, "max_steps must be an integer >= 1"),
    ({"t1": -1.0}, "t1 must be a finite number > 0"),
    ({"t1": "10"}, "t1 must be a finite number > 0"),
    ({"tol": float("inf")}, "tol must be None or a finite number"),
    ({"pcoeff": float("nan")}, "pcoeff must be a finite number >= 0"),
    ({"icoeff": -0.1}, "icoeff must be a finite number >= 0"),
    ({"dcoeff": None}, "dcoeff must be a finite number >= 0"),
    ({"pcoeff": 0.0, "icoeff": 0.0}, "pcoeff \\+ icoeff \\+ dcoeff must be > 0"),
])
def test_bad_settings_are_named(kwargs, match):
    for cls in (pccore.ErrorODE, pccore.StateODE):
        with pytest.raises(pccore.InputError, match=match):
            cls(**kwargs)


def test_settings_and_trainer_compatibility():
    ode = pccore.StateODE(solver="euler", adaptive=False, dt=0.25)
    assert ode.setting == "solver=euler, dt=0.25" and ode.method == "SO" and ode.max_steps == 500
    assert pccore.ErrorODE(rtol=1e-6).setting == "solver=heun, rtol=1e-06, atol=0.001"
    with pytest.raises(pccore.InputError, match="method='so' needs an inference method on the states"):
        pccore.Trainer("so", inference=pccore.ErrorODE())
