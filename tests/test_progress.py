"""Progress on stderr: training, the lr sweeps, the tracked runs and the energy experiment show
a total (and tqdm's ETA), the latest loss/energy, nothing when disabled; updates come only at
the trainer's flushes; the progress observer of the tracked runs changes no result."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import pccore
from pccore import experiments
from pccore.train import progress as progress_module
from pccore.train import trainer as trainer_module

pytest.importorskip("tqdm")


def teacher_data(n_train=96, n_test=32, d_in=6, classes=3, seed=0):
    """Small synthetic classification set (host float32)."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((classes, d_in))
    x = rng.standard_normal((n_train + n_test, d_in)).astype(np.float32)
    y = np.eye(classes, dtype=np.float32)[np.argmax(x @ W.T, axis=1)]
    return pccore.Dataset("teacher", x[:n_train], y[:n_train], x[n_train:], y[n_train:])


def last_line(err: str) -> str:
    """The final state of a bar (tqdm rewrites its line with carriage returns)."""
    return [part for part in err.replace("\r", "\n").split("\n") if part.strip()][-1]


def test_training_bar_shows_total_eta_and_numbers(backend, capsys):
    net = pccore.mlp(pccore.runtime(backend), [6, 8, 3], seed=0)
    trainer = pccore.Trainer("eo", inference=pccore.ErrorOptimization(iters=5, lr=0.1), batch_size=32)
    trainer.fit(net, teacher_data(), epochs=2)  # 96 // 32 = 3 batches per epoch
    err = capsys.readouterr().err
    final = last_line(err)
    assert "[eo] epoch 2/2" in final and "6/6" in final and "100%" in final
    assert "loss=" in final and "energy=" in final and ("step/s" in final or "s/step" in final)
    assert "[eo] epoch 1/2" in err and "0/6" in err  # the bar starts with its total: an ETA follows
    assert capsys.readouterr().out == ""  # stderr only


def test_training_bar_total_counts_max_steps_and_resume(capsys, tmp_path):
    net = pccore.mlp(pccore.runtime("numpy"), [6, 8, 3], seed=0)
    trainer = pccore.Trainer("bp", batch_size=16)  # 6 batches per epoch
    trainer.fit(net, teacher_data(), epochs=3, max_steps=8, checkpoint=tmp_path)
    final = last_line(capsys.readouterr().err)
    assert "8/8" in final and "energy" not in final  # bp has no energy
    trainer.fit(net, teacher_data(), epochs=3, checkpoint=tmp_path, resume=True)
    err = capsys.readouterr().err
    assert "8/18" in err and "18/18" in last_line(err)  # resumed: starts at step 8 of 3 x 6


def test_no_output_when_disabled(backend, capsys):
    net = pccore.mlp(pccore.runtime(backend), [6, 8, 3], seed=0)
    pccore.Trainer("eo", batch_size=32, progress=False).fit(net, teacher_data())
    experiments.energy(teacher_data(), pccore.runtime("numpy"), width=4, depth=2, steps=2, batch_size=32,
                       iters=3, test_every=2)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_updates_only_at_flushes(monkeypatch):
    """The bar is told the step count at the trainer's host copies (every log_every steps and
    at the epoch end), never per step: progress adds no device-to-host sync."""
    seen = []

    class Recording(progress_module.Progress):
        def update(self, done, label=None, **postfix):
            seen.append((done, sorted(postfix)))
            super().update(done, label, **postfix)

    monkeypatch.setattr(trainer_module, "Progress", Recording)
    net = pccore.mlp(pccore.runtime("numpy"), [6, 8, 3], seed=0)
    pccore.Trainer("eo", batch_size=8, log_every=5, progress=False).fit(net, teacher_data(), epochs=1)
    assert seen == [(5, ["energy", "loss"]), (10, ["energy", "loss"]), (12, ["energy", "loss"])]


