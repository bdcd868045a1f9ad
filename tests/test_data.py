"""Dataset plugins: sklearn digits (offline), torchvision MNIST from the shared files,
Fashion-MNIST/EMNIST from tiny synthetic IDX files, CIFAR-10/100 from tiny synthetic pickle
folders, flattened vs image layouts, and the errors for bad names/folders/files."""

from __future__ import annotations

import os
import pickle
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

import pccore
import pccore_data
from pccore.errors import InputError, UnknownNameError

REPO = Path(__file__).resolve().parents[1]
MNIST_ROOT = Path(os.environ.get("PCCORE_MNIST_ROOT", REPO.parent / "shared" / "data"))


def _framework(a) -> str:
    from pccore.checks import framework_of

    return framework_of(a)


# ---------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits():
    return pccore.load_dataset("digits")


def test_digits_shapes_and_one_hot(digits):
    assert isinstance(digits, pccore.Dataset)
    assert digits.x_train.shape == (1437, 64) and digits.x_test.shape == (360, 64)
    assert digits.input_dim == 64 and digits.num_classes == 10
    for y in (digits.y_train, digits.y_test):
        assert y.dtype == np.float32 and set(np.unique(y)) == {0.0, 1.0}
        np.testing.assert_array_equal(y.sum(axis=1), 1.0)
    # stratified: every class appears in both splits
    assert (digits.y_train.sum(0) > 100).all() and (digits.y_test.sum(0) > 30).all()


def test_digits_standardised_with_training_stats(digits):
    assert digits.x_train.dtype == np.float32
    assert abs(float(digits.x_train.mean())) < 1e-5
    assert abs(float(digits.x_train.std()) - 1.0) < 1e-4
    # the test split uses the training mean/std, so it is close to but not exactly standard
    assert abs(float(digits.x_test.mean())) < 0.1 and float(digits.x_test.mean()) != 0.0
    # pixels are 0..16 before scaling: exactly 17 distinct values remain
    assert len(np.unique(digits.x_train)) == 17


def test_digits_split_is_seeded(digits):
    same = pccore.load_dataset("digits", seed=0)
    np.testing.assert_array_equal(same.x_train, digits.x_train)
    np.testing.assert_array_equal(same.y_test, digits.y_test)
    other = pccore.load_dataset("digits", seed=1)
    assert not np.array_equal(other.x_train, digits.x_train)
    half = pccore.load_dataset("digits", test_fraction=0.5)
    assert abs(half.x_test.shape[0] - half.x_train.shape[0]) <= 1


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.2, "0.2"])
def test_digits_bad_test_fraction(bad):
    with pytest.raises(InputError, match="test_fraction"):
        pccore.load_dataset("digits", test_fraction=bad)


def test_digits_batches_on_backend(backend, digits):
    rt = pccore.runtime(backend)
    got = list(pccore.batches(digits, rt, batch_size=100, seed=3))
    assert len(got) == 1437 // 100
    x, y = got[0]
    assert _framework(x) == backend and _framework(y) == backend
    assert tuple(x.shape) == (100, 64) and tuple(y.shape) == (100, 10)
    # same seed -> same rows on every backend
    order = np.random.Generator(np.random.PCG64(3)).permutation(1437)[:100]
    np.testing.assert_allclose(rt.to_numpy(x), digits.x_train[order], rtol=1e-6)
    np.testing.assert_array_equal(rt.to_numpy(y), digits.y_train[order])


def test_digits_images_hold_the_flattened_numbers(digits):
    images = pccore.load_dataset("digits", flatten=False)
    assert images.x_train.shape == (1437, 1, 8, 8) and images.x_test.shape == (360, 1, 8, 8)
    assert images.x_train.dtype == np.float32
    assert images.input_shape == (1, 8, 8) and images.input_dim == 64 and digits.input_shape == (64,)
    # the flattened form is exactly the reshaped image form (same split, same statistics)
    np.testing.assert_array_equal(images.x_train.reshape(1437, -1), digits.x_train)
    np.testing.assert_array_equal(images.x_test.reshape(360, -1), digits.x_test)
    np.testing.assert_array_equal(images.y_train, digits.y_train)


