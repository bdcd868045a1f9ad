"""The ``equinox`` converter (entry point ``pccore.converters``): Equinox models to pccore
ops, and Equinox modules as Foreign blocks. See ``pccore.nn.convert``.

Activations are recognised by identity (``jax.nn.relu`` is ``jax.nn.relu``), never by
running them: an unknown callable is refused with a hint to use a Foreign block."""

from __future__ import annotations

import functools
from typing import Any

from pccore.errors import InputError, MissingDependency

try:
    import equinox as eqx
except ModuleNotFoundError as err:  # pragma: no cover - exercised without equinox
    raise MissingDependency("equinox", "jax", "converter 'equinox'") from err

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from pccore.nn.activation import GELU, Activation, HardTanh, Identity, LeakyReLU, ReLU, Sigmoid, Tanh
from pccore.nn.compose import Sequential
from pccore.nn.conv import Conv2d
from pccore.nn.linear import Linear
from pccore.nn.op import describe
from pccore.nn.pool import AvgPool2d, MaxPool2d
from pccore.nn.reshape import Flatten

_SIMPLE = {  # callables taking no options
    id(jax.nn.relu): ReLU,
    id(jax.nn.tanh): Tanh,
    id(jnp.tanh): Tanh,
    id(lax.tanh): Tanh,
    id(jax.nn.sigmoid): Sigmoid,
    id(jax.nn.hard_tanh): HardTanh,
}
_IDENTITIES = {id(f) for f in (getattr(jax.nn, "identity", None),) if f is not None}
_FLATTEN = {id(jnp.ravel)}
_IDENTITY_CODE = (lambda x: x).__code__


def _equinox_identity() -> Any:
    """Equinox's default ``final_activation`` of ``MLP`` (``lambda x: x`` in 0.13)."""
    try:
        from equinox.nn import _mlp
    except ImportError:  # pragma: no cover - private layout changed
        return None
    return getattr(_mlp, "_identity", None)


_EQX_IDENTITY = _equinox_identity()
if _EQX_IDENTITY is not None:
    _IDENTITIES.add(id(_EQX_IDENTITY))


def _is_identity_lambda(fn: Any) -> bool:
    """True for a plain ``lambda x: x`` (or ``def f(x): return x``): one positional
    argument returned unchanged, judged by the bytecode, not by calling it."""
    code = getattr(fn, "__code__", None)
    if code is None or getattr(fn, "__defaults__", None) or getattr(fn, "__kwdefaults__", None):
        return False
    ref = _IDENTITY_CODE
    return (code.co_code == ref.co_code and code.co_argcount == 1 and code.co_kwonlyargcount == 0
            and code.co_posonlyargcount == 0 and (code.co_flags & 0x0C) == 0)


def _name(fn: Any) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if name is None:
        wrapped = getattr(fn, "__wrapped__", None)
        name = getattr(wrapped, "__qualname__", None) if wrapped is not None else None
    return f"{getattr(fn, '__module__', '') or ''}.{name}".lstrip(".") if name else repr(fn)


def _unknown(where: str, fn: Any, why: str = "") -> InputError:
    reason = why or ("not a recognised activation (recognised: jax.nn.relu, jax.nn.tanh / jnp.tanh, "
                     "jax.nn.sigmoid, jax.nn.gelu (approximate=True), jax.nn.leaky_relu, "
                     "jax.nn.hard_tanh, jax.nn.relu6, jax.nn.identity, lambda x: x, and jnp.ravel "
                     "as Flatten)")
    return InputError(
        f"{where}: {_name(fn)} cannot be converted: {reason}. Wrap the layer as a Foreign block: "
        "pccore.nn.foreign_from_equinox(layer), which needs the jax backend "
        "(pccore.nn.Foreign(fn, params) in general)"
    )


def _function_op(fn: Any, where: str, flatten_ok: bool = True) -> Any:
    """The pccore op of a function (activation, identity or jnp.ravel), or an error."""
    if isinstance(fn, eqx.nn.Lambda):
        return _function_op(fn.fn, where, flatten_ok)
    if isinstance(fn, eqx.nn.Identity):
        return Identity()
    kwargs: dict = {}
    if isinstance(fn, functools.partial):
        if fn.args:
            raise _unknown(where, fn, "a functools.partial with positional arguments")
        kwargs = dict(fn.keywords)
        fn = fn.func
    if id(fn) in _SIMPLE and not kwargs:
        return _SIMPLE[id(fn)]()
    if id(fn) in _IDENTITIES or _is_identity_lambda(fn):
        if kwargs:
            raise _unknown(where, fn, f"unexpected options {kwargs}")
        return Identity()
    if fn is jax.nn.gelu:
        if not kwargs.pop("approximate", True):
            raise _unknown(where, fn, "jax.nn.gelu(approximate=False) is the exact erf form, and "
                           "pccore's GELU is the tanh approximation (jax.nn.gelu's default; the Array "
                           "API has no erf)")
        if not kwargs:
            return GELU()
    elif fn is jax.nn.leaky_relu:
        slope = kwargs.pop("negative_slope", 0.01)
        if not kwargs:
            return LeakyReLU(float(slope))
    elif fn is getattr(jax.nn, "relu6", None) and not kwargs:
        return HardTanh(0.0, 6.0)
    elif id(fn) in _FLATTEN and not kwargs:
        if not flatten_ok:
            raise _unknown(where, fn, "jnp.ravel is not an activation")
        return Flatten()
    if kwargs:
        raise _unknown(where, fn, f"unexpected options {kwargs}")
    raise _unknown(where, fn)


