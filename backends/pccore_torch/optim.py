"""Optimizers for the torch backend: thin functional wrappers around ``torch.optim``."""

from __future__ import annotations

from typing import Any

import attrs
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
        for p, g in zip(params, grads):
            p.grad = g
        state.step()
        return params, state


def make_optimizer(name: str, hyper: dict) -> TorchOptimizer:
    """torch.optim-backed optimizer ``name`` with validated hyper-parameters."""
    return TorchOptimizer(name, resolve_hyper(name, hyper))