def test_digits_image_batches_on_backend(backend):
    images = pccore.load_dataset("digits", flatten=False)
    rt = pccore.runtime(backend)
    x, y = next(pccore.batches(images, rt, batch_size=32, seed=5))
    assert _framework(x) == backend and tuple(x.shape) == (32, 1, 8, 8) and tuple(y.shape) == (32, 10)
    order = np.random.Generator(np.random.PCG64(5)).permutation(1437)[:32]
    np.testing.assert_allclose(rt.to_numpy(x), images.x_train[order], rtol=1e-6)


@pytest.mark.parametrize("bad", [0, 1, "no", None])
def test_flatten_must_be_a_bool(tmp_path, bad):
    for name, options in (("digits", {}), ("mnist", {"root": tmp_path}), ("cifar10", {"root": tmp_path})):
        with pytest.raises(InputError, match="flatten must be True or False"):
            pccore.load_dataset(name, flatten=bad, **options)


# ---------------------------------------------------------------- Dataset


def _zeros(*shape):
    return np.zeros(shape, dtype=np.float32)


def test_dataset_takes_any_sample_shape():
    data = pccore.Dataset("img", _zeros(5, 3, 4, 2), _zeros(5, 7), _zeros(2, 3, 4, 2), _zeros(2, 7))
    assert data.input_shape == (3, 4, 2) and data.input_dim == 24 and data.num_classes == 7
    flat = pccore.Dataset("flat", _zeros(5, 6), _zeros(5, 2), _zeros(1, 6), _zeros(1, 2))
    assert flat.input_shape == (6,) and flat.input_dim == 6


@pytest.mark.parametrize(
    "arrays, match",
    [
        ((_zeros(5), _zeros(5, 2), _zeros(2, 3), _zeros(2, 2)), r"x_train must be \(n, \*input_shape\)"),
        ((_zeros(5, 3), _zeros(5), _zeros(2, 3), _zeros(2, 2)), r"y_train must be \(n, classes\), got \(5,\)"),
        ((_zeros(5, 3), _zeros(5, 2), _zeros(2, 3), _zeros(2, 2, 1)), r"y_test must be \(n, classes\)"),
        ((_zeros(5, 1, 3), _zeros(4, 2), _zeros(2, 1, 3), _zeros(2, 2)),
         r"same number of rows n, got \(5, 1, 3\) and \(4, 2\)"),
        ((_zeros(5, 1, 3), _zeros(5, 2), _zeros(2, 3), _zeros(2, 2)),
         r"same per-sample shape, got \(1, 3\) and \(3,\)"),
        ((_zeros(5, 3), _zeros(5, 2), _zeros(2, 3), _zeros(2, 4)), r"same number of classes, got 2 and 4"),
        (([[0.0]], _zeros(1, 2), _zeros(1, 1), _zeros(1, 2)), r"x_train must be an array, got list"),
    ],
)
def test_dataset_rejects_bad_shapes(arrays, match):
    with pytest.raises(InputError, match=match):
        pccore.Dataset("bad", *arrays)


def test_batches_of_images_keep_the_sample_shape(backend):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 2, 3, 3)).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 7)]
    data = pccore.Dataset("toy", x, y, x, y)
    rt = pccore.runtime(backend)
    got = list(pccore.batches(data, rt, batch_size=3, shuffle=False, drop_last=False))
    assert [tuple(b.shape) for b, _ in got] == [(3, 2, 3, 3), (3, 2, 3, 3), (1, 2, 3, 3)]
    np.testing.assert_array_equal(np.concatenate([rt.to_numpy(b) for b, _ in got]), x)


# ---------------------------------------------------------------- errors


def test_unknown_dataset_lists_installed():
    with pytest.raises(UnknownNameError) as err:
        pccore.load_dataset("nope")
    msg = str(err.value)
    assert "'nope'" in msg
    for name in ("digits", "mnist", "fashion_mnist", "emnist", "cifar10", "cifar100"):
        assert name in msg
    assert set(pccore.datasets()) >= {"digits", "mnist", "fashion_mnist", "emnist", "cifar10", "cifar100"}


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "emnist"])
def test_missing_folder_is_a_clear_error(tmp_path, name):
    root = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as err:
        pccore.load_dataset(name, root=root)
    msg = str(err.value)
    assert isinstance(err.value, InputError)
    assert str(root) in msg and "PCCORE_DATA_DIR" in msg and "--data-dir" in msg
    assert "download=True" in msg and "/raw/" in msg
    assert not root.exists()  # nothing was downloaded or created


