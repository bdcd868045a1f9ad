"""Gradient-descent inference: error optimisation (EO) and state optimisation (SO), with a
backend optimizer and a learning rate."""

from __future__ import annotations

from typing import Any

from ..checks import check_iters, check_optimizer, check_positive_float
from ..errors import InputError
from ..runtime import Runtime
from .driver import Inference, check_tol
from .step import Descent


class _GradientDescent(Inference):
    """Shared constructor of SO and EO."""

    def __init__(self, iters: int, lr: float, optimizer: str = "sgd", tol: float | None = None, **hyper: Any):
        self.iters = check_iters("iters", iters)
        self.lr = check_positive_float("lr", lr)
        if not isinstance(optimizer, str):
            raise InputError(f"optimizer must be a name (sgd, momentum, adam), got {optimizer!r}")
        hyper = {k: v for k, v in check_optimizer(optimizer, {**hyper, "lr": self.lr}).items() if k != "lr"}
        self.optimizer, self.tol, self.hyper = optimizer, check_tol(tol), hyper

    def rule_for(self, rt: Runtime) -> Descent:
        return Descent(rt.optimizer(self.optimizer, lr=self.lr, **self.hyper))

    @property
    def setting(self) -> str:
        return f"lr={self.lr:g}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(iters={self.iters}, lr={self.lr:g}, optimizer={self.optimizer!r}, tol={self.tol})"


class StateOptimization(_GradientDescent):
    """SO: gradient descent on the hidden states, starting from the feed-forward pass."""

    method = "SO"


class ErrorOptimization(_GradientDescent):
    """EO: gradient descent on the prediction errors, starting from zero errors
    (the feed-forward pass); converges far faster than SO in deep networks."""

    method = "EO"
