"""Host-side summaries of distance curves (NumPy): quartiles and steps to a threshold."""

from __future__ import annotations

import numpy as np


def quartiles(distances: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(q1, median, q3) over the batch of distances shaped (steps, batch)."""
    q1, med, q3 = np.percentile(np.asarray(distances, dtype=np.float64), [25, 50, 75], axis=1)
    return q1, med, q3


def steps_to_threshold(distances: np.ndarray, threshold: float) -> int | None:
    """First step at which the batch median of (steps, batch) distances is below
    ``threshold``; None if it never is."""
    median = np.median(np.asarray(distances, dtype=np.float64), axis=1)
    below = np.flatnonzero(median < threshold)
    return int(below[0]) if below.size else None
