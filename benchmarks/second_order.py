"""Second-order inference benchmarks (issue 10): NewtonCG against EO and SO.

``python -m benchmarks.second_order [--quick] [--backend jax] [--data-dir ../shared/data]``
writes ``results/second_order.json`` / ``.md`` and ``docs/figures/lambda_max_training.png``.

1. ``hvp``: deep linear nets (the seed shape and four others), float64: the fewest
   Hessian-vector products (CG iterations of one Newton step) that reach the closed-form
   equilibrium to 1e-10 relative; the theory says d_y + 1.
2. ``time``: the 20-layer tanh MLP (width 128, batch 64, orthogonal init) and the MNIST CNN,
   each after 200 backprop steps on MNIST: Gauss-Newton iterations to gradient RMS 1e-8
   (float64), and the wall time (float32) to relative distance 1e-6 from the float64
   equilibrium for NewtonCG, EO and SO at their best lr of {0.01, 0.03, 0.1, 0.3, 0.5}.
   Iterations to the target are found first (a ``Target`` stop); the timed runs are plain
   fixed-iteration runs, so no method pays for the distance test.
3. ``training``: lambda_max of the error Hessian per batch while training the 20-layer
   tanh net on MNIST with fixed-lr EO, against NewtonCG training from the same start.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

import pccore

from .report import write_results
from .run import _versions
from .timing import Entry, interleaved, median

RESULTS = Path(__file__).resolve().parent / "results"
FIGURES = Path(__file__).resolve().parent.parent / "docs" / "figures"
LRS = (0.01, 0.03, 0.1, 0.3, 0.5)
LINEAR_SHAPES = [  # (name, widths, batch)
    ("seed 784-128x19-10", [784] + [128] * 19 + [10], 64),
    ("784-64x9-10", [784] + [64] * 9 + [10], 32),
    ("100-50x29-20", [100] + [50] * 29 + [20], 16),
    ("32-256x4-5", [32] + [256] * 4 + [5], 64),
    ("50-100x14-3", [50] + [100] * 14 + [3], 8),
]


def _load() -> str:
    return open("/proc/loadavg").read().split()[0] if os.path.exists("/proc/loadavg") else "n/a"


def _flat(rt: Any, arrays: list) -> np.ndarray:
    return np.concatenate([rt.to_numpy(a).astype(np.float64).ravel() for a in arrays])


def _relative(rt: Any, got: list, want: list) -> float:
    a, b = _flat(rt, got), _flat(rt, want)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# ---------------------------------------------------------------- 1. HVP counts
def hvp_counts(backend: str, quick: bool) -> list[dict]:
    """Fewest CG products of one Newton step that reach the closed form to 1e-10."""
    rt = pccore.runtime(backend, dtype="float64")
    rows = []
    for name, widths, batch in LINEAR_SHAPES[:2] if quick else LINEAR_SHAPES:
        net = pccore.mlp(rt, widths, activation="linear", init="normal", gain=1.0, seed=0)
        rng = np.random.default_rng(0)
        x = rt.asarray(rng.standard_normal((batch, widths[0])))
        y = rt.asarray(rng.standard_normal((batch, widths[-1])))
        eq = pccore.analytic.linear_equilibrium(net, x, y)
        d_y, found, errors = widths[-1], None, {}
        for cg in range(1, d_y + 4):
            newton = pccore.NewtonCG(max_iters=1, cg_iters=cg, cg_tol=0.0, line_search=0, reorthogonalize=True)
            errors[cg] = _relative(rt, newton.run(net, x, y).errors, eq.errors)
            if errors[cg] <= 1e-10:
                found = cg
                break
        rows.append({"shape": name, "d_y": d_y, "hvps": found, "limit": d_y + 2,
                     "error": errors[found] if found else min(errors.values()), "met": found is not None
                     and found <= d_y + 2})
        print(f"  {name}: {found} HVPs (d_y + 2 = {d_y + 2}), relative error {rows[-1]['error']:.2e}", flush=True)
    return rows


# ------------------------------------------------------------ 2. time to 1e-6
def _pretrained(backend: str, model: str, data: Any, steps: int) -> Any:
    """The float64 net after ``steps`` backprop steps (Adam 1e-3, batch 64, MSE)."""
    rt = pccore.runtime(backend, dtype="float64")
    if model == "mlp20":
        net = pccore.mlp(rt, [784] + [128] * 19 + [10], activation="tanh", init="orthogonal", seed=0)
    else:
        net = pccore.nn.models.cnn(rt, (1, 28, 28), 10, seed=0)
    trained, _ = pccore.Trainer("bp", lr=1e-3, batch_size=64, progress=False).fit(net, data, max_steps=steps)
    return trained


def _cast(net: Any, rt: Any, model: str) -> Any:
    """The same network on runtime ``rt`` (e.g. float32)."""
    fresh = (pccore.mlp(rt, [784] + [128] * 19 + [10], activation="tanh", seed=0) if model == "mlp20"
             else pccore.nn.models.cnn(rt, (1, 28, 28), 10, seed=0))
    host = [np.asarray(pccore.runtime_for(p).to_numpy(p)) for p in net.flat_params()]
    return fresh.with_params([rt.asarray(h) for h in host])


def _iterations_to(inference: Any, net: Any, x: Any, y: Any, target: Any) -> tuple[int | str, float]:
    """(iterations to the target, or "diverged" / "not reached"; the energy where the run ended)."""
    try:
        result = inference.run(net, x, y, target=target)
    except pccore.InferenceDiverged:
        return "diverged", float("nan")
    n = result.iterations if result.stopped == "target" else "not reached"
    return n, float(pccore.runtime_for(result.energy).to_numpy(result.energy))


# caps on the EO / SO steps of the lr sweep; the CNN's (ReLU + max-pool: a piecewise-quadratic
# energy on which fixed-lr EO and SO stall at kinks) are smaller: no lr reaches the target there
CAPS = {"mlp20": {"EO": 10000, "SO": 20000}, "cnn": {"EO": 2000, "SO": 5000}}


def _sweep(net: Any, x: Any, y: Any, target: Any, caps: dict) -> tuple[dict, dict]:
    """Iterations to the target (and end energies) of EO and SO at each lr, largest first: a
    smaller lr is the best only if it needs fewer steps, so the cap shrinks to the best so far."""
    found, energies = {}, {}
    for method, cls in (("EO", pccore.ErrorOptimization), ("SO", pccore.StateOptimization)):
        cap = caps[method]
        for lr in sorted(LRS, reverse=True):
            n, energies[f"{method} lr={lr:g}"] = _iterations_to(cls(cap, lr), net, x, y, target)
            found[f"{method} lr={lr:g}"] = n if isinstance(n, int) or n == "diverged" else f"> {cap}"
            if isinstance(n, int):
                cap = n
    return found, energies


def _timed_settings(found: dict, caps: dict, newtons: dict) -> dict:
    """name -> (label, inference, iterations, repeats): each method at its best setting; where no
    lr reached the target, the cap at the largest stable lr (a lower bound on its time, timed
    once), and NewtonCG at its iteration limit when it did not reach the target either."""
    makers = {}
    for method, cls in (("EO", pccore.ErrorOptimization), ("SO", pccore.StateOptimization)):
        reached = {k: v for k, v in found.items() if k.startswith(method) and isinstance(v, int)}
        stable = [k for k, v in found.items() if k.startswith(method) and str(v).startswith(">")]
        if reached:
            best = min(reached, key=reached.get)
            makers[method] = (best, cls(reached[best], float(best.split("=")[1])), reached[best], None)
        elif stable:
            best = max(stable, key=lambda k: float(k.split("=")[1]))
            makers[method] = (best + " (cap, not reached)", cls(caps[method], float(best.split("=")[1])),
                              caps[method], 1)
    for name, kw in newtons.items():
        n = found[name]
        label = name if isinstance(n, int) else name + f" ({NEWTON_MAX} iterations, not reached)"
        n = n if isinstance(n, int) else NEWTON_MAX
        makers[name] = (label, pccore.NewtonCG(max_iters=n, **kw), n, None)
    return makers


NEWTON_MAX = 30


def time_to_accuracy(backend: str, model: str, data: Any, quick: bool) -> dict:
    """Newton iterations to RMS 1e-8 (float64) and time to 1e-6 distance (float32)."""
    net64 = _pretrained(backend, model, data, 20 if quick else 200)
    rt64, rt32 = pccore.runtime(backend, dtype="float64"), pccore.runtime(backend, dtype="float32")
    xs, ys = data.x_test[:64], data.y_test[:64]
    x64, y64 = rt64.asarray(xs), rt64.asarray(ys)
    reference = pccore.NewtonCG(max_iters=40, tol=1e-13, exact=True, cg_iters=50).run(net64, x64, y64)
    gn = {"reference": {"iterations": reference.iterations, "converged": reference.converged,
                        "energy": float(rt64.to_numpy(reference.energy))}}
    for exact in (False, True):
        r = pccore.NewtonCG(max_iters=10, tol=1e-8, exact=exact, cg_iters=30).run(net64, x64, y64)
        gn["exact" if exact else "gauss_newton"] = {"iterations": r.iterations, "converged": r.converged}
    net32 = _cast(net64, rt32, model)
    x32, y32 = rt32.asarray(xs), rt32.asarray(ys)
    target = pccore.Target([rt32.asarray(rt64.to_numpy(s)) for s in reference.states], 1e-6)
    caps = {k: (min(v, 2000) if quick else v) for k, v in CAPS[model].items()}
    found, energies = _sweep(net32, x32, y32, target, caps)
    newtons = {"NewtonCG GN": dict(cg_iters=20), "NewtonCG exact": dict(cg_iters=20, exact=True)}
    for name, kw in newtons.items():
        found[name], energies[name] = _iterations_to(pccore.NewtonCG(max_iters=NEWTON_MAX, **kw), net32, x32, y32,
                                                     target)
    print(f"  {model}: iterations to 1e-6: {found}\n  end energies: {energies}", flush=True)
    makers = _timed_settings(found, caps, newtons)
    once = {k: m for k, m in makers.items() if m[3] == 1}
    entries = [Entry(k, lambda inf=m[1]: _sync(rt32, inf.run(net32, x32, y32))) for k, m in makers.items()
               if k not in once]
    samples = interleaved(entries, repeats=3 if quick else 5)
    times = {k: median(v) for k, v in samples.items()}
    for key, (_, inference, _, _) in once.items():
        start = time.perf_counter()
        _sync(rt32, inference.run(net32, x32, y32))
        times[key] = time.perf_counter() - start
    newton = min((times[k] for k in newtons if k in times), default=float("nan"))
    out = {
        "model": model, "backend": backend, "load": _load(), "float64_newton_to_rms_1e-8": gn,
        "iterations_to_1e-6": found, "end_energy_float32": energies,
        "timed": {k: {"setting": makers[k][0], "iterations": makers[k][2], "seconds": times[k]} for k in times},
        "eo_over_newton": times.get("EO", float("nan")) / newton,
        "so_over_newton": times.get("SO", float("nan")) / newton,
    }
    print(f"  {model}: seconds {times}; EO/Newton {out['eo_over_newton']:.1f}x, SO/Newton "
          f"{out['so_over_newton']:.1f}x (load {out['load']})", flush=True)
    return out


def _sync(rt: Any, result: Any) -> Any:
    rt.to_numpy(result.energy)  # the run is done once its energy is on the host
    return result


# ------------------------------------------------- 3. lambda_max during training
def training_spectrum(backend: str, data: Any, steps: int, lr: float) -> dict:
    """Train the 20-layer tanh net with fixed-lr EO (T=20) and with NewtonCG (3 Gauss-Newton
    steps), Adam 1e-3, from the same start; per batch, lambda_max (k=20 Lanczos) at the
    EO run's weights, the EO energy after inference, and both losses."""
    rt = pccore.runtime(backend, dtype="float32")
    net = pccore.mlp(rt, [784] + [128] * 19 + [10], activation="tanh", init="orthogonal", seed=0)
    eo = pccore.Trainer("eo", pccore.ErrorOptimization(20, lr), lr=1e-3, batch_size=64, progress=False).session(net)
    newton = pccore.Trainer("eo", pccore.NewtonCG(max_iters=3, cg_iters=10), lr=1e-3, batch_size=64,
                            progress=False).session(net)
    log: dict[str, list] = {"step": [], "lambda_max": [], "eo_loss": [], "eo_energy": [], "newton_loss": []}
    for i, (x, y) in enumerate(pccore.batches(data, rt, 64, "train", shuffle=True, seed=0)):
        if i == steps:
            break
        spectrum = pccore.analytic.error_hessian_spectrum(eo.net, x, y, k=20)
        lam = float(np.max(rt.to_numpy(spectrum.lambda_max)))
        loss, energy = (float(v) for v in eo.step(x, y))
        n_loss, _ = newton.step(x, y)
        for key, value in zip(log, (i, lam, loss, energy, float(n_loss))):
            log[key].append(value)
        if i % 50 == 0:
            print(f"  step {i}: lambda_max {lam:.3g} (lr*lambda {lr * lam:.2f}), EO loss {loss:.4g} "
                  f"energy {energy:.4g}, Newton loss {float(n_loss):.4g}", flush=True)
    unstable = next((s for s, l in zip(log["step"], log["lambda_max"]) if lr * l >= 2), None)
    bad = next((s for s, e in zip(log["step"], log["eo_energy"]) if not math.isfinite(e)), None)
    return {"backend": backend, "lr": lr, "first_step_lr_lambda_ge_2": unstable, "first_nonfinite_energy": bad,
            "log": log, "load": _load()}


