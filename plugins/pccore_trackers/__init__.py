"""Built-in observer plugins (trackers) of pccore, registered under ``pccore.plugins``.

Each tracker records one inference run (it resets on ``pccore_inference_start``) and
copies to the host only at recorded steps. See docs/plugins.md. The loggers
``CSVLogger`` (``csv``) and ``TensorBoardLogger`` (``tensorboard``) record training steps
and epochs instead (tensorboardX is imported only when a TensorBoardLogger is made).
"""

from __future__ import annotations

from .alignment import GradientAlignment, cosine_similarity
from .csv import CSVLogger
from .distance import DistanceToOptimum
from .history import EnergyTrace, History
from .metrics import quartiles, steps_to_threshold
from .regime import Regime
from .tensorboard import TensorBoardLogger

__all__ = [
    "CSVLogger", "DistanceToOptimum", "EnergyTrace", "GradientAlignment", "History", "Regime", "TensorBoardLogger",
    "cosine_similarity", "quartiles", "steps_to_threshold",
]
