"""Data-parallel training makes one device's updates: JAX on 1, 2 and 4 virtual CPU devices
(a subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=4), JAX on 2 processes
joined by ``jax.distributed.initialize`` (as 2 hosts), and torch.distributed with 2 gloo
processes on loopback, including a resume from a checkpoint written mid-training and the
CLI, give the single-device weights (float64 1e-12, float32 1e-5 after 20 steps); processes
that disagree (another seed or data) stop with a clear error; numpy refuses; batch sizes
that do not divide by the device count are refused with the sizes that work.

The oracle of every comparison is the plain single-device run of the same code. The file is
also the workers' script: ``python tests/test_parallel.py jax|jax_host|torch OUT [...]``;
the workers start together, so the file's wall time is about the slowest worker's."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

STEPS = 4  # session steps of the EO/SO/BP x MLP/CNN matrix
F32_STEPS = 20
TOL = {"float64": 1e-12, "float32": 1e-5}
CASES = [(model, method) for model in ("mlp", "cnn") for method in ("eo", "so", "bp")]


# ------------------------------------------------------------ shared set-up
def _data(model: str, n: int = 48, n_test: int = 22, seed: int = 0):
    """Toy data; 22 test samples: the evaluation's last part does not divide by 4 (or 2)."""
    import pccore

    rng = np.random.default_rng(seed)
    shape = (1, 6, 6) if model == "cnn" else (12,)
    x = rng.standard_normal((n + n_test, *shape)).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, n + n_test)]
    return pccore.Dataset("toy", x[:n], y[:n], x[n:], y[n:])


def _net(rt, model: str, seed: int = 1):
    import pccore
    from pccore.nn import cnn

    if model == "cnn":
        return cnn(rt, (1, 6, 6), 4, channels=(2,), seed=seed)
    return pccore.mlp(rt, [12, 10, 8, 4], activation="tanh", bias=True, init="xavier_uniform", seed=seed)


def _trainer(rt, method: str, batch_size: int = 16, **kw):
    import pccore

    inference = {"eo": pccore.ErrorOptimization(iters=4, lr=0.1),
                 "so": pccore.StateOptimization(iters=4, lr=0.1), "bp": None}[method]
    return pccore.Trainer(method, inference=inference, batch_size=batch_size, runtime=rt, progress=False,
                          log_every=3, **kw)


def _session_weights(rt, model: str, method: str, steps: int = STEPS, **kw) -> list:
    """Host weights after ``steps`` session steps on the global batches of epoch 0 (cycled)."""
    data = _data(model)
    trainer = _trainer(rt, method, **kw)
    session = trainer.session(_net(rt, model))
    xs = list(trainer.batches(data, rt, 0))
    for i in range(steps):
        session.step(*xs[i % len(xs)])
    return [np.asarray(rt.to_numpy(p)) for p in session.params]


def _fit(rt, checkpoint: Path | None) -> tuple[list, dict]:
    """EO MLP: 2 epochs with evaluations; with ``checkpoint``, stopped after 4 steps (a
    checkpoint mid-epoch) and resumed."""
    data, trainer = _data("mlp"), _trainer(rt, "eo")
    net = _net(rt, "mlp")
    if checkpoint is not None:
        trainer.fit(net, data, epochs=2, max_steps=4, eval_every=2, checkpoint=checkpoint)
    out, history = trainer.fit(net, data, epochs=2, eval_every=2, checkpoint=checkpoint,
                               resume=checkpoint is not None)
    return [np.asarray(rt.to_numpy(p)) for p in out.flat_params()], history.as_dict()


def _save(path: Path, weights: list) -> None:
    np.savez(path, *weights)


def _load(path: Path) -> list:
    with np.load(path) as f:
        return [f[f"arr_{i}"] for i in range(len(f.files))]


def _same(a: list, b: list, tol: float, what: str) -> None:
    assert len(a) == len(b), what
    for i, (u, v) in enumerate(zip(a, b)):
        np.testing.assert_allclose(u, v, rtol=tol, atol=tol, err_msg=f"{what}: array {i}")


