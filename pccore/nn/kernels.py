"""Kernels: the Array API namespace plus what the standard lacks (convolution, pooling,
autodiff of foreign functions, the backend's loop), as one hashable value handed to every
op and to compiled steps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from ..errors import PCCoreError


class MissingOp(PCCoreError, NotImplementedError):
    """The backend does not supply an op that a block needs."""


@attrs.frozen
class Kernels:
    """``xp`` (Array API namespace), ``ops`` (what ``pccore_ops()`` returned) and ``impl``
    (the backend plugin object) of one backend. Equal for every runtime of a backend, so
    compiled functions share caches."""

    backend: str
    xp: Any = attrs.field(repr=False)
    ops: Any = attrs.field(repr=False)
    impl: Any = attrs.field(default=None, repr=False)

    def compiled(self, fn: Callable, *static: Any) -> Callable:
        """``fn`` with its leading arguments ``static`` (hashable: structure, loss...) bound,
        compiled by the backend (``pccore_compile``: jit on JAX) or as it is on eager ones."""
        bound = Bound(fn, static)
        compile = getattr(self.impl, "pccore_compile", None)
        return (compile(fn=bound) if compile is not None else None) or bound

    def run_loop(self, body: Any, carry: Any, n: int, args: Any, until: Any = None) -> tuple:
        """The backend's loop (``pccore_run_loop``); usable inside compiled steps."""
        return self.impl.pccore_run_loop(body=body, carry=carry, n=n, args=args, until=until)

    def has(self, name: str) -> bool:
        """True when the backend supplies op ``name``."""
        return callable(getattr(self.ops, name, None))

    def require(self, name: str, needed_by: str) -> None:
        """Raise :class:`MissingOp` unless op ``name`` exists (checked when a network is built)."""
        if not self.has(name):
            raise MissingOp(
                f"{needed_by} needs the backend op {name!r}, which the {self.backend!r} backend "
                "does not supply (see pccore_ops in pccore/hookspecs.py)"
                + ("; use the torch or jax backend, which have autodiff" if name in ("vjp", "jvp") else "")
            )

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self.ops, name, None) if name not in ("ops", "impl") else None
        if fn is None:
            raise MissingOp(f"the {self.backend!r} backend does not supply the op {name!r}")
        return fn


@attrs.frozen
class Bound:
    """``fn`` with its leading static arguments bound; hashable, so a backend can compile
    it with those arguments as constants."""

    fn: Callable
    static: tuple

    def __call__(self, *args: Any) -> Any:
        return self.fn(*self.static, *args)


class OpSet:
    """What a backend's ``pccore_ops`` returns: its kernels as attributes. Build one at import
    time (``OPS = OpSet(conv2d=..., ...)``): it hashes by identity, so compiled functions
    keyed on a network's kernels are shared by every runtime of the backend."""

    def __init__(self, name: str, **kernels: Callable):
        self.name = name
        self.__dict__.update(kernels)

    def __repr__(self) -> str:
        return f"OpSet({self.name}: {', '.join(k for k in self.__dict__ if k != 'name')})"
