"""Inference: minimise the PC energy over states (SO) or errors (EO) with one driver.

The driver builds a hashable step (``Step``) and hands the loop to the backend's
``pccore_run_loop`` hook. With no ``pccore_inference_step`` observer the loop is fused
(no host sync per step; compiled whole on JAX). With observers it runs one point at a
time with the very same operations, so observers never change results; observers that
declare ``pccore_every = k`` (the built-in trackers do) let it run fused between the
points they record.
"""

from __future__ import annotations

import math
from typing import Any

import array_api_compat as compat
import attrs

from .checks import check_positive_float, check_positive_int
from .energy import energy_from, error_sweep, first_output, state_sweep
from .errors import InferenceDiverged, InputError
from .events import InferenceStart, InferenceStep
from .losses import get_loss
from .nn.kernels import Kernels
from .nn.network import Network, Structure, check_input
from .runtime import Runtime, check_runtime, runtime_for


@attrs.frozen
class InferenceResult:
    """Outcome of inference on one batch.

    states/errors: L-1 arrays (batch, d_k); energy: 0-d array (batch sum);
    iterations: updates taken; converged: whether ``tol`` was reached (False without tol):
    the loop stopped early because the RMS of the last gradient was <= tol, or the
    gradient at the returned point is.
    """

    method: str
    states: list
    errors: list
    energy: Any
    iterations: int
    converged: bool


# ------------------------------------------------------------------- the step
@attrs.frozen
class Step:
    """One optimiser update of the free variables; hashable so compiled loops cache.

    carry = (variables, optimiser state, rms of the last gradient);
    args = (network params, first block's output f_0(x), targets y).
    """

    method: str
    structure: Structure
    kernels: Kernels
    loss: Any
    opt: Any
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
        values, opt_state, _ = carry
        g = self.grads(args, values)
        values, opt_state = self.opt.update(tuple(values), tuple(g), opt_state)
        norm = _rms(self.kernels.xp, g) if self.track_norm else carry[2]
        return tuple(values), opt_state, norm


# Observed runs report each point with the energy (and the other variables) from the very
# sweep that gives its gradient, so no second forward pass: point 0 is probed, then each
# loop call applies the pending update and probes the new point. One call per point keeps
# in-place updates (NumPy, torch) safe: observers see a point before it is updated.
# Carry: (values, opt state, rms of the last gradient, grads, energy, other variables).
@attrs.frozen
class _Probe:
    """Gradient, energy and other variables at the current point, which is left as it is."""

    step: Step

    def __call__(self, carry: tuple, args: tuple) -> tuple:
        values, opt_state, norm = carry[:3]
        g, energy, other = self.step.grads_energy(args, values)
        return tuple(values), opt_state, norm, tuple(g), energy, tuple(other)


@attrs.frozen
class _Measure:
    """Energy and other variables at the current point from a forward pass only (the
    gradient slot is passed through): for points reached by a fused chunk."""

    step: Step

    def __call__(self, carry: tuple, args: tuple) -> tuple:
        values, opt_state, norm, g = carry[:4]
        _, energy, other = self.step.grads_energy(args, values, backward=False)
        return tuple(values), opt_state, norm, g, energy, tuple(other)


@attrs.frozen
class _ApplyProbe:
    """The optimiser update with the probed gradient (the same ops as ``Step``), then a
    probe of the new point."""

    step: Step

    def __call__(self, carry: tuple, args: tuple) -> tuple:
        values, opt_state, norm, g = carry[:4]
        values, opt_state = self.step.opt.update(tuple(values), tuple(g), opt_state)
        norm = _rms(self.step.kernels.xp, g) if self.step.track_norm else norm
        return _Probe(self.step)((values, opt_state, norm), args)


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

    def __call__(self, params: tuple, x: Any) -> tuple:
        step = self.step
        f0x = step.structure.blocks[0](step.kernels, params[0], x)
        values = start_point(step.method, step.kernels, step.structure, params, f0x)
        inf = step.kernels.xp.full((), math.inf, dtype=x.dtype, device=compat.device(x))
        return values, step.opt.init(values), inf


