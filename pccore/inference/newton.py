"""NewtonCG: Gauss-Newton steps on the errors, each solved by conjugate gradients on
Hessian-vector products, with a per-sample backtracking line search. No learning rate:
the Gauss-Newton Hessian I + J^T H_C J is positive definite, so the step cannot diverge."""

from __future__ import annotations

from typing import Any

import attrs

from ..checks import check_positive_int
from ..errors import InputError
from ..runtime import Runtime
from .driver import Inference, check_tol
from .hessian import axpy, bdot, bscale, conjugate_gradients, hvp, linearize, safe_div


def sample_energy(step: Any, args: tuple, errors: list) -> Any:
    """The error energy of each sample, (batch,), from one forward pass."""
    params, f0x, y = args
    k, xp, s = step.kernels, step.kernels.xp, f0x
    total = step.loss.per_sample(xp, _forward(step, args, errors), y)
    for e in errors:
        total = total + 0.5 * xp.sum(xp.reshape(e * e, (e.shape[0], -1)), axis=1)
    return total


def _forward(step: Any, args: tuple, errors: list) -> Any:
    params, s, _ = args
    for block, p, e in zip(step.structure.blocks[1:], params[1:], errors):
        s = block(step.kernels, p, s + e)
    return s


@attrs.frozen
class NewtonRule:
    """One Gauss-Newton update: CG on H p = -g (``cg_iters`` products), then step sizes
    1, 1/2, ... (``line_search`` halvings, Armijo per sample; 0 = always the full step)."""

    cg_iters: int
    cg_tol: float
    exact: bool
    line_search: int
    reorthogonalize: bool = False

    def init(self, step: Any, args: tuple, values: tuple) -> tuple:
        return ()

    def update(self, step: Any, args: tuple, values: tuple, state: Any, g: Any) -> tuple:
        xp = step.kernels.xp
        point = linearize(step, args, values, self.exact)
        minus_g = [-u for u in g]
        # the exact Hessian may be indefinite: stop CG where its curvature falls below that of
        # the energy's I term by 10x (Gauss-Newton curvature is always >= 1)
        direction = conjugate_gradients(xp, lambda v: hvp(step, args, point, v, self.exact),
                                        minus_g, self.cg_iters, self.cg_tol, 0.1 if self.exact else 0.0,
                                        self.reorthogonalize, step.kernels.run_loop)
        alpha = xp.ones_like(bdot(xp, g, g))
        if self.line_search:
            alpha = self._search(step, args, list(values), direction, list(g), alpha)
        if self.exact and self.line_search:
            # where the truncated Newton direction found no decrease (indefinite Hessian far
            # from the solution), fall back to steepest descent scaled to the minimum of the
            # Gauss-Newton model along it (the Cauchy point, one product), with the same search
            gn_curvature = bdot(xp, minus_g, hvp(step, args, point, minus_g, False))
            gg = bdot(xp, g, g)
            cauchy = safe_div(xp, gg, gn_curvature, gn_curvature > 0)
            steepest = bscale(xp, cauchy, minus_g)
            failed = alpha == 0
            fallback = self._search(step, args, list(values), steepest, list(g), xp.ones_like(alpha))
            direction = [xp.where(xp.reshape(failed, (-1,) + (1,) * (d.ndim - 1)), m, d)
                         for d, m in zip(direction, steepest)]
            alpha = xp.where(failed, fallback, alpha)
        return tuple(axpy(xp, alpha, direction, list(values))), state

    def _search(self, step, args, values, direction, g, alpha):
        xp = step.kernels.xp
        e0, slope = sample_energy(step, args, values), bdot(xp, g, direction)
        # energies equal up to rounding count as no increase: near the solution the predicted
        # decrease drops below the energy's resolution while the gradient still shrinks
        e0 = e0 + 64 * xp.finfo(e0.dtype).eps * xp.abs(e0)
        for _ in range(self.line_search):
            trial = sample_energy(step, args, axpy(xp, alpha, direction, values))
            alpha = xp.where(trial <= e0 + 1e-4 * alpha * slope, alpha, 0.5 * alpha)
        trial = sample_energy(step, args, axpy(xp, alpha, direction, values))
        return xp.where(trial <= e0, alpha, xp.zeros_like(alpha))  # never a worse point


class NewtonCG(Inference):
    """Second-order inference on the errors: at most ``max_iters`` Gauss-Newton steps,
    each from ``cg_iters`` conjugate-gradient iterations on Hessian-vector products (one
    JVP and one VJP sweep each), per sample; CG ends early once every sample's residual is
    below ``cg_tol`` (relative). ``reorthogonalize=True`` keeps the residuals orthogonal, so
    CG ends in d_y + 1 products as in exact arithmetic (deep linear nets), at the cost of a
    (batch, cg_iters + 1, D) buffer and ~2 memory passes over it per product. ``exact=True`` uses the exact Hessian
    (with the activations' second derivatives; CG then stops where curvature is not
    positive). ``tol`` stops once the gradient RMS is <= tol. No learning rate.

    For a deep linear net with the MSE loss one step with ``cg_iters >= d_y + 1`` lands on
    the closed-form equilibrium (up to rounding)."""

    method = "EO"

    def __init__(self, max_iters: int = 10, tol: float | None = None, cg_iters: int = 20,
                 cg_tol: float = 1e-10, exact: bool = False, line_search: int = 4, reorthogonalize: bool = False):
        self.iters = check_positive_int("max_iters", max_iters)
        self.tol = check_tol(tol)
        self.cg_iters = check_positive_int("cg_iters", cg_iters)
        if isinstance(cg_tol, bool) or not isinstance(cg_tol, (int, float)) or not cg_tol >= 0:
            raise InputError(f"cg_tol must be a number >= 0, got {cg_tol!r}")
        for name, flag in (("exact", exact), ("reorthogonalize", reorthogonalize)):
            if not isinstance(flag, bool):
                raise InputError(f"{name} must be True or False, got {flag!r}")
        self.cg_tol, self.exact, self.reorthogonalize = float(cg_tol), exact, reorthogonalize
        self.line_search = check_positive_int("line_search", line_search, minimum=0)

    def rule_for(self, rt: Runtime) -> NewtonRule:
        return NewtonRule(self.cg_iters, self.cg_tol, self.exact, self.line_search, self.reorthogonalize)

    @property
    def setting(self) -> str:
        return f"cg_iters={self.cg_iters}"

    def __repr__(self) -> str:
        return (f"NewtonCG(max_iters={self.iters}, tol={self.tol}, cg_iters={self.cg_iters}, "
                f"exact={self.exact}, line_search={self.line_search}, reorthogonalize={self.reorthogonalize})")
