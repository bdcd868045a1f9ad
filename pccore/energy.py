"""PC energies over states (SO) and errors (EO), their closed-form gradients, and the
layer-local weight gradients. Array API only; sums run over the batch too.

Conventions (0-based): layers k = 0..L-1, pre-activations a_k, hidden states h_k
(k < L-1, each (batch, d_{k+1})), errors e_k = h_k - f_k(h_{k-1}), h_{-1} = x.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .checks import check_dtype, check_float, check_shape
from .errors import InputError
from .losses import get_loss
from .network import Network, check_input


# --------------------------------------------------------------------- kernels
def _vjp(xp, layer, a, delta):
    """J^T delta for layer ``f(s) = phi(W s + b)`` at pre-activation a: (batch, d_in)."""
    if not layer.activation.linear:
        delta = layer.activation.deriv(xp, a) * delta
    return delta @ layer.W


def _half_sq(xp, v):
    return 0.5 * xp.sum(v * v)


def error_sweep(xp, layers, loss, a0, y, errors, states=None, backward=True):
    """Forward pass with errors added, then the backward sweep.

    Returns (grads, yhat, pres) with grads[k] = dE/de_k = e_k + J^T ... dC/dyhat.
    ``a0`` is the first layer's pre-activation (constant while x is clamped). When
    ``states`` is a list, the hidden states s_k = f_k(s_{k-1}) + e_k are appended to it;
    ``backward=False`` stops after the forward pass (grads is then empty).
    """
    pres, a = [a0], a0
    for k, e in enumerate(errors):
        s = layers[k].activation(xp, a) + e
        if states is not None:
            states.append(s)
        a = layers[k + 1].pre(s)
        pres.append(a)
    yhat = layers[-1].activation(xp, a)
    if not backward:
        return [], yhat, pres
    g, grads = loss.grad(xp, yhat, y), [None] * len(errors)
    for k in range(len(errors) - 1, -1, -1):
        g = _vjp(xp, layers[k + 1], pres[k + 1], g)
        grads[k] = errors[k] + g
    return grads, yhat, pres


def state_sweep(xp, layers, loss, a0, y, states, backward=True):
    """Prediction errors and dE/ds_k for hidden states; returns (grads, eps, pres, yhat).

    ``eps`` has L entries: eps_k = h_k - f_k(h_{k-1}) and eps_{L-1} = -dC/dyhat.
    ``backward=False`` returns after the hidden errors (grads empty, eps of length L-1).
    """
    pres = [a0] + [layers[k + 1].pre(h) for k, h in enumerate(states)]
    eps = [h - layers[k].activation(xp, pres[k]) for k, h in enumerate(states)]
    yhat = layers[-1].activation(xp, pres[-1])
    if not backward:
        return [], eps, pres, yhat
    eps.append(-loss.grad(xp, yhat, y))
    grads = [eps[k] - _vjp(xp, layers[k + 1], pres[k + 1], eps[k + 1]) for k in range(len(states))]
    return grads, eps, pres, yhat


def energy_from(xp, loss, errors, yhat, y):
    """Total energy ``sum_k 1/2 ||e_k||^2 + C(yhat, y)`` as a 0-d array."""
    total = loss.value(xp, yhat, y)
    for e in errors:
        total = total + _half_sq(xp, e)
    return total


# ------------------------------------------------------------------ validation
def check_hidden(net: Network, x: Any, y: Any, values: Sequence[Any], arg: str) -> Any:
    """Validate a list of L-1 hidden arrays (states or errors); returns the namespace."""
    if not isinstance(values, (list, tuple)):
        raise InputError(f"{arg} must be a list of {net.depth - 1} arrays, got {type(values).__name__}")
    if len(values) != net.depth - 1:
        raise InputError(
            f"{arg} must hold one array per hidden layer ({net.depth - 1}), got {len(values)}"
        )
    xp = check_input(net, x, y, **{f"{arg}[{k}]": v for k, v in enumerate(values)})
    for k, v in enumerate(values):
        check_float(xp, f"{arg}[{k}]", v)
        check_shape(f"{arg}[{k}]", v, (x.shape[0], net.widths[k + 1]))
        check_dtype(f"{arg}[{k}]", v, x.dtype)
    return xp


# ------------------------------------------------------------------ public API
def state_energy(net: Network, x: Any, y: Any, states: Sequence[Any], loss="mse") -> Any:
    """E(s) = sum_k 1/2 ||s_k - f_k(s_{k-1})||^2 + C(f_L(s_{L-1}), y), a 0-d array."""
    xp = check_hidden(net, x, y, states, "states")
    loss = get_loss(loss)
    _, eps, _, yhat = state_sweep(xp, net.layers, loss, net.layers[0].pre(x), y, list(states))
    return energy_from(xp, loss, eps[:-1], yhat, y)


def state_energy_grad(net: Network, x: Any, y: Any, states: Sequence[Any], loss="mse") -> list:
    """dE/ds_k for each hidden state, each (batch, d_k): eps_k - J_{k+1}^T eps_{k+1}."""
    xp = check_hidden(net, x, y, states, "states")
    grads, *_ = state_sweep(xp, net.layers, get_loss(loss), net.layers[0].pre(x), y, list(states))
    return grads


def error_energy(net: Network, x: Any, y: Any, errors: Sequence[Any], loss="mse") -> Any:
    """E(e) = sum_k 1/2 ||e_k||^2 + C(f_L(s_{L-1}(e)), y), a 0-d array."""
    xp = check_hidden(net, x, y, errors, "errors")
    loss = get_loss(loss)
    _, yhat, _ = error_sweep(xp, net.layers, loss, net.layers[0].pre(x), y, list(errors))
    return energy_from(xp, loss, errors, yhat, y)


def error_energy_grad(net: Network, x: Any, y: Any, errors: Sequence[Any], loss="mse") -> list:
    """dE/de_k = e_k + g_k with g backpropagated from dC/dyhat; each (batch, d_k)."""
    xp = check_hidden(net, x, y, errors, "errors")
    grads, _, _ = error_sweep(xp, net.layers, get_loss(loss), net.layers[0].pre(x), y, list(errors))
    return grads


def local_weight_grads(net: Network, x: Any, y: Any, states: Sequence[Any], loss="mse") -> tuple:
    """dE/dW_k (and dE/db_k) at fixed states, in the order of ``net.params()``.

    Layer-local: dE/dW_k = -(phi'(a_k) * eps_k)^T h_{k-1}, with eps_{L-1} = -dC/dyhat.
    Summed over the batch (divide by the batch size for a weight step).
    """
    xp = check_hidden(net, x, y, states, "states")
    _, eps, pres, _ = state_sweep(xp, net.layers, get_loss(loss), net.layers[0].pre(x), y, list(states))
    inputs = [x] + list(states)
    out = []
    for layer, a, e, h in zip(net.layers, pres, eps, inputs):
        d = e if layer.activation.linear else layer.activation.deriv(xp, a) * e
        out.append(-(d.T @ h))
        if layer.b is not None:
            out.append(-xp.sum(d, axis=0))
    return tuple(out)


def states_from_errors(net: Network, x: Any, errors: Sequence[Any]) -> list:
    """Hidden states s_k = f_k(s_{k-1}) + e_k for errors e (the EO parametrisation)."""
    xp = check_hidden(net, x, None, errors, "errors")
    states, s = [], x
    for layer, e in zip(net.layers, errors):
        s = layer(xp, s) + e
        states.append(s)
    return states


def errors_from_states(net: Network, x: Any, states: Sequence[Any]) -> list:
    """Errors e_k = s_k - f_k(s_{k-1}) for hidden states s (inverse of states_from_errors)."""
    xp = check_hidden(net, x, None, states, "states")
    inputs = [x] + list(states[:-1])
    return [s - layer(xp, h) for layer, h, s in zip(net.layers, inputs, states)]
