"""mnist-mlp: the 784-256-64-10 sigmoid MLP on MNIST, SO / EO / BP, 5 seeds x 20 epochs.

A published third-party run of this setup reports test accuracies of SO 98.18%, EO 98.15%
and BP 98.16%; the target is each method's mean over seeds within 0.3 points of those.

That run's training settings are not all stated, so these are ours, chosen with single-seed
20-epoch probes (docs/results.md): batch 64, Adam 3e-4, cross-entropy on the linear output,
PyTorch's default Linear init ("uniform", zero biases) and plain-SGD inference of T = 20
steps of lr 0.2 for both PC methods (the same budget). There SO, EO and BP ended at 97.96,
98.07 and 98.05%. With Adam 1e-3 BP still reaches ~98.0% but SO falls back to ~97.0-97.5%
after epoch 7 (also with T = 50) and EO wobbles; with a squared-error output both PC
methods collapse after ~7 epochs although their inference has converged (BP: 98.1%).
"""

from __future__ import annotations

from .spec import Method, Spec, mlp_variant, smoke

WIDTHS = [784, 256, 64, 10]

SPEC = Spec(
    name="mnist-mlp",
    title="784-256-64-10 sigmoid MLP on MNIST",
    dataset="mnist",
    flatten=True,
    variants=(mlp_variant("784-256-64-10", WIDTHS, "sigmoid", "uniform"),),
    methods=(
        Method("so", iters=20, lr=0.2),
        Method("eo", iters=20, lr=0.2),
        Method("bp"),
    ),
    seeds=5,
    epochs=20,
    batch_size=64,
    optimizer="adam",
    lr=3e-4,
    loss="ce",
    input_shape=(784,),
    classes=10,
    train_samples=60000,
    reference={"so": 98.18, "eo": 98.15, "bp": 98.16},
    source="published third-party run of this setup (SO 98.18, EO 98.15, BP 98.16; target: within 0.3 points)",
)

QUICK = smoke(SPEC, (mlp_variant("784-16-8-10", [784, 16, 8, 10], "sigmoid", "uniform"),))
