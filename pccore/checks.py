"""Early input validation: one framework per call, float dtypes, expected shapes, numbers
of the right type and range, finite data, writable folders and optimizer settings.

Every message names the argument, what was expected and what was got."""

from __future__ import annotations

import math
import numbers
import operator
import os
import tempfile
from pathlib import Path
from typing import Any

import array_api_compat as compat

from .errors import InputError

_FRAMEWORKS = (
    ("numpy", compat.is_numpy_array),
    ("torch", compat.is_torch_array),
    ("jax", compat.is_jax_array),
)

MAX_ITERS = 2**31 - 1  # loop counts travel as int32 on the device (JAX's default integer)


def framework_of(array: Any) -> str:
    """Name of the framework owning ``array`` ("numpy", "torch", "jax", or the namespace)."""
    for name, test in _FRAMEWORKS:
        if test(array):
            return name
    try:
        return compat.array_namespace(array).__name__
    except TypeError:
        return type(array).__name__


def namespace(**arrays: Any) -> Any:
    """Array API namespace shared by ``arrays`` (keyword = argument name).

    Raises InputError naming the arguments when arrays come from two frameworks or an
    argument is not an array at all; the message says how to convert them.
    """
    owners: dict[str, list[str]] = {}
    for arg, a in arrays.items():
        if a is None:
            continue
        if not compat.is_array_api_obj(a):
            raise InputError(f"{arg} must be an array, got {type(a).__name__}")
        owners.setdefault(framework_of(a), []).append(arg)
    if len(owners) > 1:
        parts = "; ".join(f"{', '.join(args)} from {fw}" for fw, args in owners.items())
        raise InputError(f"arrays from two frameworks mixed in one call: {parts}; convert them with "
                         "rt.asarray(...) on the network's runtime rt (or pass runtime=rt where a "
                         "function takes one: it converts x and y itself)")
    return compat.array_namespace(*(a for a in arrays.values() if a is not None))


def adopt(rt: Any, like: Any, **arrays: Any) -> list:
    """``arrays`` (keyword = argument name) as arrays of runtime ``rt``: an array of another
    framework (e.g. NumPy data for a torch network) is converted with ``rt.asarray`` to the
    dtype of ``like`` (the network's first parameter), when ``like`` lives on ``rt``'s backend.
    Anything else is returned unchanged for the usual checks to judge."""
    if like is None or framework_of(like) != rt.backend:
        return list(arrays.values())
    out = []
    for a in arrays.values():
        if a is not None and compat.is_array_api_obj(a) and framework_of(a) != rt.backend:
            a = rt.asarray(a, dtype=dtype_name(like))
        out.append(a)
    return out


def check_float(xp: Any, arg: str, a: Any) -> None:
    """Raise if ``a`` is not a real floating-point array."""
    if not xp.isdtype(a.dtype, "real floating"):
        raise InputError(f"{arg} must have a floating-point dtype, got {a.dtype}")


def check_untracked(arg: str, a: Any) -> None:
    """Raise if ``a`` is a tensor recorded by an autograd graph (torch ``requires_grad``):
    pccore computes its gradients in closed form and would only drag the graph along."""
    if getattr(a, "requires_grad", False) is True:
        raise InputError(f"{arg} is a tensor that requires grad (part of an autograd graph); pccore "
                         f"computes its gradients itself: pass {arg}.detach()")


def check_dtype(arg: str, a: Any, dtype: Any) -> None:
    """Raise if ``a``'s dtype differs from the network's ``dtype`` (torch would fail later
    with a bare RuntimeError, NumPy and JAX would silently promote)."""
    if a.dtype != dtype:
        raise InputError(
            f"{arg} has dtype {a.dtype} but the network's weights are {dtype}; "
            "create both on one runtime (rt.asarray)"
        )


def check_shape(arg: str, a: Any, expected: tuple, hint: str | None = None) -> None:
    """Raise if ``a.shape`` differs from ``expected`` (``None`` entries match anything);
    ``hint`` is appended to the message."""
    shape = tuple(a.shape)
    ok = len(shape) == len(expected) and all(e is None or e == s for e, s in zip(expected, shape))
    if not ok:
        want = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
        raise InputError(f"{arg} must have shape {want}, got {shape}" + (f" ({hint})" if hint else ""))


def check_finite(arg: str, a: Any, hint: str = "") -> None:
    """Raise if array ``a`` holds NaN or inf, saying how many entries and the first one's
    index (one host read; call it where a host read happens anyway or once per run)."""
    xp = compat.array_namespace(a)
    bad = ~xp.isfinite(a)
    count = int(xp.sum(xp.astype(bad, xp.int64)))
    if count:
        first = int(xp.argmax(xp.astype(xp.reshape(bad, (-1,)), xp.int8)))
        where = tuple(int(i) for i in _unravel(first, tuple(a.shape)))
        raise InputError(f"{arg} holds {count} non-finite value{'s' if count > 1 else ''} (NaN or inf), "
                         f"the first at index {where}" + (f"; {hint}" if hint else ""))


def _unravel(flat: int, shape: tuple) -> list[int]:
    index = []
    for n in reversed(shape):
        flat, i = divmod(flat, n) if n else (flat, 0)
        index.append(i)
    return index[::-1]


