"""Data-parallel training: the layout a backend gives (``pccore_data_parallel``) and what the
core does with it.

PC inference is per sample and the weight gradients are batch *sums* of layer-local terms,
so each shard infers on its part of the global batch, the summed gradients (and the loss
and energy sums) are added over the shards, and only then divided by the global batch:
the single-device update up to summation order. Averaging per-shard means instead would
make every gradient N times too small.

Two kinds of layout:

- implicit (JAX): one process drives every device of a mesh; a step sees the global batch
  sharded over the devices and the compiler inserts the all-reduce, so the step is the
  single-device one, unchanged;
- explicit (torch.distributed): one process per device; a step sees only its rank's shard
  and holds a :class:`ShardSum` that all-reduces its sums (one collective per step).

Rules: the global batch ``Trainer(batch_size=B)`` must divide by the shard count N (else an
InputError names the sizes that work); the last partial batch of an epoch is dropped, as on
one device; evaluation splits every batch (uneven parts are fine) and reports global sums;
rank 0 alone writes checkpoints and shows progress.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Protocol

import attrs

from .. import host
from ..errors import InputError


class Layout(Protocol):
    """What a backend's ``pccore_data_parallel`` hook returns.

    ``shards``: parts each global batch is split into (one per device); ``rank`` /
    ``processes``: this process's index and the process count (rank 0 writes files);
    ``explicit``: True when a step sees only its own shard (one process per device) and must
    sum across shards itself, False when it sees the global batch and the compiler does it;
    ``device``: this process's device name.
    """

    shards: int
    rank: int
    processes: int
    explicit: bool
    device: str

    def replicate(self, tree: Any) -> Any:
        """Arrays (a tuple tree) on every device of the layout (unchanged where explicit)."""

    def shard(self, x: Any) -> Any:
        """A global batch (B, ...) with B divisible by ``shards`` as this process's step input:
        sharded over the devices (implicit) or this rank's contiguous slice (explicit)."""

    def local(self, tree: Any) -> Any:
        """Arrays back on this process's one device (for results handed to the caller)."""

    def all_sum(self, arrays: tuple) -> tuple:
        """Element-wise sums over the shards of a tuple of arrays, in one collective."""

    def all_gather(self, text: str) -> list[str]:
        """Every process's ``text``, in rank order (start-up agreement checks)."""

    def barrier(self) -> None:
        """Wait until every process reaches this point."""

    def compile_step(self, fn: Any) -> Any:
        """The training step ``fn(carry, batch)`` compiled for this layout (carry
        replicated, batch sharded)."""


@attrs.frozen
class ShardSum:
    """Sums a step's per-shard sums over all shards with one all-reduce (explicit layouts).
    Hashable (by the layout's identity), so compiled steps can hold it."""

    layout: Any

    def __call__(self, structure: Any, grads: tuple, sums: tuple, batch: int) -> tuple:
        """(per-block gradient sums, 0-d sums, local batch) -> the same, global."""
        flat = tuple(structure.flatten(grads))
        out = tuple(self.layout.all_sum(flat + tuple(sums)))
        return structure.unflatten(out[:len(flat)]), out[len(flat):], batch * self.layout.shards


def across(reduce: ShardSum | None, structure: Any, grads: tuple, sums: tuple, batch: int) -> tuple:
    """``(grads, sums, batch)`` summed over the shards by ``reduce``; unchanged when it is
    None (one device, or a compiler that inserts the reduction itself)."""
    if reduce is None:
        return grads, tuple(sums), batch
    return reduce(structure, grads, sums, batch)


def step_sum(rt: Any) -> ShardSum | None:
    """The reduction a training step on ``rt`` holds: a ShardSum for explicit layouts."""
    layout = getattr(rt, "parallel", None)
    return ShardSum(layout) if layout is not None and layout.explicit else None


def is_main(rt: Any) -> bool:
    """True on the process that writes checkpoints, files and progress (rank 0)."""
    layout = getattr(rt, "parallel", None)
    return layout is None or layout.rank == 0


def check_batch_size(layout: Any, batch_size: int) -> None:
    """The global batch must split into equal shards (so N devices give one device's update)."""
    n = layout.shards
    if batch_size % n:
        lower, upper = batch_size - batch_size % n, batch_size + n - batch_size % n
        hint = f"{upper}" if lower == 0 else f"{lower} or {upper}"
        raise InputError(
            f"batch_size={batch_size} does not split into {n} equal shards: use a multiple of {n} "
            f"(e.g. {hint}); the global batch is split evenly so that {n} devices make the same "
            "updates as one")