def _cli_args(backend: str, out: Path, *extra: str) -> list[str]:
    return ["train", "--backend", backend, "--dtype", "float64", "--dataset", "digits", "--width", "16",
            "--depth", "2", "--iters", "4", "--steps", "6", "--batch-size", "32", "--eval-every", "3",
            "--quiet", "--out", str(out), *extra]


# ------------------------------------------------------------------ workers
def jax_worker(out: Path) -> None:
    """Runs with 4 virtual CPU devices; writes npz weights and a JSON of the rest."""
    import pccore
    from pccore import cli
    from pccore.errors import InputError

    report: dict = {}
    for model, method in CASES:
        for devices in (None, 1, 2, 4) if (model, method) == ("mlp", "eo") else (None, 2, 4):
            rt = pccore.runtime("jax", dtype="float64", devices=devices)
            _save(out / f"jax_{model}_{method}_{devices}.npz", _session_weights(rt, model, method))
    for devices in (None, 4):
        rt = pccore.runtime("jax", dtype="float32", devices=devices)
        _save(out / f"jax_f32_{devices}.npz", _session_weights(rt, "mlp", "eo", F32_STEPS))
        rt = pccore.runtime("jax", dtype="float64", devices=devices)
        weights, history = _fit(rt, out / f"jax_ckpt_{devices}.npz" if devices else None)
        _save(out / f"jax_fit_{devices}.npz", weights)
        report[f"fit_{devices}"] = history
    rt = pccore.runtime("jax", dtype="float64", devices=4)
    try:
        _trainer(rt, "eo", batch_size=10).session(_net(rt, "mlp"))
    except InputError as err:
        report["uneven"] = str(err)
    report["devices"] = [str(d) for d in rt.devices()]
    for devices in (None, "2"):
        extra = () if devices is None else ("--devices", devices)
        report[f"cli_{devices}"] = cli.main(_cli_args("jax", out / f"cli_jax_{devices}", *extra))
    (out / "jax.json").write_text(json.dumps(report))


def jax_host_worker(out: Path, process: str, port: str) -> None:
    """One of 2 JAX processes with 2 CPU devices each (a 4-device mesh over both), joined by
    ``jax.distributed.initialize`` on loopback, as on several hosts."""
    import jax

    process = int(process)
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=process)
    import pccore
    from pccore.errors import InputError

    rt = pccore.runtime("jax", dtype="float64", devices="all")
    report: dict = {"shards": rt.parallel.shards, "processes": rt.parallel.processes}
    weights, report["fit"] = _fit(rt, out / "jax_hosts_ckpt.npz")
    if process == 0:
        _save(out / "jax_hosts_fit.npz", weights)
    try:
        _trainer(rt, "eo").fit(_net(rt, "mlp"), _data("mlp", seed=process), epochs=1)
        report["mismatch"] = None
    except InputError as err:
        report["mismatch"] = str(err)
    (out / f"jax_hosts_{process}.json").write_text(json.dumps(report))


def torch_worker(out: Path) -> None:
    """One rank of a 2-process gloo group (the launcher's environment is set by the test)."""
    import pccore
    from pccore import cli
    from pccore.errors import InputError

    rt = pccore.runtime("torch", dtype="float64", distributed=True)
    rank = rt.parallel.rank
    report: dict = {"rank": rank, "shards": rt.parallel.shards}
    for model, method in CASES:
        weights = _session_weights(rt, model, method)
        if rank == 0:
            _save(out / f"torch_{model}_{method}.npz", weights)
    for method in ("eo", "bp"):  # eager steps (what inference observers get) reduce too
        weights = _session_weights(rt, "mlp", method, compile=False)
        if rank == 0:
            _save(out / f"torch_eager_{method}.npz", weights)
    rt32 = pccore.runtime("torch", dtype="float32", distributed=True)
    weights = _session_weights(rt32, "mlp", "eo", F32_STEPS)
    weights_fit, history = _fit(rt, out / "torch_ckpt.npz")
    if rank == 0:
        _save(out / "torch_f32.npz", weights)
        _save(out / "torch_fit.npz", weights_fit)
        report["fit"] = history
    try:  # every rank must stop, with the same message
        _trainer(rt, "eo").fit(_net(rt, "mlp", seed=rank), _data("mlp"), epochs=1)
        report["mismatch"] = None
    except InputError as err:
        report["mismatch"] = str(err)
    try:
        _trainer(rt, "eo", batch_size=15).session(_net(rt, "mlp"))
    except InputError as err:
        report["uneven"] = str(err)
    report["cli"] = cli.main(_cli_args("torch", out / f"cli_torch_rank{rank}"))
    (out / f"torch_{rank}.json").write_text(json.dumps(report))


