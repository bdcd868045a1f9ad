"""CIFAR-10 and CIFAR-100 read straight from torchvision's on-disk layout (the "python
version" pickles from the CIFAR site), through a restricted unpickler.

We read the files ourselves rather than through ``torchvision.datasets.CIFAR10``: torchvision
checks md5 sums of every file (so nothing but the exact download can be read) and loads them
with a plain ``pickle.load``, which runs whatever code a tampered file names. Our unpickler
only lets the file rebuild NumPy arrays; torchvision is used only to fetch the files when
``download=True``.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from pccore import Dataset
from pccore.errors import InputError, MissingDependency

from ._common import channel_stats, check_flag, not_found, one_hot, resolve_root, standardise

PIXEL_MAX = 255.0
IMAGE_SHAPE = (3, 32, 32)  # each row of b"data": 1024 red, 1024 green, 1024 blue, row-major 32x32
ROW = 3 * 32 * 32

# name -> (folder, train files, test files)
LAYOUT = {
    "cifar10": ("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",)),
    "cifar100": ("cifar-100-python", ("train",), ("test",)),
}
FILES = {"cifar10": "{data_batch_1..5,test_batch}", "cifar100": "{train,test}"}
CIFAR100_LABELS = {"fine": (b"fine_labels", 100), "coarse": (b"coarse_labels", 20)}


class UnsafePickle(InputError):
    """A CIFAR batch file names a Python global other than the NumPy array constructors."""


def _allowed_globals() -> dict[tuple[str, str], object]:
    """The only globals a CIFAR batch needs: NumPy's array reconstruction (under its NumPy 1
    name, which the original files use, and its NumPy 2 name), ndarray and dtype."""
    try:
        from numpy._core.multiarray import _reconstruct  # NumPy >= 2
    except ImportError:  # pragma: no cover - NumPy 1.x
        from numpy.core.multiarray import _reconstruct
    return {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }


class _Unpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals of ``_allowed_globals`` and refuses the rest
    (nothing is imported or called for a refused name)."""

    def __init__(self, file, path: Path):
        super().__init__(file, encoding="bytes")  # the files were written by Python 2: keep str as bytes
        self._path = path
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            allowed = ", ".join(f"{m}.{n}" for m, n in self._allowed)
            raise UnsafePickle(
                f"{str(self._path)!r} is not a CIFAR batch file: it asks for the Python global "
                f"{module}.{name}, but only NumPy array reconstruction ({allowed}) is allowed; "
                f"refusing to read it"
            ) from None

    def persistent_load(self, pid):
        raise UnsafePickle(f"{str(self._path)!r} is not a CIFAR batch file: it uses persistent ids")


def _get(entry: dict, key: bytes):
    """entry[key], also under the str key (files re-saved with text keys)."""
    if key in entry:
        return entry[key]
    return entry.get(key.decode("ascii"))


