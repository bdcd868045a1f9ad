"""`pccore reproduce`: every reproduction at its smoke size on every backend (JSON, table and
figure), the table's numbers recomputed here from the per-seed JSON, resuming (finished runs
skipped, an interrupted run continued from its checkpoint), the data folder and its errors.

The data are tiny synthetic folders in the real layouts (MNIST and Fashion-MNIST IDX files,
CIFAR-10 pickles), read by the real loaders."""

from __future__ import annotations

import json
import pickle
import re
import struct
from pathlib import Path

import numpy as np
import pytest

import pccore
from pccore import reproduce as rep
from pccore.cli import main
from pccore.errors import InputError
from pccore.hookspecs import hookimpl

pytest.importorskip("matplotlib")
pytest.importorskip("torchvision")  # the MNIST-family loaders

N_TRAIN, N_TEST = 80, 32


def _write_idx(raw: Path, prefix: str, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    raw.mkdir(parents=True, exist_ok=True)
    images, labels = rng.integers(0, 256, (n, 28, 28)), rng.integers(0, 10, n)
    (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">4B3i", 0, 0, 8, 3, n, 28, 28)
                                                      + images.astype(np.uint8).tobytes())
    (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">4Bi", 0, 0, 8, 1, n)
                                                      + labels.astype(np.uint8).tobytes())


def _write_cifar10(folder: Path) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        n = N_TEST if name == "test_batch" else N_TRAIN // 5
        data = rng.integers(0, 256, (n, 3072)).astype(np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({b"labels": [int(v) for v in rng.integers(0, 10, n)], b"data": data}, f)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """MNIST/raw, FashionMNIST/raw (IDX) and cifar-10-batches-py (pickles), tiny and random."""
    root = tmp_path_factory.mktemp("data")
    for folder in ("MNIST", "FashionMNIST"):
        _write_idx(root / folder / "raw", "train", N_TRAIN, seed=1)
        _write_idx(root / folder / "raw", "t10k", N_TEST, seed=2)
    _write_cifar10(root / "cifar-10-batches-py")
    return root


def assert_not_blank(path: Path) -> None:
    from matplotlib.image import imread

    assert path.is_file() and path.stat().st_size > 5000
    img = imread(path)[..., :3]
    assert img.std() > 0.05 and (img.min(axis=2) < 0.5).mean() > 0.002


ROW = re.compile(r"^\| (?P<variant>[^|]+) \| (?P<method>[A-Z]+) \| [^|]+ \| (?P<mean>[-\d.]+) ± (?P<std>[\d.]+) \| "
                 r"(?P<n>\d+) \| (?P<seeds>[^|]+) \|")


def table_rows(out: Path) -> dict:
    """(variant, method) -> (mean, std, n, per-seed) as printed in table.md."""
    rows = {}
    for line in (out / "table.md").read_text().splitlines():
        m = ROW.match(line)
        if m:
            seeds = [float(v) for v in m["seeds"].split(",")]
            rows[(m["variant"].strip(), m["method"].lower())] = (m["mean"], m["std"], int(m["n"]), seeds)
    return rows


def check_table_against_json(out: Path) -> None:
    """Every table row equals the mean and sample std recomputed here from runs/*.json."""
    groups: dict = {}
    for path in (out / "runs").glob("*.json"):
        r = json.loads(path.read_text())
        groups.setdefault((r["variant"], r["method"]), []).append((r["seed"], 100 * r["test_accuracy"]))
    rows = table_rows(out)
    assert set(rows) == set(groups)
    for key, values in groups.items():
        accs = np.array([a for _, a in sorted(values)])
        std = accs.std(ddof=1) if accs.size > 1 else 0.0
        mean_text, std_text, n, seeds = rows[key]
        assert (mean_text, std_text, n) == (f"{accs.mean():.2f}", f"{std:.2f}", accs.size)
        np.testing.assert_allclose(seeds, accs, atol=0.005)


# ------------------------------------------------------------ every reproduction
@pytest.mark.parametrize("name", rep.names())
def test_quick_reproduction_on_every_backend(backend, name, data_root, tmp_path):
    """Every reproduction on every backend; on JAX with EO only: each (model, method) step is
    an XLA compile of seconds, and the runner's code is the same for every method."""
    spec = rep.get(name, quick=True)
    methods = ["eo"] if backend == "jax" else None
    out = tmp_path / name
    lines = []
    summary = rep.reproduce(spec, pccore.runtime(backend), out, data_dir=data_root, methods=methods,
                            say=lines.append)
    planned = [(v.name, m.name) for v in spec.variants for m in rep.select_methods(spec, methods)]
    assert len(lines) == len(planned) and all("test accuracy" in line for line in lines)
    records = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]
    assert sorted((r["variant"], r["method"]) for r in records) == sorted(planned)
    for r in records:
        assert r["runtime"]["backend"] == backend and r["settings"]["backend"] == backend
        assert r["train_samples"] == min(N_TRAIN, spec.subset[0]) and len(r["epochs"]) == 1
        assert 0 <= r["test_accuracy"] <= 1 and r["wall_s"] > 0 and r["versions"]["pccore"] == pccore.__version__
    assert [(row["variant"], row["method"]) for row in summary["rows"]] == planned
    check_table_against_json(out)
    assert_not_blank(out / "accuracy.png")
    assert not (out / "checkpoints").exists()  # removed once every run is finished


