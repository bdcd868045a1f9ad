"""Datasets as host arrays, loaded by name through the ``pccore.datasets`` entry points,
and seeded mini-batches moved to a runtime's device."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs

from . import host, registry
from .checks import check_positive_int
from .errors import InputError


@attrs.frozen
class Dataset:
    """Host (NumPy) data: x_* (n, d_in) float32 (flattened, normalised), y_* (n, classes)
    float32 one-hot targets."""

    name: str
    x_train: Any = attrs.field(repr=False)
    y_train: Any = attrs.field(repr=False)
    x_test: Any = attrs.field(repr=False)
    y_test: Any = attrs.field(repr=False)

    @property
    def input_dim(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def num_classes(self) -> int:
        return int(self.y_train.shape[1])

    def __attrs_post_init__(self):
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
                raise InputError(
                    f"dataset {self.name!r}: x_{split} must be (n, d) and y_{split} (n, classes) "
                    f"with the same n, got {x.shape} and {y.shape}"
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
    """Yield (x, y) backend arrays of ``batch_size`` rows from ``split`` ("train"/"test").

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
