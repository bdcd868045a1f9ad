"""Summaries, targets and the two result files (JSON, written atomically, and markdown)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .roofline import matmul_flops
from .shapes import Shape

SEED = (64, 128)  # seed 000's batch and width


def _index(rows: list[dict]) -> dict:
    return {(r["backend"], r["batch"], r["width"], r["group"], r["name"]): r for r in rows}


def step_seconds(long: dict, one: dict | None) -> tuple[float, float | None]:
    """(seconds per step, fixed seconds per run) from the N-step and 1-step entries:
    (T_N - T_1) / (N - 1) and T_1 - step; T_N / N when the 1-step entry is missing or
    the difference is swamped by noise."""
    n, total = long["units"], long["median_s"] * long["units"]
    if one is None or n < 2 or total <= one["median_s"]:
        return long["median_s"], None
    step = (total - one["median_s"]) / (n - 1)
    return step, one["median_s"] - step


def summarize(rows: list[dict], matmul_n: int) -> list[dict]:
    """One dict per (backend, batch, width) with the figures and ratios of the report."""
    idx, out = _index(rows), []
    keys = sorted({(r["backend"], r["batch"], r["width"]) for r in rows}, key=lambda k: (k[0], k[2], k[1]))
    for b, batch, width in keys:
        shape = Shape(batch, width)
        get = lambda g, n: idx.get((b, batch, width, g, n))  # noqa: E731
        mm = get("EO", "matmul")
        rate = matmul_flops(matmul_n) / mm["median_s"] if mm else None
        s = {"backend": b, "batch": batch, "width": width, "matmul_gflops": rate and rate / 1e9,
             "step_gflop_nominal": shape.step_flops / 1e9, "step_gflop_executed": shape.executed_flops / 1e9}
        for m in ("EO", "SO"):
            pc = get(m, "pccore")
            if pc is None:
                continue
            t, fixed = step_seconds(pc, get(m, "pccore@1"))
            s[f"{m}_ms"] = 1e3 * t
            s[f"{m}_run_overhead_ms"] = fixed and 1e3 * fixed
            s[f"{m}_ms_incl_overhead"] = 1e3 * pc["median_s"]
            s[f"{m}_gflops"] = shape.step_flops / t / 1e9
            s[f"{m}_peak_bytes"] = pc["peak_bytes"]
            if rate:  # against this backend's own matmul; summarize() adds the machine's best
                s[f"{m}_roofline_own_matmul"] = shape.step_flops / t / rate
            for base in ("naive", "naive_wgrad", "jit_step"):
                r = get(m, base)
                if r:
                    tb, _ = step_seconds(r, get(m, f"{base}@1"))
                    s[f"{m}_{base}_ms"] = 1e3 * tb
                    s[f"{m}_{base}_peak_bytes"] = r["peak_bytes"]
                    s[f"{m}_speedup_vs_{base}"] = tb / t
                    s[f"{m}_speedup_vs_{base}_incl_overhead"] = r["median_s"] / pc["median_s"]
        eq, tri = get("equilibrium", "pccore"), get("equilibrium", "block_tridiagonal")
        if eq and tri:
            s.update(eq_ms=1e3 * eq["median_s"], tridiag_ms=1e3 * tri["median_s"],
                     eq_speedup=tri["median_s"] / eq["median_s"],
                     eq_peak_bytes=eq["peak_bytes"], tridiag_peak_bytes=tri["peak_bytes"])
        plain, hist = get("trackers", "plain"), get("trackers", "history_every_10")
        if plain and hist:
            s.update(plain_ms=1e3 * plain["median_s"], history_ms=1e3 * hist["median_s"],
                     tracker_overhead=hist["median_s"] / plain["median_s"])
        out.append(s)
    best = max((s["matmul_gflops"] for s in out if s["matmul_gflops"]), default=None)
    for s in out:  # roofline = the machine's matmul rate: the best backend's median in this run
        s["machine_matmul_gflops"] = best
        for m in ("EO", "SO"):
            if best and f"{m}_gflops" in s:
                s[f"{m}_roofline"] = s[f"{m}_gflops"] / best
                s[f"{m}_roofline_executed_flops"] = s[f"{m}_roofline"] * s["step_gflop_executed"] / s["step_gflop_nominal"]
    return out


def targets(summary: list[dict]) -> list[dict]:
    """The issue's targets, each a ratio measured in this run: value, goal, met."""
    out = []

    def add(name, s, key, goal, higher=True):
        if key in s:
            v = s[key]
            out.append({"target": name, "backend": s["backend"], "batch": s["batch"], "width": s["width"],
                        "value": v, "goal": goal, "higher_is_better": higher,
                        "met": bool(v >= goal if higher else v <= goal)})

    for s in summary:
        seed = (s["batch"], s["width"]) == SEED
        if seed and s["backend"] in ("torch", "jax"):
            add("EO step speedup vs naive autograd", s, "EO_speedup_vs_naive", 3.0)
            add("EO step fraction of matmul roofline", s, "EO_roofline", 0.5)
        if s["width"] in (128, 512):
            add("linear_equilibrium speedup vs block-tridiagonal", s, "eq_speedup",
                5.0 if s["width"] == 128 else 10.0)
        add("History(every=10) time / no trackers", s, "tracker_overhead", 1.3, higher=False)
    return out


