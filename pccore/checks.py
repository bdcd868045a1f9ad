"""Early input validation: one framework per call, float dtypes, expected shapes."""

from __future__ import annotations

from typing import Any

import array_api_compat as compat

from .errors import InputError

_FRAMEWORKS = (
    ("numpy", compat.is_numpy_array),
    ("torch", compat.is_torch_array),
    ("jax", compat.is_jax_array),
)


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
    argument is not an array at all.
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
        raise InputError(f"arrays from two frameworks mixed in one call: {parts}")
    return compat.array_namespace(*(a for a in arrays.values() if a is not None))


def check_float(xp: Any, arg: str, a: Any) -> None:
    """Raise if ``a`` is not a real floating-point array."""
    if not xp.isdtype(a.dtype, "real floating"):
        raise InputError(f"{arg} must have a floating-point dtype, got {a.dtype}")


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


def check_positive_int(arg: str, value: Any, minimum: int = 1) -> int:
    """Raise unless ``value`` is an int >= ``minimum``; returns it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{arg} must be an integer >= {minimum}, got {value!r}")
    return value


def check_positive_float(arg: str, value: Any) -> float:
    """Raise unless ``value`` is a real number > 0; returns it as float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise InputError(f"{arg} must be a number > 0, got {value!r}")
    return float(value)


def dtype_name(a: Any) -> str:
    """Runtime dtype name of floating array ``a``: "float64" or "float32"."""
    return "float64" if a.dtype == compat.array_namespace(a).float64 else "float32"
