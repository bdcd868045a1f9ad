"""Why EO's accuracy falls after epoch 2-3 in ``pccore reproduce mnist-cnn``: the inference
regime at every epoch end, with the reproduction's fixed-lr EO and with SpectralEO.

``python -m benchmarks.cnn_regime [--methods eo,spectral] [--epochs 5] [--quick]`` trains the
mnist-cnn net (seed 0, the reproduction's settings: batch 64, Adam 1e-3, cross-entropy,
T = 10) and after each epoch reports the test accuracy and, with the ``regime`` tracker,
lambda_max of the error Hessian and the regime of the method's inference run on one test
batch. Writes ``results/cnn_regime.json`` / ``.md``.

Methods: ``eo`` the reproduction's ``ErrorOptimization(10, 0.1)``; ``spectral``
``SpectralEO(10, target=1, k=5, exact=False, track=False)`` (lr = 1 / lambda_max of the
Gauss-Newton Hessian from 5 Lanczos products at the start of every run: no rate to tune).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import pccore
from pccore.data import Dataset
from pccore.reproduce import mnist_cnn
from pccore.reproduce.runner import load_data

from .depth_regime import chosen, parser, regime
from .report import write_results
from .run import _load, _versions

METHODS = {
    "eo": lambda: pccore.ErrorOptimization(10, 0.1),
    "spectral": lambda: pccore.SpectralEO(10, target=1.0, k=5, exact=False, track=False),
}


def train(name: str, data: Any, backend: str, epochs: int, steps_per_epoch: int) -> dict:
    """``epochs`` epochs of the mnist-cnn net with inference ``name``, the regime after each."""
    spec, rt = mnist_cnn.SPEC, pccore.runtime(backend)
    trainer = pccore.Trainer("eo", inference=METHODS[name](), optimizer=spec.optimizer, lr=spec.lr,
                             batch_size=spec.batch_size, loss=spec.loss, runtime=rt, progress=False)
    net0 = spec.variants[0].build(rt, data, 0)
    x, y = data.x_test[:64], data.y_test[:64]
    rows = [{"epoch": 0, "accuracy": trainer.evaluate(net0, data)["accuracy"], "train_s": 0.0,
             "regime": regime(net0, x, y, backend, METHODS[name]())}]
    with tempfile.TemporaryDirectory() as folder:  # resuming from it gives the uninterrupted run's weights
        ckpt = Path(folder) / "run.npz"
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            net, _ = trainer.fit(net0, data, epochs=epochs, max_steps=epoch * steps_per_epoch, checkpoint=ckpt,
                                 resume=True)
            seconds = time.perf_counter() - start
            rows.append({"epoch": epoch, "accuracy": trainer.evaluate(net, data)["accuracy"], "train_s": seconds,
                         "regime": regime(net, x, y, backend, METHODS[name]())})
            r = rows[-1]["regime"]
            print(f"{name} epoch {epoch}: test accuracy {rows[-1]['accuracy']:.4f}, lambda_max "
                  f"{r['lambda_max']:.3g}, lr*lambda {_f(r['lr_lambda'])}, {r['label']} ({seconds:.0f} s)", flush=True)
    return {"method": name, "inference": repr(METHODS[name]()), "epochs": rows}


def _f(v: Any) -> str:
    return "-" if v is None else f"{v:.3g}"


def markdown(res: dict) -> str:
    lines = [f"# MNIST CNN: inference regime along training — {res['when']}, {res['backend']}, load {res['load']}",
             "", "Reproduce: `python -m benchmarks.cnn_regime" + (" --quick" if res["quick"] else "") + "`. "
             f"Training: {res['training']}. Regime of the method's own inference run on 64 test samples.", "",
             "| inference | epoch | test accuracy | lambda_max | lr * lambda_max | fraction of the way | regime "
             "| train s |", "|---|---|---|---|---|---|---|---|"]
    for run in res["runs"]:
        for row in run["epochs"]:
            r = row["regime"]
            lines.append(f"| `{run['inference']}` | {row['epoch']} | {100 * row['accuracy']:.2f}% | "
                         f"{r['lambda_max']:.3g} | {_f(r['lr_lambda'])} | {r['fraction']:.2f} | {r['label']} | "
                         f"{row['train_s']:.0f} |")
    lines += ["", f"Versions: {res['versions']}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = parser("python -m benchmarks.cnn_regime", __doc__, METHODS, "640 training and 256 test samples")
    p.add_argument("--epochs", type=int, default=5)
    args = p.parse_args(argv)
    names = chosen(p, args.methods, METHODS)
    if args.epochs < 1:
        p.error(f"--epochs must be a positive integer, got {args.epochs}")
    data = load_data(mnist_cnn.SPEC, args.data_dir)
    if args.quick:
        data = Dataset(data.name, data.x_train[:640], data.y_train[:640], data.x_test[:256], data.y_test[:256])
    steps = len(data.x_train) // mnist_cnn.SPEC.batch_size
    res = {"when": time.strftime("%Y-%m-%d %H:%M"), "backend": args.backend, "quick": args.quick, "load": _load(),
           "training": f"{args.epochs} epochs of {steps} steps, seed 0, batch 64, Adam 1e-3, cross-entropy",
           "versions": _versions(["numpy", args.backend]), "runs": []}
    name = "cnn_regime_quick" if args.quick else "cnn_regime"
    for n in names:  # the files are rewritten after each method: a stopped run keeps the finished ones
        res["runs"].append(train(n, data, args.backend, args.epochs, steps))
        written = write_results(args.out, name, res, markdown(res))
    print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
