"""Optimizers for the jax backend: functional wrappers around ``optax``."""

from __future__ import annotations

from typing import Any

import attrs
import optax

from pccore_numpy.optim import resolve_hyper


@attrs.frozen
class OptaxOptimizer:
    """``init(params) -> state``, ``update(params, grads, state) -> (params, state)``;
    hashable, so it can be a static argument of a compiled loop."""

    name: str
    hyper: tuple = attrs.field(converter=lambda h: tuple(sorted(dict(h).items())))

    def transform(self) -> optax.GradientTransformation:
        h = dict(self.hyper)
        if self.name == "sgd":
            return optax.sgd(h["lr"])
        if self.name == "momentum":
            return optax.sgd(h["lr"], momentum=h["momentum"])
        return optax.adam(h["lr"], b1=h["b1"], b2=h["b2"], eps=h["eps"])

    def init(self, params: tuple) -> Any:
        return self.transform().init(tuple(params))

    def update(self, params: tuple, grads: tuple, state: Any) -> tuple[tuple, Any]:
        updates, state = self.transform().update(tuple(grads), state, tuple(params))
        return tuple(optax.apply_updates(tuple(params), updates)), state


def make_optimizer(name: str, hyper: dict) -> OptaxOptimizer:
    """optax-backed optimizer ``name`` with validated hyper-parameters."""
    return OptaxOptimizer(name, resolve_hyper(name, hyper))