def write_json(path: Path, payload: dict) -> None:
    """Write ``payload`` to ``path`` atomically (temp file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=1, default=str)
            f.write("\n")
        os.chmod(tmp, 0o644)  # mkstemp makes it private
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_text(path: Path, text: str) -> None:
    """Atomic text write, like :func:`write_json`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def write_results(folder: Path, name: str, payload: dict, text: str) -> Path:
    """``folder/name.json`` and ``folder/name.md``, each written atomically; returns the .md path."""
    write_json(folder / f"{name}.json", payload)
    write_text(folder / f"{name}.md", text)
    return folder / f"{name}.md"


# -------------------------------------------------------------------- markdown
def _f(v: Any, fmt: str = ".3g") -> str:
    return "-" if v is None else format(v, fmt)


def _mib(v: Any) -> str:
    return "-" if v is None else f"{v / 2**20:.1f}"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def markdown(meta: dict, summary: list[dict], goals: list[dict]) -> str:
    """The short report printed at the end and saved as latest.md."""
    out = [f"# pccore benchmarks ({meta['when']})", "",
           f"`{meta['command']}` on {meta['cpus']} CPUs, load average {meta['load_start']} -> "
           f"{meta['load_end']}, dtype {meta['dtype']}, device {meta['device']}, "
           f"threads {meta['threads']}. Medians over {meta['repeats']} interleaved repeats; "
           f"Step times are (T_N - T_1)/(N - 1) (fixed cost of a run excluded). Roofline = achieved "
           f"FLOP/s (nominal step FLOPs) / the machine's matmul FLOP/s (best backend's median "
           f"{meta['matmul_n']}^2 float matmul, timed interleaved with the steps).", "",
           "## Inference steps (per step)", ""]
    rows = []
    for s in summary:
        for m in ("EO", "SO"):
            if f"{m}_ms" not in s:
                continue
            rows.append([s["backend"], f"B{s['batch']} w{s['width']}", m, _f(s[f"{m}_ms"]),
                         _f(s.get(f"{m}_naive_ms")), _f(s.get(f"{m}_speedup_vs_naive"), ".2f"),
                         _f(s.get(f"{m}_speedup_vs_naive_wgrad"), ".2f"),
                         _f(s.get(f"{m}_speedup_vs_jit_step"), ".2f"), _f(s[f"{m}_gflops"], ".1f"),
                         _f(s.get(f"{m}_roofline"), ".0%"), _f(s.get(f"{m}_roofline_own_matmul"), ".0%"),
                         _f(s["matmul_gflops"], ".1f"),
                         _mib(s.get(f"{m}_peak_bytes")), _mib(s.get(f"{m}_naive_peak_bytes"))])
    out += _table(["backend", "shape", "method", "pccore ms", "naive ms", "x naive", "x naive+W grads", "x jit-step",
                   "GFLOP/s", "roofline", "vs own matmul", "own matmul GFLOP/s", "peak MiB",
                   "naive peak MiB"], rows)
    out += ["", "## linear_equilibrium vs block-tridiagonal solve (per call)", ""]
    rows = [[s["backend"], f"B{s['batch']} w{s['width']}", _f(s["eq_ms"]), _f(s["tridiag_ms"]),
             _f(s["eq_speedup"], ".1f"), _mib(s["eq_peak_bytes"]), _mib(s["tridiag_peak_bytes"])]
            for s in summary if "eq_ms" in s]
    out += _table(["backend", "shape", "pccore ms", "block-tridiag ms", "speedup", "peak MiB",
                   "tridiag peak MiB"], rows)
    out += ["", "## Tracker overhead (EO inference, per step)", ""]
    rows = [[s["backend"], f"B{s['batch']} w{s['width']}", _f(s["plain_ms"]), _f(s["history_ms"]),
             _f(s["tracker_overhead"], ".2f")] for s in summary if "plain_ms" in s]
    out += _table(["backend", "shape", "no trackers ms", "History(every=10) ms", "ratio"], rows)
    if meta.get("notes"):
        out += [""] + [f"- {n}" for n in meta["notes"]]
    out += ["", "## Targets", ""]
    rows = [[g["target"], g["backend"], f"B{g['batch']} w{g['width']}", _f(g["value"], ".2f"),
             ("<= " if not g["higher_is_better"] else ">= ") + _f(g["goal"]), "yes" if g["met"] else "NO"]
            for g in goals]
    out += _table(["target", "backend", "shape", "value", "goal", "met"], rows)
    return "\n".join(out) + "\n"