def read_batch(path: str | os.PathLike, label_key: bytes, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR batch file -> (n, 3, 32, 32) uint8 images and (n,) int64 labels in
    [0, num_classes) read from ``label_key`` (b"labels", b"fine_labels" or b"coarse_labels").

    Raises InputError naming the file when it is damaged, truncated, holds arrays of the wrong
    size, or names a global other than NumPy's array constructors (UnsafePickle).
    """
    path = Path(path)
    expected = f"a pickled dict with b'data' (n, {ROW}) uint8 and {label_key!r} (n labels in [0, {num_classes}))"
    try:
        with open(path, "rb") as f:
            entry = _Unpickler(f, path).load()
    except InputError:
        raise
    except Exception as err:  # truncated/damaged: UnpicklingError, EOFError, ValueError, ...
        reason = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        raise InputError(
            f"{str(path)!r} is damaged or truncated: could not read it as {expected} ({reason}); "
            f"delete the folder and fetch it again (download=True / --download)"
        ) from err
    if not isinstance(entry, dict):
        raise InputError(f"{str(path)!r}: expected {expected}, got a {type(entry).__name__}")
    data, labels = _get(entry, b"data"), _get(entry, label_key)
    if data is None or labels is None:
        keys = ", ".join(sorted(repr(k) for k in entry))
        raise InputError(f"{str(path)!r}: expected {expected}; the dict has the keys {keys}")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != ROW:
        got = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise InputError(f"{str(path)!r}: b'data' must be an (n, {ROW}) uint8 array, got a {got}")
    try:
        labels = np.asarray(labels)
    except Exception as err:  # ragged or odd objects
        raise InputError(f"{str(path)!r}: {label_key!r} must be a list of n integer labels") from err
    if labels.ndim != 1 or labels.shape[0] != data.shape[0] or (labels.size and labels.dtype.kind not in "iu"):
        raise InputError(
            f"{str(path)!r}: {label_key!r} must hold one integer label per image ({data.shape[0]}), "
            f"got {labels.dtype} of shape {labels.shape}"
        )
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise InputError(
            f"{str(path)!r}: {label_key!r} must lie in [0, {num_classes}), "
            f"got range [{labels.min()}, {labels.max()}]"
        )
    return data.reshape(data.shape[0], *IMAGE_SHAPE), labels


def _fetch(name: str, path: Path) -> None:
    """Download the archive with torchvision (which checks its md5) and unpack it under ``path``."""
    try:
        from torchvision import datasets
    except ImportError as err:
        raise MissingDependency("torchvision", "vision", f"downloading dataset {name!r}") from err
    make = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    make(str(path), train=False, download=True)  # the test split is the smaller one to load


def _read(name: str, root, download: bool, label_key: bytes, num_classes: int):
    check_flag("download", download)
    path = resolve_root(root)
    folder, train_files, test_files = LAYOUT[name]
    missing = [f for f in train_files + test_files if not (path / folder / f).is_file()]
    if missing and download:
        _fetch(name, path)
        missing = [f for f in train_files + test_files if not (path / folder / f).is_file()]
    if missing:
        raise not_found(name, path, folder, FILES[name], raw=False)

    def split(files):
        parts = [read_batch(path / folder / f, label_key, num_classes) for f in files]
        return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])

    (x_tr, y_tr), (x_te, y_te) = split(train_files), split(test_files)
    if x_tr.shape[0] == 0:
        raise InputError(f"dataset {name!r}: the training files in {str(path / folder)!r} hold no images")
    return x_tr, y_tr, x_te, y_te


def _dataset(name: str, splits, num_classes: int, flatten: bool) -> Dataset:
    """Standardise both splits per channel with the training split's exact mean/std."""
    x_tr, y_tr, x_te, y_te = splits
    mean, std = channel_stats(x_tr, PIXEL_MAX)
    if (std == 0).any():
        raise InputError(f"dataset {name!r}: a colour channel is constant over the training split")
    return Dataset(
        name,
        standardise(x_tr, PIXEL_MAX, mean, std, flatten), one_hot(y_tr, num_classes, name),
        standardise(x_te, PIXEL_MAX, mean, std, flatten), one_hot(y_te, num_classes, name),
    )


def cifar10(root: str | os.PathLike | None = None, download: bool = False, flatten: bool = True) -> Dataset:
    """CIFAR-10 from ``<root>/cifar-10-batches-py/{data_batch_1..5,test_batch}``: 50000 / 10000
    images, 10 classes. x (n, 3072) float32 (``flatten=False``: images (n, 3, 32, 32)),
    standardised per channel with the training split's exact mean/std of ``pixel/255``;
    y (n, 10) one-hot. ``download=True`` fetches the files with torchvision if missing."""
    check_flag("flatten", flatten)
    return _dataset("cifar10", _read("cifar10", root, download, b"labels", 10), 10, flatten)


def cifar100(
    root: str | os.PathLike | None = None, download: bool = False, flatten: bool = True,
    labels: str = "fine",
) -> Dataset:
    """CIFAR-100 from ``<root>/cifar-100-python/{train,test}``: 50000 / 10000 images with
    ``labels="fine"`` (100 classes) or ``"coarse"`` (20 superclasses). x as for ``cifar10``:
    (n, 3072) or (n, 3, 32, 32), standardised per channel with the training split's mean/std;
    y (n, classes) one-hot. ``download=True`` fetches the files with torchvision if missing."""
    check_flag("flatten", flatten)
    if not isinstance(labels, str) or labels not in CIFAR100_LABELS:
        raise InputError(f"labels must be 'fine' (100 classes) or 'coarse' (20), got {labels!r}")
    key, classes = CIFAR100_LABELS[labels]
    name = "cifar100" if labels == "fine" else "cifar100-coarse"
    splits = _read("cifar100", root, download, key, classes)
    return _dataset(name, splits, classes, flatten)
