"""The two seed experiments as library functions (the ``pccore`` command calls them).

* :func:`compare` (seed 000): EO vs SO inference on one batch of a deep linear network,
  against the analytical equilibrium; learning-rate sweeps, distance and gradient curves.
* :func:`energy` (seed 003): PC training of a deep linear MLP, theoretical equilibrium
  energy F* vs the numerical one found by EO inference, per training iteration.

Both return a result whose ``summary`` is JSON-ready and whose ``figures(names)`` builds
the figures through the ``pccore.plots`` entry points (matplotlib is imported only there).
Trackers come from the ``pccore_trackers`` plugin package, imported on first use.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from . import host, registry
from .analytic import linear_equilibrium, linear_equilibrium_energy
from .checks import check_positive_float, check_positive_int
from .data import Dataset, batches
from .energy import local_weight_grads
from .errors import InferenceDiverged, InputError, MissingDependency
from .inference import ErrorOptimization, StateOptimization
from .backprop import backprop_grads
from .nn.models import mlp
from .nn.network import Network
from .runtime import Runtime
from .train import Trainer
from .train.progress import InferenceProgress, Progress

COMPARE_PLOTS = ("convergence", "gradient_alignment", "gradient_norms")
ENERGY_PLOTS = ("energy",)


def _f(rt: Runtime, value: Any) -> float:
    """A 0-d device array as a host float."""
    return float(rt.to_numpy(value))


def _quiet(message: str) -> None:
    """Default logger: say nothing."""


def _trackers() -> Any:
    try:
        import pccore_trackers
    except ImportError as err:
        raise MissingDependency("pccore_trackers", "all", "the compare experiment") from err
    return pccore_trackers


def build_figures(names: Sequence[str], makers: dict[str, Callable[[Callable], Any]]) -> dict[str, Any]:
    """Figures ``names`` (subset of ``makers``), each drawn by the plot of that name loaded
    from the ``pccore.plots`` entry points: ``makers[name](plot_function) -> figure``."""
    unknown = [n for n in names if n not in makers]
    if unknown:
        raise InputError(f"this experiment draws the plots {', '.join(makers)}; got {', '.join(unknown)}")
    return {name: makers[name](registry.load(registry.PLOTS, name, "plot")) for name in names}


def default_layers(count: int) -> tuple[int, ...]:
    """First, middle and last of ``count`` hidden layers (0, 9, 18 for a 20-layer net)."""
    return tuple(sorted({0, (count - 1) // 2, count - 1}))


# ================================================================== compare
@attrs.frozen
class CompareResult:
    """Outcome of :func:`compare`: ``summary`` (JSON-ready) and the per-layer curves
    (dicts layer -> host arrays) the figures are drawn from."""

    summary: dict
    curves: dict = attrs.field(repr=False)

    def figures(self, names: Sequence[str] = COMPARE_PLOTS) -> dict[str, Any]:
        c, s = self.curves, self.summary
        layers, thr, title = s["layers"], s["threshold"], self.title()
        lrs = (s["eo"]["best_lr"], s["so"]["best_lr"])
        return build_figures(names, {
            "convergence": lambda plot: plot(c["eo_dist"], c["so_dist"], layers=layers, threshold=thr,
                                             lrs=lrs, title=title),
            "gradient_alignment": lambda plot: plot(c["eo_cos"], c["so_cos"], c["optimum_cos"], layers=layers,
                                                    title=title),
            "gradient_norms": lambda plot: plot(c["eo_norms"], c["so_norms"], c["bp_norm"],
                                                c["optimum_norm"], layers=layers, title=title),
        })

    def title(self) -> str:
        """What was run, for the figures: net, dataset, batch, backend, device, dtype, lrs."""
        s = self.summary
        return (f"{len(s['widths']) - 1}-layer linear net, dataset {s['dataset']} (batch {s['batch_size']}) · "
                f"backend {s['backend']} ({s['device']}, {s['dtype']}) · "
                f"EO lr {s['eo']['best_lr']:g}, SO lr {s['so']['best_lr']:g} (best of the sweeps)")


def _score(rt: Runtime, states: list, optimum: list) -> float:
    """Seed 000's score: mean over layers of the batch-mean ||s - s*|| / ||s*||."""
    xp = rt.xp
    total = 0.0
    for s, o in zip(states, optimum):
        rel = xp.sqrt(xp.sum((s - o) ** 2, axis=1)) / xp.sqrt(xp.sum(o * o, axis=1))
        total += _f(rt, xp.mean(rel))
    return total / len(optimum)


