"""Models in and out of PyTorch and Equinox (pccore.from_torch / to_torch / from_equinox,
pccore.nn.foreign_from_torch / foreign_from_equinox). The oracle is always the framework
model's own output; every imported model runs on every backend."""

from __future__ import annotations

import functools
import sys

import numpy as np
import pytest

import pccore
from pccore.errors import InputError, MissingDependency
from pccore.nn import (
    AvgPool2d, Conv2d, Flatten, Linear, MaxPool2d, MissingOp, ReLU, Residual, Sequential, Tanh,
)

torch = pytest.importorskip("torch")
nn = torch.nn


def _close(got, want, tol=1e-12):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape
    scale = max(np.abs(want).max(), 1e-300)
    assert np.abs(got - want).max() / scale <= tol, np.abs(got - want).max() / scale


def _forward(rt, net, x):
    """``net.forward(x)`` on the host; on JAX as one compiled graph (op-by-op dispatch
    compiles every kernel separately, which costs seconds)."""
    if rt.backend == "jax":
        import jax

        from pccore.nn.network import forward

        fn = jax.jit(functools.partial(forward, net.kernels, net.structure))
        return rt.to_numpy(fn(net.params, rt.asarray(x)))
    return rt.to_numpy(net.forward(rt.asarray(x)))


def _torch_out(module, x):
    with torch.no_grad():
        return module(torch.tensor(x, dtype=torch.float64)).numpy()


def _torch_mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 3)).double()


def _torch_cnn():
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3), nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1),
        nn.Sequential(nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), nn.Tanh(),
                      nn.AvgPool2d(2, stride=1, padding=1)),
        nn.Flatten(), nn.Linear(6 * 4 * 4, 5),
    ).double()


_X_MLP = np.random.default_rng(0).standard_normal((4, 5))
_X_CNN = np.random.default_rng(1).standard_normal((3, 2, 12, 12))


# ------------------------------------------------------------------ torch -> pccore
def test_mlp_from_torch(rt64):
    module = _torch_mlp()
    net = pccore.from_torch(module, rt64, (5,))
    assert net.structure.blocks == (
        Sequential(Linear(8), ReLU()), Sequential(Linear(6), Tanh()), Sequential(Linear(3)))
    _close(rt64.to_numpy(net.forward(rt64.asarray(_X_MLP))), _torch_out(module, _X_MLP))
    assert pccore.from_torch(module, rt64).structure == net.structure  # input shape from Linear


def test_cnn_from_torch(rt64):
    module = _torch_cnn()
    net = pccore.from_torch(module, rt64, (2, 12, 12))
    assert net.structure.blocks == (
        Sequential(Conv2d(4, 3), ReLU(), MaxPool2d(3, stride=2, padding=1)),
        Sequential(Conv2d(6, 3, stride=2, padding=1, groups=2), Tanh(), AvgPool2d(2, stride=1, padding=1),
                   Flatten()),
        Sequential(Linear(5)),
    )
    _close(_forward(rt64, net, _X_CNN), _torch_out(module, _X_CNN))


def test_to_torch_reproduces(rt64):
    for module, x, shape in ((_torch_mlp(), _X_MLP, (5,)), (_torch_cnn(), _X_CNN, (2, 12, 12))):
        net = pccore.from_torch(module, rt64, shape)
        back = pccore.to_torch(net)
        assert isinstance(back, nn.Sequential)
        _close(_torch_out(back, x), _torch_out(module, x))
        ours = [rt64.to_numpy(p) for p in net.flat_params()]
        theirs = [p.detach().numpy() for p in back.parameters()]
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            assert b.dtype == np.float64
            np.testing.assert_array_equal(a, b)
    assert next(pccore.to_torch(net, dtype="float32").parameters()).dtype == torch.float32


