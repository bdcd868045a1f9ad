"""Seed 000's gradient figures: orientation (cosine to backprop) and norm of the PC weight
gradient over inference steps, EO vs SO, with the analytical-equilibrium gradient."""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from pccore.errors import InputError

from ._common import (
    EO_COLOR, SO_COLOR, check_finite, layer_arrays, layer_floats, new_figure, pick_layers,
    steps_axis, top_legend,
)

LABELS = ("Error optimization (EO)", "State optimization (SO)", "Backpropagation", "Analytical equilibrium")
BREAK_LOW = (-0.1, 0.1)  # lower panel of the broken axis: "no alignment yet"
LOG_DECADES = 4  # depth of the gradient-norm figure's log axis below its largest value


def _methods(ax: Any, eo: np.ndarray, so: np.ndarray) -> None:
    ax.plot(steps_axis(len(so)), so[1:], color=SO_COLOR, linewidth=2)
    ax.plot(steps_axis(len(eo)), eo[1:], color=EO_COLOR, linewidth=2)
    ax.set_xscale("log")
    ax.grid(True, which="major", alpha=0.3)


def _handles(fig: Any, title: str | None) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=EO_COLOR, lw=2), Line2D([], [], color=SO_COLOR, lw=2),
               Line2D([], [], color="k", ls=":", lw=1.5), Line2D([], [], color="k", ls="--", lw=1.5)]
    top_legend(fig, handles, list(LABELS), title)


def _cosine_range(curves: list[np.ndarray], optimum: list[float]) -> tuple[float, float]:
    """(top panel's lower limit, smallest value): the top panel spans the converged region."""
    finals = [c[np.isfinite(c)][-1] for c in curves if np.isfinite(c).any()]
    top_lo = min([0.9] + [v - 0.03 for v in optimum + finals])
    top_lo = np.floor(top_lo * 20) / 20
    values = np.concatenate([c[1:][np.isfinite(c[1:])] for c in curves] + [np.asarray(optimum)])
    return float(top_lo), float(values.min()) if values.size else 1.0


def _break_marks(top: Any, bottom: Any) -> None:
    d = 0.012
    kw = dict(color="k", clip_on=False, linewidth=1)
    for ax, y in ((top, 0), (bottom, 1)):
        for x in (0, 1):
            ax.plot((x - d, x + d), (y - 3 * d, y + 3 * d), transform=ax.transAxes, **kw)
    top.spines["bottom"].set_visible(False)
    bottom.spines["top"].set_visible(False)
    top.tick_params(which="both", bottom=False, labelbottom=False)


def gradient_alignment_figure(
    eo_cos: dict[int, Any],
    so_cos: dict[int, Any],
    optimum_cos: dict[int, float],
    layers: Iterable[int] | None = None,
    title: str | None = None,
) -> Any:
    """Cosine similarity of the PC weight gradient to backprop over inference steps, per layer.

    eo_cos, so_cos: dict layer -> (steps,) (row t after t updates; NaN where a gradient is
    zero is allowed); optimum_cos: dict layer -> float, the analytical equilibrium's
    gradient (dashed); backprop is the dotted line at 1. When some curves start near 0,
    the y-axis is broken so the region near 1 stays readable. ``title``: what was run.
    """
    eo, so = layer_arrays("eo_cos", eo_cos, 1), layer_arrays("so_cos", so_cos, 1)
    opt = layer_floats("optimum_cos", optimum_cos)
    layers = pick_layers(layers, eo_cos=eo, so_cos=so, optimum_cos=opt)
    for name, d in (("eo_cos", eo), ("so_cos", so)):
        for k in layers:
            check_finite(f"{name}[{k}]", d[k], allow_nan=True)
            if np.nanmax(np.abs(d[k])) > 1 + 1e-6:
                raise InputError(f"{name}[{k}] must hold cosine similarities in [-1, 1]")
    curves = [eo[k] for k in layers] + [so[k] for k in layers]
    top_lo, lowest = _cosine_range(curves, [opt[k] for k in layers])
    broken = lowest < top_lo and lowest >= BREAK_LOW[0]
    if broken:
        fig, axes = new_figure(2, len(layers), panel=(4.3, 1.9), sharex="col",
                               gridspec_kw=dict(height_ratios=[5, 1]))
        fig.get_layout_engine().set(h_pad=0.02, hspace=0.0)
    else:
        fig, axes = new_figure(1, len(layers))
    for i, k in enumerate(layers):
        panels = axes[:, i]
        for ax in panels:
            _methods(ax, eo[k], so[k])
            ax.axhline(1.0, color="k", linestyle=":", linewidth=1.5)
            ax.axhline(opt[k], color="k", linestyle="--", linewidth=1.5)
        panels[0].set_title(f"Gradient orientation, layer {k}", fontsize=11)
        panels[-1].set_xlabel("update steps T")
        if broken:
            panels[0].set_ylim(top_lo, 1.012)
            panels[1].set_ylim(*BREAK_LOW)
            panels[1].set_yticks([0.0])
            _break_marks(*panels)
        elif lowest >= top_lo:
            panels[0].set_ylim(top_lo, 1.012)
        else:
            panels[0].set_ylim(lowest - 0.05, 1.05)
    axes[0, 0].set_ylabel("cosine similarity to backprop")
    _handles(fig, title)
    return fig


