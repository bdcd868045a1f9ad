"""Inference: minimise the PC energy of one batch over the errors (EO family) or the states
(SO), with one driver (``driver``) and one file per method.

- ``step``: the hashable step (one update by a *rule*), the start point, the fused solve;
- ``observe``: observed runs that report points to plugins with the same operations;
- ``gradient``: ``ErrorOptimization`` / ``StateOptimization`` (gradient descent);
- ``newton``: ``NewtonCG`` (Gauss-Newton on the errors, conjugate gradients, no lr);
- ``ode``: ``ErrorODE`` (continuous-time inference, Euler / Heun with an adaptive step);
- ``hessian``: Hessian-vector products of the error energy and per-sample Lanczos.
"""

from .driver import Inference
from .gradient import ErrorOptimization, StateOptimization
from .newton import NewtonCG
from .result import InferenceResult
from .step import Converged, Descent, Solve, Start, Step, start_point

__all__ = [
    "Converged", "Descent", "ErrorOptimization", "Inference", "InferenceResult", "NewtonCG", "Solve", "Start",
    "StateOptimization", "Step", "start_point",
]
