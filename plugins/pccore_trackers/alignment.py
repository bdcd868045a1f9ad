"""GradientAlignment: how well the PC weight gradients at the current states match a
reference (e.g. backprop) during inference (seed 000's second and third figures)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

import pccore
from pccore.errors import InputError
from pccore.nn.network import Network, check_input
from pccore.runtime import check_runtime

from ._base import Tracker, check_layers, dtype_name, resolve_layers


def cosine_similarity(a: Any, b: Any) -> float:
    """Cosine of the angle between two host arrays, flattened (float64); 0 when either is
    zero (as ``torch.nn.functional.cosine_similarity``)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise InputError(f"a and b must have the same number of elements, got {a.size} and {b.size}")
    denominator = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denominator) if denominator > 0 else 0.0


class GradientAlignment(Tracker):
    """Cosine similarity and norm of the layer-local weight gradients at the current states.

    At each recorded step: g = ``pccore.local_weight_grads(net, x, y, step.states, loss)``
    divided by the batch size; for each chosen entry k of ``net.flat_params()`` (W1, b1, W2,
    ...; ``layers`` indexes that tuple, None = all) records cos(g[k], reference[k]) and
    ||g[k]||. ``reference``: one array per entry of ``net.flat_params()`` (host or backend;
    per-block tuples as ``pccore.backprop_grads`` returns are flattened), e.g. the
    backprop gradients. The cosine is 0 where a gradient is zero (e.g. hidden layers at
    the feed-forward states). After a run: ``cosine`` and ``norms`` (layer -> (steps,)),
    ``iterations`` (steps,). Computed on the backend; copied to the host once per run.
    """

    def __init__(
        self,
        net: Network,
        x: Any,
        y: Any,
        reference: Sequence[Any],
        layers: Iterable[int] | None = None,
        every: int = 1,
        loss: Any = "mse",
    ):
        if not isinstance(net, Network):
            raise InputError(f"net must be a pccore.Network, got {type(net).__name__}")
        params = net.flat_params()
        if isinstance(reference, (list, tuple)) and reference and all(isinstance(r, tuple) for r in reference):
            reference = net.structure.flatten(reference)
        if not isinstance(reference, (list, tuple)) or len(reference) != len(params):
            raise InputError(
                f"reference must be a list with one gradient per entry of net.flat_params() ({len(params)}), "
                f"got {type(reference).__name__} of length {len(reference) if hasattr(reference, '__len__') else '?'}"
            )
        for k, (r, p) in enumerate(zip(reference, params)):
            if tuple(getattr(r, "shape", ())) != tuple(p.shape):
                raise InputError(
                    f"reference[{k}] must have shape {tuple(p.shape)} like net.flat_params()[{k}], "
                    f"got {tuple(getattr(r, 'shape', ()))}"
                )
        check_input(net, x, y)
        self.net, self.x, self.y, self.loss = net, x, y, pccore.get_loss(loss)
        self.reference = list(reference)
        self.layers = resolve_layers("layers", check_layers("layers", layers), len(params))
        super().__init__(every)

    def _reset(self) -> None:
        self._ref = None
        self._ref_norm = None

    def _setup(self, info) -> None:
        rt, xp = info.runtime, info.runtime.xp
        check_runtime(rt, "x", self.x)
        dtype = dtype_name(self.x)
        self._ref = [rt.asarray(self.reference[k], dtype=dtype) for k in self.layers]
        self._ref_norm = [xp.sqrt(xp.sum(r * r)) for r in self._ref]

    def _record(self, iteration, point) -> None:
        xp = self._runtime.xp
        grads = self.net.structure.flatten(
            pccore.local_weight_grads(self.net, self.x, self.y, point.states, self.loss))
        batch, tiny = self.x.shape[0], xp.finfo(self.x.dtype).tiny
        cos, norms = [], []
        for k, r, rn in zip(self.layers, self._ref, self._ref_norm):
            g = grads[k] / batch
            gn = xp.sqrt(xp.sum(g * g))
            cos.append(xp.sum(g * r) / xp.maximum(gn * rn, tiny))  # 0 for a zero gradient
            norms.append(gn)
        self._pending.append(xp.stack(cos + norms))  # (2 * layers,)

    # ---------------------------------------------------------------- results
    def _column(self, offset: int) -> dict[int, np.ndarray]:
        host = self._flush()
        if host is None:
            return {k: np.zeros(0) for k in self.layers}
        return {k: host[:, offset + i] for i, k in enumerate(self.layers)}

    @property
    def cosine(self) -> dict[int, np.ndarray]:
        """params index -> (steps,) cosine similarity to ``reference``."""
        return self._column(0)

    @property
    def norms(self) -> dict[int, np.ndarray]:
        """params index -> (steps,) Euclidean norm of the batch-mean gradient."""
        return self._column(len(self.layers))
