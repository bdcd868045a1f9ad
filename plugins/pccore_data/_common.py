"""Shared helpers of the dataset plugins: the data folder, one-hot targets, scalar and
per-channel normalisation and the error raised when the files are missing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pccore.errors import InputError

ENV_DIR = "PCCORE_DATA_DIR"
DEFAULT_DIR = "data"


class DataNotFound(InputError, FileNotFoundError):
    """The dataset's files are not where the loader looked; the message says how to get them."""


def resolve_root(root: str | os.PathLike | None) -> Path:
    """``root``, else ``$PCCORE_DATA_DIR``, else ``./data``."""
    if root is None:
        root = os.environ.get(ENV_DIR) or DEFAULT_DIR
    if not isinstance(root, (str, os.PathLike)):
        raise InputError(f"root must be a folder path (str or os.PathLike), got {type(root).__name__}")
    return Path(root).expanduser()


def not_found(name: str, root: Path, folder: str, files: str, raw: bool = True) -> DataNotFound:
    """Error for dataset ``name`` missing under ``root``: expected ``<root>/<folder>/raw/<files>``
    (torchvision's MNIST family), or ``<root>/<folder>/<files>`` with ``raw=False`` (CIFAR)."""
    sub = "raw/" if raw else ""
    return DataNotFound(
        f"dataset {name!r} not found: expected <root>/{folder}/{sub}{files} with "
        f"root = {str(root.resolve())!r}. Pass --data-dir DIR / set ${ENV_DIR} (or root=...) "
        f"to the folder that holds {folder}/, or fetch it once with --download "
        f"(download=True) on a machine with internet access"
    )


def check_flag(name: str, value) -> bool:
    """``value`` must be True or False (not 0/1 or a string)."""
    if not isinstance(value, bool):
        raise InputError(f"{name} must be True or False, got {value!r}")
    return value


def one_hot(labels: np.ndarray, num_classes: int, name: str) -> np.ndarray:
    """(n,) integer labels in [0, num_classes) -> (n, num_classes) float32 one-hot."""
    labels = np.asarray(labels).astype(np.int64, copy=False)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise InputError(
            f"dataset {name!r}: labels must lie in [0, {num_classes}), "
            f"got range [{labels.min()}, {labels.max()}]"
        )
    out = np.zeros((labels.shape[0], num_classes), dtype=np.float32)
    out[np.arange(labels.shape[0]), labels] = 1.0
    return out


def pixel_stats(images: np.ndarray, scale: float) -> tuple[float, float]:
    """Exact scalar mean/std of integer ``images`` / ``scale`` (from a histogram: no float copy)."""
    counts = np.bincount(np.asarray(images).ravel(), minlength=1).astype(np.float64)
    values = np.arange(counts.size, dtype=np.float64) / scale
    n = counts.sum()
    mean = float(counts @ values / n)
    var = float(counts @ (values - mean) ** 2 / n)
    return mean, var ** 0.5


def channel_stats(images: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact per-channel mean/std (float64, shape (channels,)) of (n, channels, ...) integer
    ``images`` / ``scale``, one histogram per channel."""
    stats = [pixel_stats(images[:, c], scale) for c in range(images.shape[1])]
    return np.array([m for m, _ in stats]), np.array([s for _, s in stats])


def standardise(images: np.ndarray, scale: float, mean, std, flatten: bool = True) -> np.ndarray:
    """(n, channels, ...) integer images -> float32 ``(images / scale - mean) / std``.

    ``mean``/``std`` are scalars, or sequences with one value per channel (axis 1). The
    result keeps the image shape, or with ``flatten`` is that same array reshaped to (n, d).
    """
    images = np.asarray(images)
    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    if mean.ndim:  # per channel: broadcast along axis 1
        bshape = (1, -1) + (1,) * (images.ndim - 2)
        mean, std = mean.reshape(bshape), std.reshape(bshape)
    x = images.astype(np.float32)
    x *= (1.0 / (scale * std)).astype(np.float32)
    x -= (mean / std).astype(np.float32)
    return x.reshape(x.shape[0], -1) if flatten else x
