"""fashion-mnist: the mnist-mlp setup (784-256-64-10 sigmoid MLP, SO / EO / BP) on
Fashion-MNIST, 3 seeds x 20 epochs. No published figure to match: the table reports what
the three methods reach with the same settings."""

from __future__ import annotations

import attrs

from . import mnist_mlp
from .spec import smoke

SPEC = attrs.evolve(
    mnist_mlp.SPEC,
    name="fashion-mnist",
    title="784-256-64-10 sigmoid MLP on Fashion-MNIST",
    dataset="fashion_mnist",
    seeds=3,
    reference={},
    source="the mnist-mlp settings on Fashion-MNIST (data from a folder)",
    notes=("Data: <data-dir>/FashionMNIST/raw/ (torchvision's layout).",),
)

QUICK = smoke(SPEC, mnist_mlp.QUICK.variants)