def check_trainer(layout: Any, trainer: Any) -> None:
    """The batch-size rule, and for explicit layouts (each rank sees only its shard) a
    refusal of what they cannot reproduce: a stop test on the whole batch (``tol``), an
    inference method not known to act per sample, a method whose step has no cross-shard sum."""
    check_batch_size(layout, trainer.batch_size)
    if not layout.explicit:
        return
    if trainer.method not in ("eo", "so", "bp"):
        raise InputError(f"method={trainer.method!r} has no multi-process data-parallel step; "
                         "use eo, so or bp, or JAX devices= (one process)")
    inf = trainer.inference
    if inf is None:
        return
    if inf.tol is not None:
        raise InputError(
            f"inference tol={inf.tol!r} stops on the gradient RMS of the whole batch, which no "
            "rank sees under torch.distributed: use a fixed number of steps (tol=None), or JAX "
            "devices= (one process, the stop test stays global)")
    per_sample = _per_sample()
    if type(inf) not in per_sample:
        names = ", ".join(c.__name__ for c in per_sample)
        raise InputError(
            f"{type(inf).__name__} inference is not known to act on each sample alone, so "
            f"{layout.shards} ranks could differ from one device; use one of {names}, or JAX devices=")


def _per_sample() -> tuple:
    """Inference methods whose update of a sample depends on that sample alone (elementwise
    optimizers, per-sample CG and line search): a rank's shard infers as in the full batch."""
    from ..inference import ErrorOptimization, NewtonCG, StateOptimization

    return (ErrorOptimization, StateOptimization, NewtonCG)


# ------------------------------------------------------------------ agreement
def fingerprint(trainer: Any, session: Any, data: Any, settings: dict) -> dict[str, str]:
    """Digests of what every process must agree on before training: trainer settings and
    ``fit`` arguments, the network's structure, its weights and optimizer state (initial or
    resumed), and the training data."""
    rt, opt = session.runtime, session.optimizer
    config = (trainer.method, trainer.inference, trainer.optimizer, trainer.lr, sorted(trainer.hyper.items()),
              trainer.batch_size, trainer.loss, trainer.seed, sorted(settings.items()), session.step_count)
    state = opt.state_to_host(session.opt_state) if callable(getattr(opt, "state_to_host", None)) else {}
    return {
        "trainer settings and fit arguments (method, inference, optimizer, lr, batch_size, loss, seed, "
        "epochs, max_steps, ...)": _digest(*config),
        "network structure": _digest(session.net.structure),
        "initial weights (another seed or init?) or resumed checkpoint":
            _digest(*(rt.to_numpy(p) for p in session.params), *(state[k] for k in sorted(state))),
        "training data": _digest(data.name, host._np().asarray(data.x_train), host._np().asarray(data.y_train)),
    }


def _digest(*parts: Any) -> str:
    """A short hash of ``parts``: host arrays by shape, dtype and bytes, the rest by repr
    (memory addresses removed, so equal objects in two processes hash alike)."""
    np = host._np()
    h = hashlib.blake2b(digest_size=12)
    for part in parts:
        if isinstance(part, np.ndarray):
            array = np.ascontiguousarray(part)
            h.update(f"{array.shape} {array.dtype}".encode())
            h.update(array)
        else:
            h.update(re.sub(r" at 0x[0-9a-fA-F]+", "", repr(part)).encode())
    return h.hexdigest()


def check_agreement(layout: Any, parts: dict[str, str]) -> None:
    """Raise the same InputError on every process when any process's ``parts`` differ from
    rank 0's (different model, seed, settings or data on two ranks)."""
    keys = list(parts)
    gathered = layout.all_gather("\n".join(parts[k] for k in keys))
    mine = [g.split("\n") for g in gathered]
    problems = []
    for rank, values in enumerate(mine[1:], start=1):
        diff = [k for k, a, b in zip(keys, mine[0], values) if a != b]
        if diff:
            problems.append(f"rank {rank} differs from rank 0 in: {'; '.join(diff)}")
    if problems:
        raise InputError("data-parallel processes disagree, so they would train different models: "
                         + " | ".join(problems)
                         + ". Start every process with the same command, seed and data.")


# ------------------------------------------------------------------ evaluation
def eval_parts(layout: Any, x: Any, y: Any) -> list[tuple[Any, Any]]:
    """What this process evaluates of a batch: explicit layouts take rank r's near-equal
    contiguous part (sizes differ by at most one; a rank may get none), implicit ones shard
    the largest divisible head and replicate the rest (fewer than ``shards`` samples)."""
    n, k = x.shape[0], layout.shards
    if layout.explicit:
        lo, hi = _bounds(n, k, layout.rank)
        return [(x[lo:hi], y[lo:hi])] if hi > lo else []
    m = n - n % k
    parts = [(layout.shard(x[:m]), layout.shard(y[:m]))] if m else []
    if m < n:
        parts.append(tuple(layout.replicate((x[m:], y[m:]))))
    return parts


def _bounds(n: int, k: int, r: int) -> tuple[int, int]:
    """Rows [lo, hi) of part r when n rows are split into k contiguous near-equal parts."""
    size, extra = divmod(n, k)
    lo = r * size + min(r, extra)
    return lo, lo + size + (r < extra)
