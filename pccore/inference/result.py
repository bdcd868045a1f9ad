"""InferenceResult: what a run of any inference method returns."""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen
class InferenceResult:
    """Outcome of inference on one batch.

    states/errors: L-1 arrays (batch, d_k); energy: 0-d array (batch sum);
    iterations: updates taken; converged: whether ``tol`` was reached (False without tol):
    the loop stopped early because the RMS of the last gradient was <= tol, or the
    gradient at the returned point is. stopped: why the run ended before ``iters``
    ("tol", "target", "observer", or "t1" for an ODE run that reached its end time; None
    when it ran them all); distance: the relative
    distance of the states to ``run(target=...)``'s reference (None without a target).
    """

    method: str
    states: list
    errors: list
    energy: Any
    iterations: int
    converged: bool
    stopped: str | None = None
    distance: float | None = None