def _host(a: Any) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).copy()


def _pairs(value: Any, where: str, what: str) -> tuple[int, int]:
    """Symmetric (lo, hi) padding pairs as one int per axis, or an error."""
    out = []
    for pair in value:
        lo, hi = (pair, pair) if isinstance(pair, int) else (int(pair[0]), int(pair[1]))
        if lo != hi:
            raise InputError(f"{where}: {what} padding {tuple(value)!r} is asymmetric, and pccore pads "
                             "both sides of an axis equally; use symmetric padding or a Foreign block "
                             "(pccore.nn.foreign_from_equinox)")
        out.append(lo)
    return tuple(out)


def _conv(m: Any, shape: tuple, where: str) -> tuple[Conv2d, tuple]:
    if m.padding_mode != "ZEROS":
        raise InputError(f"{where}: Conv2d padding_mode={m.padding_mode!r} cannot be converted (pccore's "
                         "Conv2d pads with zeros); use pccore.nn.foreign_from_equinox(layer)")
    padding = m.padding
    if isinstance(padding, str):
        if len(shape) != 3:
            raise InputError(f"{where}: Conv2d takes (C, H, W) inputs, got {describe(shape)}")
        kernel = tuple(d * (k - 1) + 1 for k, d in zip(m.kernel_size, m.dilation))
        padding = lax.padtype_to_pads(shape[1:], kernel, m.stride, padding)
    padding = _pairs(padding, where, "Conv2d")
    op = Conv2d(m.out_channels, tuple(m.kernel_size), stride=tuple(m.stride), padding=padding,
                dilation=tuple(m.dilation), groups=m.groups, bias=bool(m.use_bias))
    params = (_host(m.weight),)
    if m.use_bias:
        params += (_host(m.bias).reshape(-1),)
    return op, params


def _pool(m: Any, where: str) -> tuple[Any, tuple]:
    name = type(m).__name__
    if m.use_ceil:
        raise InputError(f"{where}: {name}(use_ceil=True) cannot be converted (pccore's pools round "
                         "the output size down); use pccore.nn.foreign_from_equinox(layer)")
    expected = lax.max if isinstance(m, eqx.nn.MaxPool2d) else lax.add
    if m.operation is not expected:
        raise InputError(f"{where}: {name} with a changed reduction cannot be converted")
    cls = MaxPool2d if isinstance(m, eqx.nn.MaxPool2d) else AvgPool2d
    return cls(tuple(m.kernel_size), stride=tuple(m.stride), padding=_pairs(m.padding, where, name)), ()


def _linear(m: Any, where: str) -> tuple[Linear, tuple]:
    if m.in_features == "scalar" or m.out_features == "scalar":
        raise InputError(f"{where}: Linear with 'scalar' in/out features cannot be converted (pccore's "
                         "Linear maps vectors to vectors)")
    params = (_host(m.weight),) + ((_host(m.bias),) if m.use_bias else ())
    return Linear(m.out_features, bias=bool(m.use_bias)), params


def _layer(m: Any, shape: tuple, where: str) -> list[tuple[Any, tuple, bool]]:
    """[(op, host params, weighted)] of one Equinox layer (a Sequential gives several)."""
    t = type(m)
    if isinstance(m, eqx.nn.Sequential) and t is eqx.nn.Sequential:
        out = []
        for i, sub in enumerate(m.layers):
            items = _layer(sub, shape, f"{where}.layers[{i}]")
            for op, _, _ in items:
                shape = op.out_shape(shape)
            out.extend(items)
        return out
    if t is eqx.nn.Linear:
        op, p = _linear(m, where)
        return [(op, p, True)]
    if t is eqx.nn.Conv2d:
        op, p = _conv(m, shape, where)
        return [(op, p, True)]
    if t in (eqx.nn.MaxPool2d, eqx.nn.AvgPool2d):
        try:
            op, p = _pool(m, where)
        except InputError as err:  # e.g. padding over half the window, which pccore refuses
            if str(err).startswith(where):
                raise
            raise InputError(f"{where}: {err}") from None
        return [(op, p, False)]
    if t in (eqx.nn.Lambda, eqx.nn.Identity):
        return [(_function_op(m, where), (), False)]
    if isinstance(m, eqx.Module) or callable(m):
        kind = f"{t.__module__}.{t.__qualname__}"
        raise InputError(f"{where}: layer {kind} cannot be converted (pccore has no op for it). Wrap "
                         "it as a Foreign block: pccore.nn.foreign_from_equinox(layer), which needs "
                         "the jax backend (pccore.nn.Foreign(fn, params) in general)")
    raise InputError(f"{where}: expected an Equinox layer, got {type(m).__name__}")


