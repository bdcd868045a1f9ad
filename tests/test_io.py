"""save/load: round trip on every backend, no pickle, atomic writes, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

import pccore
from pccore.errors import InputError
from pccore.network import Dense, Network

from conftest import batch_on


def mixed_net(rt):
    rng = np.random.default_rng(0)
    return Network([
        Dense(rt.asarray(rng.standard_normal((5, 4))), rt.asarray(rng.standard_normal(5)), "tanh"),
        Dense(rt.asarray(rng.standard_normal((6, 5))), None, "relu"),
        Dense(rt.asarray(rng.standard_normal((3, 6))), rt.asarray(rng.standard_normal(3)), "linear"),
    ])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip(backend, tmp_path, dtype):
    rt = pccore.runtime(backend, dtype=dtype)
    net = mixed_net(rt)
    path = pccore.save(net, tmp_path / "net.npz")
    assert path == tmp_path / "net.npz"
    back = pccore.load(path, rt)
    assert back.widths == net.widths == [4, 5, 6, 3]
    assert [l.activation.name for l in back.layers] == ["tanh", "relu", "linear"]
    assert [l.b is not None for l in back.layers] == [True, False, True]
    for p, q in zip(net.params(), back.params()):
        assert pccore.checks.framework_of(q) == backend
        assert q.dtype == p.dtype
        np.testing.assert_array_equal(rt.to_numpy(p), rt.to_numpy(q))
    x, _ = batch_on(rt, net.widths)
    np.testing.assert_array_equal(rt.to_numpy(net.forward(x)), rt.to_numpy(back.forward(x)))


def test_load_onto_another_backend(backend, tmp_path):
    src = pccore.runtime("numpy", dtype="float64")
    net = mixed_net(src)
    pccore.save(net, tmp_path / "net.npz")
    rt = pccore.runtime(backend, dtype="float64")
    back = pccore.load(tmp_path / "net.npz", rt)
    for p, q in zip(net.params(), back.params()):
        np.testing.assert_array_equal(p, rt.to_numpy(q))


def test_load_without_runtime_uses_numpy_and_the_saved_dtype(tmp_path):
    rt = pccore.runtime("numpy", dtype="float32")
    pccore.save(mixed_net(rt), tmp_path / "net.npz")
    back = pccore.load(tmp_path / "net.npz")
    assert isinstance(back.layers[0].W, np.ndarray) and back.layers[0].W.dtype == np.float32


def test_file_holds_plain_arrays_only(tmp_path):
    pccore.save(mixed_net(pccore.runtime("numpy")), tmp_path / "net.npz")
    with np.load(tmp_path / "net.npz", allow_pickle=False) as f:
        entries = {k: f[k] for k in f.files}  # raises if anything needed pickle
    assert all(a.dtype != object for a in entries.values())
    assert list(entries["activations"]) == ["tanh", "relu", "linear"]
    assert list(entries["bias"]) == [True, False, True]


def test_failed_save_leaves_the_old_file_intact(tmp_path, monkeypatch):
    rt = pccore.runtime("numpy", dtype="float64")
    old = mixed_net(rt)
    path = pccore.save(old, tmp_path / "net.npz")
    original = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"partial garbage")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    new = old.with_params([p + 1 for p in old.params()])
    with pytest.raises(OSError, match="disk full"):
        pccore.save(new, path)
    monkeypatch.undo()
    assert path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.npz"]  # temporary file removed
    np.testing.assert_array_equal(pccore.load(path, rt).layers[0].W, old.layers[0].W)


def test_save_and_load_errors(tmp_path):
    rt = pccore.runtime("numpy")
    net = mixed_net(rt)
    with pytest.raises(InputError, match="folder .* does not exist"):
        pccore.save(net, tmp_path / "missing" / "net.npz")
    with pytest.raises(InputError, match="net must be a pccore.Network"):
        pccore.save([1, 2], tmp_path / "net.npz")
    with pytest.raises(InputError, match="no network file at"):
        pccore.load(tmp_path / "nothing.npz", rt)
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(InputError, match="not a readable pccore network file"):
        pccore.load(tmp_path / "junk.npz", rt)
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(InputError, match="not a pccore network file"):
        pccore.load(tmp_path / "other.npz", rt)
    with pytest.raises(InputError, match="runtime must be a pccore.Runtime"):
        pccore.save(net, tmp_path / "ok.npz")
        pccore.load(tmp_path / "ok.npz", "numpy")
