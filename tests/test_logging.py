"""What a run records and shows: the csv and tensorboard loggers (the trainer's own history is
the reference), their use from the command line with tracker arguments, and the compare
figures naming what was run (lrs, dataset, backend) on readable axes."""

from __future__ import annotations

import csv
import os
import struct
import sys

import numpy as np
import pytest

import pccore
from pccore import registry
from pccore.errors import InputError, MissingDependency

import pccore_trackers
from pccore_trackers import CSVLogger, TensorBoardLogger


def teacher_data(n_train=96, n_test=32, d_in=6, classes=3, seed=0):
    """Small synthetic classification set (host float32)."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((classes, d_in))
    x = rng.standard_normal((n_train + n_test, d_in)).astype(np.float32)
    y = np.eye(classes, dtype=np.float32)[np.argmax(x @ W.T, axis=1)]
    return pccore.Dataset("teacher", x[:n_train], y[:n_train], x[n_train:], y[n_train:])


def fit(backend, method, logger, epochs=2, **fit_kw):
    rt = pccore.runtime(backend, plugins=[logger])
    net = pccore.mlp(rt, [6, 8, 3], seed=0)
    inference = pccore.ErrorOptimization(iters=5, lr=0.1) if method == "eo" else None
    trainer = pccore.Trainer(method, inference=inference, batch_size=16, log_every=4, progress=False, runtime=rt)
    return trainer.fit(net, teacher_data(), epochs=epochs, **fit_kw)[1]


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


# ------------------------------------------------------------------- csv
@pytest.mark.parametrize("method", ["eo", "bp"])
def test_csv_logger_matches_the_history(backend, tmp_path, method):
    history = fit(backend, method, CSVLogger(tmp_path))
    header, rows = read_csv(tmp_path / "steps.csv")
    assert header == ["step", "epoch", "method", "loss", "energy"]
    assert [int(r[0]) for r in rows] == history.step == list(range(1, 13))  # 2 epochs x 6 batches
    assert [int(r[1]) for r in rows] == [1] * 6 + [2] * 6
    assert {r[2] for r in rows} == {method}
    assert [float(r[3]) for r in rows] == history.loss  # full precision, not rounded
    if method == "bp":
        assert {r[4] for r in rows} == {""}
    else:
        assert [float(r[4]) for r in rows] == history.energy
    header, rows = read_csv(tmp_path / "epochs.csv")
    assert header == ["epoch", "step", "train_loss", "test_loss", "test_accuracy"]
    assert [[float(v) for v in r] for r in rows] == [[e[k] for k in header] for e in history.epochs]


def test_csv_every_and_append_after_resume(tmp_path):
    logs, ck = tmp_path / "logs", tmp_path / "ck"
    fit("numpy", "bp", CSVLogger(logs, every=2), epochs=1, checkpoint=ck)
    history = fit("numpy", "bp", CSVLogger(logs, every=2, append=True), epochs=2, checkpoint=ck, resume=True)
    header, rows = read_csv(logs / "steps.csv")
    assert header[0] == "step" and [int(r[0]) for r in rows] == [2, 4, 6, 8, 10, 12]
    assert [float(r[3]) for r in rows] == history.loss[1::2]  # the resumed history holds all steps
    _, rows = read_csv(logs / "epochs.csv")
    assert [int(r[0]) for r in rows] == [1, 2]
    fit("numpy", "bp", CSVLogger(logs), epochs=1)  # append=False starts the tables afresh
    assert len(read_csv(logs / "steps.csv")[1]) == 6


def test_csv_rows_are_on_disk_during_training(tmp_path):
    """Line-buffered: what the logger was told is in the file before the run ends."""
    logger = CSVLogger(tmp_path)
    seen = []

    class Peek:
        @pccore.hookimpl
        def pccore_epoch_end(self, info):
            seen.append(len(read_csv(tmp_path / "steps.csv")[1]))

    rt = pccore.runtime("numpy", plugins=[logger, Peek()])
    net = pccore.mlp(rt, [6, 8, 3], seed=0)
    pccore.Trainer("bp", batch_size=16, progress=False, runtime=rt).fit(net, teacher_data(), epochs=2)
    assert seen == [6, 12]
    logger.close()


def test_csv_bad_arguments(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="exists and is not a folder"):
        CSVLogger(tmp_path / "file")
    with pytest.raises(InputError, match="every must be an integer >= 1"):
        CSVLogger(tmp_path, every=0)
    with pytest.raises(InputError, match="append must be True or False"):
        CSVLogger(tmp_path, append="yes")
    with pytest.raises(InputError, match="out must be a folder path"):
        CSVLogger(3)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write to read-only folders")
def test_csv_read_only_folder_is_refused_before_training(tmp_path):
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(InputError, match="is not writable"):
            CSVLogger(tmp_path)
    finally:
        tmp_path.chmod(0o700)


# ----------------------------------------------------------- tensorboard
def read_events(folder):
    """tag -> [(step, value)] from the TFRecord event files under ``folder``: each record is
    a little-endian uint64 length, its 4-byte CRC, the Event proto, the proto's CRC."""
    event_pb2 = pytest.importorskip("tensorboardX.proto.event_pb2")
    found = {}
    for name in sorted(os.listdir(folder)):
        data, i = (folder / name).read_bytes(), 0
        while i < len(data):
            (n,) = struct.unpack("<Q", data[i:i + 8])
            event = event_pb2.Event.FromString(data[i + 12:i + 12 + n])
            i += 12 + n + 4
            for value in event.summary.value:
                found.setdefault(value.tag, []).append((event.step, value.simple_value))
    return found