# ------------------------------------------------------------------ numbers
def is_integer(value: Any) -> bool:
    """True for Python and NumPy integers (``numbers.Integral``), not for bools."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(arg: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as a Python int: an int or NumPy integer (not a bool, float or string) in
    [``minimum``, ``maximum``]."""
    if not is_integer(value):
        raise InputError(f"{arg} must be an integer{_range(minimum, maximum)}, got {value!r} "
                         f"({type(value).__name__})")
    value = operator.index(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise InputError(f"{arg} must be an integer{_range(minimum, maximum)}, got {value!r}")
    return value


def _range(minimum: Any, maximum: Any) -> str:
    if minimum is not None and maximum is not None:
        return f" in [{minimum}, {maximum}]"
    if minimum is not None:
        return f" >= {minimum}"
    return "" if maximum is None else f" <= {maximum}"


def check_positive_int(arg: str, value: Any, minimum: int = 1, maximum: int | None = None) -> int:
    """Raise unless ``value`` is an integer (Python or NumPy) >= ``minimum`` (and <=
    ``maximum``); returns it as a Python int."""
    return check_int(arg, value, minimum, maximum)


def check_iters(arg: str, value: Any) -> int:
    """An iteration count: an integer >= 1 and at most MAX_ITERS (device loops count in int32,
    a larger count would overflow on JAX)."""
    value = check_int(arg, value, 1)
    if value > MAX_ITERS:
        raise InputError(f"{arg} must be at most {MAX_ITERS} (device loops count in int32), got {value}")
    return value


def is_real(value: Any) -> bool:
    """True for Python and NumPy real numbers (not bools, strings or arrays)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_number(arg: str, value: Any, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a float: a finite real number (Python or NumPy) within the bounds
    (``low_open``/``high_open``: the bound itself is excluded)."""
    lo = "" if low is None else (f"> {low:g}" if low_open else f">= {low:g}")
    hi = "" if high is None else (f"< {high:g}" if high_open else f"<= {high:g}")
    bounds = " and ".join(p for p in (lo, hi) if p)
    want = f"a number {bounds} (finite)" if bounds else "a finite number"
    if not is_real(value):
        raise InputError(f"{arg} must be {want}, got {value!r} ({type(value).__name__})")
    x = float(value)
    ok = math.isfinite(x)
    if ok and low is not None:
        ok = x > low if low_open else x >= low
    if ok and high is not None:
        ok = x < high if high_open else x <= high
    if not ok:
        raise InputError(f"{arg} must be {want}, got {value!r}")
    return x


def check_positive_float(arg: str, value: Any) -> float:
    """Raise unless ``value`` is a finite real number > 0 (Python or NumPy); returns it as
    float."""
    return check_number(arg, value, low=0.0, low_open=True)


def check_bool(arg: str, value: Any) -> bool:
    """``value`` must be True or False (not 0/1 or a string)."""
    if not isinstance(value, bool):
        raise InputError(f"{arg} must be True or False, got {value!r}")
    return value


# ------------------------------------------------------------- optimizers
# The hyper-parameters of the built-in optimizers and their valid ranges (the core checks
# them once, before any backend builds an optimizer).
HYPER_RANGES = {
    "lr": dict(low=0.0, low_open=True),
    "momentum": dict(low=0.0, high=1.0, high_open=True),
    "b1": dict(low=0.0, high=1.0, high_open=True),
    "b2": dict(low=0.0, high=1.0, high_open=True),
    "eps": dict(low=0.0, low_open=True),
}
OPTIMIZERS = {"sgd": ("lr",), "momentum": ("lr", "momentum"), "adam": ("lr", "b1", "b2", "eps")}


def check_optimizer(name: Any, hyper: dict) -> dict:
    """Validate an optimizer ``name`` and its ``hyper``-parameters (types and ranges: lr > 0,
    momentum, b1, b2 in [0, 1), eps > 0, all finite); returns them as floats. Unknown
    names of third-party backends pass through for the backend to judge."""
    if not isinstance(name, str):
        raise InputError(f"optimizer must be a name ({', '.join(OPTIMIZERS)}), got {name!r}")
    known = OPTIMIZERS.get(name)
    if known is not None:
        unknown = sorted(set(hyper) - set(known))
        if unknown:
            raise InputError(f"optimizer {name!r} got unknown hyper-parameters {unknown}; "
                             f"it takes {sorted(known)}")
    out = dict(hyper)
    for key, value in hyper.items():
        if key in HYPER_RANGES:
            out[key] = check_number("lr" if key == "lr" else f"{key} ({name} optimizer)", value, **HYPER_RANGES[key])
    return out


# ------------------------------------------------------------------ files
def check_writable(arg: str, folder: str | os.PathLike) -> Path:
    """Make sure files can be written in ``folder`` (created when missing) before any long
    work starts: creates and removes a temporary file there. Raises InputError naming
    ``arg``, the folder and the reason."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{arg}: {str(folder)!r} exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder, prefix=".pccore-write-test."):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise InputError(f"{arg}: cannot write to folder {str(folder)!r} ({reason}); "
                         "choose a writable folder") from None
    return folder


def dtype_name(a: Any) -> str:
    """Runtime dtype name of floating array ``a``: "float64" or "float32"."""
    return "float64" if a.dtype == compat.array_namespace(a).float64 else "float32"
