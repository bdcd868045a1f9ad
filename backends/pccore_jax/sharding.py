"""Data parallel on JAX: a one-axis ``jax.sharding.Mesh`` ("data") over the chosen devices.
Batches are sharded along it (``NamedSharding(mesh, P("data"))``), parameters and optimizer
state replicated (``P()``), and the unchanged training step is jitted with those shardings:
XLA sums the per-device weight-gradient sums with the all-reduce it inserts, before the
division by the global batch. Several hosts: every process runs the same program and calls
``jax.distributed.initialize()`` first (``distributed=True`` does it); the mesh then spans
all processes' devices and host data enters through ``jax.make_array_from_callback``."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from pccore.errors import DeviceNotFound, InputError

AXIS = "data"


def _name(d: Any) -> str:
    return f"{d.platform}:{d.id}"


class MeshLayout:
    """The data-parallel layout (``pccore.train.parallel.Layout``) of one JAX program over a
    1-D device mesh: implicit, the step sees the global batch and XLA reduces."""

    explicit = False

    def __init__(self, devices: list):
        self.mesh = Mesh(np.array(devices), (AXIS,))
        self.shards = len(devices)
        self.rank, self.processes = jax.process_index(), jax.process_count()
        mine = [d for d in devices if d.process_index == self.rank]
        if not mine:
            raise InputError("the devices of the mesh include none of this process's devices")
        self._home = mine[0]
        self.device = _name(self._home)
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        self.batched = NamedSharding(self.mesh, PartitionSpec(AXIS))
        self._steps: dict = {}

    def __repr__(self) -> str:
        return f"MeshLayout({self.shards} devices: {', '.join(_name(d) for d in self.mesh.devices.flat)})"

    # ------------------------------------------------------------- placement
    def replicate(self, tree: Any) -> Any:
        return jax.tree_util.tree_map(lambda a: _put(a, self.replicated), tree)

    def shard(self, x: Any) -> Any:
        if x.shape[0] % self.shards:
            raise InputError(f"a batch of {x.shape[0]} rows does not split over {self.shards} devices")
        return _put(x, self.batched)

    def local(self, tree: Any) -> Any:
        """Replicated arrays as this process's copy on its first mesh device (no transfer)."""
        def one(a: Any) -> Any:
            if isinstance(a, jax.Array) and a.is_fully_replicated:
                for s in a.addressable_shards:
                    if s.device == self._home:
                        return s.data
            return jax.device_put(a, self._home)
        return jax.tree_util.tree_map(one, tree)

    # ------------------------------------------------------------ collectives
    def all_sum(self, arrays: tuple) -> tuple:
        """The arrays of one JAX program are global already: their sums cover every shard."""
        return tuple(arrays)

    def all_gather(self, text: str) -> list[str]:
        if self.processes == 1:
            return [text]
        from jax.experimental import multihost_utils

        data = np.zeros(4096, dtype=np.uint8)
        raw = text.encode()[:4096]
        data[:len(raw)] = np.frombuffer(raw, dtype=np.uint8)
        rows = np.asarray(multihost_utils.process_allgather(data))
        return [bytes(r).rstrip(b"\0").decode() for r in rows.reshape(self.processes, -1)]

    def barrier(self) -> None:
        if self.processes > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("pccore")

    # ------------------------------------------------------------ compilation
    def compile_step(self, fn: Any) -> Any:
        """``jax.jit`` of the step with the carry replicated (and donated) and the batch
        sharded; outputs replicated. One compiled step per hashable ``fn``."""
        if fn not in self._steps:
            self._steps[fn] = jax.jit(fn, in_shardings=(self.replicated, self.batched),
                                      out_shardings=self.replicated, donate_argnums=0)
        return self._steps[fn]


def _put(a: Any, sharding: Any) -> Any:
    """``a`` with ``sharding``. Several processes: a process-local array (every process holds
    the same values) enters through the host, each process filling only its own devices;
    a global array is resharded by a compiled identity (no cross-host device transfer)."""
    if isinstance(a, jax.Array):
        if a.sharding == sharding:
            return a
        if sharding.is_fully_addressable:  # one process
            return jax.device_put(a, sharding)
        if not a.is_fully_addressable:
            return _reshard(a, sharding)
    host = np.asarray(a)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def _reshard(a: Any, sharding: Any) -> Any:
    return jax.jit(lambda v: v, out_shardings=sharding)(a)


def _pick(device: str | None, devices: Any) -> list:
    """The mesh devices: ``devices`` as a count (the first N of ``device``'s platform),
    "all", or a list of names like ["gpu:0", "gpu:1"]."""
    if device is None and isinstance(devices, (list, tuple)) and devices:
        device = devices[0]
    platform = jax.default_backend() if device is None else str(device).split(":")[0]
    try:
        pool = jax.devices(platform)
    except RuntimeError:
        raise DeviceNotFound(f"JAX has no {platform!r} devices on this machine") from None
    if devices == "all":
        return pool
    if isinstance(devices, (list, tuple)):
        named = {_name(d): d for d in pool}
        unknown = [d for d in devices if d not in named]
        if unknown or not devices:
            raise InputError(f"devices must name {platform} devices ({', '.join(named)}), got {list(devices)}")
        return [named[d] for d in devices]
    if isinstance(devices, bool) or not hasattr(devices, "__index__") or int(devices) < 1:
        raise InputError(f"devices must be a count >= 1, 'all' or a list of device names, got {devices!r}")
    n = int(devices)
    if n > len(pool):
        hint = (" (on CPU set XLA_FLAGS=--xla_force_host_platform_device_count=N before JAX starts)"
                if platform == "cpu" else "")
        raise DeviceNotFound(f"devices={n} but JAX sees {len(pool)} {platform} device(s){hint}")
    return pool[:n]


def data_parallel(device: str | None, devices: Any, distributed: bool) -> MeshLayout:
    """The layout for ``pccore.runtime("jax", devices=..., distributed=...)``."""
    if distributed:
        if not jax.distributed.is_initialized():
            jax.distributed.initialize()  # cluster settings from the environment (TPU, SLURM, MPI)
        devices = "all" if devices is None else devices
    return MeshLayout(_pick(device, devices))
