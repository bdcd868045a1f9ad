"""The training suite: step tables per backend and model, the seed-shape time to solution,
and ``pccore energy`` under CPU contention; writes ``train.json`` and ``train.md``.

``python -m benchmarks --suite train [--quick] [--backends ...] [--device cuda]``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import pccore

from . import report
from .run import _load, _runtime, _versions
from .timing import Entry, interleaved, median, spread
from .training import MODELS, build, jax_script, pccore_step, torch_baseline

TARGETS = [  # (backend, model-independent entry, baseline, limit)
    ("jax", "pccore_eo", "script_eo", 1.0),
    ("jax", "pccore_bp", "script_bp", 1.1),
    ("torch", "pccore_eo", "naive_eo", 0.6),
    ("torch", "pccore_bp", "plain_bp", 1.1),
]


def _steps_per_sample(model: str, quick: bool, device: str | None) -> int:
    gpu = device not in (None, "cpu")
    base = {"mlp": 60, "cnn": 6}[model] * (5 if gpu else 1)
    return max(2, base // 2) if quick else base


def step_entries(rt: Any, model: str, n: int) -> list[Entry]:
    """pccore (compiled and eager) and the baselines of this backend, ``n`` steps a sample."""
    net, x, y = build(rt, model)
    makers = {"pccore_eo": lambda: pccore_step("eo", net, rt, x, y),
              "pccore_bp": lambda: pccore_step("bp", net, rt, x, y),
              "pccore_eager_eo": lambda: pccore_step("eo", net, rt, x, y, compile=False)}
    if rt.backend == "jax":
        makers.update(script_eo=lambda: jax_script("eo", net, rt, x, y),
                      script_bp=lambda: jax_script("bp", net, rt, x, y))
    if rt.backend == "torch":
        device = "cpu" if rt.device == "cpu" else rt.device
        makers.update(naive_eo=lambda: torch_baseline("eo", net, rt, x, y, device=device),
                      plain_bp=lambda: torch_baseline("bp", net, rt, x, y, device=device))
    return [Entry(name, (lambda run=make(): run(n)), n) for name, make in makers.items()]


def seed_solve_entries(rt: Any, n: int = 20) -> list[Entry]:
    """Seed shape (784-128x19-10 linear, batch 64): ``ErrorOptimization(6).run`` and a 56-step
    run (to split fixed cost from per-step cost), and on jax a hand-jitted 6-step EO solve
    returning the states (what JPC's discrete EO solve does)."""
    net = pccore.mlp(rt, [784] + [128] * 19 + [10], seed=0)
    rng = np.random.default_rng(0)
    x, y = rt.asarray(0.5 * rng.standard_normal((64, 784))), rt.asarray(np.eye(10)[rng.integers(0, 10, 64)])

    def runs(iters: int):
        eo = pccore.ErrorOptimization(iters=iters, lr=0.05)

        def go():
            for _ in range(n):
                states = eo.run(net, x, y, runtime=rt).states
            return _block(rt, states)
        return go

    entries = [Entry("run_6", runs(6), n), Entry("run_56", runs(56), n)]
    if rt.backend == "jax":
        entries.append(Entry("script_6", _jax_seed_solve(rt, net, x, y, n), n))
    return entries


def _jax_seed_solve(rt: Any, net: Any, x: Any, y: Any, n: int):
    import jax
    import jax.numpy as jnp

    Ws = [p[0] for p in net.params]

    def energy(es, x, y):
        s = x @ Ws[0].T
        for W, e in zip(Ws[1:], es):
            s = (s + e) @ W.T
        return sum(0.5 * jnp.sum(e * e) for e in es) + 0.5 * jnp.sum((s - y) ** 2)

    @jax.jit
    def solve(x, y):
        es = [jnp.zeros((x.shape[0], W.shape[0]), x.dtype) for W in Ws[:-1]]
        es = jax.lax.fori_loop(0, 6, lambda i, es: [e - 0.05 * g for e, g in zip(es, jax.grad(energy)(es, x, y))], es)
        s, states = x @ Ws[0].T, []
        for W, e in zip(Ws[1:], es):
            states.append(s + e)
            s = states[-1] @ W.T
        return states

    def go():
        for _ in range(n):
            states = solve(x, y)
        return jax.block_until_ready(states)
    return go


def _block(rt: Any, arrays: Any) -> Any:
    if rt.backend == "jax":
        import jax

        return jax.block_until_ready(arrays)
    rt.synchronize()
    return arrays


def contention(quick: bool, rounds: int = 3) -> dict:
    """``pccore energy --steps 10`` (numpy, digits) with the CLI's default threads (1) and with
    the framework's default (``--threads 0``), on an idle machine and with one busy process
    per core, ``rounds`` times each (medians); wall seconds and the contended/idle ratios."""
    steps = "3" if quick else "10"
    out: dict = {"command": f"python -m pccore energy --steps {steps} --quiet", "cores": os.cpu_count(),
                 "rounds": rounds}

    def run(threads: str) -> float:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "pccore", "energy", "--steps", steps, "--quiet",
                            "--threads", threads, "--out", tmp], check=True, capture_output=True,
                           env={k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")})
            return time.perf_counter() - t0

    times: dict = {label: {"threads_1_s": [], "threads_default_s": []} for label in ("idle", "contended")}
    for _ in range(rounds if not quick else 1):
        for label in ("idle", "contended"):
            busy = []
            if label == "contended":
                busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
                time.sleep(1.0)
            try:
                times[label]["threads_1_s"].append(run("1"))
                times[label]["threads_default_s"].append(run("0"))
            finally:
                for p in busy:
                    p.kill()
                    p.wait()
    for label in ("idle", "contended"):
        out[label] = {k: float(np.median(v)) for k, v in times[label].items()}
        out[label]["samples"] = times[label]
    out["load"] = _load()
    for key in ("threads_1_s", "threads_default_s"):
        out[f"{key}_contended_over_idle"] = out["contended"][key] / out["idle"][key]
    return out


def run_train(backends: list[str], device: str | None, quick: bool, repeats: int, out_dir: Path,
              command: str, models: tuple = MODELS, with_contention: bool = True) -> str:
    """Measure the training suite; writes ``train.json`` / ``train.md``; returns the markdown."""
    meta = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "command": command, "cpus": os.cpu_count(),
            "load_start": _load(), "device": device or "cpu", "quick": quick, "repeats": repeats,
            "versions": _versions(backends), "notes": []}
    rows, solve_rows = [], []
    for b in backends:
        rt, why = _runtime(b, device, "float32")
        if rt is None:
            meta["notes"].append(f"backend skipped: {why}")
            continue
        for model in models:
            n = _steps_per_sample(model, quick, device)
            samples = interleaved(step_entries(rt, model, n), repeats if quick else max(repeats, 11))
            rows += _rows(b, model, samples)
            print(f"[train] {b} {model}: " + ", ".join(f"{k} {1e3 * median(v):.3f} ms" for k, v in samples.items()),
                  file=sys.stderr, flush=True)
        samples = interleaved(seed_solve_entries(rt, 5 if quick else 20), repeats)
        solve_rows += _rows(b, "seed_solve", samples)
    meta["load_end"] = _load()
    payload = {"meta": meta, "steps": rows, "seed_solve": _solve_summary(solve_rows)}
    payload["targets"] = _targets(rows, payload["seed_solve"])
    if with_contention and device in (None, "cpu"):
        payload["contention"] = contention(quick)
    md = markdown(payload)
    report.write_json(out_dir / "train.json", payload)
    report.write_text(out_dir / "train.md", md)
    print(f"wrote {out_dir / 'train.json'} and {out_dir / 'train.md'}", file=sys.stderr)
    return md