def test_round_trip_structure(rt64):
    mlp = pccore.mlp(rt64, [5, 7, 3], activation="tanh", bias=True)
    cnn = pccore.network(rt64, [
        Sequential(Conv2d(3, 3, padding=1), "relu", MaxPool2d(2)),
        Sequential(Conv2d(4, 3, stride=2, dilation=1, bias=False), "leaky_relu", Flatten()),
        Sequential(Linear(4), "sigmoid"),
        Sequential(Linear(2), "hard_tanh"),
    ], (1, 10, 10), seed=3)
    for net, shape in ((mlp, (5,)), (cnn, (1, 10, 10))):
        again = pccore.from_torch(pccore.to_torch(net), rt64, shape)
        assert again.structure == net.structure
        for a, b in zip(net.flat_params(), again.flat_params()):
            np.testing.assert_array_equal(rt64.to_numpy(a), rt64.to_numpy(b))


def test_residual_to_torch(rt64):
    net = pccore.network(rt64, [
        Sequential(Conv2d(4, 3, padding=1), "tanh"),
        Residual(Sequential(Conv2d(4, 3, padding=1), "relu", Conv2d(4, 3, padding=1)), activation="relu"),
        Residual(Conv2d(6, 3, padding=1), shortcut=Conv2d(6, 1), activation="gelu"),
        Sequential(Flatten(), Linear(3)),
    ], (2, 5, 5), seed=2)
    x = np.random.default_rng(2).standard_normal((3, 2, 5, 5))
    module = pccore.to_torch(net)
    _close(_torch_out(module, x), _forward(rt64, net, x))
    host = pccore.runtime("numpy", dtype="float64")
    again = pccore.from_torch(module, host, (2, 5, 5))  # Flatten joins the block before it
    assert [type(b) for b in again.structure.blocks] == [Sequential, Residual, Sequential, Sequential]
    assert isinstance(again.structure.blocks[2].ops[0], Residual)
    _close(_forward(host, again, x), _torch_out(module, x))


@pytest.mark.parametrize("bad, name", [
    (nn.LayerNorm(8), "LayerNorm"),
    (nn.Dropout(0.1), "Dropout"),
    (nn.BatchNorm1d(8), "BatchNorm1d"),
    (nn.GELU(), "GELU"),
])
def test_unmappable_torch_modules(bad, name):
    rt = pccore.runtime("numpy", dtype="float64")
    module = nn.Sequential(nn.Linear(4, 8), nn.Sequential(nn.ReLU(), bad), nn.Linear(8, 2))
    with pytest.raises(InputError, match=rf"'1\.1' \(torch\.nn\.modules\.\w+\.{name}\).*foreign_from_torch"):
        pccore.from_torch(module, rt, (4,))


def test_unmappable_torch_details():
    rt = pccore.runtime("numpy", dtype="float64")

    class Custom(nn.Module):
        def forward(self, x):
            return 2 * x

    with pytest.raises(InputError, match=r"'1' \(.*Custom\).*foreign_from_torch"):
        pccore.from_torch(nn.Sequential(nn.Linear(4, 4), Custom()), rt, (4,))
    with pytest.raises(InputError, match=r"approximate='tanh'"):
        pccore.from_torch(nn.Sequential(nn.Linear(4, 4), nn.GELU()), rt, (4,))
    with pytest.raises(InputError, match="padding_mode='reflect'"):
        pccore.from_torch(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect")), rt, (1, 5, 5))
    with pytest.raises(InputError, match="ceil_mode"):
        pccore.from_torch(nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2, ceil_mode=True)), rt, (1, 5, 5))
    with pytest.raises(InputError, match="input_shape"):
        pccore.from_torch(nn.Sequential(nn.Conv2d(1, 2, 3)), rt)
    with pytest.raises(InputError, match="Foreign"):
        pccore.to_torch(pccore.network(pccore.runtime("torch", dtype="float64"),
                                       [pccore.nn.foreign_from_torch(nn.Linear(4, 4).double())], (4,)))
    # padding="same" with an odd kernel maps exactly
    torch.manual_seed(0)
    conv = nn.Sequential(nn.Conv2d(1, 2, 3, padding="same"), nn.Conv2d(2, 2, 3, padding="valid")).double()
    net = pccore.from_torch(conv, rt, (1, 6, 6))
    x = np.random.default_rng(3).standard_normal((2, 1, 6, 6))
    _close(_forward(rt, net, x), _torch_out(conv, x))


