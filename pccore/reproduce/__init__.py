"""Reproductions of published accuracy results, one command each (``pccore reproduce NAME``):
per-seed JSON, a markdown table of mean ± std over seeds and a figure.

Each module holds one reproduction as data (``SPEC``, and ``QUICK``: its smoke size):
``mnist_mlp``, ``depth``, ``mnist_cnn``, ``fashion_mnist`` and ``cifar10_vgg5``.
:func:`reproduce` trains and tabulates; :func:`estimate` times a few steps.
"""

from __future__ import annotations

from ..errors import UnknownNameError
from . import cifar10_vgg5, depth, fashion_mnist, mnist_cnn, mnist_mlp
from .estimate import estimate
from .runner import data_root, load_data, reproduce, select_methods
from .spec import Method, Spec, Variant
from .table import mean_std

_MODULES = {"mnist-mlp": mnist_mlp, "depth": depth, "mnist-cnn": mnist_cnn,
            "fashion-mnist": fashion_mnist, "cifar10-vgg5": cifar10_vgg5}


def names() -> list[str]:
    """Names of the reproductions, in the order of the issue that asked for them."""
    return list(_MODULES)


def get(name: str, quick: bool = False) -> Spec:
    """The reproduction ``name`` (its smoke size with ``quick``)."""
    if name not in _MODULES:
        raise UnknownNameError(f"unknown reproduction {name!r}; choose from {', '.join(_MODULES)}")
    module = _MODULES[name]
    return module.QUICK if quick else module.SPEC


__all__ = ["Method", "Spec", "Variant", "data_root", "estimate", "get", "load_data", "mean_std", "names",
           "reproduce", "select_methods"]
