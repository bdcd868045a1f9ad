"""Training: one compiled step per batch (``step``), the session holding the weights being
trained (``session``), the ``Trainer`` with its loop, evaluation and progress
(``trainer``, ``progress``), what it records (``history``) and checkpoints (``checkpoint``)."""

from .history import TrainHistory
from .session import TrainSession
from .step import BPStep, EvalStep, PCStep
from .trainer import DEFAULT_INFERENCE, METHODS, Trainer

__all__ = ["BPStep", "DEFAULT_INFERENCE", "EvalStep", "METHODS", "PCStep", "TrainHistory", "TrainSession", "Trainer"]
