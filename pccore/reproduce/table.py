"""From the per-run JSON files to numbers: the summary (mean and standard deviation over
seeds per variant and method) and the markdown table written from it. Nothing here is typed
by hand: every number comes from ``runs/*.json``."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path

from ..errors import InputError
from .spec import Method, Spec

RUN_FILES = "runs"


def collect(runs_dir: Path, keys: Sequence[str]) -> list[dict]:
    """The records ``runs_dir/<key>.json`` of ``keys``, in that order; a missing one is an
    InputError (the runner writes every planned run before it tabulates)."""
    records = []
    for key in keys:
        path = runs_dir / f"{key}.json"
        if not path.exists():
            raise InputError(f"run {key!r} has no result file {str(path)!r}")
        records.append(json.loads(path.read_text()))
    return records


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1 in the denominator; 0 for one value)."""
    values = [float(v) for v in values]
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _span(values: list) -> list | None:
    """[smallest, largest] of the non-None ``values`` (None when there are none)."""
    values = [v for v in values if v is not None]
    return [min(values), max(values)] if values else None


def summarise(spec: Spec, records: list[dict], methods: Sequence[Method], epochs: int) -> dict:
    """JSON-ready summary of ``records``: per (variant, method) in the spec's order the
    accuracies of the seeds (percent), their mean and std, the published figure and the
    mean wall time; plus the runtime, versions, machine, load and dates of the runs."""
    rows = []
    for variant in spec.variants:
        for method in methods:
            mine = [r for r in records if r["variant"] == variant.name and r["method"] == method.name]
            if not mine:
                continue
            accs = [100.0 * r["test_accuracy"] for r in mine]
            mean, std = mean_std(accs)
            published = spec.published(variant, method.name)
            rows.append({
                "variant": variant.name, "method": method.name, "inference": method.describe(),
                "seeds": [r["seed"] for r in mine], "accuracies": accs, "mean": mean, "std": std,
                "published": published, "difference": None if published is None else mean - published,
                "wall_s": statistics.fmean(r["wall_s"] for r in mine),
            })
    first = records[0]
    loads = [r["load"][k][0] for r in records for k in ("start", "end") if r["load"][k]]
    return {
        "spec": spec.name, "title": spec.title, "dataset": spec.dataset, "epochs": epochs,
        "batch_size": spec.batch_size, "optimizer": spec.optimizer, "lr": spec.lr, "loss": spec.loss,
        "train_samples": first["train_samples"], "test_samples": first["test_samples"],
        "models": {v.name: v.model for v in spec.variants}, "rows": rows,
        "runtime": first["runtime"], "versions": first["versions"], "machine": first["machine"],
        "load_1min": _span(loads), "started": min(r["started"] for r in records),
        "finished": max(r["finished"] for r in records), "total_wall_s": sum(r["wall_s"] for r in records),
        "resumed_runs": sum(bool(r.get("resumed")) for r in records),
        "source": spec.source, "notes": list(spec.notes),
    }


def duration(seconds: float) -> str:
    """42 s, 6.9 min or 2.4 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _model_text(model: dict) -> str:
    if model.get("kind") == "mlp":
        return (f"MLP {'-'.join(map(str, model['widths']))}, {model['activation']} hidden, linear output, "
                f"init {model['init']}, bias {'yes' if model['bias'] else 'no'}")
    parts = [f"{k} {v}" for k, v in model.items() if k != "kind"]
    return f"{model.get('kind', 'model')}: " + "; ".join(parts)


def table(spec: Spec, summary: dict, records: list[dict]) -> str:
    """The markdown table of ``summary`` with the settings, runtime and machine under it."""
    s = summary
    lines = [
        f"# `pccore reproduce {spec.name}`: {spec.title}",
        "",
        f"Test accuracy after {s['epochs']} epoch{'s' * (s['epochs'] > 1)}, mean ± standard deviation over "
        "seeds (sample std, n - 1). Written by `pccore reproduce` from the per-seed files in `runs/`; "
        "rerun the command to regenerate it.",
        "",
        "| model | method | inference | test accuracy (%) | seeds | per seed (%) | published (%) | difference | wall time per run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in s["rows"]:
        published = "-" if row["published"] is None else f"{row['published']:.2f}"
        diff = "-" if row["difference"] is None else f"{row['difference']:+.2f}"
        seeds = ", ".join(f"{a:.2f}" for a in row["accuracies"])
        lines.append(f"| {row['variant']} | {row['method'].upper()} | {row['inference']} | "
                     f"{row['mean']:.2f} ± {row['std']:.2f} | {len(row['seeds'])} | {seeds} | {published} | "
                     f"{diff} | {duration(row['wall_s'])} |")
    rt, m, v = s["runtime"], s["machine"], s["versions"]
    load = "n/a" if s["load_1min"] is None else f"{s['load_1min'][0]:g}-{s['load_1min'][1]:g}"
    versions = ", ".join(f"{k} {val}" for k, val in v.items() if val)
    lines += [
        "",
        f"* Data: `{s['dataset']}`, {s['train_samples']} training and {s['test_samples']} test samples.",
        f"* Training: batch {s['batch_size']}, {s['optimizer']} (weight lr {s['lr']:g} unless the "
        f"method sets its own: {_weight_lrs(spec)}), loss {s['loss']}, seeds "
        f"{sorted({r['seed'] for r in records})} (weights and shuffling).",
    ]
    for name, model in s["models"].items():
        if any(row["variant"] == name for row in s["rows"]):
            lines.append(f"* {name}: {_model_text(model)}.")
    lines += [
        "* Inference: plain gradient steps on the errors (EO) or states (SO) from the feed-forward "
        "pass; T steps of the given optimizer and lr per batch, then one local weight update.",
        f"* Runtime: {rt['backend']} ({rt['device']}, {rt['dtype']}); {versions}.",
        f"* Machine: {m['system']} {m['machine']}, {m['cpus']} CPUs ({m['cpu'] or 'unknown CPU'}); "
        f"1-minute load average {load} at the starts and ends of runs.",
        f"* Runs: {s['started']} to {s['finished']}, {duration(s['total_wall_s'])} of training in all"
        + (f" ({s['resumed_runs']} resumed from a checkpoint)" if s["resumed_runs"] else "") + ".",
    ]
    if s["source"]:
        lines.append(f"* Published figures and settings: {s['source']}.")
    lines += [f"* {note}" for note in s["notes"]]
    if s.get("missing_runs"):
        lines.append(f"* **Not finished** ({len(s['missing_runs'])} runs, left out of the means above; rerun "
                     f"the command without `--table-only` to train them): {', '.join(s['missing_runs'])}.")
    return "\n".join(lines) + "\n"


def _weight_lrs(spec: Spec) -> str:
    own = [f"{m.name.upper()} {m.weight_lr:.3g}" for m in spec.methods if m.weight_lr]
    return ", ".join(own) if own else "none does"
