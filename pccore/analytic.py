"""Closed-form inference equilibrium of deep linear networks (error form).

With r = y - yhat_ff and P_k the map from error e_k to the output
(P_{L-2} = W_{L-1}, P_{k-1} = P_k W_k), S = I/lambda + sum_k P_k P_k^T (d_y x d_y):
e_k* = r S^{-1} P_k (row form), F* = 1/2 r S^{-1} r^T per sample. One d_y x d_y solve
per batch, whatever the depth and width.
"""

from __future__ import annotations

from typing import Any

import array_api_compat as compat
import attrs

from .energy import states_from_errors
from .errors import InputError
from .losses import MSE, get_loss
from .network import Network, check_input


@attrs.frozen
class Equilibrium:
    """Equilibrium of a deep linear net for one batch.

    states/errors: L-1 arrays (batch, d_k); energy: F* per sample (batch,);
    S: (d_y, d_y); residual: y - yhat_ff (batch, d_y).
    """

    states: list
    errors: list
    energy: Any
    S: Any
    residual: Any


def _check_linear(net: Network, loss: Any) -> MSE:
    loss = get_loss(loss)
    if not isinstance(loss, MSE):
        raise InputError(f"the closed form needs the 'mse' loss, got {loss.name!r}")
    for k, layer in enumerate(net.layers, start=1):
        if not layer.activation.linear:
            raise InputError(
                f"the closed form needs linear activations; layer {k} uses {layer.activation.name!r}"
            )
    return loss


def error_to_output_maps(net: Network) -> list:
    """P_k for each hidden error e_k, shape (d_y, d_{k+1}): the linear map e_k -> yhat."""
    if net.depth == 1:
        return []
    P = [net.layers[-1].W]
    for layer in reversed(net.layers[1:-1]):
        P.append(P[-1] @ layer.W)
    return P[::-1]


def linear_equilibrium(net: Network, x: Any, y: Any, loss: Any = "mse") -> Equilibrium:
    """Exact minimiser of the PC energy of a linear net for batch (x, y)."""
    mse = _check_linear(net, loss)
    xp = check_input(net, x, y)
    r = y - net.forward(x)
    P = error_to_output_maps(net)
    d_y = net.widths[-1]
    S = xp.eye(d_y, dtype=r.dtype, device=compat.device(r)) / mse.precision
    for Pk in P:
        S = S + Pk @ Pk.T
    Z = xp.linalg.solve(S, r.T).T  # r S^{-1}, S symmetric
    errors = [Z @ Pk for Pk in P]
    energy = 0.5 * xp.sum(r * Z, axis=1)
    return Equilibrium(states_from_errors(net, x, errors), errors, energy, S, r)


def linear_equilibrium_energy(net: Network, x: Any, y: Any, loss: Any = "mse") -> Any:
    """Batch mean of the equilibrium energy F* (what seed 003 plots), a 0-d array."""
    energy = linear_equilibrium(net, x, y, loss).energy
    return compat.array_namespace(energy).mean(energy)