def test_table_is_computed_from_the_json_over_seeds(data_root, tmp_path):
    spec, out = rep.get("mnist-mlp", quick=True), tmp_path / "seeds"
    rep.reproduce(spec, pccore.runtime("numpy"), out, data_dir=data_root, seeds=3, methods=["eo", "bp"])
    assert len(list((out / "runs").glob("*.json"))) == 6
    check_table_against_json(out)
    # a hand-edited result shows in the regenerated table: the numbers come from the files
    path = out / "runs" / "784-16-8-10__bp__seed1.json"
    record = json.loads(path.read_text())
    record["test_accuracy"] = 0.5
    path.write_text(json.dumps(record))
    rep.reproduce(spec, pccore.runtime("numpy"), out, data_dir=data_root, seeds=3, methods=["eo", "bp"])
    check_table_against_json(out)
    assert table_rows(out)[("784-16-8-10", "bp")][3][1] == 50.0
    published = [line for line in (out / "table.md").read_text().splitlines() if line.startswith("| 784")]
    assert all("98.1" in line for line in published)  # the published figures of mnist-mlp


# ------------------------------------------------------------------- resuming
def test_rerun_skips_finished_runs_and_refuses_other_settings(data_root, tmp_path):
    spec, out, rt = rep.get("mnist-mlp", quick=True), tmp_path / "resume", pccore.runtime("numpy")
    rep.reproduce(spec, rt, out, data_dir=data_root, methods=["bp"])
    bp = out / "runs" / "784-16-8-10__bp__seed0.json"
    before = bp.read_bytes()
    lines = []
    rep.reproduce(spec, rt, out, data_dir=data_root, methods=["eo", "bp"], say=lines.append)
    assert len(lines) == 1 and " EO seed 0" in lines[0]  # only the missing run trained
    assert bp.read_bytes() == before
    lines.clear()
    rep.reproduce(spec, rt, out, data_dir=data_root, methods=["eo", "bp"], say=lines.append)
    assert lines == []  # everything done: the table is rewritten from the files
    with pytest.raises(InputError, match=r"__bp__seed0.json' was made with other settings \(epochs"):
        rep.reproduce(spec, rt, out, data_dir=data_root, methods=["bp"], epochs=2)


def test_table_only_tabulates_finished_runs_and_names_the_missing(data_root, tmp_path, capsys):
    spec, out = rep.get("mnist-mlp", quick=True), tmp_path / "partial"
    args = ["reproduce", "mnist-mlp", "--quick", "--quiet", "--table-only", "--data-dir", str(data_root),
            "--out", str(out), "--seeds", "2", "--methods", "eo,bp"]
    assert main(args) == 2  # nothing finished yet
    assert "no finished runs of 'mnist-mlp'" in capsys.readouterr().err and not (out / "runs").exists()
    rep.reproduce(spec, pccore.runtime("numpy"), out, data_dir=data_root, seeds=2, methods=["bp"])
    files = sorted(p.name for p in (out / "runs").iterdir())
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "not finished (2): 784-16-8-10__eo__seed0, 784-16-8-10__eo__seed1" in printed and "[1/" not in printed
    assert sorted(p.name for p in (out / "runs").iterdir()) == files  # nothing trained
    check_table_against_json(out)
    assert list(table_rows(out)) == [("784-16-8-10", "bp")]
    assert "**Not finished** (2 runs" in (out / "table.md").read_text()
    assert json.loads((out / "summary.json").read_text())["missing_runs"] == [
        "784-16-8-10__eo__seed0", "784-16-8-10__eo__seed1"]


class _Interrupt:
    """Stops training at one step of the second epoch (after the first epoch's checkpoint)."""

    def __init__(self, at: int):
        self.at = at

    @hookimpl
    def pccore_train_step(self, info):
        if info.step == self.at:
            raise KeyboardInterrupt


