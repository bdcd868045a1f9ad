"""Smoke tests of the benchmark machinery at tiny sizes (no timing assertions): the
block-tridiagonal baseline solves the same problem as the closed form, the naive baselines
take the same steps as pccore, and one tiny run writes both result files."""

import json

import numpy as np
import pytest

import pccore
from benchmarks import __main__ as cli
from benchmarks import naive
from benchmarks.run import run
from benchmarks.shapes import Shape
from benchmarks.timing import Entry, interleaved, spread
from benchmarks.tridiag import block_tridiagonal_states
from pccore.analytic import linear_equilibrium


def _tiny(backend, bias=False):
    rt = pccore.runtime(backend, dtype="float64")
    net = pccore.mlp(rt, [7, 6, 5, 6, 3], bias=bias, seed=1)
    if bias:
        rng = np.random.default_rng(2)
        net = net.with_params([p if p.ndim == 2 else p + rt.asarray(rng.standard_normal(p.shape))
                               for p in net.flat_params()])
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((4, 7)), rng.standard_normal((4, 3))
    return rt, net, x, y


@pytest.mark.parametrize("bias", [False, True])
def test_block_tridiagonal_matches_closed_form(backend, bias):
    rt, net, x, y = _tiny(backend, bias)
    want = linear_equilibrium(net, rt.asarray(x), rt.asarray(y)).states
    got = block_tridiagonal_states(net, rt.asarray(x), rt.asarray(y))
    assert len(got) == len(want) == 3
    for a, b in zip(got, want):
        np.testing.assert_allclose(rt.to_numpy(a), rt.to_numpy(b), rtol=1e-9, atol=1e-11)
    # and the state-energy gradient vanishes there (not just agreement of two solvers)
    grads = pccore.state_energy_grad(net, rt.asarray(x), rt.asarray(y), got)
    assert max(float(np.abs(rt.to_numpy(g)).max()) for g in grads) < 1e-9


@pytest.mark.parametrize("method", ["EO", "SO"])
def test_naive_baselines_take_the_same_steps(backend, method):
    if backend == "numpy":
        pytest.skip("no autograd baseline on numpy")
    rt, net, x, y = _tiny(backend)
    cls = pccore.ErrorOptimization if method == "EO" else pccore.StateOptimization
    res = cls(5, 0.1).run(net, rt.asarray(x), rt.asarray(y))
    want = res.errors if method == "EO" else res.states
    W = [rt.to_numpy(p) for p in net.flat_params()]
    runs = [naive.torch_naive(method, W, x, y, 0.1, 5, "cpu", weights_grad=wg) for wg in (False, True)] if backend == "torch" else [
        naive.jax_naive(method, W, x, y, 0.1, 5), naive.jax_jit_step(method, W, x, y, 0.1, 5)]
    for fn in runs:
        got = fn()
        for a, b in zip(want, got):
            b = b.detach().numpy() if hasattr(b, "detach") else np.asarray(b)
            np.testing.assert_allclose(rt.to_numpy(a), b, rtol=1e-10, atol=1e-12)


def test_interleaved_takes_every_sample_in_rotation():
    calls = []
    entries = [Entry("a", lambda: calls.append("a"), 2), Entry("b", lambda: calls.append("b"))]
    samples = interleaved(entries, repeats=3, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert {k: len(v) for k, v in samples.items()} == {"a": 3, "b": 3}
    assert spread([1.0, 1.0, 1.0, 1.0]) == 0.0


def test_cli_arguments():
    args = cli.parse(["--quick", "--backends", "numpy", "--threads", "1"])
    assert args.quick and args.backends == "numpy" and args.threads == 1
    with pytest.raises(SystemExit):
        cli.parse(["--repeats", "0"])


@pytest.mark.parametrize("argv", [["--methods", "eo,bogus"], ["--epochs", "0"]])
def test_regime_benchmarks_refuse_bad_arguments_before_loading_data(argv, capsys, tmp_path):
    from benchmarks import cnn_regime, depth_regime

    for module in (cnn_regime, depth_regime) if argv[0] == "--methods" else (cnn_regime,):
        with pytest.raises(SystemExit) as err:
            module.main(argv + ["--data-dir", str(tmp_path / "absent")])
        assert err.value.code == 2
        assert argv[1].split(",")[-1] in capsys.readouterr().err


def test_tiny_run_writes_json_and_markdown(backend, tmp_path):
    md = run([backend], None, "float32", quick=True, repeats=1, matmul_n=32, out_dir=tmp_path,
             command="test", shapes=[Shape(4, 8, depth=3)], steps=3)
    data = json.loads((tmp_path / "latest.json").read_text())
    assert (tmp_path / "latest.md").read_text() == md
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave no temporaries
    (s,) = data["summary"]
    assert (s["backend"], s["batch"], s["width"]) == (backend, 4, 8)
    for key in ("EO_ms", "SO_ms", "eq_speedup", "matmul_gflops", "EO_roofline", "tracker_overhead"):
        assert np.isfinite(s[key]) and s[key] > 0, key
    if backend != "numpy":
        assert s["EO_speedup_vs_naive"] > 0
    groups = {(r["group"], r["name"]) for r in data["rows"]}
    assert {("equilibrium", "block_tridiagonal"), ("trackers", "history_every_10")} <= groups
    (check,) = data["agreement"]
    assert check["equilibrium_max_abs_diff"] < 1e-3
    assert all(v < 1e-3 for v in check["EO_max_abs_diff"].values())
    assert "| backend |" in md and backend in md


@pytest.mark.parametrize("model", ["mlp", "cnn"])
@pytest.mark.parametrize("kind", ["bp", "eo"])
def test_training_baselines_take_the_same_steps(backend, kind, model):
    """The hand-written training-step baselines compute what pccore's step computes."""
    from benchmarks import training

    if backend == "numpy":
        pytest.skip("the training baselines are jax and torch code")
    rt = pccore.runtime(backend, dtype="float64")
    net, x, y = training.build(rt, model, batch=8, small=True)
    ours = [rt.to_numpy(p) for p in training.pccore_step(kind, net, rt, x, y, iters=3)(2)]
    make = training.jax_script if backend == "jax" else training.torch_baseline
    theirs = make(kind, net, rt, x, y, iters=3)(2)
    theirs = [np.asarray(a.detach().cpu() if hasattr(a, "detach") else a) for a in
              (theirs if backend == "torch" else [a for block in theirs for a in block])]
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


def test_train_suite_writes_its_files(tmp_path):
    from benchmarks.train_suite import run_train

    md = run_train(["numpy"], None, True, 1, tmp_path, "test", models=("mlp",), with_contention=False)
    data = json.loads((tmp_path / "train.json").read_text())
    assert {r["name"] for r in data["steps"]} >= {"pccore_eo", "pccore_bp", "pccore_eager_eo"}
    assert data["seed_solve"][0]["backend"] == "numpy" and "Seed-shape EO solve" in md