def test_tensorboard_logger_matches_the_history(backend, tmp_path):
    pytest.importorskip("tensorboardX", reason="the tensorboard extra (tensorboardX) is not installed")
    logger = TensorBoardLogger(tmp_path, every=3)
    history = fit(backend, "eo", logger)
    logger.close()
    events = read_events(tmp_path / "tensorboard")
    assert set(events) == {"train/loss", "train/energy", "epoch/train_loss", "epoch/test_loss",
                           "epoch/test_accuracy"}
    steps, loss = zip(*events["train/loss"])
    assert list(steps) == [3, 6, 9, 12]
    np.testing.assert_allclose(loss, history.loss[2::3], rtol=1e-6)  # stored as float32
    np.testing.assert_allclose([v for _, v in events["train/energy"]], history.energy[2::3], rtol=1e-6)
    acc = events["epoch/test_accuracy"]
    assert [s for s, _ in acc] == [6, 12]
    np.testing.assert_allclose([v for _, v in acc], [e["test_accuracy"] for e in history.epochs], rtol=1e-6)


def test_tensorboard_logdir_and_missing_package(tmp_path, monkeypatch):
    pytest.importorskip("tensorboardX", reason="the tensorboard extra (tensorboardX) is not installed")
    logger = TensorBoardLogger(logdir=tmp_path / "runs" / "a")
    fit("numpy", "bp", logger, epochs=1)
    logger.close()
    assert set(read_events(tmp_path / "runs" / "a")) >= {"train/loss", "epoch/test_loss"}
    assert "train/energy" not in read_events(tmp_path / "runs" / "a")  # bp has no energy
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(MissingDependency, match=r"pccore\[tensorboard\]"):
        TensorBoardLogger(tmp_path)


def test_loggers_are_entry_points():
    assert {"csv", "tensorboard"} <= set(registry.names(registry.PLUGINS))
    assert registry.load(registry.PLUGINS, "csv", "tracker") is pccore_trackers.CSVLogger
    assert registry.load(registry.PLUGINS, "tensorboard", "tracker") is pccore_trackers.TensorBoardLogger


# ------------------------------------------------------------------- cli
def test_tracker_spec_syntax():
    from pccore.cli import tracker_spec

    assert tracker_spec("csv") == ("csv", {})
    assert tracker_spec("history:every=5,layers=[0,-1]") == ("history", {"every": 5, "layers": [0, -1]})
    assert tracker_spec("csv:out='a,b',append=true") == ("csv", {"out": "a,b", "append": True})
    assert tracker_spec("csv:out=logs/run1") == ("csv", {"out": "logs/run1"})
    with pytest.raises(InputError, match="KEY=VALUE"):
        tracker_spec("csv:every")


