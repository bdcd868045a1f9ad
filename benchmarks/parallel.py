"""Data-parallel throughput on this machine's CPUs: samples per second of pccore's compiled
training step (``TrainSession.step``) on 1 vs 2 devices, for the 784-128-128-128-10 tanh
MLP, EO (T = 8, lr 0.1) and BP, float32, global batch 128, Adam 1e-3.

- JAX: one process with 2 virtual CPU devices (``--xla_force_host_platform_device_count=2``,
  one thread per XLA op): the plain single-device step and the 2-device mesh step, timed
  interleaved in that process;
- torch: 1 process vs 2 gloo ranks on loopback (one intra-op thread per process; also 1
  process with 2 threads), launched alternately, each rank timing the same steps.

Writes ``results/parallel.json`` and ``results/parallel.md`` with /proc/loadavg before
and after. ``python -m benchmarks.parallel [--steps 20] [--repeats 5] [--rounds 2]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
BATCH, T, INFER_LR, LR = 128, 8, 0.1, 1e-3
WIDTHS = [784, 128, 128, 128, 10]
METHODS = ("eo", "bp")
NOTE = ("Reading: every configuration shares the same 2 cores with other jobs (see the load average), "
        "so a second device or rank brings a per-step all-reduce and synchronisation but no extra core: "
        "no gain is expected here, and the table says how much is lost. \"1 process, 2 threads\" shows the "
        "thread contention of docs/training.md (Threads). Data parallelism pays where each device brings its "
        "own compute (several GPUs, a TPU slice); the all-reduce volume per step is the parameter count for "
        "PC and BP alike (docs/scaling.md).")


# ------------------------------------------------------------------ workers
def _session(rt, method: str):
    """A training session of the benchmark MLP and ``steps`` global host batches."""
    import numpy as np

    import pccore

    net = pccore.mlp(rt, WIDTHS, activation="tanh", bias=True, init="xavier_uniform", seed=0)
    inference = pccore.ErrorOptimization(iters=T, lr=INFER_LR) if method == "eo" else None
    trainer = pccore.Trainer(method, inference=inference, lr=LR, batch_size=BATCH, runtime=rt, progress=False)
    rng = np.random.default_rng(0)
    x = rt.asarray(rng.standard_normal((BATCH, WIDTHS[0])))
    y = rt.asarray(np.eye(WIDTHS[-1])[rng.integers(0, WIDTHS[-1], BATCH)])
    return trainer.session(net), x, y


def _timer(rt, session, x, y, steps: int):
    def run() -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            loss, _ = session.step(x, y)
        rt.to_numpy(loss)  # waits for the last step
        return time.perf_counter() - t0
    return run


def jax_worker(steps: int, repeats: int) -> dict:
    """Plain vs 2-device mesh, interleaved; seconds per ``steps`` steps, per sample."""
    import pccore

    timers = {}
    for method in METHODS:
        for devices in (None, 2):
            rt = pccore.runtime("jax", dtype="float32", devices=devices)
            session, x, y = _session(rt, method)
            timers[(method, 1 if devices is None else 2)] = _timer(rt, session, x, y, steps)
    for run in timers.values():
        run()  # compile and warm up
    samples: dict = {k: [] for k in timers}
    keys = list(timers)
    for r in range(repeats):
        for key in keys[r % len(keys):] + keys[:r % len(keys)]:
            samples[key].append(timers[key]())
    return {f"{m}/{d}": v for (m, d), v in samples.items()}


def torch_worker(steps: int, repeats: int, threads: int) -> dict:
    """This process's (or rank's) seconds per ``steps`` steps, both methods interleaved."""
    import torch

    import pccore

    torch.set_num_threads(threads)
    distributed = "WORLD_SIZE" in os.environ
    rt = pccore.runtime("torch", dtype="float32", distributed=distributed)
    timers = {m: _timer(rt, *_session(rt, m), steps) for m in METHODS}
    for run in timers.values():
        run()
    samples: dict = {m: [] for m in METHODS}
    for r in range(repeats):
        for m in METHODS[r % 2:] + METHODS[:r % 2]:
            if rt.parallel is not None:
                rt.parallel.barrier()
            samples[m].append(timers[m]())
    return samples


# ---------------------------------------------------------------- launching
def _launch(kind: str, args: argparse.Namespace, env: dict, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "benchmarks.parallel", "--worker", kind, "--steps", str(args.steps),
           "--repeats", str(args.repeats), *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])


def _collect(procs: list) -> list[dict]:
    out = []
    for p in procs:
        text, _ = p.communicate(timeout=1200)
        if p.returncode:
            raise RuntimeError(f"benchmark worker failed ({p.returncode})")
        out.append(json.loads(text.strip().splitlines()[-1]))
    return out


def _env(**extra: str) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    env.pop("PCCORE_TORCH_DEVICE", None)
    env.update(extra)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(args: argparse.Namespace) -> dict:
    """Every configuration's samples: {(backend, method, config): [seconds per steps]}."""
    found: dict = {}

    def add(backend: str, config: str, samples: dict) -> None:
        for method, values in samples.items():
            found.setdefault((backend, method, config), []).extend(values)

    flags = "--xla_force_host_platform_device_count=2 --xla_cpu_multi_thread_eigen=false"
    for _ in range(args.rounds):
        jax = _collect([_launch("jax", args, _env(XLA_FLAGS=flags, JAX_PLATFORMS="cpu"))])[0]
        for key, values in jax.items():
            method, devices = key.split("/")
            add("jax", "1 device" if devices == "1" else "2 devices (mesh)", {method: values})
        add("torch", "1 process, 1 thread", _collect([_launch("torch", args, _env(), "--threads", "1")])[0])
        port = str(_free_port())
        ranks = _collect([_launch("torch", args, _env(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE="2",
                                                      MASTER_ADDR="127.0.0.1", MASTER_PORT=port), "--threads", "1")
                          for r in range(2)])
        add("torch", "2 gloo ranks, 1 thread each", ranks[0])
        add("torch", "1 process, 2 threads", _collect([_launch("torch", args, _env(), "--threads", "2")])[0])
    return found


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:  # pragma: no cover - not Linux
        return "n/a"


