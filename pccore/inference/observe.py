"""Observed runs: the loop pieces that report every point (or every ``pccore_every``-th)
to observers with the very same operations as a fused run, so observers never change
results. Each observed point's energy and other variables come from the sweep that also
gives its gradient."""

from __future__ import annotations

import math
from typing import Any

import attrs

from ..runtime import Runtime
from .step import Step, rms


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
        values, opt_state = self.step.rule.update(self.step, args, tuple(values), opt_state, tuple(g))
        norm = rms(self.step.kernels.xp, g) if self.step.track_norm else norm
        return _Probe(self.step)((values, opt_state, norm), args)


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