def _mlp_blocks(m: Any) -> tuple[list, tuple]:
    if m.in_size == "scalar" or m.out_size == "scalar":
        raise InputError("from_equinox: an MLP with in_size or out_size 'scalar' cannot be converted "
                         "(pccore's Linear maps vectors to vectors)")
    layers = []
    for i, layer in enumerate(m.layers):
        if layer.weight.ndim == 3:  # scan=True: the hidden layers stacked
            for j in range(layer.weight.shape[0]):
                layers.append(jax.tree_util.tree_map(lambda a, j=j: a[j] if eqx.is_array(a) else a, layer))
        else:
            layers.append(layer)
    hidden = _function_op(m.activation, "MLP.activation", flatten_ok=False)
    final = _function_op(m.final_activation, "MLP.final_activation", flatten_ok=False)
    blocks, params = [], []
    for i, layer in enumerate(layers):
        op, p = _linear(layer, f"MLP.layers[{i}]")
        blocks.append(Sequential(op, final if i == len(layers) - 1 else hidden))
        params.append(p)
    return blocks, tuple(params)


def _leaves(model: Any) -> list:
    if isinstance(model, (list, tuple)):
        return [leaf for m in model for leaf in _leaves(m)]
    if type(model) is eqx.nn.Sequential:
        return [leaf for m in model.layers for leaf in _leaves(m)]
    return [model]


def _first_linear(model: Any) -> Any:
    """The first Linear, when only shape-keeping activations come before it."""
    for m in _leaves(model):
        if type(m) is eqx.nn.Linear:
            return m
        if type(m) not in (eqx.nn.Lambda, eqx.nn.Identity):
            return None
        try:
            op = _function_op(m, "")
        except InputError:
            return None
        if not isinstance(op, Activation):
            return None
    return None


class EquinoxConverter:
    """``to_blocks`` / ``foreign`` for Equinox models (no ``to_model``)."""

    name = "equinox"

    def default_input_shape(self, model: Any) -> tuple | None:
        if isinstance(model, eqx.nn.MLP):
            return None if model.in_size == "scalar" else (int(model.in_size),)
        first = _first_linear(model)
        return None if first is None or first.in_features == "scalar" else (int(first.in_features),)

    def to_blocks(self, model: Any, input_shape: tuple) -> tuple[list, tuple]:
        if isinstance(model, eqx.nn.MLP):
            return _mlp_blocks(model)
        if isinstance(model, (list, tuple)):
            if not model:
                raise InputError("from_equinox: the list of layers is empty")
            blocks, params, shape = [], [], tuple(input_shape)
            for l, element in enumerate(model):
                items = _layer(element, shape, f"layer {l}")
                ops = [op for op, _, _ in items]
                block = Sequential(*ops)
                shape = block.out_shape(shape)
                blocks.append(block)
                params.append(tuple(p for _, ps, _ in items for p in ps))
            return blocks, tuple(params)
        if type(model) is eqx.nn.Sequential:  # grouped like a torch Sequential
            groups, pending = [], []
            for op, p, weighted in _layer(model, tuple(input_shape), "Sequential"):
                if weighted:
                    groups.append([*pending, (op, p)])
                    pending = []
                elif groups:
                    groups[-1].append((op, p))
                else:
                    pending.append((op, p))
            if pending:
                groups.append(pending)
            return ([Sequential(*(op for op, _ in g)) for g in groups],
                    tuple(tuple(x for _, ps in g for x in ps) for g in groups))
        raise InputError(
            "from_equinox needs an equinox.nn.MLP, an equinox.nn.Sequential or a list of Equinox "
            f"layers (one per PC block, as JPC builds them), got {type(model).__module__}."
            f"{type(model).__name__}; wrap other modules with pccore.nn.foreign_from_equinox"
        )

    def to_model(self, structure: Any, host_params: tuple, dtype: Any = None) -> Any:
        raise InputError("exporting a pccore network to Equinox is not supported; use "
                         "pccore.to_torch, or rebuild the Equinox model and copy net.params")

    def foreign(self, module: Any, name: str | None = None) -> tuple[Any, tuple]:
        if not callable(module):
            raise InputError("foreign_from_equinox needs a callable Equinox module, got "
                             f"{type(module).__name__}")
        params, static = eqx.partition(module, eqx.is_array)
        leaves, treedef = jax.tree_util.tree_flatten(params)

        def fn(p, x):
            return jax.vmap(eqx.combine(jax.tree_util.tree_unflatten(treedef, list(p)), static))(x)

        fn.__name__ = name or type(module).__name__
        return fn, tuple(leaves)


converter = EquinoxConverter()

__all__ = ["EquinoxConverter", "converter"]