def sweep(method: type, iters: int, lrs: Sequence[float], net: Network, x: Any, y: Any,
          optimum: list, rt: Runtime, log: Callable = _quiet, progress: bool = False) -> tuple[float, dict]:
    """Run ``method(iters, lr)`` for each lr; returns (best lr, {lr: score}); diverged = inf.
    Ties go to the larger lr, as in the seed. ``progress``: a bar on stderr counting the
    inference steps of the whole sweep, advanced after each lr (runs stay fused)."""
    scores, best = {}, None
    with Progress(progress, f"{method.method} lr sweep", total=iters * len(lrs), unit="it") as bar:
        for i, lr in enumerate(lrs):
            try:
                with warnings.catch_warnings():  # a diverging lr overflows on the way: expected
                    warnings.simplefilter("ignore", RuntimeWarning)
                    result = method(iters=iters, lr=lr).run(net, x, y, runtime=rt)
                    score = _score(rt, result.states, optimum)
            except InferenceDiverged:
                score = math.inf
            scores[lr] = score if math.isfinite(score) else math.inf
            bar.update((i + 1) * iters, lr=f"{lr:g}", score=f"{scores[lr]:.3g}")
            log(f"  {method.method} lr={lr:g}: score {scores[lr]:.3g}")
            if math.isfinite(scores[lr]) and (best is None or scores[lr] <= scores[best]):
                best = lr
    if best is None:
        raise InputError(f"every {method.method} learning rate in {list(lrs)} diverged; try smaller ones")
    return best, scores


def _tracked_run(method, iters, lr, net, x, y, eq, reference, state_layers, param_layers, rt, bar=None, offset=0):
    """One inference run with DistanceToOptimum and GradientAlignment registered; ``bar``
    (a Progress) advances to ``offset + iteration`` at the points the trackers record."""
    tr = _trackers()
    dist = tr.DistanceToOptimum(eq.states, layers=state_layers)
    align = tr.GradientAlignment(net, x, y, reference, layers=param_layers)
    observers = [dist, align]
    if bar is not None:
        observers.append(InferenceProgress(bar, offset, every=math.gcd(dist.every, align.every)))
    for observer in observers:
        rt.register(observer)
    try:
        method(iters=iters, lr=lr).run(net, x, y, runtime=rt)
    finally:
        for observer in observers:
            rt.unregister(observer)
    return dist, align


def _steps(distances: dict, threshold: float, scale: dict | None = None) -> dict:
    """layer -> first step whose batch-median distance (divided by ``scale``) is below threshold."""
    steps_to_threshold = _trackers().steps_to_threshold
    out = {}
    for k, d in distances.items():
        out[k] = steps_to_threshold(d if scale is None else d / scale[k][None, :], threshold)
    return out


def _speedup(eo: dict, so: dict) -> dict:
    return {k: (None if eo[k] is None or so[k] is None else so[k] / max(eo[k], 1)) for k in eo}


