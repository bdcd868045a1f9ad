"""Models beyond MLPs: conv, pooling, residual and foreign blocks, on every backend.

Energies, their gradients over states and errors, block-local weight gradients, backprop
gradients and per-block JVPs are checked in float64 against directional central finite
differences (every backend) and against the framework's autodiff (torch.func / jax) of the
same energies written here independently, with torch.nn.functional / jax.lax forwards.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

import pccore
from pccore.nn import (
    AvgPool2d, Conv2d, Flatten, Foreign, Linear, MaxPool2d, Residual, Sequential,
)

BATCH = 3


def _models():
    return {
        "cnn": ([Sequential(Conv2d(3, 3, padding=1), "relu", MaxPool2d(2)),
                 Sequential(Conv2d(4, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2)), "gelu",
                            AvgPool2d(2, stride=1, padding=1)),
                 Sequential(Flatten(), Linear(3))], (2, 8, 8)),
        "grouped": ([Sequential(Conv2d(4, 3, padding=1, groups=2), "leaky_relu", MaxPool2d(3, stride=2, padding=1)),
                     Sequential(Conv2d(4, 2, dilation=2, groups=4, bias=False), "sigmoid"),
                     Sequential(Flatten(), Linear(2), "hard_tanh")], (2, 7, 7)),
        "residual": ([Sequential(Linear(6), "tanh"),
                      Residual(Sequential(Linear(6), "tanh", Linear(6)), activation="tanh"),
                      Residual(Linear(6)),
                      Linear(3)], (5,)),
        "projection": ([Sequential(Conv2d(3, 3, padding=1), "relu"),
                        Residual(Sequential(Conv2d(4, 3, padding=1), "relu", Conv2d(4, 3, padding=1)),
                                 shortcut=Conv2d(4, 1), activation="relu"),
                        Sequential(AvgPool2d(2), Flatten(), Linear(3))], (2, 6, 6)),
    }


MODEL_NAMES = list(_models())


def _gated(xp):
    """A foreign block: a gated unit tanh(x W1^T) * sigmoid(x W2^T), in the backend's ops."""
    def fn(p, x):
        return xp.tanh(x @ p[0].T) * (1.0 / (1.0 + xp.exp(-(x @ p[1].T))))
    return fn


def _foreign_model(rt):
    rng = np.random.default_rng(5)
    if rt.backend == "torch":
        import torch as fw_ops
    else:
        import jax.numpy as fw_ops
    gate = Foreign(_gated(fw_ops), (rng.standard_normal((6, 6)) / 3, rng.standard_normal((6, 6)) / 3), name="gate")
    return [Sequential(Linear(6), "tanh"), gate, Linear(3)], (4,)


def _build(rt, name, seed=0):
    """Network with every parameter random (biases too), a batch and random hidden values."""
    blocks, shape = _foreign_model(rt) if name == "foreign" else _models()[name]
    net = pccore.network(rt, blocks, shape, seed=seed)
    rng = np.random.default_rng(seed + 10)
    net = net.with_params([rt.asarray(0.5 * rng.standard_normal(p.shape)) for p in net.flat_params()])
    x = rng.standard_normal((BATCH, *shape))
    out = net.structure.output_shape
    y = np.eye(out[0])[rng.integers(0, out[0], BATCH)]
    hidden = [0.5 * rng.standard_normal((BATCH, *s)) for s in net.structure.shapes[:-1]]
    return net, rt.asarray(x), rt.asarray(y), hidden


def _models_for(backend):
    return MODEL_NAMES + (["foreign"] if backend in ("torch", "jax") else [])


def pytest_generate_tests(metafunc):
    if "model" in metafunc.fixturenames:
        from conftest import BACKENDS

        cases = [(b, m) for b in BACKENDS for m in _models_for(b)]
        metafunc.parametrize("backend,model", cases, ids=[f"{b}-{m}" for b, m in cases])


