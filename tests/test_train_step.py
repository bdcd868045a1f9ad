"""The compiled training step: the same weights as the eager step (inference run + local
gradients + update) on every backend, for EO, SO and BP, MLP and CNN, with and without
observers; ``log_every`` changes only when numbers reach the host; divergence is named."""

from __future__ import annotations

import numpy as np
import pytest

import pccore
from pccore.errors import InputError, TrainingDiverged
from pccore.nn import cnn

STEPS = 20
TOL = {"float64": 1e-12, "float32": 1e-5}


def _data(model, n=64, seed=0):
    rng = np.random.default_rng(seed)
    shape = (1, 8, 8) if model == "cnn" else (12,)
    x = rng.standard_normal((n, *shape)).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, n)]
    return pccore.Dataset("toy", x, y, x[:16], y[:16])


def _net(rt, model):
    if model == "cnn":
        return cnn(rt, (1, 8, 8), 4, channels=(3, 4), seed=1)
    return pccore.mlp(rt, [12, 10, 8, 4], activation="tanh", bias=True, init="xavier_uniform", seed=1)


def _trainer(rt, method, compile=True, **kw):
    inference = {"eo": pccore.ErrorOptimization(iters=5, lr=0.1),
                 "so": pccore.StateOptimization(iters=5, lr=0.1), "bp": None}[method]
    return pccore.Trainer(method, inference=inference, batch_size=16, runtime=rt, progress=False,
                          compile=compile, **kw)


def _steps(rt, method, model, compile, observers=()):
    """Weights and (loss, energy) after STEPS session steps on fixed batches."""
    for plugin in observers:
        rt.register(plugin)
    data = _data(model)
    session = _trainer(rt, method, compile).session(_net(rt, model))
    assert session.eager == (not compile or (bool(observers) and method != "bp"))
    metrics = []
    for i in range(STEPS):
        j = (i % 4) * 16
        loss, energy = session.step(rt.asarray(data.x_train[j:j + 16]), rt.asarray(data.y_train[j:j + 16]))
        metrics.append((float(rt.to_numpy(loss)), None if energy is None else float(rt.to_numpy(energy))))
    for plugin in observers:
        rt.unregister(plugin)
    return [rt.to_numpy(p) for p in session.params], metrics


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("model", ["mlp", "cnn"])
@pytest.mark.parametrize("method", ["eo", "so", "bp"])
def test_compiled_step_matches_eager_step(backend, method, model, dtype):
    rt = pccore.runtime(backend, dtype=dtype)
    compiled, m1 = _steps(rt, method, model, True)
    eager, m2 = _steps(rt, method, model, False)
    for a, b in zip(compiled, eager):
        np.testing.assert_allclose(a, b, rtol=TOL[dtype], atol=TOL[dtype])
    np.testing.assert_allclose(np.array(m1, dtype=float), np.array(m2, dtype=float), rtol=1e-4 if dtype == "float32" else 1e-10)
    assert np.isfinite([loss for loss, _ in m1]).all()


@pytest.mark.parametrize("method", ["eo", "so"])
def test_observers_run_the_step_eagerly_with_the_same_numbers(backend, method):
    from pccore_trackers import EnergyTrace, History

    rt = pccore.runtime(backend, dtype="float64")
    plain, _ = _steps(rt, method, "mlp", True)
    trace = EnergyTrace()
    seen, _ = _steps(rt, method, "mlp", True, observers=[History(every=2), trace])
    assert len(trace.energies) > 0  # the tracker saw the last run's points
    for a, b in zip(plain, seen):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_log_every_only_changes_when_numbers_reach_the_host(backend):
    rt = pccore.runtime(backend, dtype="float64")
    seen = []

    class Steps:
        @pccore.hookimpl
        def pccore_train_step(self, info):
            seen.append((info.step, info.loss, info.energy))

    runs = []
    for log_every in (1, 3, 50):
        rt.register(plugin := Steps())
        net, history = _trainer(rt, "eo", log_every=log_every).fit(_net(rt, "mlp"), _data("mlp"), epochs=2,
                                                                   eval_every=3)
        rt.unregister(plugin)
        runs.append(([rt.to_numpy(p) for p in net.flat_params()], history.as_dict(), list(seen)))
        seen.clear()
    for params, history, steps in runs[1:]:
        for a, b in zip(params, runs[0][0]):
            np.testing.assert_array_equal(a, b)
        assert history == runs[0][1]
        assert steps == runs[0][2] and [s for s, _, _ in steps] == list(range(1, 9))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_is_named(backend):
    rt = pccore.runtime(backend, dtype="float32")
    data = _data("mlp")
    trainer = pccore.Trainer("bp", optimizer="sgd", lr=1e30, batch_size=16, runtime=rt, progress=False, log_every=2)
    with pytest.raises(TrainingDiverged, match=r"bp training diverged at step \d+: the loss .*\(sgd weight update, lr=1e\+30\)"):
        trainer.fit(_net(rt, "mlp"), data, epochs=3)
    eo = _trainer(rt, "eo")
    eo.inference = pccore.ErrorOptimization(iters=30, lr=1e6)
    with pytest.raises(TrainingDiverged, match=r"eo training diverged at step 1: the inference energy .*\(EO "
                                               r"inference, lr=1e\+06\)"):
        eo.fit(_net(rt, "mlp"), data, epochs=1)


def test_trainer_options_are_checked():
    with pytest.raises(InputError, match="log_every must be an integer >= 1"):
        pccore.Trainer("eo", log_every=0)
    with pytest.raises(InputError, match="compile must be True or False"):
        pccore.Trainer("eo", compile="yes")


def test_threads_option(backend):
    rt = pccore.runtime(backend, threads=1)
    assert rt.threads == 1
    if backend == "torch":
        import torch

        assert torch.get_num_threads() == 1
    with pytest.raises(InputError, match="threads must be None or an integer >= 1"):
        pccore.runtime(backend, threads=0)
