"""Trainer: PC (EO/SO inference, then a local weight update) and a closed-form backprop
baseline, with seeded shuffling, compiled steps and evaluation, hooks, progress and
resumable checkpoints. Array API only: optimizers and compilation come from the backend.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Any

import attrs

from .. import host
from ..checks import check_finite, check_optimizer, check_positive_float, check_positive_int, check_writable
from ..data import Dataset, batches
from ..errors import InputError, TrainingDiverged
from ..events import EpochEnd, TrainStep
from ..inference import ErrorOptimization, Inference as _Optimization, StateOptimization
from ..losses import get_loss
from ..nn.network import Network
from ..runtime import Runtime, check_runtime, runtime_for
from .checkpoint import load_checkpoint, save_checkpoint
from .history import TrainHistory
from .progress import Progress
from .session import TrainSession
from . import parallel
from .step import EvalStep

METHODS = ("eo", "so", "bp", "theory")

# Inference used when Trainer(inference=None): enough plain-SGD steps to come close to the
# equilibrium of the small and medium MLPs of the examples (EO converges much faster than SO).
DEFAULT_INFERENCE = {
    "eo": {"iters": 100, "lr": 0.1},
    "so": {"iters": 200, "lr": 0.2},
}


def _default_inference(method: str) -> _Optimization | None:
    if method in ("bp", "theory"):
        return None
    cls = ErrorOptimization if method == "eo" else StateOptimization
    return cls(**DEFAULT_INFERENCE[method])


def _check_inference(method: str, inference: Any) -> _Optimization | None:
    if inference is None:
        return _default_inference(method)
    if method == "bp":
        raise InputError("inference must be None for method='bp' (backprop needs no inference)")
    if method == "theory":
        raise InputError("inference must be None for method='theory' (the equilibrium of a linear "
                         "net comes in closed form)")
    want = method.upper()  # "EO": a method on the errors (EO, NewtonCG, ErrorODE); "SO": states
    if not isinstance(inference, _Optimization) or inference.method != want:
        example = "ErrorOptimization" if method == "eo" else "StateOptimization"
        raise InputError(
            f"method={method!r} needs an inference method on the {'errors' if want == 'EO' else 'states'} "
            f"(e.g. pccore.{example}(...)), got {inference!r}"
        )
    return inference


class Trainer:
    """Trains a network with PC ("eo": error optimization, "so": state optimization) or
    backprop ("bp").

    A PC step infers the states on the batch with ``inference`` (default
    ``DEFAULT_INFERENCE``), then steps the weights with ``local_weight_grads`` at those
    states divided by the batch size, through the backend optimizer ``optimizer``
    (``lr`` and ``optimizer_hyper``, e.g. b1=0.9). "bp" uses :func:`backprop_grads` / batch;
    "theory" (linear nets, MSE) the exact gradient of the equilibrium energy F*
    (:func:`pccore.analytic.equilibrium_energy_grads`), PC with inference run to the end.
    Batches are shuffled with ``seed + epoch``.

    Each step is one compiled backend function (``compile=True``; jit on JAX, no_grad and
    CUDA graphs on torch) unless inference observers need every point; losses and energies
    stay on the device and reach the host (history, hooks, progress, divergence checks)
    every ``log_every`` steps and at epoch ends.

    Data parallel: on a runtime made with ``devices=`` (JAX mesh) or ``distributed=True``
    (torch.distributed) every global batch of ``batch_size`` (divisible by the device count)
    is split over the devices and the summed gradients are reduced before the division by
    the global batch, so the weights are the single-device ones; rank 0 alone writes
    checkpoints and shows progress (docs/scaling.md).
    """

    def __init__(
        self,
        method: str = "eo",
        inference: _Optimization | None = None,
        optimizer: str = "adam",
        lr: float = 1e-3,
        batch_size: int = 64,
        loss: Any = "mse",
        seed: int = 0,
        runtime: Runtime | None = None,
        progress: bool = True,
        compile: bool = True,
        log_every: int = 50,
        **optimizer_hyper: Any,
    ):
        if method not in METHODS:
            raise InputError(f"method must be one of {METHODS}, got {method!r}")
        if not isinstance(optimizer, str):
            raise InputError(f"optimizer must be a name (sgd, momentum, adam), got {optimizer!r}")
        if runtime is not None and not isinstance(runtime, Runtime):
            raise InputError(f"runtime must be a pccore.Runtime or None, got {type(runtime).__name__}")
        self.method = method
        self.inference = _check_inference(method, inference)
        self.optimizer, self.lr = optimizer, check_positive_float("lr", lr)
        hyper = check_optimizer(optimizer, {**optimizer_hyper, "lr": self.lr})  # types and ranges, early
        self.hyper = {k: v for k, v in hyper.items() if k != "lr"}
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.loss = get_loss(loss)
        self.seed = check_positive_int("seed", seed, minimum=0)
        self.runtime, self.progress = runtime, bool(progress)
        if not isinstance(compile, bool):
            raise InputError(f"compile must be True or False, got {compile!r}")
        self.compile = compile
        self.log_every = check_positive_int("log_every", log_every)

    def __repr__(self) -> str:
        return (f"Trainer(method={self.method!r}, inference={self.inference!r}, "
                f"optimizer={self.optimizer!r}, lr={self.lr:g}, batch_size={self.batch_size})")

    # ------------------------------------------------------------- helpers
    def _runtime_of(self, net: Network) -> Runtime:
        if not isinstance(net, Network):
            raise InputError(f"net must be a pccore.Network, got {type(net).__name__}")
        params = net.flat_params()
        if not params:
            raise InputError("net has no parameters to train")
        rt = self.runtime if self.runtime is not None else runtime_for(params[0])
        check_runtime(rt, "net", params[0])
        return rt

    def session(self, net: Network) -> TrainSession:
        """A :class:`TrainSession` on a copy of ``net``'s weights (for custom loops)."""
        return TrainSession(self, net, self._runtime_of(net))

    def batches(self, data: Dataset, rt: Runtime, epoch: int) -> Iterator[tuple[Any, Any]]:
        """The shuffled training batches of ``epoch`` (seed ``seed + epoch``)."""
        return batches(data, rt, self.batch_size, "train", shuffle=True, seed=self.seed + epoch)

    # ---------------------------------------------------------- evaluation
    def evaluate(self, net: Network, data: Dataset, split: str = "test", batch_size: int | None = None) -> dict:
        """Mean output loss per sample and accuracy (argmax agreement of the feed-forward
        prediction with the one-hot target) on ``split``: ``dict(loss=..., accuracy=...)``.
        Each batch is one compiled call; the sums stay on the device until the end. On a
        data-parallel runtime every batch is split over the devices (ranks) and the numbers
        are the global ones."""
        _check_data(data, (split,) if split in ("train", "test") else ())
        rt = self._runtime_of(net)
        size = check_positive_int("batch_size", batch_size if batch_size is not None else 1024)
        fn = EvalStep(net.structure, net.kernels, self.loss)
        fn = rt.pm.hook.pccore_compile(fn=fn) or fn
        flat, sums, n, layout = net.flat_params(), [], 0, rt.parallel
        flat = flat if layout is None else layout.replicate(flat)
        for x, y in batches(data, rt, size, split, shuffle=False, drop_last=False):
            for part in [(x, y)] if layout is None else parallel.eval_parts(layout, x, y):
                sums.extend(fn(flat, *part))
            n += x.shape[0]
        if n == 0:
            raise InputError(f"dataset {data.name!r} has no {split} samples to evaluate")
        total = [0.0, 0.0]  # (loss sum, hits); a rank may have no part of a small split
        if sums:
            total = rt.to_numpy(rt.xp.stack(sums)).astype("float64").reshape(-1, 2).sum(axis=0)
        if layout is not None and layout.explicit:  # each rank summed its part of every batch
            total = rt.to_numpy(layout.all_sum((rt.asarray(total, dtype="float64"),))[0])
        return {"loss": float(total[0]) / n, "accuracy": float(total[1]) / n}

    # ----------------------------------------------------------------- fit
    def fit(
        self,
        net: Network,
        data: Dataset,
        epochs: int = 1,
        max_steps: int | None = None,
        eval_every: int | None = None,
        checkpoint: str | os.PathLike | None = None,
        resume: bool = False,
    ) -> tuple[Network, TrainHistory]:
        """Train a copy of ``net`` on ``data`` for ``epochs`` (at most ``max_steps`` updates
        in all); ``net`` itself is never modified.

        Evaluates on the test split every ``eval_every`` steps and at each epoch end.
        ``checkpoint`` (a .npz path or a folder) is written atomically at each epoch end
        and when ``max_steps`` stops training; with ``resume`` training continues from it
        (when it exists) and reaches the same weights as an uninterrupted run.
        Before any work the data must be finite and the checkpoint folder writable; training
        stops with TrainingDiverged at the first non-finite loss, energy or weights.
        Returns (trained network, :class:`TrainHistory`).
        """
        _check_data(data, ("train", "test"))
        check_positive_int("epochs", epochs)
        if max_steps is not None:
            check_positive_int("max_steps", max_steps)
        if eval_every is not None:
            check_positive_int("eval_every", eval_every)
        path = _checkpoint_path(checkpoint)
        if path is not None:  # a read-only folder fails now, not after the first epoch
            check_writable("checkpoint", path.parent)
        if resume and path is None:
            raise InputError("resume=True needs checkpoint= (the file or folder to resume from)")
        if data.x_train.shape[0] < self.batch_size:
            raise InputError(
                f"batch_size={self.batch_size} is larger than the {data.x_train.shape[0]} "
                f"training samples of dataset {data.name!r}"
            )
        session = self.session(net)
        history, start = TrainHistory(), (0, 0)
        if resume and path.exists():
            start = load_checkpoint(path, self, session, history)
        layout = session.runtime.parallel
        if layout is not None and layout.processes > 1:  # the same run on every process, or a clear error
            settings = {"epochs": epochs, "max_steps": max_steps, "eval_every": eval_every,
                        "resume": bool(resume), "checkpoint": path is not None}
            parallel.check_agreement(layout, parallel.fingerprint(self, session, data, settings))
        run = _Run(self, session, data, history, path, eval_every, max_steps)
        run.loop(start, epochs)
        net = session.net
        return (net if layout is None else net.with_params(layout.local(net.params))), history


