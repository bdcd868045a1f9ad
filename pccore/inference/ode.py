"""Continuous-time inference: the gradient flow d(values)/dt = -dE/d(values) integrated by
Euler or Heun (explicit trapezoid), with a fixed step or an adaptive one per sample (the
Euler/Heun embedded pair gives the local error, a PID controller the next step size).

``ErrorODE`` moves the errors (start: zero errors), ``StateODE`` the states (start: the
feed-forward states); both are :class:`Inference` methods, so ``run``, observed runs and
``Trainer`` use them like gradient descent. Array API only: accepting or rejecting a step
is an ``xp.where`` per sample, never a Python branch on array values, so a whole run stays
one compiled loop on JAX.
"""

from __future__ import annotations

import math
from typing import Any

import array_api_compat as compat
import attrs

from ..checks import check_positive_int
from ..errors import InputError
from ..runtime import Runtime
from .driver import Inference, check_tol

SOLVERS = ("euler", "heun")
ERROR_ORDER = 2  # the embedded estimate (Heun minus Euler) is Euler's local error, O(dt^2)
SAFETY, FACTOR_MIN, FACTOR_MAX = 0.9, 0.2, 10.0  # step-size change per step: [0.2, 10] x
TINY_ERROR = 1e-10  # scaled errors below this count as this (keeps the controller finite)
STABILITY = 1.0  # adaptive steps <= STABILITY / (curvature along the step): see ODERule._stable_step


def _per_sample(xp: Any, a: Any, like: Any) -> Any:
    """(batch,) array ``a`` shaped to broadcast against ``like`` (batch, ...)."""
    return xp.reshape(a, (a.shape[0],) + (1,) * (like.ndim - 1))


def _sample_sum(xp: Any, a: Any) -> Any:
    """Sum of ``a`` (batch, ...) over all but the batch axis: (batch,)."""
    return xp.sum(xp.reshape(a, (a.shape[0], -1)), axis=1)


