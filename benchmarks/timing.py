"""Interleaved median timing and peak-memory probes.

Things that are compared are timed in one loop, in rotating order, so that load from other
processes on a shared machine hits them alike; figures are medians over the repeats.
"""

from __future__ import annotations

import re
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import attrs


@attrs.frozen
class Entry:
    """A thing to time: ``fn()`` does ``units`` units of work (e.g. inference steps) and
    returns only once the work is done (device synchronised)."""

    name: str
    fn: Callable[[], Any]
    units: int = 1


def interleaved(entries: list[Entry], repeats: int, warmup: int = 1,
                after_warmup: Callable[[], Any] | None = None) -> dict[str, list[float]]:
    """Seconds per unit of each entry, ``repeats`` samples each, taken in rotating order
    after ``warmup`` untimed calls of each (compilation, caches); ``after_warmup()`` runs
    between the two phases."""
    for entry in entries:
        for _ in range(warmup):
            entry.fn()
    if after_warmup is not None:
        after_warmup()
    samples: dict[str, list[float]] = {e.name: [] for e in entries}
    for r in range(repeats):
        k = r % len(entries)
        for entry in entries[k:] + entries[:k]:
            t0 = time.perf_counter()
            entry.fn()
            samples[entry.name].append((time.perf_counter() - t0) / entry.units)
    return samples


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def spread(samples: list[float]) -> float:
    """Relative interquartile range, a noise indicator (0 = perfectly steady)."""
    if len(samples) < 4:
        return (max(samples) - min(samples)) / median(samples)
    q = statistics.quantiles(samples, n=4)
    return (q[2] - q[0]) / q[1]


# ---------------------------------------------------------------------- memory
def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"{field}:\s+(\d+)", f.read()).group(1))


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_memory(fn: Callable[[], Any], kind: str) -> dict:
    """Peak memory of one call of ``fn`` in bytes, measured the way ``kind`` allows:
    "tracemalloc" (NumPy allocations), "cuda" (torch allocator) or "rss" (process peak RSS
    above the RSS before the call; Linux only). Returns {"bytes": int|None, "method": str}."""
    if kind == "tracemalloc":
        tracemalloc.start()
        try:
            fn()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return {"bytes": int(peak), "method": "tracemalloc peak"}
    if kind == "cuda":
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        return {"bytes": int(torch.cuda.max_memory_allocated() - before),
                "method": "torch.cuda.max_memory_allocated above start"}
    try:
        if not _reset_peak_rss():
            return {"bytes": None, "method": "rss unavailable"}
        before = _rss_kib("VmRSS")
        fn()
        return {"bytes": max(0, _rss_kib("VmHWM") - before) * 1024, "method": "peak RSS above start"}
    except (OSError, AttributeError):
        return {"bytes": None, "method": "rss unavailable"}