def test_plain_line_without_tqdm(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now fails
    assert progress_module._tqdm() is None
    net = pccore.mlp(pccore.runtime("numpy"), [6, 8, 3], seed=0)
    pccore.Trainer("eo", batch_size=32).fit(net, teacher_data(), epochs=2)
    final = last_line(capsys.readouterr().err)
    assert final.startswith("[eo] epoch 2/2: 6/6 step [") and "loss=" in final and "energy=" in final
    progress_module.write("a message")
    assert capsys.readouterr().err == "a message\n"


def test_plain_line_eta():
    line = progress_module._PlainLine("x", total=10, initial=0, unit="step")
    line.start -= 4.0  # 4 s for 2 of 10 steps: 16 s to go
    line.done = 2
    assert line._text().startswith("x: 2/10 step [00:04<00:16")


def test_inference_progress_observer_changes_nothing(backend, capsys):
    """The tracked runs' progress observer, beside a tracker with the same ``every``: the same
    states and energies, the same recorded points, and the bar reaches the run's length."""
    import pccore_trackers

    rt = pccore.runtime(backend, dtype="float64")
    net = pccore.mlp(rt, [5, 6, 6, 3], seed=0)
    rng = np.random.default_rng(0)
    x, y = rt.asarray(rng.standard_normal((8, 5))), rt.asarray(rng.standard_normal((8, 3)))
    runs = []
    for with_bar in (False, True):
        trace = pccore_trackers.EnergyTrace(every=4)
        observers = [trace]
        bar = progress_module.Progress(with_bar, "run", total=10, unit="it")
        if with_bar:
            observers.append(progress_module.InferenceProgress(bar, offset=0, every=trace.every))
        for o in observers:
            rt.register(o)
        try:
            res = pccore.ErrorOptimization(iters=10, lr=0.1).run(net, x, y, runtime=rt)
        finally:
            for o in observers:
                rt.unregister(o)
        bar.close()
        runs.append((res, trace.iterations.tolist(), trace.energies))
    (a, ia, ea), (b, ib, eb) = runs
    assert ia == ib == [0, 4, 8, 10]
    np.testing.assert_array_equal(ea, eb)
    for s, t in zip(a.states, b.states):
        np.testing.assert_array_equal(rt.to_numpy(s), rt.to_numpy(t))
    assert "10/10" in last_line(capsys.readouterr().err)


def test_experiment_bars_and_results_unchanged(capsys):
    """compare with progress: a bar per lr sweep (inference steps of all its lrs) and one for
    the tracked runs; the numbers are those of a run without progress."""
    rt = pccore.runtime("numpy", dtype="float64")
    data = teacher_data(n_train=64, d_in=5)
    kw = dict(depth=3, width=6, batch_size=16, pretrain_steps=2, eo_iters=10, so_iters=30,
              eo_lrs=(0.1, 0.3), so_lrs=(0.3,), layers=(0, 1))
    quiet = experiments.compare(data, rt, **kw)
    assert capsys.readouterr().err == ""
    shown = experiments.compare(data, rt, progress=True, **kw)
    err = capsys.readouterr().err
    assert "EO lr sweep" in err and "20/20" in err and "lr=0.3" in err and "score=" in err
    assert "SO lr sweep" in err and "30/30" in err
    assert "tracked runs (EO, SO)" in err and "40/40" in err
    assert "[bp] epoch 1/1" in err  # the pre-training's own bar
    for key in ("eo_dist", "so_dist", "eo_cos", "so_cos", "eo_norms", "so_norms"):
        for k in (0, 1):
            np.testing.assert_array_equal(shown.curves[key][k], quiet.curves[key][k])
    assert {k: v for k, v in shown.summary.items() if k != "seconds"} == \
        {k: v for k, v in quiet.summary.items() if k != "seconds"}


def test_energy_experiment_bar(capsys):
    data = teacher_data()
    experiments.energy(data, pccore.runtime("numpy"), width=4, depth=2, steps=4, batch_size=32,
                       iters=3, test_every=2, progress=True)
    final = last_line(capsys.readouterr().err)
    assert "PC training" in final and "4/4" in final
    assert "loss=" in final and "theory=" in final and "numerical=" in final


def test_cli_progress_and_quiet(tmp_path, capsys):
    pytest.importorskip("sklearn")
    from pccore.cli import main

    args = ["train", "--method", "bp", "--depth", "2", "--width", "8", "--steps", "3"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "[bp] epoch 1/1" in err and "3/3" in err and "loss=" in err
    assert main([*args, "--out", str(tmp_path / "b"), "--quiet"]) == 0
    assert capsys.readouterr().err == ""
