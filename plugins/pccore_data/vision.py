"""MNIST, Fashion-MNIST and EMNIST through torchvision, converted to host NumPy in one
vectorised step (torchvision's uint8 ``data`` / ``targets`` tensors, no per-image PIL)."""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from pccore import Dataset
from pccore.errors import InputError, MissingDependency

from ._common import not_found, one_hot, pixel_stats, resolve_root, standardise

PIXEL_MAX = 255.0
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # the usual MNIST constants (as in the seeds)

# EMNIST split -> (number of classes, label offset); "letters" labels are 1..26.
EMNIST_SPLITS = {
    "byclass": (62, 0), "bymerge": (47, 0), "balanced": (47, 0),
    "letters": (26, 1), "digits": (10, 0), "mnist": (10, 0),
}


def _datasets(name: str):
    try:
        from torchvision import datasets
    except ImportError as err:
        raise MissingDependency("torchvision", "vision", f"dataset {name!r}") from err
    return datasets


def _open(name: str, make: Callable[..., Any], root, download: bool, folder: str, files: str):
    """(train, test) torchvision datasets, or DataNotFound saying where we looked."""
    if not isinstance(download, bool):
        raise InputError(f"download must be True or False, got {download!r}")
    path = resolve_root(root)
    if not download and not (path / folder / "raw").is_dir():
        raise not_found(name, path, folder, files)
    try:
        return make(str(path), train=True, download=download), make(str(path), train=False, download=download)
    except RuntimeError as err:
        if "not found" in str(err).lower():
            raise not_found(name, path, folder, files) from err
        raise


def _arrays(ds) -> tuple[np.ndarray, np.ndarray]:
    return ds.data.numpy(), ds.targets.numpy()


def mnist(root: str | os.PathLike | None = None, download: bool = False) -> Dataset:
    """MNIST: x (n, 784) float32 ``(pixel/255 - 0.1307) / 0.3081``, y (n, 10) one-hot."""
    tv = _datasets("mnist")
    train, test = _open("mnist", tv.MNIST, root, download, "MNIST", "{train,t10k}-{images-idx3,labels-idx1}-ubyte")
    (x_tr, y_tr), (x_te, y_te) = _arrays(train), _arrays(test)
    return Dataset(
        "mnist",
        standardise(x_tr, PIXEL_MAX, MNIST_MEAN, MNIST_STD), one_hot(y_tr, 10, "mnist"),
        standardise(x_te, PIXEL_MAX, MNIST_MEAN, MNIST_STD), one_hot(y_te, 10, "mnist"),
    )


def _standardised(name: str, train, test, num_classes: int, offset: int = 0, transpose: bool = False) -> Dataset:
    """Scalar mean/std of the training pixels (exact, from a histogram), applied to both splits."""
    (x_tr, y_tr), (x_te, y_te) = _arrays(train), _arrays(test)
    if transpose:  # EMNIST images are stored transposed; make them upright
        x_tr, x_te = x_tr.transpose(0, 2, 1), x_te.transpose(0, 2, 1)
    mean, std = pixel_stats(x_tr, PIXEL_MAX)
    return Dataset(
        name,
        standardise(x_tr, PIXEL_MAX, mean, std), one_hot(y_tr - offset, num_classes, name),
        standardise(x_te, PIXEL_MAX, mean, std), one_hot(y_te - offset, num_classes, name),
    )


def fashion_mnist(root: str | os.PathLike | None = None, download: bool = False) -> Dataset:
    """Fashion-MNIST: x (n, 784) standardised with the training set's scalar mean/std
    (about 0.2860 / 0.3530), y (n, 10) one-hot."""
    tv = _datasets("fashion_mnist")
    train, test = _open(
        "fashion_mnist", tv.FashionMNIST, root, download, "FashionMNIST",
        "{train,t10k}-{images-idx3,labels-idx1}-ubyte",
    )
    return _standardised("fashion_mnist", train, test, 10)


def emnist(root: str | os.PathLike | None = None, split: str = "digits", download: bool = False) -> Dataset:
    """EMNIST ``split`` (byclass 62, bymerge/balanced 47, letters 26, digits/mnist 10 classes):
    x (n, 784) upright images standardised with the training set's scalar mean/std,
    y (n, classes) one-hot ("letters" labels 1..26 become classes 0..25)."""
    if split not in EMNIST_SPLITS:
        raise InputError(f"split must be one of {', '.join(EMNIST_SPLITS)}, got {split!r}")
    tv = _datasets("emnist")

    def make(path, train, download):
        return tv.EMNIST(path, split=split, train=train, download=download)

    train, test = _open(
        "emnist", make, root, download, "EMNIST",
        f"emnist-{split}-{{train,test}}-{{images-idx3,labels-idx1}}-ubyte",
    )
    classes, offset = EMNIST_SPLITS[split]
    return _standardised(f"emnist-{split}", train, test, classes, offset, transpose=True)
