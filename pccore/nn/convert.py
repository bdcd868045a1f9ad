"""Models in and out of PyTorch and Equinox, through converter plugins.

The core holds no framework code: each framework's converter is an entry point of the
group ``pccore.converters`` (``torch`` in ``pccore_torch.convert``, ``equinox`` in
``pccore_jax.convert``), an object with

- ``to_blocks(model, input_shape) -> (blocks, host_params)``: pccore ops (one per PC
  block) and their parameters as host NumPy arrays, in each op's order;
- ``to_model(structure, host_params, dtype)``: the framework model of a structure (torch
  only; the Equinox converter raises a clear error);
- ``foreign(module, name) -> (fn, params)``: a module as ``fn(params, x)`` on batched
  inputs, for :class:`~pccore.nn.foreign.Foreign`;
- optionally ``default_input_shape(model) -> tuple | None``: the per-sample input shape
  when the model fixes it (e.g. the first layer is a Linear).

``from_torch`` / ``from_equinox`` build the network with ``pccore.network(runtime, blocks,
input_shape, params=host_params)``, so a model imported once runs on every backend.
"""

from __future__ import annotations

from typing import Any

from .. import registry
from ..errors import InputError
from .foreign import Foreign
from .network import Network, _shape, network


def _converter(name: str) -> Any:
    return registry.converter(name)


def _blocks(conv: Any, model: Any, input_shape: Any, what: str) -> tuple[list, tuple, tuple]:
    if input_shape is None:
        default = getattr(conv, "default_input_shape", None)
        input_shape = default(model) if default is not None else None
        if input_shape is None:
            raise InputError(f"{what}: give input_shape, the per-sample input shape (e.g. (1, 28, 28) "
                             "for NCHW images); it cannot be read off this model")
    input_shape = _shape(input_shape)
    blocks, params = conv.to_blocks(model, input_shape)
    return list(blocks), tuple(tuple(block) for block in params), input_shape


def from_torch(module: Any, runtime: Any, input_shape: Any = None) -> Network:
    """A pccore network from a ``torch.nn.Sequential`` (nested Sequentials flattened) of
    Linear, Conv2d, MaxPool2d, AvgPool2d, Flatten and activation modules.

    Every module with weights (Linear, Conv2d) starts a PC block; parameter-free modules
    join the block before them (those before the first weighted one join the first
    block). Weights are copied exactly (cast to the runtime's dtype). ``input_shape`` is
    per sample (NCHW images: (C, H, W)); it may be left out when the first module is a
    Linear. A module that has no pccore op raises ``InputError`` naming it; wrap such
    modules with :func:`foreign_from_torch`."""
    conv = _converter("torch")
    blocks, params, shape = _blocks(conv, module, input_shape, "from_torch")
    return network(runtime, blocks, shape, params=params)


def to_torch(net: Network, dtype: Any = "float64") -> Any:
    """``net`` as a ``torch.nn.Sequential`` of the blocks' modules in order (Residual
    blocks as a small module computing ``act(body(x) + shortcut(x))``), with the
    network's parameters copied, in ``dtype`` ("float64" by default, "float32" or a torch
    dtype). Foreign blocks cannot be exported."""
    if not isinstance(net, Network):
        raise InputError(f"to_torch needs a pccore.Network, got {type(net).__name__}")
    conv = _converter("torch")
    return conv.to_model(net.structure, _host_params(net), dtype)


def from_equinox(model: Any, runtime: Any, input_shape: Any = None) -> Network:
    """A pccore network from an ``equinox.nn.MLP`` (one block per Linear with its
    activation) or a list of Equinox layers as JPC uses them (each element one PC block:
    Linear, Conv2d, MaxPool2d, AvgPool2d, Lambda(activation or jnp.ravel), Identity, or an
    ``equinox.nn.Sequential`` of them). A top-level ``equinox.nn.Sequential`` is grouped as
    ``from_torch`` groups a torch Sequential.

    Equinox layers act on single samples: ``input_shape`` is the per-sample shape
    (default: (in_size,) of an MLP or of a first Linear)."""
    conv = _converter("equinox")
    blocks, params, shape = _blocks(conv, model, input_shape, "from_equinox")
    return network(runtime, blocks, shape, params=params)


def foreign_from_torch(module: Any, name: str | None = None) -> Foreign:
    """A torch module as a :class:`Foreign` block: ``fn(params, x)`` runs the module with
    its parameters (``named_parameters()`` order) replaced by ``params`` via
    ``torch.func.functional_call``; buffers stay in the module. Runs on the torch backend."""
    fn, params = _converter("torch").foreign(module, name)
    return Foreign(fn, params, name=name if name is not None else type(module).__name__)


def foreign_from_equinox(module: Any, name: str | None = None) -> Foreign:
    """An Equinox module as a :class:`Foreign` block: its array leaves are the parameters
    and ``fn(params, x) = jax.vmap(module with params)(x)``. Runs on the jax backend."""
    fn, params = _converter("equinox").foreign(module, name)
    return Foreign(fn, params, name=name if name is not None else type(module).__name__)


def _host_params(net: Network) -> tuple:
    """The network's parameters as host NumPy arrays, per block."""
    from ..runtime import runtime_for

    flat = net.flat_params()
    if not flat:
        return tuple(() for _ in net.params)
    rt = runtime_for(flat[0])
    return tuple(tuple(rt.to_numpy(p) for p in block) for block in net.params)


__all__ = ["foreign_from_equinox", "foreign_from_torch", "from_equinox", "from_torch", "to_torch"]
