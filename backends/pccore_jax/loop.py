"""The compiled inference loop: ``lax.fori_loop``/``while_loop`` under ``jax.jit``.

``body`` and ``until`` are static (hashable) arguments and ``n`` is traced, so one
compilation per (body, shapes, dtypes) serves every call and every iteration count.
Called while an outer function is being traced (a compiled run or training step), the
loop is emitted inline and the iteration count stays traced.
The carry is not donated: XLA already updates it in place across iterations, and a run
is one call, so donation would save one copy per run while invalidating arrays that
callers (observers) may still hold.
"""

from __future__ import annotations

import functools

import jax
from jax import lax


UNROLL_MAX = 16  # a static count up to this is unrolled inside an outer trace (see compiled_loop)


def _loop(carry, n, args, body, until):
    if until is None:
        return lax.fori_loop(0, n, lambda i, c: body(c, args), carry), n

    def cond(state):
        i, c = state
        return (i < n) & ~until(c, args)

    def step(state):
        i, c = state
        return i + 1, body(c, args)

    i, carry = lax.while_loop(cond, step, (0, carry))
    return carry, i


_run = jax.jit(_loop, static_argnames=("body", "until"))


@functools.partial(jax.jit, static_argnames=("body",))
def _once(carry, args, body):
    return body(carry, args)


def _tracer_type() -> type:
    core = getattr(jax, "core", None)
    found = getattr(core, "Tracer", None)
    if found is None:  # pragma: no cover - newer JAX without the public alias
        from jax._src import core as _core

        found = _core.Tracer
    return found


_TRACER = _tracer_type()


def tracing(*trees) -> bool:
    """True when any leaf of ``trees`` is a tracer (we are inside jit/grad/vmap)."""
    return any(isinstance(leaf, _TRACER) for leaf in jax.tree_util.tree_leaves(trees))


def compiled_loop(body, carry, n, args, until):
    """Run the loop compiled; returns ``(carry, iterations)`` with iterations an int
    (a traced int inside an outer trace).

    A single unconditional step (what observed runs do, one per point) is one jitted call
    of ``body``: no while loop and no host sync for the iteration count.
    """
    if tracing(carry, args, n):
        if until is None and isinstance(n, int) and n <= UNROLL_MAX:
            # a training step's few inference steps: unrolled (XLA fuses across steps; NCHW
            # convolutions, slow in loop bodies on XLA:CPU, are written NHWC in ops.py)
            for _ in range(n):
                carry = body(carry, args)
            return carry, n
        return _loop(carry, n, args, body, until)
    if until is None and isinstance(n, int) and n == 1:
        return _once(carry, args, body=body), 1
    carry, iters = _run(carry, n, args, body=body, until=until)
    return carry, int(iters)
