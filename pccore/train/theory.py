"""``TheoryStep``: training a deep linear net on the exact gradient of its equilibrium
energy F* (what PC training approaches with inference run to convergence), as a pure,
hashable step like ``BPStep``. The equilibrium comes in closed form, so no inference."""

from __future__ import annotations

from typing import Any

import attrs

from ..analytic.linear import _check_linear, affine_maps
from ..analytic.theory import fstar_sweep
from ..errors import InputError
from ..nn.kernels import Kernels
from ..nn.network import Network, Structure
from .parallel import across
from .step import _update


def check_theory(net: Network, loss: Any) -> None:
    """Raise InputError unless ``net`` and ``loss`` admit the closed form (linear, MSE)."""
    try:
        _check_linear(net, loss)
    except InputError as err:
        raise InputError(f"method='theory' trains on the closed-form equilibrium of a deep linear "
                         f"net: {err}") from None


@attrs.frozen
class TheoryStep:
    """One step on dF*/dW (batch mean): ``(carry, (x, y)) -> (carry, (loss, energy))``
    with carry = (flat params, optimizer state), loss = the feed-forward output loss /
    batch and energy = mean F* before the update (0-d arrays). F* and its gradient are batch
    sums of per-sample terms, so data-parallel shards add up like the other steps'."""

    structure: Structure
    kernels: Kernels
    loss: Any
    optimizer: Any
    across: Any = None  # data parallel, one process per shard: sums over the shards (ShardSum)

    def __call__(self, carry: tuple, batch: tuple) -> tuple:
        flat, opt_state = carry
        x, y = batch
        params = self.structure.unflatten(flat)
        Ws, bs = affine_maps(Network(self.structure, params, self.kernels))
        grads, loss, energy = fstar_sweep(Ws, bs, x, y, self.loss.precision)
        grads, (loss, energy), b = across(self.across, self.structure, grads, (loss, energy), x.shape[0])
        flat, opt_state = _update(self.optimizer, self.structure, flat, grads, opt_state, b)
        return (tuple(flat), opt_state), (loss / b, energy / b)
