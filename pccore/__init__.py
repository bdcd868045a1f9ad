"""pccore: predictive coding written once on the Python Array API.

The core never imports a framework: backends (numpy, torch, jax), trackers, plots and
datasets are plugins found through entry points.
"""

from __future__ import annotations

from . import nn
from .nn import ACTIVATIONS, Activation, get_activation
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
    TrainingDiverged,
    UnknownNameError,
)
from .hookspecs import hookimpl
from .losses import MSE, CrossEntropy, get_loss
from .nn import Network, Structure, mlp, network
from .nn.convert import from_equinox, from_torch, to_torch
from .registry import available_backends, backends
from .runtime import Runtime, runtime

from . import analytic  # noqa: E402  (after nn: analytic reads network structures)

__version__ = "0.1.0"

local_energy = state_energy  # E at fixed states, as a function of the weights


def forward(net: Network, x):
    """Feed-forward prediction of ``net`` for x (batch, *input_shape) -> (batch, *output_shape)."""
    return net.forward(x)


def feedforward_states(net: Network, x) -> list:
    """Hidden states s_0..s_{L-2} of the feed-forward pass."""
    return net.feedforward_states(x)


__all__ = [
    "ACTIVATIONS", "Activation", "CrossEntropy", "DeviceNotFound",
    "InferenceDiverged", "InputError", "MSE", "MissingDependency", "Network",
    "PCCoreError", "Runtime", "TrainingDiverged", "UnknownNameError", "analytic", "available_backends",
    "backends", "error_energy", "error_energy_grad", "errors_from_states",
    "feedforward_states", "forward", "from_equinox", "from_torch", "get_activation", "get_loss",
    "hookimpl",
    "local_energy", "local_weight_grads", "mlp", "network", "nn", "runtime", "state_energy",
    "state_energy_grad", "states_from_errors", "Structure", "to_torch",
]

from .events import EpochEnd, InferenceStart, InferenceStep, TrainStep  # noqa: E402
from .inference import (  # noqa: E402
    ErrorODE, ErrorOptimization, InferenceResult, NewtonCG, SpectralEO, StateODE, StateOptimization, Target,
)
from .runtime import runtime_for  # noqa: E402

__all__ += [
    "EpochEnd", "ErrorODE", "ErrorOptimization", "InferenceResult", "InferenceStart", "InferenceStep", "NewtonCG",
    "SpectralEO", "StateODE", "StateOptimization", "Target", "TrainStep", "runtime_for",
]

from .data import Dataset, batches, datasets, load_dataset  # noqa: E402

__all__ += ["Dataset", "batches", "datasets", "load_dataset"]

from .backprop import backprop_grads  # noqa: E402
from .train import Trainer, TrainHistory, TrainSession  # noqa: E402
from .io import load, save  # noqa: E402

__all__ += ["Trainer", "TrainHistory", "TrainSession", "backprop_grads", "load", "save"]
