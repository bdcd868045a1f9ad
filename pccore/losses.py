"""Output losses C(yhat, y), summed over the batch, and their gradients dC/dyhat."""

from __future__ import annotations

import math
from typing import Any

import attrs

from .checks import is_real
from .errors import InputError, UnknownNameError


@attrs.frozen
class MSE:
    """``precision/2 * sum((yhat - y)**2)``; precision 1 gives the seeds' 1/2 sum of squares."""

    precision: float = 1.0
    name = "mse"

    def __attrs_post_init__(self):
        p = self.precision
        if not is_real(p) or not (math.isfinite(float(p)) and float(p) > 0):
            raise InputError(f"precision must be > 0 (a finite number), got {p!r}")
        object.__setattr__(self, "precision", float(p))

    def value(self, xp: Any, yhat: Any, y: Any) -> Any:
        d = yhat - y
        return 0.5 * self.precision * xp.sum(d * d)

    def grad(self, xp: Any, yhat: Any, y: Any) -> Any:
        return self.precision * (yhat - y)

    def per_sample(self, xp: Any, yhat: Any, y: Any) -> Any:
        """The loss of each sample, (batch,)."""
        d = xp.reshape(yhat - y, (yhat.shape[0], -1))
        return 0.5 * self.precision * xp.sum(d * d, axis=1)

    def hvp(self, xp: Any, yhat: Any, y: Any, v: Any) -> Any:
        """d^2C/dyhat^2 v: precision * v."""
        return self.precision * v


def _log_softmax(xp: Any, z: Any) -> Any:
    z = z - xp.max(z, axis=1, keepdims=True)
    return z - xp.log(xp.sum(xp.exp(z), axis=1, keepdims=True))


@attrs.frozen
class CrossEntropy:
    """Cross-entropy on logits, ``-sum(y * log_softmax(yhat))``; y is one-hot or a distribution."""

    name = "ce"

    def value(self, xp: Any, yhat: Any, y: Any) -> Any:
        return -xp.sum(y * _log_softmax(xp, yhat))

    def grad(self, xp: Any, yhat: Any, y: Any) -> Any:
        p = xp.exp(_log_softmax(xp, yhat))
        return p * xp.sum(y, axis=1, keepdims=True) - y

    def per_sample(self, xp: Any, yhat: Any, y: Any) -> Any:
        """The loss of each sample, (batch,)."""
        return -xp.sum(y * _log_softmax(xp, yhat), axis=1)

    def hvp(self, xp: Any, yhat: Any, y: Any, v: Any) -> Any:
        """d^2C/dyhat^2 v = sum(y) (diag(p) - p p^T) v per sample, p = softmax(yhat)."""
        p = xp.exp(_log_softmax(xp, yhat))
        pv = p * v
        return xp.sum(y, axis=1, keepdims=True) * (pv - p * xp.sum(pv, axis=1, keepdims=True))


LOSSES = {"mse": MSE, "ce": CrossEntropy}


def get_loss(loss: str | MSE | CrossEntropy) -> MSE | CrossEntropy:
    """Loss by name ("mse", "ce") or a loss object passed through."""
    if isinstance(loss, (MSE, CrossEntropy)):
        return loss
    if loss not in LOSSES:
        raise UnknownNameError(f"unknown loss {loss!r}; expected one of {', '.join(LOSSES)}")
    return LOSSES[loss]()
