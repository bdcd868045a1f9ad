"""Models: ops (one concept per module), blocks composed from them, and the network as
static structure + parameters.

- ``op``: the op protocol (forward, VJP, JVP in closed form);
- ``linear``, ``conv``, ``pool``, ``reshape``, ``activation``: the built-in ops;
- ``compose``: ``Sequential`` and ``Residual``; ``foreign``: framework code as a block;
- ``network``: ``Structure``, ``Network`` and ``network()``; ``models``: ``mlp()``, ``cnn()``;
- ``kernels``: the backend ops the Array API lacks; ``serialize``: structures as JSON;
- ``convert``: ``from_torch``, ``to_torch``, ``from_equinox``.
"""

from .activation import (
    ACTIVATIONS, GELU, Activation, HardTanh, Identity, LeakyReLU, ReLU, Sigmoid, Tanh, get_activation,
)
from .compose import Residual, Sequential
from .conv import Conv2d
from .convert import foreign_from_equinox, foreign_from_torch
from .foreign import Foreign
from .kernels import Kernels, MissingOp
from .linear import Linear
from .models import cnn, mlp
from .network import Network, Structure, network
from .op import Op, ShapeError
from .pool import AvgPool2d, MaxPool2d
from .reshape import Flatten

__all__ = [
    "ACTIVATIONS", "Activation", "AvgPool2d", "Conv2d", "Flatten", "Foreign", "GELU", "HardTanh",
    "Identity", "Kernels", "LeakyReLU", "Linear", "MaxPool2d", "MissingOp", "Network", "Op", "ReLU",
    "Residual", "Sequential", "ShapeError", "Sigmoid", "Structure", "Tanh", "foreign_from_equinox",
    "foreign_from_torch", "get_activation", "mlp", "network",
]
