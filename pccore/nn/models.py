"""Ready-made architectures: the MLP of the seed experiments and a small CNN for MNIST-sized
images, built on :func:`pccore.nn.network`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import InputError
from .activation import get_activation
from .compose import Sequential
from .conv import Conv2d
from .linear import Linear
from .network import Network, network
from .pool import MaxPool2d
from .reshape import Flatten


def _check_widths(widths: Sequence[int]) -> list[int]:
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence):
        raise InputError(f"widths must be a list of positive integers, got {widths!r}")
    widths = list(widths)
    if len(widths) < 2:
        raise InputError(f"widths needs at least 2 entries (input and output), got {widths}")
    for w in widths:
        if isinstance(w, bool) or not hasattr(w, "__index__") or int(w) <= 0:
            raise InputError(f"widths must be positive integers, got {widths}")
    return [int(w) for w in widths]


def mlp(
    runtime: Any,
    widths: Sequence[int],
    activation: str = "linear",
    bias: bool = False,
    init: str = "orthogonal",
    gain: float = 1.0,
    seed: int = 0,
    output_activation: str = "linear",
) -> Network:
    """Fully connected network with layer sizes ``widths`` = [d_0, d_1, ..., d_L]: block l
    is ``Sequential(Linear(d_{l+1}, bias), activation)`` (``output_activation`` for the
    last). Same weights for the same seed as ever (one PCG64 stream, layer by layer)."""
    widths = _check_widths(widths)
    if not isinstance(bias, bool):
        raise InputError(f"bias must be True or False, got {bias!r}")
    hidden, out = get_activation(activation), get_activation(output_activation)
    blocks = [Sequential(Linear(w, bias=bias), out if l == len(widths) - 2 else hidden)
              for l, w in enumerate(widths[1:])]
    return network(runtime, blocks, (widths[0],), seed=seed, init=init, gain=gain)


def cnn(
    runtime: Any,
    input_shape: Sequence[int],
    classes: int,
    channels: Sequence[int] = (16, 32),
    activation: str = "relu",
    init: str = "uniform",
    seed: int = 0,
) -> Network:
    """Small CNN for (C, H, W) images: per entry of ``channels`` one block
    Conv2d(c, 3, padding=1) + activation + MaxPool2d(2) (the pool fused into the conv
    block, as ``from_torch`` groups it), then Flatten + Linear(classes). The default is
    the MNIST CNN of ``pccore train --model cnn``: 1x28x28 -> 16x14x14 -> 32x7x7 -> 10."""
    if isinstance(channels, (str, bytes)) or not isinstance(channels, Sequence) or not channels:
        raise InputError(f"channels must be a non-empty list of positive ints, got {channels!r}")
    act = get_activation(activation)
    blocks = [Sequential(Conv2d(c, 3, padding=1), act, MaxPool2d(2)) for c in channels]
    blocks.append(Sequential(Flatten(), Linear(classes)))
    return network(runtime, blocks, input_shape, seed=seed, init=init)
