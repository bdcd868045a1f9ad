"""TensorBoardLogger: training loss/energy per step and the epoch metrics as TensorBoard
scalars (``tensorboard --logdir OUT``). Needs tensorboardX (``pip install 'pccore[tensorboard]'``)
or, failing that, torch.utils.tensorboard with the tensorboard package."""

from __future__ import annotations

import os
import weakref
from typing import Any

from pccore import hookimpl
from pccore.checks import check_positive_int
from pccore.errors import MissingDependency

from .csv import writable_folder

FLUSH_SECONDS = 10  # the event file is written at least this often (and at each epoch end)


def summary_writer_class() -> Any:
    """tensorboardX's ``SummaryWriter``, else torch's; MissingDependency naming the extra."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # torch missing, or torch without the tensorboard package
            raise MissingDependency("tensorboardX", "tensorboard", "the tensorboard tracker") from None
    return SummaryWriter


class TensorBoardLogger:
    """Scalars under ``out/tensorboard`` (``logdir`` overrides it) during ``Trainer.fit``:
    ``train/loss`` and ``train/energy`` (PC only) every ``every`` steps, and at each epoch
    end ``epoch/<metric>`` (train_loss, test_loss, test_accuracy), all against the step.

    Values arrive at the trainer's host copies (every ``log_every`` steps): no device sync.
    The event file is created at the first value and flushed at each epoch end; ``close``
    ends it (also done when the logger is collected). ``pccore train --tracker tensorboard``
    writes under ``--out``.
    """

    def __init__(self, out: str | os.PathLike = ".", every: int = 1, logdir: str | os.PathLike | None = None):
        self._writer_class = summary_writer_class()  # fail before training when missing
        self.logdir = writable_folder("logdir" if logdir is not None else "out",
                                      logdir if logdir is not None else os.path.join(out, "tensorboard"))
        self.every = check_positive_int("every", every)
        self._writer = None
        self._finalizer = None

    def _write(self, values: dict, step: int) -> None:
        if self._writer is None:
            self._writer = self._writer_class(str(self.logdir), flush_secs=FLUSH_SECONDS)
            self._finalizer = weakref.finalize(self, self._writer.close)
        for tag, value in values.items():
            if value is not None:
                self._writer.add_scalar(tag, float(value), step)

    @hookimpl
    def pccore_train_step(self, info: Any) -> None:
        if info.step % self.every == 0:
            self._write({"train/loss": info.loss, "train/energy": info.energy}, info.step)

    @hookimpl
    def pccore_epoch_end(self, info: Any) -> None:
        self._write({f"epoch/{k}": v for k, v in info.metrics.items()}, info.step)
        self._writer.flush()

    def close(self) -> None:
        """Write out and close the event file (a later value starts a new one)."""
        if self._finalizer is not None:
            self._finalizer()
        self._writer = self._finalizer = None