def report(found: dict, args: argparse.Namespace, before: str, after: str) -> tuple[dict, str]:
    rows, base = [], {}
    for (backend, method, config), values in found.items():
        per_step = statistics.median(values) / args.steps
        q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
        rows.append({"backend": backend, "method": method, "config": config, "ms_per_step": 1e3 * per_step,
                     "samples_per_s": BATCH / per_step, "spread": (q[2] - q[0]) / statistics.median(values),
                     "samples": len(values)})
        if config.startswith("1 ") and "2 threads" not in config:
            base[(backend, method)] = BATCH / per_step
    for row in rows:
        row["vs_1"] = row["samples_per_s"] / base[(row["backend"], row["method"])]
    rows.sort(key=lambda r: (r["backend"], r["method"], r["config"]))
    import numpy
    import jax
    import torch

    versions = {"python": platform.python_version(), "numpy": numpy.__version__, "jax": jax.__version__,
                "torch": torch.__version__}
    head = (f"# Data-parallel throughput, 1 vs 2 CPU devices ({time.strftime('%Y-%m-%d %H:%M:%S')})\n\n"
            f"`python -m benchmarks.parallel --steps {args.steps} --repeats {args.repeats} --rounds {args.rounds}` "
            f"on {os.cpu_count()} CPUs shared with other jobs; /proc/loadavg {before} -> {after}; {versions}.\n"
            f"MLP {'-'.join(map(str, WIDTHS))} tanh, float32, global batch {BATCH} (each of 2 devices: "
            f"{BATCH // 2}), Adam {LR:g}; EO with T = {T} (lr {INFER_LR:g}); compiled step; medians over "
            f"{args.rounds} launches x {args.repeats} samples of {args.steps} steps.\n\n"
            "| backend | method | configuration | ms / step | samples / s | vs 1 device | spread |\n"
            "|---|---|---|---|---|---|---|\n")
    lines = [f"| {r['backend']} | {r['method']} | {r['config']} | {r['ms_per_step']:.2f} | "
             f"{r['samples_per_s']:.0f} | {r['vs_1']:.2f}x | {r['spread']:.2f} |" for r in rows]
    data = {"args": vars(args), "loadavg_before": before, "loadavg_after": after, "versions": versions, "rows": rows}
    return data, head + "\n".join(lines) + "\n\n" + NOTE + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.parallel", description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20, help="steps per timed sample (default 20)")
    p.add_argument("--repeats", type=int, default=5, help="timed samples per launch (default 5)")
    p.add_argument("--rounds", type=int, default=2, help="launches of each configuration, alternated (default 2)")
    p.add_argument("--out", type=Path, default=RESULTS, help=f"results folder (default {RESULTS})")
    p.add_argument("--worker", choices=("jax", "torch"), help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker == "jax":
        print(json.dumps(jax_worker(args.steps, args.repeats)))
        return 0
    if args.worker == "torch":
        samples = torch_worker(args.steps, args.repeats, args.threads)
        print(json.dumps(samples))
        return 0
    before = _load()
    found = measure(args)
    data, text = report(found, args, before, _load())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "parallel.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    (args.out / "parallel.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
