"""Networks: a frozen tuple of Dense layers, built from host-drawn weights."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from . import host
from .activations import Activation, get_activation
from .checks import check_dtype, check_float, check_shape, namespace
from .errors import InputError


@attrs.frozen
class Dense:
    """``f(s) = activation(s @ W.T + b)``; W is (d_out, d_in), b is (d_out,) or None."""

    W: Any
    b: Any | None
    activation: Activation = attrs.field(converter=get_activation)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.W.shape)

    def pre(self, s: Any) -> Any:
        """Pre-activation ``s @ W.T + b``: (batch, d_in) -> (batch, d_out)."""
        a = s @ self.W.T
        return a if self.b is None else a + self.b

    def __call__(self, xp: Any, s: Any) -> Any:
        return self.activation(xp, self.pre(s))


@attrs.frozen
class Network:
    """A stack of Dense layers l = 1..L; hidden states are the outputs of layers 1..L-1."""

    layers: tuple[Dense, ...] = attrs.field(converter=tuple)

    @property
    def widths(self) -> list[int]:
        return [self.layers[0].W.shape[1]] + [layer.W.shape[0] for layer in self.layers]

    @property
    def depth(self) -> int:
        return len(self.layers)

    @property
    def xp(self) -> Any:
        return namespace(W1=self.layers[0].W)

    def params(self) -> tuple[Any, ...]:
        """Weights and biases in layer order (W1, b1, W2, ...), absent biases skipped."""
        return tuple(p for layer in self.layers for p in (layer.W, layer.b) if p is not None)

    def with_params(self, params: Sequence[Any]) -> "Network":
        """Same architecture with new parameters, ordered as :meth:`params` returns them."""
        it = iter(params)
        layers = [
            Dense(next(it), None if layer.b is None else next(it), layer.activation)
            for layer in self.layers
        ]
        return Network(layers)

    def forward(self, x: Any) -> Any:
        """Feed-forward prediction: (batch, d_0) -> (batch, d_L)."""
        xp = check_input(self, x)
        for layer in self.layers:
            x = layer(xp, x)
        return x

    def feedforward_states(self, x: Any) -> list[Any]:
        """Hidden states s_1..s_{L-1} of the feed-forward pass (e = 0), each (batch, d_l)."""
        xp = check_input(self, x)
        states = []
        for layer in self.layers[:-1]:
            x = layer(xp, x)
            states.append(x)
        return states


def check_input(net: Network, x: Any, y: Any = None, **extra: Any) -> Any:
    """Validate x (batch, d_0) and y (batch, d_L) against ``net``; returns the namespace."""
    xp = namespace(x=x, y=y, W1=net.layers[0].W, **extra)
    dtype = net.layers[0].W.dtype
    check_float(xp, "x", x)
    check_shape("x", x, (None, net.widths[0]))
    check_dtype("x", x, dtype)
    if y is not None:
        check_float(xp, "y", y)
        check_shape("y", y, (x.shape[0], net.widths[-1]))
        check_dtype("y", y, dtype)
    return xp


def _check_widths(widths: Sequence[int]) -> list[int]:
    widths = list(widths)
    if len(widths) < 2:
        raise InputError(f"widths needs at least 2 entries (input and output), got {widths}")
    for w in widths:
        if isinstance(w, bool) or not isinstance(w, int) or w <= 0:
            raise InputError(f"widths must be positive integers, got {widths}")
    return widths


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
    """Fully connected network with layer sizes ``widths`` = [d_0, d_1, ..., d_L].

    Weights are drawn on the host (NumPy PCG64 from ``seed``) and moved to ``runtime``,
    so one seed gives the same network on every backend. Biases start at zero.
    Hidden layers use ``activation``; the output layer uses ``output_activation``.
    """
    widths = _check_widths(widths)
    hidden, out = get_activation(activation), get_activation(output_activation)
    weights = host.draw_weights(widths, init, gain, seed)
    layers = []
    for l, W in enumerate(weights):
        b = runtime.asarray(host._np().zeros(W.shape[0])) if bias else None
        act = out if l == len(weights) - 1 else hidden
        layers.append(Dense(runtime.asarray(W), b, act))
    return Network(layers)
