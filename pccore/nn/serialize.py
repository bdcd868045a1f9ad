"""Structures as plain data (JSON): every op by class name and configuration, so saved
networks and checkpoints record and check the whole model, not only array shapes."""

from __future__ import annotations

import json
from typing import Any

from ..errors import InputError
from .activation import ACTIVATIONS
from .compose import Residual, Sequential
from .conv import Conv2d
from .linear import Linear
from .network import Structure
from .op import Op
from .pool import AvgPool2d, MaxPool2d
from .reshape import Flatten

OPS: dict[str, type] = {cls.__name__: cls for cls in (
    Linear, Conv2d, MaxPool2d, AvgPool2d, Flatten, Sequential, Residual, *ACTIVATIONS.values())}


def op_to_data(op: Op) -> dict:
    """``{"op": class name, **configuration}`` with child ops encoded the same way."""
    name = type(op).__name__
    if name not in OPS:
        raise InputError(f"{op!r} cannot be saved: only the built-in ops can ({', '.join(OPS)})")
    return {"op": name, **{key: _encode(value) for key, value in op.config().items()}}


def _encode(value: Any) -> Any:
    if isinstance(value, Op):
        return op_to_data(value)
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    return value


def op_from_data(data: Any) -> Op:
    """Inverse of :func:`op_to_data`; unknown or malformed entries raise InputError."""
    if not isinstance(data, dict) or data.get("op") not in OPS:
        known = ", ".join(OPS)
        raise InputError(f"unknown op {data.get('op') if isinstance(data, dict) else data!r} in a saved "
                         f"structure; known ops: {known}")
    config = {k: v for k, v in data.items() if k != "op"}
    try:
        if data["op"] == "Sequential":
            return Sequential(*(op_from_data(op) for op in config["ops"]))
        if data["op"] == "Residual":
            short = config.get("shortcut")
            return Residual(op_from_data(config["body"]), None if short is None else op_from_data(short),
                            op_from_data(config["activation"]))
        return OPS[data["op"]](**config)
    except (TypeError, KeyError) as err:
        raise InputError(f"malformed {data['op']} entry in a saved structure: {err}") from None


def structure_to_json(structure: Structure) -> str:
    """The structure as a JSON text (blocks, input shape, output shapes)."""
    return json.dumps({
        "input_shape": list(structure.input_shape),
        "shapes": [list(s) for s in structure.shapes],
        "blocks": [op_to_data(b) for b in structure.blocks],
    }, sort_keys=True)


def structure_from_json(text: str) -> tuple[list[Op], tuple, tuple]:
    """(blocks, input_shape, shapes) from :func:`structure_to_json`'s text."""
    try:
        data = json.loads(text)
        blocks = [op_from_data(b) for b in data["blocks"]]
        return blocks, tuple(data["input_shape"]), tuple(tuple(s) for s in data["shapes"])
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(f"the saved structure is not valid: {err}") from None