@attrs.frozen
class ODERule:
    """One integration step of y' = -g(y) from the gradient ``g`` at y (an update rule of
    :class:`~pccore.inference.step.Step`; the second gradient, at the Euler point, comes
    from an extra sweep). State per sample, each (batch,): (time t, step size dt, inverse
    scaled errors of the last two accepted steps for the controller)."""

    solver: str
    adaptive: bool
    dt: float
    rtol: float
    atol: float
    t1: float | None
    pcoeff: float
    icoeff: float
    dcoeff: float

    def init(self, step: Any, args: tuple, values: tuple) -> tuple:
        f0x = args[1]
        ones = step.kernels.xp.ones((f0x.shape[0],), dtype=f0x.dtype, device=compat.device(f0x))
        return 0 * ones, self.dt * ones, ones, ones

    def update(self, step: Any, args: tuple, values: tuple, state: tuple, g: tuple) -> tuple:
        xp = step.kernels.xp
        t, dt, inv1, inv2 = state
        h = dt if self.t1 is None else xp.minimum(dt, self.t1 - t)  # never past t1
        euler = [v - _per_sample(xp, h, v) * d for v, d in zip(values, g)]
        if not self.adaptive and self.solver == "euler":  # exactly gradient descent, lr = dt
            return tuple(euler), (self._advance(xp, t, h, dt), dt, inv1, inv2)
        g2 = step.grads(args, tuple(euler))
        new = euler if self.solver == "euler" else [
            v - _per_sample(xp, 0.5 * h, v) * (d + d2) for v, d, d2 in zip(values, g, g2)]
        if not self.adaptive:
            return tuple(new), (self._advance(xp, t, h, dt), dt, inv1, inv2)
        err = self._scaled_error(xp, h, values, euler, g, g2)
        accept = err <= 1.0  # False for NaN: a non-finite trial point is never taken
        inv = 1.0 / xp.maximum(err, xp.full_like(err, TINY_ERROR))
        factor = self._factor(xp, inv, inv1, inv2, accept)
        new = [xp.where(_per_sample(xp, accept, v), n, v) for n, v in zip(new, values)]
        t_next = xp.where(accept, self._advance(xp, t, h, dt), t)
        done = t_next >= self.t1 if self.t1 is not None else xp.zeros_like(accept)
        dt_next = xp.minimum(h * factor, self._stable_step(xp, h, g, g2))
        dt_next = xp.where(done, dt, dt_next)  # a sample at t1 keeps its last proposal
        return tuple(new), (t_next, dt_next, xp.where(accept, inv, inv1), xp.where(accept, inv1, inv2))

    def _advance(self, xp: Any, t: Any, h: Any, dt: Any) -> Any:
        """t + h, landing exactly on t1 when the step was cut to reach it."""
        if self.t1 is None:
            return t + h
        return xp.where(dt >= self.t1 - t, xp.full_like(t, self.t1), t + h)

    def _scaled_error(self, xp: Any, h: Any, values: tuple, euler: list, g: tuple, g2: list) -> Any:
        """Per sample, RMS over its entries of (h/2 |g(y_euler) - g(y)|) / (atol + rtol
        max(|y|, |y_euler|)): the Euler step's local error against the tolerances."""
        total, count = 0, 0
        for v, e, d, d2 in zip(values, euler, g, g2):
            scale = self.atol + self.rtol * xp.maximum(xp.abs(v), xp.abs(e))
            r = _per_sample(xp, 0.5 * h, v) * (d2 - d) / scale
            total = total + _sample_sum(xp, r * r)
            count += math.prod(v.shape[1:])
        return xp.sqrt(total / count)

    def _stable_step(self, xp: Any, h: Any, g: tuple, g2: list) -> Any:
        """Per sample, STABILITY / rho with rho = ||g(y_euler) - g(y)|| / (h ||g(y)||), the
        curvature of E along the step (a secant estimate of the Jacobian's scale; inf where
        it cannot be told). Near a steady state the local error no longer limits the step and
        the error controller would hold it at the stability boundary of the stiffest
        direction, where that direction stops decaying; this cap keeps it decaying."""
        num = xp.sqrt(sum(_sample_sum(xp, d * d) for d in g)) * h
        den = xp.sqrt(sum(_sample_sum(xp, (d2 - d) * (d2 - d)) for d, d2 in zip(g, g2)))
        ok = (den > 0) & (num > 0)
        return xp.where(ok, STABILITY * num / xp.where(ok, den, xp.ones_like(den)), xp.full_like(den, math.inf))

    def _factor(self, xp: Any, inv: Any, inv1: Any, inv2: Any, accept: Any) -> Any:
        """Step-size factor: PID on the inverse scaled errors (Soderlind's form, exponents
        (p + i + d, -(p + 2d), d) / ERROR_ORDER) after an accepted step, integral control
        alone (and no growth) after a rejected one, within [FACTOR_MIN, FACTOR_MAX]."""
        p, i, d, q = self.pcoeff, self.icoeff, self.dcoeff, ERROR_ORDER
        pid = SAFETY * inv ** ((p + i + d) / q) * inv1 ** (-(p + 2 * d) / q) * inv2 ** (d / q)
        pid = xp.minimum(xp.maximum(pid, xp.full_like(pid, FACTOR_MIN)), xp.full_like(pid, FACTOR_MAX))
        shrink = xp.maximum(SAFETY * inv ** (1 / q), xp.full_like(inv, FACTOR_MIN))
        shrink = xp.where(xp.isfinite(inv), xp.minimum(shrink, xp.ones_like(inv)), xp.full_like(inv, FACTOR_MIN))
        return xp.where(accept, pid, shrink)


@attrs.frozen
class ODEStop:
    """Loop stop test: the last vector field's RMS is <= tol (or NaN; ``tol`` None: never),
    or every sample reached t1 (``t1`` None: never)."""

    tol: float | None
    t1: float | None

    def __call__(self, carry: tuple, args: tuple) -> Any:
        norm, t = carry[2], carry[1][0]
        steady = ~(norm > self.tol) if self.tol is not None else None
        if self.t1 is None:
            return steady
        ended = compat.array_namespace(t).all(t >= self.t1)
        return ended if steady is None else steady | ended


