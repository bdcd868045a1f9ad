"""What a reproduction is, as data: the models (variants), the methods with their inference
settings, the training settings, the dataset, the published numbers and a smoke size.

A :class:`Spec` says everything one ``pccore reproduce NAME`` trains; the runner trains each
(variant, method, seed) with :class:`pccore.Trainer` and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from ..errors import InputError
from ..inference import ErrorOptimization, StateOptimization

METHOD_NAMES = ("eo", "so", "bp")


@attrs.frozen
class Method:
    """One training method: ``name`` "eo", "so" or "bp"; for PC its inference (``iters`` steps
    of the ``optimizer`` with inference ``lr`` and ``hyper``, e.g. momentum); ``weight_lr``
    overrides the spec's weight lr for this method (None: the spec's)."""

    name: str
    iters: int | None = None
    lr: float | None = None
    optimizer: str = "sgd"
    hyper: dict = attrs.field(factory=dict)
    weight_lr: float | None = None

    def __attrs_post_init__(self):
        if self.name not in METHOD_NAMES:
            raise InputError(f"method must be one of {', '.join(METHOD_NAMES)}, got {self.name!r}")
        if self.name == "bp" and (self.iters is not None or self.lr is not None):
            raise InputError("method 'bp' takes no inference iters or lr")
        if self.name != "bp" and (self.iters is None or self.lr is None):
            raise InputError(f"method {self.name!r} needs inference iters and lr")

    def inference(self) -> Any:
        """The inference object the Trainer takes (None for bp)."""
        if self.name == "bp":
            return None
        cls = ErrorOptimization if self.name == "eo" else StateOptimization
        return cls(iters=self.iters, lr=self.lr, optimizer=self.optimizer, **self.hyper)

    def describe(self) -> str:
        """Inference settings in a table cell: "T = 20, sgd lr 0.2" ("-" for bp)."""
        if self.name == "bp":
            return "-"
        extra = "".join(f", {k} {v:g}" for k, v in sorted(self.hyper.items()))
        return f"T = {self.iters}, {self.optimizer} lr {self.lr:g}{extra}"

    def settings(self) -> dict:
        """JSON-ready settings (compared when a run resumes)."""
        return {"name": self.name, "iters": self.iters, "lr": self.lr, "optimizer": self.optimizer,
                "hyper": dict(sorted(self.hyper.items())), "weight_lr": self.weight_lr}


@attrs.frozen
class Variant:
    """One model of a spec: ``name`` (a row label, e.g. "depth 10"), ``build(rt, data, seed)``
    -> Network, and ``model`` (JSON-ready description: kind, widths, activation, init...)."""

    name: str
    build: Callable[[Any, Any, int], Any] = attrs.field(eq=False, repr=False)
    model: dict = attrs.field(factory=dict)

    @property
    def slug(self) -> str:
        """File-name form of the name: "depth 10" -> "depth-10"."""
        return "".join(c if c.isalnum() or c in "-_." else "-" for c in self.name)


@attrs.frozen
class Spec:
    """One reproduction.

    ``dataset`` (a ``pccore.datasets`` name) loaded with ``flatten``; ``variants`` x
    ``methods`` x ``seeds`` runs of ``epochs`` epochs each, batch ``batch_size``, weight
    ``optimizer`` with ``lr``, output ``loss``. ``reference``: published test accuracies in
    percent, keyed "method" or "variant/method", from ``source``. ``subset``: (train, test)
    sample counts to keep (the smoke size), None for all. ``input_shape``, ``classes`` and
    ``train_samples`` describe the full dataset (for ``--estimate`` without the files).
    """

    name: str
    title: str
    dataset: str
    flatten: bool
    variants: tuple
    methods: tuple
    seeds: int
    epochs: int
    batch_size: int
    optimizer: str
    lr: float
    loss: str
    input_shape: tuple
    classes: int
    train_samples: int
    reference: dict = attrs.field(factory=dict)
    source: str = ""
    notes: tuple = ()
    subset: tuple | None = None

    def method(self, name: str) -> Method:
        for m in self.methods:
            if m.name == name:
                return m
        raise InputError(f"reproduction {self.name!r} trains the methods "
                         f"{', '.join(m.name for m in self.methods)}; got {name!r}")

    def published(self, variant: Variant, method: str) -> float | None:
        """The published accuracy (percent) of ``method`` on ``variant``, if any."""
        return self.reference.get(f"{variant.name}/{method}", self.reference.get(method))

    def settings(self, variant: Variant, method: Method, epochs: int) -> dict:
        """What one run depends on (JSON-ready); a finished run is reused only when equal."""
        return {"spec": self.name, "dataset": self.dataset, "subset": list(self.subset) if self.subset else None,
                "variant": variant.name, "model": variant.model, "method": method.settings(),
                "epochs": epochs, "batch_size": self.batch_size, "optimizer": self.optimizer,
                "lr": method.weight_lr or self.lr, "loss": self.loss}


# ------------------------------------------------------------------ builders
def mlp_variant(name: str, widths: list, activation: str, init: str, bias: bool = True) -> Variant:
    """A dense MLP ``widths`` (input, hidden..., classes) with ``activation`` on the hidden
    layers and a linear output (the loss supplies softmax or squared error)."""
    from ..nn.models import mlp

    def build(rt: Any, data: Any, seed: int) -> Any:
        return mlp(rt, widths, activation=activation, bias=bias, init=init, seed=seed)

    return Variant(name, build, {"kind": "mlp", "widths": list(widths), "activation": activation,
                                 "output": "linear", "init": init, "bias": bias})


def smoke(spec: Spec, variants: tuple, iters: int = 3, train: int = 256, test: int = 128,
          batch_size: int = 32) -> Spec:
    """The ``--quick`` size of ``spec``: one seed, one epoch, ``train``/``test`` samples,
    ``variants`` (tiny models) and at most ``iters`` inference steps; runs in seconds."""
    methods = tuple(m if m.name == "bp" else attrs.evolve(m, iters=min(m.iters, iters)) for m in spec.methods)
    return attrs.evolve(spec, variants=variants, methods=methods, seeds=1, epochs=1, subset=(train, test),
                        batch_size=batch_size)
