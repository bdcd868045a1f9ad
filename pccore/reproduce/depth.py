"""depth: MLPs of width 128 and depth 4, 10 and 20 on MNIST, SO / EO / BP, 3 seeds.

The claim under test (Goemaere et al. 2025, "Error Optimization: Overcoming Exponential
Signal Decay in Deep Predictive Coding Networks", arXiv:2505.20137): EO matches BP at every
depth while SO falls behind as the net deepens, because SO's signal reaches the early layers
only after about as many inference steps as there are layers, and decays on the way.

Settings of the paper's MNIST/Fashion-MNIST sweep (sweep.py of
github.com/cgoemaere/pc_error_optimization): batch 64, Adam weight lr 1e-4, at most 5
epochs, plain-SGD inference with its largest values (T = 64 EO steps and T = 256 SO steps of
lr 0.1; it sweeps lr 0.1 / 0.3 and T 64 / 256), tanh hidden layers and PyTorch's default
Linear init ("uniform"). It sweeps squared error and cross-entropy; we take cross-entropy:
with a squared-error output PC training of MNIST MLPs in pccore collapses after a few
epochs although the inference has converged (see mnist-mlp and docs/results.md). The paper
picks its settings per depth by validation accuracy with early stopping; we run 5 epochs.

Seen before the full run (docs/results.md): with this init the forward signal of the
20-layer net shrinks ~10^4-fold, and at init EO's converged weight gradient is BP's in the
first layers (cosine 1.0) but not in the last ones (cosine ~0, norms up to 10^3 x BP's): the
states there are mostly errors. With Adam 1e-3 EO had not started learning after 300 steps
(13% test accuracy; BP 68%).
"""

from __future__ import annotations

from .spec import Method, Spec, mlp_variant, smoke

DEPTHS = (4, 10, 20)
WIDTH = 128


def _variant(depth: int, width: int = WIDTH):
    """``depth`` weight layers: 784 -> width x (depth - 1) -> 10."""
    return mlp_variant(f"depth {depth}", [784] + [width] * (depth - 1) + [10], "tanh", "uniform")


SPEC = Spec(
    name="depth",
    title=f"MLPs of width {WIDTH} and depth {', '.join(map(str, DEPTHS))} on MNIST (tanh)",
    dataset="mnist",
    flatten=True,
    variants=tuple(_variant(d) for d in DEPTHS),
    methods=(
        Method("so", iters=256, lr=0.1),
        Method("eo", iters=64, lr=0.1),
        Method("bp"),
    ),
    seeds=3,
    epochs=5,
    batch_size=64,
    optimizer="adam",
    lr=1e-4,
    loss="ce",
    input_shape=(784,),
    classes=10,
    train_samples=60000,
    source="the ePC paper's claim (arXiv:2505.20137): EO ~ BP at every depth, SO degrades with depth",
    notes=("Depth counts weight layers: depth 20 is 784-128x19-10.",
           "EO's fixed lr 0.1 becomes unstable as training grows lambda_max of the error Hessian (depth 20: "
           "1.07 at init, 135 after one epoch, lr * lambda_max >> 2): `python -m benchmarks.depth_regime`, "
           "docs/results.md."),
)

QUICK = smoke(SPEC, tuple(_variant(d, 16) for d in (2, 4)))
