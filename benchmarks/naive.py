"""Naive baselines: inference the way a user without pccore writes it (as in seed 000).

torch: autograd through the energy, ``torch.optim.SGD`` over leaf tensors, ``zero_grad`` /
``backward`` / ``step`` per iteration. jax: ``jax.grad`` of the energy called eagerly in a
Python loop with a Python-side SGD update ("naive"), and the whole step under one
``jax.jit`` called per iteration ("jit_step", what a careful user does without a compiled loop).
Both recompute the first layer's pre-activation every step, as the naive code does.
Weights, x and y come in as host NumPy arrays; each factory returns ``run() -> values``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


# ---------------------------------------------------------------------- torch
def _torch_energy(method: str, W: list, x: Any, y: Any, v: list) -> Any:
    if method == "EO":
        s = x
        for Wk, e in zip(W[:-1], v):
            s = s @ Wk.T + e
        d = s @ W[-1].T - y
        return 0.5 * (d * d).sum() + sum(0.5 * (e * e).sum() for e in v)
    total, prev = 0.0, x
    for Wk, s in zip(W[:-1], v):
        d = s - prev @ Wk.T
        total = total + 0.5 * (d * d).sum()
        prev = s
    d = y - prev @ W[-1].T
    return total + 0.5 * (d * d).sum()


def torch_naive(method: str, Ws: list, x: Any, y: Any, lr: float, iters: int, device: str,
                weights_grad: bool = False) -> Callable:
    """Seed-style torch inference of ``iters`` SGD steps on errors (EO) or states (SO).

    ``weights_grad=True`` leaves the weights requiring grad, as ``nn.Linear`` parameters do
    in the seed's module-based code, so each backward also computes weight gradients.
    """
    import torch

    W = [torch.tensor(w, device=device).requires_grad_(weights_grad) for w in Ws]
    X, Y = torch.as_tensor(x, device=device), torch.as_tensor(y, device=device)

    def start() -> list:
        with torch.no_grad():
            if method == "EO":
                return [torch.zeros(X.shape[0], w.shape[0], dtype=X.dtype, device=device) for w in W[:-1]]
            out, s = [], X
            for w in W[:-1]:
                s = s @ w.T
                out.append(s)
            return out

    def run() -> list:
        v = [t.requires_grad_() for t in start()]
        opt = torch.optim.SGD(v, lr=lr)
        for _ in range(iters):
            opt.zero_grad()
            _torch_energy(method, W, X, Y, v).backward()
            opt.step()
        if X.is_cuda:
            torch.cuda.synchronize()
        return v

    return run


# ------------------------------------------------------------------------ jax
def _jax_energy(method: str):
    import jax.numpy as jnp

    def energy(v, W, x, y):
        if method == "EO":
            s = x
            for Wk, e in zip(W[:-1], v):
                s = s @ Wk.T + e
            d = s @ W[-1].T - y
            return 0.5 * jnp.sum(d * d) + sum(0.5 * jnp.sum(e * e) for e in v)
        total, prev = 0.0, x
        for Wk, s in zip(W[:-1], v):
            d = s - prev @ Wk.T
            total = total + 0.5 * jnp.sum(d * d)
            prev = s
        d = y - prev @ W[-1].T
        return total + 0.5 * jnp.sum(d * d)

    return energy


def _jax_inputs(method, Ws, x, y, device):
    import jax
    import jax.numpy as jnp

    put = (lambda a: jax.device_put(jnp.asarray(a), device)) if device is not None else jnp.asarray
    W, X, Y = [put(w) for w in Ws], put(x), put(y)

    def start() -> list:
        if method == "EO":
            return [jnp.zeros((X.shape[0], w.shape[0]), X.dtype) for w in W[:-1]]
        out, s = [], X
        for w in W[:-1]:
            s = s @ w.T
            out.append(s)
        return out

    return W, X, Y, start


def jax_naive(method: str, Ws: list, x: Any, y: Any, lr: float, iters: int, device: Any = None) -> Callable:
    """Eager ``jax.grad`` of the energy plus a Python-side SGD update, ``iters`` times."""
    import jax

    W, X, Y, start = _jax_inputs(method, Ws, x, y, device)
    grad = jax.grad(_jax_energy(method))

    def run() -> list:
        v = start()
        for _ in range(iters):
            g = grad(v, W, X, Y)
            v = [vi - lr * gi for vi, gi in zip(v, g)]
        return jax.block_until_ready(v)

    return run


def jax_jit_step(method: str, Ws: list, x: Any, y: Any, lr: float, iters: int, device: Any = None) -> Callable:
    """The whole SGD step (``jax.grad`` + update) under one ``jax.jit``, called ``iters`` times."""
    import jax

    W, X, Y, start = _jax_inputs(method, Ws, x, y, device)
    grad = jax.grad(_jax_energy(method))

    @jax.jit
    def step(v, W, X, Y):
        return [vi - lr * gi for vi, gi in zip(v, grad(v, W, X, Y))]

    def run() -> list:
        v = start()
        for _ in range(iters):
            v = step(v, W, X, Y)
        return jax.block_until_ready(v)

    return run
