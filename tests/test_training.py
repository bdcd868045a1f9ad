"""Training: closed-form backprop vs autodiff and finite differences, PC training on digits,
hooks, history, checkpoint/resume equal to an uninterrupted run, input errors."""

from __future__ import annotations

import numpy as np
import pytest

import pccore
from pccore import hookimpl
from pccore.errors import InputError
from pccore.nn import Linear, Sequential

from conftest import batch_on, host_batch

WIDTHS = [4, 5, 6, 3]


def mixed_net(rt, seed=0):
    """tanh (bias), relu (no bias), linear (bias): every branch of the backward sweep."""
    rng = np.random.default_rng(seed)
    acts, biases = ["tanh", "relu", "linear"], [True, False, True]
    blocks, params = [], []
    for (i, o), act, has_b in zip(zip(WIDTHS[:-1], WIDTHS[1:]), acts, biases):
        W = rng.standard_normal((o, i)) / np.sqrt(i)
        params.append((W, rng.standard_normal(o) * 0.1) if has_b else (W,))
        blocks.append(Sequential(Linear(o, bias=has_b), act))
    return pccore.network(rt, blocks, (WIDTHS[0],), params=params)


def host_loss(params, x, y, loss):
    """Reference loss in float64 NumPy for finite differences (same layout as mixed_net)."""
    W1, b1, W2, W3, b3 = params
    h = np.tanh(x @ W1.T + b1)
    h = np.maximum(h @ W2.T, 0)
    yhat = h @ W3.T + b3
    if loss == "mse":
        return 0.5 * np.sum((yhat - y) ** 2)
    z = yhat - yhat.max(axis=1, keepdims=True)
    return -np.sum(y * (z - np.log(np.exp(z).sum(axis=1, keepdims=True))))


@pytest.mark.parametrize("loss", ["mse", "ce"])
def test_backprop_grads_match_finite_differences(rt64, loss):
    net = mixed_net(rt64)
    x, y = batch_on(rt64, WIDTHS, onehot=True)
    grads = [rt64.to_numpy(g) for g in net.structure.flatten(pccore.backprop_grads(net, x, y, loss))]
    params = [rt64.to_numpy(p) for p in net.flat_params()]
    hx, hy = rt64.to_numpy(x), rt64.to_numpy(y)
    assert [g.shape for g in grads] == [p.shape for p in params]
    eps = 1e-6
    for k, p in enumerate(params):
        fd = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            for sign in (1, -1):
                q = [a.copy() for a in params]
                q[k][idx] += sign * eps
                fd[idx] += sign * host_loss(q, hx, hy, loss) / (2 * eps)
        np.testing.assert_allclose(grads[k], fd, rtol=1e-5, atol=1e-7)


def _autodiff_grads(backend, params, x, y, loss):
    """Gradient of the summed loss by the framework's autodiff (torch.func / jax.grad)."""
    if backend == "jax":
        import jax
        import jax.numpy as ops
        grad = jax.grad
    else:  # numpy and torch arrays: torch.func on host copies / the tensors themselves
        torch = pytest.importorskip("torch")
        ops = torch
        grad = torch.func.grad

    def f(ps):
        W1, b1, W2, W3, b3 = ps
        h = ops.tanh(x @ W1.T + b1)
        h = ops.maximum(h @ W2.T, ops.zeros_like(h @ W2.T))
        yhat = h @ W3.T + b3
        if loss == "mse":
            return 0.5 * ops.sum((yhat - y) ** 2)
        z = yhat - ops.max(yhat, axis=1, keepdims=True) if backend == "jax" else yhat - yhat.max(dim=1, keepdim=True).values
        lse = ops.log(ops.sum(ops.exp(z), axis=1, keepdims=True)) if backend == "jax" else z.exp().sum(1, keepdim=True).log()
        return -ops.sum(y * (z - lse))

    return grad(f)(tuple(params))


