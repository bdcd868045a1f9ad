"""The inference step: one update of the free variables (errors for EO-family methods,
states for SO), as a hashable function of (carry, args) that backends loop and compile.

carry = (variables, rule state, rms of the last gradient); args = (network params, the
first block's output f_0(x), targets y). The update itself is a *rule*: gradient descent
with a backend optimizer (``Descent``), Gauss-Newton with conjugate gradients
(``newton.NewtonRule``), an adaptive ODE integrator (``ode.ODERule``); rules take the
step, so they can run extra sweeps or Hessian-vector products at the point.
"""

from __future__ import annotations

import math
from typing import Any

import array_api_compat as compat
import attrs

from ..energy import energy_from, error_sweep, state_sweep
from ..nn.kernels import Kernels
from ..nn.network import Structure
from .stop import Converged, Near, combined, relative_distance  # noqa: F401  (Converged re-exported)


@attrs.frozen
class Descent:
    """Gradient descent through a backend optimizer (``sgd``, ``momentum``, ``adam``)."""

    opt: Any

    def init(self, step: "Step", args: tuple, values: tuple) -> Any:
        return self.opt.init(values)

    def update(self, step: "Step", args: tuple, values: tuple, state: Any, g: Any) -> tuple:
        return self.opt.update(tuple(values), tuple(g), state)


@attrs.frozen
class Step:
    """One optimiser update of the free variables; hashable so compiled loops cache.

    carry = (variables, optimiser state, rms of the last gradient);
    args = (network params, first block's output f_0(x), targets y).
    """

    method: str  # "EO": the variables are errors; "SO": states
    structure: Structure
    kernels: Kernels
    loss: Any
    rule: Any
    track_norm: bool

    def grads(self, args: tuple, values: tuple) -> list:
        params, f0x, y = args
        if self.method == "EO":
            return error_sweep(self.kernels, self.structure, params, self.loss, f0x, y, list(values))[0]
        return state_sweep(self.kernels, self.structure, params, self.loss, f0x, y, list(values))[0]

    def grads_energy(self, args: tuple, values: tuple, backward: bool = True) -> tuple[list, Any, list]:
        """From one sweep at ``values``: the gradient (empty without ``backward``), the
        energy and the other variables (states for EO, errors for SO; the same ops as
        ``states_from_errors`` and ``errors_from_states``)."""
        params, f0x, y = args
        k, xp = self.kernels, self.kernels.xp
        if self.method == "EO":
            states: list = []
            grads, yhat = error_sweep(k, self.structure, params, self.loss, f0x, y, list(values), states, backward)
            return grads, energy_from(xp, self.loss, values, yhat, y), states
        grads, eps, yhat = state_sweep(k, self.structure, params, self.loss, f0x, y, list(values), backward)
        return grads, energy_from(xp, self.loss, eps[:len(values)], yhat, y), eps[:len(values)]

    def __call__(self, carry: tuple, args: tuple) -> tuple:
        values, state, _ = carry
        g = self.grads(args, values)
        values, state = self.rule.update(self, args, tuple(values), state, tuple(g))
        norm = rms(self.kernels.xp, g) if self.track_norm else carry[2]
        return tuple(values), state, norm


def start_point(method: str, k: Kernels, structure: Structure, params: tuple, f0x: Any) -> tuple:
    """Where inference starts: EO at zero errors (made from the shapes, no forward pass), SO
    at the feed-forward states. Both are the feed-forward point."""
    if method == "EO":
        xp, device = k.xp, compat.device(f0x)
        return tuple(xp.zeros((f0x.shape[0], *shape), dtype=f0x.dtype, device=device)
                     for shape in structure.shapes[:-1])
    if structure.depth == 1:
        return ()
    states = [k.xp.asarray(f0x, copy=True)]  # its own buffer: eager optimizers update in place
    for block, p in zip(structure.blocks[1:-1], params[1:-1]):
        states.append(block(k, p, states[-1]))
    return tuple(states)


@attrs.frozen
class Start:
    """The start point as a loop carry: (values, optimiser state, inf as the last rms)."""

    step: Step

    def __call__(self, params: tuple, x: Any, y: Any) -> tuple:
        step = self.step
        f0x = step.structure.blocks[0](step.kernels, params[0], x)
        values = start_point(step.method, step.kernels, step.structure, params, f0x)
        inf = step.kernels.xp.full((), math.inf, dtype=x.dtype, device=compat.device(x))
        return values, step.rule.init(step, (params, f0x, y), values), inf


@attrs.frozen
class Solve:
    """Up to ``n`` updates from a carry, then the end point's sweep, as one function:
    (carry, other variables, energy, status) with status = [updates taken, energy, gradient
    rms (0 without tol), distance to the target (with ``near`` only)], one small array so the
    host reads what it checks in one transfer. Hashable, so a backend compiles it whole (a
    fused ``run`` on JAX is this one jitted call); observed runs call it with ``n = 0`` at the
    point they reached, so both report the same numbers. ``reference``: the target states
    when ``near`` is given."""

    step: Step
    until: Any  # Converged or None
    near: Near | None = None

    def __call__(self, params: tuple, x: Any, y: Any, carry: tuple | None, n: Any, reference: Any = None) -> tuple:
        step = self.step
        if carry is None:  # a fused run: the start point too, in the same call
            carry = Start(step)(params, x, y)
        args = (params, step.structure.blocks[0](step.kernels, params[0], x), y)
        near = None if self.near is None else self.near.bind(reference)
        carry, m = step.kernels.run_loop(step, carry, n, args, combined([self.until, near]))
        grads, energy, other = step.grads_energy(args, tuple(carry[0]), backward=step.track_norm)
        xp = step.kernels.xp
        zero = xp.zeros_like(energy)
        rms_end = rms(xp, grads) if step.track_norm else zero
        status = [zero + m, energy, rms_end]  # m: an int, or traced on JAX
        if near is not None:
            states = carry[0] if step.method == "SO" else other
            status.append(relative_distance(xp, states, near.reference))
        return carry, tuple(other), energy, xp.stack(status)


def rms(xp: Any, grads: list) -> Any:
    """Root mean square over every entry of ``grads`` (a non-empty list of arrays)."""
    total = sum(xp.sum(g * g) for g in grads)
    count = sum(math.prod(g.shape) for g in grads)
    return xp.sqrt(total / count)
