"""Built-in observer plugins (trackers) of pccore, registered under ``pccore.plugins``.

Each tracker records one inference run (it resets on ``pccore_inference_start``) and
copies to the host only at recorded steps. See docs/plugins.md.
"""

from __future__ import annotations

from .alignment import GradientAlignment, cosine_similarity
from .distance import DistanceToOptimum
from .history import EnergyTrace, History
from .metrics import quartiles, steps_to_threshold

__all__ = [
    "DistanceToOptimum", "EnergyTrace", "GradientAlignment", "History",
    "cosine_similarity", "quartiles", "steps_to_threshold",
]
