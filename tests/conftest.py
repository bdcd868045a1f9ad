"""One suite for every backend: the ``backend`` fixture runs each test on every installed
backend whose framework imports (``PCCORE_BACKENDS=numpy,torch`` narrows it)."""

from __future__ import annotations

import os

if "--xla_cpu_multi_thread_eigen=false" not in os.environ.get("XLA_FLAGS", ""):  # before JAX starts
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import pccore  # noqa: E402


def _selected() -> list[str]:
    found = pccore.available_backends()
    wanted = os.environ.get("PCCORE_BACKENDS")
    if not wanted:
        return found
    names = [n.strip() for n in wanted.split(",") if n.strip()]
    missing = sorted(set(names) - set(found))
    if missing:
        raise pytest.UsageError(f"PCCORE_BACKENDS names backends that are not installed: {missing}; installed: {found}")
    return names


BACKENDS = _selected()


def _one_thread() -> None:
    """Tests use small arrays: one BLAS/OpenMP thread is fastest, and on a shared machine
    spinning threads made small torch ops up to ~70x slower. (XLA reads its flag when JAX
    starts, so it is set here, before any test imports jax.)"""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover
        pass
    if "torch" in BACKENDS:
        import torch

        torch.set_num_threads(1)


_one_thread()


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """Name of the backend under test."""
    return request.param


@pytest.fixture
def rt64(backend):
    """float64 runtime on the backend under test."""
    return pccore.runtime(backend, dtype="float64")


@pytest.fixture
def rt32(backend):
    """float32 runtime on the backend under test."""
    return pccore.runtime(backend, dtype="float32")


def host_batch(widths, batch=6, seed=0, onehot=False):
    """Host float64 (x, y) for a net of ``widths``."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, widths[0]))
    if onehot:
        y = np.eye(widths[-1])[rng.integers(0, widths[-1], batch)]
    else:
        y = rng.standard_normal((batch, widths[-1]))
    return x, y


def batch_on(rt, widths, batch=6, seed=0, onehot=False):
    """(x, y) as backend arrays on ``rt``."""
    x, y = host_batch(widths, batch, seed, onehot)
    return rt.asarray(x), rt.asarray(y)


def to_np(rt, a):
    return rt.to_numpy(a)
