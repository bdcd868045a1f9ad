"""save/load: round trip on every backend, no pickle, atomic writes, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

import pccore
from pccore.errors import InputError
from pccore.nn import Linear, Sequential

from conftest import batch_on


def mixed_net(rt):
    rng = np.random.default_rng(0)
    blocks = [Sequential(Linear(5), "tanh"), Sequential(Linear(6, bias=False), "relu"),
              Sequential(Linear(3), "linear")]
    params = ((rng.standard_normal((5, 4)), rng.standard_normal(5)), (rng.standard_normal((6, 5)),),
              (rng.standard_normal((3, 6)), rng.standard_normal(3)))
    return pccore.network(rt, blocks, (4,), params=params)


def _acts(net):
    return [b.ops[1].name for b in net.blocks]


def _biases(net):
    return [b.ops[0].bias for b in net.blocks]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip(backend, tmp_path, dtype):
    rt = pccore.runtime(backend, dtype=dtype)
    net = mixed_net(rt)
    path = pccore.save(net, tmp_path / "net.npz")
    assert path == tmp_path / "net.npz"
    back = pccore.load(path, rt)
    assert back.widths == net.widths == [4, 5, 6, 3]
    assert _acts(back) == ["tanh", "relu", "linear"]
    assert _biases(back) == [True, False, True]
    assert back.structure == net.structure
    for p, q in zip(net.flat_params(), back.flat_params()):
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
    for p, q in zip(net.flat_params(), back.flat_params()):
        np.testing.assert_array_equal(p, rt.to_numpy(q))


def test_load_without_runtime_uses_numpy_and_the_saved_dtype(tmp_path):
    rt = pccore.runtime("numpy", dtype="float32")
    pccore.save(mixed_net(rt), tmp_path / "net.npz")
    back = pccore.load(tmp_path / "net.npz")
    assert isinstance(back.params[0][0], np.ndarray) and back.params[0][0].dtype == np.float32


def test_file_holds_plain_arrays_only(tmp_path):
    pccore.save(mixed_net(pccore.runtime("numpy")), tmp_path / "net.npz")
    with np.load(tmp_path / "net.npz", allow_pickle=False) as f:
        entries = {k: f[k] for k in f.files}  # raises if anything needed pickle
    assert all(a.dtype != object for a in entries.values())
    import json

    blocks = json.loads(str(entries["structure"]))["blocks"]
    assert [b["ops"][1]["op"] for b in blocks] == ["Tanh", "ReLU", "Identity"]
    assert [b["ops"][0]["bias"] for b in blocks] == [True, False, True]


def test_failed_save_leaves_the_old_file_intact(tmp_path, monkeypatch):
    rt = pccore.runtime("numpy", dtype="float64")
    old = mixed_net(rt)
    path = pccore.save(old, tmp_path / "net.npz")
    original = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"partial garbage")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    new = old.with_params([p + 1 for p in old.flat_params()])
    with pytest.raises(OSError, match="disk full"):
        pccore.save(new, path)
    monkeypatch.undo()
    assert path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.npz"]  # temporary file removed
    np.testing.assert_array_equal(pccore.load(path, rt).params[0][0], old.params[0][0])


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


def _cnn_residual(rt):
    from pccore.nn import AvgPool2d, Conv2d, Flatten, Linear, MaxPool2d, Residual, Sequential

    blocks = [Sequential(Conv2d(3, 3, padding=1), "leaky_relu", MaxPool2d(2)),
              Residual(Sequential(Conv2d(3, 3, padding=1), "tanh", Conv2d(3, 3, padding=1, bias=False)),
                       activation="relu"),
              Residual(Conv2d(4, 1, stride=2), shortcut=Conv2d(4, 1, stride=2), activation="hard_tanh"),
              Sequential(AvgPool2d(2, stride=1, padding=1), Flatten(), Linear(2), "gelu")]
    return pccore.network(rt, blocks, (2, 8, 8), seed=4)


def test_any_structure_round_trips(backend, tmp_path):
    rt = pccore.runtime(backend, dtype="float64")
    net = _cnn_residual(rt)
    back = pccore.load(pccore.save(net, tmp_path / "cnn.npz"), rt)
    assert back.structure == net.structure
    x = rt.asarray(np.random.default_rng(0).standard_normal((3, 2, 8, 8)))
    np.testing.assert_array_equal(rt.to_numpy(net.forward(x)), rt.to_numpy(back.forward(x)))


def test_damaged_files_are_refused(tmp_path):
    rt = pccore.runtime("numpy", dtype="float64")
    path = pccore.save(_cnn_residual(rt), tmp_path / "cnn.npz")
    data = bytearray(path.read_bytes())
    (tmp_path / "short.npz").write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(InputError, match="is not a readable pccore network file"):
        pccore.load(tmp_path / "short.npz", rt)
    with np.load(path) as f:  # a changed weight, the file otherwise well-formed
        arrays = {k: f[k] for k in f.files}
    arrays["p0_0"] = arrays["p0_0"] + 1.0
    np.savez(tmp_path / "edited.npz", **arrays)
    with pytest.raises(InputError, match="is damaged: its checksum does not match"):
        pccore.load(tmp_path / "edited.npz", rt)


def test_resume_into_other_activations_is_refused(tmp_path):
    rt = pccore.runtime("numpy", dtype="float64")
    data = pccore.Dataset("toy", np.zeros((32, 4), np.float32), np.eye(2, dtype=np.float32)[[0, 1] * 16],
                          np.zeros((8, 4), np.float32), np.eye(2, dtype=np.float32)[[0, 1] * 4])
    trainer = pccore.Trainer("bp", batch_size=16, runtime=rt, progress=False)
    trainer.fit(pccore.mlp(rt, [4, 5, 2], activation="tanh"), data, checkpoint=tmp_path / "ck.npz")
    with pytest.raises(InputError, match=r"(?s)another structure:.*saved .*Tanh.*now .*ReLU"):
        trainer.fit(pccore.mlp(rt, [4, 5, 2], activation="relu"), data, checkpoint=tmp_path / "ck.npz",
                    resume=True)
