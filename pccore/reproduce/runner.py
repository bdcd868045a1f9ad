"""Run a reproduction: train each (variant, method, seed) of a :class:`Spec`, write one JSON
per run as it finishes (a rerun skips finished runs and resumes an interrupted one from its
last epoch), then the table, summary and figure computed from those JSON files.

Layout of ``out``: ``runs/<variant>__<method>__seed<k>.json`` (one per finished run),
``checkpoints/`` (runs in progress), ``table.md``, ``summary.json``, ``accuracy.png``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .. import host, registry
from ..checks import check_positive_int, check_writable
from ..data import Dataset, load_dataset
from ..errors import InputError
from ..hookspecs import hookimpl
from ..runtime import Runtime
from ..train import Trainer
from . import environment
from .spec import Method, Spec, Variant
from .table import RUN_FILES, collect, summarise, table

DEFAULT_DATA_DIR = "../shared/data"  # the project's shared MNIST, next to the repository
DATA_ENV = ("PCCORE_DATA_DIR", "PCCORE_MNIST_ROOT")  # the library's and the tests' variables


def _quiet(message: str) -> None:
    """Default logger: say nothing."""


def data_root(data_dir: str | os.PathLike | None) -> Path:
    """``data_dir``, else ``$PCCORE_DATA_DIR``, else ``$PCCORE_MNIST_ROOT``, else
    ``../shared/data``. A given folder that does not exist is an InputError."""
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        if not root.is_dir():
            raise InputError(f"--data-dir {str(data_dir)!r} is not an existing folder")
        return root
    for name in DATA_ENV:
        if os.environ.get(name):
            return Path(os.environ[name]).expanduser()
    return Path(DEFAULT_DATA_DIR)


def load_data(spec: Spec, data_dir: str | os.PathLike | None = None) -> Dataset:
    """The spec's dataset from ``data_root(data_dir)`` (cut to ``spec.subset``); a missing
    folder or file is an InputError that says where it looked and how to point elsewhere."""
    root = data_root(data_dir)
    try:
        data = load_dataset(spec.dataset, root=root, flatten=spec.flatten)
    except InputError as err:
        where = ", ".join(f"${n}" for n in DATA_ENV)
        raise InputError(f"reproduction {spec.name!r} needs dataset {spec.dataset!r}: {err} "
                         f"(reproduce looks in --data-dir, else {where}, else {DEFAULT_DATA_DIR})") from None
    if spec.subset is None:
        return data
    n, m = spec.subset
    return Dataset(data.name, data.x_train[:n], data.y_train[:n], data.x_test[:m], data.y_test[:m])


def select_methods(spec: Spec, names: Sequence[str] | None) -> tuple[Method, ...]:
    """The spec's methods named in ``names`` (all when None), in the spec's order."""
    if names is None:
        return spec.methods
    wanted = [n.strip().lower() for n in names if n.strip()]
    if not wanted:
        raise InputError("--methods names no method")
    for name in wanted:
        spec.method(name)  # unknown -> InputError listing the spec's methods
    return tuple(m for m in spec.methods if m.name in wanted)


def run_key(variant: Variant, method: str, seed: int) -> str:
    """File stem of one run: "784-256-64-10__eo__seed3"."""
    return f"{variant.slug}__{method}__seed{seed}"


class _Clock:
    """Observer that keeps a run's settings and training seconds in ``path`` at each epoch
    end, so a run resumed from its checkpoint still reports its whole wall time (the clock
    is written just before the epoch's checkpoint: a kill between the two counts that
    epoch's seconds twice)."""

    def __init__(self, path: Path, settings: dict, before: float):
        self.path, self.settings, self.before, self.start = path, settings, before, time.perf_counter()

    def elapsed(self) -> float:
        return self.before + time.perf_counter() - self.start

    @hookimpl
    def pccore_epoch_end(self, info: Any) -> None:
        host.write_json(self.path, {"settings": self.settings, "epoch": info.epoch + 1, "elapsed_s": self.elapsed()})


def _resume_point(ckpt: Path, clock_file: Path, settings: dict) -> float | None:
    """Seconds already spent on an interrupted run with these ``settings`` (its checkpoint is
    kept), or None after removing a checkpoint of other settings (or without one)."""
    if ckpt.exists() and clock_file.exists():
        try:
            clock = json.loads(clock_file.read_text())
            if clock.get("settings") == settings:
                return float(clock["elapsed_s"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    for path in (ckpt, clock_file):
        path.unlink(missing_ok=True)
    return None


def train_one(spec: Spec, variant: Variant, method: Method, seed: int, epochs: int, rt: Runtime,
              data: Dataset, checkpoints: Path, progress: bool = False) -> dict:
    """Train one (variant, method, seed) and return its JSON-ready record; continues from
    ``checkpoints/<key>.npz`` when an earlier process was interrupted."""
    key = run_key(variant, method.name, seed)
    ckpt, clock_file = checkpoints / f"{key}.npz", checkpoints / f"{key}.clock.json"
    settings = {**spec.settings(variant, method, epochs), **environment.runtime_info(rt)}
    before = _resume_point(ckpt, clock_file, settings)
    started, load_start = environment.now(), environment.load()
    clock = rt.register(_Clock(clock_file, settings, before or 0.0))
    try:
        net = variant.build(rt, data, seed)
        trainer = Trainer(method.name, inference=method.inference(), optimizer=spec.optimizer,
                          lr=method.weight_lr or spec.lr, batch_size=spec.batch_size, loss=spec.loss,
                          seed=seed, runtime=rt, progress=progress)
        _, history = trainer.fit(net, data, epochs=epochs, checkpoint=ckpt, resume=before is not None)
        wall = clock.elapsed()
    finally:
        rt.unregister(clock)
    last = history.epochs[-1]
    record = {
        "spec": spec.name, "variant": variant.name, "method": method.name, "seed": seed,
        "settings": settings,
        "inference": method.describe(),
        "test_accuracy": last["test_accuracy"], "test_loss": last["test_loss"],
        "train_samples": int(data.x_train.shape[0]), "test_samples": int(data.x_test.shape[0]),
        "steps": last["step"], "epochs": history.epochs, "wall_s": wall, "resumed": before is not None,
        "runtime": environment.runtime_info(rt), "versions": environment.versions(rt.backend),
        "machine": environment.machine(), "load": {"start": load_start, "end": environment.load()},
        "started": started, "finished": environment.now(),
    }
    for path in (ckpt, clock_file):
        path.unlink(missing_ok=True)
    return record


def _finished(path: Path, settings: dict) -> bool:
    """True when ``path`` holds a finished run with these ``settings``; a run made with
    other settings is an InputError (never mixed silently into the table)."""
    if not path.exists():
        return False
    try:
        record = json.loads(path.read_text())
        done = record["settings"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(f"{str(path)!r} is not a finished run's JSON ({err}); delete it to rerun that run") from None
    if done != settings:
        diff = sorted(k for k in set(done) | set(settings) if done.get(k) != settings.get(k))
        raise InputError(f"{str(path)!r} was made with other settings ({', '.join(diff)}: "
                         f"{[done.get(k) for k in diff]} vs {[settings.get(k) for k in diff]}); "
                         "use another --out, or delete it to rerun")
    return True


def reproduce(
    spec: Spec,
    rt: Runtime,
    out: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    seeds: int | None = None,
    epochs: int | None = None,
    methods: Sequence[str] | None = None,
    log: Callable[[str], None] = _quiet,
    say: Callable[[str], None] = _quiet,
    progress: bool = False,
    plots: bool = True,
    train: bool = True,
) -> dict:
    """Train what is missing of ``spec`` (``seeds`` seeds 0..seeds-1, ``epochs``, ``methods``;
    defaults from the spec) on ``rt``, writing each run's JSON to ``out/runs/`` as it ends;
    then write ``table.md``, ``summary.json`` and (``plots``) ``accuracy.png`` from the JSON.
    With ``train=False`` nothing is trained: the files show the finished runs and name the
    missing ones. ``say`` gets one line per finished run, ``log`` the rest. Returns the summary."""
    seeds = spec.seeds if seeds is None else check_positive_int("seeds", seeds)
    epochs = spec.epochs if epochs is None else check_positive_int("epochs", epochs)
    chosen = select_methods(spec, methods)
    if plots:
        registry.load(registry.PLOTS, "accuracy", "plot")  # missing matplotlib: fail before training
    out = check_writable("--out", Path(out))
    runs_dir, checkpoints = out / RUN_FILES, out / "checkpoints"
    plan = [(v, m, s) for v in spec.variants for m in chosen for s in range(seeds)]
    todo = []
    for v, m, s in plan:
        path = runs_dir / f"{run_key(v, m.name, s)}.json"
        settings = {**spec.settings(v, m, epochs), **environment.runtime_info(rt)}
        if _finished(path, settings):
            log(f"skip {v.name} {m.name} seed {s}: done ({path})")
        else:
            todo.append((v, m, s, path))
    missing = [] if train else [run_key(v, m.name, s) for v, m, s, _ in todo]
    if not train:
        todo = []
        if len(missing) == len(plan):
            raise InputError(f"no finished runs of {spec.name!r} with these settings in {str(runs_dir)!r}: "
                             "nothing to tabulate (run without --table-only to train them)")
    if todo:
        data = load_data(spec, data_dir)  # missing files: an error before anything is written
        runs_dir.mkdir(exist_ok=True)
        checkpoints.mkdir(exist_ok=True)
        log(f"{len(todo)} of {len(plan)} runs to train on {rt.backend} ({rt.device}, {rt.dtype}); "
            f"{data.x_train.shape[0]} training samples, {epochs} epochs each")
    for i, (v, m, s, path) in enumerate(todo, 1):
        record = train_one(spec, v, m, s, epochs, rt, data, checkpoints, progress)
        host.write_json(path, record)
        say(f"[{i}/{len(todo)}] {v.name} {m.name.upper()} seed {s}: test accuracy "
            f"{100 * record['test_accuracy']:.2f}% after {epochs} epoch{'s' * (epochs > 1)} "
            f"({record['wall_s']:.0f} s)")
    if todo and not any(checkpoints.iterdir()):
        checkpoints.rmdir()
    records = collect(runs_dir, [k for k in (run_key(v, m.name, s) for v, m, s in plan) if k not in missing])
    summary = {**summarise(spec, records, chosen, epochs), "missing_runs": missing}
    host.write_json(out / "summary.json", summary)
    (out / "table.md").write_text(table(spec, summary, records))
    if plots:
        figure(spec, summary).savefig(out / "accuracy.png", dpi=110)
    return summary


def figure(spec: Spec, summary: dict) -> Any:
    """The accuracy figure of a summary, drawn by the ``accuracy`` plot entry point."""
    plot = registry.load(registry.PLOTS, "accuracy", "plot")
    results, reference = {}, {}
    for row in summary["rows"]:
        results.setdefault(row["variant"], {})[row["method"]] = row["accuracies"]
        if row["published"] is not None:
            reference.setdefault(row["variant"], {})[row["method"]] = row["published"]
    rt = summary["runtime"]
    title = (f"pccore reproduce {spec.name}: {spec.title} · {summary['epochs']} epochs · "
             f"{rt['backend']} ({rt['device']}, {rt['dtype']})")
    return plot(results, reference=reference or None, title=title)
