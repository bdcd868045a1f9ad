"""Regime: which regime each inference run was in, so a user knows whether training was
predictive coding near its equilibrium or something closer to backprop.

Per recorded run: lambda_max of the error Hessian at the start point (Lanczos), the lr
times it (for EO with plain SGD), the fraction of the way from the feed-forward states to
the equilibrium the run covered, and a label:

- ``unstable``: EO at lr * lambda_max >= 2 (gradient descent on the errors cannot
  converge), or the run ended farther from the equilibrium than it started;
- ``backprop-like``: fraction < ``backprop_below`` (default 0.1): the states barely moved,
  so the weight update is close to a (scaled) backprop gradient;
- ``partial``: in between;
- ``near equilibrium``: fraction >= ``equilibrium_above`` (default 0.9).

The equilibrium is found by NewtonCG (exact Hessian, no learning rate; quadratic
convergence near it, where Gauss-Newton converges only linearly when residuals are large). Each recorded run
costs ``k`` Hessian-vector products plus a Newton solve: use ``every`` to record one run
in N during training.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np

import pccore
from pccore import hookimpl
from pccore.checks import check_positive_int
from pccore.errors import InputError

LABELS = ("backprop-like", "partial", "near equilibrium", "unstable")


def label(fraction: float, lr_lambda: float | None, backprop_below: float = 0.1,
          equilibrium_above: float = 0.9) -> str:
    """The regime of a run from the fraction of the way covered and lr * lambda_max."""
    if (lr_lambda is not None and lr_lambda >= 2.0) or not math.isfinite(fraction) or fraction < 0:
        return "unstable"
    if fraction < backprop_below:
        return "backprop-like"
    return "near equilibrium" if fraction >= equilibrium_above else "partial"


def _flat(rt: Any, arrays: list) -> np.ndarray:
    return np.concatenate([rt.to_numpy(a).astype(np.float64).ravel() for a in arrays])


class Regime:
    """Records the regime of every ``every``-th inference run (see the module docstring).

    After runs: ``records`` (one dict per recorded run: run, method, lr, lambda_max,
    lr_lambda, fraction, label) and ``counts()`` (label -> runs). ``k``: Lanczos steps;
    ``newton``: the NewtonCG that finds the reference equilibrium.
    """

    pccore_every = 1 << 30  # only the start and the last point are needed: fused in between

    def __init__(self, every: int = 1, k: int = 20, backprop_below: float = 0.1, equilibrium_above: float = 0.9,
                 newton: Any = None):
        self.every, self.k = check_positive_int("every", every), check_positive_int("k", k)
        if not 0 <= backprop_below < equilibrium_above <= 1:
            raise InputError("need 0 <= backprop_below < equilibrium_above <= 1, got "
                             f"{backprop_below!r} and {equilibrium_above!r}")
        self.backprop_below, self.equilibrium_above = float(backprop_below), float(equilibrium_above)
        self.newton = newton if newton is not None else pccore.NewtonCG(max_iters=10, cg_iters=30, exact=True)
        self.records: list[dict] = []
        self._runs, self._info, self._busy = 0, None, False

    @hookimpl
    def pccore_inference_start(self, info):
        if self._busy:
            return
        self._info = info if self._runs % self.every == 0 and info.net is not None else None
        self._runs += 1

    @hookimpl
    def pccore_inference_step(self, step):
        """Declared so that training runs inference through the driver (see ``pccore_every``)."""

    @hookimpl
    def pccore_inference_end(self, result):
        info, self._info = self._info, None
        if self._busy or info is None or not result.states:
            return
        self._busy = True  # the analysis runs inference itself: ignore those runs
        try:
            self.records.append(self._analyse(info, result))
        finally:
            self._busy = False

    def _analyse(self, info: Any, result: Any) -> dict:
        net, x, y, loss, rt = info.net, info.x, info.y, info.loss, info.runtime
        spectrum = pccore.analytic.error_hessian_spectrum(net, x, y, k=self.k, loss=loss)
        lambda_max = float(rt.to_numpy(rt.xp.max(spectrum.lambda_max)))
        reference = _flat(rt, self.newton.run(net, x, y, loss=loss).states)
        start = _flat(rt, pccore.feedforward_states(net, x))
        end = _flat(rt, result.states)
        span = np.linalg.norm(start - reference)
        fraction = 1.0 - np.linalg.norm(end - reference) / span if span > 0 else 1.0
        sgd_eo = info.method == "EO" and info.optimizer == "sgd" and info.lr is not None
        lr_lambda = info.lr * lambda_max if sgd_eo else None
        return {
            "run": self._runs - 1, "method": info.method, "lr": info.lr, "lambda_max": lambda_max,
            "lr_lambda": lr_lambda, "fraction": float(fraction),
            "label": label(float(fraction), lr_lambda, self.backprop_below, self.equilibrium_above),
        }

    def counts(self) -> dict[str, int]:
        """How many recorded runs had each label."""
        found = Counter(r["label"] for r in self.records)
        return {name: found.get(name, 0) for name in LABELS}
