"""Training checkpoints: weights, optimizer state, counters and history in one ``.npz``
(host NumPy, no pickle), written atomically, checked against the training setup and the
network's whole structure when resumed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import host
from ..errors import InputError
from ..io import CHECKPOINT, network_arrays, network_from_arrays, read_npz, require, write_npz


_HISTORY_LISTS = ("step", "loss", "energy", "eval_step", "eval_loss", "eval_accuracy")
_EPOCH_KEYS = ("epoch", "step", "train_loss", "test_loss", "test_accuracy")


def _optimizer_hooks(optimizer: Any) -> None:
    for name in ("state_to_host", "state_from_host"):
        if not callable(getattr(optimizer, name, None)):
            raise InputError(
                f"the backend optimizer {type(optimizer).__name__} has no {name}() method, "
                "so its state cannot be checkpointed"
            )


def save_checkpoint(path: Path, trainer: Any, session: Any, history: Any, epoch: int, position: int) -> Path:
    """Write the training state (weights, optimizer state, counters, history) to ``path``.

    ``epoch``/``position``: the epoch to continue and the batches of it already used.
    """
    np = host._np()
    _optimizer_hooks(session.optimizer)
    arrays = network_arrays(session.net, session.runtime)
    arrays["format"] = np.array(CHECKPOINT)
    arrays["train/config"] = np.array([trainer.method, trainer.optimizer, repr(trainer.lr),
                                       str(trainer.batch_size), str(trainer.seed)])
    arrays["train/counters"] = np.array([session.step_count, epoch, position], dtype=np.int64)
    for key, value in session.optimizer.state_to_host(session.opt_state).items():
        arrays[f"opt/{key}"] = value
    for key in _HISTORY_LISTS:
        values = [np.nan if v is None else v for v in getattr(history, key)]
        arrays[f"hist/{key}"] = np.array(values, dtype=np.int64 if key.endswith("step") else np.float64)
    arrays["hist/epochs"] = np.array([[e[k] for k in _EPOCH_KEYS] for e in history.epochs],
                                     dtype=np.float64).reshape(-1, len(_EPOCH_KEYS))
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_npz(path, arrays)


def load_checkpoint(path: Path, trainer: Any, session: Any, history: Any) -> tuple[int, int]:
    """Restore ``session`` and ``history`` from ``path``; returns (epoch, position)."""
    np = host._np()
    arrays = read_npz(path, "checkpoint")
    if str(arrays.get("format", "")) != CHECKPOINT:
        raise InputError(f"{str(path)!r} is not a pccore training checkpoint")
    require(arrays, ["train/config", "train/counters", *(f"hist/{k}" for k in _HISTORY_LISTS), "hist/epochs"],
            repr(str(path)), "checkpoint")
    config = [str(c) for c in arrays["train/config"]]
    mine = [trainer.method, trainer.optimizer, repr(trainer.lr), str(trainer.batch_size), str(trainer.seed)]
    if config != mine:
        names = ("method", "optimizer", "lr", "batch_size", "seed")
        diff = [f"{n}: saved {a} vs now {b}" for n, a, b in zip(names, config, mine) if a != b]
        raise InputError(f"checkpoint {str(path)!r} was written by another training setup ({'; '.join(diff)})")
    net = network_from_arrays(arrays, session.runtime, repr(str(path)))
    mine = session.net.structure
    if net.structure != mine:
        raise InputError(f"checkpoint {str(path)!r} holds a network of another structure:\n"
                         f"saved {net.structure!r}\nnow {mine!r}")
    _optimizer_hooks(session.optimizer)
    session.params = tuple(session.place(net.flat_params()))
    opt = {k[4:]: v for k, v in arrays.items() if k.startswith("opt/")}
    session.opt_state = session.place(session.optimizer.state_from_host(session.params, opt))
    step, epoch, position = (int(v) for v in arrays["train/counters"])
    session.step_count = step
    for key in _HISTORY_LISTS:
        values = arrays[f"hist/{key}"].tolist()
        if key == "energy":
            values = [None if np.isnan(v) else v for v in values]
        setattr(history, key, values)
    history.epochs = [
        {k: (int(v) if k in ("epoch", "step") else float(v)) for k, v in zip(_EPOCH_KEYS, row)}
        for row in arrays["hist/epochs"]
    ]
    return epoch, position
