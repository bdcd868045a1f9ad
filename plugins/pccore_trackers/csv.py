"""CSVLogger: the training loss/energy per step and the metrics per epoch as CSV files
(for spreadsheets, pandas, gnuplot), written while ``Trainer.fit`` runs."""

from __future__ import annotations

import csv
import os
import weakref
from pathlib import Path
from typing import Any

from pccore import hookimpl
from pccore.checks import check_positive_int
from pccore.errors import InputError

STEP_COLUMNS = ("step", "epoch", "method", "loss", "energy")


def writable_folder(arg: str, out: str | os.PathLike) -> Path:
    """``out`` as a folder that exists (created) and can be written, checked before training."""
    if not isinstance(out, (str, os.PathLike)):
        raise InputError(f"{arg} must be a folder path, got {type(out).__name__}")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise InputError(f"{arg} {str(path)!r} exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"{arg} {str(path)!r} cannot be created: {err.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError(f"{arg} {str(path)!r} is not writable")
    return path


class _Table:
    """One CSV file, created (or appended to) at its first row, line-buffered so rows are
    on disk as they come; closed by ``close`` or when its logger is collected."""

    def __init__(self, path: Path, append: bool):
        self.path, self.append = path, append
        self.columns: list[str] | None = None
        self._file = self._writer = None

    def write(self, row: dict) -> None:
        if self._file is None:
            self._open(list(row))
        self._writer.writerow(["" if row.get(c) is None else row.get(c) for c in self.columns])

    def _open(self, columns: list[str]) -> None:
        header = self.append and self.path.is_file() and self.path.stat().st_size > 0
        if header:  # continue an existing table with its own columns
            with self.path.open(newline="") as f:
                columns = next(csv.reader(f), columns)
        self._file = self.path.open("a" if self.append else "w", newline="", buffering=1)
        self._writer = csv.writer(self._file)
        self.columns = columns
        if not header:
            self._writer.writerow(columns)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = self._writer = None


class CSVLogger:
    """Writes ``out/steps.csv`` (step, epoch, method, loss, energy: one row every ``every``
    training steps; energy empty for bp) and ``out/epochs.csv`` (epoch, step, then the
    epoch metrics: train_loss, test_loss, test_accuracy) during ``Trainer.fit``.

    Epochs count from 1, as in the history. Rows reach the logger when the trainer copies
    its numbers to the host (every ``log_every`` steps), so logging adds no device sync.
    Each file is created by its first row (``append=True`` continues an existing one,
    e.g. after a resume). ``pccore train --tracker csv`` writes under ``--out``.
    """

    def __init__(self, out: str | os.PathLike = ".", every: int = 1, append: bool = False):
        self.out = writable_folder("out", out)
        self.every = check_positive_int("every", every)
        if not isinstance(append, bool):
            raise InputError(f"append must be True or False, got {append!r}")
        self.steps = _Table(self.out / "steps.csv", append)
        self.epochs = _Table(self.out / "epochs.csv", append)
        self._finalizer = weakref.finalize(self, _close_all, self.steps, self.epochs)

    @hookimpl
    def pccore_train_step(self, info: Any) -> None:
        if info.step % self.every == 0:
            self.steps.write({"step": info.step, "epoch": info.epoch + 1, "method": info.method,
                              "loss": info.loss, "energy": info.energy})

    @hookimpl
    def pccore_epoch_end(self, info: Any) -> None:
        self.epochs.write({"epoch": info.epoch + 1, "step": info.step,
                           **{k: float(v) for k, v in info.metrics.items()}})

    def close(self) -> None:
        """Close both files (later rows reopen them in append mode)."""
        _close_all(self.steps, self.epochs)
        for table in (self.steps, self.epochs):
            table.append = True


def _close_all(*tables: _Table) -> None:
    for table in tables:
        table.close()