@attrs.define
class _Run:
    """State of one ``fit`` call: the epoch/step loop, evaluations, hooks and checkpoints.
    Step results wait on the device in ``pending`` until ``flush`` (every ``log_every``
    steps, before evaluations and at epoch ends)."""

    trainer: Any
    session: TrainSession
    data: Dataset
    history: TrainHistory
    path: Any
    eval_every: int | None
    max_steps: int | None
    pending: list = attrs.Factory(list)
    progress: Any = None
    epochs: int = 0

    def loop(self, start: tuple[int, int], epochs: int) -> None:
        epoch, position = start
        self.epochs, total = epochs, epochs * (self.data.x_train.shape[0] // self.trainer.batch_size)
        total = total if self.max_steps is None else min(total, self.max_steps)
        shown = self.trainer.progress and parallel.is_main(self.session.runtime)  # data parallel: rank 0
        self.progress = Progress(shown, self._label(epoch), total=total, initial=self.session.step_count)
        resident = _Resident(self.data, self.session.runtime)
        try:
            while epoch < epochs:
                done = self._epoch(epoch, position, resident)
                if done is not None:  # stopped by max_steps inside the epoch
                    _check_weights(self.session, self.trainer)
                    self._save(epoch, done)
                    return
                self._end_epoch(epoch)
                epoch, position = epoch + 1, 0
        finally:
            self.progress.close()

    def _epoch(self, epoch: int, skip: int, resident: "_Resident") -> int | None:
        s, t, h = self.session, self.trainer, self.history
        xs, ys = resident.epoch(t.seed + epoch, t.batch_size)
        for i in range(skip, xs.shape[0]):
            if self.max_steps is not None and s.step_count >= self.max_steps:
                self.flush()
                return i
            loss, energy = s.step(xs[i], ys[i])
            self.pending.append((s.step_count, epoch, loss, energy))
            if len(self.pending) >= t.log_every:
                self.flush()
            if self.eval_every and s.step_count % self.eval_every == 0:
                self.flush()
                h.record_eval(s.step_count, t.evaluate(s.net, self.data))
        self.flush()
        return None

    def flush(self) -> None:
        """Copy the pending losses and energies to the host in one transfer, check them,
        record them and tell the hooks and the progress line."""
        if not self.pending:
            return
        s, h, t = self.session, self.history, self.trainer
        rt = s.runtime
        values = rt.xp.stack([v for _, _, loss, energy in self.pending
                              for v in (loss, loss if energy is None else energy)])
        host_values = rt.to_numpy(values).astype("float64").reshape(-1, 2).tolist()
        for (step, epoch, _, energy), (loss, e) in zip(self.pending, host_values):
            _check_finite(t, step, loss, None if energy is None else e)
            e = None if energy is None else e
            h.step.append(step)
            h.loss.append(loss)
            h.energy.append(e)
            rt.pm.hook.pccore_train_step(info=TrainStep(t.method, step, epoch, loss, e, rt))
        step, epoch = self.pending[-1][:2]
        self.pending.clear()
        self.progress.update(step, self._label(epoch), loss=h.loss[-1], energy=h.energy[-1])

    def _label(self, epoch: int) -> str:
        return f"[{self.trainer.method}] epoch {epoch + 1}/{self.epochs}"

    def _end_epoch(self, epoch: int) -> None:
        s, h = self.session, self.history
        _check_weights(s, self.trainer)
        metrics = self.trainer.evaluate(s.net, self.data)
        h.record_eval(s.step_count, metrics)
        first = h.epochs[-1]["step"] if h.epochs else 0
        epoch_losses = [l for st, l in zip(h.step, h.loss) if st > first]
        info = {
            "epoch": epoch + 1, "step": s.step_count,
            "train_loss": sum(epoch_losses) / len(epoch_losses) if epoch_losses else float("nan"),
            "test_loss": metrics["loss"], "test_accuracy": metrics["accuracy"],
        }
        h.epochs.append(info)
        s.runtime.pm.hook.pccore_epoch_end(info=EpochEnd(
            epoch, s.step_count, {k: v for k, v in info.items() if k not in ("epoch", "step")}, s.runtime))
        self._save(epoch + 1, 0)

    def _save(self, epoch: int, position: int) -> None:
        if self.path is not None:
            layout = self.session.runtime.parallel
            if layout is None or layout.rank == 0:  # data parallel: rank 0 writes, every rank waits for it
                save_checkpoint(self.path, self.trainer, self.session, self.history, epoch, position)
            if layout is not None and layout.processes > 1:
                layout.barrier()


def _check_finite(trainer: Any, step: int, loss: float, energy: float | None) -> None:
    """Raise TrainingDiverged at the first step whose numbers are not finite, naming what
    diverged: the weights (the loss) or the inference (the energy at the states found)."""
    if not math.isfinite(loss):
        raise TrainingDiverged(step, trainer.method, "the loss became non-finite: the weights (or the data) "
                               f"hold inf/NaN ({trainer.optimizer} weight update, lr", trainer.lr,
                               "lower the weight lr, or check the data for inf/NaN")
    if energy is not None and not math.isfinite(energy):
        inf = trainer.inference
        if inf is None:  # "theory": the closed-form equilibrium energy F*
            raise TrainingDiverged(step, trainer.method, "the equilibrium energy became non-finite "
                                   f"({trainer.optimizer} weight update, lr", trainer.lr, "lower the weight lr")
        if getattr(inf, "lr", None) is None:  # no inference lr (NewtonCG, SpectralEO, ODEs)
            raise TrainingDiverged(step, trainer.method, f"the inference energy became non-finite "
                                   f"({type(inf).__name__} with {inf.setting}; weight lr", trainer.lr,
                                   "lower the weight lr, or check the data for inf/NaN")
        if step > 1:  # the inference ran fine on the earlier weights: the weight updates moved them too far
            raise TrainingDiverged(step, trainer.method, f"the inference energy became non-finite "
                                   f"({inf.method} inference, lr={inf.lr:g}) on the weights after {step - 1} "
                                   f"{trainer.optimizer} update(s) (weight lr", trainer.lr,
                                   "lower the weight lr (the same inference was finite on the earlier weights), "
                                   "or the inference lr")
        raise TrainingDiverged(step, trainer.method, f"the inference energy became non-finite "
                               f"({inf.method} inference, lr", inf.lr, "lower the inference lr")


def _check_weights(session: Any, trainer: Any) -> None:
    """Raise TrainingDiverged when the weights hold inf/NaN after the last update (whose loss
    no later step reports), before they are evaluated, saved or returned."""
    xp = session.runtime.xp
    finite = [xp.all(xp.isfinite(p)) for p in session.params]
    if finite and not bool(xp.all(xp.stack(finite))):
        raise TrainingDiverged(session.step_count, trainer.method, "the weights became non-finite in the "
                               f"last update ({trainer.optimizer} weight update, lr", trainer.lr,
                               "lower the weight lr")


class _Resident:
    """The training split on the runtime's device, gathered into shuffled batches once per
    epoch (the same batches as ``pccore.batches`` with that seed)."""

    def __init__(self, data: Dataset, rt: Runtime):
        self.rt, self.n = rt, data.x_train.shape[0]
        self.x, self.y = self._place(rt.asarray(data.x_train)), self._place(rt.asarray(data.y_train))

    def _place(self, array: Any) -> Any:
        """On every device of a data-parallel runtime (a JAX mesh), as the weights are."""
        return array if self.rt.parallel is None else self.rt.parallel.replicate(array)

    def epoch(self, seed: int, batch_size: int) -> tuple[Any, Any]:
        """(x, y) of shape (batches, batch_size, ...): the full batches of this epoch."""
        xp, count = self.rt.xp, self.n // batch_size
        order = host.generator(seed).permutation(self.n)[:count * batch_size]
        index = self._place(self.rt.asarray(order, dtype="int32"))
        xs = xp.take(self.x, index, axis=0)
        ys = xp.take(self.y, index, axis=0)
        return (xp.reshape(xs, (count, batch_size, *self.x.shape[1:])),
                xp.reshape(ys, (count, batch_size, *self.y.shape[1:])))


def _check_data(data: Any, splits: tuple = ()) -> None:
    """``data`` is a Dataset whose ``splits`` hold finite numbers only (NaN or inf in the
    data would otherwise surface as a diverged training)."""
    if not isinstance(data, Dataset):
        raise InputError(
            f"data must be a pccore.Dataset (e.g. pccore.load_dataset('digits')), got {type(data).__name__}"
        )
    for split in splits:
        for kind in ("x", "y"):
            check_finite(f"dataset {data.name!r}: {kind}_{split}", getattr(data, f"{kind}_{split}"),
                         "clean or drop those samples before training")


def _checkpoint_path(checkpoint: Any):
    """``checkpoint`` as a Path to a .npz file (a folder gets ``checkpoint.npz`` inside)."""
    from pathlib import Path

    if checkpoint is None:
        return None
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise InputError(f"checkpoint must be a file or folder path, got {type(checkpoint).__name__}")
    path = Path(checkpoint)
    if path.is_dir() or str(checkpoint).endswith(("/", os.sep)) or path.suffix == "":
        path = path / "checkpoint.npz"
    return path
