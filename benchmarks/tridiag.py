"""Baseline for ``linear_equilibrium``: the state-form normal equations of a deep linear net,
solved as a block-tridiagonal system with the block Thomas algorithm (Array API, any backend).

For hidden states h_1..h_n (n = L-1, rows = samples) the gradient of the state energy is zero when
    h_k D_k - h_{k-1} W_k^T - h_{k+1} W_{k+1} = c_k,   D_k = I + W_{k+1}^T W_{k+1},
with h_0 = x and h_L = y moved to the right-hand side (biases too). This is the approach of
seed 000: one (d_k x d_k) solve per hidden layer, O(n d^3) work against the closed form's
O(n d^2 d_y).
"""

from __future__ import annotations

from typing import Any

from collections import namedtuple

import array_api_compat as compat

_Layer = namedtuple("_Layer", "W b")


def _layers(net: Any) -> list:
    """(W, b or None) of each Linear block of an MLP."""
    return [_Layer(p[0], p[1] if len(p) > 1 else None) for p in net.params]


def _rhs(xp: Any, net: Any, x: Any, y: Any) -> list:
    """c_k (batch, d_k) for k = 1..n: b_k - b_{k+1} W_{k+1}, plus x W_1^T and y W_L."""
    layers, n = _layers(net), net.depth - 1
    c = []
    for k in range(1, n + 1):
        term = xp.zeros((x.shape[0], layers[k - 1].W.shape[0]), dtype=x.dtype, device=compat.device(x))
        if layers[k - 1].b is not None:
            term = term + layers[k - 1].b
        if layers[k].b is not None:
            term = term - layers[k].b @ layers[k].W
        c.append(term)
    c[0] = c[0] + x @ layers[0].W.T
    c[-1] = c[-1] + y @ layers[-1].W
    return c


def block_tridiagonal_states(net: Any, x: Any, y: Any) -> list:
    """Equilibrium hidden states of a linear net with MSE output, each (batch, d_k).

    Column form (s_k is (d_k, batch)): D_k s_k - W_k s_{k-1} - W_{k+1}^T s_{k+1} = c_k.
    Forward elimination: M_k = D_k - W_k G_{k-1}, G_k = M_k^{-1} W_{k+1}^T,
    R_k = M_k^{-1} (c_k + W_k R_{k-1}); back substitution s_k = R_k + G_k s_{k+1}.
    """
    xp = compat.array_namespace(x)
    layers, n = _layers(net), net.depth - 1
    c = [ck.T for ck in _rhs(xp, net, x, y)]
    G, R = [], []
    for k in range(n):
        W_in, W_out = layers[k].W, layers[k + 1].W  # W_k (d_k, d_{k-1}), W_{k+1} (d_{k+1}, d_k)
        d = W_out.shape[1]
        M = xp.eye(d, dtype=x.dtype, device=compat.device(x)) + W_out.T @ W_out
        r = c[k]
        if k > 0:
            M = M - W_in @ G[-1]
            r = r + W_in @ R[-1]
        if k < n - 1:
            both = xp.linalg.solve(M, xp.concat([W_out.T, r], axis=1))
            G.append(both[:, : W_out.shape[0]])
            R.append(both[:, W_out.shape[0]:])
        else:
            R.append(xp.linalg.solve(M, r))
    s = R[-1]
    states = [s]
    for k in range(n - 2, -1, -1):
        s = R[k] + G[k] @ s
        states.append(s)
    return [h.T for h in reversed(states)]
