"""Shared machinery of the built-in trackers: the ``every`` schedule, layer selection and
buffers of small device results copied to the host once, at the end of a run."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from pccore import hookimpl
from pccore.checks import check_positive_int, dtype_name  # noqa: F401  (re-exported)
from pccore.errors import InputError


def check_layers(arg: str, layers: Iterable[int] | None) -> tuple[int, ...] | None:
    """Validate a layer selection (None = all); returns it as a tuple of ints."""
    if layers is None:
        return None
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Iterable):
        raise InputError(f"{arg} must be None or a list of layer indices, got {layers!r}")
    out = tuple(layers)
    if any(isinstance(k, bool) or not isinstance(k, int) for k in out):
        raise InputError(f"{arg} must hold integer layer indices, got {list(out)}")
    return out


def resolve_layers(arg: str, layers: tuple[int, ...] | None, count: int) -> list[int]:
    """Selection as non-negative indices into ``count`` entries (negative ones count from the end)."""
    if layers is None:
        return list(range(count))
    bad = [k for k in layers if not -count <= k < count]
    if bad:
        raise InputError(f"{arg} {bad} out of range: there are {count} (indices 0..{count - 1})")
    return [k % count for k in layers]


class Tracker:
    """Base of the built-in trackers: one instance records one inference run.

    Records at iterations ``0, every, 2*every, ...`` and at the last step (taken from the
    result in ``pccore_inference_end`` when the schedule missed it). Subclasses implement
    ``_reset``, ``_setup(info)`` and ``_record(iteration, point)``, where ``point`` has
    ``states``, ``errors`` and ``energy`` (an ``InferenceStep`` or the ``InferenceResult``).
    """

    def __init__(self, every: int = 1):
        self.every = check_positive_int("every", every)
        self._runtime = None
        self._last: int | None = None
        self._iters: list[int] = []
        self._pending: list = []  # small device arrays, one per recorded step
        self._host = None
        self._reset()

    @property
    def pccore_every(self) -> int:
        """Declared to the inference driver: only points at multiples of ``every`` (and the
        last) are needed, so it may run the steps in between fused."""
        return self.every

    # ------------------------------------------------------------------ hooks
    @hookimpl
    def pccore_inference_start(self, info):
        self._runtime, self._last = info.runtime, None
        self._iters, self._pending, self._host = [], [], None
        self._reset()
        self._setup(info)

    @hookimpl
    def pccore_inference_step(self, step):
        if step.iteration % self.every == 0:
            self._record(step.iteration, step)
            self._iters.append(step.iteration)
            self._last = step.iteration

    @hookimpl
    def pccore_inference_end(self, result):
        if self._last != result.iterations:
            self._record(result.iterations, result)
            self._iters.append(result.iterations)
            self._last = result.iterations
        self._flush()

    # -------------------------------------------------------------- internals
    def _reset(self) -> None:
        """Clear the results of the previous run."""

    def _setup(self, info) -> None:
        """Prepare for a run (e.g. move reference arrays to ``info.runtime``)."""

    def _record(self, iteration: int, point) -> None:
        raise NotImplementedError

    def _flush(self) -> np.ndarray:
        """Host copy of the pending device results, stacked (steps, ...), done once."""
        if self._pending:
            xp = self._runtime.xp
            block = self._runtime.to_numpy(xp.stack(self._pending))
            self._host = block if self._host is None else np.concatenate([self._host, block])
            self._pending = []
        return self._host

    @property
    def iterations(self) -> np.ndarray:
        """Iterations recorded so far, as an int array (steps,)."""
        return np.asarray(self._iters, dtype=np.int64)
