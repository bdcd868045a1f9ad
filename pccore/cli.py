"""The ``pccore`` command: ``compare`` (seed 000), ``energy`` (seed 003), ``train`` and ``plugins``.

User errors (bad names, missing data, bad sizes) print one line and exit with status 2;
no traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__, host, registry
from .errors import InputError, MissingDependency, PCCoreError

EXIT_USER_ERROR = 2


# ------------------------------------------------------------ argument types
def _int_at_least(minimum: int):
    """argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1)
_count = _int_at_least(0)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def _floats(text: str) -> list[float]:
    return [_positive_float(t) for t in text.split(",") if t.strip()]


def _ints(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _devices(text: str) -> int | str:
    """argparse type of --devices: a count >= 1 or "all"."""
    return "all" if text.strip() == "all" else _positive_int(text)


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


# ---------------------------------------------------------------- parsers
def _common(out: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("common options")
    g.add_argument("--backend", default="numpy", help="array backend: numpy, torch or jax (default numpy)")
    g.add_argument("--device", default=None, help="device of the backend, e.g. cpu, cuda:0, gpu:0 (default: the backend's)")
    g.add_argument("--dtype", default="float32", choices=("float32", "float64"), help="floating dtype (default float32)")
    g.add_argument("--dataset", default="digits", help="dataset name, see `pccore plugins` (default digits)")
    g.add_argument("--data-dir", default=None, help="folder holding the dataset files (torchvision root); "
                   "default $PCCORE_DATA_DIR or ./data")
    g.add_argument("--download", action="store_true", help="let the dataset loader download missing files")
    g.add_argument("--out", default=out, help=f"output folder (default {out})")
    g.add_argument("--seed", type=_count, default=0, help="seed of weights, shuffling and batch choice (default 0)")
    g.add_argument("--quiet", action="store_true", help="no progress output")
    g.add_argument("--threads", type=_count, default=1,
                   help="CPU threads of the backend (default 1: small matrices gain little from more and "
                   "slow down badly when other jobs share the cores; 0 = the framework's default)")
    return p


def _compare_parser(sub) -> None:
    p = sub.add_parser("compare", parents=[_common("out/compare")],
                       help="seed 000: EO vs SO inference on a deep linear net vs the analytical optimum",
                       description="Error optimization (EO) vs state optimization (SO) on one batch of a "
                       "deep linear network, against its analytical equilibrium. Writes convergence, "
                       "gradient_alignment and gradient_norms PNGs and summary.json to --out.")
    p.add_argument("--depth", type=_positive_int, default=20, help="number of weight layers (default 20)")
    p.add_argument("--width", type=_positive_int, default=128, help="hidden width (default 128)")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="batch size (default 64)")
    p.add_argument("--pretrain-steps", type=_count, default=50, help="backprop pre-training steps (default 50)")
    p.add_argument("--pretrain-lr", type=_positive_float, default=1e-3, help="Adam lr of the pre-training (default 1e-3)")
    p.add_argument("--eo-iters", type=_positive_int, default=256, help="EO inference steps (default 256)")
    p.add_argument("--so-iters", type=_positive_int, default=4096, help="SO inference steps (default 4096)")
    p.add_argument("--eo-lrs", type=_floats, default=[0.01, 0.05, 0.1, 0.3], help="EO lr sweep (default 0.01,0.05,0.1,0.3)")
    p.add_argument("--so-lrs", type=_floats, default=[0.1, 0.3, 0.5], help="SO lr sweep (default 0.1,0.3,0.5)")
    p.add_argument("--layers", type=_ints, default=None, help="hidden layers to track (default first,middle,last: 0,9,18)")
    p.add_argument("--threshold", type=_positive_float, default=7e-5, help="absolute distance threshold (default 7e-5)")
    p.add_argument("--relative-threshold", type=_positive_float, default=1e-3, help="relative distance threshold (default 1e-3)")
    p.add_argument("--plots", type=_names, default=None, help="figures to draw (default convergence,gradient_alignment,gradient_norms)")
    p.set_defaults(func=cmd_compare)


def _energy_parser(sub) -> None:
    p = sub.add_parser("energy", parents=[_common("out/energy")],
                       help="seed 003: theoretical vs numerical equilibrium energy during PC training",
                       description="PC training (EO inference) of a deep linear MLP; before each weight "
                       "update the theoretical equilibrium energy F* of the batch vs the numerical one. "
                       "Writes energy.png and summary.json to --out.")
    p.add_argument("--width", type=_positive_int, default=300, help="hidden width (default 300)")
    p.add_argument("--depth", type=_positive_int, default=5, help="number of weight layers (default 5)")
    p.add_argument("--steps", type=_positive_int, default=100, help="training iterations (default 100)")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="batch size (default 64)")
    p.add_argument("--lr", type=_positive_float, default=1e-3, help="Adam lr of the weights (default 1e-3)")
    p.add_argument("--iters", type=_positive_int, default=300, help="EO inference steps per batch (default 300)")
    p.add_argument("--inference-lr", type=_positive_float, default=0.1, help="EO inference lr (default 0.1)")
    p.add_argument("--test-every", type=_positive_int, default=10, help="test accuracy every N steps (default 10)")
    p.add_argument("--init", default="uniform", help="weight init (default uniform, the Equinox/PyTorch Linear default)")
    p.add_argument("--plots", type=_names, default=None, help="figures to draw (default energy)")
    p.set_defaults(func=cmd_energy)


