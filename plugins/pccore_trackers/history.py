"""History and EnergyTrace: host copies of the inference trajectory."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ._base import Tracker, check_layers, resolve_layers


class History(Tracker):
    """Host NumPy copies of states, errors and energy every ``every`` steps (and at the last).

    ``layers`` selects hidden layers (0-based, negative from the end; None = all).
    After a run: ``iterations`` (list[int]); ``states`` / ``errors`` (one dict per recorded
    step, layer -> (batch, *shape) array); ``energies`` (list[float], batch sums).
    One History records one run: each ``pccore_inference_start`` clears it.
    Copies are taken only at recorded steps; other steps cost nothing.
    """

    def __init__(self, every: int = 1, layers: Iterable[int] | None = None):
        self.layers = check_layers("layers", layers)
        super().__init__(every)

    def _reset(self) -> None:
        self.states: list[dict[int, np.ndarray]] = []
        self.errors: list[dict[int, np.ndarray]] = []
        self.energies: list[float] = []

    def _record(self, iteration, point) -> None:
        rt, xp = self._runtime, self._runtime.xp
        states, errors = point.states, point.errors
        chosen = resolve_layers("layers", self.layers, len(states))
        parts = [states[k] for k in chosen] + [errors[k] for k in chosen]
        rows = [xp.reshape(p, (p.shape[0], -1)) for p in parts]
        # one device->host transfer per recorded step, split on the host
        block = rt.to_numpy(xp.concat(rows, axis=1))
        cuts = np.cumsum([r.shape[1] for r in rows])[:-1]
        pieces = [piece.reshape(tuple(p.shape)) for piece, p in zip(np.split(block, cuts, axis=1), parts)]
        n = len(chosen)
        self.states.append(dict(zip(chosen, pieces[:n])))
        self.errors.append(dict(zip(chosen, pieces[n:])))
        self.energies.append(float(rt.to_numpy(point.energy)))

    @property
    def iterations(self) -> list[int]:
        """Recorded iterations (0 = the starting point)."""
        return list(self._iters)


class EnergyTrace(Tracker):
    """The energy (batch sum) every ``every`` steps and at the last one.

    Kept on the device during the run and copied to the host once at the end.
    After a run: ``energies`` (steps,) float array and ``iterations`` (steps,) int array.
    """

    def _record(self, iteration, point) -> None:
        xp = self._runtime.xp
        self._pending.append(xp.asarray(point.energy, copy=True))

    @property
    def energies(self) -> np.ndarray:
        """Recorded energies (steps,)."""
        host = self._flush()
        return np.zeros(0) if host is None else host
