"""Save/load networks and training checkpoints as ``.npz`` files (host NumPy, no pickle).

Files are written to a temporary file in the target folder and moved into place with
``os.replace``, so an interrupted save never damages an existing file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from . import host
from .errors import InputError
from .network import Dense, Network
from .runtime import Runtime, runtime_for

FORMAT = "pccore-network"
CHECKPOINT = "pccore-checkpoint"
VERSION = 1


# --------------------------------------------------------------- raw files
def write_npz(path: str | os.PathLike, arrays: dict[str, Any]) -> Path:
    """Write host ``arrays`` to ``path`` atomically (temporary file + ``os.replace``)."""
    np = host._np()
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"cannot save to {str(path)!r}: folder {str(folder)!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def read_npz(path: str | os.PathLike, kind: str) -> dict[str, Any]:
    """All arrays of the .npz file at ``path`` (``kind`` words the errors)."""
    np = host._np()
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no {kind} file at {str(path)!r}")
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError) as err:
        raise InputError(f"{str(path)!r} is not a readable pccore {kind} file: {err}") from err


# ---------------------------------------------------------------- networks
def network_arrays(net: Network, rt: Runtime | None = None) -> dict[str, Any]:
    """Host arrays describing ``net``: widths, activations, bias flags, dtype, W<k>, b<k>."""
    np = host._np()
    if not isinstance(net, Network):
        raise InputError(f"net must be a pccore.Network, got {type(net).__name__}")
    rt = rt if rt is not None else runtime_for(net.layers[0].W)
    out = {
        "format": np.array(FORMAT), "version": np.array(VERSION),
        "widths": np.array(net.widths, dtype=np.int64),
        "activations": np.array([layer.activation.name for layer in net.layers]),
        "bias": np.array([layer.b is not None for layer in net.layers]),
        "dtype": np.array(rt.dtype),
    }
    for k, layer in enumerate(net.layers):
        out[f"W{k}"] = rt.to_numpy(layer.W)
        if layer.b is not None:
            out[f"b{k}"] = rt.to_numpy(layer.b)
    return out


def network_from_arrays(arrays: dict[str, Any], rt: Runtime, where: str = "file") -> Network:
    """Rebuild a Network on ``rt`` (its backend, device and dtype) from :func:`network_arrays`."""
    for key in ("widths", "activations", "bias"):
        if key not in arrays:
            raise InputError(f"{where} is not a pccore network: the {key!r} entry is missing")
    widths = [int(w) for w in arrays["widths"]]
    layers = []
    for k, (act, has_b) in enumerate(zip(arrays["activations"], arrays["bias"])):
        W = arrays.get(f"W{k}")
        if W is None or tuple(W.shape) != (widths[k + 1], widths[k]):
            raise InputError(f"{where}: W{k} is missing or not of shape {(widths[k + 1], widths[k])}")
        b = arrays.get(f"b{k}") if bool(has_b) else None
        if bool(has_b) and b is None:
            raise InputError(f"{where}: b{k} is missing")
        layers.append(Dense(rt.asarray(W), None if b is None else rt.asarray(b), str(act)))
    return Network(layers)


def save(net: Network, path: str | os.PathLike) -> Path:
    """Save ``net`` (weights, biases, activations, dtype) to the .npz file ``path``, atomically.

    The path is used as given (no suffix is added). Returns it as a Path.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"path must be a file path, got {type(path).__name__}")
    return write_npz(path, network_arrays(net))


def load(path: str | os.PathLike, runtime: Runtime | None = None) -> Network:
    """Load a network saved by :func:`save` onto ``runtime`` (default: a numpy runtime of the
    saved dtype). Arrays take the runtime's device and dtype."""
    arrays = read_npz(path, "network")
    if str(arrays.get("format", "")) != FORMAT:
        raise InputError(f"{str(path)!r} is not a pccore network file (saved with pccore.save)")
    if runtime is None:
        from .runtime import runtime as make_runtime

        runtime = make_runtime("numpy", dtype=str(arrays["dtype"]))
    if not isinstance(runtime, Runtime):
        raise InputError(f"runtime must be a pccore.Runtime, got {type(runtime).__name__}")
    return network_from_arrays(arrays, runtime, repr(str(path)))


# ------------------------------------------------------------- checkpoints
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
    config = [str(c) for c in arrays["train/config"]]
    mine = [trainer.method, trainer.optimizer, repr(trainer.lr), str(trainer.batch_size), str(trainer.seed)]
    if config != mine:
        names = ("method", "optimizer", "lr", "batch_size", "seed")
        diff = [f"{n}: saved {a} vs now {b}" for n, a, b in zip(names, config, mine) if a != b]
        raise InputError(f"checkpoint {str(path)!r} was written by another training setup ({'; '.join(diff)})")
    net = network_from_arrays(arrays, session.runtime, repr(str(path)))
    for k, (p, q) in enumerate(zip(session.params, net.params())):
        if tuple(p.shape) != tuple(q.shape) or len(session.params) != len(net.params()):
            raise InputError(f"checkpoint {str(path)!r} holds a network of another architecture")
    _optimizer_hooks(session.optimizer)
    session.params = net.params()
    opt = {k[4:]: v for k, v in arrays.items() if k.startswith("opt/")}
    session.opt_state = session.optimizer.state_from_host(session.params, opt)
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
