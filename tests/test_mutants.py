"""Tests written for mutants that survived the suite (scripts/mutation_test.py): each checks
one behaviour against an independent oracle (NumPy by hand, finite differences, the
documented seeding), so that single-point bug cannot pass again."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import batch_on, host_batch

import pccore
from pccore.errors import InputError
from pccore_trackers import DistanceToOptimum
from pccore_trackers.metrics import steps_to_threshold


def _linear_data(n=24, d=3, classes=2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    y = np.eye(classes)[rng.integers(0, classes, n)]
    return pccore.Dataset("toy", x, y, x[:6].copy(), y[:6].copy())


def _host_params(rt, net):
    return [rt.to_numpy(p) for p in net.flat_params()]


# ---------------------------------------------------------------- training
@pytest.mark.parametrize("compile", [True, False], ids=["compiled", "eager"])
def test_sgd_step_divides_the_weight_gradient_by_the_batch(backend, compile):
    """One plain-SGD backprop step on a 2-layer linear net equals the closed form
    W <- W - lr * dC/dW / batch, with C = 1/2 sum ||W2 W1 x - y||^2 over the batch."""
    rt = pccore.runtime(backend, dtype="float64")
    net = pccore.mlp(rt, [3, 4, 2], seed=3)
    data = _linear_data(n=8)
    trainer = pccore.Trainer("bp", optimizer="sgd", lr=0.5, batch_size=8, runtime=rt, progress=False,
                             compile=compile)
    trained, _ = trainer.fit(net, data, max_steps=1)
    W1, W2 = _host_params(rt, net)
    order = np.random.Generator(np.random.PCG64(0)).permutation(8)  # the trainer's shuffle, seed 0 + epoch 0
    x, y = data.x_train[order], data.y_train[order]
    h = x @ W1.T
    r = h @ W2.T - y  # dC/dyhat
    gW2, gW1 = r.T @ h, (r @ W2).T @ x
    got = _host_params(rt, trained)
    np.testing.assert_allclose(got[0], W1 - 0.5 * gW1 / 8, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got[1], W2 - 0.5 * gW2 / 8, rtol=1e-12, atol=1e-14)


def test_shuffling_uses_seed_plus_epoch(backend):
    """The first loss of each epoch is the batch-mean loss, on the first batch of the
    permutation drawn from PCG64(seed + epoch), of the weights at that point."""
    rt = pccore.runtime(backend, dtype="float64")
    net, data, seed = pccore.mlp(rt, [3, 4, 2], seed=1), _linear_data(n=24, seed=2), 5
    trainer = pccore.Trainer("bp", optimizer="sgd", lr=0.1, batch_size=8, seed=seed, runtime=rt, progress=False,
                             log_every=1)
    _, history = trainer.fit(net, data, epochs=2)
    after_one, _ = trainer.fit(net, data, epochs=1)

    def first_loss(params, epoch):
        idx = np.random.Generator(np.random.PCG64(seed + epoch)).permutation(24)[:8]
        yhat = data.x_train[idx] @ params[0].T @ params[1].T
        return 0.5 * np.sum((yhat - data.y_train[idx]) ** 2) / 8

    assert history.step[:4] == [1, 2, 3, 4] and len(history.loss) == 6
    assert history.loss[0] == pytest.approx(first_loss(_host_params(rt, net), 0), rel=1e-12)
    assert history.loss[3] == pytest.approx(first_loss(_host_params(rt, after_one), 1), rel=1e-12)


# ---------------------------------------------------------------- inference
def test_inference_momentum_is_used(backend):
    """Two EO steps with momentum m: e1 = -lr g(0), e2 = e1 - lr (m g(0) + g(e1)), with g the
    error-energy gradient (itself checked against finite differences in test_energy)."""
    rt = pccore.runtime(backend, dtype="float64")
    widths = [3, 4, 5, 2]
    net = pccore.mlp(rt, widths, activation="tanh", seed=4)
    x, y = batch_on(rt, widths)
    lr, m = 0.1, 0.5
    zero = [rt.asarray(np.zeros((6, w))) for w in widths[1:-1]]
    g0 = [rt.to_numpy(g) for g in pccore.error_energy_grad(net, x, y, zero)]
    e1 = [-lr * g for g in g0]
    g1 = [rt.to_numpy(g) for g in pccore.error_energy_grad(net, x, y, [rt.asarray(e) for e in e1])]
    e2 = [e - lr * (m * a + b) for e, a, b in zip(e1, g0, g1)]
    result = pccore.ErrorOptimization(iters=2, lr=lr, optimizer="momentum", momentum=m).run(net, x, y)
    for got, want in zip(result.errors, e2):
        np.testing.assert_allclose(rt.to_numpy(got), want, rtol=1e-10, atol=1e-13)


def test_tol_met_at_the_last_iteration_is_converged(backend):
    """A run that stops by tol after n updates, repeated with iters=n: the loop never tests
    tol before a further step, but the end point meets it, so it is converged too."""
    rt = pccore.runtime(backend, dtype="float64")
    widths = [3, 4, 5, 2]
    net = pccore.mlp(rt, widths, seed=4)
    x, y = batch_on(rt, widths)
    first = pccore.ErrorOptimization(iters=500, lr=0.2, tol=1e-6).run(net, x, y)
    assert first.converged and 1 < first.iterations < 500
    again = pccore.ErrorOptimization(iters=first.iterations, lr=0.2, tol=1e-6).run(net, x, y)
    assert again.iterations == first.iterations and again.converged
    short = pccore.ErrorOptimization(iters=first.iterations // 2, lr=0.2, tol=1e-6).run(net, x, y)
    assert not short.converged


# --------------------------------------------------------------------- losses
def test_cross_entropy_with_soft_targets_matches_finite_differences(backend):
    """Targets that are not one-hot (rows summing to 0.3..1.7): the gradient and the
    Hessian-vector product of -sum(y * log_softmax(z)) against central differences."""
    rt = pccore.runtime(backend, dtype="float64")
    rng = np.random.default_rng(0)
    z, v = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    y = rng.uniform(0.1, 1.0, (4, 3))
    y *= np.array([0.3, 1.0, 1.7, 0.8])[:, None] / y.sum(axis=1, keepdims=True)

    def value(zz):
        s = zz - zz.max(axis=1, keepdims=True)
        return -np.sum(y * (s - np.log(np.exp(s).sum(axis=1, keepdims=True))))

    ce, xp, h = pccore.CrossEntropy(), rt.xp, 1e-6
    fd_grad = np.zeros_like(z)
    for i in np.ndindex(z.shape):
        dz = np.zeros_like(z)
        dz[i] = h
        fd_grad[i] = (value(z + dz) - value(z - dz)) / (2 * h)
    grad = rt.to_numpy(ce.grad(xp, rt.asarray(z), rt.asarray(y)))
    np.testing.assert_allclose(grad, fd_grad, rtol=1e-7, atol=1e-8)
    fd_hvp = (rt.to_numpy(ce.grad(xp, rt.asarray(z + h * v), rt.asarray(y)))
              - rt.to_numpy(ce.grad(xp, rt.asarray(z - h * v), rt.asarray(y)))) / (2 * h)
    np.testing.assert_allclose(rt.to_numpy(ce.hvp(xp, rt.asarray(z), rt.asarray(y), rt.asarray(v))), fd_hvp,
                               rtol=1e-6, atol=1e-8)


def test_mse_with_precision_by_hand(backend):
    rt = pccore.runtime(backend, dtype="float64")
    rng = np.random.default_rng(1)
    yhat, y, v = rng.standard_normal((3, 2)), rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    mse, xp = pccore.MSE(precision=2.5), rt.xp
    assert float(rt.to_numpy(mse.value(xp, rt.asarray(yhat), rt.asarray(y)))) == pytest.approx(
        1.25 * np.sum((yhat - y) ** 2), rel=1e-12)
    np.testing.assert_allclose(rt.to_numpy(mse.grad(xp, rt.asarray(yhat), rt.asarray(y))), 2.5 * (yhat - y),
                               rtol=1e-12)
    np.testing.assert_allclose(rt.to_numpy(mse.hvp(xp, rt.asarray(yhat), rt.asarray(y), rt.asarray(v))), 2.5 * v,
                               rtol=1e-12)


# ------------------------------------------------------------------------ I/O
def test_float64_network_loads_as_float64_without_runtime(backend, tmp_path):
    rt = pccore.runtime(backend, dtype="float64")
    net = pccore.mlp(rt, [3, 4, 2], bias=True, seed=2)
    net = net.with_params([p + rt.asarray(np.full(p.shape, 1e-12)) for p in net.flat_params()])  # beyond float32
    back = pccore.load(pccore.save(net, tmp_path / "net.npz"))
    assert str(back.dtype) == "float64"
    for a, b in zip(_host_params(rt, net), [np.asarray(p) for p in back.flat_params()]):
        np.testing.assert_array_equal(a, b)


def _saved_arrays(tmp_path):
    rt = pccore.runtime("numpy")
    path = pccore.save(pccore.mlp(rt, [4, 5, 2]), tmp_path / "net.npz")
    with np.load(path) as f:
        return path, {k: f[k] for k in f.files}


def test_checksum_covers_shape_and_dtype(tmp_path):
    """The same bytes under another shape or dtype, the old checksum kept: damaged."""
    path, arrays = _saved_arrays(tmp_path)
    for changed in (arrays["p0_0"].reshape(4, 5), arrays["p0_0"].view(np.int32)):
        np.savez(path, **{**arrays, "p0_0": changed})
        with pytest.raises(InputError, match="is damaged: its checksum does not match its contents"):
            pccore.load(path)


def test_parameter_of_the_wrong_shape_is_named(tmp_path):
    from pccore.io import _checksum

    path, arrays = _saved_arrays(tmp_path)
    arrays = {k: v for k, v in arrays.items() if k != "checksum"}
    arrays["p0_0"] = np.ascontiguousarray(arrays["p0_0"].T)
    np.savez(path, **arrays, checksum=np.array(_checksum(arrays)))
    with pytest.raises(InputError, match=r"parameter 0 of block 0 is missing or not of shape \(5, 4\)"):
        pccore.load(path)


# ------------------------------------------------------------------- trackers
def test_steps_to_threshold_uses_the_batch_median():
    """Median and mean differ: one far-off sample must not hold back the median."""
    distances = np.array([[0.0, 0.2, 9.0], [0.0, 0.05, 9.0], [0.0, 0.01, 0.02]])
    assert steps_to_threshold(distances, 0.1) == 1  # medians 0.2, 0.05, 0.01 (means 3.07, 3.02, 0.01)
    assert steps_to_threshold(distances, 0.001) is None

    known = {0: distances, 1: distances[:, ::-1] * 0.5}

    class Fixed(DistanceToOptimum):  # the tracker's all-layer test on known distances
        distances = known
        iterations = np.array([0, 10, 20])

    tracker = Fixed([np.zeros((3, 1)), np.zeros((3, 1))])
    assert tracker.steps_to(0.1) == 10 and tracker.steps_to(0.1, layer=1) == 10
    assert tracker.steps_to(0.015) == 20


# ------------------------------------------------------------------- backends
def test_asarray_copies(backend):
    """rt.asarray never aliases the caller's data: a later write to the source (a NumPy array,
    or a tensor of the same framework) leaves the backend array unchanged."""
    rt = pccore.runtime(backend)
    for shape in [(64, 64), (65, 64), (3,)]:  # JAX shares only suitably aligned host buffers
        for _ in range(4):
            host = np.ones(shape, np.float32)
            array = rt.asarray(host)
            host[0] = 5.0
            assert rt.to_numpy(array).max() == 1.0
    if backend == "torch":
        import torch

        source = torch.ones(5)
        array = rt.asarray(source)
        source[0] = 7.0
        assert float(array[0]) == 1.0
