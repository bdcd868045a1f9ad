"""Dataset plugins (entry-point group ``pccore.datasets``): scikit-learn's 8x8 digits
(offline default) and torchvision's MNIST, Fashion-MNIST and EMNIST.

Every loader returns a ``pccore.Dataset`` of host float32 arrays: x flattened (n, d) and
normalised, y one-hot (n, classes). scikit-learn and torchvision are imported on first use.
"""

from __future__ import annotations

from ._common import ENV_DIR, DataNotFound
from .sklearn_digits import digits
from .vision import EMNIST_SPLITS, emnist, fashion_mnist, mnist

__all__ = ["DataNotFound", "EMNIST_SPLITS", "ENV_DIR", "digits", "emnist", "fashion_mnist", "mnist"]