# ------------------------------------------------------- independent references
def _torch_forward(op, params, x):
    import torch
    import torch.nn.functional as F

    name = type(op).__name__
    if name == "Sequential":
        i = 0
        for child in op.ops:
            x = _torch_forward(child, params[i:i + child.n_params], x)
            i += child.n_params
        return x
    if name == "Residual":
        n = op.body.n_params
        short = x if op.shortcut is None else _torch_forward(op.shortcut, params[n:], x)
        return _torch_forward(op.activation, (), _torch_forward(op.body, params[:n], x) + short)
    if name == "Linear":
        return F.linear(x, params[0], params[1] if op.bias else None)
    if name == "Conv2d":
        return F.conv2d(x, params[0], params[1] if op.bias else None, op.stride, op.padding, op.dilation, op.groups)
    if name == "MaxPool2d":
        return F.max_pool2d(x, op.kernel_size, op.stride, op.padding)
    if name == "AvgPool2d":
        return F.avg_pool2d(x, op.kernel_size, op.stride, op.padding, count_include_pad=True)
    if name == "Flatten":
        return torch.flatten(x, 1)
    if name == "Foreign":
        return op.fn(tuple(params), x)
    return {
        "Identity": lambda a: a, "ReLU": F.relu, "Tanh": torch.tanh, "Sigmoid": torch.sigmoid,
        "GELU": lambda a: F.gelu(a, approximate="tanh"),
        "LeakyReLU": lambda a: F.leaky_relu(a, getattr(op, "negative_slope", 0.01)),
        "HardTanh": lambda a: F.hardtanh(a, getattr(op, "min_val", -1.0), getattr(op, "max_val", 1.0)),
    }[name](x)


def _jax_forward(op, params, x):
    import jax
    import jax.numpy as jnp
    from jax import lax

    name = type(op).__name__
    if name == "Sequential":
        i = 0
        for child in op.ops:
            x = _jax_forward(child, params[i:i + child.n_params], x)
            i += child.n_params
        return x
    if name == "Residual":
        n = op.body.n_params
        short = x if op.shortcut is None else _jax_forward(op.shortcut, params[n:], x)
        return _jax_forward(op.activation, (), _jax_forward(op.body, params[:n], x) + short)
    if name == "Linear":
        y = x @ params[0].T
        return y + params[1] if op.bias else y
    if name == "Conv2d":
        y = lax.conv_general_dilated(x, params[0], op.stride, [(p, p) for p in op.padding],
                                     rhs_dilation=op.dilation, dimension_numbers=("NCHW", "OIHW", "NCHW"),
                                     feature_group_count=op.groups, precision=lax.Precision.HIGHEST)
        return y + params[1][None, :, None, None] if op.bias else y
    if name in ("MaxPool2d", "AvgPool2d"):
        window, strides = (1, 1, *op.kernel_size), (1, 1, *op.stride)
        pad = [(0, 0), (0, 0)] + [(p, p) for p in op.padding]
        if name == "MaxPool2d":
            return lax.reduce_window(x, -jnp.inf, lax.max, window, strides, pad)
        return lax.reduce_window(x, 0.0, lax.add, window, strides, pad) / (op.kernel_size[0] * op.kernel_size[1])
    if name == "Flatten":
        return x.reshape(x.shape[0], -1)
    if name == "Foreign":
        return op.fn(tuple(params), x)
    return {
        "Identity": lambda a: a, "ReLU": jax.nn.relu, "Tanh": jnp.tanh, "Sigmoid": jax.nn.sigmoid,
        "GELU": lambda a: jax.nn.gelu(a, approximate=True),
        "LeakyReLU": lambda a: jax.nn.leaky_relu(a, getattr(op, "negative_slope", 0.01)),
        "HardTanh": lambda a: jnp.clip(a, getattr(op, "min_val", -1.0), getattr(op, "max_val", 1.0)),
    }[name](x)


def _reference(backend):
    """(forward, grad, sum, log_softmax) of the backend's framework."""
    if backend == "torch":
        import torch

        return _torch_forward, lambda f: torch.func.grad(f), torch.sum, lambda z: torch.log_softmax(z, 1)
    import jax

    return _jax_forward, lambda f: jax.jit(jax.grad(f)), jax.numpy.sum, lambda z: jax.nn.log_softmax(z, 1)


