"""Shared plumbing of the plot plugins: a headless matplotlib Figure (never pyplot),
input checks for the per-layer dicts, colours and saving to PNG."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from pccore.errors import InputError, MissingDependency

EO_COLOR = "#1f5fbf"  # blue: error optimization
SO_COLOR = "#d62728"  # red: state optimization
DPI = 110


def new_figure(nrows: int, ncols: int, panel: tuple[float, float] = (4.3, 3.6), **subplots: Any):
    """(Figure, axes (nrows, ncols)) with constrained layout; no pyplot, so headless-safe."""
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise MissingDependency("matplotlib", "plots", "pccore plots") from err
    fig = Figure(figsize=(panel[0] * ncols, panel[1] * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplots)
    return fig, axes


def save(fig: Any, path: str | os.PathLike, dpi: int = DPI) -> Path:
    """Write ``fig`` to ``path`` (PNG unless the suffix names another format), creating folders."""
    path = Path(path)
    if path.suffix == "":
        path = path.with_suffix(".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def _check_key(arg: str, key: Any) -> None:
    if isinstance(key, bool) or not isinstance(key, (int, np.integer)):
        raise InputError(f"{arg} keys must be int layer indices, got {key!r}")


def layer_arrays(arg: str, value: Any, ndim: int) -> dict[int, np.ndarray]:
    """Check ``value`` is a dict int layer -> array of ``ndim`` dims (1-D promoted when 2 are
    wanted, as a batch of one) and return float64 copies."""
    if not isinstance(value, dict) or not value:
        raise InputError(f"{arg} must be a non-empty dict layer (int) -> array, got {type(value).__name__}")
    out = {}
    for key, arr in value.items():
        _check_key(arg, key)
        a = np.asarray(arr, dtype=np.float64)
        if ndim == 2 and a.ndim == 1:
            a = a[:, None]
        if a.ndim != ndim or a.shape[0] < 2:
            want = "(steps, batch)" if ndim == 2 else "(steps,)"
            raise InputError(f"{arg}[{key}] must have shape {want} with steps >= 2, got {a.shape}")
        out[int(key)] = a
    return out


def layer_floats(arg: str, value: Any) -> dict[int, float]:
    """Check ``value`` is a dict int layer -> finite float."""
    if not isinstance(value, dict):
        raise InputError(f"{arg} must be a dict layer (int) -> float, got {type(value).__name__}")
    out = {}
    for key, v in value.items():
        _check_key(arg, key)
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise InputError(f"{arg}[{key!r}] must be a number, got {type(v).__name__}") from None
        if not math.isfinite(f):
            raise InputError(f"{arg}[{key!r}] must be finite, got {f}")
        out[int(key)] = f
    return out


def pick_layers(layers: Any, **dicts: dict) -> list[int]:
    """``layers`` (default: every layer in the first dict), each present in all ``dicts``."""
    first = next(iter(dicts.values()))
    chosen = sorted(first) if layers is None else [layers] if isinstance(layers, int) else list(layers)
    if not chosen:
        raise InputError("layers must name at least one layer")
    for name, d in dicts.items():
        missing = [k for k in chosen if k not in d]
        if missing:
            raise InputError(f"layers {missing} not in {name} (it has layers {sorted(d)})")
    return [int(k) for k in chosen]


def check_finite(arg: str, a: np.ndarray, allow_nan: bool = False) -> None:
    """Raise if ``a`` holds inf (or NaN unless allowed): a diverged run must not plot quietly."""
    bad = np.isinf(a) if allow_nan else ~np.isfinite(a)
    if bad.any():
        steps = np.flatnonzero(bad.any(axis=tuple(range(1, a.ndim))))[:5].tolist()
        raise InputError(f"{arg} holds non-finite values (diverged run?) at steps {steps}")


def short_name(label: str) -> str:
    """Short name of a label: "Error optimization (EO)" -> "EO"; others are kept whole."""
    if label.endswith(")") and "(" in label:
        return label[label.rindex("(") + 1:-1]
    return label


def steps_axis(n: int) -> np.ndarray:
    """Update steps 1..n-1 (row t = after t updates; row 0, the start, has no place on a log axis)."""
    return np.arange(1, n)


def top_legend(fig: Any, handles: list, labels: list, title: str | None = None) -> None:
    """One legend row above the panels, under ``title`` (what was run: dataset, backend...);
    as the legend's own title it gets its place from the layout, never over the entries."""
    if title is not None and not isinstance(title, str):
        raise InputError(f"title must be a string or None, got {type(title).__name__}")
    fig.legend(handles, labels, loc="outside upper center", ncol=len(handles), frameon=False, fontsize=10,
               title=title, title_fontsize=11)


def lr_labels(labels: tuple[str, str], lrs: Any) -> list[str]:
    """Legend labels with the learning rate of each method: "EO (lr 0.1)"; lrs None: unchanged."""
    if lrs is None:
        return list(labels)
    if not isinstance(lrs, (tuple, list)) or len(lrs) != len(labels):
        raise InputError(f"lrs must be {len(labels)} numbers (one per method), got {lrs!r}")
    for lr in lrs:
        if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating)) or not 0 < lr < math.inf:
            raise InputError(f"lrs must be positive numbers, got {lrs!r}")
    return [f"{label}, lr {float(lr):g}" for label, lr in zip(labels, lrs)]