# ------------------------------------------------------------------------- Foreign
def test_foreign_from_torch():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4)).double()
    block = pccore.nn.foreign_from_torch(module)
    rt = pccore.runtime("torch", dtype="float64")
    net = pccore.network(rt, [block, Sequential(Linear(2))], (4,), seed=0)
    x = np.random.default_rng(4).standard_normal((3, 4))
    _close(rt.to_numpy(net.feedforward_states(rt.asarray(x))[0]), _torch_out(module, x))
    with pytest.raises(MissingOp, match="autodiff"):
        pccore.network(pccore.runtime("numpy", dtype="float64"), [block], (4,))


# ---------------------------------------------------------------------- Equinox
def _eqx_builder(jax, eqx, seed=0):
    """``build(Layer, *args, **kw)``: an Equinox layer in float64 with weights drawn from
    NumPy (the shapes come from ``filter_eval_shape``; Equinox's own eager initialisation
    compiles every random op and costs seconds)."""
    rng, key = np.random.default_rng(seed), jax.random.key(0)

    def fill(leaf):
        if isinstance(leaf, jax.ShapeDtypeStruct):
            return jax.numpy.asarray(rng.uniform(-0.5, 0.5, leaf.shape))
        return leaf

    def build(ctor, *args, **kwargs):
        shapes = eqx.filter_eval_shape(ctor, *args, key=key, dtype=jax.numpy.float64, **kwargs)
        return jax.tree_util.tree_map(fill, shapes)

    return build


@pytest.fixture(scope="module")
def eqx_models():
    """(jax, equinox, build, models), in float64."""
    pytest.importorskip("jax")
    eqx = pytest.importorskip("equinox")
    pccore.runtime("jax", dtype="float64")  # enables x64
    import jax
    import jax.numpy as jnp

    nn_, build = eqx.nn, _eqx_builder(jax, eqx)
    models = {
        "mlp": build(nn_.MLP, 4, 3, 8, 2, activation=jax.nn.tanh),
        "jpc_mlp": [
            nn_.Sequential([nn_.Lambda(jax.nn.identity), build(nn_.Linear, 4, 8)]),
            nn_.Sequential([nn_.Lambda(jax.nn.relu), build(nn_.Linear, 8, 8)]),
            nn_.Sequential([nn_.Lambda(functools.partial(jax.nn.leaky_relu, negative_slope=0.2)),
                            build(nn_.Linear, 8, 3, use_bias=False)]),
        ],
        "jpc_cnn": [
            nn_.Sequential([build(nn_.Conv2d, 2, 4, 3, padding=1), nn_.Lambda(jax.nn.relu),
                            nn_.MaxPool2d(2, stride=2)]),
            nn_.Sequential([build(nn_.Conv2d, 4, 4, 3, stride=2, padding="SAME", groups=2),
                            nn_.Lambda(jnp.tanh), nn_.AvgPool2d(2, stride=1, padding=1),
                            nn_.Lambda(jnp.ravel)]),
            nn_.Sequential([nn_.Lambda(jax.nn.gelu), build(nn_.Linear, 100, 3)]),
        ],
    }
    return jax, eqx, build, models


_ORACLE: dict = {}


def _eqx_out(jax, model, x):
    """``jax.vmap(model)(x)`` (a list of layers applied in turn), computed once per model."""
    key = (id(model), x.shape, x.tobytes())
    if key not in _ORACLE:
        _ORACLE[key] = (model, _eqx_run(jax, model, x))  # the model kept alive: ids stay unique
    return _ORACLE[key][1]


def _eqx_run(jax, model, x):
    if isinstance(model, list):
        def model(x, layers=model):
            for layer in layers:
                x = layer(x)
            return x
    return np.asarray(jax.jit(jax.vmap(model))(jax.numpy.asarray(x)))


