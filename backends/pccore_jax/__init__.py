"""pccore backend plugin "jax": jax arrays on cpu/gpu/tpu, optax optimizers, compiled loops."""

from __future__ import annotations

from pccore.errors import MissingDependency

try:
    import jax
    import optax  # noqa: F401  (checked here so the error names the extra)
except ModuleNotFoundError as err:  # pragma: no cover - exercised without jax
    raise MissingDependency(err.name or "jax", "jax", "backend 'jax'") from err

import jax.numpy as jnp
import numpy as np

from pccore.hookspecs import hookimpl

from pccore_numpy import limit_blas

from .loop import compiled_loop
from .ops import OPS
from .optim import make_optimizer


_JITTED: dict = {}  # hashable function -> its jax.jit wrapper (one trace cache each)
_STEPS: dict = {}  # hashable training step -> its jax.jit wrapper, the carry donated


def limit_xla(n: int) -> str:
    """One thread for XLA:CPU's Eigen ops when ``n == 1`` (XLA has no thread-count flag);
    only possible before JAX starts its CPU backend."""
    import os
    import warnings

    from jax._src import xla_bridge

    if n != 1:
        return "XLA threads: default (only 1 can be requested)"
    flag = "--xla_cpu_multi_thread_eigen=false"
    if getattr(xla_bridge, "_backends", None):
        if flag not in os.environ.get("XLA_FLAGS", ""):
            warnings.warn("pccore: JAX is already running, so its CPU threads cannot be limited now; "
                          f"set XLA_FLAGS={flag} before the first JAX computation", stacklevel=4)
        return "XLA threads: unchanged (JAX already started)"
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flag).strip()
    return "XLA threads: 1"


def _name(d) -> str:
    return f"{d.platform}:{d.id}"


def _all_devices() -> dict:
    found = {}
    for platform in ("cpu", "gpu", "tpu"):
        try:
            found.update({_name(d): d for d in jax.devices(platform)})
        except RuntimeError:
            continue
    return found


class JaxBackend:
    """Backend hooks for JAX; registered under the ``pccore.backends`` entry point."""

    name = "jax"

    @hookimpl
    def pccore_namespace(self):
        return jnp

    @hookimpl
    def pccore_devices(self):
        return list(_all_devices())

    @hookimpl
    def pccore_default_device(self):
        return _name(jax.devices()[0])

    @hookimpl
    def pccore_dtype(self, name):
        if name == "float64" and not jax.config.jax_enable_x64:
            jax.config.update("jax_enable_x64", True)
        return jnp.dtype(name)

    @hookimpl
    def pccore_threads(self, n):
        return limit_xla(n) + "; " + limit_blas(n)

    @hookimpl
    def pccore_asarray(self, obj, device, dtype):
        self.pccore_dtype(dtype)
        # a copy: jnp.asarray may share an aligned NumPy buffer on CPU, and a later write to
        # the caller's array would then change this (immutable) JAX array
        return jax.device_put(jnp.array(obj, dtype=dtype, copy=True), _all_devices()[device])

    @hookimpl
    def pccore_device_name(self, array):
        return _name(next(iter(array.devices())))

    @hookimpl
    def pccore_to_numpy(self, array):
        return np.array(array, copy=True)

    @hookimpl
    def pccore_make_optimizer(self, name, hyper):
        return make_optimizer(name, hyper)

    @hookimpl
    def pccore_run_loop(self, body, carry, n, args, until):
        return compiled_loop(body, carry, n, args, until)

    @hookimpl
    def pccore_compile(self, fn):
        if fn not in _JITTED:
            _JITTED[fn] = jax.jit(fn)
        return _JITTED[fn]

    @hookimpl
    def pccore_ops(self):
        return OPS

    @hookimpl
    def pccore_compile_step(self, fn):
        if fn not in _STEPS:
            _STEPS[fn] = jax.jit(fn, donate_argnums=0)
        return _STEPS[fn]

    @hookimpl
    def pccore_synchronize(self):
        (jnp.zeros(()) + 0).block_until_ready()

    @hookimpl
    def pccore_data_parallel(self, device, devices, distributed):
        from .sharding import data_parallel

        return data_parallel(device, devices, distributed)


def _register_network() -> None:
    """``pccore.Network`` as a JAX pytree: the parameters are its leaves, the structure and
    kernels its static part, so networks pass through ``jax.jit``, ``jax.grad``, ``vmap``."""
    from pccore.nn.network import Network

    jax.tree_util.register_pytree_node(
        Network,
        lambda net: (net.params, (net.structure, net.kernels)),
        lambda aux, params: Network(aux[0], params, aux[1]),
    )


_register_network()
backend = JaxBackend()
