"""TrainSession: the weights being trained and the weight optimizer's state, advanced one
training step at a time: one compiled backend function per step (``pccore_compile_step``),
or eagerly (inference run + local gradients + update) when inference observers need every
point or ``Trainer(compile=False)``. Both give the same weights."""

from __future__ import annotations

from typing import Any

from ..backprop import backprop_grads
from ..energy import local_weight_grads
from ..nn.network import Network, check_input
from ..runtime import Runtime
from .step import BPStep, PCStep, _update


class TrainSession:
    """Weights being trained (an owned copy of the network's parameters, flat) plus the
    weight optimizer's state; ``step(x, y)`` makes one update. Built by
    :meth:`pccore.Trainer.session`."""

    def __init__(self, trainer: Any, net: Network, rt: Runtime):
        self.trainer, self.runtime, self._template = trainer, rt, net
        # optimizers may update in place and JAX donates the carry: never touch the caller's arrays
        self.params = tuple(rt.asarray(rt.to_numpy(p)) for p in net.flat_params())
        self.optimizer = rt.optimizer(trainer.optimizer, lr=trainer.lr, **trainer.hyper)
        self.opt_state = self.optimizer.init(self.params)
        self.step_count = 0
        self._compiled = None
        self._checked: tuple | None = None

    @property
    def net(self) -> Network:
        """The network at the current weights."""
        return self._template.with_params(self._template.structure.unflatten(self.params))

    @property
    def eager(self) -> bool:
        """True when steps run eagerly: ``Trainer(compile=False)``, or a PC method with
        inference-step observers registered (they need every inference point)."""
        t = self.trainer
        return not t.compile or (t.method != "bp" and self.runtime.observes("pccore_inference_step"))

    def step_function(self) -> Any:
        """The hashable pure step ``fn(carry, batch) -> (carry, (loss, energy))``."""
        t, net = self.trainer, self._template
        if t.method == "bp":
            return BPStep(net.structure, net.kernels, t.loss, self.optimizer)
        inf = t.inference
        return PCStep(inf.step_for(self.runtime, net, t.loss), inf.until, inf.iters, self.optimizer)

    def step(self, x: Any, y: Any) -> tuple[Any, Any]:
        """One weight update on batch x (batch, *input_shape), y (batch, *output_shape).

        Returns (loss, energy) as 0-d arrays on the device, nothing is copied to the host
        (``float()`` them when needed): the batch-mean output loss of the feed-forward
        prediction before the update, and the inference energy / batch at the states found
        (None for bp)."""
        key = (type(x), type(y), tuple(x.shape), tuple(y.shape), x.dtype, y.dtype)
        if key != self._checked:  # the same kind of batch again: already validated
            check_input(self._template, x, y)
            self._checked = key
        if self.eager:
            loss, energy = self._eager_step(x, y)
        else:
            if self._compiled is None:
                fn = self.step_function()
                self._compiled = self.runtime.pm.hook.pccore_compile_step(fn=fn) or fn
            (params, self.opt_state), (loss, energy) = self._compiled((self.params, self.opt_state), (x, y))
            self.params = tuple(params)
        self.step_count += 1
        return loss, (None if self.trainer.method == "bp" else energy)

    def _eager_step(self, x: Any, y: Any) -> tuple[Any, Any]:
        t, rt, net = self.trainer, self.runtime, self.net
        xp, b = rt.xp, x.shape[0]
        loss = t.loss.value(xp, net.forward(x), y) / b
        if t.method == "bp":
            grads, energy = backprop_grads(net, x, y, t.loss), loss
        else:
            result = t.inference.run(net, x, y, loss=t.loss, runtime=rt)
            grads, energy = local_weight_grads(net, x, y, result.states, t.loss), result.energy / b
        params, self.opt_state = _update(self.optimizer, net.structure, self.params, grads, self.opt_state, b)
        self.params = tuple(params)
        return loss, energy
