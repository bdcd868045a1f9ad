"""TrainSession: the weights being trained and the weight optimizer's state, advanced one
training step at a time: one compiled backend function per step (``pccore_compile_step``),
or eagerly (inference run + local gradients + update) when inference observers need every
point or ``Trainer(compile=False)``. Both give the same weights."""

from __future__ import annotations

import math
from typing import Any

from ..analytic.theory import equilibrium_sums
from ..backprop import backprop_grads
from ..errors import InferenceDiverged
from ..energy import local_weight_grads
from ..checks import adopt
from ..nn.network import Network, check_input
from ..runtime import Runtime
from . import parallel
from .step import BPStep, PCStep, _update
from .theory import TheoryStep, check_theory


class TrainSession:
    """Weights being trained (an owned copy of the network's parameters, flat) plus the
    weight optimizer's state; ``step(x, y)`` makes one update. Built by
    :meth:`pccore.Trainer.session`."""

    def __init__(self, trainer: Any, net: Network, rt: Runtime):
        if trainer.method == "theory":
            check_theory(net, trainer.loss)
        self.trainer, self.runtime, self._template = trainer, rt, net
        # optimizers may update in place and JAX donates the carry: never touch the caller's arrays
        self.params = tuple(rt.asarray(rt.to_numpy(p)) for p in net.flat_params())
        if rt.parallel is not None:  # data parallel: weights on every device, batches split
            parallel.check_trainer(rt.parallel, trainer)
            self.params = tuple(self.place(self.params))
        self.optimizer = rt.optimizer(trainer.optimizer, lr=trainer.lr, **trainer.hyper)
        self.opt_state = self.place(self.optimizer.init(self.params))
        self.step_count = 0
        self._compiled = None
        self._checked: tuple | None = None

    def place(self, tree: Any) -> Any:
        """Parameters (a tuple) or optimizer state where the steps need them: replicated over
        a data-parallel runtime's devices (unchanged otherwise)."""
        layout = self.runtime.parallel
        return tree if layout is None else layout.replicate(tree)

    @property
    def net(self) -> Network:
        """The network at the current weights."""
        return self._template.with_params(self._template.structure.unflatten(self.params))

    @property
    def eager(self) -> bool:
        """True when steps run eagerly: ``Trainer(compile=False)``, or a PC method with
        inference-step observers registered (they need every inference point)."""
        t = self.trainer
        return not t.compile or (t.method not in ("bp", "theory") and self.runtime.observes("pccore_inference_step"))

    def step_function(self) -> Any:
        """The hashable pure step ``fn(carry, batch) -> (carry, (loss, energy))``."""
        t, net = self.trainer, self._template
        if t.method == "bp":
            return BPStep(net.structure, net.kernels, t.loss, self.optimizer, parallel.step_sum(self.runtime))
        if t.method == "theory":
            return TheoryStep(net.structure, net.kernels, t.loss, self.optimizer, parallel.step_sum(self.runtime))
        inf = t.inference
        return PCStep(inf.step_for(self.runtime, net, t.loss), inf.until, inf.iters, self.optimizer,
                      parallel.step_sum(self.runtime))

    def step(self, x: Any, y: Any) -> tuple[Any, Any]:
        """One weight update on batch x (batch, *input_shape), y (batch, *output_shape).

        Returns (loss, energy) as 0-d arrays on the device, nothing is copied to the host
        (``float()`` them when needed): the batch-mean output loss of the feed-forward
        prediction before the update, and the inference energy / batch at the states found
        (None for bp). On a data-parallel runtime x, y are the global batch: each device (or
        rank) takes its shard and the numbers returned are the global ones."""
        x, y = adopt(self.runtime, self.params[0] if self.params else None, x=x, y=y)  # e.g. NumPy batches
        key = tuple((type(a), tuple(getattr(a, "shape", ())), getattr(a, "dtype", None),
                     getattr(a, "requires_grad", False)) for a in (x, y))
        if key != self._checked:  # the same kind of batch again: already validated
            check_input(self._template, x, y, untracked=True)
            self._checked = key
        layout = self.runtime.parallel
        if layout is not None:
            x, y = layout.shard(x), layout.shard(y)
        if self.eager:
            loss, energy = self._eager_step(x, y)
        else:
            if self._compiled is None:
                fn = self.step_function()
                self._compiled = (layout.compile_step(fn) if layout is not None
                                  else self.runtime.pm.hook.pccore_compile_step(fn=fn) or fn)
            (params, self.opt_state), (loss, energy) = self._compiled((self.params, self.opt_state), (x, y))
            self.params = tuple(params)
        self.step_count += 1
        return loss, (None if self.trainer.method == "bp" else energy)

    def _eager_step(self, x: Any, y: Any) -> tuple[Any, Any]:
        t, rt, net = self.trainer, self.runtime, self.net
        loss = t.loss.value(rt.xp, net.forward(x), y)
        if t.method == "bp":
            grads, energy = backprop_grads(net, x, y, t.loss), loss
        elif t.method == "theory":
            grads, _, energy = equilibrium_sums(net, x, y, t.loss)
        else:
            try:
                result = t.inference.run(net, x, y, loss=t.loss, runtime=rt)
            except InferenceDiverged:  # say which update diverged, as the compiled step's checks do
                from .trainer import _check_finite

                _check_finite(t, self.step_count + 1, float(loss), math.nan)
                raise
            grads, energy = local_weight_grads(net, x, y, result.states, t.loss), result.energy
        grads, (loss, energy), b = parallel.across(parallel.step_sum(rt), net.structure, grads, (loss, energy),
                                                   x.shape[0])
        params, self.opt_state = _update(self.optimizer, net.structure, self.params, grads, self.opt_state, b)
        self.params = tuple(params)
        return loss / b, energy / b