def _finite(arg: str, value: Any, minimum: float = 0.0, strict: bool = True) -> float:
    """``value`` as a float, finite and > minimum (>= minimum unless ``strict``)."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    ok = ok and (value > minimum if strict else value >= minimum)
    if not ok:
        raise InputError(f"{arg} must be a finite number {'>' if strict else '>='} {minimum:g}, got {value!r}")
    return float(value)


class _ODE(Inference):
    """Shared constructor of ErrorODE and StateODE."""

    def __init__(self, solver: str = "heun", adaptive: bool = True, dt: float = 0.1, rtol: float = 1e-3,
                 atol: float = 1e-3, max_steps: int = 500, t1: float | None = None, tol: float | None = None,
                 pcoeff: float = 0.4, icoeff: float = 0.3, dcoeff: float = 0.0):
        if solver not in SOLVERS:
            raise InputError(f"solver must be one of {SOLVERS}, got {solver!r}")
        if not isinstance(adaptive, bool):
            raise InputError(f"adaptive must be True or False, got {adaptive!r}")
        self.solver, self.adaptive = solver, adaptive
        self.dt = _finite("dt", dt)
        self.rtol = _finite("rtol", rtol, strict=False)
        self.atol = _finite("atol", atol)  # > 0: EO starts at zero errors, where rtol scales nothing
        self.iters = check_positive_int("max_steps", max_steps)
        self.t1 = None if t1 is None else _finite("t1", t1)
        self.tol = check_tol(tol)
        self.pcoeff = _finite("pcoeff", pcoeff, strict=False)
        self.icoeff = _finite("icoeff", icoeff, strict=False)
        self.dcoeff = _finite("dcoeff", dcoeff, strict=False)
        if self.pcoeff + self.icoeff + self.dcoeff <= 0:
            raise InputError("pcoeff + icoeff + dcoeff must be > 0 (else the step size never adapts), "
                             f"got {pcoeff!r}, {icoeff!r}, {dcoeff!r}")

    @property
    def max_steps(self) -> int:
        return self.iters

    def rule_for(self, rt: Runtime) -> ODERule:
        return ODERule(self.solver, self.adaptive, self.dt, self.rtol, self.atol, self.t1,
                       self.pcoeff, self.icoeff, self.dcoeff)

    @property
    def until(self) -> ODEStop | None:
        if self.tol is None and self.t1 is None:
            return None
        return ODEStop(self.tol, self.t1)

    @property
    def setting(self) -> str:
        if self.adaptive:
            return f"solver={self.solver}, rtol={self.rtol:g}, atol={self.atol:g}"
        return f"solver={self.solver}, dt={self.dt:g}"

    def _result(self, rt, step, net, x, y, out, *rest):
        """The driver's result, except for a run that ended by reaching t1 (the driver takes
        any early stop for a tol stop): stopped = "t1", and converged only when the
        gradient at the end point meets tol."""
        result = super()._result(rt, step, net, x, y, out, *rest)
        if self.t1 is None or result.stopped != "tol":
            return result
        if self.tol is not None and not float(rt.to_numpy(out[0][2])) > self.tol:
            return result  # the last gradient met tol: a steady-state stop
        end_rms = float(rt.to_numpy(out[3])[2])
        return attrs.evolve(result, stopped="t1", converged=self.tol is not None and end_rms <= self.tol)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(solver={self.solver!r}, adaptive={self.adaptive}, dt={self.dt:g}, "
                f"rtol={self.rtol:g}, atol={self.atol:g}, max_steps={self.iters}, t1={self.t1}, tol={self.tol}, "
                f"pcoeff={self.pcoeff:g}, icoeff={self.icoeff:g}, dcoeff={self.dcoeff:g})")


class ErrorODE(_ODE):
    """Continuous-time inference on the errors (EO's variables, starting from zero errors):
    integrates de/dt = -dE/de up to ``t1`` (None: no time limit), for at most ``max_steps``
    steps, or until the steady state: ``tol`` stops once the RMS of the vector field dE/de
    (the gradient, at the start of the last step) is <= tol. The stop looks at de/dt, not
    at the activities, so it fires at a true equilibrium.

    ``solver``: "euler" or "heun" (explicit trapezoid). ``adaptive=True``: per-sample step
    sizes from ``dt`` on, steps accepted when the local error (Heun minus Euler) has RMS <=
    1 in units of ``atol + rtol * |y|``, next sizes from a PID controller (``pcoeff``,
    ``icoeff``, ``dcoeff``; the default is Gustafsson's PI), at most 1 / (curvature along
    the step) so that near the steady state the run keeps converging instead of stalling at
    the stability limit. ``adaptive=False``: the fixed step ``dt`` (Euler is then gradient
    descent with lr = dt). Adaptive steps evaluate the gradient twice, fixed Heun twice,
    fixed Euler once; ``iterations`` counts every step tried, rejected ones included.
    A run that ends at ``t1`` reports ``stopped == "t1"``."""

    method = "EO"


class StateODE(_ODE):
    """Continuous-time inference on the states (SO's variables, starting from the
    feed-forward states): ds/dt = -dE/ds, with the settings of :class:`ErrorODE`."""

    method = "SO"
