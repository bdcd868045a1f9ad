"""Optimizers for the jax backend: functional wrappers around ``optax``."""

from __future__ import annotations

import functools
from typing import Any

import attrs
import jax
import numpy as np
import optax

from pccore.errors import InputError

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
        """One step; a single jitted call when used eagerly, inlined inside compiled code."""
        return _update(self, tuple(params), tuple(grads), state)

    def _step(self, params: tuple, grads: tuple, state: Any) -> tuple[tuple, Any]:
        updates, state = self.transform().update(grads, state, params)
        return tuple(optax.apply_updates(params, updates)), state

    def state_to_host(self, state: Any) -> dict:
        """The optax state's leaves as host NumPy arrays keyed "0", "1", ..., for checkpoints."""
        return {str(i): np.array(leaf, copy=True) for i, leaf in enumerate(jax.tree_util.tree_leaves(state))}

    def state_from_host(self, params: tuple, host: dict) -> Any:
        """Inverse of :meth:`state_to_host`: an optax state for ``params`` with those leaves."""
        leaves, treedef = jax.tree_util.tree_flatten(self.init(params))
        if sorted(host, key=int) != [str(i) for i in range(len(leaves))]:
            raise InputError(f"optimizer state for {self.name!r} needs {len(leaves)} arrays, got keys {sorted(host)}")
        new = [jax.device_put(np.asarray(host[str(i)]).astype(leaf.dtype), leaf.sharding)
               for i, leaf in enumerate(leaves)]
        return jax.tree_util.tree_unflatten(treedef, new)


@functools.partial(jax.jit, static_argnums=0)
def _update(opt: OptaxOptimizer, params: tuple, grads: tuple, state: Any) -> tuple[tuple, Any]:
    return opt._step(params, grads, state)


def make_optimizer(name: str, hyper: dict) -> OptaxOptimizer:
    """optax-backed optimizer ``name`` with validated hyper-parameters."""
    return OptaxOptimizer(name, resolve_hyper(name, hyper))
