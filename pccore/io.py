"""Save/load networks and training checkpoints as ``.npz`` files (host NumPy, no pickle).

Files are written to a temporary file in the target folder and moved into place with
``os.replace``, so an interrupted save never damages an existing file.
"""

from __future__ import annotations

import glob
import hashlib
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from . import host
from .errors import InputError
from .nn.compose import Sequential
from .nn.linear import Linear
from .nn.network import Network
from .nn.serialize import structure_to_json
from .nn.serialize import structure_from_json
from .runtime import Runtime, runtime_for

FORMAT = "pccore-network"
CHECKPOINT = "pccore-checkpoint"
VERSION = 2  # 2: any structure (JSON) and a checksum; 1: Dense MLPs only (still readable)


# --------------------------------------------------------------- raw files
def _tmp_prefix(path: Path) -> str:
    """Prefix of ``path``'s temporary files: ``.<name>.<host>-<pid>.`` (who is writing)."""
    return f".{path.name}.{socket.gethostname()}-{os.getpid()}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but belongs to someone else
        return True
    return True


def remove_stale_tmp(path: Path) -> list[Path]:
    """Remove the temporary files a crashed save of ``path`` left (``.<name>.*.tmp``): those of
    dead processes of this host, of older pccore versions (no writer in the name) and of
    other hosts after an hour. Files of live writers stay. Returns the removed paths."""
    folder, removed = path.parent if str(path.parent) else Path("."), []
    host_name = socket.gethostname()
    for tmp in folder.glob(f".{glob.escape(path.name)}.*.tmp"):
        writer = tmp.name[len(path.name) + 2:].split(".", 1)[0]
        who, _, pid = writer.rpartition("-")
        try:
            if who == host_name and pid.isdigit():
                stale = not _alive(int(pid))
            elif who and pid.isdigit():
                stale = time.time() - tmp.stat().st_mtime > 3600
            else:
                stale = True
            if stale:
                tmp.unlink()
                removed.append(tmp)
        except OSError:  # gone already, or not ours to remove
            pass
    return removed


def write_npz(path: str | os.PathLike, arrays: dict[str, Any]) -> Path:
    """Write host ``arrays`` to ``path`` atomically (temporary file + ``os.replace``); the
    temporary files of earlier crashed saves of ``path`` are removed first."""
    np = host._np()
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"cannot save to {str(path)!r}: folder {str(folder)!r} does not exist")
    if path.is_dir():
        raise InputError(f"cannot save to {str(path)!r}: it is a folder")
    arrays = {**arrays, "checksum": np.array(_checksum(arrays))}
    remove_stale_tmp(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=folder)
    except OSError as err:
        raise InputError(f"cannot save to {str(path)!r}: cannot write to folder {str(folder)!r} "
                         f"({err.strerror or type(err).__name__})") from None
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
            arrays = {k: f[k] for k in f.files}
    except Exception as err:  # truncated or damaged: zipfile, zlib, numpy format errors
        raise InputError(f"{str(path)!r} is not a readable pccore {kind} file "
                         f"({type(err).__name__}: {err})") from None
    if "checksum" in arrays and str(arrays["checksum"]) != _checksum(arrays):
        raise InputError(f"{str(path)!r} is damaged: its checksum does not match its contents")
    if "checksum" not in arrays and "version" in arrays and _int(arrays["version"]) >= 2:
        raise InputError(f"{str(path)!r} is incomplete: its 'checksum' entry is missing")
    if "version" in arrays and _int(arrays["version"]) > VERSION:
        written = str(arrays.get("pccore_version", "a newer version"))
        raise InputError(f"{str(path)!r} has file format version {_int(arrays['version'])}, written by pccore "
                         f"{written}; this pccore reads versions up to {VERSION}: upgrade pccore")
    return arrays


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def require(arrays: dict[str, Any], keys: Any, where: str, kind: str) -> None:
    """Raise InputError naming the file when an entry of ``keys`` is missing from ``arrays``."""
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise InputError(f"{where} is an incomplete pccore {kind} file: the entr"
                         f"{'y' if len(missing) == 1 else 'ies'} {', '.join(map(repr, missing))} "
                         f"{'is' if len(missing) == 1 else 'are'} missing")


