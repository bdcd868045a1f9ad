"""Plot plugins (entry-point group ``pccore.plots``): matplotlib figures of the seed
experiments, built on ``matplotlib.figure.Figure`` (no pyplot state, so headless-safe).

Every function takes host NumPy arrays and returns a Figure; ``save(fig, path)`` writes it.
matplotlib is imported on first use: without it, drawing raises MissingDependency("matplotlib", "plots").
"""

from __future__ import annotations

from typing import Callable

from pccore import registry

from ._common import save
from .accuracy import accuracy_figure
from .convergence import convergence_figure, speedup_text
from .energy import energy_figure
from .gradients import gradient_alignment_figure, gradient_norms_figure


def plots() -> list[str]:
    """Names of the installed plots (entry-point group ``pccore.plots``)."""
    return registry.names(registry.PLOTS)


def get_plot(name: str) -> Callable:
    """The figure function registered as ``name``; unknown names raise UnknownNameError
    listing the installed plots."""
    return registry.load(registry.PLOTS, name, "plot")


__all__ = [
    "accuracy_figure", "convergence_figure", "energy_figure", "get_plot", "gradient_alignment_figure",
    "gradient_norms_figure", "plots", "save", "speedup_text",
]
