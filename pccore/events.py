"""Frozen payloads passed to observer hooks. Arrays in them are live backend arrays:
an observer that keeps them must copy them (``runtime.to_numpy``)."""

from __future__ import annotations

import functools
from typing import Any, Callable

import attrs


@attrs.frozen
class InferenceStart:
    """Inference is about to run ``iters`` steps of ``method`` ("EO" or "SO")."""

    method: str
    lr: float
    optimizer: str
    iters: int
    tol: float | None
    batch_size: int
    runtime: Any = attrs.field(repr=False)
    # the run's inputs, for observers that analyse the batch (e.g. the regime tracker)
    net: Any = attrs.field(default=None, repr=False)
    x: Any = attrs.field(default=None, repr=False)
    y: Any = attrs.field(default=None, repr=False)
    loss: Any = attrs.field(default=None, repr=False)
    inference: Any = attrs.field(default=None, repr=False)


@attrs.frozen(slots=False)
class InferenceStep:
    """The point reached after ``iteration`` updates (0 = the starting point).

    ``states`` and ``errors`` are lists of (batch, d_k) arrays; the one the method does
    not optimise is computed on first access. ``energy`` is a 0-d array (batch sum).
    An observer may call ``request_stop()`` to end the run at this point.
    """

    method: str
    iteration: int
    energy: Any
    runtime: Any = attrs.field(repr=False)
    _values: tuple = attrs.field(repr=False, alias="values")
    _convert: Callable = attrs.field(repr=False, eq=False, alias="convert")
    _stop: list = attrs.field(factory=list, repr=False, eq=False, alias="stop")

    def request_stop(self) -> None:
        """Ask the loop to stop at this point (the result's ``stopped`` is "observer")."""
        self._stop.append(True)

    @property
    def stop_requested(self) -> bool:
        return bool(self._stop)

    @functools.cached_property
    def states(self) -> list:
        return list(self._values) if self.method == "SO" else self._convert(list(self._values))

    @functools.cached_property
    def errors(self) -> list:
        return list(self._values) if self.method == "EO" else self._convert(list(self._values))


@attrs.frozen
class TrainStep:
    """One weight update: global ``step`` number, training ``loss`` and PC ``energy``
    (host floats, batch means; energy is None for backprop)."""

    method: str
    step: int
    epoch: int
    loss: float
    energy: float | None
    runtime: Any = attrs.field(repr=False)


@attrs.frozen
class EpochEnd:
    """An epoch ended; ``metrics`` holds host floats (e.g. train_loss, test_accuracy)."""

    epoch: int
    step: int
    metrics: dict
    runtime: Any = attrs.field(repr=False)
