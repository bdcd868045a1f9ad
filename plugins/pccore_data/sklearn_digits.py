"""scikit-learn's 8x8 handwritten digits: ships with scikit-learn, so it works offline."""

from __future__ import annotations

import os

import numpy as np

from pccore import Dataset
from pccore.errors import InputError, MissingDependency

from ._common import check_flag, one_hot, pixel_stats, standardise

PIXEL_MAX = 16.0  # pixel values are integers 0..16


def _load_raw():
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as err:
        raise MissingDependency("scikit-learn", "vision", "dataset 'digits'") from err
    images, labels = load_digits(return_X_y=True)
    return images.astype(np.int64), labels, train_test_split


def digits(
    root: str | os.PathLike | None = None,
    download: bool = False,
    test_fraction: float = 0.2,
    seed: int = 0,
    flatten: bool = True,
) -> Dataset:
    """1797 8x8 digits -> x (n, 64) float32 (``flatten=False``: images (n, 1, 8, 8)),
    y (n, 10) one-hot; stratified, seeded split.

    Pixels are divided by 16 and standardised with one scalar mean/std of the training
    split. ``root``/``download`` are accepted (and ignored) so every loader shares a signature.
    """
    if not isinstance(test_fraction, (int, float)) or not 0.0 < test_fraction < 1.0:
        raise InputError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative int, got {seed!r}")
    check_flag("flatten", flatten)
    images, labels, split = _load_raw()
    images = images.reshape(-1, 1, 8, 8)  # NCHW; rows of load_digits are the 8x8 images
    x_tr, x_te, y_tr, y_te = split(
        images, labels, test_size=test_fraction, random_state=int(seed), stratify=labels
    )
    mean, std = pixel_stats(x_tr, PIXEL_MAX)
    return Dataset(
        "digits",
        standardise(x_tr, PIXEL_MAX, mean, std, flatten), one_hot(y_tr, 10, "digits"),
        standardise(x_te, PIXEL_MAX, mean, std, flatten), one_hot(y_te, 10, "digits"),
    )
