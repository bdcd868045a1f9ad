"""Closed-form inference equilibrium of deep linear networks (error form).

Each block is affine, f_k(s) = A_k s + b_k, with A_k = W_k (a Linear block) or
A_k = I + W_k (a linear Residual block with identity shortcut). With r = y - yhat_ff and
P_k the map from error e_k to the output (P_{L-2} = A_{L-1}, P_{k-1} = P_k A_k),
S = I/lambda + sum_k P_k P_k^T (d_y x d_y): e_k* = r S^{-1} P_k (row form),
F* = 1/2 r S^{-1} r^T per sample. One d_y x d_y solve per batch, whatever the depth.
"""

from __future__ import annotations

from typing import Any

import array_api_compat as compat
import attrs

from ..errors import InputError
from ..losses import MSE, get_loss
from ..nn.activation import Activation
from ..nn.compose import Residual
from ..nn.linear import Linear
from ..nn.network import Network, check_input
from ..runtime import runtime_for


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


def _linear_leaves(op: Any) -> list | None:
    """The Linear leaves of ``op`` if it is affine (Linear ops and identities), else None."""
    leaves = op.leaves()
    if any(isinstance(leaf, Activation) and not leaf.linear for leaf in leaves):
        return None
    if not all(isinstance(leaf, (Linear, Activation)) for leaf in leaves):
        return None
    linears = [leaf for leaf in leaves if isinstance(leaf, Linear)]
    return linears if len(linears) == 1 else None


def _block_kind(block: Any) -> str | None:
    """"dense" (A = W), "residual" (A = I + W) or None when the closed form does not apply."""
    if isinstance(block, Residual):
        if block.shortcut is None and block.activation.linear and _linear_leaves(block.body) is not None:
            return "residual"
        return None
    return "dense" if _linear_leaves(block) is not None else None


def _check_linear(net: Network, loss: Any) -> MSE:
    loss = get_loss(loss)
    if not isinstance(loss, MSE):
        raise InputError(f"the closed form needs the 'mse' loss, got {loss.name!r}")
    for k, block in enumerate(net.blocks):
        if _block_kind(block) is None:
            raise InputError(
                f"the closed form needs affine blocks (Linear with linear activations, or a linear "
                f"Residual of one Linear with identity shortcut); block {k} is {block!r}"
            )
    return loss


def affine_maps(net: Network) -> tuple[tuple, tuple]:
    """(A_k, b_k) of every block of a linear network: A_k (d_out, d_in) is W_k, or I + W_k
    for a residual block; b_k is the bias or None."""
    As, bs = [], []
    xp = net.xp
    for block, params in zip(net.blocks, net.params):
        W = params[0]
        b = params[1] if len(params) > 1 else None
        if isinstance(block, Residual):
            W = W + xp.eye(W.shape[0], dtype=W.dtype, device=compat.device(W))
        As.append(W)
        bs.append(b)
    return tuple(As), tuple(bs)


def _output_maps(Ws: tuple) -> list:
    """P_k = W_{L-1} ... W_{k+1} for each hidden layer k, shape (d_y, d_{k+1})."""
    if len(Ws) == 1:
        return []
    P = [Ws[-1]]
    for W in reversed(Ws[1:-1]):
        P.append(P[-1] @ W)
    return P[::-1]


def error_to_output_maps(net: Network) -> list:
    """P_k for each hidden error e_k, shape (d_y, d_{k+1}): the linear map e_k -> yhat."""
    return _output_maps(affine_maps(net)[0])


def _solve(Ws: tuple, bs: tuple, x: Any, y: Any, inv_precision: Any) -> tuple:
    """One feed-forward pass and the d_y x d_y solve: (feed-forward hidden states, r, S, P, Z)."""
    xp = compat.array_namespace(x)
    hidden, s = [], x
    for W, b in zip(Ws, bs):
        s = s @ W.T if b is None else s @ W.T + b
        hidden.append(s)
    r = y - hidden.pop()
    P = _output_maps(Ws)
    S = xp.eye(y.shape[1], dtype=y.dtype, device=compat.device(y)) * inv_precision
    for Pk in P:
        S = S + Pk @ Pk.T
    return hidden, r, S, P, xp.linalg.solve(S, r.T).T  # Z = r S^{-1}, S symmetric


def _closed_form(Ws: tuple, bs: tuple, x: Any, y: Any, inv_precision: Any) -> tuple:
    """(states, errors, per-sample energy, S, r) of the equilibrium.

    States come from the feed-forward pass plus Z Q_k, with Q_0 = P_0 and
    Q_k = Q_{k-1} W_k^T + P_k (d_y-sized), so only one batch-sized forward pass is needed.
    """
    hidden, r, S, P, Z = _solve(Ws, bs, x, y, inv_precision)
    errors = [Z @ Pk for Pk in P]
    states, Q = [], None
    for k, (h, Pk) in enumerate(zip(hidden, P)):
        Q = Pk if Q is None else Q @ Ws[k].T + Pk
        states.append(h + Z @ Q)
    xp = compat.array_namespace(x)
    return states, errors, 0.5 * xp.sum(r * Z, axis=1), S, r


def _mean_energy(Ws: tuple, bs: tuple, x: Any, y: Any, inv_precision: Any) -> Any:
    """Batch mean of F* without forming the states."""
    _, r, _, _, Z = _solve(Ws, bs, x, y, inv_precision)
    xp = compat.array_namespace(x)
    return 0.5 * xp.sum(r * Z) / r.shape[0]


def _compiled(kernel: Any, net: Network, x: Any, y: Any, mse: MSE) -> Any:
    """Run ``kernel`` through the backend's compile hook (jit on JAX, eager elsewhere)."""
    fn = runtime_for(x).pm.hook.pccore_compile(fn=kernel) or kernel
    Ws, bs = affine_maps(net)
    return fn(Ws, bs, x, y, 1.0 / mse.precision)


def linear_equilibrium(net: Network, x: Any, y: Any, loss: Any = "mse") -> Equilibrium:
    """Exact minimiser of the PC energy of a linear net for batch (x, y)."""
    mse = _check_linear(net, loss)
    check_input(net, x, y)
    states, errors, energy, S, r = _compiled(_closed_form, net, x, y, mse)
    return Equilibrium(list(states), list(errors), energy, S, r)


def linear_equilibrium_energy(net: Network, x: Any, y: Any, loss: Any = "mse") -> Any:
    """Batch mean of the equilibrium energy F* (what seed 003 plots), a 0-d array."""
    mse = _check_linear(net, loss)
    check_input(net, x, y)
    return _compiled(_mean_energy, net, x, y, mse)
