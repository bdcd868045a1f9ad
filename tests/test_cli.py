"""The pccore command: tiny smoke runs of every subcommand on every backend (in-process),
one subprocess run, and clear one-line errors (exit status 2, no traceback)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import pccore
from pccore.cli import main

pytest.importorskip("sklearn")  # the digits dataset
pytest.importorskip("matplotlib")

TINY_COMPARE = ["--depth", "3", "--width", "8", "--pretrain-steps", "2", "--eo-iters", "10",
                "--so-iters", "30", "--eo-lrs", "0.1,0.3", "--so-lrs", "0.3,0.5", "--quiet"]
TINY_ENERGY = ["--depth", "3", "--width", "8", "--steps", "4", "--iters", "20", "--test-every", "2", "--quiet"]


def assert_not_blank(path):
    from matplotlib.image import imread

    assert path.is_file() and path.stat().st_size > 5000
    img = imread(path)[..., :3]
    assert img.std() > 0.05  # lines and text, not one flat colour
    assert (img.min(axis=2) < 0.5).mean() > 0.005  # some dark pixels: axes, labels, curves


def test_compare_smoke(backend, tmp_path, capsys):
    out = tmp_path / "compare"
    assert main(["compare", "--backend", backend, "--out", str(out), *TINY_COMPARE]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["layers"] == [0, 1]
    assert summary["eo"]["best_lr"] in (0.1, 0.3) and summary["so"]["best_lr"] in (0.3, 0.5)
    assert set(summary["steps_to_threshold"]) == {"eo", "so"}
    assert set(summary["speedup"]) == {"0", "1"}
    for name in ("convergence", "gradient_alignment", "gradient_norms"):
        assert_not_blank(out / f"{name}.png")
    printed = capsys.readouterr().out
    assert "best lrs: EO" in printed and "speed-up" in printed


def test_energy_smoke(backend, tmp_path, capsys):
    out = tmp_path / "energy"
    assert main(["energy", "--backend", backend, "--out", str(out), *TINY_ENERGY]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["theory"]) == len(summary["numerical"]) == 4
    assert 0 <= summary["max_relative_gap"] < 1e-2  # 20 EO steps reach the equilibrium closely
    assert list(summary["test_accuracy"]) == ["2", "4"]
    assert_not_blank(out / "energy.png")
    assert "largest relative gap" in capsys.readouterr().out


def test_train_smoke(backend, tmp_path):
    out = tmp_path / "train"
    args = ["train", "--backend", backend, "--dtype", "float64", "--depth", "3", "--width", "8",
            "--steps", "3", "--iters", "5", "--out", str(out), "--quiet", "--tracker", "energy_trace"]
    assert main(args) == 0
    net = pccore.load(out / "model.npz", pccore.runtime(backend, dtype="float64"))
    assert net.widths == [64, 8, 8, 10]
    assert [b.ops[1].name for b in net.blocks] == ["tanh", "tanh", "linear"]
    history = json.loads((out / "history.json").read_text())
    assert history["step"] == [1, 2, 3] and len(history["energy"]) == 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "eo" and 0 <= summary["final"]["accuracy"] <= 1


def test_train_checkpoint_resume(tmp_path):
    ck = tmp_path / "ck"
    base = ["train", "--method", "bp", "--depth", "2", "--width", "8", "--quiet", "--checkpoint", str(ck)]
    assert main([*base, "--epochs", "1", "--out", str(tmp_path / "a")]) == 0
    assert main([*base, "--epochs", "2", "--resume", "--out", str(tmp_path / "b")]) == 0
    full = ["train", "--method", "bp", "--depth", "2", "--width", "8", "--quiet", "--epochs", "2"]
    assert main([*full, "--out", str(tmp_path / "c")]) == 0
    b, c = pccore.load(tmp_path / "b" / "model.npz"), pccore.load(tmp_path / "c" / "model.npz")
    for p, q in zip(b.flat_params(), c.flat_params()):
        np.testing.assert_allclose(p, q, atol=1e-6)


def test_plugins_subprocess():
    done = subprocess.run([sys.executable, "-m", "pccore", "plugins"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for word in ("backends:", "numpy", "cpu", "trackers:", "distance_to_optimum", "plots:",
                 "convergence", "datasets:", "digits"):
        assert word in done.stdout


@pytest.mark.parametrize("args, message", [
    (["compare", "--dataset", "nope"], "unknown dataset 'nope'"),
    (["energy", "--dataset", "mnist", "--data-dir", "/no/such/folder"], "is not an existing folder"),
    (["compare", "--plots", "nope"], "unknown plot 'nope'"),
    (["compare", "--plots", "energy"], "not drawn by this command"),
    (["train", "--tracker", "nope"], "unknown tracker 'nope'"),
    (["train", "--backend", "nope"], "unknown backend 'nope'"),
    (["train", "--activation", "swish"], "unknown activation 'swish'"),
    (["train", "--device", "cuda:7"], "device 'cuda:7' is not available"),
    (["train", "--batch-size", "5000"], "larger than the"),
    (["compare", "--depth", "3", "--layers", "0,5"], "layers must index the 2 hidden layers"),
])
def test_user_errors_are_one_line(tmp_path, capsys, args, message):
    assert main([*args, "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert err.startswith(f"pccore {args[0]}: error:")


def test_missing_dataset_files(tmp_path, capsys):
    empty = tmp_path / "data"
    empty.mkdir()
    assert main(["energy", "--dataset", "mnist", "--data-dir", str(empty), "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and str(empty) in err and "Traceback" not in err


def test_bad_option_values(capsys):
    assert main(["energy", "--steps", "0"]) == 2
    assert "expected an integer >= 1" in capsys.readouterr().err
    assert main(["compare", "--eo-lrs", "0.1,x"]) == 2
    assert main([]) == 2
    assert main(["--help"]) == 0
