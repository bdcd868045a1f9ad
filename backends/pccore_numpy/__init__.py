"""pccore backend plugin "numpy": NumPy arrays on the CPU, Array API optimizers."""

from __future__ import annotations

import numpy as np
from array_api_compat import numpy as xp

from pccore.hookspecs import hookimpl
from pccore.loops import python_loop

from .ops import OPS
from .optim import make_optimizer


def limit_blas(n: int) -> str:
    """Limit BLAS/OpenMP thread pools of the process to ``n`` (through threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return "threadpoolctl not installed: BLAS threads unchanged"
    threadpool_limits(limits=n)
    return f"BLAS/OpenMP threads: {n}"


class NumpyBackend:
    """Backend hooks for NumPy; registered under the ``pccore.backends`` entry point."""

    name = "numpy"

    @hookimpl
    def pccore_namespace(self):
        return xp

    @hookimpl
    def pccore_devices(self):
        return ["cpu"]

    @hookimpl
    def pccore_default_device(self):
        return "cpu"

    @hookimpl
    def pccore_dtype(self, name):
        return np.dtype(name)

    @hookimpl
    def pccore_threads(self, n):
        return limit_blas(n)

    @hookimpl
    def pccore_asarray(self, obj, device, dtype):
        return np.array(obj, dtype=dtype, copy=True)  # never alias the caller's data

    @hookimpl
    def pccore_device_name(self, array):
        return "cpu"

    @hookimpl
    def pccore_to_numpy(self, array):
        return np.array(array, copy=True)

    @hookimpl
    def pccore_make_optimizer(self, name, hyper):
        return make_optimizer(name, hyper)

    @hookimpl
    def pccore_run_loop(self, body, carry, n, args, until):
        return python_loop(body, carry, n, args, until)

    @hookimpl
    def pccore_ops(self):
        return OPS


backend = NumpyBackend()
