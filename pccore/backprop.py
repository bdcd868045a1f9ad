"""Backprop baseline: the gradient of the output loss through the whole network, from the
ops' closed-form VJPs (no framework autograd)."""

from __future__ import annotations

from typing import Any

from .losses import get_loss
from .nn.network import Network, Structure, check_input


def backprop_sweep(k: Any, structure: Structure, params: tuple, loss: Any, x: Any, y: Any) -> tuple:
    """(per-block gradients of C(net(x), y), summed over the batch; the prediction)."""
    res, h = [], x
    for block, p in zip(structure.blocks, params):
        h, r = block.forward(k, p, h)
        res.append(r)
    g, grads = loss.grad(k.xp, h, y), [None] * structure.depth
    for l in range(structure.depth - 1, -1, -1):
        g, grads[l] = structure.blocks[l].vjp(k, params[l], res[l], g, l > 0, True)
    return tuple(grads), h


def backprop_grads(net: Network, x: Any, y: Any, loss: Any = "mse") -> tuple:
    """Gradient of the batch-summed output loss C(net(x), y) w.r.t. ``net.params`` (per-block
    tuples, aligned with it). Divide by the batch size for a mean-loss step."""
    check_input(net, x, y)
    k = net.kernels
    return k.compiled(_grads, k, net.structure, get_loss(loss))(net.params, x, y)


def _grads(k: Any, structure: Structure, loss: Any, params: tuple, x: Any, y: Any) -> tuple:
    return tuple(tuple(g) for g in backprop_sweep(k, structure, params, loss, x, y)[0])
