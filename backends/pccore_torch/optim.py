"""Optimizers for the torch backend: thin functional wrappers around ``torch.optim``."""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
import torch

from pccore_numpy.optim import resolve_hyper


def _build(name: str, params: list, h: dict) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=h["lr"], foreach=True)
    if name == "momentum":
        return torch.optim.SGD(params, lr=h["lr"], momentum=h["momentum"], foreach=True)
    return torch.optim.Adam(
        params, lr=h["lr"], betas=(h["b1"], h["b2"]), eps=h["eps"], foreach=True
    )


@attrs.frozen
class TorchOptimizer:
    """``init(params) -> state`` (a torch.optim optimizer over the tensors) and
    ``update(params, grads, state) -> (params, state)``, updating the tensors in place."""

    name: str
    hyper: tuple = attrs.field(converter=lambda h: tuple(sorted(dict(h).items())))

    def init(self, params: tuple) -> Any:
        return _build(self.name, list(params), dict(self.hyper))

    @torch.no_grad()
    def update(self, params: tuple, grads: tuple, state: Any) -> tuple[tuple, Any]:
        if self.name == "sgd":
            # what torch.optim.SGD(foreach=True) does without momentum, minus its per-step
            # overhead (grad attributes, param groups, hooks): one fused in-place kernel call
            torch._foreach_add_(list(params), list(grads), alpha=-dict(self.hyper)["lr"])
            return params, state
        for p, g in zip(params, grads):
            p.grad = g
        state.step()
        return params, state

    def state_to_host(self, state: torch.optim.Optimizer) -> dict:
        """The optimizer's per-parameter state as host NumPy arrays keyed "<param>/<name>",
        for checkpoints (hyper-parameters are rebuilt from this optimizer's config)."""
        out = {}
        for idx, entries in state.state_dict()["state"].items():
            for key, value in entries.items():
                if value is not None:
                    out[f"{idx}/{key}"] = torch.as_tensor(value).detach().cpu().numpy().copy()
        return out

    def state_from_host(self, params: tuple, host: dict) -> torch.optim.Optimizer:
        """Inverse of :meth:`state_to_host`: a torch optimizer over ``params`` with that state."""
        opt = self.init(params)
        sd = opt.state_dict()
        state: dict = {}
        for name, value in host.items():
            idx, key = name.split("/", 1)
            state.setdefault(int(idx), {})[key] = torch.as_tensor(np.asarray(value))
        sd["state"] = state
        opt.load_state_dict(sd)
        return opt


def make_optimizer(name: str, hyper: dict) -> TorchOptimizer:
    """torch.optim-backed optimizer ``name`` with validated hyper-parameters."""
    return TorchOptimizer(name, resolve_hyper(name, hyper))