@attrs.frozen
class Solve:
    """Up to ``n`` updates from a carry, then the end point's sweep, as one function:
    (carry, other variables, energy, status) with status = [updates taken, energy, gradient
    rms (0 without tol)], one small array so the host reads what it checks in one transfer.
    Hashable, so a backend compiles it whole (a fused ``run`` on JAX is this one jitted
    call); observed runs call it with ``n = 0`` at the point they reached, so both report
    the same numbers."""

    step: Step
    until: Any  # Converged or None

    def __call__(self, params: tuple, x: Any, y: Any, carry: tuple | None, n: Any) -> tuple:
        step = self.step
        if carry is None:  # a fused run: the start point too, in the same call
            carry = Start(step)(params, x)
        args = (params, step.structure.blocks[0](step.kernels, params[0], x), y)
        carry, m = step.kernels.run_loop(step, carry, n, args, self.until)
        grads, energy, other = step.grads_energy(args, tuple(carry[0]), backward=step.track_norm)
        xp = step.kernels.xp
        zero = xp.zeros_like(energy)
        rms = _rms(xp, grads) if step.track_norm else zero
        status = xp.stack([zero + m, energy, rms])  # m: an int, or traced on JAX
        return carry, tuple(other), energy, status


@attrs.frozen
class Converged:
    """Loop stop test: the last gradient's RMS is <= tol (or is NaN)."""

    tol: float

    def __call__(self, carry: tuple, args: tuple) -> Any:
        return ~(carry[2] > self.tol)


def _observer_period(rt: Runtime) -> int:
    """Steps between the points the step observers need: the gcd of their ``pccore_every``
    (an int >= 1 an observer may declare: it ignores other points but the last); 1 when
    any observer declares none."""
    period = 0
    for impl in rt.pm.hook.pccore_inference_step.get_hookimpls():
        every = getattr(impl.plugin, "pccore_every", None)
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            return 1
        period = math.gcd(period, every)
    return max(period, 1)


def _compiled(rt: Runtime, fn: Any) -> Any:
    """``fn`` compiled by the backend (jit on JAX), or ``fn`` itself on eager backends."""
    return rt.pm.hook.pccore_compile(fn=fn) or fn


def _rms(xp: Any, grads: list) -> Any:
    """Root mean square over every entry of ``grads`` (a non-empty list of arrays)."""
    total = sum(xp.sum(g * g) for g in grads)
    count = sum(math.prod(g.shape) for g in grads)
    return xp.sqrt(total / count)


