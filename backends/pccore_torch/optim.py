"""Optimizers for the torch backend: SGD, momentum and Adam as in-place ``torch._foreach_*``
updates of the parameter tensors (one fused kernel per update stage, no autograd, no
``torch.optim`` bookkeeping). Adam's step count is a device tensor, so a whole training
step can be captured in a CUDA graph."""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
import torch

from pccore.errors import InputError
from pccore_numpy.optim import resolve_hyper


@attrs.frozen
class TorchOptimizer:
    """``init(params) -> state`` and ``update(params, grads, state) -> (params, state)``;
    the tensors in ``params`` and ``state`` are updated in place and returned."""

    name: str
    hyper: tuple = attrs.field(converter=lambda h: tuple(sorted(dict(h).items())))

    def init(self, params: tuple) -> Any:
        if self.name == "sgd":
            return ()
        zeros = tuple(torch.zeros_like(p) for p in params)
        if self.name == "momentum":
            return zeros
        like = params[0] if params else torch.zeros(())
        t = torch.zeros((), dtype=like.dtype, device=like.device)
        return (t, zeros, tuple(torch.zeros_like(p) for p in params))

    @torch.no_grad()
    def update(self, params: tuple, grads: tuple, state: Any) -> tuple[tuple, Any]:
        h, ps, gs = dict(self.hyper), list(params), list(grads)
        if not ps:
            return params, state
        if self.name == "sgd":
            torch._foreach_add_(ps, gs, alpha=-h["lr"])
        elif self.name == "momentum":
            vs = list(state)
            torch._foreach_mul_(vs, h["momentum"])
            torch._foreach_add_(vs, gs)
            torch._foreach_add_(ps, vs, alpha=-h["lr"])
        else:
            self._adam(ps, gs, state, h)
        return params, state

    @staticmethod
    def _adam(ps: list, gs: list, state: tuple, h: dict) -> None:
        t, m, v = state[0], list(state[1]), list(state[2])
        t.add_(1)
        torch._foreach_mul_(m, h["b1"])
        torch._foreach_add_(m, gs, alpha=1 - h["b1"])
        torch._foreach_mul_(v, h["b2"])
        torch._foreach_addcmul_(v, gs, gs, value=1 - h["b2"])
        step = h["lr"] / (1 - torch.pow(h["b1"], t))
        denom = torch._foreach_sqrt(v)
        torch._foreach_div_(denom, torch.sqrt(1 - torch.pow(h["b2"], t)))
        torch._foreach_add_(denom, h["eps"])
        update = torch._foreach_div(m, denom)
        torch._foreach_mul_(update, step)
        torch._foreach_sub_(ps, update)

    def state_to_host(self, state: Any) -> dict:
        """The state's tensors as host NumPy arrays keyed "0", "1", ... (leaves in order)."""
        return {str(i): leaf.detach().cpu().numpy().copy() for i, leaf in enumerate(_leaves(state))}

    def state_from_host(self, params: tuple, host: dict) -> Any:
        """Inverse of :meth:`state_to_host`: a state for ``params`` holding ``host``'s values."""
        template = self.init(params)
        leaves = _leaves(template)
        if sorted(host, key=int) != [str(i) for i in range(len(leaves))]:
            raise InputError(f"optimizer state for {self.name!r} needs {len(leaves)} arrays, got keys {sorted(host)}")
        for i, leaf in enumerate(leaves):
            value = np.asarray(host[str(i)])
            if tuple(value.shape) != tuple(leaf.shape):
                raise InputError(f"optimizer state entry {i} has shape {value.shape}, expected {tuple(leaf.shape)}")
            leaf.copy_(torch.as_tensor(value, dtype=leaf.dtype))
        return template


def _leaves(tree: Any) -> list:
    if isinstance(tree, tuple):
        return [leaf for item in tree for leaf in _leaves(item)]
    return [tree]


def make_optimizer(name: str, hyper: dict) -> TorchOptimizer:
    """Foreach-update optimizer ``name`` with validated hyper-parameters."""
    return TorchOptimizer(name, resolve_hyper(name, hyper))