# -------------------------------------------------------------- launching
def _run(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _finish(procs: list, timeout: int = 900) -> None:
    """Wait for the workers (the timeout only catches a hung collective: on a busy machine the
    JAX worker alone has taken 4 minutes) and show a failed worker's output."""
    outputs = []
    for p in procs:
        try:
            outputs.append(p.communicate(timeout=timeout)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    for p, text in zip(procs, outputs):
        assert p.returncode == 0, text[-4000:]


def _env(**extra: str) -> dict:
    env = dict(os.environ)
    env.pop("PCCORE_TORCH_DEVICE", None)
    env.update(extra)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _installed(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


@pytest.fixture(scope="module")
def workers(tmp_path_factory) -> dict:
    """The JAX worker and the two torch ranks, started together (they overlap on the cores)."""
    started = {}
    if _installed("jax"):
        out = tmp_path_factory.mktemp("jax")
        # O0 codegen: a third less compile time, the same (unoptimised) code on 1 and N devices
        flags = ("--xla_force_host_platform_device_count=4 --xla_cpu_multi_thread_eigen=false "
                 "--xla_backend_optimization_level=0")
        started["jax"] = out, [_run(["jax", str(out)], _env(XLA_FLAGS=flags, JAX_PLATFORMS="cpu"))]
        flags, port = flags.replace("count=4", "count=2"), str(_free_port())
        started["jax_hosts"] = out, [_run(["jax_host", str(out), str(p), port],
                                          _env(XLA_FLAGS=flags, JAX_PLATFORMS="cpu")) for p in range(2)]
    if _installed("torch"):
        import torch

        if torch.distributed.is_available():
            out, port = tmp_path_factory.mktemp("torch"), str(_free_port())
            started["torch"] = out, [
                _run(["torch", str(out)], _env(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE="2",
                                               MASTER_ADDR="127.0.0.1", MASTER_PORT=port, OMP_NUM_THREADS="1"))
                for r in range(2)]
    yield started
    for _, procs in started.values():
        for p in procs:
            if p.poll() is None:
                p.kill()


@pytest.fixture(scope="module")
def jax_run(workers):
    if "jax" not in workers:
        pytest.skip("the jax backend is not installed")
    out, procs = workers["jax"]
    _finish(procs)
    return out, json.loads((out / "jax.json").read_text())


@pytest.fixture(scope="module")
def jax_hosts_run(workers):
    if "jax_hosts" not in workers:
        pytest.skip("the jax backend is not installed")
    out, procs = workers["jax_hosts"]
    _finish(procs)
    return out, [json.loads((out / f"jax_hosts_{p}.json").read_text()) for p in range(2)]


@pytest.fixture(scope="module")
def torch_run(workers):
    if "torch" not in workers:
        pytest.skip("the torch backend (with torch.distributed) is not installed")
    out, procs = workers["torch"]
    _finish(procs)
    return out, [json.loads((out / f"torch_{r}.json").read_text()) for r in range(2)]


# ------------------------------------------------------------------- JAX
def test_jax_1_2_4_devices_give_the_single_device_weights(jax_run):
    out, report = jax_run
    assert report["devices"][:4] == ["cpu:0", "cpu:1", "cpu:2", "cpu:3"]
    for model, method in CASES:
        one = _load(out / f"jax_{model}_{method}_None.npz")
        for devices in (1, 2, 4) if (model, method) == ("mlp", "eo") else (2, 4):
            _same(_load(out / f"jax_{model}_{method}_{devices}.npz"), one, TOL["float64"],
                  f"jax {model} {method} on {devices} devices")
    _same(_load(out / "jax_f32_4.npz"), _load(out / "jax_f32_None.npz"), TOL["float32"], "jax float32, 20 steps")


def test_jax_fit_with_evaluation_and_resume_matches_one_device(jax_run):
    out, report = jax_run
    _same(_load(out / "jax_fit_4.npz"), _load(out / "jax_fit_None.npz"), TOL["float64"], "jax fit on 4 devices")
    one, four = report["fit_None"], report["fit_4"]
    assert four["step"] == one["step"] and four["eval_step"] == one["eval_step"]
    for key in ("loss", "energy", "eval_loss", "eval_accuracy"):
        np.testing.assert_allclose(four[key], one[key], rtol=1e-12, atol=1e-12, err_msg=key)


def test_jax_uneven_batch_size_is_refused_with_the_sizes_that_work(jax_run):
    message = jax_run[1]["uneven"]
    assert "batch_size=10" in message and "4 equal shards" in message and "8 or 12" in message


def test_jax_cli_devices_gives_the_one_device_model(jax_run):
    out, report = jax_run
    assert report["cli_None"] == 0 and report["cli_2"] == 0
    a, b = (np.load(out / f"cli_jax_{d}" / "model.npz") for d in ("None", "2"))
    for key in a.files:
        if a[key].dtype.kind == "f":
            np.testing.assert_allclose(b[key], a[key], rtol=1e-12, atol=1e-12, err_msg=key)
    assert json.loads((out / "cli_jax_2" / "summary.json").read_text())["devices"] == 2


def test_jax_two_processes_as_two_hosts_match_one_device(jax_run, jax_hosts_run):
    out, reports = jax_hosts_run
    assert [(r["shards"], r["processes"]) for r in reports] == [(4, 2), (4, 2)]
    _same(_load(out / "jax_hosts_fit.npz"), _load(jax_run[0] / "jax_fit_None.npz"), TOL["float64"],
          "jax fit resumed on 2 processes x 2 devices")
    np.testing.assert_allclose(reports[0]["fit"]["eval_loss"], jax_run[1]["fit_None"]["eval_loss"],
                               rtol=1e-12, atol=1e-12)
    messages = [r["mismatch"] for r in reports]
    assert messages[0] is not None and messages[0] == messages[1] and "training data" in messages[0]


# ----------------------------------------------------------------- torch
def test_torch_two_gloo_ranks_give_the_single_process_weights(torch_run):
    import pccore

    out, reports = torch_run
    assert [r["shards"] for r in reports] == [2, 2]
    rt = pccore.runtime("torch", dtype="float64")
    for model, method in CASES:
        _same(_load(out / f"torch_{model}_{method}.npz"), _session_weights(rt, model, method), TOL["float64"],
              f"torch {model} {method} on 2 ranks")
    for method in ("eo", "bp"):
        _same(_load(out / f"torch_eager_{method}.npz"), _session_weights(rt, "mlp", method, compile=False),
              TOL["float64"], f"torch eager {method} on 2 ranks")
    rt32 = pccore.runtime("torch", dtype="float32")
    _same(_load(out / "torch_f32.npz"), _session_weights(rt32, "mlp", "eo", F32_STEPS), TOL["float32"],
          "torch float32, 20 steps")


def test_torch_resume_across_ranks_matches_the_uninterrupted_single_process_run(torch_run):
    import pccore

    out, reports = torch_run
    weights, history = _fit(pccore.runtime("torch", dtype="float64"), None)
    _same(_load(out / "torch_fit.npz"), weights, TOL["float64"], "torch fit resumed on 2 ranks")
    two = reports[0]["fit"]
    assert two["step"] == history["step"] and two["eval_step"] == history["eval_step"]
    for key in ("loss", "energy", "eval_loss", "eval_accuracy"):
        np.testing.assert_allclose(two[key], history[key], rtol=1e-12, atol=1e-12, err_msg=key)


def test_torch_ranks_with_different_seeds_stop_with_a_clear_error(torch_run):
    messages = [r["mismatch"] for r in torch_run[1]]
    assert messages[0] is not None and messages[0] == messages[1]
    assert "rank 1 differs from rank 0" in messages[0] and "initial weights" in messages[0]
    assert "network structure" not in messages[0]  # only what differs is named


def test_torch_uneven_batch_size_is_refused_on_every_rank(torch_run):
    for report in torch_run[1]:
        assert "batch_size=15" in report["uneven"] and "multiple of 2" in report["uneven"]


def test_torch_cli_under_a_launcher_writes_on_rank_0_only(torch_run, tmp_path):
    from pccore import cli

    out, reports = torch_run
    assert [r["cli"] for r in reports] == [0, 0]
    assert not (out / "cli_torch_rank1").exists()
    assert cli.main(_cli_args("torch", tmp_path / "one")) == 0
    a, b = np.load(tmp_path / "one" / "model.npz"), np.load(out / "cli_torch_rank0" / "model.npz")
    for key in a.files:
        if a[key].dtype.kind == "f":
            np.testing.assert_allclose(b[key], a[key], rtol=1e-12, atol=1e-12, err_msg=key)


# ---------------------------------------------------- refusals and rules
def test_numpy_refuses_data_parallel_with_a_clear_error():
    import pccore
    from pccore.errors import InputError

    for kwargs in ({"devices": 2}, {"distributed": True}):
        with pytest.raises(InputError, match="numpy.*no data-parallel training"):
            pccore.runtime("numpy", **kwargs)
    assert pccore.runtime("numpy", devices=1).parallel is None
    with pytest.raises(InputError, match="distributed must be True or False"):
        pccore.runtime("numpy", distributed="yes")


def test_torch_devices_points_to_torchrun():
    pytest.importorskip("torch", reason="the torch backend is not installed")
    import pccore
    from pccore.errors import InputError

    with pytest.raises(InputError, match="torchrun --nproc-per-node"):
        pccore.runtime("torch", devices=2)
    env = {k: os.environ.pop(k) for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k in os.environ}
    try:
        with pytest.raises(InputError, match="launcher's environment"):
            pccore.runtime("torch", distributed=True)
    finally:
        os.environ.update(env)


class _FakeLayout:
    def __init__(self, shards, rank=0, explicit=True):
        self.shards, self.rank, self.explicit = shards, rank, explicit


def test_batch_size_rule_names_the_sizes_that_work():
    from pccore.errors import InputError
    from pccore.train.parallel import check_batch_size

    check_batch_size(_FakeLayout(4), 64)
    with pytest.raises(InputError, match=r"batch_size=3 .*multiple of 4 \(e.g. 4\)"):
        check_batch_size(_FakeLayout(4), 3)
    with pytest.raises(InputError, match=r"multiple of 8 \(e.g. 96 or 104\)"):
        check_batch_size(_FakeLayout(8), 100)


@pytest.mark.parametrize("n", [0, 1, 5, 22, 1024])
def test_explicit_evaluation_parts_cover_every_row_once(n):
    from pccore.train.parallel import eval_parts

    x = np.arange(n)
    for shards in (1, 2, 3, 4):
        rows = [part[0] for r in range(shards) for part in eval_parts(_FakeLayout(shards, r), x, x)]
        got = np.concatenate(rows) if rows else np.array([], dtype=int)
        np.testing.assert_array_equal(got, x)
        sizes = [len(r) for r in rows]
        assert not sizes or max(sizes) - min(sizes) <= 1


if __name__ == "__main__":  # the workers: python tests/test_parallel.py jax|jax_host|torch OUT [...]
    {"jax": jax_worker, "jax_host": jax_host_worker, "torch": torch_worker}[sys.argv[1]](Path(sys.argv[2]),
                                                                                        *sys.argv[3:])
