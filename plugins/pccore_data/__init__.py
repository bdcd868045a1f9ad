"""Dataset plugins (entry-point group ``pccore.datasets``): scikit-learn's 8x8 digits
(offline default), torchvision's MNIST, Fashion-MNIST and EMNIST, and CIFAR-10/100 read
from torchvision's folders.

Every loader returns a ``pccore.Dataset`` of host float32 arrays: x normalised and
flattened (n, d), or images (n, channels, height, width) with ``flatten=False``; y one-hot
(n, classes). scikit-learn and torchvision are imported on first use.
"""

from __future__ import annotations

from ._common import ENV_DIR, DataNotFound
from .cifar import UnsafePickle, cifar10, cifar100
from .sklearn_digits import digits
from .vision import EMNIST_SPLITS, emnist, fashion_mnist, mnist

__all__ = [
    "DataNotFound", "EMNIST_SPLITS", "ENV_DIR", "UnsafePickle",
    "cifar10", "cifar100", "digits", "emnist", "fashion_mnist", "mnist",
]