def gradient_norms_figure(
    eo_norms: dict[int, Any],
    so_norms: dict[int, Any],
    bp_norm: dict[int, float],
    optimum_norm: dict[int, float],
    layers: Iterable[int] | None = None,
    title: str | None = None,
) -> Any:
    """L2 norm of the PC weight gradient over inference steps, per layer, on one shared log
    y-axis (norms of different layers differ by orders of magnitude and SO's start at 0).

    eo_norms, so_norms: dict layer -> (steps,) (row t after t updates; zeros, e.g. before
    SO's error reaches a layer, are left out of the log axis); bp_norm, optimum_norm: dict
    layer -> float, backprop's (dotted) and the analytical equilibrium's (dashed) gradient
    norms. ``title``: what was run.
    """
    eo, so = layer_arrays("eo_norms", eo_norms, 1), layer_arrays("so_norms", so_norms, 1)
    bp, opt = layer_floats("bp_norm", bp_norm), layer_floats("optimum_norm", optimum_norm)
    layers = pick_layers(layers, eo_norms=eo, so_norms=so, bp_norm=bp, optimum_norm=opt)
    for name, d in (("eo_norms", eo), ("so_norms", so)):
        for k in layers:
            check_finite(f"{name}[{k}]", d[k])
            if (d[k] < 0).any():
                raise InputError(f"{name}[{k}] must hold norms (>= 0), got negative values")
    fig, axes = new_figure(1, len(layers), sharey=True)
    for ax, k in zip(axes[0], layers):
        ax.set_yscale("log", nonpositive="mask")
        _methods(ax, eo[k], so[k])
        ax.axhline(bp[k], color="k", linestyle=":", linewidth=1.5)
        ax.axhline(opt[k], color="k", linestyle="--", linewidth=1.5)
        ax.set_title(f"Gradient norm, layer {k}", fontsize=11)
        ax.set_xlabel("update steps T")
        ax.grid(True, which="minor", axis="y", alpha=0.12)
    axes[0, 0].set_ylim(*_log_range([eo[k][1:] for k in layers] + [so[k][1:] for k in layers],
                                    [bp[k] for k in layers] + [opt[k] for k in layers]))
    axes[0, 0].set_ylabel(r"gradient norm $\|\nabla_{W_\ell} \mathcal{E}\|_2$ (log)")
    _handles(fig, title)
    return fig


def _log_range(curves: list[np.ndarray], levels: list[float]) -> tuple[float, float]:
    """(bottom, top) of a log axis holding the positive values, with a little margin, at most
    ``LOG_DECADES`` decades deep (the first steps of SO can be ~1e-10 of the final norm)."""
    values = np.concatenate([c[np.isfinite(c)] for c in curves] + [np.asarray(levels, dtype=np.float64)])
    values = values[values > 0]
    if values.size == 0:
        return 0.1, 10.0
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return low / 10, high * 10
    return max(low / 1.5, high * 10.0 ** -LOG_DECADES), high * 1.5
