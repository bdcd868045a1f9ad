"""Why EO fails at depth 20 in ``pccore reproduce depth``: the inference regime before and
after one epoch, and inference methods that keep training.

``python -m benchmarks.depth_regime [--methods eo,eo-batch-mean,spectral,newton] [--quick]``
trains the depth-20 net of the ``depth`` reproduction (seed 0, its settings: batch 64,
Adam 1e-4, cross-entropy, T = 64) for one epoch with each inference method, then reports
the test accuracy and, with the ``regime`` tracker, lambda_max of the error Hessian and the
regime of a fixed-lr EO run (lr 0.1, T = 64) on one test batch, at init and after training.
Writes ``results/depth_regime.json`` / ``.md``.

Methods: ``eo`` the reproduction's EO (lr 0.1); ``eo-batch-mean`` lr 0.1 / 64 (the
per-sample rate of lr 0.1 on a batch-mean energy); ``spectral`` ``SpectralEO(64, target=1)``
(lr = 1 / lambda_max, tracked); ``newton`` ``NewtonCG(3 Gauss-Newton steps, 10 CG)``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import pccore
from pccore.reproduce import depth
from pccore.reproduce.runner import load_data
from pccore_trackers.regime import Regime

from .report import write_results
from .run import _load, _versions

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = {
    "eo": lambda: pccore.ErrorOptimization(64, 0.1),
    "eo-batch-mean": lambda: pccore.ErrorOptimization(64, 0.1 / 64),
    "spectral": lambda: pccore.SpectralEO(64, target=1.0),
    "newton": lambda: pccore.NewtonCG(max_iters=3, cg_iters=10),
}


def regime(net: Any, x: Any, y: Any, backend: str, inference: Any = None) -> dict:
    """The regime record of one ``inference`` run (default: fixed-lr EO, lr 0.1, T = 64) on (x, y)."""
    tracker = Regime()
    rt = pccore.runtime(backend, plugins=[tracker])
    inference = pccore.ErrorOptimization(64, 0.1) if inference is None else inference
    inference.run(net, rt.asarray(x), rt.asarray(y), loss="ce", runtime=rt)
    return tracker.records[-1]


def train(name: str, data: Any, backend: str, max_steps: int | None) -> dict:
    """One epoch (or ``max_steps``) of the depth-20 net with inference ``name``."""
    rt = pccore.runtime(backend)
    variant = next(v for v in depth.SPEC.variants if v.name == "depth 20")
    trainer = pccore.Trainer("eo", inference=METHODS[name](), optimizer="adam", lr=depth.SPEC.lr,
                             batch_size=depth.SPEC.batch_size, loss="ce", runtime=rt, progress=False)
    net = variant.build(rt, data, 0)
    x, y = data.x_test[:64], data.y_test[:64]
    before = regime(net, x, y, backend)
    start = time.perf_counter()
    if max_steps is None:
        net, _ = trainer.fit(net, data, epochs=1)
    else:
        net, _ = trainer.fit(net, data, max_steps=max_steps)
    seconds = time.perf_counter() - start
    accuracy = trainer.evaluate(net, data)["accuracy"]
    after = regime(net, x, y, backend)
    print(f"{name}: test accuracy {accuracy:.4f}; lambda_max {before['lambda_max']:.3g} -> "
          f"{after['lambda_max']:.3g}; fixed-lr EO {before['label']} -> {after['label']}", flush=True)
    return {"method": name, "inference": repr(METHODS[name]()), "accuracy": accuracy, "train_s": seconds,
            "regime_at_init": before, "regime_after": after}


def markdown(res: dict) -> str:
    lines = [f"# Depth 20: inference regime and methods — {res['when']}, {res['backend']}, load {res['load']}", "",
             "Reproduce: `python -m benchmarks.depth_regime" + (" --quick" if res["quick"] else "") + "`. "
             f"Training: {res['training']}.", "",
             "| inference | test accuracy | lambda_max at init | after | fixed-lr EO (0.1) at init | after "
             "| fraction of the way after | train s |", "|---|---|---|---|---|---|---|---|"]
    for r in res["runs"]:
        b, a = r["regime_at_init"], r["regime_after"]
        lines.append(f"| {r['method']}: `{r['inference']}` | {100 * r['accuracy']:.2f}% | {b['lambda_max']:.3g} | "
                     f"{a['lambda_max']:.3g} | {b['label']} | {a['label']} | {a['fraction']:.2f} | {r['train_s']:.0f} |")
    lines += ["", f"Versions: {res['versions']}"]
    return "\n".join(lines) + "\n"


def parser(prog: str, doc: str, methods: dict, quick: str) -> argparse.ArgumentParser:
    """The options the regime benchmarks share: --methods, --backend, --data-dir, --quick, --out."""
    p = argparse.ArgumentParser(prog=prog, description=doc.splitlines()[0])
    p.add_argument("--methods", default=",".join(methods), help="comma-separated subset of " + ", ".join(methods))
    p.add_argument("--backend", default="jax")
    p.add_argument("--data-dir", default=None, help="folder holding MNIST/raw (default: as pccore reproduce)")
    p.add_argument("--quick", action="store_true", help=quick)
    p.add_argument("--out", type=Path, default=RESULTS)
    return p


def chosen(p: argparse.ArgumentParser, names: str, methods: dict) -> list[str]:
    """The --methods list, or a usage error (exit status 2) naming the unknown ones."""
    unknown = [n for n in names.split(",") if n not in methods]
    if unknown:
        p.error(f"unknown methods {unknown}; choose from {', '.join(methods)}")
    return names.split(",")


def main(argv: list[str] | None = None) -> int:
    p = parser("python -m benchmarks.depth_regime", __doc__, METHODS, "20 training steps instead of one epoch")
    args = p.parse_args(argv)
    names = chosen(p, args.methods, METHODS)
    data = load_data(depth.SPEC, args.data_dir)
    steps = 20 if args.quick else None
    res = {"when": time.strftime("%Y-%m-%d %H:%M"), "backend": args.backend, "quick": args.quick, "load": _load(),
           "training": ("20 steps" if args.quick else "one epoch") + ", seed 0, batch 64, Adam 1e-4, cross-entropy",
           "versions": _versions(["numpy", args.backend]), "runs": []}
    name = "depth_regime_quick" if args.quick else "depth_regime"
    for n in names:  # the files are rewritten after each method: a stopped run keeps the finished ones
        res["runs"].append(train(n, data, args.backend, steps))
        written = write_results(args.out, name, res, markdown(res))
    print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
