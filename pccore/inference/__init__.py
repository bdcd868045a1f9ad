"""Inference: minimise the PC energy of one batch over the errors (EO family) or the states
(SO), with one driver (``driver``) and one file per method.

- ``step``: the hashable step (one update by a *rule*), the start point, the fused solve;
- ``stop``: the loop's stop tests (``tol``, a ``Target`` distance, observers' requests);
- ``observe``: observed runs that report points to plugins with the same operations;
- ``gradient``: ``ErrorOptimization`` / ``StateOptimization`` (gradient descent);
- ``spectral``: ``SpectralEO`` (EO with lr * lambda_max held at a target, per sample);
- ``newton``: ``NewtonCG`` (Gauss-Newton on the errors, conjugate gradients, no lr);
- ``ode``: ``ErrorODE`` / ``StateODE`` (continuous-time inference: Euler / Heun, fixed or
  adaptive per-sample steps with a PID controller);
- ``hessian``: Hessian-vector products of the error energy and per-sample Lanczos.
"""

from .driver import Inference
from .gradient import ErrorOptimization, StateOptimization
from .newton import NewtonCG
from .ode import ErrorODE, StateODE
from .result import InferenceResult
from .spectral import SpectralEO
from .step import Descent, Solve, Start, Step, start_point
from .stop import Converged, Target

__all__ = [
    "Converged", "Descent", "ErrorODE", "ErrorOptimization", "Inference", "InferenceResult", "NewtonCG", "Solve",
    "Start", "StateODE", "SpectralEO", "StateOptimization", "Step", "Target", "start_point",
]
