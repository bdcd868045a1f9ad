"""DistanceToOptimum: per-sample distance of each hidden state to a known optimum (seed 000)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from pccore.errors import InputError

from ._base import Tracker, check_layers, dtype_name, resolve_layers
from .metrics import quartiles, steps_to_threshold


def _rows(xp: Any, a: Any) -> Any:
    """(batch, ...) -> (batch, size): one row per sample (images flattened)."""
    return a if a.ndim == 2 else xp.reshape(a, (a.shape[0], -1))


class DistanceToOptimum(Tracker):
    """||s_t - s*|| per sample (or ||s_t - s*|| / ||s*|| with ``relative``) for chosen layers.

    ``optimum``: one (batch, ...) array per hidden layer (images count as flat vectors), host or backend, e.g.
    ``pccore.analytic.linear_equilibrium(net, x, y).states``. Distances are computed on the
    backend and copied to the host once, at the end of the run. After a run:
    ``distances`` (layer -> (steps, batch)), ``iterations`` (steps,), ``quartiles(layer)``,
    ``steps_to(threshold, layer)``. One instance records one run.
    """

    def __init__(
        self,
        optimum: Sequence[Any],
        layers: Iterable[int] | None = None,
        relative: bool = False,
        every: int = 1,
    ):
        if not isinstance(optimum, (list, tuple)) or not optimum:
            raise InputError(
                f"optimum must be a non-empty list of per-layer (batch, d) arrays, got {type(optimum).__name__}"
            )
        for k, o in enumerate(optimum):
            if len(getattr(o, "shape", ())) < 2:
                raise InputError(f"optimum[{k}] must be a (batch, ...) array, got {type(o).__name__}")
        self.optimum = list(optimum)
        self.layers = resolve_layers("layers", check_layers("layers", layers), len(self.optimum))
        self.relative = bool(relative)
        super().__init__(every)

    def _reset(self) -> None:
        self._target = None  # chosen optimum layers side by side on the runtime: (batch, D)
        self._sum = None  # (D, layers) 0/1 matrix: per-layer sums of squares in one matmul
        self._scale = None  # (batch, layers) ||s*|| per sample when relative

    def _prepare(self, states: list) -> None:
        if len(states) != len(self.optimum):
            raise InputError(
                f"optimum has {len(self.optimum)} layers but the network has {len(states)} hidden layers"
            )
        rt, xp = self._runtime, self._runtime.xp
        dtype, target = dtype_name(states[0]), []
        for k in self.layers:
            o = rt.asarray(self.optimum[k], dtype=dtype)
            if tuple(o.shape) != tuple(states[k].shape):
                raise InputError(
                    f"optimum[{k}] has shape {tuple(o.shape)} but state {k} has shape {tuple(states[k].shape)}"
                )
            target.append(_rows(xp, o))
        widths = [o.shape[1] for o in target]
        self._sum = rt.asarray(np.repeat(np.eye(len(widths)), widths, axis=0), dtype=dtype)
        self._target = xp.concat(target, axis=1)
        if self.relative:
            self._scale = xp.sqrt((self._target * self._target) @ self._sum)

    def _record(self, iteration, point) -> None:
        xp, states = self._runtime.xp, point.states
        if self._target is None:
            self._prepare(states)
        diff = xp.concat([_rows(xp, states[k]) for k in self.layers], axis=1) - self._target
        rows = xp.sqrt((diff * diff) @ self._sum)  # (batch, layers): a few ops for any depth
        self._pending.append(rows / self._scale if self.relative else rows)

    # ---------------------------------------------------------------- results
    @property
    def distances(self) -> dict[int, np.ndarray]:
        """layer -> (steps, batch) distances at the recorded iterations."""
        host = self._flush()
        if host is None:
            return {k: np.zeros((0, 0)) for k in self.layers}
        return {k: host[:, :, i] for i, k in enumerate(self.layers)}

    def _layer(self, layer: int | None) -> int:
        if layer is None:
            if len(self.layers) != 1:
                raise InputError(f"layer must be given: this tracker follows layers {self.layers}")
            return self.layers[0]
        k = resolve_layers("layer", (layer,), len(self.optimum))[0]
        if k not in self.layers:
            raise InputError(f"layer {layer} is not tracked; tracked layers: {self.layers}")
        return k

    def quartiles(self, layer: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(q1, median, q3) over the batch, each (steps,), for ``layer``."""
        return quartiles(self.distances[self._layer(layer)])

    def steps_to(self, threshold: float, layer: int | None = None) -> int | None:
        """First recorded iteration whose batch median distance is below ``threshold`` at
        ``layer`` (None: at every tracked layer at once); None if never reached."""
        if layer is None:
            dist = self.distances
            worst = np.max([np.median(dist[k], axis=1) for k in self.layers], axis=0)
            index = steps_to_threshold(worst[:, None], threshold)
        else:
            index = steps_to_threshold(self.distances[self._layer(layer)], threshold)
        return None if index is None else int(self.iterations[index])

