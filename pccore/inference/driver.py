"""The inference driver: validation, the fused run (one backend function), observed runs,
the divergence check and the result, shared by every inference method."""

from __future__ import annotations

import math
from typing import Any

from ..checks import adopt, check_finite, check_iters, is_real
from ..energy import first_output
from ..errors import InferenceDiverged, InputError
from ..events import InferenceStart, InferenceStep
from ..losses import get_loss
from ..nn.network import Network, check_input
from ..runtime import Runtime, check_runtime, runtime_for
from .observe import _ApplyProbe, _Measure, _Probe, _observer_period
from .result import InferenceResult
from .step import Converged, Solve, Start, Step, start_point
from .stop import Near, Target, combined


def check_tol(tol: Any) -> float | None:
    """``tol`` as None or a finite number >= 0."""
    if tol is None:
        return None
    if not is_real(tol) or not (tol >= 0 and math.isfinite(tol)):
        raise InputError(f"tol must be None or a finite number >= 0, got {tol!r}")
    return float(tol)


def _first_param(net: Any) -> Any:
    """The first parameter array of ``net`` (None for a network without any or a non-network)."""
    return next(iter(net.flat_params()), None) if isinstance(net, Network) else None


def _compiled(rt: Runtime, fn: Any) -> Any:
    """``fn`` compiled by the backend (jit on JAX), or ``fn`` itself on eager backends."""
    return rt.pm.hook.pccore_compile(fn=fn) or fn


