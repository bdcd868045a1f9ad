"""Dataset plugins: sklearn digits (offline), torchvision MNIST from the shared files,
Fashion-MNIST/EMNIST from tiny synthetic IDX files, and the errors for bad names/folders."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest

import pccore
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


# ---------------------------------------------------------------- errors


def test_unknown_dataset_lists_installed():
    with pytest.raises(UnknownNameError) as err:
        pccore.load_dataset("nope")
    msg = str(err.value)
    assert "'nope'" in msg
    for name in ("digits", "mnist", "fashion_mnist", "emnist"):
        assert name in msg
    assert set(pccore.datasets()) >= {"digits", "mnist", "fashion_mnist", "emnist"}


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