@pytest.mark.parametrize("loss", ["mse", "ce"])
def test_backprop_grads_match_autodiff(rt64, backend, loss):
    net = mixed_net(rt64, seed=3)
    x, y = batch_on(rt64, WIDTHS, seed=3, onehot=True)
    ours = [rt64.to_numpy(g) for g in net.structure.flatten(pccore.backprop_grads(net, x, y, loss))]
    if backend == "numpy":
        torch = pytest.importorskip("torch")
        to = lambda a: torch.as_tensor(np.asarray(a))  # noqa: E731
        ref = _autodiff_grads("torch", [to(p) for p in net.flat_params()], to(x), to(y), loss)
        ref = [r.numpy() for r in ref]
    else:
        ref = [rt64.to_numpy(r) for r in _autodiff_grads(backend, net.flat_params(), x, y, loss)]
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_backprop_grads_rejects_bad_shapes(rt64):
    net = mixed_net(rt64)
    x, y = batch_on(rt64, WIDTHS)
    with pytest.raises(InputError, match="y must have shape"):
        pccore.backprop_grads(net, x, x, "mse")


# --------------------------------------------------------------- datasets
@pytest.fixture(scope="module")
def digits():
    pytest.importorskip("sklearn")
    return pccore.load_dataset("digits")


def teacher_data(n_train=96, n_test=32, d_in=6, classes=3, seed=0):
    """Small synthetic classification set (host float32), cheap to train on."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((classes, d_in))
    x = rng.standard_normal((n_train + n_test, d_in)).astype(np.float32)
    y = np.eye(classes, dtype=np.float32)[np.argmax(x @ W.T, axis=1)]
    return pccore.Dataset("teacher", x[:n_train], y[:n_train], x[n_train:], y[n_train:])


def test_pc_training_with_eo_reduces_test_loss_on_digits(backend, digits):
    rt = pccore.runtime(backend)
    net = pccore.mlp(rt, [64, 32, 10], activation="tanh", bias=True, init="xavier_uniform", seed=1)
    trainer = pccore.Trainer("eo", inference=pccore.ErrorOptimization(iters=20, lr=0.1), lr=3e-3, progress=False)
    before = trainer.evaluate(net, digits)
    trained, history = trainer.fit(net, digits, epochs=1)
    after = trainer.evaluate(trained, digits)
    assert after["loss"] < 0.7 * before["loss"]
    assert after["accuracy"] > before["accuracy"] + 0.2
    assert len(history.step) == digits.x_train.shape[0] // 64
    assert all(e is not None and e > 0 for e in history.energy)
    assert history.epochs[-1]["test_loss"] == pytest.approx(after["loss"])


def test_fit_leaves_the_callers_network_untouched(backend):
    rt = pccore.runtime(backend, dtype="float64")
    net = pccore.mlp(rt, [6, 8, 3], activation="tanh", bias=True, seed=0)
    before = [rt.to_numpy(p) for p in net.flat_params()]
    trained, _ = pccore.Trainer("eo", progress=False, lr=1e-2).fit(net, teacher_data(), epochs=1)
    for p, q in zip(before, net.flat_params()):
        np.testing.assert_array_equal(p, rt.to_numpy(q))
    assert any(not np.allclose(p, rt.to_numpy(q)) for p, q in zip(before, trained.flat_params()))


@pytest.mark.parametrize("method", ["eo", "so", "bp"])
def test_training_gives_the_same_weights_on_every_backend(backend, method):
    data = teacher_data()
    results = {}
    for name in {"numpy", backend}:
        rt = pccore.runtime(name, dtype="float64")
        net = pccore.mlp(rt, [6, 8, 3], activation="tanh", bias=True, seed=0)
        inference = None if method == "bp" else (
            pccore.ErrorOptimization(10, 0.1) if method == "eo" else pccore.StateOptimization(10, 0.2))
        trained, hist = pccore.Trainer(method, inference=inference, lr=1e-2, batch_size=16,
                                       progress=False).fit(net, data, epochs=1)
        results[name] = ([rt.to_numpy(p) for p in trained.flat_params()], hist.loss)
    for a, b in zip(results["numpy"][0], results[backend][0]):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(results["numpy"][1], results[backend][1], rtol=1e-9)


class Recorder:
    """Observer plugin counting training hooks."""

    def __init__(self):
        self.steps, self.epochs = [], []

    @hookimpl
    def pccore_train_step(self, info):
        self.steps.append((info.step, info.epoch, info.loss, info.energy))

    @hookimpl
    def pccore_epoch_end(self, info):
        self.epochs.append((info.epoch, info.step, dict(info.metrics)))


def test_hooks_and_history(backend):
    rt = pccore.runtime(backend, dtype="float64")
    rec = rt.register(Recorder())
    net = pccore.mlp(rt, [6, 8, 3], activation="tanh", seed=0)
    data = teacher_data()
    _, h = pccore.Trainer("bp", batch_size=32, progress=False, runtime=rt).fit(net, data, epochs=2, eval_every=2)
    assert [s[0] for s in rec.steps] == [1, 2, 3, 4, 5, 6] == h.step
    assert [s[1] for s in rec.steps] == [0, 0, 0, 1, 1, 1]
    assert all(s[3] is None for s in rec.steps) and h.energy == [None] * 6
    assert [e[:2] for e in rec.epochs] == [(0, 3), (1, 6)]
    assert set(rec.epochs[0][2]) == {"train_loss", "test_loss", "test_accuracy"}
    assert h.eval_step == [2, 3, 4, 6]  # every 2 steps plus each epoch end, no duplicates
    assert len(h.eval_loss) == len(h.eval_accuracy) == 4
    assert h.epochs[0]["train_loss"] == pytest.approx(np.mean(h.loss[:3]))


def test_evaluate_counts_argmax_agreement(backend):
    rt = pccore.runtime(backend, dtype="float64")
    W = np.eye(3)
    net = pccore.network(rt, [Linear(3, bias=False)], (3,), params=[(W,)])
    x = np.array([[1, 0, 0], [0, 2, 0], [0, 0, 3], [5, 0, 0]], dtype=np.float32)
    y = np.eye(3, dtype=np.float32)[[0, 1, 2, 1]]
    data = pccore.Dataset("toy", x, y, x, y)
    metrics = pccore.Trainer("bp", progress=False).evaluate(net, data, batch_size=3)
    assert metrics["accuracy"] == pytest.approx(0.75)
    expected = 0.5 * (0 + (2 - 1) ** 2 + (3 - 1) ** 2 + (5 ** 2 + 1)) / 4
    assert metrics["loss"] == pytest.approx(expected)


# ------------------------------------------------------------- checkpoints
def _params(rt, net):
    return [rt.to_numpy(p) for p in net.flat_params()]


@pytest.mark.parametrize("optimizer", ["adam", "momentum"])
def test_resume_reaches_the_uninterrupted_result(backend, tmp_path, optimizer):
    rt = pccore.runtime(backend, dtype="float64")
    data = teacher_data()
    net = pccore.mlp(rt, [6, 8, 3], activation="tanh", bias=True, seed=0)
    trainer = pccore.Trainer("eo", inference=pccore.ErrorOptimization(10, 0.1), optimizer=optimizer,
                             lr=1e-2, batch_size=16, progress=False, runtime=rt)
    full, full_hist = trainer.fit(net, data, epochs=2)
    trainer.fit(net, data, epochs=1, checkpoint=tmp_path)
    assert (tmp_path / "checkpoint.npz").is_file()
    rec = rt.register(Recorder())
    resumed, hist = trainer.fit(net, data, epochs=2, checkpoint=tmp_path, resume=True)
    rt.unregister(rec)
    assert [s[0] for s in rec.steps] == list(range(7, 13))  # only the second epoch ran
    for a, b in zip(_params(rt, full), _params(rt, resumed)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    assert hist.as_dict() == full_hist.as_dict()


def test_resume_from_the_middle_of_an_epoch(backend, tmp_path):
    rt = pccore.runtime(backend, dtype="float64")
    data = teacher_data()
    net = pccore.mlp(rt, [6, 8, 3], activation="tanh", seed=0)
    trainer = pccore.Trainer("bp", lr=1e-2, batch_size=16, progress=False, runtime=rt)
    full, _ = trainer.fit(net, data, epochs=2)
    path = tmp_path / "mid.npz"
    part, hist = trainer.fit(net, data, epochs=2, max_steps=4, checkpoint=path)
    assert hist.step == [1, 2, 3, 4]
    assert not np.allclose(_params(rt, part)[0], _params(rt, full)[0])
    resumed, hist = trainer.fit(net, data, epochs=2, checkpoint=path, resume=True)
    assert hist.step == list(range(1, 13))
    for a, b in zip(_params(rt, full), _params(rt, resumed)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_resume_without_a_checkpoint_file_starts_fresh(tmp_path):
    rt = pccore.runtime("numpy", dtype="float64")
    net = pccore.mlp(rt, [6, 8, 3], seed=0)
    trainer = pccore.Trainer("bp", batch_size=16, progress=False)
    a, _ = trainer.fit(net, teacher_data(), checkpoint=tmp_path / "new.npz", resume=True)
    b, _ = trainer.fit(net, teacher_data())
    for p, q in zip(a.flat_params(), b.flat_params()):
        np.testing.assert_array_equal(p, q)
    assert (tmp_path / "new.npz").is_file()


def test_resume_with_another_setup_is_refused(tmp_path):
    rt = pccore.runtime("numpy", dtype="float64")
    net = pccore.mlp(rt, [6, 8, 3], seed=0)
    pccore.Trainer("bp", batch_size=16, progress=False).fit(net, teacher_data(), checkpoint=tmp_path)
    with pytest.raises(InputError, match="lr: saved 0.001 vs now 0.01"):
        pccore.Trainer("bp", lr=1e-2, batch_size=16, progress=False).fit(
            net, teacher_data(), epochs=2, checkpoint=tmp_path, resume=True)
    other = pccore.mlp(rt, [6, 4, 3], seed=0)
    with pytest.raises(InputError, match="another structure"):
        pccore.Trainer("bp", batch_size=16, progress=False).fit(
            other, teacher_data(), epochs=2, checkpoint=tmp_path, resume=True)


# ------------------------------------------------------------------ errors
def test_trainer_input_errors():
    rt = pccore.runtime("numpy")
    net = pccore.mlp(rt, [6, 8, 3], seed=0)
    data = teacher_data()
    with pytest.raises(InputError, match="method must be one of"):
        pccore.Trainer("pc")
    with pytest.raises(InputError, match=r"needs an inference method on the errors \(e.g. pccore.ErrorOptimization"):
        pccore.Trainer("eo", inference=pccore.StateOptimization(5, 0.1))
    with pytest.raises(InputError, match="must be None for method='bp'"):
        pccore.Trainer("bp", inference=pccore.ErrorOptimization(5, 0.1))
    with pytest.raises(InputError, match="lr must be"):
        pccore.Trainer("eo", lr=0)
    with pytest.raises(InputError, match="batch_size must be"):
        pccore.Trainer("eo", batch_size=0)
    with pytest.raises(InputError, match="data must be a pccore.Dataset"):
        pccore.Trainer("bp", progress=False).fit(net, (data.x_train, data.y_train))
    with pytest.raises(InputError, match="resume=True needs checkpoint"):
        pccore.Trainer("bp", progress=False).fit(net, data, resume=True)
    with pytest.raises(InputError, match="larger than the 96 training samples"):
        pccore.Trainer("bp", batch_size=200, progress=False).fit(net, data)
    with pytest.raises(InputError, match="epochs must be"):
        pccore.Trainer("bp", progress=False).fit(net, data, epochs=0)
    with pytest.raises(pccore.UnknownNameError, match="unknown optimizer"):
        pccore.Trainer("bp", optimizer="lbfgs", progress=False).fit(net, data)


def test_progress_line_goes_to_stderr(capsys):
    rt = pccore.runtime("numpy")
    net = pccore.mlp(rt, [6, 8, 3], seed=0)
    pccore.Trainer("eo", batch_size=32).fit(net, teacher_data())
    err = capsys.readouterr().err
    assert "[eo] epoch 1/1" in err and "3/3" in err and "loss=" in err and "energy=" in err
    pccore.Trainer("eo", batch_size=32, progress=False).fit(net, teacher_data())
    assert capsys.readouterr().err == ""
