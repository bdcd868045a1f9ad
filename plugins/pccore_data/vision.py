"""MNIST, Fashion-MNIST and EMNIST through torchvision, converted to host NumPy in one
vectorised step (torchvision's uint8 ``data`` / ``targets`` tensors, no per-image PIL)."""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from pccore import Dataset
from pccore.errors import InputError, MissingDependency

from ._common import check_flag, not_found, one_hot, pixel_stats, resolve_root, standardise

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


Split = tuple[np.ndarray, np.ndarray]


def _load(name: str, make: Callable[..., Any], root, download: bool, folder: str, files: str,
          pairs: tuple = ()) -> tuple[Split, Split]:
    """((x_train, y_train), (x_test, y_test)): (n, 28, 28) uint8 images and (n,) labels read
    by torchvision; DataNotFound saying where we looked, or InputError naming the file (or
    the folder) when the files are there but damaged or truncated. ``pairs``: the (images,
    labels) file names of each split, checked before torchvision reads them."""
    check_flag("download", download)
    path = resolve_root(root)
    if not download and not (path / folder / "raw").is_dir():
        raise not_found(name, path, folder, files)
    for images, labels in pairs:
        _check_idx_pair(name, path / folder / "raw", images, labels)
    try:
        train = make(str(path), train=True, download=download)
        test = make(str(path), train=False, download=download)
    except RuntimeError as err:
        if "not found" in str(err).lower():
            raise not_found(name, path, folder, files) from err
        if "download" in str(err).lower():  # a failed download, not a damaged file
            raise
        raise _damaged(name, path, folder, files, err) from err
    except (AssertionError, ValueError, TypeError, KeyError, IndexError, EOFError) as err:
        # torchvision's IDX reader asserts on bad headers and sizes; view()/frombuffer raise
        raise _damaged(name, path, folder, files, err) from err
    out = []
    for ds in (train, test):
        x, y = ds.data.numpy(), ds.targets.numpy()
        if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:  # e.g. a truncated label file,
            err = ValueError(f"images {tuple(x.shape)} and labels {tuple(y.shape)} do not match")
            raise _damaged(name, path, folder, files, err)  # which torchvision reads silently
        out.append((x, y))
    return out[0], out[1]


# IDX element types: code -> bytes per element
_IDX_TYPES = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}