def _energies(backend, net, loss):
    """Reference state energy E(states, params) and error energy E(errors, params)."""
    fwd, _, sum_, log_softmax = _reference(backend)
    blocks = net.blocks

    def cost(yhat, y):
        return 0.5 * sum_((yhat - y) ** 2) if loss == "mse" else -sum_(y * log_softmax(yhat))

    def state_e(states, params, x, y):
        inputs = [x] + list(states)
        outs = [fwd(b, p, h) for b, p, h in zip(blocks, params, inputs)]
        return sum(0.5 * sum_((s - o) ** 2) for s, o in zip(states, outs)) + cost(outs[-1], y)

    def error_e(errors, params, x, y):
        s = fwd(blocks[0], params[0], x)
        for b, p, e in zip(blocks[1:], params[1:], errors):
            s = fwd(b, p, s + e)
        return sum(0.5 * sum_(e ** 2) for e in errors) + cost(s, y)

    def loss_e(params, x, y):
        for b, p in zip(blocks, params):
            x = fwd(b, p, x)
        return cost(x, y)

    return state_e, error_e, loss_e


# ------------------------------------------------------------- FD machinery
def _directional(f, point, grad, rt, seed=0, h=1e-5):
    """<grad, v> vs (f(point + h v) - f(point - h v)) / 2h for random v (host arrays)."""
    rng = np.random.default_rng(seed)
    for _ in range(2):
        v = [rng.standard_normal(p.shape) for p in point]
        plus = f([p + h * d for p, d in zip(point, v)])
        minus = f([p - h * d for p, d in zip(point, v)])
        fd = (plus - minus) / (2 * h)
        exact = sum(float(np.sum(rt.to_numpy(g) * d)) for g, d in zip(grad, v))
        assert exact == pytest.approx(fd, rel=1e-6, abs=1e-8)


def _host(rt, arrays):
    return [rt.to_numpy(a) for a in arrays]


# ------------------------------------------------------------------ tests
@pytest.mark.parametrize("loss", ["mse", "ce"])
def test_gradients_match_finite_differences(backend, model, loss):
    rt = pccore.runtime(backend, dtype="float64")
    net, x, y, hidden = _build(rt, model)
    dev = lambda hs: [rt.asarray(h) for h in hs]  # noqa: E731

    grad_s = pccore.state_energy_grad(net, x, y, dev(hidden), loss)
    _directional(lambda hs: float(pccore.state_energy(net, x, y, dev(hs), loss)), hidden, grad_s, rt)
    grad_e = pccore.error_energy_grad(net, x, y, dev(hidden), loss)
    _directional(lambda es: float(pccore.error_energy(net, x, y, dev(es), loss)), hidden, grad_e, rt, 1)

    params = _host(rt, net.flat_params())
    local = net.structure.flatten(pccore.local_weight_grads(net, x, y, dev(hidden), loss))
    _directional(lambda ps: float(pccore.state_energy(net.with_params(dev(ps)), x, y, dev(hidden), loss)),
                 params, local, rt, 2)
    bp = net.structure.flatten(pccore.backprop_grads(net, x, y, loss))
    cost = pccore.get_loss(loss)
    _directional(lambda ps: float(cost.value(rt.xp, net.with_params(dev(ps)).forward(x), y)), params, bp, rt, 3)


@pytest.mark.parametrize("loss", ["mse", "ce"])
def test_gradients_match_autodiff(backend, model, loss):
    if backend == "numpy":
        pytest.skip("numpy has no autodiff (finite differences cover it)")
    rt = pccore.runtime(backend, dtype="float64")
    net, x, y, hidden = _build(rt, model)
    _, grad, _, _ = _reference(backend)
    state_e, error_e, loss_e = _energies(backend, net, loss)
    hs = tuple(rt.asarray(h) for h in hidden)
    params = net.params

    def close(ours, ref):
        for a, b in zip(ours, ref):
            a, b = rt.to_numpy(a), rt.to_numpy(b)
            np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10 * max(1.0, np.abs(b).max()))

    assert float(pccore.state_energy(net, x, y, list(hs), loss)) == pytest.approx(
        float(state_e(hs, params, x, y)), rel=1e-12)
    close(pccore.state_energy_grad(net, x, y, list(hs), loss), grad(lambda s: state_e(s, params, x, y))(hs))
    close(pccore.error_energy_grad(net, x, y, list(hs), loss), grad(lambda e: error_e(e, params, x, y))(hs))
    ref_local = grad(lambda p: state_e(hs, p, x, y))(params)
    close(net.structure.flatten(pccore.local_weight_grads(net, x, y, list(hs), loss)), net.structure.flatten(ref_local))
    ref_bp = grad(lambda p: loss_e(p, x, y))(params)
    close(net.structure.flatten(pccore.backprop_grads(net, x, y, loss)), net.structure.flatten(ref_bp))


