"""Shared helpers of the dataset plugins: the data folder, one-hot targets, scalar
normalisation and the error raised when the files are missing."""

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


def not_found(name: str, root: Path, folder: str, files: str) -> DataNotFound:
    """Error for dataset ``name`` missing under ``root`` (expected ``<root>/<folder>/raw/<files>``)."""
    return DataNotFound(
        f"dataset {name!r} not found: expected <root>/{folder}/raw/{files} with "
        f"root = {str(root.resolve())!r}. Pass --data-dir DIR / set ${ENV_DIR} (or root=...) "
        f"to the folder that holds {folder}/, or fetch it once with --download "
        f"(download=True) on a machine with internet access"
    )


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


def standardise(images: np.ndarray, scale: float, mean: float, std: float) -> np.ndarray:
    """(n, ...) integer images -> (n, d) float32 ``(images / scale - mean) / std``."""
    x = np.asarray(images).reshape(images.shape[0], -1).astype(np.float32)
    x *= np.float32(1.0 / (scale * std))
    x -= np.float32(mean / std)
    return x
