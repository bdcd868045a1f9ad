"""Training steps as pure functions of (carry, batch), hashable so a backend compiles each
whole: ``carry = (flat params, weight optimizer state)``, ``batch = (x, y)``, and the
output is ``(carry, (loss, energy))`` with 0-d device arrays (batch means; the energy of a
backprop step is the loss). Nothing is read back to the host inside a step.

- ``PCStep``: inference for ``iters`` steps (EO or SO), the block-local weight gradients at
  the states found, divided by the batch size, and the weight update;
- ``BPStep``: the closed-form backprop gradient and the weight update;
- ``EvalStep``: summed loss and correct predictions of one batch.
"""

from __future__ import annotations

import math
from typing import Any

import array_api_compat as compat
import attrs

from ..backprop import backprop_sweep
from ..energy import energy_from, local_sweep, local_sweep_errors
from ..inference.step import Step, rms as _rms, start_point
from ..nn.kernels import Kernels
from ..nn.network import Structure, forward
from .parallel import across


def _update(optimizer: Any, structure: Structure, flat: tuple, grads: tuple, opt_state: Any, batch: int):
    """The weight step with per-block gradients divided by the batch size."""
    scaled = tuple(g / batch for g in structure.flatten(grads))
    return optimizer.update(tuple(flat), scaled, opt_state)


@attrs.frozen
class PCStep:
    """One PC training step: ``iters`` inference updates (``step``; stopping early on
    ``until``), then the local weight update with ``optimizer``.

    The first inference update uses the sweep that also gives the energy at the
    feed-forward point, which is the loss reported (no extra forward pass); the local
    gradients come from one forward pass at the states found (for EO the prediction errors
    there are the inferred errors themselves)."""

    step: Step
    until: Any
    iters: int
    optimizer: Any
    across: Any = None  # data parallel, one process per shard: sums over the shards (ShardSum)

    def __call__(self, carry: tuple, batch: tuple) -> tuple:
        flat, opt_state = carry
        x, y = batch
        s = self.step
        k, structure, xp = s.kernels, s.structure, s.kernels.xp
        params = structure.unflatten(flat)
        first = structure.blocks[0].forward(k, params[0], x)
        args = (params, first[0], y)
        values = start_point(s.method, k, structure, params, first[0])
        g, loss, _ = s.grads_energy(args, values)
        inner = s.rule.init(s, args, values)
        values, inner = s.rule.update(s, args, tuple(values), inner, tuple(g))
        norm = _rms(xp, g) if s.track_norm else xp.full((), math.inf, dtype=x.dtype, device=compat.device(x))
        (values, _, _), _ = k.run_loop(s, (tuple(values), inner, norm), self.iters - 1, args, self.until)
        sweep = local_sweep_errors if s.method == "EO" else local_sweep
        grads, eps, yhat = sweep(k, structure, params, s.loss, first, y, values)
        energy = energy_from(xp, s.loss, eps[:-1], yhat, y)
        grads, (loss, energy), b = across(self.across, structure, grads, (loss, energy), x.shape[0])
        flat, opt_state = _update(self.optimizer, structure, flat, grads, opt_state, b)
        return (tuple(flat), opt_state), (loss / b, energy / b)


@attrs.frozen
class BPStep:
    """One backprop step: gradient of the batch-mean loss, then the weight update."""

    structure: Structure
    kernels: Kernels
    loss: Any
    optimizer: Any
    across: Any = None  # data parallel, one process per shard: sums over the shards (ShardSum)

    def __call__(self, carry: tuple, batch: tuple) -> tuple:
        flat, opt_state = carry
        x, y = batch
        params = self.structure.unflatten(flat)
        grads, yhat = backprop_sweep(self.kernels, self.structure, params, self.loss, x, y)
        loss = self.loss.value(self.kernels.xp, yhat, y)
        grads, (loss,), b = across(self.across, self.structure, grads, (loss,), x.shape[0])
        flat, opt_state = _update(self.optimizer, self.structure, flat, grads, opt_state, b)
        return (tuple(flat), opt_state), (loss / b, loss / b)


@attrs.frozen
class EvalStep:
    """(summed loss, number of correct argmax predictions) of one batch, as 0-d arrays."""

    structure: Structure
    kernels: Kernels
    loss: Any

    def __call__(self, flat: tuple, x: Any, y: Any) -> tuple:
        xp = self.kernels.xp
        yhat = forward(self.kernels, self.structure, self.structure.unflatten(flat), x)
        hits = xp.argmax(yhat, axis=1) == xp.argmax(y, axis=1)
        return self.loss.value(xp, yhat, y), xp.sum(xp.astype(hits, yhat.dtype))
