"""Datasets as host arrays, loaded by name through the ``pccore.datasets`` entry points,
and seeded mini-batches moved to a runtime's device."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import attrs

from . import host, registry
from .checks import check_positive_int
from .errors import InputError


@attrs.frozen
class Dataset:
    """Host (NumPy) data: x_* (n, *input_shape) float32 normalised inputs, either flattened
    (n, d) or images (n, channels, height, width); y_* (n, classes) float32 one-hot targets.
    Both splits share the per-sample shape and the number of classes."""

    name: str
    x_train: Any = attrs.field(repr=False)
    y_train: Any = attrs.field(repr=False)
    x_test: Any = attrs.field(repr=False)
    y_test: Any = attrs.field(repr=False)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample, e.g. (784,) flattened or (1, 28, 28) as an image."""
        return tuple(int(s) for s in self.x_train.shape[1:])

    @property
    def input_dim(self) -> int:
        """Number of input features per sample: the product of ``input_shape``."""
        return math.prod(self.input_shape)

    @property
    def num_classes(self) -> int:
        return int(self.y_train.shape[1])

    def __attrs_post_init__(self):
        for split in ("train", "test"):
            for kind in ("x", "y"):
                arr = getattr(self, f"{kind}_{split}")
                if not hasattr(arr, "shape") or not hasattr(arr, "ndim"):
                    raise InputError(
                        f"dataset {self.name!r}: {kind}_{split} must be an array, got {type(arr).__name__}"
                    )
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.ndim < 2:
                raise InputError(
                    f"dataset {self.name!r}: x_{split} must be (n, *input_shape) with at least "
                    f"2 dimensions, e.g. (n, d) or (n, channels, height, width), got {tuple(x.shape)}"
                )
            if y.ndim != 2:
                hint = ""
                if y.ndim == 1 and getattr(getattr(y, "dtype", None), "kind", "") in ("i", "u"):
                    hint = ("; these look like integer class labels: one-hot them first, e.g. "
                            f"numpy.eye(classes, dtype=numpy.float32)[y_{split}]")
                raise InputError(
                    f"dataset {self.name!r}: y_{split} must be (n, classes), got {tuple(y.shape)}{hint}"
                )
            if x.shape[0] != y.shape[0]:
                raise InputError(
                    f"dataset {self.name!r}: x_{split} and y_{split} must have the same number of "
                    f"rows n, got {tuple(x.shape)} and {tuple(y.shape)}"
                )
        if tuple(self.x_test.shape[1:]) != tuple(self.x_train.shape[1:]):
            raise InputError(
                f"dataset {self.name!r}: x_train and x_test must have the same per-sample shape, "
                f"got {tuple(self.x_train.shape[1:])} and {tuple(self.x_test.shape[1:])}"
            )
        if self.y_test.shape[1] != self.y_train.shape[1]:
            raise InputError(
                f"dataset {self.name!r}: y_train and y_test must have the same number of classes, "
                f"got {self.y_train.shape[1]} and {self.y_test.shape[1]}"
            )


def datasets() -> list[str]:
    """Names of the installed datasets."""
    return registry.names(registry.DATASETS)


def load_dataset(name: str, **options: Any) -> Dataset:
    """Load dataset ``name`` (e.g. "digits", "mnist"); options go to its loader
    (``root``, ``download``, ``split`` ...)."""
    loader = registry.load(registry.DATASETS, name, "dataset")
    return loader(**options)


def batches(
    data: Dataset,
    runtime: Any,
    batch_size: int,
    split: str = "train",
    shuffle: bool = True,
    seed: int = 0,
    drop_last: bool = True,
) -> Iterator[tuple[Any, Any]]:
    """Yield (x, y) backend arrays of ``batch_size`` rows from ``split`` ("train"/"test"):
    x (batch_size, *data.input_shape), y (batch_size, classes); with ``drop_last=False`` the
    last batch may be smaller.

    Shuffling is drawn on the host from ``seed`` (PCG64), so the order is the same on
    every backend.
    """
    check_positive_int("batch_size", batch_size)
    if split not in ("train", "test"):
        raise InputError(f"split must be 'train' or 'test', got {split!r}")
    x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
    n = x.shape[0]
    order = host.generator(seed).permutation(n) if shuffle else host._np().arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start:start + batch_size]
        yield runtime.asarray(x[idx]), runtime.asarray(y[idx])
