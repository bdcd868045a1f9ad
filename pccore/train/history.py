"""TrainHistory: what ``Trainer.fit`` recorded, as host floats."""

from __future__ import annotations

import attrs


@attrs.define
class TrainHistory:
    """What ``Trainer.fit`` recorded (host floats).

    Per step: ``step``, ``loss`` (batch-mean output loss of the feed-forward prediction
    before the update), ``energy`` (PC: final inference energy / batch; None for bp).
    Per evaluation: ``eval_step``, ``eval_loss``, ``eval_accuracy``. Per epoch: ``epochs``
    (dicts with epoch, step, train_loss, test_loss, test_accuracy).
    """

    step: list = attrs.Factory(list)
    loss: list = attrs.Factory(list)
    energy: list = attrs.Factory(list)
    eval_step: list = attrs.Factory(list)
    eval_loss: list = attrs.Factory(list)
    eval_accuracy: list = attrs.Factory(list)
    epochs: list = attrs.Factory(list)

    def as_dict(self) -> dict:
        """Plain dict of lists (JSON-ready)."""
        return attrs.asdict(self)

    def record_eval(self, step: int, metrics: dict) -> None:
        if self.eval_step and self.eval_step[-1] == step:
            return
        self.eval_step.append(step)
        self.eval_loss.append(metrics["loss"])
        self.eval_accuracy.append(metrics["accuracy"])
