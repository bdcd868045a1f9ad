"""Runtime: one backend + device + dtype + a pluggy PluginManager of its own."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterable
from typing import Any

import attrs
import pluggy

from . import hookspecs, registry
from .errors import DeviceNotFound, InputError

DTYPES = ("float32", "float64")


@attrs.frozen(eq=False)
class Runtime:
    """Where arrays live and how loops run. Create it with :func:`pccore.runtime`."""

    backend: str
    device: str
    dtype: str
    pm: pluggy.PluginManager = attrs.field(repr=False)
    xp: Any = attrs.field(repr=False)
    threads: int | None = attrs.field(default=None)
    #: data-parallel layout (``pccore.train.parallel.Layout``) or None: one device
    parallel: Any = attrs.field(default=None)
    _kernels: Any = attrs.field(default=None, init=False, repr=False)

    @property
    def kernels(self) -> Any:
        """The backend's :class:`pccore.nn.Kernels` (namespace + conv/pool/autodiff ops)."""
        if self._kernels is None:
            from .nn.kernels import Kernels

            kernels = Kernels(self.backend, self.xp, self.pm.hook.pccore_ops(), self.pm.get_plugin("backend"))
            object.__setattr__(self, "_kernels", kernels)
        return self._kernels

    # ------------------------------------------------------------ host transfer
    def asarray(self, obj: Any, dtype: str | None = None) -> Any:
        """``obj`` (nested lists, NumPy or backend array) as a backend array on this device."""
        return self.pm.hook.pccore_asarray(obj=obj, device=self.device, dtype=dtype or self.dtype)

    def to_numpy(self, array: Any) -> Any:
        """Host NumPy copy of a backend array."""
        return self.pm.hook.pccore_to_numpy(array=array)

    def synchronize(self) -> None:
        """Wait for queued device work (benchmarks call this before reading a clock)."""
        self.pm.hook.pccore_synchronize()

    # ------------------------------------------------------- backend services
    def optimizer(self, name: str, **hyper: Any) -> Any:
        """Backend optimizer ``name`` ("sgd", "momentum", "adam") with ``hyper``-parameters
        (types and ranges checked here, before the backend sees them)."""
        from .checks import check_optimizer

        return self.pm.hook.pccore_make_optimizer(name=name, hyper=check_optimizer(name, hyper))

    def run_loop(self, body: Any, carry: Any, n: int, args: Any, until: Any = None):
        """Run ``body`` ``n`` times (or until ``until``); returns ``(carry, iterations)``."""
        return self.pm.hook.pccore_run_loop(body=body, carry=carry, n=n, args=args, until=until)

    def devices(self) -> list[str]:
        """Device names of this backend on this machine."""
        return list(self.pm.hook.pccore_devices())

    # ---------------------------------------------------------------- plugins
    def register(self, plugin: Any, name: str | None = None) -> Any:
        """Register an observer plugin object; returns it."""
        self.pm.register(plugin, name=name)
        return plugin

    def unregister(self, plugin: Any) -> None:
        """Remove a previously registered observer plugin."""
        self.pm.unregister(plugin)

    def observes(self, hook: str) -> bool:
        """True when a registered plugin implements observer hook ``hook``."""
        return bool(getattr(self.pm.hook, hook).get_hookimpls())

    @property
    def plugins(self) -> list[Any]:
        """Registered observer plugins (the backend itself excluded)."""
        backend = self.pm.get_plugin("backend")
        return [p for p in self.pm.get_plugins() if p is not backend]


def _resolve_device(pm: pluggy.PluginManager, backend: str, device: str | None) -> str:
    available = list(pm.hook.pccore_devices())
    if device is None:
        device = pm.hook.pccore_default_device()
    if not isinstance(device, str):
        device = str(device)
    for candidate in (device, f"{device}:0"):
        if candidate in available:
            return candidate
    raise DeviceNotFound(
        f"device {device!r} is not available on backend {backend!r}; "
        f"available devices: {', '.join(available)}"
    )