def test_block_jvps(backend, model):
    """J t of every block against finite differences (and the framework's jvp)."""
    rt = pccore.runtime(backend, dtype="float64")
    net, x, _, hidden = _build(rt, model)
    k, rng = net.kernels, np.random.default_rng(7)
    inputs = [rt.to_numpy(x)] + hidden
    for l, (block, p) in enumerate(zip(net.blocks, net.params)):
        s = inputs[l]
        t = rng.standard_normal(s.shape)
        _, res = block.forward(k, p, rt.asarray(s))
        ours = rt.to_numpy(block.jvp(k, p, res, rt.asarray(t)))
        h = 1e-5
        fd = (rt.to_numpy(block(k, p, rt.asarray(s + h * t))) - rt.to_numpy(block(k, p, rt.asarray(s - h * t)))) / (2 * h)
        np.testing.assert_allclose(ours, fd, rtol=1e-6, atol=1e-8)
        if backend in ("torch", "jax"):
            fwd = _reference(backend)[0]
            if backend == "torch":
                import torch

                ref = torch.func.jvp(lambda z: fwd(block, p, z), (rt.asarray(s),), (rt.asarray(t),))[1]
            else:
                import jax

                ref = jax.jvp(lambda z: fwd(block, p, z), (rt.asarray(s),), (rt.asarray(t),))[1]
            # JAX's own max-pool derivative runs at reduced precision on GPUs (it warns so):
            # there the oracle is only float32-accurate; finite differences above still hold
            loose = backend == "jax" and rt.device.startswith("gpu") and model in ("cnn", "grouped")
            np.testing.assert_allclose(ours, rt.to_numpy(ref), rtol=1e-6 if loose else 1e-8, atol=1e-12)


def test_vjp_is_the_transpose_of_the_jvp(backend, model):
    """<J t, g> = <t, J^T g> for every block: the two products are consistent."""
    rt = pccore.runtime(backend, dtype="float64")
    net, x, _, hidden = _build(rt, model)
    k, rng = net.kernels, np.random.default_rng(8)
    inputs = [rt.to_numpy(x)] + hidden
    for l, (block, p) in enumerate(zip(net.blocks, net.params)):
        s = rt.asarray(inputs[l])
        y, res = block.forward(k, p, s)
        t = rng.standard_normal(tuple(s.shape))
        g = rng.standard_normal(tuple(y.shape))
        jt = rt.to_numpy(block.jvp(k, p, res, rt.asarray(t)))
        jtg = rt.to_numpy(block.vjp(k, p, res, rt.asarray(g), True, False)[0])
        assert float(np.sum(jt * g)) == pytest.approx(float(np.sum(t * jtg)), rel=1e-10)


def test_eo_and_so_reach_the_same_equilibrium_on_a_cnn(rt64):
    net, x, y, _ = _build(rt64, "cnn")
    eo = pccore.ErrorOptimization(iters=5000, lr=0.1, tol=1e-12).run(net, x, y)
    so = pccore.StateOptimization(iters=50000, lr=0.1, tol=1e-12).run(net, x, y)
    assert eo.converged and so.converged
    for a, b in zip(eo.states, so.states):
        np.testing.assert_allclose(rt64.to_numpy(a), rt64.to_numpy(b), rtol=0, atol=1e-6)
    for g in pccore.state_energy_grad(net, x, y, eo.states):  # and it is a stationary point
        assert float(np.abs(rt64.to_numpy(g)).max()) < 1e-9


