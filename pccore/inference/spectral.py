"""SpectralEO: error optimisation with the learning rate set per sample from the error
Hessian's largest eigenvalue, so that ``lr * lambda_max`` stays at a target.

Gradient descent on the errors converges only for lr < 2 / lambda_max, and lambda_max
grows during training (FabricPC saw it go from 22 to 31,000 on a ResNet-18); a fixed rate
tuned at the start later diverges. Here each run measures lambda_max of every sample by
``k`` Lanczos steps at the start point (k Hessian-vector products), then steps with
lr_i = target / lambda_max_i."""

from __future__ import annotations

import math
from typing import Any

import array_api_compat as compat
import attrs

from ..checks import check_positive_int
from ..errors import InputError
from ..runtime import Runtime
from .driver import Inference, check_tol
from .hessian import bdot, bscale, hvp, lanczos_extremes, linearize, safe_div


def probe(xp: Any, values: tuple) -> list:
    """A fixed, dense start vector for Lanczos, made without a random generator so it can
    be built inside compiled functions: sin of a scrambled index, the same for every sample."""
    out = []
    offset = 0
    for v in values:
        size = math.prod(v.shape[1:])
        index = xp.arange(offset, offset + size, dtype=v.dtype, device=compat.device(v))
        row = xp.sin(index * 12.9898 + 78.233) + 0.5  # the offset keeps it off any sign pattern
        out.append(xp.zeros_like(v) + xp.reshape(row, (1, *v.shape[1:])))
        offset += size
    return out


@attrs.frozen
class SpectralRule:
    """Per-sample lr = target / lambda_max: ``k`` Lanczos steps at the start point, then
    (``track``) one power-iteration product per step at the current point, the rate only
    ever lowered, since lambda_max moves along the run (it grew 2.5x on a tanh net).
    State: (lr (batch,), unit power vector per sample)."""

    target: float
    k: int
    exact: bool
    track: bool

    def _apply(self, step: Any, args: tuple, values: tuple) -> Any:
        point = linearize(step, args, values, self.exact)
        return lambda v: hvp(step, args, point, v, self.exact)

    def init(self, step: Any, args: tuple, values: tuple) -> Any:
        xp = step.kernels.xp
        v = probe(xp, values)
        lmax, _ = lanczos_extremes(xp, self._apply(step, args, values), v, self.k, step.kernels.run_loop)
        return self._rate(xp, lmax, None), _unit(xp, v)

    def update(self, step: Any, args: tuple, values: tuple, state: Any, g: Any) -> tuple:
        xp = step.kernels.xp
        lr, v = state
        if self.track:
            hv = self._apply(step, args, values)(list(v))
            lr, v = self._rate(xp, bdot(xp, list(v), hv), lr), _unit(xp, hv)
        moves = bscale(xp, lr, list(g))
        return tuple(u - m for u, m in zip(values, moves)), (lr, tuple(v))

    def _rate(self, xp: Any, lam: Any, lr: Any) -> Any:
        """target / lam where lam > 0 (else no change), never above ``lr``."""
        ok = lam > 0
        new = xp.where(ok, self.target / xp.where(ok, lam, xp.ones_like(lam)), xp.full_like(lam, math.inf))
        return new if lr is None else xp.minimum(lr, new)


def _unit(xp: Any, vs: list) -> tuple:
    """Each sample's vector scaled to norm 1 (zero vectors stay zero)."""
    norm = xp.sqrt(bdot(xp, vs, vs))
    return tuple(bscale(xp, safe_div(xp, xp.ones_like(norm), norm, norm > 0), vs))


class SpectralEO(Inference):
    """EO with ``lr * lambda_max = target`` per sample (no learning rate to tune).

    lambda_max of the error Hessian (``exact``; else its Gauss-Newton part) comes from ``k``
    Lanczos steps at the start point (the feed-forward point) and, with ``track``, one
    power-iteration product per step after that (the rate only goes down). Gradient
    descent on the errors is stable for ``target`` < 2 on a quadratic energy; the default
    1.0 leaves a margin. Each step costs a gradient sweep plus one Hessian-vector product
    (``track=False``: the gradient sweep only, at the risk of oscillating where the
    curvature grows along the run)."""

    method = "EO"

    def __init__(self, iters: int, target: float = 1.0, k: int = 10, tol: float | None = None,
                 exact: bool = True, track: bool = True):
        self.iters = check_positive_int("iters", iters)
        if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0 < target < 2:
            raise InputError(f"target (lr * lambda_max) must be a number in (0, 2), got {target!r}")
        for name, flag in (("exact", exact), ("track", track)):
            if not isinstance(flag, bool):
                raise InputError(f"{name} must be True or False, got {flag!r}")
        self.target, self.k, self.tol = float(target), check_positive_int("k", k), check_tol(tol)
        self.exact, self.track = exact, track

    def rule_for(self, rt: Runtime) -> SpectralRule:
        return SpectralRule(self.target, self.k, self.exact, self.track)

    @property
    def setting(self) -> str:
        return f"lr*lambda_max={self.target:g}"

    def __repr__(self) -> str:
        return (f"SpectralEO(iters={self.iters}, target={self.target:g}, k={self.k}, tol={self.tol}, "
                f"exact={self.exact}, track={self.track})")