def _idx_shape(path) -> tuple[int, ...]:
    """The shape in an IDX file's header, after checking the header and that the file holds
    exactly that many elements (ValueError saying what is wrong otherwise)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(4)
        if len(head) < 4 or head[0] or head[1] or head[2] not in _IDX_TYPES or not head[3]:
            raise ValueError(f"not an IDX header ({len(head)} of 4 magic bytes: {head.hex() or 'empty'})")
        raw = f.read(4 * head[3])
    if len(raw) < 4 * head[3]:
        raise ValueError(f"the header is cut after {4 + len(raw)} bytes")
    shape = tuple(int.from_bytes(raw[4 * i:4 * i + 4], "big") for i in range(head[3]))
    want = 4 + 4 * head[3] + int(np.prod(shape, dtype=np.int64)) * _IDX_TYPES[head[2]]
    if size != want:
        raise ValueError(f"{size} bytes where the header {shape} needs {want}")
    return shape


def _check_idx_pair(name: str, raw, images: str, labels: str) -> None:
    """Check one split's IDX files (when present; missing ones are torchvision's to report):
    headers, sizes and the same number of images and labels. InputError naming the file."""
    shapes = {}
    for file in (images, labels):
        if (raw / file).is_file():
            try:
                shapes[file] = _idx_shape(raw / file)
            except (OSError, ValueError) as err:
                raise _damaged_file(name, raw / file, err) from None
    if len(shapes) == 2 and shapes[images][:1] != shapes[labels][:1]:
        err = ValueError(f"{shapes[images][0]} images but {shapes[labels][0]} labels in {labels}")
        raise _damaged_file(name, raw / images, err)


def _damaged_file(name: str, file, err: BaseException) -> InputError:
    return InputError(
        f"dataset {name!r}: the file {str(file.resolve())!r} is damaged or truncated ({err}); delete "
        f"it and fetch it again (download=True / --download)"
    )


def _damaged(name: str, path, folder: str, files: str, err: BaseException) -> InputError:
    reason = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    return InputError(
        f"dataset {name!r}: the files in {str((path / folder / 'raw').resolve())!r} are damaged or "
        f"truncated (could not read {files} as IDX files: {reason}); delete them and fetch them "
        f"again (download=True / --download)"
    )


def _pairs(pattern: str, splits: tuple = ("train", "t10k")) -> tuple:
    """(images, labels) IDX file names of each split, e.g. ("train-images-idx3-ubyte", ...)."""
    return tuple((pattern.format(s) + "-images-idx3-ubyte", pattern.format(s) + "-labels-idx1-ubyte")
                 for s in splits)


def _images(x: np.ndarray) -> np.ndarray:
    """(n, h, w) -> (n, 1, h, w), a view."""
    return x.reshape(x.shape[0], 1, *x.shape[1:])


def mnist(root: str | os.PathLike | None = None, download: bool = False, flatten: bool = True) -> Dataset:
    """MNIST: x (n, 784) float32 ``(pixel/255 - 0.1307) / 0.3081`` (``flatten=False``:
    images (n, 1, 28, 28) with the same values), y (n, 10) one-hot."""
    check_flag("flatten", flatten)
    tv = _datasets("mnist")
    where = ("MNIST", "{train,t10k}-{images-idx3,labels-idx1}-ubyte", _pairs("{}"))
    (x_tr, y_tr), (x_te, y_te) = _load("mnist", tv.MNIST, root, download, *where)
    return Dataset(
        "mnist",
        standardise(_images(x_tr), PIXEL_MAX, MNIST_MEAN, MNIST_STD, flatten), one_hot(y_tr, 10, "mnist"),
        standardise(_images(x_te), PIXEL_MAX, MNIST_MEAN, MNIST_STD, flatten), one_hot(y_te, 10, "mnist"),
    )


def _standardised(
    name: str, splits: tuple[Split, Split], num_classes: int, offset: int = 0,
    transpose: bool = False, flatten: bool = True,
) -> Dataset:
    """Scalar mean/std of the training pixels (exact, from a histogram), applied to both splits."""
    (x_tr, y_tr), (x_te, y_te) = splits
    if transpose:  # EMNIST images are stored transposed; make them upright
        x_tr, x_te = x_tr.transpose(0, 2, 1), x_te.transpose(0, 2, 1)
    mean, std = pixel_stats(x_tr, PIXEL_MAX)
    return Dataset(
        name,
        standardise(_images(x_tr), PIXEL_MAX, mean, std, flatten), one_hot(y_tr - offset, num_classes, name),
        standardise(_images(x_te), PIXEL_MAX, mean, std, flatten), one_hot(y_te - offset, num_classes, name),
    )


def fashion_mnist(
    root: str | os.PathLike | None = None, download: bool = False, flatten: bool = True
) -> Dataset:
    """Fashion-MNIST: x (n, 784) standardised with the training set's scalar mean/std
    (about 0.2860 / 0.3530) (``flatten=False``: images (n, 1, 28, 28)), y (n, 10) one-hot."""
    check_flag("flatten", flatten)
    tv = _datasets("fashion_mnist")
    where = ("FashionMNIST", "{train,t10k}-{images-idx3,labels-idx1}-ubyte", _pairs("{}"))
    splits = _load("fashion_mnist", tv.FashionMNIST, root, download, *where)
    return _standardised("fashion_mnist", splits, 10, flatten=flatten)


def emnist(
    root: str | os.PathLike | None = None, split: str = "digits", download: bool = False,
    flatten: bool = True,
) -> Dataset:
    """EMNIST ``split`` (byclass 62, bymerge/balanced 47, letters 26, digits/mnist 10 classes):
    x (n, 784) upright images standardised with the training set's scalar mean/std
    (``flatten=False``: (n, 1, 28, 28)), y (n, classes) one-hot ("letters" labels 1..26
    become classes 0..25)."""
    check_flag("flatten", flatten)
    if split not in EMNIST_SPLITS:
        raise InputError(f"split must be one of {', '.join(EMNIST_SPLITS)}, got {split!r}")
    tv = _datasets("emnist")

    def make(path, train, download):
        return tv.EMNIST(path, split=split, train=train, download=download)

    where = ("EMNIST", f"emnist-{split}-{{train,test}}-{{images-idx3,labels-idx1}}-ubyte",
             _pairs(f"emnist-{split}-{{}}", ("train", "test")))
    splits = _load("emnist", make, root, download, *where)
    classes, offset = EMNIST_SPLITS[split]
    return _standardised(f"emnist-{split}", splits, classes, offset, transpose=True, flatten=flatten)
