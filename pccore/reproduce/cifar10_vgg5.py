"""cifar10-vgg5: VGG-5 on CIFAR-10, EO / SO / BP, 5 seeds x 25 epochs (a GPU workload).

The model and settings of the ePC paper's CIFAR code (arXiv:2505.20137; the ``cifar``
branch of github.com/cgoemaere/pc_error_optimization, configs_results/*_CIFAR10_VGG5_ce):
four blocks Conv2d(c, 3, padding=1) + GELU + MaxPool2d(2) with c = 128, 256, 512, 512
(32x32 -> 2x2), then Flatten + Linear(10); PyTorch's default init; cross-entropy; batch 256.

* EO: T = 5 SGD steps of inference lr 0.001, Adam weight lr 7.79e-4;
* SO: T = 8 steps of lr 0.0147 with momentum 0.05, Adam weight lr 2.64e-4;
* BP: Adam weight lr 1.66e-3.

Differences: the paper adds weight decay (Adam's L2: 1.7e-4 / 1.2e-5 / 4.6e-4) and a 10%
linear warm-up then cosine decay of the weight lr, which pccore's optimizers do not have
(constant lr here); its EO also divides the weight loss by min(1, lr T) = 0.005, a constant
factor Adam ignores. Published (test accuracy, mean of 5 seeds): see the paper's Table 1.
"""

from __future__ import annotations

from typing import Any

from .spec import Method, Spec, Variant, smoke

CHANNELS = (128, 256, 512, 512)


def vgg5(rt: Any, input_shape: tuple, classes: int, channels: tuple = CHANNELS, activation: str = "gelu",
         init: str = "uniform", seed: int = 0) -> Any:
    """VGG-5 from pccore blocks: per entry of ``channels`` one PC block Conv2d(c, 3,
    padding=1) + ``activation`` + MaxPool2d(2) (its state after the pool), then one block
    Flatten + Linear(classes). (3, 32, 32) -> (128, 16, 16) -> ... -> (512, 2, 2) -> (10,)."""
    from ..nn import Conv2d, Flatten, Linear, MaxPool2d, Sequential
    from ..nn.network import network

    blocks = [Sequential(Conv2d(c, 3, padding=1), activation, MaxPool2d(2)) for c in channels]
    blocks.append(Sequential(Flatten(), Linear(classes)))
    return network(rt, blocks, tuple(input_shape), seed=seed, init=init)


def _variant(channels: tuple = CHANNELS) -> Variant:
    def build(rt: Any, data: Any, seed: int) -> Any:
        return vgg5(rt, data.input_shape, data.num_classes, channels, seed=seed)

    name = "vgg5" if channels == CHANNELS else "vgg5 " + "-".join(map(str, channels))
    return Variant(name, build, {"kind": "vgg5", "channels": list(channels), "activation": "gelu",
                                 "block": "Conv2d(c, 3, padding=1) + gelu + MaxPool2d(2)",
                                 "head": "Flatten + Linear", "init": "uniform"})


SPEC = Spec(
    name="cifar10-vgg5",
    title="VGG-5 (conv 128-256-512-512, GELU) on CIFAR-10",
    dataset="cifar10",
    flatten=False,
    variants=(_variant(),),
    methods=(
        Method("so", iters=8, lr=0.0147081108913887, optimizer="momentum", hyper={"momentum": 0.05},
               weight_lr=0.0002641020393177),
        Method("eo", iters=5, lr=0.001, weight_lr=0.0007787152360309),
        Method("bp", weight_lr=0.001663728851888),
    ),
    seeds=5,
    epochs=25,
    batch_size=256,
    optimizer="adam",
    lr=1e-3,
    loss="ce",
    input_shape=(3, 32, 32),
    classes=10,
    train_samples=50000,
    source="ePC paper (arXiv:2505.20137), CIFAR-10 VGG-5 configs of its code",
    notes=("Needs a GPU for the full run: `--estimate` gives the time per epoch on a machine. On the "
           "project's 2-core CPU (torch, one thread, 2026-11-26) an epoch takes ~1.9 h (SO), 85 min (EO) "
           "and 21 min (BP): ~450 h for the whole run.",
           "No weight decay and no lr schedule (pccore's optimizers have neither): expect a few "
           "points below the paper."),
)

QUICK = smoke(SPEC, (_variant((4, 4, 8, 8)),))
