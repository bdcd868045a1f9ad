"""Training-step benchmarks: pccore's compiled step against baselines written here, timed
interleaved in one process, per backend and model, float32, batch 64, Adam (lr 1e-3).

Models: ``mlp`` (784-128-128-128-10, tanh, biases) and ``cnn`` (the MNIST CNN of
``pccore train --model cnn``: 1x28x28, conv 16 + relu + pool 2, conv 32 + relu + pool 2,
linear 10). PC steps use EO with T = 8 inference steps (lr 0.1).

Baselines (each takes the same steps as pccore; ``tests/test_benchmarks.py`` checks it):
- jax ``script``: one ``jax.jit`` of the whole step: BP with ``jax.value_and_grad`` + optax;
  EO with T ``jax.grad`` steps of the error energy in ``lax.fori_loop``, ``jax.grad`` of the
  local energy at the states found, optax;
- torch ``naive``: EO as the seed code writes it (autograd through the error energy over
  error tensors with ``torch.optim.SGD``, then autograd of the local energy and
  ``torch.optim.Adam``); ``plain`` BP: ``loss.backward(); opt.step()``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

import pccore

BATCH, T, INFER_LR, LR = 64, 8, 0.1, 1e-3
MODELS = ("mlp", "cnn")


# ------------------------------------------------------------------- problem
def build(rt: Any, model: str, batch: int = BATCH, small: bool = False) -> tuple:
    """(net, host x, host one-hot y) of ``model`` (``small``: tiny sizes for tests)."""
    rng = np.random.default_rng(0)
    if model == "mlp":
        widths = [12, 8, 8, 4] if small else [784, 128, 128, 128, 10]
        net = pccore.mlp(rt, widths, activation="tanh", bias=True, init="xavier_uniform", seed=0)
        x = rng.standard_normal((batch, widths[0]))
    else:
        shape, channels = ((1, 8, 8), (3, 4)) if small else ((1, 28, 28), (16, 32))
        net = pccore.nn.cnn(rt, shape, 4 if small else 10, channels, seed=0)
        x = rng.standard_normal((batch, *shape))
    classes = net.structure.output_shape[0]
    return net, x, np.eye(classes)[rng.integers(0, classes, batch)]


def host_params(rt: Any, net: Any) -> list:
    """Per-block (W, b) host arrays."""
    return [tuple(rt.to_numpy(p) for p in block) for block in net.params]


def _block_kinds(net: Any) -> list[str]:
    return ["conv" if type(b.ops[0]).__name__ == "Conv2d" else ("flat" if type(b.ops[0]).__name__ == "Flatten"
            else "dense") for b in net.blocks]


# ------------------------------------------------------------------------ jax
def jax_script(kind: str, net: Any, rt: Any, x: np.ndarray, y: np.ndarray, iters: int = T) -> Callable:
    """The hand-jitted jax step (``kind`` "bp" or "eo"); returns ``run(n) -> params``."""
    import jax
    import jax.numpy as jnp
    import optax
    from jax import lax

    kinds, L = _block_kinds(net), net.depth
    tanh_mlp = kinds[0] == "dense"

    def block(l, p, s):
        W, b = p
        if kinds[l] == "conv":
            a = lax.conv_general_dilated(s, W, (1, 1), [(1, 1), (1, 1)], dimension_numbers=("NCHW", "OIHW", "NCHW"))
            a = jax.nn.relu(a + b[None, :, None, None])
            return lax.reduce_window(a, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
        if kinds[l] == "flat":
            s = s.reshape(s.shape[0], -1)
        a = s @ W.T + b
        return jnp.tanh(a) if tanh_mlp and l < L - 1 else a

    def err_energy(es, ps, x, y):
        s = block(0, ps[0], x)
        for l in range(1, L):
            s = block(l, ps[l], s + es[l - 1])
        return sum(0.5 * jnp.sum(e * e) for e in es) + 0.5 * jnp.sum((s - y) ** 2)

    def local_energy(ps, states, x, y):
        ins = [x] + states
        total = sum(0.5 * jnp.sum((states[l] - block(l, ps[l], ins[l])) ** 2) for l in range(L - 1))
        return total + 0.5 * jnp.sum((block(L - 1, ps[L - 1], ins[L - 1]) - y) ** 2)

    def loss(ps, x, y):
        s = x
        for l in range(L):
            s = block(l, ps[l], s)
        return 0.5 * jnp.sum((s - y) ** 2) / x.shape[0]

    opt = optax.adam(LR)
    shapes = net.structure.shapes[:-1]

    @jax.jit
    def bp_step(ps, state, x, y):
        _, g = jax.value_and_grad(loss)(ps, x, y)
        updates, state = opt.update(g, state, ps)
        return optax.apply_updates(ps, updates), state

    @jax.jit
    def eo_step(ps, state, x, y):
        es = [jnp.zeros((x.shape[0], *s), x.dtype) for s in shapes]
        es = lax.fori_loop(0, iters, lambda i, es: jax.tree.map(
            lambda e, g: e - INFER_LR * g, es, jax.grad(err_energy)(es, ps, x, y)), es)
        s, states = block(0, ps[0], x), []
        for l in range(1, L):
            states.append(s + es[l - 1])
            s = block(l, ps[l], states[-1])
        g = jax.tree.map(lambda a: a / x.shape[0], jax.grad(local_energy)(ps, states, x, y))
        updates, state = opt.update(g, state, ps)
        return optax.apply_updates(ps, updates), state

    dtype = jnp.float32 if rt.dtype == "float32" else jnp.float64
    ps = [tuple(jnp.asarray(a, dtype) for a in p) for p in host_params(rt, net)]
    box = {"ps": ps, "state": opt.init(ps)}
    X, Y = jnp.asarray(x, dtype), jnp.asarray(y, dtype)
    step = bp_step if kind == "bp" else eo_step

    def run(n: int) -> list:
        for _ in range(n):
            box["ps"], box["state"] = step(box["ps"], box["state"], X, Y)
        return jax.block_until_ready(box["ps"])

    return run


# ---------------------------------------------------------------------- torch
def _torch_modules(net: Any, rt: Any, dtype: Any, device: str) -> list:
    import torch

    mods, kinds = [], _block_kinds(net)
    for kind, (W, b), block in zip(kinds, host_params(rt, net), net.blocks):
        if kind == "conv":
            m = torch.nn.Conv2d(W.shape[1], W.shape[0], W.shape[2], padding=1)
        else:
            m = torch.nn.Linear(W.shape[1], W.shape[0])
        m = m.to(device=device, dtype=dtype)
        with torch.no_grad():
            m.weight.copy_(torch.as_tensor(W))
            m.bias.copy_(torch.as_tensor(b))
        mods.append(m)
    return mods


def torch_baseline(kind: str, net: Any, rt: Any, x: np.ndarray, y: np.ndarray, iters: int = T,
                   device: str = "cpu") -> Callable:
    """The seed-style torch step (``kind`` "bp": plain backward + Adam; "eo": the naive EO
    loop); returns ``run(n) -> params``."""
    import torch
    import torch.nn.functional as F

    dtype = torch.float32 if rt.dtype == "float32" else torch.float64
    kinds, L = _block_kinds(net), net.depth
    mods = _torch_modules(net, rt, dtype, device)
    tanh_mlp = kinds[0] == "dense"
    adam = torch.optim.Adam([p for m in mods for p in m.parameters()], lr=LR)
    X, Y = torch.as_tensor(x, dtype=dtype, device=device), torch.as_tensor(y, dtype=dtype, device=device)
    shapes = net.structure.shapes[:-1]

    def block(l, s):
        if kinds[l] == "conv":
            return F.max_pool2d(F.relu(mods[l](s)), 2)
        if kinds[l] == "flat":
            s = s.flatten(1)
        a = mods[l](s)
        return torch.tanh(a) if tanh_mlp and l < L - 1 else a

    def bp() -> None:
        adam.zero_grad()
        s = X
        for l in range(L):
            s = block(l, s)
        (0.5 * ((s - Y) ** 2).sum() / X.shape[0]).backward()
        adam.step()

    def eo() -> None:
        es = [torch.zeros(X.shape[0], *s, dtype=dtype, device=device, requires_grad=True) for s in shapes]
        sgd = torch.optim.SGD(es, lr=INFER_LR)
        for _ in range(iters):
            sgd.zero_grad()
            s = block(0, X)
            for l in range(1, L):
                s = block(l, s + es[l - 1])
            (sum(0.5 * (e * e).sum() for e in es) + 0.5 * ((s - Y) ** 2).sum()).backward()
            sgd.step()
        with torch.no_grad():
            s, states = block(0, X), []
            for l in range(1, L):
                states.append(s + es[l - 1])
                s = block(l, states[-1])
        adam.zero_grad()
        ins = [X] + states
        local = sum(0.5 * ((states[l] - block(l, ins[l])) ** 2).sum() for l in range(L - 1))
        local = local + 0.5 * ((block(L - 1, ins[L - 1]) - Y) ** 2).sum()
        (local / X.shape[0]).backward()
        adam.step()

    step = bp if kind == "bp" else eo

    def run(n: int) -> list:
        for _ in range(n):
            step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return [p.detach() for m in mods for p in (m.weight, m.bias)]

    return run


# --------------------------------------------------------------------- pccore
def pccore_step(kind: str, net: Any, rt: Any, x: np.ndarray, y: np.ndarray, iters: int = T,
                compile: bool = True) -> Callable:
    """pccore's ``TrainSession.step`` (``kind`` "bp" or "eo"); returns ``run(n) -> params``."""
    inference = None if kind == "bp" else pccore.ErrorOptimization(iters=iters, lr=INFER_LR)
    trainer = pccore.Trainer(kind, inference=inference, lr=LR, batch_size=x.shape[0], runtime=rt,
                             progress=False, compile=compile)
    session = trainer.session(net)
    X, Y = rt.asarray(x), rt.asarray(y)

    def run(n: int) -> list:
        for _ in range(n):
            session.step(X, Y)
        if rt.backend == "jax":
            import jax

            return jax.block_until_ready(list(session.params))
        rt.synchronize()
        return list(session.params)

    return run
