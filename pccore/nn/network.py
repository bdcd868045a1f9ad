"""Network = static structure + parameters.

A network is a chain of PC blocks l = 0..L-1; block l maps the state s_{l-1} (s_{-1} = x)
to the prediction of s_l and has one state at its output. ``Structure`` (blocks, input
shape, each block's output shape) is hashable and holds no arrays; ``params`` is a tuple
of per-block tuples of arrays. Initial weights are drawn on the host from ``seed`` and
moved to the runtime, so one seed gives the same network on every backend.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import attrs

from .. import host
from ..checks import check_dtype, check_float, check_shape, check_untracked, is_real, namespace
from ..errors import InputError
from .compose import as_op, resolve
from .kernels import Kernels
from .op import Op, ShapeError, describe

Params = tuple  # tuple (one per block) of tuples of arrays


@attrs.frozen(cache_hash=True)
class Structure:
    """The static part of a network: ``blocks`` (ops), the per-sample ``input_shape`` and
    ``shapes[l]``, the per-sample shape of block l's output (the state s_l; the last is
    the prediction)."""

    blocks: tuple
    input_shape: tuple
    shapes: tuple

    @property
    def depth(self) -> int:
        """Number of blocks L (hidden states: L - 1)."""
        return len(self.blocks)

    @property
    def output_shape(self) -> tuple:
        return self.shapes[-1]

    def in_shape(self, l: int) -> tuple:
        """Per-sample input shape of block ``l``."""
        return self.input_shape if l == 0 else self.shapes[l - 1]

    def param_shapes(self) -> tuple:
        """Per-block tuples of parameter shapes."""
        return tuple(tuple(b.param_shapes(self.in_shape(l))) for l, b in enumerate(self.blocks))

    def flatten(self, params: Params) -> tuple:
        """All parameter arrays in block order, as one flat tuple."""
        return tuple(p for block in params for p in block)

    def unflatten(self, flat: Sequence[Any]) -> Params:
        """Inverse of :meth:`flatten`."""
        out, i = [], 0
        for b in self.blocks:
            out.append(tuple(flat[i:i + b.n_params]))
            i += b.n_params
        return tuple(out)

    def __repr__(self) -> str:
        lines = [f"  {l}: {b!r} -> {describe(s)}" for l, (b, s) in enumerate(zip(self.blocks, self.shapes))]
        return f"Structure(input {describe(self.input_shape)}\n" + "\n".join(lines) + ")"


@attrs.frozen(eq=False)
class Network:
    """A PC network: ``structure`` (static), ``params`` (arrays) and the backend ``kernels``.
    Build one with :func:`network` or :func:`mlp`."""

    structure: Structure
    params: Params = attrs.field(repr=False)
    kernels: Kernels = attrs.field(repr=False)

    @property
    def depth(self) -> int:
        """Number of blocks L."""
        return self.structure.depth

    @property
    def blocks(self) -> tuple:
        return self.structure.blocks

    @property
    def widths(self) -> list[int]:
        """Units per layer: [size of x, size of s_0, ..., size of the output]."""
        s = self.structure
        return [math.prod(s.input_shape)] + [math.prod(shape) for shape in s.shapes]

    @property
    def xp(self) -> Any:
        return self.kernels.xp

    @property
    def dtype(self) -> Any:
        """dtype of the parameters (None for a network without any)."""
        first = next((p for block in self.params for p in block), None)
        return None if first is None else first.dtype

    def flat_params(self) -> tuple:
        """All parameter arrays in block order (W then b of each layer for an MLP)."""
        return self.structure.flatten(self.params)

    def with_params(self, params: Sequence[Any]) -> "Network":
        """The same structure with new parameters: per-block tuples (as ``params``) or one
        flat sequence (as :meth:`flat_params`); shapes are checked."""
        params = _nested(self.structure, params)
        _check_params(self.structure, params)
        return Network(self.structure, params, self.kernels)

    def forward(self, x: Any) -> Any:
        """Feed-forward prediction: (batch, *input_shape) -> (batch, *output_shape)."""
        check_input(self, x)
        return self.kernels.compiled(forward, self.kernels, self.structure)(self.params, x)

    def feedforward_states(self, x: Any) -> list[Any]:
        """Hidden states s_0..s_{L-2} of the feed-forward pass (zero errors)."""
        check_input(self, x)
        return list(self.kernels.compiled(_hidden, self.kernels, self.structure)(self.params, x))

    def __repr__(self) -> str:
        return f"Network({self.structure!r}, backend={self.kernels.backend!r})"


def forward(k: Kernels, structure: Structure, params: Params, x: Any) -> Any:
    """Prediction of the blocks on x, without checks (for compiled code)."""
    for block, p in zip(structure.blocks, params):
        x = block(k, p, x)
    return x


def _hidden(k: Kernels, structure: Structure, params: Params, x: Any) -> list:
    states = []
    for block, p in zip(structure.blocks[:-1], params):
        x = block(k, p, x)
        states.append(x)
    return states


# -------------------------------------------------------------------- building
def _shape(input_shape: Any) -> tuple:
    if isinstance(input_shape, int) and not isinstance(input_shape, bool):
        input_shape = (input_shape,)
    if not isinstance(input_shape, (list, tuple)) or not input_shape or any(
            isinstance(n, bool) or not hasattr(n, "__index__") or int(n) < 1 for n in input_shape):
        raise InputError(f"input_shape must be a tuple of positive ints (per sample, e.g. (1, 28, 28)), "
                         f"got {input_shape!r}")
    return tuple(int(n) for n in input_shape)


def _resolve_blocks(runtime: Any, blocks: Sequence[Any], input_shape: tuple) -> tuple[list, list]:
    if isinstance(blocks, (str, Op)) or not isinstance(blocks, (list, tuple)) or not blocks:
        raise InputError(f"blocks must be a non-empty list of ops (one per PC layer), got {blocks!r}")
    resolved, shapes, shape = [], [], input_shape
    for l, block in enumerate(blocks):
        op = as_op(block, f"blocks[{l}]")
        try:
            op, out = resolve(op, runtime, shape)
        except ShapeError as err:
            raise ShapeError(f"block {l} ({op!r}) does not fit its input {describe(shape)}: {err}") from None
        op.check(runtime.kernels, f"block {l} ({op!r})")
        resolved.append(op)
        shapes.append(out)
        shape = out
    return resolved, shapes


def network(
    runtime: Any,
    blocks: Sequence[Any],
    input_shape: Any,
    seed: int = 0,
    init: str = "uniform",
    gain: float = 1.0,
    params: Sequence[Any] | None = None,
) -> Network:
    """A network of ``blocks`` (one PC state at each block's output) for per-sample inputs
    of ``input_shape`` (e.g. (784,) or (1, 28, 28); images NCHW).

    Weights are drawn on the host from ``seed`` with ``init`` (uniform: PyTorch's and
    Equinox's default U(+-gain/sqrt(fan_in)); also orthogonal, xavier_uniform,
    kaiming_normal, normal), biases start at zero; ``params`` (per-block tuples) gives
    them instead. Output shapes are inferred; a block that does not fit raises an error
    naming it and both shapes.
    """
    from ..runtime import Runtime

    if not isinstance(runtime, Runtime):
        raise InputError(f"runtime must be a pccore.Runtime (pccore.runtime(...)), got {type(runtime).__name__}")
    if isinstance(seed, bool) or not hasattr(seed, "__index__") or int(seed) < 0:
        raise InputError(f"seed must be an integer >= 0, got {seed!r}")
    if not is_real(gain) or not (gain > 0 and math.isfinite(gain)):
        raise InputError(f"gain must be a number > 0 (finite), got {gain!r}")
    host.check_init(init)
    input_shape = _shape(input_shape)
    resolved, shapes = _resolve_blocks(runtime, blocks, input_shape)
    structure = Structure(tuple(op.static() for op in resolved), input_shape, tuple(shapes))
    if params is None:
        rng, drawn = host.generator(int(seed)), []
        for l, op in enumerate(resolved):
            drawn.append(tuple(runtime.asarray(p) for p in op.init_params(rng, structure.in_shape(l), init, gain)))
        params = tuple(drawn)
    else:
        params = tuple(tuple(runtime.asarray(p) for p in block) for block in _nested(structure, params))
        _check_params(structure, params)
    return Network(structure, params, runtime.kernels)


def _nested(structure: Structure, params: Sequence[Any]) -> Params:
    if not isinstance(params, (list, tuple)):
        raise InputError(f"params must be a tuple of per-block tuples of arrays, got {type(params).__name__}")
    if params and all(hasattr(p, "shape") for p in params):
        total = sum(b.n_params for b in structure.blocks)
        if len(params) != total:
            raise InputError(f"params holds {len(params)} arrays but the network has {total}")
        return structure.unflatten(tuple(params))
    return tuple(tuple(block) if isinstance(block, (list, tuple)) else block for block in params)


def _check_params(structure: Structure, params: Params) -> None:
    expected = structure.param_shapes()
    if len(params) != len(expected):
        raise InputError(f"params must hold one tuple per block ({len(expected)}), got {len(params)}")
    for l, (block, shapes) in enumerate(zip(params, expected)):
        if not isinstance(block, tuple) or len(block) != len(shapes):
            raise InputError(f"params[{l}] must be a tuple of {len(shapes)} arrays for block {l} "
                             f"({structure.blocks[l]!r}), got {block!r:.80}")
        for i, (p, shape) in enumerate(zip(block, shapes)):
            if tuple(getattr(p, "shape", ())) != tuple(shape):
                raise InputError(f"params[{l}][{i}] must have shape {tuple(shape)}, got "
                                 f"{tuple(getattr(p, 'shape', ()))} ({type(p).__name__})")


NO_TARGETS = object()  # check_input's y when the caller needs no targets (forward passes)


def check_input(net: Network, x: Any, y: Any = NO_TARGETS, untracked: bool = False, **extra: Any) -> Any:
    """Validate x (batch, *input_shape) and y (batch, *output_shape) against ``net`` (leave
    y out where no targets are needed; y=None is refused); returns the namespace. A batch
    holds at least one sample. With ``untracked`` (inference runs and training steps, whose
    optimizers update in place) tensors that require grad are refused; the energy functions
    accept them, so autograd can differentiate through them."""
    if not isinstance(net, Network):
        raise InputError(f"net must be a pccore.Network, got {type(net).__name__}")
    if x is None or y is None:
        arg, want = ("x", "inputs (batch, *input_shape)") if x is None else ("y", "targets (batch, *output_shape)")
        raise InputError(f"{arg} must be an array of {want}, got None")
    y = None if y is NO_TARGETS else y
    first = next((p for block in net.params for p in block), None)
    xp = namespace(x=x, y=y, net=first, **extra)
    s = net.structure
    for arg, a in (("x", x), ("y", y), *extra.items()):
        if untracked:
            check_untracked(arg, a)
    check_float(xp, "x", x)
    check_shape("x", x, (None, *s.input_shape), f"the network's input_shape is {describe(s.input_shape)}")
    if x.shape[0] == 0:
        raise InputError(f"x holds an empty batch (shape {tuple(x.shape)}); pass at least one sample")
    if first is not None:
        check_dtype("x", x, first.dtype)
    if y is not None:
        _check_labels(xp, y, x.shape[0], s.output_shape)
        check_float(xp, "y", y)
        check_shape("y", y, (x.shape[0], *s.output_shape), f"the network's output is {describe(s.output_shape)}")
        check_dtype("y", y, x.dtype)
    return xp


def _check_labels(xp: Any, y: Any, batch: int, output_shape: tuple) -> None:
    """Integer class labels (batch,) where one-hot targets (batch, classes) are expected get
    a message saying how to one-hot them."""
    if xp.isdtype(y.dtype, "integral") and tuple(y.shape) == (batch,) and len(output_shape) == 1:
        classes = output_shape[0]
        raise InputError(
            f"y holds integer class labels (shape {tuple(y.shape)}, {y.dtype}) but the network needs "
            f"float targets of shape ({batch}, {classes}): one-hot them first, e.g. "
            f"rt.asarray(numpy.eye({classes})[labels]) (pccore.Dataset targets are already one-hot)"
        )
