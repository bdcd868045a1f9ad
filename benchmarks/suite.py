"""The measurements: for one backend and shape, groups of entries timed interleaved.

Groups (each compared within itself, in one loop):
  EO / SO      pccore inference vs the naive autograd baseline(s) and a large matmul
  equilibrium  pccore.analytic.linear_equilibrium vs the block-tridiagonal solve
  trackers     EO inference without observers vs with ``History(every=10)``
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

import pccore
from pccore.analytic import linear_equilibrium

from . import naive, roofline
from .shapes import EO_LR, SO_LR, Shape, problem, steps_for
from .timing import Entry, interleaved, median, peak_memory, spread
from .tridiag import block_tridiagonal_states

METHODS = {"EO": (pccore.ErrorOptimization, EO_LR), "SO": (pccore.StateOptimization, SO_LR)}


class Progress:
    """One stderr line per finished group: ``[k/n] what (seconds)``."""

    def __init__(self, total: int):
        self.total, self.done, self.t0 = total, 0, time.perf_counter()

    def __call__(self, what: str, seconds: float) -> None:
        self.done += 1
        elapsed = time.perf_counter() - self.t0
        print(f"[{self.done}/{self.total}] {what} ({seconds:.1f}s, {elapsed:.0f}s total)",
              file=sys.stderr, flush=True)


def _block(rt: Any, arrays: Any) -> Any:
    """Wait until ``arrays`` are computed (JAX dispatches asynchronously, CUDA too)."""
    if rt.backend == "jax":
        import jax

        return jax.block_until_ready(arrays)
    rt.synchronize()
    return arrays


def memory_kind(rt: Any) -> str:
    if rt.device.startswith("cuda") and rt.backend == "torch":
        return "cuda"
    return "tracemalloc" if rt.backend == "numpy" else "rss"


class Bench:
    """Entries for one backend/device/dtype on one shape."""

    def __init__(self, rt: Any, shape: Shape, quick: bool, matmul_n: int, steps: int | None = None):
        self.rt, self.shape, self.quick, self.matmul_n = rt, shape, quick, matmul_n
        self.net = pccore.mlp(rt, shape.widths, seed=0)
        self.x_host, self.y_host = (a.astype(rt.dtype) for a in problem(shape))
        self.x, self.y = rt.asarray(self.x_host), rt.asarray(self.y_host)
        self.W_host = [rt.to_numpy(W) for W in self.net.flat_params()]
        self.steps = steps or steps_for(shape, quick)
        self.tracker_steps = 10 if steps else 100  # History(every=10) records 11 points of 100

    # ---------------------------------------------------------------- entries
    def pccore_run(self, method: str, iters: int, rt: Any = None):
        cls, lr = METHODS[method]
        opt, rt = cls(iters, lr), rt or self.rt

        def run():
            res = opt.run(self.net, self.x, self.y, runtime=rt)
            return _block(rt, res.errors if method == "EO" else res.states)
        return run

    def naive_runs(self, method: str, steps: int | None = None) -> dict:
        _, lr = METHODS[method]
        args = (method, self.W_host, self.x_host, self.y_host, lr, steps or self.steps)
        if self.rt.backend == "torch":
            return {"naive": naive.torch_naive(*args, device=self.rt.device),
                    "naive_wgrad": naive.torch_naive(*args, device=self.rt.device, weights_grad=True)}
        if self.rt.backend == "jax":
            dev = _jax_device(self.rt)
            return {"naive": naive.jax_naive(*args, dev), "jit_step": naive.jax_jit_step(*args, dev)}
        return {}

    def step_group(self, method: str) -> list[Entry]:
        """Each inference entry twice, with N steps and with 1 step: the report takes the
        time per step as (T_N - T_1) / (N - 1), free of the fixed cost of a run."""
        n = self.steps
        entries = [Entry("pccore", self.pccore_run(method, n), n), Entry("pccore@1", self.pccore_run(method, 1))]
        for (k, fn), fn1 in zip(self.naive_runs(method).items(), self.naive_runs(method, 1).values()):
            entries += [Entry(k, fn, n), Entry(f"{k}@1", fn1)]
        if method == "EO":
            entries.append(Entry("matmul", roofline.matmul_fn(self.rt, self.matmul_n), 1))
        return entries

    def equilibrium_group(self) -> list[Entry]:
        rt, net, x, y = self.rt, self.net, self.x, self.y
        return [Entry("pccore", lambda: _block(rt, linear_equilibrium(net, x, y).states)),
                Entry("block_tridiagonal", lambda: _block(rt, block_tridiagonal_states(net, x, y)))]

    def tracker_group(self, tracker_factory) -> list[Entry]:
        iters = self.tracker_steps
        tracked = pccore.runtime(self.rt.backend, device=self.rt.device, dtype=self.rt.dtype)
        inner = self.pccore_run("EO", iters, tracked)

        def with_history():
            hist = tracked.register(tracker_factory())
            try:
                return inner()
            finally:
                tracked.unregister(hist)
        return [Entry("plain", self.pccore_run("EO", iters), iters),
                Entry("history_every_10", with_history, iters)]

    # ---------------------------------------------------------------- checks
    def agreement(self, method: str) -> dict:
        """Max |pccore - baseline| over the final free variables after the same steps."""
        ref = self.pccore_run(method, self.steps)()
        out = {}
        for name, fn in self.naive_runs(method).items():
            got = fn()
            out[name] = max(float(np.max(np.abs(self.rt.to_numpy(a) - _host(b)))) for a, b in zip(ref, got))
        return out

    def equilibrium_agreement(self) -> float:
        a = linear_equilibrium(self.net, self.x, self.y).states
        b = block_tridiagonal_states(self.net, self.x, self.y)
        return max(float(np.max(np.abs(self.rt.to_numpy(u) - self.rt.to_numpy(v)))) for u, v in zip(a, b))


def _host(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def _jax_device(rt: Any) -> Any:
    import jax

    platform, index = rt.device.split(":")
    return jax.devices(platform)[int(index)]


def _jax_cache_size() -> int | None:
    try:
        from pccore_jax.loop import _run

        return int(_run._cache_size())
    except (ImportError, AttributeError):
        return None


def run_group(bench: Bench, group: str, entries: list[Entry], repeats: int, progress: Progress) -> list[dict]:
    """Time ``entries`` interleaved, then probe each one's peak memory; one row per entry."""
    t0 = time.perf_counter()
    jax = bench.rt.backend == "jax"
    cache = {"start": _jax_cache_size() if jax else None}
    samples = interleaved(entries, repeats, after_warmup=lambda: cache.update(warm=_jax_cache_size()))
    cache["end"] = _jax_cache_size() if jax else None
    kind = memory_kind(bench.rt)
    rows = []
    for e in entries:
        mem = peak_memory(e.fn, kind) if "@" not in e.name else {"bytes": None, "method": "not probed"}
        rows.append({
            "backend": bench.rt.backend, "device": bench.rt.device, "dtype": bench.rt.dtype,
            "batch": bench.shape.batch, "width": bench.shape.width, "depth": bench.shape.depth,
            "group": group, "name": e.name, "units": e.units,
            "unit": "matmul" if e.name == "matmul" else ("step" if e.units > 1 else "call"),
            "median_s": median(samples[e.name]), "spread": spread(samples[e.name]),
            "samples_s": samples[e.name], "peak_bytes": mem["bytes"], "memory_method": mem["method"],
        })
    if jax and cache["start"] is not None:
        # compiled-loop cache entries added by the warm-up and by the timed repeats (want 0)
        rows[0]["jax_compiles_warmup"] = cache["warm"] - cache["start"]
        rows[0]["jax_compiles_timed"] = cache["end"] - cache["warm"]
    progress(f"{bench.rt.backend} {bench.shape.label} {group}", time.perf_counter() - t0)
    return rows
