"""The host side of pccore: NumPy, used only to draw initial weights and read/write files.

Initial weights are drawn here with NumPy's PCG64 from a seed and then handed to the
backend, so one seed gives the same starting network on every backend.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Callable

from .errors import UnknownNameError


def _np():
    import numpy  # host library; imported on first use so `import pccore` stays light

    return numpy


def generator(seed: int) -> Any:
    """NumPy Generator on PCG64 seeded with ``seed``."""
    np = _np()
    return np.random.Generator(np.random.PCG64(seed))


def _orthogonal(rng, fan_out: int, fan_in: int, gain: float):
    np = _np()
    flat = rng.standard_normal((fan_out, fan_in))
    if fan_out < fan_in:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    if fan_out < fan_in:
        q = q.T
    return gain * q


def _xavier_uniform(rng, fan_out: int, fan_in: int, gain: float):
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, size=(fan_out, fan_in))


def _kaiming_normal(rng, fan_out: int, fan_in: int, gain: float):
    return rng.standard_normal((fan_out, fan_in)) * (gain * math.sqrt(2.0 / fan_in))


def _normal(rng, fan_out: int, fan_in: int, gain: float):
    return rng.standard_normal((fan_out, fan_in)) * (gain / math.sqrt(fan_in))


def _uniform(rng, fan_out: int, fan_in: int, gain: float):
    bound = gain / math.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=(fan_out, fan_in))


INITS: dict[str, Callable] = {
    "orthogonal": _orthogonal,  # QR of a Gaussian matrix, sign-fixed, times gain
    "xavier_uniform": _xavier_uniform,  # U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out))
    "kaiming_normal": _kaiming_normal,  # N(0, (gain * sqrt(2 / fan_in))^2)
    "normal": _normal,  # N(0, (gain / sqrt(fan_in))^2)
    "uniform": _uniform,  # U(-b, b), b = gain / sqrt(fan_in) (the PyTorch/Equinox Linear default)
}


def check_init(init: str) -> str:
    """Raise unless ``init`` names a known initialisation."""
    if not isinstance(init, str) or init not in INITS:
        raise UnknownNameError(f"unknown init {init!r}; expected one of {', '.join(INITS)}")
    return init


def draw(init: str, rng: Any, fan_out: int, fan_in: int, gain: float) -> Any:
    """One host float64 (fan_out, fan_in) matrix from ``rng`` with initialisation ``init``."""
    return INITS[check_init(init)](rng, fan_out, fan_in, gain)


def draw_weights(widths: list[int], init: str, gain: float, seed: int) -> list[Any]:
    """Host float64 weight matrices of shape (widths[l+1], widths[l]) for each layer."""
    check_init(init)
    rng = generator(seed)
    return [draw(init, rng, o, i, gain) for i, o in zip(widths[:-1], widths[1:])]


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, inf) as None, so it is valid JSON ("null")
    instead of a crash; arrays (anything with ``tolist``) become lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return json_safe(value.tolist())
    return value


def write_json(path: Any, data: Any) -> None:
    """Write ``json_safe(data)`` to ``path`` atomically (a temporary file beside it, then a rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)