def _pretrain(net, data, rt, steps, lr, batch_size, seed, progress):
    if steps == 0:
        return net, {"steps": 0}
    trainer = Trainer("bp", lr=lr, batch_size=batch_size, seed=seed, runtime=rt, progress=progress)
    per_epoch = max(data.x_train.shape[0] // batch_size, 1)
    net, _ = trainer.fit(net, data, epochs=math.ceil(steps / per_epoch), max_steps=steps)
    metrics = trainer.evaluate(net, data)
    return net, {"steps": steps, "lr": lr, "test_loss": metrics["loss"], "test_accuracy": metrics["accuracy"]}


def compare(
    data: Dataset,
    rt: Runtime,
    depth: int = 20,
    width: int = 128,
    batch_size: int = 64,
    pretrain_steps: int = 50,
    pretrain_lr: float = 1e-3,
    eo_iters: int = 256,
    so_iters: int = 4096,
    eo_lrs: Sequence[float] = (0.01, 0.05, 0.1, 0.3),
    so_lrs: Sequence[float] = (0.1, 0.3, 0.5),
    layers: Sequence[int] | None = None,
    threshold: float = 7e-5,
    relative_threshold: float = 1e-3,
    seed: int = 0,
    log: Callable[[str], None] = _quiet,
    progress: bool = False,
) -> CompareResult:
    """Seed 000 end to end on ``data``: a ``depth``-layer linear net (hidden ``width``,
    orthogonal, no bias), ``pretrain_steps`` of backprop (Adam ``pretrain_lr``), one
    training batch, its analytical equilibrium, lr sweeps of EO (``eo_iters``) and SO
    (``so_iters``), tracked runs at the best lrs, steps to ``threshold`` (absolute median
    distance) and ``relative_threshold`` per layer, and EO vs SO speed-ups.
    ``layers`` indexes the hidden states (and the weight matrices for the gradients)."""
    started = time.monotonic()
    check_positive_int("depth", depth, minimum=2)
    check_positive_int("width", width)
    check_positive_int("pretrain_steps", pretrain_steps, minimum=0)
    check_positive_float("threshold", threshold)
    check_positive_float("relative_threshold", relative_threshold)
    widths = [data.input_dim] + [width] * (depth - 1) + [data.num_classes]
    net = mlp(rt, widths, activation="linear", bias=False, init="orthogonal", seed=seed)
    layers = tuple(default_layers(depth - 1) if layers is None else layers)
    bad = [k for k in layers if not 0 <= k < depth - 1]
    if bad or not layers:
        raise InputError(f"layers must index the {depth - 1} hidden layers (0..{depth - 2}), got {list(layers)}")
    log(f"pre-training with backprop for {pretrain_steps} steps")
    net, pre = _pretrain(net, data, rt, pretrain_steps, pretrain_lr, batch_size, seed, progress)
    x, y = next(batches(data, rt, batch_size, seed=seed))
    eq = linear_equilibrium(net, x, y)
    log(f"EO sweep ({eo_iters} steps each)")
    eo_lr, eo_scores = sweep(ErrorOptimization, eo_iters, eo_lrs, net, x, y, eq.states, rt, log, progress)
    log(f"SO sweep ({so_iters} steps each)")
    so_lr, so_scores = sweep(StateOptimization, so_iters, so_lrs, net, x, y, eq.states, rt, log, progress)
    reference = [g / batch_size for g in net.structure.flatten(backprop_grads(net, x, y))]
    log(f"tracked runs: EO lr={eo_lr:g}, SO lr={so_lr:g}")
    with Progress(progress, "tracked runs (EO, SO)", total=eo_iters + so_iters, unit="it") as bar:
        eo_d, eo_a = _tracked_run(ErrorOptimization, eo_iters, eo_lr, net, x, y, eq, reference, layers, layers,
                                  rt, bar if progress else None)
        so_d, so_a = _tracked_run(StateOptimization, so_iters, so_lr, net, x, y, eq, reference, layers, layers,
                                  rt, bar if progress else None, eo_iters)
    curves = _curves(rt, net, x, y, eq, reference, layers, eo_d, so_d, eo_a, so_a)
    summary = _compare_summary(
        data, rt, widths, batch_size, pre, layers, threshold, relative_threshold, curves,
        dict(iters=eo_iters, lrs=list(eo_lrs), scores=eo_scores, best_lr=eo_lr),
        dict(iters=so_iters, lrs=list(so_lrs), scores=so_scores, best_lr=so_lr))
    summary["seconds"] = round(time.monotonic() - started, 2)
    return CompareResult(summary, curves)


def _curves(rt, net, x, y, eq, reference, layers, eo_d, so_d, eo_a, so_a) -> dict:
    np, xp, batch = host._np(), rt.xp, x.shape[0]
    opt_grads = [g / batch for g in net.structure.flatten(local_weight_grads(net, x, y, eq.states))]
    optimum_cos, optimum_norm, bp_norm, scale = {}, {}, {}, {}
    for k in layers:
        g, r = opt_grads[k], reference[k]
        gn, rn = xp.sqrt(xp.sum(g * g)), xp.sqrt(xp.sum(r * r))
        optimum_cos[k] = _f(rt, xp.sum(g * r) / (gn * rn))
        optimum_norm[k], bp_norm[k] = _f(rt, gn), _f(rt, rn)
        scale[k] = np.linalg.norm(rt.to_numpy(eq.states[k]).astype(np.float64), axis=1)
    return {
        "eo_dist": eo_d.distances, "so_dist": so_d.distances, "scale": scale,
        "eo_cos": eo_a.cosine, "so_cos": so_a.cosine, "optimum_cos": optimum_cos,
        "eo_norms": eo_a.norms, "so_norms": so_a.norms, "bp_norm": bp_norm, "optimum_norm": optimum_norm,
    }


def _by_layer(d: dict) -> dict:
    return {str(k): v for k, v in d.items()}


def _compare_summary(data, rt, widths, batch_size, pre, layers, threshold, rel, c, eo, so) -> dict:
    np = host._np()
    eo_steps, so_steps = _steps(c["eo_dist"], threshold), _steps(c["so_dist"], threshold)
    eo_rel, so_rel = _steps(c["eo_dist"], rel, c["scale"]), _steps(c["so_dist"], rel, c["scale"])
    final = {m: _by_layer({k: float(np.median(d[k][-1])) for k in layers})
             for m, d in (("eo", c["eo_dist"]), ("so", c["so_dist"]))}
    for sweep_info in (eo, so):
        sweep_info["scores"] = {f"{lr:g}": (None if math.isinf(s) else s) for lr, s in sweep_info["scores"].items()}
    return {
        "experiment": "compare", "dataset": data.name, "backend": rt.backend, "device": rt.device,
        "dtype": rt.dtype, "widths": widths, "batch_size": batch_size, "pretrain": pre,
        "eo": eo, "so": so, "layers": list(layers),
        "threshold": threshold,
        "steps_to_threshold": {"eo": _by_layer(eo_steps), "so": _by_layer(so_steps)},
        "speedup": _by_layer(_speedup(eo_steps, so_steps)),
        "relative_threshold": rel,
        "steps_to_relative_threshold": {"eo": _by_layer(eo_rel), "so": _by_layer(so_rel)},
        "relative_speedup": _by_layer(_speedup(eo_rel, so_rel)),
        "final_median_distance": final,
        "final_gradient_cosine": {
            "eo": _by_layer({k: float(c["eo_cos"][k][-1]) for k in layers}),
            "so": _by_layer({k: float(c["so_cos"][k][-1]) for k in layers}),
            "optimum": _by_layer(c["optimum_cos"]),
        },
    }


# =================================================================== energy
@attrs.frozen
class EnergyResult:
    """Outcome of :func:`energy`: ``summary`` (JSON-ready) and the per-iteration curves."""

    summary: dict
    curves: dict = attrs.field(repr=False)

    def figures(self, names: Sequence[str] = ENERGY_PLOTS) -> dict[str, Any]:
        c = self.curves
        return build_figures(names, {
            "energy": lambda plot: plot(c["theory"], c["numerical"], steps=c["steps"],
                                        accuracy=(c["eval_steps"], c["accuracy"]) if c["eval_steps"] else None),
        })


def energy(
    data: Dataset,
    rt: Runtime,
    width: int = 300,
    depth: int = 5,
    steps: int = 100,
    batch_size: int = 64,
    lr: float = 1e-3,
    iters: int = 300,
    inference_lr: float = 0.1,
    test_every: int = 10,
    init: str = "uniform",
    seed: int = 0,
    log: Callable[[str], None] = _quiet,
    progress: bool = False,
) -> EnergyResult:
    """Seed 003 on ``data``: PC training (EO inference, ``iters`` steps of ``inference_lr``;
    Adam ``lr``) of a ``depth``-layer linear MLP (hidden ``width``, no bias, ``init``) for
    ``steps`` iterations; before each update the theoretical F* of the batch
    (``linear_equilibrium_energy``) next to the numerical energy (inference energy / batch);
    test accuracy every ``test_every`` steps. ``progress``: a bar on stderr (steps, ETA, the
    latest loss and energies; the numbers are on the host at each step here anyway)."""
    started = time.monotonic()
    for name, value in (("width", width), ("steps", steps), ("test_every", test_every)):
        check_positive_int(name, value)
    check_positive_int("depth", depth, minimum=2)
    widths = [data.input_dim] + [width] * (depth - 1) + [data.num_classes]
    net = mlp(rt, widths, activation="linear", bias=False, init=init, seed=seed)
    trainer = Trainer("eo", inference=ErrorOptimization(iters=iters, lr=inference_lr), lr=lr,
                      batch_size=batch_size, seed=seed, runtime=rt, progress=False)
    session = trainer.session(net)
    c = {"steps": [], "theory": [], "numerical": [], "loss": [], "eval_steps": [], "accuracy": []}
    epoch = 0
    with Progress(progress, "PC training", total=steps) as bar:
        while session.step_count < steps:
            for x, y in trainer.batches(data, rt, epoch):
                c["theory"].append(_f(rt, linear_equilibrium_energy(session.net, x, y)))
                loss, numerical = (_f(rt, v) for v in session.step(x, y))
                c["steps"].append(session.step_count)
                c["numerical"].append(numerical)
                c["loss"].append(loss)
                bar.update(session.step_count, loss=loss, theory=c["theory"][-1], numerical=numerical)
                if session.step_count % test_every == 0:
                    acc = trainer.evaluate(session.net, data)["accuracy"]
                    c["eval_steps"].append(session.step_count)
                    c["accuracy"].append(acc)
                    log(f"  iter {session.step_count}: train loss {loss:.4g}, theory {c['theory'][-1]:.4g}, "
                        f"numerical {numerical:.4g}, test accuracy {100 * acc:.1f}%")
                if session.step_count >= steps:
                    break
            epoch += 1
    return EnergyResult(_energy_summary(data, rt, widths, trainer, init, c, started), c)


def _energy_summary(data, rt, widths, trainer, init, c, started) -> dict:
    gaps = [abs(n - t) / t for n, t in zip(c["numerical"], c["theory"]) if t > 0]
    worst = max(range(len(gaps)), key=gaps.__getitem__) if gaps else None
    return {
        "experiment": "energy", "dataset": data.name, "backend": rt.backend, "device": rt.device,
        "dtype": rt.dtype, "widths": widths, "init": init, "batch_size": trainer.batch_size,
        "lr": trainer.lr, "inference": {"method": "EO", "iters": trainer.inference.iters,
                                        "lr": trainer.inference.lr},
        "steps": len(c["steps"]),
        "max_relative_gap": max(gaps) if gaps else None,
        "max_relative_gap_step": None if worst is None else c["steps"][worst],
        "mean_relative_gap": sum(gaps) / len(gaps) if gaps else None,
        "theory": c["theory"], "numerical": c["numerical"],
        "test_accuracy": {str(s): a for s, a in zip(c["eval_steps"], c["accuracy"])},
        "final_test_accuracy": c["accuracy"][-1] if c["accuracy"] else None,
        "seconds": round(time.monotonic() - started, 2),
    }
