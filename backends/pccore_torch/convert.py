"""The ``torch`` converter (entry point ``pccore.converters``): ``torch.nn`` modules to
pccore ops and back, and torch modules as Foreign blocks. See ``pccore.nn.convert``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from pccore.errors import InputError
from pccore.nn.activation import GELU, HardTanh, Identity, LeakyReLU, ReLU, Sigmoid, Tanh
from pccore.nn.compose import Residual, Sequential
from pccore.nn.conv import Conv2d
from pccore.nn.foreign import Foreign
from pccore.nn.linear import Linear
from pccore.nn.pool import AvgPool2d, MaxPool2d
from pccore.nn.reshape import Flatten

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
_WEIGHTED = (nn.Linear, nn.Conv2d)


class ResidualModule(nn.Module):
    """``activation(body(x) + shortcut(x))``; the identity shortcut when ``shortcut`` is
    None. What :func:`to_model` makes of a pccore ``Residual`` (and maps back to one)."""

    def __init__(self, body: nn.Module, shortcut: nn.Module | None = None,
                 activation: nn.Module | None = None):
        super().__init__()
        self.body = body
        self.shortcut = shortcut
        self.activation = activation if activation is not None else nn.Identity()

    def forward(self, x):
        short = x if self.shortcut is None else self.shortcut(x)
        return self.activation(self.body(x) + short)


# ------------------------------------------------------------------ torch -> pccore
def _host(t: Any) -> np.ndarray:
    return t.detach().cpu().double().numpy().copy()


def _kind(m: nn.Module) -> str:
    t = type(m)
    return f"{t.__module__}.{t.__qualname__}"


def _unmappable(path: str, m: nn.Module, why: str = "") -> InputError:
    reason = why or "pccore has no op for it"
    return InputError(
        f"module {path!r} ({_kind(m)}) cannot be converted: {reason}. Wrap it (or the part of "
        "the model holding it) as a Foreign block: pccore.nn.foreign_from_torch(module), which "
        "needs the torch backend (pccore.nn.Foreign(fn, params) in general)"
    )


def _flatten(module: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """(path, leaf module) pairs of a Sequential, nested Sequentials flattened."""
    out = []
    for name, child in module.named_children():
        path = f"{prefix}{name}"
        if type(child) is nn.Sequential:
            out.extend(_flatten(child, path + "."))
        else:
            out.append((path, child))
    return out


def _int_pair(value: Any) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, int) else tuple(int(v) for v in value)


def _conv(path: str, m: nn.Conv2d) -> tuple[Conv2d, tuple]:
    if m.padding_mode != "zeros":
        raise _unmappable(path, m, f"padding_mode={m.padding_mode!r} (pccore's Conv2d pads with zeros)")
    padding = m.padding
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0, 0)
        else:  # "same" (stride 1): total d(k-1), torch puts the odd pixel at the end
            totals = [d * (k - 1) for d, k in zip(m.dilation, m.kernel_size)]
            if any(t % 2 for t in totals):
                raise _unmappable(path, m, "padding='same' with an even (dilated) kernel pads "
                                  "asymmetrically, and pccore's Conv2d pads both sides equally")
            padding = tuple(t // 2 for t in totals)
    op = Conv2d(m.out_channels, tuple(m.kernel_size), stride=tuple(m.stride), padding=_int_pair(padding),
                dilation=tuple(m.dilation), groups=m.groups, bias=m.bias is not None)
    params = (_host(m.weight),) + ((_host(m.bias),) if m.bias is not None else ())
    return op, params


def _pool(path: str, m: nn.Module) -> tuple[Any, tuple]:
    if m.ceil_mode:
        raise _unmappable(path, m, "ceil_mode=True (pccore's pools round the output size down)")
    if isinstance(m, nn.MaxPool2d):
        if _int_pair(m.dilation) != (1, 1):
            raise _unmappable(path, m, f"dilation={m.dilation!r} (pccore's MaxPool2d has none)")
        if m.return_indices:
            raise _unmappable(path, m, "return_indices=True")
        cls = MaxPool2d
    else:
        if not m.count_include_pad:
            raise _unmappable(path, m, "count_include_pad=False (pccore's AvgPool2d counts the "
                              "zero padding in the mean)")
        if m.divisor_override is not None:
            raise _unmappable(path, m, f"divisor_override={m.divisor_override!r}")
        cls = AvgPool2d
    stride = m.stride if m.stride is not None else m.kernel_size
    return cls(_int_pair(m.kernel_size), stride=_int_pair(stride), padding=_int_pair(m.padding)), ()


def _activation(path: str, m: nn.Module) -> Any:
    t = type(m)
    if t is nn.Identity:
        return Identity()
    if t is nn.ReLU:
        return ReLU()
    if t is nn.LeakyReLU:
        return LeakyReLU(m.negative_slope)
    if t is nn.Tanh:
        return Tanh()
    if t is nn.Sigmoid:
        return Sigmoid()
    if t in (nn.Hardtanh, nn.ReLU6):
        return HardTanh(m.min_val, m.max_val)
    if t is nn.GELU:
        if m.approximate != "tanh":
            raise _unmappable(path, m, f"nn.GELU(approximate={m.approximate!r}) uses the exact erf "
                              "form, and pccore's GELU is the tanh approximation (the Array API has "
                              "no erf); use nn.GELU(approximate='tanh') if that suits the model")
        return GELU()
    return None


def _op(path: str, m: nn.Module) -> tuple[Any, tuple]:
    """(pccore op, host params) of one torch module."""
    t = type(m)
    if t is nn.Linear:
        params = (_host(m.weight),) + ((_host(m.bias),) if m.bias is not None else ())
        return Linear(m.out_features, bias=m.bias is not None), params
    if t is nn.Conv2d:
        return _conv(path, m)
    if t in (nn.MaxPool2d, nn.AvgPool2d):
        return _pool(path, m)
    if t is nn.Flatten:
        if m.start_dim != 1 or m.end_dim != -1:
            raise _unmappable(path, m, f"start_dim={m.start_dim}, end_dim={m.end_dim} (pccore's "
                              "Flatten merges every per-sample axis: start_dim=1, end_dim=-1)")
        return Flatten(), ()
    if t is ResidualModule:
        return _residual(path, m)
    if t is nn.Sequential:  # inside a Residual
        ops, params = [], []
        for sub_path, sub in _flatten(m, path + "."):
            op, p = _op(sub_path, sub)
            ops.append(op)
            params.extend(p)
        return Sequential(*ops), tuple(params)
    act = _activation(path, m)
    if act is not None:
        return act, ()
    raise _unmappable(path, m)


def _residual(path: str, m: ResidualModule) -> tuple[Residual, tuple]:
    body, pb = _op(f"{path}.body", m.body)
    short, ps = (None, ()) if m.shortcut is None else _op(f"{path}.shortcut", m.shortcut)
    act, _ = _op(f"{path}.activation", m.activation)
    if not isinstance(act, (Identity, ReLU, LeakyReLU, Tanh, Sigmoid, HardTanh, GELU)):
        raise _unmappable(f"{path}.activation", m.activation, "a Residual's activation must be "
                          "an activation module")
    return Residual(body, short, act), tuple(pb) + tuple(ps)


def _weighted(m: nn.Module) -> bool:
    return type(m) in _WEIGHTED or (type(m) is ResidualModule and any(True for _ in m.parameters()))


class TorchConverter:
    """``to_blocks`` / ``to_model`` / ``foreign`` for ``torch.nn`` modules."""

    name = "torch"

    def _leaves(self, model: Any) -> list[tuple[str, nn.Module]]:
        if not isinstance(model, nn.Module):
            raise InputError(f"from_torch needs a torch.nn.Module (an nn.Sequential), got "
                             f"{type(model).__module__}.{type(model).__name__}")
        if type(model) is nn.Sequential:
            leaves = _flatten(model)
            if not leaves:
                raise InputError("from_torch: the nn.Sequential is empty")
            return leaves
        return [(type(model).__name__, model)]

    def default_input_shape(self, model: Any) -> tuple | None:
        leaves = self._leaves(model)
        first = leaves[0][1]
        return (first.in_features,) if type(first) is nn.Linear else None

    def to_blocks(self, model: Any, input_shape: tuple) -> tuple[list, tuple]:
        groups: list[list] = []
        pending: list = []  # parameter-free modules before the first weighted one
        for path, m in self._leaves(model):
            op, params = _op(path, m)
            if _weighted(m):
                groups.append([*pending, (op, params)])
                pending = []
            elif groups:
                groups[-1].append((op, params))
            else:
                pending.append((op, params))
        if pending:  # no weighted module at all: one block
            groups.append(pending)
        blocks = [group[0][0] if len(group) == 1 and isinstance(group[0][0], Residual)
                  else Sequential(*(op for op, _ in group)) for group in groups]
        params = tuple(tuple(p for _, ps in group for p in ps) for group in groups)
        return blocks, params

    # ---------------------------------------------------------- pccore -> torch
    def to_model(self, structure: Any, host_params: tuple, dtype: Any = "float64") -> nn.Sequential:
        if isinstance(dtype, str):
            if dtype not in _DTYPES:
                raise InputError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
            dtype = _DTYPES[dtype]
        modules: list[nn.Module] = []
        for l, (block, params) in enumerate(zip(structure.blocks, host_params)):
            where = f"block {l}"
            mods, _, rest = _modules(block, tuple(structure.in_shape(l)), tuple(params), dtype, where)
            if rest:
                raise InputError(f"block {l} ({block!r}) got {len(params)} parameter arrays, "
                                 f"{len(rest)} too many")
            modules.extend(mods)
        return nn.Sequential(*modules)

    # --------------------------------------------------------------- Foreign
    def foreign(self, module: Any, name: str | None = None) -> tuple[Any, tuple]:
        if not isinstance(module, nn.Module):
            raise InputError(f"foreign_from_torch needs a torch.nn.Module, got {type(module).__name__}")
        named = list(module.named_parameters())
        names = [n for n, _ in named]

        def fn(params, x):
            return torch.func.functional_call(module, dict(zip(names, params)), (x,))

        fn.__name__ = name or type(module).__name__
        return fn, tuple(p.detach() for _, p in named)


def _take(params: tuple, n: int, where: str) -> tuple[tuple, tuple]:
    if len(params) < n:
        raise InputError(f"{where}: too few parameter arrays")
    return params[:n], params[n:]


def _tensor(a: Any, dtype: Any) -> nn.Parameter:
    return nn.Parameter(torch.tensor(np.asarray(a), dtype=dtype))


def _modules(op: Any, shape: tuple, params: tuple, dtype: Any, where: str) -> tuple[list, tuple, tuple]:
    """(torch modules of ``op`` for input ``shape``, output shape, unused params)."""
    out_shape = op.out_shape(shape)
    if isinstance(op, Sequential):
        mods = []
        for sub in op.ops:
            m, shape, params = _modules(sub, shape, params, dtype, where)
            mods.extend(m)
        return mods, shape, params
    if isinstance(op, Residual):
        pb, params = _take(params, op.body.n_params, where)
        body, _, _ = _modules(op.body, shape, pb, dtype, where)
        short = None
        if op.shortcut is not None:
            ps, params = _take(params, op.shortcut.n_params, where)
            short = nn.Sequential(*_modules(op.shortcut, shape, ps, dtype, where)[0])
        act = _modules(op.activation, out_shape, (), dtype, where)[0][0]
        return [ResidualModule(nn.Sequential(*body), short, act)], out_shape, params
    if isinstance(op, Linear):
        p, params = _take(params, op.n_params, where)
        m = nn.Linear(shape[0], op.out_features, bias=op.bias, dtype=dtype)
    elif isinstance(op, Conv2d):
        p, params = _take(params, op.n_params, where)
        m = nn.Conv2d(shape[0], op.out_channels, op.kernel_size, stride=op.stride, padding=op.padding,
                      dilation=op.dilation, groups=op.groups, bias=op.bias, dtype=dtype)
    elif isinstance(op, (MaxPool2d, AvgPool2d)):
        cls = nn.MaxPool2d if isinstance(op, MaxPool2d) else nn.AvgPool2d
        return [cls(op.kernel_size, stride=op.stride, padding=op.padding)], out_shape, params
    elif isinstance(op, Flatten):
        return [nn.Flatten()], out_shape, params
    elif isinstance(op, Foreign):
        raise InputError(f"{where}: {op!r} wraps a Python function and cannot be exported to torch; "
                         "export the other blocks and add the module yourself")
    else:
        act = {Identity: nn.Identity, ReLU: nn.ReLU, Tanh: nn.Tanh, Sigmoid: nn.Sigmoid}.get(type(op))
        if act is not None:
            return [act()], out_shape, params
        if isinstance(op, LeakyReLU):
            return [nn.LeakyReLU(op.negative_slope)], out_shape, params
        if isinstance(op, HardTanh):
            return [nn.Hardtanh(op.min_val, op.max_val)], out_shape, params
        if isinstance(op, GELU):
            return [nn.GELU(approximate="tanh")], out_shape, params
        raise InputError(f"{where}: {op!r} ({type(op).__name__}) has no torch module")
    with torch.no_grad():
        m.weight = _tensor(p[0], dtype)
        if op.bias:
            m.bias = _tensor(p[1], dtype)
    return [m], out_shape, params


converter = TorchConverter()
