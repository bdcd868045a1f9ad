"""Data parallel on PyTorch: one process per device under ``torch.distributed`` (gloo on
CPU, NCCL on CUDA), started by ``torchrun`` (or any launcher setting RANK, WORLD_SIZE,
MASTER_ADDR, MASTER_PORT; LOCAL_RANK picks the GPU). Every rank holds the whole model and
data, takes its contiguous slice of each global batch, and sums its weight-gradient, loss
and energy sums with the other ranks in one ``all_reduce(SUM)`` of a flat buffer per step,
before the division by the global batch. Steps run under ``no_grad`` (no CUDA graphs)."""

from __future__ import annotations

import atexit
import os
from typing import Any

import torch
import torch.distributed as dist

from pccore.errors import InputError

from .step import NoGradStep

_LAUNCH = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class ProcessGroupLayout:
    """The data-parallel layout (``pccore.train.parallel.Layout``) of one torch.distributed
    rank: explicit, a step sees only this rank's shard and all-reduces its sums."""

    explicit = True

    def __init__(self, device: str, owned: bool):
        self.device, self._owned = device, owned
        self.rank, self.processes = dist.get_rank(), dist.get_world_size()
        self.shards = self.processes
        if owned:
            atexit.register(self.close)

    def __repr__(self) -> str:
        return f"ProcessGroupLayout(rank {self.rank} of {self.processes}, {dist.get_backend()} on {self.device})"

    # ------------------------------------------------------------- placement
    def replicate(self, tree: Any) -> Any:
        return tree

    def local(self, tree: Any) -> Any:
        return tree

    def shard(self, x: Any) -> Any:
        n = x.shape[0]
        if n % self.shards:
            raise InputError(f"a batch of {n} rows does not split over {self.shards} ranks")
        size = n // self.shards
        return x[self.rank * size:(self.rank + 1) * size]

    # ------------------------------------------------------------ collectives
    def all_sum(self, arrays: tuple) -> tuple:
        """One ``all_reduce(SUM)`` of the arrays flattened into a single buffer."""
        arrays = tuple(arrays)
        if not arrays:
            return ()
        dtypes = {a.dtype for a in arrays}
        if len(dtypes) != 1:
            raise InputError(f"all_sum needs arrays of one dtype, got {sorted(map(str, dtypes))}")
        buffer = torch.cat([a.reshape(-1) for a in arrays])
        dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
        out, i = [], 0
        for a in arrays:
            out.append(buffer[i:i + a.numel()].reshape(a.shape))
            i += a.numel()
        return tuple(out)

    def all_gather(self, text: str) -> list[str]:
        out: list = [None] * self.processes
        dist.all_gather_object(out, text)
        return [str(t) for t in out]

    def barrier(self) -> None:
        dist.barrier()

    def close(self) -> None:
        """Destroy the process group this layout started (at exit)."""
        if self._owned and dist.is_initialized():
            dist.destroy_process_group()
        self._owned = False

    # ------------------------------------------------------------ compilation
    def compile_step(self, fn: Any) -> Any:
        return NoGradStep(fn)


def _device(device: str | None) -> str:
    if device is not None:
        return str(device)
    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0)) % torch.cuda.device_count()}"
    return "cpu"


def data_parallel(device: str | None, devices: Any, distributed: bool) -> ProcessGroupLayout | None:
    """The layout for ``pccore.runtime("torch", distributed=True)``: joins the default process
    group (starting it from the launcher's environment when it does not exist yet)."""
    if devices is not None and devices != 1:
        raise InputError(
            f"devices={devices!r}: torch trains on several devices with one process per device: "
            "launch `torchrun --nproc-per-node N ...` and use pccore.runtime('torch', distributed=True) "
            "(`pccore train` detects torchrun by itself)")
    if not distributed:
        return None
    if not dist.is_available():
        raise InputError("this PyTorch build has no torch.distributed")
    if dist.is_initialized():
        return ProcessGroupLayout(_device(device), owned=False)
    missing = [v for v in _LAUNCH if v not in os.environ]
    if missing:
        raise InputError(
            f"distributed=True needs a launcher's environment ({', '.join(missing)} not set): run "
            "`torchrun --nproc-per-node N script.py` (or `torchrun ... -m pccore train ...`), or call "
            "torch.distributed.init_process_group() before pccore.runtime")
    name = _device(device)
    cuda = name.startswith("cuda")
    if cuda:
        torch.cuda.set_device(torch.device(name))
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    return ProcessGroupLayout(name, owned=True)