def _rows(backend: str, model: str, samples: dict) -> list[dict]:
    return [{"backend": backend, "model": model, "name": k, "median_ms": 1e3 * median(v),
             "spread": spread(v), "samples_ms": [1e3 * s for s in v]} for k, v in samples.items()]


def _solve_summary(rows: list[dict]) -> list[dict]:
    out = []
    for b in sorted({r["backend"] for r in rows}):
        get = {r["name"]: r["median_ms"] for r in rows if r["backend"] == b}
        step = (get["run_56"] - get["run_6"]) / 50
        entry = {"backend": b, "run_6_ms": get["run_6"], "per_step_ms": step,
                 "fixed_ms": get["run_6"] - 6 * step}
        if "script_6" in get:
            entry.update(script_6_ms=get["script_6"], run_over_script=get["run_6"] / get["script_6"])
        out.append(entry)
    return out


def _targets(rows: list[dict], solves: list[dict]) -> list[dict]:
    idx = {(r["backend"], r["model"], r["name"]): r["median_ms"] for r in rows}
    out = []
    for backend, ours, base, limit in TARGETS:
        for model in MODELS:
            if (backend, model, ours) in idx and (backend, model, base) in idx:
                ratio = idx[(backend, model, ours)] / idx[(backend, model, base)]
                out.append({"what": f"{backend} {model}: {ours} / {base}", "ratio": ratio, "limit": limit,
                            "met": ratio <= limit})
    for s in solves:
        if s["backend"] == "jax":
            out.append({"what": "jax seed-shape EO run(): fixed cost per run (ms)", "ratio": s["fixed_ms"],
                        "limit": 0.5, "met": s["fixed_ms"] <= 0.5})
    return out