# --------------------------------------------------------------- bad input
def test_bad_models_fail_early_with_clear_errors(backend):
    from pccore.errors import InputError
    from pccore.nn import MissingOp, ShapeError

    rt = pccore.runtime(backend, dtype="float64")
    net, x, y, _ = _build(rt, "cnn")
    with pytest.raises(InputError, match=r"x must have shape \(\*, 2, 8, 8\), got \(3, 3, 8, 8\) "
                                         r"\(the network's input_shape is \(2, 8, 8\)\)"):
        net.forward(rt.asarray(np.zeros((3, 3, 8, 8))))
    with pytest.raises(InputError, match=r"x must have shape \(\*, 2, 8, 8\), got \(3, 128\)"):
        pccore.ErrorOptimization(5, 0.1).run(net, rt.asarray(np.zeros((3, 128))), y)
    with pytest.raises(ShapeError, match=r"block 1 \(Linear\(out_features=3, bias=True\)\) does not fit its "
                                         r"input \(3, 4, 4\): .*got \(3, 4, 4\) \(add Flatten\(\) before it\)"):
        pccore.network(rt, [Sequential(Conv2d(3, 3, padding=1), MaxPool2d(2)), Linear(3)], (2, 8, 8))
    with pytest.raises(ShapeError, match=r"body's output \(4, 8, 8\) does not match the input \(identity "
                                         r"shortcut\) \(2, 8, 8\)"):
        pccore.network(rt, [Residual(Conv2d(4, 3, padding=1)), Flatten()], (2, 8, 8))
    with pytest.raises(ShapeError, match=r"input channels 3 are not divisible by groups=2"):
        pccore.network(rt, [Conv2d(4, 3, groups=2)], (3, 8, 8))
    with pytest.raises(ShapeError, match=r"smaller than the window"):
        pccore.network(rt, [MaxPool2d(4), MaxPool2d(4)], (1, 8, 8))
    with pytest.raises(InputError, match=r"blocks\[1\] must be a pccore.nn op .*got builtins.object.*Foreign"):
        pccore.network(rt, [Linear(3), object()], (4,))
    with pytest.raises(InputError, match="kernel_size must be >= 1"):
        Conv2d(3, 0)
    if backend == "numpy":
        with pytest.raises(MissingOp, match=r"Foreign\(tanh\) .*needs the backend op 'vjp', which the 'numpy' "
                                            r"backend does not supply.*torch or jax"):
            pccore.network(rt, [Linear(4), Foreign(lambda p, x: np.tanh(x), (), name="tanh")], (4,))


def test_same_seed_same_numbers_across_backends_after_training(backend):
    """50 compiled EO steps of a small CNN in float32 land within 1e-4 of NumPy's."""
    def train(name):
        rt = pccore.runtime(name, dtype="float32")
        net = pccore.nn.cnn(rt, (1, 8, 8), 4, channels=(3, 4), seed=3)
        rng = np.random.default_rng(4)
        x, y = rng.standard_normal((16, 1, 8, 8)), np.eye(4)[rng.integers(0, 4, 16)]
        session = pccore.Trainer("eo", inference=pccore.ErrorOptimization(iters=6, lr=0.1), loss="ce",
                                 runtime=rt, progress=False).session(net)
        for _ in range(50):
            session.step(rt.asarray(x), rt.asarray(y))
        return [rt.to_numpy(p) for p in session.params]

    with _full_float32(backend):  # on GPUs both frameworks default to TF32 products
        ours = train(backend)
    ref = train("numpy")
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@contextlib.contextmanager
def _full_float32(backend):
    """float32 matrix products and convolutions without TF32 (a no-op on CPUs)."""
    if backend == "jax":
        import jax

        with jax.default_matmul_precision("highest"):
            yield
    elif backend == "torch":
        import torch

        saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        try:
            yield
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
    else:
        yield


def test_network_is_a_jax_pytree():
    jax = pytest.importorskip("jax")
    if "jax" not in pccore.available_backends():
        pytest.skip("jax backend not installed")
    rt = pccore.runtime("jax", dtype="float64")
    net, x, y, _ = _build(rt, "cnn")
    leaves = jax.tree_util.tree_leaves(net)
    assert len(leaves) == len(net.flat_params())
    doubled = jax.tree_util.tree_map(lambda p: 2 * p, net)
    assert doubled.structure == net.structure
    np.testing.assert_allclose(np.asarray(doubled.params[0][0]), 2 * np.asarray(net.params[0][0]))
    jitted = jax.jit(lambda n, x: pccore.forward(n, x))
    np.testing.assert_allclose(np.asarray(jitted(net, x)), np.asarray(net.forward(x)), rtol=1e-12)
    grads = jax.grad(lambda n: pccore.get_loss("mse").value(jax.numpy, pccore.forward(n, x), y))(net)
    bp = pccore.backprop_grads(net, x, y)
    for a, b in zip(jax.tree_util.tree_leaves(grads), net.structure.flatten(bp)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-12)
