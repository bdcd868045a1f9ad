"""Seed 000's convergence figure: distance of EO and SO states to the analytical
equilibrium over update steps, per layer, with the speed-up measured from the data."""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from pccore.errors import InputError
from pccore_trackers.metrics import quartiles, steps_to_threshold

from ._common import (
    EO_COLOR, SO_COLOR, check_finite, layer_arrays, lr_labels, new_figure, pick_layers, short_name,
    steps_axis, top_legend,
)


def _times(ratio: float) -> str:
    return f"{ratio:.0f}" if ratio >= 10 else f"{ratio:.1f}"


def speedup_text(n_a: int | None, n_b: int | None, t_a: int, t_b: int, name_a: str, name_b: str) -> str:
    """Caption from steps-to-threshold ``n_a``/``n_b`` (None: not reached in ``t_a``/``t_b`` updates)."""
    if n_a is None and n_b is None:
        return f"threshold not reached\n({name_a}: {t_a}, {name_b}: {t_b} steps)"
    if n_b is None:
        return f"{name_b}: not reached in {t_b} steps,\n{name_a} >{_times(t_b / max(n_a, 1))}× faster"
    if n_a is None:
        return f"{name_a}: not reached in {t_a} steps,\n{name_b} >{_times(t_a / max(n_b, 1))}× faster"
    if n_a == n_b:
        return f"same equilibrium,\nsame speed ({n_a} steps)"
    fast, slow, who = (n_a, n_b, name_a) if n_a < n_b else (n_b, n_a, name_b)
    return f"same equilibrium,\n{who} ~{_times(slow / max(fast, 1))}× faster"


def _curve(ax: Any, dist: np.ndarray, color: str) -> None:
    q1, med, q3 = quartiles(dist)
    t = steps_axis(len(med))
    ax.fill_between(t, q1[1:], q3[1:], color=color, alpha=0.22, linewidth=0)
    ax.plot(t, med[1:], color=color, linewidth=2)


def _axes_x(ax: Any, x: float) -> float:
    """Axes fraction of data ``x`` on a log axis, kept far enough from the edges for a caption."""
    lo, hi = (math.log(v) for v in ax.get_xlim())
    return min(max((math.log(x) - lo) / (hi - lo), 0.27), 0.73)


def _annotate(ax: Any, eo: np.ndarray, so: np.ndarray, threshold: float, names: tuple[str, str]) -> str:
    """Arrow between the steps at which each median first drops below ``threshold``, plus caption."""
    n_eo, n_so = steps_to_threshold(eo, threshold), steps_to_threshold(so, threshold)
    t_eo, t_so = eo.shape[0] - 1, so.shape[0] - 1
    text = speedup_text(n_eo, n_so, t_eo, t_so, *names)
    ends = [max(n, 1) if n is not None else t for n, t in ((n_eo, t_eo), (n_so, t_so))]
    y = threshold * 1.5
    for n, color in ((n_eo, EO_COLOR), (n_so, SO_COLOR)):
        if n is not None:
            ax.plot([max(n, 1)], [threshold], "o", color=color, markersize=6, zorder=5)
    if (n_eo is not None or n_so is not None) and ends[0] != ends[1]:
        style = "<->" if n_eo is not None and n_so is not None else "->"
        start, end = (ends[0], ends[1]) if n_eo is not None else (ends[1], ends[0])
        ax.annotate("", xy=(end, y), xytext=(start, y),
                    arrowprops=dict(arrowstyle=style, color="black", lw=1.5))
    ax.text(_axes_x(ax, math.sqrt(ends[0] * ends[1])), y * 1.25, text, ha="center", va="bottom",
            fontsize=9, transform=ax.get_yaxis_transform(),
            bbox=dict(boxstyle="round,pad=0.25", facecolor="white", edgecolor="none", alpha=0.8))
    return text


def _legend(fig: Any, labels: list[str], threshold: float, title: str | None) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Line2D([], [], color=EO_COLOR, lw=2), Line2D([], [], color=SO_COLOR, lw=2),
               Patch(color="0.5", alpha=0.3, linewidth=0), Line2D([], [], color="0.4", ls="--", lw=1)]
    top_legend(fig, handles, [*labels, "IQR over batch", f"threshold {threshold:g}"], title)


def _ylim(axes: Iterable[Any], dists: list[np.ndarray], threshold: float) -> None:
    pos = np.concatenate([d[1:].ravel() for d in dists])
    pos = pos[pos > 0]
    top = float(pos.max()) * 2 if pos.size else 1.0
    low = float(np.percentile(pos, 1)) / 1.5 if pos.size else threshold / 10
    bottom = min(max(low, threshold / 10), threshold / 2)
    for ax in axes:
        ax.set_ylim(bottom, max(top, threshold * 20))


def convergence_figure(
    eo: dict[int, Any],
    so: dict[int, Any],
    layers: Iterable[int] | None = None,
    threshold: float = 7e-5,
    labels: tuple[str, str] = ("Error optimization (EO)", "State optimization (SO)"),
    lrs: tuple[float, float] | None = None,
    title: str | None = None,
) -> Any:
    """One log-log panel per layer: median and IQR over the batch of ||s_t - s*|| for EO and SO.

    eo, so: dict layer -> (steps, batch) distances, row t after t updates (row 0 the start).
    The caption's speed-up is the ratio of the steps at which each median first falls
    below ``threshold`` (``pccore_trackers.metrics.steps_to_threshold``). ``lrs``: the
    (EO, SO) learning rates, named in the legend; ``title``: what was run (e.g. dataset,
    backend), above the legend.
    """
    eo, so = layer_arrays("eo", eo, 2), layer_arrays("so", so, 2)
    layers = pick_layers(layers, eo=eo, so=so)
    if not isinstance(threshold, (int, float)) or not 0 < threshold < math.inf:
        raise InputError(f"threshold must be a positive number, got {threshold!r}")
    if len(labels) != 2:
        raise InputError(f"labels must be two strings (EO, SO), got {labels!r}")
    for k in layers:
        check_finite(f"eo[{k}]", eo[k])
        check_finite(f"so[{k}]", so[k])
    names = (short_name(labels[0]), short_name(labels[1]))
    legend = lr_labels(tuple(labels), lrs)
    fig, axes = new_figure(1, len(layers), sharey=True)
    for ax, k in zip(axes[0], layers):
        _curve(ax, so[k], SO_COLOR)
        _curve(ax, eo[k], EO_COLOR)
        ax.axhline(threshold, color="0.4", linestyle="--", linewidth=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"Convergence to the optimum, layer {k}", fontsize=11)
        ax.set_xlabel("update steps T")
        ax.grid(True, which="major", alpha=0.3)
        _annotate(ax, eo[k], so[k], threshold, names)
    _ylim(axes[0], [eo[k] for k in layers] + [so[k] for k in layers], threshold)
    axes[0, 0].set_ylabel(r"$\|\mathbf{s}_\ell - \mathbf{s}_\ell^*\|$  (median, IQR over batch)")
    _legend(fig, legend, threshold, title)
    return fig