def _train_parser(sub) -> None:
    p = sub.add_parser("train", parents=[_common("out/train")],
                       help="train an MLP or a CNN with PC (eo, so) or backprop (bp) and report test accuracy",
                       description="Train an MLP or a small CNN with predictive coding or backprop. Writes "
                       "model.npz (pccore.load), history.json and summary.json to --out.")
    p.add_argument("--method", default="eo", choices=("eo", "so", "bp", "theory"),
                   help="eo, so, bp or theory (exact equilibrium-energy gradient; linear mlp and mse only) "
                   "(default eo)")
    p.add_argument("--model", default="mlp", choices=("mlp", "cnn"),
                   help="mlp (--width, --depth, --bias) or cnn: per --channels entry a block "
                   "Conv2d(c, 3, padding=1)+activation+MaxPool2d(2), then Flatten+Linear (default mlp)")
    p.add_argument("--activation", default=None, help="hidden activation (default tanh for mlp, relu for cnn)")
    p.add_argument("--width", type=_positive_int, default=128, help="mlp: hidden width (default 128)")
    p.add_argument("--depth", type=_positive_int, default=3, help="mlp: number of weight layers (default 3)")
    p.add_argument("--bias", action=argparse.BooleanOptionalAction, default=True, help="mlp: use biases (default yes)")
    p.add_argument("--channels", type=_ints, default=[16, 32], help="cnn: channels of the conv blocks (default 16,32)")
    p.add_argument("--init", default=None, help="weight init (default xavier_uniform for mlp, uniform for cnn)")
    p.add_argument("--epochs", type=_positive_int, default=1, help="epochs (default 1)")
    p.add_argument("--steps", type=_positive_int, default=None, help="stop after this many weight updates")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="batch size (default 64)")
    p.add_argument("--optimizer", default="adam", help="weight optimizer: sgd, momentum, adam (default adam)")
    p.add_argument("--lr", type=_positive_float, default=1e-3, help="weight lr (default 1e-3)")
    p.add_argument("--loss", default="mse", help="output loss: mse or ce (default mse)")
    p.add_argument("--iters", type=_positive_int, default=None, help="inference steps per batch (default eo 100, so 200)")
    p.add_argument("--inference-lr", type=_positive_float, default=None, help="inference lr (default eo 0.1, so 0.2)")
    p.add_argument("--eval-every", type=_positive_int, default=None, help="test evaluation every N steps (default: each epoch)")
    p.add_argument("--checkpoint", default=None, help="checkpoint file or folder, written at each epoch end")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint when it exists")
    p.add_argument("--tracker", action="append", default=[], metavar="NAME[:KEY=VALUE,...]",
                   help="observer plugin to register (repeatable; `pccore plugins` lists them), with its "
                   "arguments as Python literals, e.g. csv:every=10 or history:every=5,layers=[0,-1]; "
                   "loggers with an `out` argument (csv, tensorboard) write under --out unless given one")
    p.add_argument("--devices", type=_devices, default=None,
                   help="jax: split each batch over N devices of --device's kind, or 'all' (same weights as one "
                   "device; the batch size must divide by N); torch: start one process per device with "
                   "`torchrun --nproc-per-node N -m pccore train ...` instead (docs/scaling.md)")
    p.add_argument("--distributed", action="store_true",
                   help="join a multi-process run: torch.distributed (on by itself under torchrun) or, for "
                   "jax, several hosts through jax.distributed.initialize()")
    p.set_defaults(func=cmd_train)


