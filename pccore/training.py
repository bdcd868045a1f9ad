"""Training: PC (EO/SO inference, then a local weight update) and a closed-form backprop
baseline, with seeded shuffling, evaluation, hooks, progress and resumable checkpoints.

Array API only: the weight optimizer comes from the runtime's backend.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import attrs

from .checks import check_positive_float, check_positive_int
from .data import Dataset, batches
from .errors import InputError
from .events import EpochEnd, TrainStep
from .inference import ErrorOptimization, StateOptimization, _Optimization
from .backprop import backprop_grads
from .losses import get_loss
from .nn.network import Network
from .energy import local_weight_grads
from .runtime import Runtime, check_runtime, runtime_for

METHODS = ("eo", "so", "bp")

# Inference used when Trainer(inference=None): enough plain-SGD steps to come close to the
# equilibrium of the small and medium MLPs of the examples (EO converges much faster than SO).
DEFAULT_INFERENCE = {
    "eo": {"iters": 100, "lr": 0.1},
    "so": {"iters": 200, "lr": 0.2},
}


# ------------------------------------------------------------------ history
@attrs.define
class TrainHistory:
    """What ``Trainer.fit`` recorded (host floats).

    Per step: ``step``, ``loss`` (batch-mean output loss of the feed-forward prediction
    before the update), ``energy`` (PC: final inference energy / batch; None for bp).
    Per evaluation: ``eval_step``, ``eval_loss``, ``eval_accuracy``. Per epoch: ``epochs``
    (dicts with epoch, step, train_loss, test_loss, test_accuracy).
    """

    step: list = attrs.Factory(list)
    loss: list = attrs.Factory(list)
    energy: list = attrs.Factory(list)
    eval_step: list = attrs.Factory(list)
    eval_loss: list = attrs.Factory(list)
    eval_accuracy: list = attrs.Factory(list)
    epochs: list = attrs.Factory(list)

    def as_dict(self) -> dict:
        """Plain dict of lists (JSON-ready)."""
        return attrs.asdict(self)

    def record_eval(self, step: int, metrics: dict) -> None:
        if self.eval_step and self.eval_step[-1] == step:
            return
        self.eval_step.append(step)
        self.eval_loss.append(metrics["loss"])
        self.eval_accuracy.append(metrics["accuracy"])


# ----------------------------------------------------------------- progress
class _Progress:
    """One status line on stderr (rewritten in place on a terminal, else every ~2 s)."""

    def __init__(self, enabled: bool, label: str):
        self.enabled, self.label = enabled, label
        self.tty = enabled and sys.stderr.isatty()
        self._last, self._text, self._shown = 0.0, None, None

    def update(self, text: str) -> None:
        if not self.enabled:
            return
        self._text = text
        now = time.monotonic()
        if now - self._last >= (0.2 if self.tty else 2.0):
            self._last = now
            self._show()

    def _show(self) -> None:
        line = f"{self.label} {self._text}"
        print(f"\r{line}\033[K" if self.tty else line, end="" if self.tty else "\n",
              file=sys.stderr, flush=True)
        self._shown = self._text

    def close(self) -> None:
        """Show the last state (if not shown yet) and end the line."""
        if self.enabled and self._text is not None and self._text != self._shown:
            self._show()
        if self.tty and self._shown is not None:
            print(file=sys.stderr, flush=True)


# ------------------------------------------------------------------ session
def _host_float(rt: Runtime, value: Any) -> float:
    return float(rt.to_numpy(value))


class TrainSession:
    """Weights being trained (an owned copy of the network's parameters) plus the weight
    optimizer's state; ``step(x, y)`` makes one update. Built by :meth:`Trainer.session`."""

    def __init__(self, trainer: "Trainer", net: Network, rt: Runtime):
        self.trainer, self.runtime, self._template = trainer, rt, net
        # the numpy optimizer updates in place: never touch the caller's arrays
        self.params = tuple(rt.asarray(rt.to_numpy(p)) for p in net.flat_params())
        self.optimizer = rt.optimizer(trainer.optimizer, lr=trainer.lr, **trainer.hyper)
        self.opt_state = self.optimizer.init(self.params)
        self.step_count = 0

    @property
    def net(self) -> Network:
        """The network at the current weights."""
        return self._template.with_params(self._template.structure.unflatten(self.params))

    def step(self, x: Any, y: Any) -> tuple[float, float | None]:
        """One weight update on batch x (batch, *input_shape), y (batch, *output_shape).

        Returns (loss, energy): batch-mean output loss of the feed-forward prediction before
        the update, and the final inference energy / batch (None for bp).
        """
        t, rt, net = self.trainer, self.runtime, self.net
        xp, batch = rt.xp, x.shape[0]
        loss = _host_float(rt, t.loss.value(xp, net.forward(x), y)) / batch
        energy = None
        if t.method == "bp":
            grads = backprop_grads(net, x, y, t.loss)
        else:
            result = t.inference.run(net, x, y, loss=t.loss, runtime=rt)
            energy = _host_float(rt, result.energy) / batch
            grads = local_weight_grads(net, x, y, result.states, t.loss)
        grads = tuple(g / batch for g in net.structure.flatten(grads))
        params, self.opt_state = self.optimizer.update(self.params, grads, self.opt_state)
        self.params = tuple(params)
        self.step_count += 1
        return loss, energy


# ------------------------------------------------------------------ trainer
def _default_inference(method: str) -> _Optimization | None:
    if method == "bp":
        return None
    cls = ErrorOptimization if method == "eo" else StateOptimization
    return cls(**DEFAULT_INFERENCE[method])


def _check_inference(method: str, inference: Any) -> _Optimization | None:
    if inference is None:
        return _default_inference(method)
    if method == "bp":
        raise InputError("inference must be None for method='bp' (backprop needs no inference)")
    want = ErrorOptimization if method == "eo" else StateOptimization
    if not isinstance(inference, want):
        raise InputError(
            f"method={method!r} needs inference=pccore.{want.__name__}(...), got {inference!r}"
        )
    return inference


class Trainer:
    """Trains a network with PC ("eo": error optimization, "so": state optimization) or
    backprop ("bp").

    A PC step infers the states on the batch with ``inference`` (default
    ``DEFAULT_INFERENCE``), then steps the weights with ``local_weight_grads`` at those
    states divided by the batch size, through the backend optimizer ``optimizer``
    (``lr`` and ``optimizer_hyper``, e.g. b1=0.9). "bp" uses :func:`backprop_grads` / batch.
    Batches are shuffled with ``seed + epoch``.
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
        self.optimizer, self.lr, self.hyper = optimizer, check_positive_float("lr", lr), optimizer_hyper
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.loss = get_loss(loss)
        self.seed = check_positive_int("seed", seed, minimum=0)
        self.runtime, self.progress = runtime, bool(progress)

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
        prediction with the one-hot target) on ``split``: ``dict(loss=..., accuracy=...)``."""
        _check_data(data)
        rt = self._runtime_of(net)
        xp = rt.xp
        size = check_positive_int("batch_size", batch_size if batch_size is not None else 1024)
        total, correct, n = 0.0, 0.0, 0
        for x, y in batches(data, rt, size, split, shuffle=False, drop_last=False):
            yhat = net.forward(x)
            total += _host_float(rt, self.loss.value(xp, yhat, y))
            hits = xp.argmax(yhat, axis=1) == xp.argmax(y, axis=1)
            correct += _host_float(rt, xp.sum(xp.astype(hits, yhat.dtype)))
            n += x.shape[0]
        if n == 0:
            raise InputError(f"dataset {data.name!r} has no {split} samples to evaluate")
        return {"loss": total / n, "accuracy": correct / n}

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
        Returns (trained network, :class:`TrainHistory`).
        """
        _check_data(data)
        check_positive_int("epochs", epochs)
        if max_steps is not None:
            check_positive_int("max_steps", max_steps)
        if eval_every is not None:
            check_positive_int("eval_every", eval_every)
        path = _checkpoint_path(checkpoint)
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
            from .io import load_checkpoint

            start = load_checkpoint(path, self, session, history)
        run = _Run(self, session, data, history, path, eval_every, max_steps)
        run.loop(start, epochs)
        return session.net, history


@attrs.define
class _Run:
    """State of one ``fit`` call: the epoch/step loop, evaluations, hooks and checkpoints."""

    trainer: Trainer
    session: TrainSession
    data: Dataset
    history: TrainHistory
    path: Any
    eval_every: int | None
    max_steps: int | None

    def loop(self, start: tuple[int, int], epochs: int) -> None:
        epoch, position = start
        progress = _Progress(self.trainer.progress, f"[{self.trainer.method}]")
        try:
            while epoch < epochs:
                done = self._epoch(epoch, position, progress)
                if done is not None:  # stopped by max_steps inside the epoch
                    self._save(epoch, done)
                    return
                self._end_epoch(epoch)
                epoch, position = epoch + 1, 0
        finally:
            progress.close()

    def _epoch(self, epoch: int, skip: int, progress: _Progress) -> int | None:
        s, rt, h = self.session, self.session.runtime, self.history
        for i, (x, y) in enumerate(self.trainer.batches(self.data, rt, epoch)):
            if i < skip:
                continue
            if self.max_steps is not None and s.step_count >= self.max_steps:
                return i
            loss, energy = s.step(x, y)
            h.step.append(s.step_count)
            h.loss.append(loss)
            h.energy.append(energy)
            rt.pm.hook.pccore_train_step(info=TrainStep(
                self.trainer.method, s.step_count, epoch, loss, energy, rt))
            text = f"epoch {epoch + 1} step {s.step_count} loss {loss:.4g}"
            progress.update(text + ("" if energy is None else f" energy {energy:.4g}"))
            if self.eval_every and s.step_count % self.eval_every == 0:
                h.record_eval(s.step_count, self.trainer.evaluate(s.net, self.data))
        return None

    def _end_epoch(self, epoch: int) -> None:
        s, h = self.session, self.history
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
            from .io import save_checkpoint

            save_checkpoint(self.path, self.trainer, self.session, self.history, epoch, position)


def _check_data(data: Any) -> None:
    if not isinstance(data, Dataset):
        raise InputError(
            f"data must be a pccore.Dataset (e.g. pccore.load_dataset('digits')), got {type(data).__name__}"
        )


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