# ----------------------------------------------------------------- the driver
class _Optimization:
    """Shared constructor, validation and driver of SO and EO."""

    method = ""

    def __init__(self, iters: int, lr: float, optimizer: str = "sgd", tol: float | None = None, **hyper: Any):
        self.iters = check_positive_int("iters", iters)
        self.lr = check_positive_float("lr", lr)
        if not isinstance(optimizer, str):
            raise InputError(f"optimizer must be a name (sgd, momentum, adam), got {optimizer!r}")
        if tol is not None and (isinstance(tol, bool) or not isinstance(tol, (int, float)) or tol < 0):
            raise InputError(f"tol must be None or a number >= 0, got {tol!r}")
        self.optimizer, self.tol, self.hyper = optimizer, tol, hyper

    def __repr__(self) -> str:
        return f"{type(self).__name__}(iters={self.iters}, lr={self.lr:g}, optimizer={self.optimizer!r}, tol={self.tol})"

    def initial(self, xp: Any, net: Network, x: Any) -> tuple:
        """The start point for batch x (see :func:`start_point`)."""
        return start_point(self.method, net.kernels, net.structure, net.params, first_output(net, x))

    def step_for(self, rt: Runtime, net: Network, loss: Any) -> Step:
        """The hashable :class:`Step` of this method for ``net`` on ``rt``."""
        opt = rt.optimizer(self.optimizer, lr=self.lr, **self.hyper)
        return Step(self.method, net.structure, net.kernels, get_loss(loss), opt, self.tol is not None)

    @property
    def until(self) -> Converged | None:
        return None if self.tol is None else Converged(float(self.tol))

    def run(self, net: Network, x: Any, y: Any, loss: Any = "mse", runtime: Runtime | None = None) -> InferenceResult:
        """Minimise the energy for batch x (batch, *input_shape), y (batch, *output_shape) on
        ``runtime`` (default: the runtime of x's framework, device and dtype). Without step
        observers the whole run is one backend function (one jitted call on JAX)."""
        xp = check_input(net, x, y)
        rt = runtime if runtime is not None else runtime_for(x)
        check_runtime(rt, "x", x)
        step = self.step_for(rt, net, loss)
        rt.pm.hook.pccore_inference_start(info=InferenceStart(
            self.method, self.lr, self.optimizer, self.iters, self.tol, x.shape[0], rt))
        if net.depth == 1:  # no hidden state: nothing to infer
            yhat = net.forward(x)
            result = InferenceResult(self.method, [], [], step.loss.value(xp, yhat, y), 0, self.tol is not None)
        else:
            carry, n = None, 0
            if rt.observes("pccore_inference_step"):
                args = (net.params, first_output(net, x), y)
                carry, n = self._observed(rt, step, _compiled(rt, Start(step))(net.params, x), args, net, x)
            out = _compiled(rt, Solve(step, self.until))(net.params, x, y, carry, self.iters - n)
            result = self._result(rt, step, net, x, y, out, n)
        rt.pm.hook.pccore_inference_end(result=result)
        return result

    def _observed(self, rt, step, carry, args, net, x):
        """Loop that reports points to the observers: every point, or every ``p``-th one
        (and the last) when every step observer declares ``pccore_every`` (gcd = p); the
        steps in between run fused. Results are those of the fused loop either way."""
        until = self.until
        period = _observer_period(rt)
        values, _, norm = carry  # placeholders keep the carry's structure fixed
        first = _Probe(step) if period == 1 else _Measure(step)
        full, _ = rt.run_loop(first, carry + (values, norm, values), 1, args, None)
        i = 0
        while True:
            if not math.isfinite(float(full[4])):
                if period > 1:  # the first bad point may lie inside the last chunk
                    i = self._first_nonfinite(rt, step, args, net, x, i)
                raise InferenceDiverged(self.method, self.lr, i)
            rt.pm.hook.pccore_inference_step(step=InferenceStep(
                self.method, i, full[4], rt, values=full[0], convert=lambda _, o=full[5]: list(o)))
            if i == self.iters or (until is not None and bool(until(full, args))):
                return full[:3], i
            if period == 1:
                full, _ = rt.run_loop(_ApplyProbe(step), full, 1, args, None)
                i += 1
                continue
            chunk, n = rt.run_loop(step, full[:3], min(period - i % period, self.iters - i), args, until)
            i += n
            full, _ = rt.run_loop(_Measure(step), chunk + full[3:], 1, args, None)

    def _first_nonfinite(self, rt, step, args, net, x, n):
        """Replay from the start, one step at a time: the first point with a non-finite energy."""
        carry = _compiled(rt, Start(step))(net.params, x)
        for i in range(n + 1):
            if not bool(rt.xp.isfinite(step.grads_energy(args, carry[0], backward=False)[1])):
                return i
            carry, _ = rt.run_loop(step, carry, 1, args, None)
        return n

    def _result(self, rt, step, net, x, y, out, n):
        """The InferenceResult from :class:`Solve`'s output (after ``n`` observed updates),
        after checking the energy is finite (else the run is replayed step by step to name
        the first non-finite iteration)."""
        (values, _, _), other, energy, status = out
        taken, end_energy, rms = (float(v) for v in rt.to_numpy(status))  # the one host read
        n += int(taken)
        if not math.isfinite(end_energy):
            args = (net.params, first_output(net, x), y)
            raise InferenceDiverged(self.method, self.lr, self._first_nonfinite(rt, step, args, net, x, n))
        # the stop test fired (n < iters), or the end point meets tol
        converged = self.tol is not None and (n < self.iters or rms <= self.tol)
        values, other = list(values), list(other)
        states, errors = (values, other) if self.method == "SO" else (other, values)
        return InferenceResult(self.method, states, errors, energy, int(n), converged)


class StateOptimization(_Optimization):
    """SO: gradient descent on the hidden states, starting from the feed-forward pass."""

    method = "SO"


class ErrorOptimization(_Optimization):
    """EO: gradient descent on the prediction errors, starting from zero errors
    (the feed-forward pass); converges far faster than SO in deep networks."""

    method = "EO"
