"""The plain Python loop driver shared by eager backends (NumPy, PyTorch)."""

from __future__ import annotations

from typing import Any, Callable


def python_loop(
    body: Callable[[Any, Any], Any], carry: Any, n: int, args: Any, until: Callable | None
) -> tuple[Any, int]:
    """Apply ``body`` up to ``n`` times; before each step stop if ``until(carry, args)``.

    Without ``until`` nothing is read back to the host inside the loop.
    """
    for i in range(n):
        if until is not None and bool(until(carry, args)):
            return carry, i
        carry = body(carry, args)
    return carry, n
