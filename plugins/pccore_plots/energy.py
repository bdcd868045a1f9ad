"""Seed 003's figure: theoretical vs numerical equilibrium energy over training iterations,
optionally with test accuracy in a second panel."""

from __future__ import annotations

from typing import Any

import numpy as np

from pccore.errors import InputError

from ._common import check_finite, new_figure

NUMERICAL_COLOR = "#00a67e"
ACCURACY_COLOR = "#6a3d9a"


def _vector(arg: str, value: Any) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise InputError(f"{arg} must be a non-empty 1-D array, got shape {a.shape}")
    check_finite(arg, a)
    return a


def _accuracy(accuracy: Any) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(accuracy, (tuple, list)) or len(accuracy) != 2:
        raise InputError("accuracy must be a pair (steps, values) of 1-D arrays")
    steps, acc = _vector("accuracy steps", accuracy[0]), _vector("accuracy values", accuracy[1])
    if steps.shape != acc.shape:
        raise InputError(f"accuracy steps and values differ in length: {steps.size} vs {acc.size}")
    return steps, acc * 100 if acc.max() <= 1.0 else acc  # fractions shown as percent


def energy_figure(
    theory: Any,
    numerical: Any,
    steps: Any | None = None,
    accuracy: tuple[Any, Any] | None = None,
) -> Any:
    """Theoretical (black dashed) vs numerical (solid) equilibrium energy per training iteration.

    theory, numerical: (n,) batch-mean energies; steps: (n,) iteration numbers (default
    1..n); accuracy: optional (steps, values) test accuracy (fractions or percent), shown
    in a panel below.
    """
    theory, numerical = _vector("theory", theory), _vector("numerical", numerical)
    if theory.shape != numerical.shape:
        raise InputError(f"theory and numerical differ in length: {theory.size} vs {numerical.size}")
    steps = np.arange(1, theory.size + 1) if steps is None else _vector("steps", steps)
    if steps.shape != theory.shape:
        raise InputError(f"steps must have {theory.size} entries, got {steps.size}")
    rows = 1 if accuracy is None else 2
    fig, axes = new_figure(rows, 1, panel=(6.4, 3.4 if rows == 1 else 2.6), sharex=True,
                           **({} if rows == 1 else dict(gridspec_kw=dict(height_ratios=[2, 1]))))
    ax = axes[0, 0]
    ax.plot(steps, numerical, color=NUMERICAL_COLOR, linewidth=3.2, label="numerical (PC inference)")
    ax.plot(steps, theory, color="black", linestyle="--", linewidth=1.8, label=r"theory ($\mathcal{F}^*$)")
    ax.set_ylabel("equilibrium energy")
    ax.set_title("Theoretical vs numerical equilibrium energy", fontsize=12)
    ax.legend(frameon=False)
    ax.grid(True, alpha=0.3)
    if accuracy is not None:
        acc_steps, acc = _accuracy(accuracy)
        axes[1, 0].plot(acc_steps, acc, "o-", color=ACCURACY_COLOR, linewidth=1.5, markersize=4)
        axes[1, 0].set_ylabel("test accuracy (%)")
        axes[1, 0].grid(True, alpha=0.3)
    axes[-1, 0].set_xlabel("training iteration")
    return fig
