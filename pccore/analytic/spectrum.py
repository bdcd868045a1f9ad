"""The spectrum of the error energy's Hessian: its extreme eigenvalues by per-sample
Lanczos on Hessian-vector products, and the stable learning rate of EO they imply."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from .. import host
from ..checks import check_positive_int
from ..energy import check_hidden, first_output
from ..inference.hessian import hvp, lanczos_extremes, linearize
from ..inference.step import Descent, Step
from ..losses import get_loss
from ..nn.network import Network


@attrs.frozen
class Spectrum:
    """Extreme eigenvalues of the error Hessian, per sample ((batch,) arrays on the
    backend), and ``stable_lr = 2 / max(lambda_max)``: gradient descent on the errors (EO,
    plain SGD) converges only below it."""

    lambda_max: Any
    lambda_min: Any
    stable_lr: float


def _probe(errors: Sequence[Any], seed: int, rt: Any) -> list:
    """A random start vector drawn on the host (same on every backend)."""
    rng = host.generator(seed)
    return [rt.asarray(rng.standard_normal(tuple(e.shape)), dtype=rt.dtype) for e in errors]


def error_hessian_spectrum(net: Network, x: Any, y: Any, errors: Sequence[Any] | None = None,
                           k: int = 20, exact: bool = False, loss: Any = "mse", seed: int = 0) -> Spectrum:
    """Largest and smallest eigenvalues of the Hessian of E(e) at ``errors`` (default: zero,
    the feed-forward point) by ``k`` Lanczos steps per sample: Gauss-Newton (I + J^T H_C J,
    eigenvalues >= 1) or, with ``exact``, the full Hessian. ``k`` >= d_y + 1 is exact for a
    deep linear net."""
    from ..runtime import runtime_for

    check_positive_int("k", k)
    step = Step("EO", net.structure, net.kernels, get_loss(loss), Descent(None), False)
    f0x = first_output(net, x)
    if errors is None:
        from ..inference.step import start_point

        errors = start_point("EO", net.kernels, net.structure, net.params, f0x)
    check_hidden(net, x, y, list(errors), "errors")
    rt = runtime_for(x)
    start = _probe(errors, seed, rt)
    fn = net.kernels.compiled(_extremes, step, k, exact)
    lmax, lmin = fn(net.params, f0x, y, tuple(errors), tuple(start))
    top = float(rt.to_numpy(net.xp.max(lmax)))
    return Spectrum(lmax, lmin, 2.0 / top if top > 0 else float("inf"))


def _extremes(step: Step, k: int, exact: bool, params: tuple, f0x: Any, y: Any, errors: tuple, start: tuple):
    args = (params, f0x, y)
    point = linearize(step, args, errors, exact)
    return lanczos_extremes(step.kernels.xp, lambda v: hvp(step, args, point, v, exact), list(start), k,
                            step.kernels.run_loop)
