"""Where and with what a run was made: package versions, the machine and its load, as
JSON-ready dicts (standard library only)."""

from __future__ import annotations

import os
import platform
import time
from importlib import metadata
from typing import Any

from .. import __version__

FRAMEWORKS = {"numpy": ("numpy",), "torch": ("torch",), "jax": ("jax", "jaxlib")}


def versions(backend: str) -> dict:
    """pccore, Python, NumPy and the backend's framework packages: name -> version."""
    out = {"pccore": __version__, "python": platform.python_version()}
    for name in ("numpy", *FRAMEWORKS.get(backend, ())):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _cpu_model() -> str | None:
    """The CPU's model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine() -> dict:
    """OS, architecture, CPU model and count."""
    return {"system": platform.system(), "release": platform.release(), "machine": platform.machine(),
            "cpu": _cpu_model(), "cpus": os.cpu_count()}


def load() -> list | None:
    """1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def now() -> str:
    """Local time, ISO 8601 to the second, with the UTC offset."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def runtime_info(rt: Any) -> dict:
    """Backend, device and dtype of a Runtime."""
    return {"backend": rt.backend, "device": str(rt.device), "dtype": rt.dtype}