def test_empty_raw_folder_and_env_var(tmp_path, monkeypatch):
    (tmp_path / "MNIST" / "raw").mkdir(parents=True)
    monkeypatch.setenv("PCCORE_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        pccore.load_dataset("mnist")


def test_bad_emnist_split(tmp_path):
    with pytest.raises(InputError, match="split must be one of"):
        pccore.load_dataset("emnist", root=tmp_path, split="everything")


# ---------------------------------------------------------------- torchvision (fake IDX files)


def _write_idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(
        struct.pack(">4B3i", 0, 0, 8, 3, n, h, w) + images.astype(np.uint8).tobytes()
    )
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(
        struct.pack(">4Bi", 0, 0, 8, 1, n) + labels.astype(np.uint8).tobytes()
    )


def _fake(n, classes, low=0, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28)), rng.integers(low, low + classes, n)


def test_fashion_mnist_from_idx_files(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    (xi, yi), (xt, yt) = _fake(30, 10), _fake(12, 10, seed=1)
    _write_idx(raw, "train", xi, yi)
    _write_idx(raw, "t10k", xt, yt)
    data = pccore.load_dataset("fashion_mnist", root=tmp_path)
    assert data.x_train.shape == (30, 784) and data.y_test.shape == (12, 10)
    assert abs(float(data.x_train.mean())) < 1e-5 and abs(float(data.x_train.std()) - 1) < 1e-4
    np.testing.assert_array_equal(data.y_train.argmax(1), yi)
    mean, std = (xi / 255).mean(), (xi / 255).std()
    np.testing.assert_allclose(data.x_test, ((xt / 255 - mean) / std).reshape(12, -1), rtol=1e-5, atol=1e-5)


def test_emnist_letters_from_idx_files(tmp_path):
    raw = tmp_path / "EMNIST" / "raw"
    (xi, yi), (xt, yt) = _fake(40, 26, low=1), _fake(10, 26, low=1, seed=1)
    _write_idx(raw, "emnist-letters-train", xi, yi)
    _write_idx(raw, "emnist-letters-test", xt, yt)
    data = pccore.load_dataset("emnist", root=tmp_path, split="letters")
    assert data.num_classes == 26 and data.x_train.shape == (40, 784)
    np.testing.assert_array_equal(data.y_train.argmax(1), yi - 1)  # labels 1..26 -> 0..25
    # images are made upright (EMNIST stores them transposed)
    mean, std = (xi / 255).mean(), (xi / 255).std()
    upright = ((xi.transpose(0, 2, 1) / 255 - mean) / std).reshape(40, -1)
    np.testing.assert_allclose(data.x_train, upright, rtol=1e-5, atol=1e-5)


def test_image_layout_from_idx_files(tmp_path):
    raw = tmp_path / "EMNIST" / "raw"
    (xi, yi), (xt, yt) = _fake(20, 10), _fake(6, 10, seed=1)
    _write_idx(raw, "emnist-digits-train", xi, yi)
    _write_idx(raw, "emnist-digits-test", xt, yt)
    flat = pccore.load_dataset("emnist", root=tmp_path)
    images = pccore.load_dataset("emnist", root=tmp_path, flatten=False)
    assert images.x_train.shape == (20, 1, 28, 28) and images.x_test.shape == (6, 1, 28, 28)
    assert images.input_shape == (1, 28, 28) and images.input_dim == 784
    np.testing.assert_array_equal(images.x_train.reshape(20, -1), flat.x_train)
    np.testing.assert_array_equal(images.x_test.reshape(6, -1), flat.x_test)
    # upright images, channel axis first
    mean, std = (xi / 255).mean(), (xi / 255).std()
    expected = ((xt.transpose(0, 2, 1) / 255 - mean) / std)[:, None]
    np.testing.assert_allclose(images.x_test, expected, rtol=1e-5, atol=1e-5)


def _fashion_files(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    (xi, yi), (xt, yt) = _fake(30, 10), _fake(12, 10, seed=1)
    _write_idx(raw, "train", xi, yi)
    _write_idx(raw, "t10k", xt, yt)
    return raw


@pytest.mark.parametrize(
    "file, keep",
    [
        ("train-images-idx3-ubyte", 16 + 784 * 10 + 5),  # cut inside the pixels
        ("train-images-idx3-ubyte", 6),  # cut inside the header
        ("t10k-images-idx3-ubyte", 0),  # empty file
        ("train-labels-idx1-ubyte", 8 + 20),  # fewer labels than images
    ],
)
def test_truncated_idx_file_is_an_input_error(tmp_path, file, keep):
    raw = _fashion_files(tmp_path)
    (raw / file).write_bytes((raw / file).read_bytes()[:keep])
    with pytest.raises(InputError) as err:
        pccore.load_dataset("fashion_mnist", root=tmp_path)
    assert not isinstance(err.value, FileNotFoundError)
    msg = str(err.value)
    assert str(raw.resolve()) in msg and "damaged or truncated" in msg and "'fashion_mnist'" in msg


# ---------------------------------------------------------------- real MNIST


@pytest.fixture(scope="module")
def mnist():
    if not (MNIST_ROOT / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
        pytest.skip(f"MNIST IDX files not found under {MNIST_ROOT}/MNIST/raw (set PCCORE_MNIST_ROOT)")
    return pccore.load_dataset("mnist", root=MNIST_ROOT)


def test_mnist_real_files(mnist):
    assert mnist.x_train.shape == (60000, 784) and mnist.x_test.shape == (10000, 784)
    assert mnist.y_train.shape == (60000, 10) and mnist.y_test.shape == (10000, 10)
    assert mnist.x_train.dtype == np.float32 and mnist.y_train.dtype == np.float32
    assert abs(float(mnist.x_train.mean())) < 1e-2 and abs(float(mnist.x_train.std()) - 1) < 1e-2
    np.testing.assert_array_equal(mnist.y_train.sum(1), 1.0)
    assert mnist.y_train.sum(0).min() > 5000  # every digit is present
    # background pixels map to -0.1307 / 0.3081
    np.testing.assert_allclose(mnist.x_train.min(), -0.1307 / 0.3081, rtol=1e-5)


def test_mnist_batches_on_backend(backend, mnist):
    rt = pccore.runtime(backend)
    x, y = next(pccore.batches(mnist, rt, batch_size=64, split="test", shuffle=False))
    assert _framework(x) == backend
    np.testing.assert_allclose(rt.to_numpy(x), mnist.x_test[:64], rtol=1e-6)
    np.testing.assert_array_equal(rt.to_numpy(y), mnist.y_test[:64])


def test_mnist_real_files_as_images(mnist):
    images = pccore.load_dataset("mnist", root=MNIST_ROOT, flatten=False)
    assert images.x_train.shape == (60000, 1, 28, 28) and images.x_test.shape == (10000, 1, 28, 28)
    assert images.input_shape == (1, 28, 28) and images.input_dim == 784 == mnist.input_dim
    np.testing.assert_array_equal(images.x_train.reshape(60000, -1), mnist.x_train)
    np.testing.assert_array_equal(images.x_test.reshape(10000, -1), mnist.x_test)
    # an independent read of the first test image straight from the IDX bytes
    raw = (MNIST_ROOT / "MNIST" / "raw" / "t10k-images-idx3-ubyte").read_bytes()
    first = np.frombuffer(raw, dtype=np.uint8, count=784, offset=16).reshape(28, 28)
    np.testing.assert_allclose(images.x_test[0, 0], (first / 255 - 0.1307) / 0.3081, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- CIFAR (synthetic pickle folders)

CIFAR10_DIR, CIFAR100_DIR = "cifar-10-batches-py", "cifar-100-python"


def _cifar_rows(n, seed):
    """(n, 3072) uint8 rows; each channel has its own range so the per-channel stats differ."""
    rng = np.random.default_rng(seed)
    low, high = np.array([0, 60, 120]), np.array([256, 200, 256])
    return np.concatenate(
        [rng.integers(lo, hi, (n, 1024)) for lo, hi in zip(low, high)], axis=1
    ).astype(np.uint8)


def _dump(path: Path, entry: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(entry, f)


def _write_cifar10(root: Path, per_batch=4, n_test=10):
    """Five training batches of ``per_batch`` images and a test batch, as on the CIFAR site."""
    folder = root / CIFAR10_DIR
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    splits = {"train": ([], []), "test": ([], [])}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        n = n_test if name == "test_batch" else per_batch
        data, labels = _cifar_rows(n, seed=i), [int(v) for v in rng.integers(0, 10, n)]
        _dump(folder / name, {
            b"batch_label": name.encode(), b"labels": labels, b"data": data,
            b"filenames": [f"img_{i}_{j}.png".encode() for j in range(n)],
        })
        split = splits["test" if name == "test_batch" else "train"]
        split[0].append(data)
        split[1].extend(labels)
    return {k: (np.concatenate(d), np.array(l)) for k, (d, l) in splits.items()}


def _write_cifar100(root: Path, n_train=20, n_test=10):
    folder = root / CIFAR100_DIR
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    out = {}
    for seed, (name, n) in enumerate((("train", n_train), ("test", n_test))):
        data = _cifar_rows(n, seed=10 + seed)
        fine, coarse = rng.integers(0, 100, n), rng.integers(0, 20, n)
        _dump(folder / name, {
            b"filenames": [b"x.png"] * n, b"batch_label": name.encode(),
            b"fine_labels": [int(v) for v in fine], b"coarse_labels": [int(v) for v in coarse], b"data": data,
        })
        out[name] = (data, fine, coarse)
    return out


def _standardised_images(train_rows, rows):
    """Independent recomputation: per-channel float64 mean/std of the training pixels / 255."""
    tr = train_rows.reshape(-1, 3, 1024) / 255.0
    mean, std = tr.mean(axis=(0, 2)), tr.std(axis=(0, 2))
    img = rows.reshape(-1, 3, 32, 32) / 255.0
    return (img - mean[:, None, None]) / std[:, None, None]


@pytest.fixture
def cifar10_root(tmp_path):
    return tmp_path, _write_cifar10(tmp_path)


def test_cifar10_from_pickles(cifar10_root):
    root, raw = cifar10_root
    data = pccore.load_dataset("cifar10", root=root, flatten=False)
    assert data.name == "cifar10" and data.num_classes == 10
    assert data.x_train.shape == (20, 3, 32, 32) and data.x_test.shape == (10, 3, 32, 32)
    assert data.input_shape == (3, 32, 32) and data.input_dim == 3072
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.float32
    for split in ("train", "test"):
        np.testing.assert_array_equal(getattr(data, f"y_{split}").argmax(1), raw[split][1])
        np.testing.assert_array_equal(getattr(data, f"y_{split}").sum(1), 1.0)
    # channel-first images standardised with the training split's per-channel stats
    train_rows = raw["train"][0]
    for split in ("train", "test"):
        expected = _standardised_images(train_rows, raw[split][0])
        np.testing.assert_allclose(getattr(data, f"x_{split}"), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(data.x_train.mean(axis=(0, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(data.x_train.std(axis=(0, 2, 3)), 1.0, atol=1e-4)
    assert abs(float(data.x_test.mean(axis=(0, 2, 3))[0])) > 1e-4  # test split: training stats


def test_cifar10_flattened_is_the_reshaped_image(cifar10_root):
    root, _ = cifar10_root
    flat = pccore.load_dataset("cifar10", root=root)
    images = pccore.load_dataset("cifar10", root=root, flatten=False)
    assert flat.x_train.shape == (20, 3072) and flat.x_test.shape == (10, 3072) and flat.input_dim == 3072
    np.testing.assert_array_equal(images.x_train.reshape(20, -1), flat.x_train)
    np.testing.assert_array_equal(images.x_test.reshape(10, -1), flat.x_test)


def test_cifar10_batches_on_backend(rt32, backend, cifar10_root):
    root, _ = cifar10_root
    data = pccore.load_dataset("cifar10", root=root, flatten=False)
    got = list(pccore.batches(data, rt32, batch_size=8, seed=2))
    assert len(got) == 2
    x, y = got[0]
    assert _framework(x) == backend and _framework(y) == backend
    assert tuple(x.shape) == (8, 3, 32, 32) and tuple(y.shape) == (8, 10)
    order = np.random.Generator(np.random.PCG64(2)).permutation(20)[:8]
    np.testing.assert_allclose(rt32.to_numpy(x), data.x_train[order], rtol=1e-6)
    np.testing.assert_array_equal(rt32.to_numpy(y), data.y_train[order])


def test_cifar10_needs_no_torchvision(monkeypatch, cifar10_root):
    root, raw = cifar10_root
    monkeypatch.setitem(sys.modules, "torchvision", None)
    data = pccore.load_dataset("cifar10", root=root)
    np.testing.assert_array_equal(data.y_test.argmax(1), raw["test"][1])


def test_cifar10_reads_python2_pickles(tmp_path):
    """The files on the CIFAR site were written by Python 2 (protocol 2, str as bytes, NumPy 1
    global names): build one byte by byte and read it."""

    def string(b):
        return (b"U" + bytes([len(b)]) + b) if len(b) < 256 else (b"T" + struct.pack("<I", len(b)) + b)

    def integer(v):
        return b"J" + struct.pack("<i", v)

    def py2_batch(rows, labels):
        n = rows.shape[0]
        dtype = b"cnumpy\ndtype\n" + string(b"u1") + integer(0) + integer(1) + b"\x87R"
        dtype += b"(" + integer(3) + string(b"|") + b"NNN" + integer(-1) + integer(-1) + integer(0) + b"tb"
        array = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"  # NumPy 1 name
        array += integer(0) + b"\x85" + string(b"b") + b"\x87R"
        array += b"(" + integer(1) + integer(n) + integer(3072) + b"\x86" + dtype
        array += b"\x89" + string(rows.tobytes()) + b"tb"
        labels = b"](" + b"".join(integer(int(v)) for v in labels) + b"e"
        return b"\x80\x02}(" + string(b"data") + array + string(b"labels") + labels + b"u."

    folder = tmp_path / CIFAR10_DIR
    folder.mkdir()
    names = [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]
    rows = {name: _cifar_rows(3, seed=i) for i, name in enumerate(names)}
    for name, r in rows.items():
        (folder / name).write_bytes(py2_batch(r, [1, 2, 9]))
    data = pccore.load_dataset("cifar10", root=tmp_path, flatten=False)
    train = np.concatenate([rows[f"data_batch_{k}"] for k in range(1, 6)])
    np.testing.assert_allclose(data.x_test, _standardised_images(train, rows["test_batch"]), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(data.y_train.argmax(1), [1, 2, 9] * 5)


@pytest.mark.parametrize("labels, classes, name", [("fine", 100, "cifar100"), ("coarse", 20, "cifar100-coarse")])
def test_cifar100_fine_and_coarse(tmp_path, labels, classes, name):
    raw = _write_cifar100(tmp_path)
    data = pccore.load_dataset("cifar100", root=tmp_path, labels=labels, flatten=False)
    assert data.name == name and data.num_classes == classes
    assert data.x_train.shape == (20, 3, 32, 32) and data.y_train.shape == (20, classes)
    column = 1 if labels == "fine" else 2
    np.testing.assert_array_equal(data.y_train.argmax(1), raw["train"][column])
    np.testing.assert_array_equal(data.y_test.argmax(1), raw["test"][column])
    expected = _standardised_images(raw["train"][0], raw["test"][0])
    np.testing.assert_allclose(data.x_test, expected, rtol=1e-5, atol=1e-5)
    flat = pccore.load_dataset("cifar100", root=tmp_path, labels=labels)
    assert flat.x_train.shape == (20, 3072)
    np.testing.assert_array_equal(data.x_train.reshape(20, -1), flat.x_train)


@pytest.mark.parametrize("bad", ["medium", "Fine", 100, None])
def test_cifar100_bad_labels(tmp_path, bad):
    with pytest.raises(InputError, match="labels must be 'fine'"):
        pccore.load_dataset("cifar100", root=tmp_path, labels=bad)


@pytest.mark.parametrize("name, folder", [("cifar10", CIFAR10_DIR), ("cifar100", CIFAR100_DIR)])
def test_cifar_missing_folder_is_a_clear_error(tmp_path, name, folder):
    root = tmp_path / "nowhere"
    with pytest.raises(pccore_data.DataNotFound) as err:
        pccore.load_dataset(name, root=root)
    assert isinstance(err.value, InputError) and isinstance(err.value, FileNotFoundError)
    msg = str(err.value)
    assert str(root) in msg and f"<root>/{folder}/" in msg and "/raw/" not in msg
    assert "PCCORE_DATA_DIR" in msg and "--data-dir" in msg and "download=True" in msg
    assert not root.exists()


def test_cifar_missing_file_is_data_not_found(cifar10_root):
    root, _ = cifar10_root
    (root / CIFAR10_DIR / "data_batch_3").unlink()
    with pytest.raises(pccore_data.DataNotFound, match="data_batch_1..5,test_batch"):
        pccore.load_dataset("cifar10", root=root)


def test_cifar_download_without_torchvision_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(pccore.MissingDependency) as err:
        pccore.load_dataset("cifar10", root=tmp_path, download=True)
    assert err.value.package == "torchvision" and "'cifar10'" in str(err.value)


@pytest.mark.parametrize("keep", [0, 1, 30, 0.5, -1])
def test_truncated_cifar_file_is_an_input_error(cifar10_root, keep):
    root, _ = cifar10_root
    path = root / CIFAR10_DIR / "data_batch_2"
    whole = path.read_bytes()
    path.write_bytes(whole[: int(len(whole) * keep) if isinstance(keep, float) else keep])
    with pytest.raises(InputError) as err:
        pccore.load_dataset("cifar10", root=root)
    assert not isinstance(err.value, FileNotFoundError)
    msg = str(err.value)
    assert repr(str(path)) in msg and "damaged or truncated" in msg and "(n, 3072) uint8" in msg


@pytest.mark.parametrize(
    "entry, match",
    [
        ({b"data": np.zeros((4, 3000), np.uint8), b"labels": [0] * 4},
         r"\(n, 3072\) uint8 array, got a uint8 array of shape \(4, 3000\)"),
        ({b"data": np.zeros((4, 3072), np.float32), b"labels": [0] * 4}, r"got a float32 array"),
        ({b"data": [[0] * 3072] * 4, b"labels": [0] * 4}, r"got a list"),
        ({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0] * 3}, r"one integer label per image \(4\)"),
        ({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2, 10]},
         r"must lie in \[0, 10\), got range \[0, 10\]"),
        ({b"data": np.zeros((4, 3072), np.uint8), b"fine_labels": [0] * 4},
         r"the dict has the keys b'data', b'fine_labels'"),
        ([1, 2, 3], r"got a list"),
    ],
)
def test_cifar_file_with_wrong_content(cifar10_root, entry, match):
    root, _ = cifar10_root
    path = root / CIFAR10_DIR / "test_batch"
    _dump(path, entry)
    with pytest.raises(InputError, match=match) as err:
        pccore.load_dataset("cifar10", root=root)
    assert repr(str(path)) in str(err.value)


class _RunsCode:
    """Unpickling this calls ``call(*args)``: what a tampered file could do to pickle.load."""

    def __init__(self, call, *args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


@pytest.mark.parametrize("where", ["data", "whole"])
def test_cifar_pickle_with_a_forbidden_global_is_refused(cifar10_root, where):
    root, _ = cifar10_root
    marker = root / "was_run"
    evil = _RunsCode(os.system, f"touch {marker}")
    entry = evil if where == "whole" else {b"data": evil, b"labels": [0]}
    path = root / CIFAR10_DIR / "data_batch_1"
    _dump(path, entry)
    assert os.system.__module__ in path.read_bytes().decode("latin1")  # the global is really in the file
    with pytest.raises(pccore_data.UnsafePickle) as err:
        pccore.load_dataset("cifar10", root=root)
    assert isinstance(err.value, InputError)
    msg = str(err.value)
    assert repr(str(path)) in msg and f"{os.system.__module__}.system" in msg and "numpy.ndarray" in msg
    assert not marker.exists()  # nothing was executed


def test_cifar_pickle_cannot_reach_builtins(cifar10_root):
    root, _ = cifar10_root
    path = root / CIFAR10_DIR / "test_batch"
    _dump(path, {b"data": _RunsCode(eval, "1 + 1"), b"labels": []})
    with pytest.raises(pccore_data.UnsafePickle, match="builtins.eval"):
        pccore.load_dataset("cifar10", root=root)

# ---------------------------------------------------------------- missing optional packages


@pytest.mark.parametrize(
    "module, name, package",
    [("torchvision", "mnist", "torchvision"), ("sklearn.datasets", "digits", "scikit-learn")],
)
def test_missing_package_names_the_extra(monkeypatch, tmp_path, module, name, package):
    monkeypatch.setitem(__import__("sys").modules, module, None)  # makes the import fail
    with pytest.raises(pccore.MissingDependency) as err:
        pccore.load_dataset(name, root=tmp_path)
    assert err.value.package == package and err.value.extra == "vision"
    assert "pccore[vision]" in str(err.value) and repr(name) in str(err.value)