# ---------------------------------------------------------------- networks
def _checksum(arrays: dict[str, Any]) -> str:
    """sha256 over every entry (name, dtype, shape, bytes) but the checksum itself."""
    np = host._np()
    digest = hashlib.sha256()
    for key in sorted(k for k in arrays if k != "checksum"):
        value = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}|{value.dtype.str}|{value.shape}|".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def network_arrays(net: Network, rt: Runtime | None = None) -> dict[str, Any]:
    """Host arrays describing ``net``: format, versions, the structure (JSON), dtype and the
    parameters ``p<block>_<index>``."""
    from . import __version__

    np = host._np()
    if not isinstance(net, Network):
        raise InputError(f"net must be a pccore.Network, got {type(net).__name__}")
    flat = net.flat_params()
    rt = rt if rt is not None else (runtime_for(flat[0]) if flat else None)
    out = {
        "format": np.array(FORMAT), "version": np.array(VERSION),
        "pccore_version": np.array(__version__),
        "structure": np.array(structure_to_json(net.structure)),
        "dtype": np.array(rt.dtype if rt is not None else "float32"),
    }
    for l, block in enumerate(net.params):
        for i, p in enumerate(block):
            out[f"p{l}_{i}"] = rt.to_numpy(p)
    return out


def _legacy_mlp(arrays: dict[str, Any], where: str) -> tuple[list, tuple, dict]:
    """Blocks, input shape and renamed params of a version-1 file (a Dense MLP)."""
    for key in ("widths", "activations", "bias"):
        if key not in arrays:
            raise InputError(f"{where} is not a pccore network: the {key!r} entry is missing")
    widths = [int(w) for w in arrays["widths"]]
    blocks, params = [], {}
    for k, (act, has_b) in enumerate(zip(arrays["activations"], arrays["bias"])):
        blocks.append(Sequential(Linear(widths[k + 1], bias=bool(has_b)), str(act)))
        for i, name in enumerate(("W", "b")[:1 + bool(has_b)]):
            if f"{name}{k}" in arrays:
                params[f"p{k}_{i}"] = arrays[f"{name}{k}"]
    return blocks, (widths[0],), params


def network_from_arrays(arrays: dict[str, Any], rt: Runtime, where: str = "file") -> Network:
    """Rebuild a Network on ``rt`` (its backend, device and dtype) from :func:`network_arrays`;
    the stored structure, shapes and checksum are checked."""
    if "structure" not in arrays and _int(arrays.get("version", 1)) >= 2:
        require(arrays, ["structure"], where, "network")
    if "structure" not in arrays:
        blocks, input_shape, arrays = _legacy_mlp(arrays, where)
        shapes = None
    else:
        blocks, input_shape, shapes = structure_from_json(str(arrays["structure"]))
    from .nn.network import network

    template = network(rt, blocks, input_shape)
    if shapes is not None and tuple(template.structure.shapes) != shapes:
        raise InputError(f"{where}: the saved block shapes {shapes} do not match the structure's "
                         f"{template.structure.shapes}")
    params = []
    for l, shapes_l in enumerate(template.structure.param_shapes()):
        block = []
        for i, shape in enumerate(shapes_l):
            p = arrays.get(f"p{l}_{i}")
            if p is None or tuple(p.shape) != tuple(shape):
                raise InputError(f"{where}: parameter {i} of block {l} is missing or not of shape {tuple(shape)}")
            block.append(p)
        params.append(tuple(block))
    return template.with_params(tuple(tuple(rt.asarray(p) for p in block) for block in params))


def save(net: Network, path: str | os.PathLike) -> Path:
    """Save ``net`` (its whole structure as JSON, the parameters and dtype, a checksum) to the
    .npz file ``path``, atomically.

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
    where = repr(str(path))
    require(arrays, ["dtype"], where, "network")
    if runtime is None:
        from .runtime import DTYPES, runtime as make_runtime

        dtype = str(arrays["dtype"])
        if dtype not in DTYPES:
            raise InputError(f"{where} records dtype {dtype!r}; expected one of {DTYPES}")
        runtime = make_runtime("numpy", dtype=dtype)
    if not isinstance(runtime, Runtime):
        raise InputError(f"runtime must be a pccore.Runtime, got {type(runtime).__name__}")
    return network_from_arrays(arrays, runtime, repr(str(path)))