class Inference:
    """The driver shared by every inference method: ``run`` fuses the start point, the
    loop and the end sweep into one backend function, or reports points to observers;
    subclasses say which variables they move (``method``: "EO" errors, "SO" states), how
    (``rule_for``: the update rule) and how a divergence is worded (``setting``)."""

    method = ""

    iters: int = 1
    tol: float | None = None

    def rule_for(self, rt: Runtime) -> Any:
        """The update rule (hashable) of this method on ``rt``."""
        raise NotImplementedError

    @property
    def setting(self) -> str:
        """How a divergence message names this method's settings, e.g. "lr=0.1"."""
        return ""

    def initial(self, xp: Any, net: Network, x: Any) -> tuple:
        """The start point for batch x (see :func:`start_point`)."""
        return start_point(self.method, net.kernels, net.structure, net.params, first_output(net, x))

    def step_for(self, rt: Runtime, net: Network, loss: Any) -> Step:
        """The hashable :class:`Step` of this method for ``net`` on ``rt``."""
        return Step(self.method, net.structure, net.kernels, get_loss(loss), self.rule_for(rt), self.tol is not None)

    @property
    def until(self) -> Converged | None:
        return None if self.tol is None else Converged(float(self.tol))

    def run(self, net: Network, x: Any, y: Any, loss: Any = "mse", runtime: Runtime | None = None,
            target: Target | None = None) -> InferenceResult:
        """Minimise the energy for batch x (batch, *input_shape), y (batch, *output_shape) on
        ``runtime`` (default: the runtime of x's framework, device and dtype). Without step
        observers the whole run is one backend function (one jitted call on JAX).

        Stops early when the gradient RMS is <= ``tol``, when the states come within
        ``target.rtol`` (relative) of ``target.states`` (a :class:`Target`), or when a step
        observer calls ``step.request_stop()``; ``result.stopped`` says which."""
        if runtime is not None:  # arrays of another framework (e.g. NumPy data) move to the runtime
            x, y = adopt(runtime, _first_param(net), x=x, y=y)
        xp = check_input(net, x, y, untracked=True)
        check_iters("iters", self.iters)
        rt = runtime if runtime is not None else runtime_for(x)
        check_runtime(rt, "x", x)
        step = self.step_for(rt, net, loss)
        reference = _check_target(net, x, target)
        near = None if target is None else Near(step, float(target.rtol))
        rt.pm.hook.pccore_inference_start(info=InferenceStart(
            self.method, getattr(self, "lr", None), getattr(self, "optimizer", type(self).__name__),
            self.iters, self.tol, x.shape[0], rt, net, x, y, step.loss, self))
        if net.depth == 1:  # no hidden state: nothing to infer
            yhat = net.forward(x)
            result = InferenceResult(self.method, [], [], step.loss.value(xp, yhat, y), 0, self.tol is not None)
            if not math.isfinite(float(result.energy)):
                self._check_finite_inputs(net, x, y)
                raise InferenceDiverged(self.method, self.setting, 0)
        else:
            carry, n, stopped = None, 0, None
            if rt.observes("pccore_inference_step"):
                args = (net.params, first_output(net, x), y)
                until = combined([self.until, None if near is None else near.bind(reference)])
                carry, n, stopped = self._observed(rt, step, _compiled(rt, Start(step))(net.params, x, y), args,
                                                   net, x, until)
            out = _compiled(rt, Solve(step, self.until, near))(
                net.params, x, y, carry, 0 if stopped else self.iters - n, reference)
            result = self._result(rt, step, net, x, y, out, n, stopped, None if near is None else near.rtol)
        rt.pm.hook.pccore_inference_end(result=result)
        return result

    def _observed(self, rt, step, carry, args, net, x, until):
        """Loop that reports points to the observers: every point, or every ``p``-th one
        (and the last) when every step observer declares ``pccore_every`` (gcd = p); the
        steps in between run fused. Results are those of the fused loop either way.
        Returns (carry, updates taken, "observer" when an observer asked to stop, else None)."""
        period = _observer_period(rt)
        values, _, norm = carry  # placeholders keep the carry's structure fixed
        first = _Probe(step) if period == 1 else _Measure(step)
        full, _ = rt.run_loop(first, carry + (values, norm, values), 1, args, None)
        i = 0
        while True:
            if not math.isfinite(float(full[4])):
                self._check_finite_inputs(net, x, args[2])
                if period > 1:  # the first bad point may lie inside the last chunk
                    i = self._first_nonfinite(rt, step, args, net, x, i)
                raise InferenceDiverged(self.method, self.setting, i)
            point = InferenceStep(self.method, i, full[4], rt, values=full[0], convert=lambda _, o=full[5]: list(o))
            rt.pm.hook.pccore_inference_step(step=point)
            if point.stop_requested:
                return full[:3], i, "observer"
            if i == self.iters or (until is not None and bool(until(full, args))):
                return full[:3], i, None
            if period == 1:
                full, _ = rt.run_loop(_ApplyProbe(step), full, 1, args, None)
                i += 1
                continue
            chunk, n = rt.run_loop(step, full[:3], min(period - i % period, self.iters - i), args, until)
            i += n
            full, _ = rt.run_loop(_Measure(step), chunk + full[3:], 1, args, None)

    def _check_finite_inputs(self, net: Network, x: Any, y: Any) -> None:
        """After a non-finite energy, before blaming this method's setting: an InputError when
        x, y or the weights hold NaN/inf (host reads on this failure path only)."""
        check_finite("x", x, "the inputs must be finite; clean the data first")
        check_finite("y", y, "the targets must be finite; clean the data first")
        for l, block in enumerate(net.params):
            for i, p in enumerate(block):
                check_finite(f"the network's parameter {i} of block {l}", p,
                             "the weights must be finite (did a training run diverge?)")

    def _first_nonfinite(self, rt, step, args, net, x, n):
        """Replay from the start, one step at a time: the first point with a non-finite energy."""
        carry = _compiled(rt, Start(step))(net.params, x, args[2])
        for i in range(n + 1):
            if not bool(rt.xp.isfinite(step.grads_energy(args, carry[0], backward=False)[1])):
                return i
            carry, _ = rt.run_loop(step, carry, 1, args, None)
        return n

    def _result(self, rt, step, net, x, y, out, n, stopped, rtol):
        """The InferenceResult from :class:`Solve`'s output (after ``n`` observed updates),
        after checking the energy is finite (else the run is replayed step by step to name
        the first non-finite iteration)."""
        (values, _, _), other, energy, status = out
        status = [float(v) for v in rt.to_numpy(status)]  # the one host read
        taken, end_energy, rms = status[:3]
        distance = status[3] if len(status) > 3 else None
        n += int(taken)
        if not math.isfinite(end_energy):
            args = (net.params, first_output(net, x), y)
            self._check_finite_inputs(net, x, y)
            raise InferenceDiverged(self.method, self.setting, self._first_nonfinite(rt, step, args, net, x, n))
        met_tol = self.tol is not None and rms <= self.tol
        if stopped is None and n < self.iters:  # a stop test fired: the target, else tol
            stopped = "target" if rtol is not None and distance <= rtol else "tol"
        converged = met_tol or stopped == "tol"
        values, other = list(values), list(other)
        states, errors = (values, other) if self.method == "SO" else (other, values)
        return InferenceResult(self.method, states, errors, energy, int(n), converged, stopped, distance)


def _check_target(net: Network, x: Any, target: Any) -> tuple | None:
    """The target's reference states as a tuple, checked against the network's hidden shapes."""
    if target is None:
        return None
    if not isinstance(target, Target):
        raise InputError(f"target must be a pccore.Target(states, rtol) or None, got {type(target).__name__}")
    shapes = net.structure.shapes[:-1]
    states = list(target.states)
    if len(states) != len(shapes):
        raise InputError(f"target has {len(states)} states; the network has {len(shapes)} hidden layers")
    for k, (s, shape) in enumerate(zip(states, shapes)):
        want = (x.shape[0], *shape)
        if tuple(getattr(s, "shape", ())) != want:
            raise InputError(f"target state {k} must have shape {want}, got {getattr(s, 'shape', type(s).__name__)}")
    return tuple(states)
