"""The machine's matmul rate on a backend: one large square float matmul, timed like the rest."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def matmul_flops(n: int) -> float:
    """Nominal FLOPs of an (n x n) @ (n x n) matmul."""
    return 2.0 * n**3


def matmul_fn(rt: Any, n: int) -> Callable[[], Any]:
    """``fn()`` computing one (n x n) @ (n x n) product on ``rt``'s backend and device,
    returning when it is done (into a preallocated output where the framework allows)."""
    rng = np.random.default_rng(0)
    a = rt.asarray(rng.standard_normal((n, n)))
    b = rt.asarray(rng.standard_normal((n, n)))
    if rt.backend == "torch":
        import torch

        out = torch.empty_like(a)

        def run():
            torch.mm(a, b, out=out)
            if out.is_cuda:
                torch.cuda.synchronize()
    elif rt.backend == "jax":
        import jax
        import jax.numpy as jnp

        mm = jax.jit(jnp.matmul)

        def run():
            mm(a, b).block_until_ready()
    else:
        out = np.empty_like(a)

        def run():
            np.matmul(a, b, out=out)
    return run
