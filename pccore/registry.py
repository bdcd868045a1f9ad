"""Entry-point discovery: backends, observer plugins, datasets, plots and model converters
are found by name."""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

from .errors import MissingDependency, UnknownNameError

BACKENDS = "pccore.backends"
PLUGINS = "pccore.plugins"
DATASETS = "pccore.datasets"
PLOTS = "pccore.plots"
CONVERTERS = "pccore.converters"


def _group(group: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=group)}


def names(group: str) -> list[str]:
    """Sorted names registered under an entry-point ``group``."""
    return sorted(_group(group))


def load(group: str, name: str, kind: str) -> Any:
    """Load entry point ``name`` of ``group``; ``kind`` ("backend", ...) words the error."""
    found = _group(group)
    if not isinstance(name, str) or name not in found:
        raise UnknownNameError(
            f"unknown {kind} {name!r}; installed {kind}s: {', '.join(sorted(found)) or 'none'}"
        )
    try:
        return found[name].load()
    except MissingDependency as err:
        raise MissingDependency(err.package, err.extra, f"{kind} {name!r}") from err


def backends() -> list[str]:
    """Names of the installed backends, e.g. ``["jax", "numpy", "torch"]``.

    A backend is listed when its entry point is registered; one whose framework is
    missing raises ``MissingDependency`` naming the extra when it is selected.
    """
    return names(BACKENDS)


def available_backends() -> list[str]:
    """Installed backends whose framework can actually be imported."""
    ok = []
    for name in backends():
        try:
            load(BACKENDS, name, "backend")
        except MissingDependency:
            continue
        ok.append(name)
    return ok


def converter(name: str) -> Any:
    """Model converter ``name`` ("torch", "equinox"): an object with ``to_blocks``,
    ``to_model`` and ``foreign`` (see ``pccore.nn.convert``). A converter whose framework
    is missing raises ``MissingDependency`` naming the extra."""
    return load(CONVERTERS, name, "converter")
