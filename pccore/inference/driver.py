"""The inference driver: validation, the fused run (one backend function), observed runs,
the divergence check and the result, shared by every inference method."""

from __future__ import annotations

import math
from typing import Any

from ..energy import first_output
from ..errors import InferenceDiverged, InputError
from ..events import InferenceStart, InferenceStep
from ..losses import get_loss
from ..nn.network import Network, check_input
from ..runtime import Runtime, check_runtime, runtime_for
from .observe import _ApplyProbe, _Measure, _Probe, _observer_period
from .result import InferenceResult
from .step import Converged, Solve, Start, Step, start_point


def check_tol(tol: Any) -> float | None:
    """``tol`` as None or a finite number >= 0."""
    if tol is None:
        return None
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not (tol >= 0 and math.isfinite(tol)):
        raise InputError(f"tol must be None or a finite number >= 0, got {tol!r}")
    return float(tol)


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

    def run(self, net: Network, x: Any, y: Any, loss: Any = "mse", runtime: Runtime | None = None) -> InferenceResult:
        """Minimise the energy for batch x (batch, *input_shape), y (batch, *output_shape) on
        ``runtime`` (default: the runtime of x's framework, device and dtype). Without step
        observers the whole run is one backend function (one jitted call on JAX)."""
        xp = check_input(net, x, y)
        rt = runtime if runtime is not None else runtime_for(x)
        check_runtime(rt, "x", x)
        step = self.step_for(rt, net, loss)
        rt.pm.hook.pccore_inference_start(info=InferenceStart(
            self.method, getattr(self, "lr", None), getattr(self, "optimizer", type(self).__name__),
            self.iters, self.tol, x.shape[0], rt))
        if net.depth == 1:  # no hidden state: nothing to infer
            yhat = net.forward(x)
            result = InferenceResult(self.method, [], [], step.loss.value(xp, yhat, y), 0, self.tol is not None)
        else:
            carry, n = None, 0
            if rt.observes("pccore_inference_step"):
                args = (net.params, first_output(net, x), y)
                carry, n = self._observed(rt, step, _compiled(rt, Start(step))(net.params, x, y), args, net, x)
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
                raise InferenceDiverged(self.method, self.setting, i)
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
        carry = _compiled(rt, Start(step))(net.params, x, args[2])
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
            raise InferenceDiverged(self.method, self.setting, self._first_nonfinite(rt, step, args, net, x, n))
        # the stop test fired (n < iters), or the end point meets tol
        converged = self.tol is not None and (n < self.iters or rms <= self.tol)
        values, other = list(values), list(other)
        states, errors = (values, other) if self.method == "SO" else (other, values)
        return InferenceResult(self.method, states, errors, energy, int(n), converged)