def markdown(p: dict) -> str:
    m = p["meta"]
    lines = [f"# Training-step benchmarks ({m['when']})", "",
             f"`{m['command']}` on {m['cpus']} CPUs, device {m['device']}, load {m['load_start']} -> "
             f"{m['load_end']}; versions {m['versions']}. float32, batch {64}, Adam 1e-3, EO T=8 lr 0.1.", "",
             "| backend | model | entry | ms / step | spread |", "|---|---|---|---|---|"]
    for r in p["steps"]:
        lines.append(f"| {r['backend']} | {r['model']} | {r['name']} | {r['median_ms']:.3f} | {r['spread']:.2f} |")
    lines += ["", "## Seed-shape EO solve (784-128x19-10 linear, batch 64, 6 steps)", "",
              "| backend | run(6) ms | per step ms | fixed ms | hand-jitted 6-step solve ms | run / script |",
              "|---|---|---|---|---|---|"]
    for s in p["seed_solve"]:
        lines.append(f"| {s['backend']} | {s['run_6_ms']:.2f} | {s['per_step_ms']:.3f} | {s['fixed_ms']:.2f} | "
                     f"{s.get('script_6_ms', float('nan')):.2f} | {s.get('run_over_script', float('nan')):.2f} |")
    lines += ["", "## Targets", "", "| target | measured | limit | met |", "|---|---|---|---|"]
    for t in p["targets"]:
        lines.append(f"| {t['what']} | {t['ratio']:.3f} | {t['limit']} | {'yes' if t['met'] else 'NO'} |")
    c = p.get("contention")
    if c:
        lines += ["", f"## Contention: `{c['command']}` ({c['cores']} cores; one busy process per core)", "",
                  "| threads | idle s | contended s | contended / idle |", "|---|---|---|---|"]
        for key, label in (("threads_1_s", "1 (CLI default)"), ("threads_default_s", "framework default")):
            lines.append(f"| {label} | {c['idle'][key]:.2f} | {c['contended'][key]:.2f} | "
                         f"{c[key + '_contended_over_idle']:.2f} |")
        lines.append(f"\nmedians of {c['rounds']} rounds; load after: {c['load']}")
    if m["notes"]:
        lines += ["", "Notes:"] + [f"- {n}" for n in m["notes"]]
    return "\n".join(lines) + "\n"
