"""Orchestration: every backend x shape x group, then the summary, the targets and the files."""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from . import report
from .shapes import Shape
from .suite import Bench, Progress, run_group

FULL_SHAPES = [Shape(64, 128), Shape(256, 128), Shape(64, 512), Shape(256, 512)]
QUICK_SHAPES = [Shape(64, 128)]
DEVICES = {"cuda": {"torch": "cuda", "jax": "gpu"}, "gpu": {"torch": "cuda", "jax": "gpu"}}


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def _runtime(backend: str, device: str | None, dtype: str) -> tuple[Any, str | None]:
    """A plugin-free runtime, or (None, reason) when the backend/device is unavailable."""
    import pccore
    from pccore.errors import PCCoreError

    dev = None if device in (None, "cpu") else DEVICES.get(device, {}).get(backend, device)
    if device not in (None, "cpu") and backend == "numpy":
        return None, f"numpy has no device {device!r}"
    try:
        return pccore.runtime(backend, device=dev, dtype=dtype), None
    except PCCoreError as err:
        return None, f"{backend}: {err}"


def _history_factory():
    try:
        from pccore_trackers import History

        History(every=10)
        return (lambda: History(every=10)), None
    except Exception as err:  # noqa: BLE001 - a missing/broken tracker plugin is only reported
        return None, f"trackers group skipped: History(every=10) unavailable ({type(err).__name__}: {err})"


def _versions(backends: list[str]) -> dict:
    import numpy

    out = {"python": platform.python_version(), "numpy": numpy.__version__}
    for b in backends:
        if b in ("torch", "jax"):
            out[b] = __import__(b).__version__
    return out


def _threads() -> str:
    try:
        import torch

        return f"torch {torch.get_num_threads()}, env OMP={os.environ.get('OMP_NUM_THREADS', 'default')}"
    except ImportError:
        return f"env OMP={os.environ.get('OMP_NUM_THREADS', 'default')}"


def run(backends: list[str], device: str | None, dtype: str, quick: bool, repeats: int,
        matmul_n: int, out_dir: Path, command: str, shapes: list[Shape] | None = None,
        steps: int | None = None) -> str:
    """Measure everything, write ``latest.json``/``latest.md`` to ``out_dir``; returns the markdown.

    ``shapes`` (default: the seed shape, plus batch 256 and width 512 unless ``quick``) and
    ``steps`` (inference steps per timed sample; default from the shape) exist for tests.
    The tracker overhead is measured on the first shape.
    """
    shapes = shapes or (QUICK_SHAPES if quick else FULL_SHAPES)
    meta = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "command": command, "host": platform.node(),
            "cpus": os.cpu_count(), "load_start": _load(), "dtype": dtype, "device": device or "cpu",
            "quick": quick, "repeats": repeats, "matmul_n": matmul_n, "notes": [],
            "versions": _versions(backends)}
    hist, note = _history_factory()
    if note:
        meta["notes"].append(note)
    runtimes = {}
    for b in backends:
        rt, why = _runtime(b, device, dtype)
        if rt is None:
            meta["notes"].append(f"backend skipped: {why}")
        else:
            runtimes[b] = rt
    meta["threads"] = _threads()
    progress = Progress(len(runtimes) * (3 * len(shapes) + (hist is not None)))
    rows, checks = [], []
    for b, rt in runtimes.items():
        for shape in shapes:
            bench = Bench(rt, shape, quick, matmul_n, steps)
            for method in ("EO", "SO"):
                rows += run_group(bench, method, bench.step_group(method), repeats, progress)
            rows += run_group(bench, "equilibrium", bench.equilibrium_group(), repeats, progress)
            checks.append({"backend": b, "batch": shape.batch, "width": shape.width,
                           "EO_max_abs_diff": bench.agreement("EO"), "SO_max_abs_diff": bench.agreement("SO"),
                           "equilibrium_max_abs_diff": bench.equilibrium_agreement()})
            if hist is not None and shape == shapes[0]:
                rows += run_group(bench, "trackers", bench.tracker_group(hist), repeats, progress)
    meta["load_end"] = _load()
    summary = report.summarize(rows, matmul_n)
    goals = report.targets(summary)
    md = report.markdown(meta, summary, goals)
    payload = {"meta": meta, "summary": summary, "targets": goals, "agreement": checks, "rows": rows}
    report.write_json(out_dir / "latest.json", payload)
    report.write_text(out_dir / "latest.md", md)
    print(f"wrote {out_dir / 'latest.json'} and {out_dir / 'latest.md'}", file=sys.stderr)
    return md
