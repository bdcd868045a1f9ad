"""pccore: predictive coding written once on the Python Array API.

The core never imports a framework: backends (numpy, torch, jax), trackers, plots and
datasets are plugins found through entry points.
"""

from __future__ import annotations

from . import analytic
from .activations import ACTIVATIONS, Activation, get_activation
from .energy import (
    error_energy,
    error_energy_grad,
    errors_from_states,
    local_weight_grads,
    state_energy,
    state_energy_grad,
    states_from_errors,
)
from .errors import (
    DeviceNotFound,
    InferenceDiverged,
    InputError,
    MissingDependency,
    PCCoreError,
    UnknownNameError,
)
from .hookspecs import hookimpl
from .losses import MSE, CrossEntropy, get_loss
from .network import Dense, Network, mlp
from .registry import available_backends, backends
from .runtime import Runtime, runtime

__version__ = "0.1.0"

local_energy = state_energy  # E at fixed states, as a function of the weights


def forward(net: Network, x):
    """Feed-forward prediction of ``net`` for x (batch, d_0) -> (batch, d_L)."""
    return net.forward(x)


def feedforward_states(net: Network, x) -> list:
    """Hidden states s_1..s_{L-1} of the feed-forward pass."""
    return net.feedforward_states(x)


__all__ = [
    "ACTIVATIONS", "Activation", "CrossEntropy", "Dense", "DeviceNotFound",
    "InferenceDiverged", "InputError", "MSE", "MissingDependency", "Network",
    "PCCoreError", "Runtime", "UnknownNameError", "analytic", "available_backends",
    "backends", "error_energy", "error_energy_grad", "errors_from_states",
    "feedforward_states", "forward", "get_activation", "get_loss", "hookimpl",
    "local_energy", "local_weight_grads", "mlp", "runtime", "state_energy",
    "state_energy_grad", "states_from_errors",
]

from .events import EpochEnd, InferenceStart, InferenceStep, TrainStep  # noqa: E402
from .inference import ErrorOptimization, InferenceResult, StateOptimization  # noqa: E402
from .runtime import runtime_for  # noqa: E402

__all__ += [
    "EpochEnd", "ErrorOptimization", "InferenceResult", "InferenceStart", "InferenceStep",
    "StateOptimization", "TrainStep", "runtime_for",
]

from .data import Dataset, batches, datasets, load_dataset  # noqa: E402

__all__ += ["Dataset", "batches", "datasets", "load_dataset"]

from .training import Trainer, TrainHistory, TrainSession, backprop_grads  # noqa: E402
from .io import load, save  # noqa: E402

__all__ += ["Trainer", "TrainHistory", "TrainSession", "backprop_grads", "load", "save"]
