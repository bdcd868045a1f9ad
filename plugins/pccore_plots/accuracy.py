"""The reproductions' figure: test accuracy per model and method over seeds: each seed as a
dot, the mean with a ± std bar, and the published figure as a black cross."""

from __future__ import annotations

import math
import textwrap
from typing import Any

import numpy as np

from pccore.errors import InputError

from ._common import EO_COLOR, SO_COLOR, new_figure, short_name

METHOD_COLORS = {"eo": EO_COLOR, "so": SO_COLOR, "bp": "#555555"}
OTHER_COLORS = ("#00a67e", "#6a3d9a", "#ff7f0e", "#8c564b")


def _accuracies(where: str, values: Any) -> np.ndarray:
    """A non-empty list of finite accuracies, as percent (fractions in [0, 1] are scaled)."""
    try:
        a = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"results{where} must be a list of numbers, got {values!r}") from None
    if a.ndim != 1 or a.size == 0:
        raise InputError(f"results{where} must be a non-empty list of accuracies, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise InputError(f"results{where} holds non-finite accuracies: {a.tolist()}")
    return a


def _check(results: Any) -> dict[str, dict[str, np.ndarray]]:
    if not isinstance(results, dict) or not results:
        raise InputError("results must be a non-empty dict model -> {method: [accuracies]}")
    out = {}
    for model, methods in results.items():
        if not isinstance(methods, dict) or not methods:
            raise InputError(f"results[{model!r}] must be a non-empty dict method -> [accuracies]")
        out[str(model)] = {str(m): _accuracies(f"[{model!r}][{m!r}]", v) for m, v in methods.items()}
    every = np.concatenate([a for m in out.values() for a in m.values()])
    scale = 100.0 if every.max() <= 1.0 else 1.0  # fractions shown as percent
    if every.min() < 0 or every.max() * scale > 100 + 1e-9:
        raise InputError(f"accuracies must lie in [0, 1] or [0, 100], got [{every.min()}, {every.max()}]")
    return {k: {m: a * scale for m, a in v.items()} for k, v in out.items()}


def _reference(reference: Any, results: dict) -> dict:
    if reference is None:
        return {}
    if not isinstance(reference, dict):
        raise InputError("reference must be a dict model -> {method: published accuracy} or None")
    out = {}
    for model, methods in reference.items():
        if model not in results or not isinstance(methods, dict):
            raise InputError(f"reference[{model!r}] must be a dict method -> accuracy of a model in results")
        for method, value in methods.items():
            if method not in results[model]:
                raise InputError(f"reference[{model!r}][{method!r}]: no such method in results[{model!r}]")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InputError(f"reference[{model!r}][{method!r}] must be a finite number, got {value!r}")
            out[(model, method)] = float(value) * (100.0 if value <= 1.0 else 1.0)
    return out


def _colors(methods: list[str]) -> dict[str, str]:
    others = iter(OTHER_COLORS * len(methods))
    return {m: METHOD_COLORS.get(m.lower()) or next(others) for m in methods}


def accuracy_figure(results: dict, reference: dict | None = None, title: str | None = None) -> Any:
    """Test accuracy of each model (a group on the x-axis) and method (a colour).

    results: dict model -> {method: [accuracy per seed]} (fractions or percent); each seed is
    a dot, the mean a bar mark with a ± std (sample, n - 1) error bar. reference: optional
    dict model -> {method: published accuracy}, drawn as black crosses. The y-axis spans
    the data (accuracies differ by tenths of a point), so read values off the axis.
    """
    data = _check(results)
    ref = _reference(reference, data)
    if title is not None and not isinstance(title, str):
        raise InputError(f"title must be a string or None, got {type(title).__name__}")
    methods = list(dict.fromkeys(m for v in data.values() for m in v))
    colors = _colors(methods)
    fig, axes = new_figure(1, 1, panel=(max(7.0, 1.1 * len(data) * len(methods) + 1.5), 4.0))
    ax = axes[0, 0]
    width = 0.8 / len(methods)
    rng = np.random.default_rng(0)  # jitter of the seed dots, the same in every figure
    for g, (model, by_method) in enumerate(data.items()):
        for j, method in enumerate(methods):
            if method not in by_method:
                continue
            a = by_method[method]
            x = g + (j - (len(methods) - 1) / 2) * width
            std = a.std(ddof=1) if a.size > 1 else 0.0
            ax.scatter(x + rng.uniform(-0.18, 0.18, a.size) * width, a, s=16, color=colors[method], alpha=0.45,
                       linewidths=0, zorder=2)
            ax.errorbar([x], [a.mean()], yerr=[std], fmt="_", markersize=16, markeredgewidth=2.2,
                        color=colors[method], capsize=4, elinewidth=1.5, zorder=3)
            if (model, method) in ref:
                ax.scatter([x], [ref[(model, method)]], marker="x", s=40, color="black", zorder=4)
    ax.set_xticks(range(len(data)), list(data))
    ax.set_xlim(-0.6, len(data) - 0.4)
    ax.set_ylabel("test accuracy (%)")
    ax.grid(True, axis="y", alpha=0.3)
    _legend(fig, methods, colors, bool(ref), title)
    return fig


def _legend(fig: Any, methods: list[str], colors: dict, with_reference: bool, title: str | None) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colors[m], marker="o", linestyle="", markersize=6) for m in methods]
    labels = [short_name(m).upper() for m in methods]
    if with_reference:
        handles.append(Line2D([], [], color="black", marker="x", linestyle="", markersize=7))
        labels.append("published")
    width = fig.get_size_inches()[0]
    note = "dots: seeds, bars: mean ± std (n - 1)"
    text = note if title is None else f"{title}\n{note}"
    lines = [textwrap.fill(line, width=int(width * 13)) for line in text.split("\n")]
    fig.legend(handles, labels, loc="outside upper center", ncol=len(handles), frameon=False, fontsize=9,
               title="\n".join(lines), title_fontsize=9)