def test_interrupted_run_continues_from_its_checkpoint(data_root, tmp_path):
    spec = rep.get("mnist-mlp", quick=True)
    whole = tmp_path / "whole"
    rep.reproduce(spec, pccore.runtime("numpy"), whole, data_dir=data_root, methods=["eo"], epochs=2)
    out, rt = tmp_path / "cut", pccore.runtime("numpy")
    stop = rt.register(_Interrupt(at=N_TRAIN // spec.batch_size + 1))
    with pytest.raises(KeyboardInterrupt):
        rep.reproduce(spec, rt, out, data_dir=data_root, methods=["eo"], epochs=2)
    rt.unregister(stop)
    assert (out / "checkpoints" / "784-16-8-10__eo__seed0.npz").exists()
    assert not list((out / "runs").glob("*.json"))
    rep.reproduce(spec, rt, out, data_dir=data_root, methods=["eo"], epochs=2)
    cut, full = (json.loads((d / "runs" / "784-16-8-10__eo__seed0.json").read_text()) for d in (out, whole))
    assert cut["resumed"] and not full["resumed"]
    assert cut["test_accuracy"] == full["test_accuracy"] and cut["epochs"] == full["epochs"]
    assert not (out / "checkpoints").exists()


# ------------------------------------------------------------------ the command
def test_command_list_quick_and_estimate(data_root, tmp_path, capsys):
    assert main(["reproduce", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in rep.names()) and "T = 20, sgd lr 0.2" in listed
    out = tmp_path / "depth"
    assert main(["reproduce", "depth", "--quick", "--quiet", "--data-dir", str(data_root), "--out", str(out),
                 "--methods", "eo,bp"]) == 0
    printed = capsys.readouterr().out
    assert "[4/4] depth 4 BP seed 0" in printed and "depth 2 EO:" in printed and f"results in {out}/" in printed
    assert sorted(p.name for p in out.iterdir()) == ["accuracy.png", "runs", "summary.json", "table.md"]
    assert main(["reproduce", "cifar10-vgg5", "--quick", "--estimate", "--methods", "bp"]) == 0
    printed = capsys.readouterr().out
    assert "vgg5 4-4-8-8 BP:" in printed and "s/step" in printed and "per epoch" in printed


@pytest.mark.parametrize("args, message", [
    (["reproduce"], "name a reproduction"),
    (["reproduce", "mnist-rnn"], "unknown reproduction 'mnist-rnn'; choose from mnist-mlp, depth"),
    (["reproduce", "mnist-mlp", "--quick", "--methods", "eo,newton"], "trains the methods so, eo, bp; got 'newton'"),
    (["reproduce", "mnist-mlp", "--quick", "--data-dir", "/no/such/folder"], "--data-dir '/no/such/folder' is not an existing folder"),
])
def test_user_errors_are_one_line(args, message, tmp_path, capsys):
    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


@pytest.mark.parametrize("name, folder", [("mnist-mlp", "MNIST"), ("fashion-mnist", "FashionMNIST"),
                                          ("cifar10-vgg5", "cifar-10-batches-py")])
def test_missing_data_is_a_clear_error(name, folder, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["reproduce", name, "--quick", "--data-dir", str(empty), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"reproduction {name!r} needs dataset" in err and f"<root>/{folder}/" in err and str(empty) in err
    assert "--data-dir" in err and "Traceback" not in err
    assert not list((tmp_path / "out").rglob("*.json"))


def test_default_data_folder(monkeypatch, tmp_path):
    for name in rep.runner.DATA_ENV:
        monkeypatch.delenv(name, raising=False)
    assert rep.data_root(None) == Path("../shared/data")
    monkeypatch.setenv("PCCORE_MNIST_ROOT", str(tmp_path))
    assert rep.data_root(None) == tmp_path
    monkeypatch.setenv("PCCORE_DATA_DIR", str(tmp_path / "first"))
    assert rep.data_root(None) == tmp_path / "first"
    assert rep.data_root(tmp_path) == tmp_path  # --data-dir wins


# ------------------------------------------------------------------ the models
def test_vgg5_shapes_and_specs():
    from pccore.reproduce.cifar10_vgg5 import vgg5

    net = vgg5(pccore.runtime("numpy"), (3, 32, 32), 10)
    assert net.structure.shapes == ((128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 2, 2), (10,))
    assert [p.shape for p in net.flat_params()][-2:] == [(10, 2048), (10,)]
    mlp = rep.get("mnist-mlp")
    assert mlp.variants[0].model["widths"] == [784, 256, 64, 10] and (mlp.seeds, mlp.epochs) == (5, 20)
    assert [m.name for m in mlp.methods] == ["so", "eo", "bp"] and mlp.reference == {"so": 98.18, "eo": 98.15, "bp": 98.16}
    depth = rep.get("depth")
    assert [v.model["widths"] for v in depth.variants] == [[784] + [128] * (d - 1) + [10] for d in (4, 10, 20)]


def test_accuracy_figure_checks_its_input():
    from pccore_plots import accuracy_figure

    fig = accuracy_figure({"a": {"eo": [0.97, 0.98], "bp": [0.975]}}, reference={"a": {"eo": 0.98}})
    assert len(fig.axes) == 1
    with pytest.raises(InputError, match="non-finite"):
        accuracy_figure({"a": {"eo": [97.0, float("nan")]}})
    with pytest.raises(InputError, match=r"reference\['a'\]\['so'\]: no such method"):
        accuracy_figure({"a": {"eo": [97.0]}}, reference={"a": {"so": 98.0}})
    with pytest.raises(InputError, match="non-empty dict"):
        accuracy_figure({})