def test_cli_writes_logs_under_out(tmp_path, capsys):
    pytest.importorskip("sklearn")  # the digits dataset
    from pccore.cli import main

    out = tmp_path / "run"
    args = ["train", "--method", "bp", "--depth", "2", "--width", "8", "--steps", "4", "--quiet",
            "--out", str(out), "--tracker", "csv:every=2", "--tracker", f"csv:out={tmp_path / 'elsewhere'}"]
    tensorboard = _has("tensorboardX")  # else the tensorboard tracker is left out
    assert main(args + (["--tracker", "tensorboard"] if tensorboard else [])) == 0
    assert [int(r[0]) for r in read_csv(out / "steps.csv")[1]] == [2, 4]
    assert [int(r[0]) for r in read_csv(tmp_path / "elsewhere" / "steps.csv")[1]] == [1, 2, 3, 4]
    if tensorboard:  # closed by the command: all values written although no epoch ended
        assert {s for s, _ in read_events(out / "tensorboard")["train/loss"]} == {1, 2, 3, 4}


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@pytest.mark.parametrize("spec, message", [
    ("csv:evry=2", "tracker 'csv' has no argument evry; it takes out, every, append"),
    ("csv:every=0", "tracker 'csv': every must be an integer >= 1, got 0"),
    ("csv:every", "arguments must be KEY=VALUE pairs"),
    ("distance_to_optimum", "tracker 'distance_to_optimum' needs the argument optimum"),
    ("gradient_alignment", "needs the arguments net, x, y, reference"),
    ("nope:every=1", "unknown tracker 'nope'"),
])
def test_cli_tracker_argument_errors(tmp_path, capsys, spec, message):
    from pccore.cli import main

    assert main(["train", "--tracker", spec, "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pccore train: error:") and message in err and "Traceback" not in err


# --------------------------------------------------------------- figures
def _distances(steps, rate):
    t = np.arange(steps + 1)[:, None]
    return 0.5 * np.exp(-rate * t) * np.array([0.8, 1.0, 1.25])


def test_convergence_figure_names_lrs_and_title():
    pytest.importorskip("matplotlib")
    import pccore_plots as pp

    eo, so = {0: _distances(50, 0.3)}, {0: _distances(200, 0.02)}
    fig = pp.convergence_figure(eo, so, threshold=1e-3, lrs=(0.1, 0.3), title="digits · numpy")
    (legend,) = fig.legends
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts[:2] == ["Error optimization (EO), lr 0.1", "State optimization (SO), lr 0.3"]
    assert legend.get_title().get_text() == "digits · numpy"
    captions = [t.get_text() for ax in fig.axes for t in ax.texts if t.get_text()]
    assert captions[0].startswith("SO: not reached") and "EO >" in captions[0]  # short names, no lr
    with pytest.raises(InputError, match="lrs must be 2 numbers"):
        pp.convergence_figure(eo, so, lrs=(0.1,))
    with pytest.raises(InputError, match="lrs must be positive"):
        pp.convergence_figure(eo, so, lrs=(0.1, -1.0))
    with pytest.raises(InputError, match="title must be a string"):
        pp.convergence_figure(eo, so, title=3)


def test_gradient_norms_share_a_log_axis():
    pytest.importorskip("matplotlib")
    import pccore_plots as pp

    t = np.arange(101, dtype=float)
    eo = {0: 2e-3 + 0 * t[:21], 5: 3.0 + 0 * t[:21]}  # three decades apart
    so = {0: 2e-3 * (1 - np.exp(-t / 20)), 5: 3.0 * (1 - np.exp(-t / 20))}
    so[0][:5] = 0.0  # before SO's error reaches layer 0: not drawn on the log axis
    fig = pp.gradient_norms_figure(eo, so, {0: 1e-2, 5: 5.0}, {0: 2e-3, 5: 3.0}, title="run")
    axes = fig.axes
    assert [ax.get_yscale() for ax in axes] == ["log", "log"]
    assert axes[0].get_ylim() == axes[1].get_ylim()
    low, high = axes[0].get_ylim()
    assert low < 2e-3 and high > 5.0  # both layers' levels are on the axis ...
    assert high / low <= 1.5e4 * (1 + 1e-9)  # ... which stops 4 decades under the largest value
    assert fig.legends[0].get_title().get_text() == "run"


def test_compare_figures_say_what_was_run():
    pytest.importorskip("matplotlib")
    from pccore import experiments

    rt = pccore.runtime("numpy", dtype="float64")
    result = experiments.compare(teacher_data(n_train=64, d_in=5), rt, depth=3, width=6, batch_size=16,
                                 pretrain_steps=0, eo_iters=10, so_iters=30, eo_lrs=(0.1, 0.3), so_lrs=(0.3,))
    title = result.title()
    assert "dataset teacher" in title and "backend numpy (cpu, float64)" in title
    assert f"EO lr {result.summary['eo']['best_lr']:g}" in title and "SO lr 0.3" in title
    figures = result.figures()
    for fig in figures.values():
        assert fig.legends[0].get_title().get_text() == title
    labels = [t.get_text() for t in figures["convergence"].legends[0].get_texts()]
    assert labels[1] == "State optimization (SO), lr 0.3"