def _resolve_plugin(plugin: Any) -> Any:
    if isinstance(plugin, str):
        name, plugin = plugin, registry.load(registry.PLUGINS, plugin, "plugin")
        if inspect.isclass(plugin):
            try:
                inspect.signature(plugin).bind()
            except TypeError as err:
                raise InputError(
                    f"plugin {name!r} needs arguments ({err}); pass an instance, "
                    f"e.g. plugins=[{plugin.__name__}(...)]"
                ) from None
            plugin = plugin()
    return plugin


def runtime(
    backend: str = "numpy",
    device: str | None = None,
    dtype: str = "float32",
    plugins: Iterable[Any] = (),
    threads: int | None = None,
    devices: Any = None,
    distributed: bool = False,
) -> Runtime:
    """Create a Runtime on ``backend`` (see :func:`pccore.backends`).

    ``device`` defaults to the backend's default ("cpu"); ``dtype`` is "float32" or
    "float64"; ``plugins`` are observer plugin objects or names registered under the
    ``pccore.plugins`` entry-point group; ``threads`` limits the backend's CPU intra-op
    threads (None: leave the framework's default). Threads are process-wide: the last
    runtime that sets them wins (JAX's only before its first use).

    Data parallel (see docs/scaling.md): ``devices`` (JAX) is a count, "all" or a list of
    device names to shard each batch over in this process; ``distributed=True`` joins a
    multi-process run (torch: one process per device under torchrun; JAX: multi-host
    through ``jax.distributed.initialize``). NumPy has neither.
    """
    if dtype not in DTYPES:
        raise InputError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if threads is not None and (isinstance(threads, bool) or not hasattr(threads, "__index__") or int(threads) < 1):
        raise InputError(f"threads must be None or an integer >= 1, got {threads!r}")
    impl = registry.load(registry.BACKENDS, backend, "backend")
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(impl, name="backend")
    if threads is not None:
        pm.hook.pccore_threads(n=int(threads))
    layout = _data_parallel(pm, backend, device, devices, distributed)
    dev = _resolve_device(pm, backend, device if layout is None else layout.device)
    pm.hook.pccore_dtype(name=dtype)
    rt = Runtime(backend, dev, dtype, pm, pm.hook.pccore_namespace(), None if threads is None else int(threads),
                 parallel=layout)
    for plugin in plugins:
        rt.register(_resolve_plugin(plugin))
    return rt


def _data_parallel(pm: pluggy.PluginManager, backend: str, device: str | None, devices: Any,
                   distributed: Any) -> Any:
    """The backend's data-parallel layout for ``devices`` / ``distributed``, or None."""
    if not isinstance(distributed, bool):
        raise InputError(f"distributed must be True or False, got {distributed!r}")
    if devices is None and not distributed:
        return None
    layout = pm.hook.pccore_data_parallel(device=device, devices=devices, distributed=distributed)
    if layout is None and (distributed or devices != 1):
        raise InputError(f"backend {backend!r} has no data-parallel training (devices={devices!r}, "
                         f"distributed={distributed}); use 'jax' (devices=N) or 'torch' "
                         "(distributed=True under torchrun)")
    return layout


@functools.lru_cache(maxsize=None)
def default_runtime(backend: str, device: str | None, dtype: str) -> Runtime:
    """Shared plugin-free Runtime used when a call gets arrays but no runtime."""
    return runtime(backend, device=device, dtype=dtype)


def runtime_for(array: Any) -> Runtime:
    """The shared default Runtime for ``array``'s framework, device and dtype."""
    from .checks import dtype_name, framework_of

    backend, dtype = framework_of(array), dtype_name(array)
    rt = default_runtime(backend, None, dtype)
    device = rt.pm.hook.pccore_device_name(array=array)
    return rt if device == rt.device else default_runtime(backend, device, dtype)


def check_runtime(rt: Runtime, arg: str, array: Any) -> None:
    """Raise if ``array`` does not belong to ``rt``'s backend."""
    from .checks import framework_of

    fw = framework_of(array)
    if fw != rt.backend:
        raise InputError(f"{arg} is a {fw} array but the runtime's backend is {rt.backend!r}")
