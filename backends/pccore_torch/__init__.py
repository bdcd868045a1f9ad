"""pccore backend plugin "torch": PyTorch tensors on cpu / cuda:N, torch.optim optimizers."""

from __future__ import annotations

import os

from pccore.errors import MissingDependency

try:
    import torch
except ModuleNotFoundError as err:  # pragma: no cover - exercised without torch
    raise MissingDependency("torch", "torch", "backend 'torch'") from err

import numpy as np
from array_api_compat import torch as xp

from pccore.hookspecs import hookimpl
from pccore.loops import python_loop

from .ops import OPS
from pccore_numpy import limit_blas

from .optim import make_optimizer
from .step import CompiledStep

_DTYPES = {"float32": torch.float32, "float64": torch.float64, "int32": torch.int32, "int64": torch.int64}


def _no_grad_loop(body, carry, n, args, until):
    with torch.no_grad():
        return python_loop(body, carry, n, args, until)


class TorchBackend:
    """Backend hooks for PyTorch; registered under the ``pccore.backends`` entry point."""

    name = "torch"

    @hookimpl
    def pccore_namespace(self):
        return xp

    @hookimpl
    def pccore_devices(self):
        cuda = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        return ["cpu"] + cuda

    @hookimpl
    def pccore_default_device(self):
        # PCCORE_TORCH_DEVICE (e.g. "cuda:0") makes unchanged code and tests use a GPU
        return os.environ.get("PCCORE_TORCH_DEVICE", "cpu")

    @hookimpl
    def pccore_dtype(self, name):
        return _DTYPES[name]

    @hookimpl
    def pccore_threads(self, n):
        torch.set_num_threads(n)
        return f"torch intra-op threads: {n}; " + limit_blas(n)

    @hookimpl
    def pccore_asarray(self, obj, device, dtype):
        if isinstance(obj, torch.Tensor):  # a copy: never alias the caller's data
            return obj.detach().to(device=device, dtype=_DTYPES[dtype], copy=True)
        return torch.tensor(np.asarray(obj), dtype=_DTYPES[dtype], device=device)

    @hookimpl
    def pccore_device_name(self, array):
        d = array.device
        return "cpu" if d.type == "cpu" else f"{d.type}:{d.index or 0}"

    @hookimpl
    def pccore_to_numpy(self, array):
        return array.detach().to("cpu", copy=True).numpy()

    @hookimpl
    def pccore_make_optimizer(self, name, hyper):
        return make_optimizer(name, hyper)

    @hookimpl
    def pccore_run_loop(self, body, carry, n, args, until):
        return _no_grad_loop(body, carry, n, args, until)

    @hookimpl
    def pccore_ops(self):
        return OPS

    @hookimpl
    def pccore_compile_step(self, fn):
        return CompiledStep(fn)

    @hookimpl
    def pccore_synchronize(self):
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    @hookimpl
    def pccore_data_parallel(self, device, devices, distributed):
        from .distributed import data_parallel

        return data_parallel(device, devices, distributed)


backend = TorchBackend()