def test_from_equinox_mlp(rt64, eqx_models):
    jax, eqx, build, models = eqx_models
    model = models["mlp"]
    net = pccore.from_equinox(model, rt64)
    assert net.structure.blocks == (Sequential(Linear(8), "tanh"), Sequential(Linear(8), "tanh"),
                                    Sequential(Linear(3), "linear"))
    x = np.random.default_rng(5).standard_normal((5, 4))
    _close(_forward(rt64, net, x), _eqx_out(jax, model, x))


def test_from_equinox_jpc_lists(rt64, eqx_models):
    jax, eqx, build, models = eqx_models
    net = pccore.from_equinox(models["jpc_mlp"], rt64)
    assert net.structure.input_shape == (4,)
    assert net.structure.blocks[2] == Sequential(pccore.nn.LeakyReLU(0.2), Linear(3, bias=False))
    x = np.random.default_rng(6).standard_normal((5, 4))
    _close(_forward(rt64, net, x), _eqx_out(jax, models["jpc_mlp"], x))

    net = pccore.from_equinox(models["jpc_cnn"], rt64, (2, 14, 14))
    assert net.structure.blocks[1].ops[0] == Conv2d(4, 3, stride=2, padding=1, groups=2)
    x = np.random.default_rng(7).standard_normal((3, 2, 14, 14))
    _close(_forward(rt64, net, x), _eqx_out(jax, models["jpc_cnn"], x))


def test_from_equinox_refuses_unknown(eqx_models):
    jax, eqx, build, models = eqx_models
    rt = pccore.runtime("numpy", dtype="float64")
    lin = models["jpc_mlp"][1].layers[1]  # Linear(8, 8)
    with pytest.raises(InputError, match="foreign_from_equinox"):
        pccore.from_equinox([eqx.nn.Sequential([lin, eqx.nn.Lambda(lambda x: 2 * x)])], rt)
    softplus = eqx.tree_at(lambda m: m.activation, models["mlp"], jax.nn.softplus)
    with pytest.raises(InputError, match="softplus.*foreign_from_equinox"):
        pccore.from_equinox(softplus, rt)
    exact = eqx.nn.Lambda(functools.partial(jax.nn.gelu, approximate=False))
    with pytest.raises(InputError, match="approximate=False"):
        pccore.from_equinox([eqx.nn.Sequential([lin, exact])], rt)
    with pytest.raises(InputError, match="LayerNorm.*foreign_from_equinox"):
        pccore.from_equinox([lin, eqx.nn.LayerNorm(8)], rt)
    with pytest.raises(InputError, match="asymmetric"):
        pccore.from_equinox([build(eqx.nn.Conv2d, 2, 4, 3, padding=((0, 1), (1, 1)))], rt, (2, 5, 5))
    with pytest.raises(InputError, match="asymmetric"):  # SAME with an even total padding only
        pccore.from_equinox([build(eqx.nn.Conv2d, 2, 4, 2, padding="SAME")], rt, (2, 5, 5))
    with pytest.raises(InputError, match="use_ceil"):
        pccore.from_equinox([eqx.nn.MaxPool2d(2, use_ceil=True)], rt, (2, 5, 5))
    with pytest.raises(InputError, match="not supported"):
        pccore.registry.converter("equinox").to_model(None, ())


def test_foreign_from_equinox(eqx_models):
    jax, eqx, build, models = eqx_models
    module = eqx.nn.Sequential([models["jpc_mlp"][1].layers[1], eqx.nn.LayerNorm(8)])
    rt = pccore.runtime("jax", dtype="float64")
    net = pccore.network(rt, [pccore.nn.foreign_from_equinox(module)], (8,))
    x = np.random.default_rng(8).standard_normal((3, 8))
    _close(_forward(rt, net, x), _eqx_out(jax, module, x))


def test_missing_framework_names_the_extra(monkeypatch):
    pytest.importorskip("jax")
    monkeypatch.setitem(sys.modules, "equinox", None)  # as if equinox were not installed
    monkeypatch.delitem(sys.modules, "pccore_jax.convert", raising=False)
    with pytest.raises(MissingDependency, match=r"converter 'equinox' needs .*'equinox'.*pccore\[jax\]"):
        pccore.from_equinox([], pccore.runtime("numpy"))