def figure(run: dict, path: Path) -> None:
    """lambda_max per batch with 2/lr, and both training losses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    log, lr = run["log"], run["lr"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    a.semilogy(log["step"], log["lambda_max"], label="lambda_max (EO weights)")
    a.axhline(2 / lr, color="red", ls="--", label=f"2 / lr (lr = {lr:g}): EO unstable above")
    a.set_xlabel("training step")
    a.set_ylabel("largest eigenvalue of the error Hessian")
    a.legend(fontsize=8)
    finite = [v if math.isfinite(v) else np.nan for v in log["eo_loss"]]
    b.semilogy(log["step"], finite, label=f"EO, fixed lr {lr:g}, T = 20")
    b.semilogy(log["step"], log["newton_loss"], label="NewtonCG (3 GN steps)")
    b.set_xlabel("training step")
    b.set_ylabel("training loss (MSE, batch mean)")
    b.legend(fontsize=8)
    fig.suptitle(f"20-layer tanh MLP on MNIST, {run['backend']} float32, Adam 1e-3, batch 64", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------- report
def markdown(res: dict) -> str:
    lines = [f"# Second-order inference (NewtonCG) — {res['when']}, {res['backend']}, load {res['load']}", "",
             "Reproduce: `python -m benchmarks.second_order" + (" --quick" if res["quick"] else "") + "`.", "",
             "## Deep linear nets: Hessian-vector products to the closed form (float64, one Newton step)", "",
             "| shape | d_y | HVPs to 1e-10 relative | limit d_y + 2 | error | met |", "|---|---|---|---|---|---|"]
    for r in res["hvp"]:
        lines.append(f"| {r['shape']} | {r['d_y']} | {r['hvps']} | {r['limit']} | {r['error']:.1e} | {r['met']} |")
    for t in res["time"]:
        lines += ["", f"## {t['model']}: time to relative distance 1e-6 (float32; float64 reference)", "",
                  f"Float64 NewtonCG to gradient RMS 1e-8 within 10 steps: {t['float64_newton_to_rms_1e-8']}", "",
                  "End energies (float32; the reference's is in the line above): "
                  + ", ".join(f"{k}: {v:.7g}" for k, v in t.get("end_energy_float32", {}).items()), "",
                  "Iterations to the target: " + ", ".join(f"{k}: {v}" for k, v in t["iterations_to_1e-6"].items()),
                  "", "| method | setting | iterations | seconds |", "|---|---|---|---|"]
        for k, v in t["timed"].items():
            lines.append(f"| {k} | {v['setting']} | {v['iterations']} | {v['seconds']:.4f} |")
        if any("not reached" in v["setting"] for v in t["timed"].values()):
            lines += ["", "Not every method reached the target: the times above are of iteration caps, so "
                      "their ratios are not times to the target (no ratio reported). Load " + t["load"] + "."]
        else:
            lines += ["", f"EO / NewtonCG: {t['eo_over_newton']:.1f}x (target >= 5); "
                      f"SO / NewtonCG: {t['so_over_newton']:.1f}x (target >= 50). Load {t['load']}."]
    if res.get("training"):
        tr = res["training"]
        lines += ["", "## lambda_max during training (20-layer tanh, fixed-lr EO)", "",
                  f"EO lr {tr['lr']:g}: first batch with lr * lambda_max >= 2: {tr['first_step_lr_lambda_ge_2']}; "
                  f"first non-finite EO energy: {tr['first_nonfinite_energy']}. lambda_max went from "
                  f"{tr['log']['lambda_max'][0]:.3g} to {max(tr['log']['lambda_max']):.3g} (max). "
                  "Figure: docs/figures/lambda_max_training.png."]
    lines += ["", f"Versions: {res['versions']}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.second_order", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller runs (a smoke test)")
    p.add_argument("--backend", default="jax")
    p.add_argument("--data-dir", default=os.environ.get("PCCORE_MNIST", "../shared/data"))
    p.add_argument("--parts", default="hvp,time,training", help="comma-separated subset of hvp,time,training")
    p.add_argument("--train-steps", type=int, default=600)
    p.add_argument("--eo-lr", type=float, default=0.1)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--skip-cnn", action="store_true", help="time the 20-layer MLP only")
    args = p.parse_args(argv)
    parts = set(args.parts.split(","))
    res: dict[str, Any] = {"when": time.strftime("%Y-%m-%d %H:%M"), "backend": args.backend, "quick": args.quick,
                           "load": _load(), "versions": _versions(["numpy", args.backend]), "hvp": [], "time": []}
    if "hvp" in parts:
        print("deep linear nets: HVPs to the closed form", flush=True)
        res["hvp"] = hvp_counts("numpy", args.quick)
    if parts & {"time", "training"}:
        flat = pccore.load_dataset("mnist", root=args.data_dir)
    if "time" in parts:
        res["time"].append(time_to_accuracy(args.backend, "mlp20", flat, args.quick))
        if not args.skip_cnn:
            images = pccore.load_dataset("mnist", root=args.data_dir, flatten=False)
            res["time"].append(time_to_accuracy(args.backend, "cnn", images, args.quick))
    if "training" in parts:
        print("lambda_max during training", flush=True)
        res["training"] = training_spectrum(args.backend, flat, 60 if args.quick else args.train_steps, args.eo_lr)
        figure(res["training"], FIGURES / "lambda_max_training.png")
    name = "second_order_quick" if args.quick else "second_order"
    old = args.out / f"{name}.json"
    if old.exists():  # keep the parts not run this time
        previous = json.loads(old.read_text())
        for key, done in (("hvp", "hvp"), ("time", "time"), ("training", "training")):
            if done not in parts and previous.get(key):
                res[key] = previous[key]
    print(f"wrote {write_results(args.out, name, res, markdown(res))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