def _reproduce_parser(sub) -> None:
    p = sub.add_parser("reproduce", help="reproduce a published accuracy table over seeds (`--list` names them)",
                       description="Train each model, method and seed of a reproduction (docs/results.md), "
                       "writing one JSON per run to --out/runs/ as it ends (a rerun skips finished runs and "
                       "resumes an interrupted one), then table.md (mean ± std over seeds), summary.json "
                       "and accuracy.png computed from those files.")
    p.add_argument("name", nargs="?", help="reproduction: mnist-mlp, depth, mnist-cnn, fashion-mnist, cifar10-vgg5")
    p.add_argument("--list", action="store_true", help="list the reproductions and their settings, then exit")
    p.add_argument("--seeds", type=_positive_int, default=None, help="number of seeds 0..N-1 (default the reproduction's)")
    p.add_argument("--epochs", type=_positive_int, default=None, help="epochs per run (default the reproduction's)")
    p.add_argument("--methods", type=_names, default=None, help="subset of the methods, e.g. eo,bp (default all)")
    p.add_argument("--quick", action="store_true", help="smoke size: 1 seed, 1 epoch, 256 training samples, tiny "
                   "models, at most 3 inference steps (seconds)")
    p.add_argument("--estimate", action="store_true", help="time a few training steps of each model and method on "
                   "random data of the dataset's shape and print the expected time; trains nothing, needs no data")
    p.add_argument("--table-only", action="store_true", help="write table.md, summary.json and accuracy.png from the "
                   "runs finished so far (the missing ones are named in the table); trains nothing")
    g = p.add_argument_group("common options")
    g.add_argument("--backend", default="numpy", help="array backend: numpy, torch or jax (default numpy)")
    g.add_argument("--device", default=None, help="device of the backend, e.g. cpu, cuda:0, gpu:0")
    g.add_argument("--dtype", default="float32", choices=("float32", "float64"), help="floating dtype (default float32)")
    g.add_argument("--data-dir", default=None, help="folder holding the dataset (torchvision layout, e.g. MNIST/raw/); "
                   "default $PCCORE_DATA_DIR, else $PCCORE_MNIST_ROOT, else ../shared/data")
    g.add_argument("--out", default=None, help="output folder (default results/NAME; with --quick out/reproduce/NAME)")
    g.add_argument("--quiet", action="store_true", help="no progress bars or log lines (the per-run lines stay)")
    g.add_argument("--threads", type=_count, default=1, help="CPU threads of the backend (default 1; 0 = the "
                   "framework's default)")
    p.set_defaults(func=cmd_reproduce)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``pccore`` command."""
    parser = argparse.ArgumentParser(prog="pccore", description="Predictive coding experiments on NumPy, PyTorch and JAX.")
    parser.add_argument("--version", action="version", version=f"pccore {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _compare_parser(sub)
    _energy_parser(sub)
    _train_parser(sub)
    _reproduce_parser(sub)
    p = sub.add_parser("plugins", help="list installed backends (with devices), trackers, plots and datasets")
    p.set_defaults(func=cmd_plugins)
    return parser


# ---------------------------------------------------------------- helpers
def _log(args) -> Any:
    """Messages to stderr (through tqdm when installed, so they do not break a progress bar)."""
    from .train.progress import write

    if args.quiet:
        return lambda message: None
    return write


def _runtime(args, plugins: Sequence[Any] = ()) -> Any:
    from .runtime import runtime

    return runtime(args.backend, device=args.device, dtype=args.dtype, plugins=plugins,
                   threads=args.threads or None, devices=getattr(args, "devices", None),
                   distributed=getattr(args, "distributed", False))


def _dataset(args, flatten: bool = True) -> Any:
    from .data import load_dataset

    if args.data_dir is not None and not args.download and not Path(args.data_dir).is_dir():
        raise InputError(f"--data-dir {args.data_dir!r} is not an existing folder")
    _log(args)(f"loading dataset {args.dataset!r}")
    options = {} if flatten else {"flatten": False}
    return load_dataset(args.dataset, root=args.data_dir, download=args.download, **options)


def _out(args) -> Path:
    from .checks import check_writable

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {args.out!r} exists and is not a folder")
    return check_writable("--out", out)  # created, and a read-only folder fails before any work


def _check_plots(names: Sequence[str] | None, allowed: Sequence[str]) -> list[str]:
    """Requested plot names (default ``allowed``), checked before any work is done."""
    names = list(allowed) if names is None else list(names)
    for name in names:
        registry.load(registry.PLOTS, name, "plot")  # unknown / uninstalled -> clear error
        if name not in allowed:
            raise InputError(f"plot {name!r} is not drawn by this command; choose from {', '.join(allowed)}")
    return names


def _save_figures(figures: dict, out: Path, log) -> list[str]:
    written = []
    for name, fig in figures.items():
        path = out / f"{name}.png"
        fig.savefig(path, dpi=110)
        written.append(str(path))
        log(f"wrote {path}")
    return written


# --------------------------------------------------------------- commands
def cmd_compare(args) -> int:
    from . import experiments

    plots = _check_plots(args.plots, experiments.COMPARE_PLOTS)
    out, log = _out(args), _log(args)
    rt, data = _runtime(args), _dataset(args)
    result = experiments.compare(
        data, rt, depth=args.depth, width=args.width, batch_size=args.batch_size,
        pretrain_steps=args.pretrain_steps, pretrain_lr=args.pretrain_lr, eo_iters=args.eo_iters,
        so_iters=args.so_iters, eo_lrs=args.eo_lrs, so_lrs=args.so_lrs, layers=args.layers,
        threshold=args.threshold, relative_threshold=args.relative_threshold, seed=args.seed,
        log=log, progress=not args.quiet)
    summary = dict(result.summary)
    summary["figures"] = _save_figures(result.figures(plots), out, log)
    host.write_json(out / "summary.json", summary)
    _print_compare(summary, out)
    return 0


def _print_compare(s: dict, out: Path) -> None:
    print(f"best lrs: EO {s['eo']['best_lr']:g}, SO {s['so']['best_lr']:g}")
    print(f"steps to median distance < {s['threshold']:g} (and < {s['relative_threshold']:g} relative):")
    for k in s["layers"]:
        k = str(k)
        eo, so = s["steps_to_threshold"]["eo"][k], s["steps_to_threshold"]["so"][k]
        speed = s["speedup"][k]
        rel = s["relative_speedup"][k]
        print(f"  layer {k:>3}: EO {eo}, SO {so}, speed-up "
              f"{'n/a' if speed is None else f'{speed:.0f}x'} (relative: {'n/a' if rel is None else f'{rel:.0f}x'})")
    print(f"results in {out}/ (summary.json, {', '.join(Path(f).name for f in s['figures'])})")


def cmd_energy(args) -> int:
    from . import experiments

    plots = _check_plots(args.plots, experiments.ENERGY_PLOTS)
    out, log = _out(args), _log(args)
    rt, data = _runtime(args), _dataset(args)
    log(f"PC training for {args.steps} iterations ({args.iters} EO steps of lr {args.inference_lr:g} each)")
    result = experiments.energy(
        data, rt, width=args.width, depth=args.depth, steps=args.steps, batch_size=args.batch_size,
        lr=args.lr, iters=args.iters, inference_lr=args.inference_lr, test_every=args.test_every,
        init=args.init, seed=args.seed, log=log, progress=not args.quiet)
    summary = dict(result.summary)
    summary["figures"] = _save_figures(result.figures(plots), out, log)
    host.write_json(out / "summary.json", summary)
    gap, acc = summary["max_relative_gap"], summary["final_test_accuracy"]
    print(f"largest relative gap |numerical - theory| / theory: {gap:.3g} (step {summary['max_relative_gap_step']})")
    if acc is not None:
        print(f"test accuracy after {summary['steps']} iterations: {100 * acc:.1f}%")
    print(f"results in {out}/ (summary.json, {', '.join(Path(f).name for f in summary['figures'])})")
    return 0


def _inference(args) -> Any:
    from .inference import ErrorOptimization, StateOptimization
    from .train import DEFAULT_INFERENCE

    if args.method in ("bp", "theory"):
        if args.iters is not None or args.inference_lr is not None:
            raise InputError(f"--iters and --inference-lr apply to --method eo or so, not {args.method}")
        return None
    default = DEFAULT_INFERENCE[args.method]
    cls = ErrorOptimization if args.method == "eo" else StateOptimization
    return cls(iters=args.iters or default["iters"], lr=args.inference_lr or default["lr"])


def _split_top_level(text: str) -> list[str]:
    """``text`` split at the commas outside brackets and quotes: "a=1,b=[2,3]" -> ["a=1", "b=[2,3]"]."""
    parts, depth, quote, start = [], 0, None, 0
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return [p for p in parts + [text[start:]] if p.strip()]


def _literal(text: str) -> Any:
    """A tracker argument value: a Python literal (10, 0.5, [0, -1], True, None; also true,
    false, none), else the text itself (a path or a name)."""
    import ast

    words = {"true": True, "false": False, "none": None}
    if text.strip().lower() in words:
        return words[text.strip().lower()]
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        return text.strip()


def tracker_spec(spec: str) -> tuple[str, dict]:
    """``--tracker`` text -> (name, keyword arguments): ``"csv"`` -> ("csv", {}),
    ``"history:every=5,layers=[0,-1]"`` -> ("history", {"every": 5, "layers": [0, -1]})."""
    name, _, rest = spec.partition(":")
    kwargs = {}
    for part in _split_top_level(rest):
        key, eq, value = part.partition("=")
        if not eq or not key.strip().isidentifier():
            raise InputError(f"--tracker {spec!r}: arguments must be KEY=VALUE pairs separated by commas, "
                             f"got {part!r}")
        kwargs[key.strip()] = _literal(value)
    return name.strip(), kwargs


def _tracker(spec: str, out: Path | None = None) -> Any:
    """Observer plugin from a ``--tracker`` spec (``NAME[:KEY=VALUE,...]``), loaded from the
    ``pccore.plugins`` entry points and built with those arguments (``out`` defaults to ``out``
    when the plugin takes one); wrong or missing arguments are named before any work."""
    import inspect

    name, kwargs = tracker_spec(spec)
    plugin = registry.load(registry.PLUGINS, name, "tracker")
    if not inspect.isclass(plugin):
        if kwargs:
            raise InputError(f"tracker {name!r} is a ready-made plugin object and takes no arguments")
        return plugin
    params = inspect.signature(plugin).parameters
    if "out" in params and "out" not in kwargs and out is not None:
        kwargs["out"] = str(out)
    takes = ", ".join(params) or "no arguments"
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = [k for k in kwargs if k not in params]
        if unknown:
            raise InputError(f"tracker {name!r} has no argument {', '.join(unknown)}; it takes {takes}")
    missing = [p.name for p in params.values() if p.default is p.empty and p.name not in kwargs
               and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if missing:
        raise InputError(
            f"tracker {name!r} needs the argument{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"(it takes {takes}): give literals as --tracker {name}:{missing[0]}=VALUE, or register it "
            "from Python when it needs arrays (docs/plugins.md)")
    try:
        return plugin(**kwargs)
    except InputError as err:
        raise InputError(f"tracker {name!r}: {err}") from None
    except TypeError as err:
        raise InputError(f"tracker {name!r} could not be built from {kwargs}: {err}") from None


def _model(args, rt, data) -> tuple[Any, dict]:
    """The network of ``pccore train`` and its description for summary.json."""
    from .nn.models import cnn, mlp

    activation = args.activation or ("tanh" if args.model == "mlp" else "relu")
    if args.model == "cnn":
        if len(data.input_shape) != 3:
            raise InputError(f"--model cnn needs image data (C, H, W); dataset {data.name!r} gives "
                             f"{data.input_shape}")
        if not args.channels or min(args.channels) < 1:
            raise InputError(f"--channels must be positive integers, got {args.channels}")
        net = cnn(rt, data.input_shape, data.num_classes, args.channels, activation,
                  init=args.init or "uniform", seed=args.seed)
        return net, {"model": "cnn", "channels": args.channels, "activation": activation}
    widths = [data.input_dim] + [args.width] * (args.depth - 1) + [data.num_classes]
    net = mlp(rt, widths, activation=activation, bias=args.bias, init=args.init or "xavier_uniform",
              seed=args.seed)
    return net, {"model": "mlp", "widths": widths, "activation": activation}


def cmd_train(args) -> int:
    from .io import save
    from .train import Trainer
    from .train.parallel import is_main

    # data parallel: torchrun's environment starts torch.distributed; every rank trains, rank 0
    # alone logs, shows progress, runs the trackers and writes --out
    args.distributed = args.distributed or (args.backend == "torch" and "WORLD_SIZE" in os.environ)
    rt = _runtime(args)
    main = is_main(rt)
    args.quiet = args.quiet or not main
    out, log = (_out(args) if main else Path(args.out)), _log(args)
    trackers = [_tracker(spec, out) for spec in args.tracker] if main else []
    for tracker in trackers:
        rt.register(tracker)
    data = _dataset(args, flatten=args.model == "mlp")
    net, described = _model(args, rt, data)
    trainer = Trainer(args.method, inference=_inference(args), optimizer=args.optimizer, lr=args.lr,
                      batch_size=args.batch_size, loss=args.loss, seed=args.seed, runtime=rt,
                      progress=not args.quiet)
    log(f"training {described} with {trainer!r}")
    before = trainer.evaluate(net, data)
    try:
        net, history = trainer.fit(net, data, epochs=args.epochs, max_steps=args.steps,
                                   eval_every=args.eval_every, checkpoint=args.checkpoint, resume=args.resume)
    finally:  # loggers (csv, tensorboard) write out their files
        for tracker in trackers:
            getattr(tracker, "close", lambda: None)()
    after = trainer.evaluate(net, data)
    if not main:
        return 0
    save(net, out / "model.npz")
    host.write_json(out / "history.json", history.as_dict())
    summary = {"experiment": "train", "dataset": data.name, "backend": rt.backend, "device": rt.device,
               "dtype": rt.dtype, "devices": 1 if rt.parallel is None else rt.parallel.shards,
               **described, "method": args.method,
               "steps": len(history.step), "initial": before, "final": after}
    host.write_json(out / "summary.json", summary)
    print(f"test accuracy {100 * before['accuracy']:.1f}% -> {100 * after['accuracy']:.1f}% "
          f"(test loss {before['loss']:.4g} -> {after['loss']:.4g}) after {len(history.step)} steps")
    print(f"results in {out}/ (model.npz, history.json, summary.json)")
    return 0


def cmd_reproduce(args) -> int:
    from . import reproduce as rep

    if args.list:
        for name in rep.names():
            spec = rep.get(name)
            methods = ", ".join(f"{m.name.upper()} ({m.describe()})" if m.name != "bp" else "BP" for m in spec.methods)
            print(f"{name:<14} {spec.title}; {', '.join(v.name for v in spec.variants)}; {methods}; "
                  f"{spec.seeds} seeds x {spec.epochs} epochs, batch {spec.batch_size}, {spec.optimizer} "
                  f"{spec.lr:g}, {spec.loss}")
        return 0
    if args.name is None:
        raise InputError("name a reproduction (pccore reproduce --list shows them)")
    spec = rep.get(args.name, quick=args.quick)
    methods = rep.select_methods(spec, args.methods)
    rt, log = _runtime(args), _log(args)
    if args.estimate:
        return _print_estimate(spec, rep.estimate(spec, rt, methods), args)
    out = args.out or (f"out/reproduce/{spec.name}" if args.quick else f"results/{spec.name}")
    summary = rep.reproduce(spec, rt, out, data_dir=args.data_dir, seeds=args.seeds, epochs=args.epochs,
                            methods=args.methods, log=log, say=print, progress=not args.quiet,
                            train=not args.table_only)
    for row in summary["rows"]:
        published = "" if row["published"] is None else f" (published {row['published']:.2f}, {row['difference']:+.2f})"
        print(f"{row['variant']} {row['method'].upper()}: {row['mean']:.2f} ± {row['std']:.2f}% over "
              f"{len(row['seeds'])} seed{'s' * (len(row['seeds']) > 1)}{published}")
    if summary["missing_runs"]:
        print(f"not finished ({len(summary['missing_runs'])}): {', '.join(summary['missing_runs'])}")
    print(f"results in {out}/ (table.md, summary.json, accuracy.png, runs/)")
    return 0


def _print_estimate(spec, rows: list, args) -> int:
    from .reproduce.table import duration

    seeds, epochs = args.seeds or spec.seeds, args.epochs or spec.epochs
    print(f"{spec.name} on {args.backend} ({args.device or 'default device'}), batch {spec.batch_size}, "
          f"{rows[0]['steps_per_epoch']} steps per epoch:")
    total = 0.0
    for r in rows:
        run = r["epoch_s"] * epochs
        total += run * seeds
        print(f"  {r['variant']} {r['method'].upper()}: {r['step_s']:.3g} s/step ({r['timed_steps']} timed), "
              f"{duration(r['epoch_s'])} per epoch, {duration(run)} per run of {epochs} epochs")
    print(f"expected total for {seeds} seed{'s' * (seeds > 1)}: {duration(total)} (training steps only)")
    return 0


def cmd_plugins(args) -> int:
    from .runtime import runtime

    print("backends:")
    for name in registry.backends():
        try:
            devices = ", ".join(runtime(name).devices())
        except MissingDependency as err:
            devices = f"not usable: {err}"
        print(f"  {name:<14} {devices}")
    for title, group in (("trackers", registry.PLUGINS), ("plots", registry.PLOTS), ("datasets", registry.DATASETS)):
        print(f"{title}:")
        for name in registry.names(group):
            print(f"  {name}")
    return 0


# ------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``pccore`` command with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse already printed usage and the message
        return int(exit_.code or 0)
    try:
        return args.func(args)
    except PCCoreError as err:
        print(f"pccore {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"pccore {args.command}: interrupted", file=sys.stderr)
        return 130
