"""Linear theory: the gradient of the equilibrium energy F*(W) of a deep linear net, and
the Hessian of its state energy (SO) over the hidden states.

Blocks are affine, f_k(s) = A_k s + b_k with A_k = W_k or I + W_k (linear Residual).
In row form, with r = y - yhat_ff, S = I/lambda + sum_k P_k P_k^T and Z = r S^{-1}
(``linear``), the equilibrium errors are e_k* = Z P_k and the output error
eps_out = -dC/dyhat = lambda (y - yhat*) = Z. F*(W) = min_s E(s, W) and the minimiser is
unique (the state Hessian is >= I), so by the envelope theorem dF*/dtheta equals the
block-local gradient dE/dtheta at s*: dF*/dW_k = -e_k*^T u_k, dF*/db_k = -sum e_k*, with
u_k the equilibrium input of block k (x for the first). For a Residual block dA/dW = I,
so the same formula holds. With s* from the closed form (not from iterations) this is
the exact gradient of F*, not an approximation.
"""

from __future__ import annotations

from typing import Any

import array_api_compat as compat

from ..nn.network import Network, check_input
from ..runtime import runtime_for
from .linear import _check_linear, _solve, affine_maps


def fstar_sweep(Ws: tuple, bs: tuple, x: Any, y: Any, precision: Any) -> tuple:
    """Batch sums at the closed-form equilibrium of affine blocks (A_k, b_k):
    (per-block gradient tuples of F* ((dW,) or (dW, db)), feed-forward loss, F*).

    x (batch, d_in), y (batch, d_y). One forward pass and one d_y x d_y solve. The
    equilibrium inputs of the blocks are the feed-forward states plus Z Q_k, with
    Q_0 = P_0 and Q_k = Q_{k-1} A_k^T + P_k (as in ``linear._closed_form``)."""
    xp = compat.array_namespace(x)
    hidden, r, _, P, Z = _solve(Ws, bs, x, y, 1.0 / precision)
    inputs, Q = [x], None
    for k, (h, Pk) in enumerate(zip(hidden, P)):
        Q = Pk if Q is None else Q @ Ws[k].T + Pk
        inputs.append(h + Z @ Q)
    errors = [Z @ Pk for Pk in P] + [Z]
    grads = tuple(
        (-(e.T @ u),) if b is None else (-(e.T @ u), -xp.sum(e, axis=0))
        for e, u, b in zip(errors, inputs, bs))
    return grads, 0.5 * precision * xp.sum(r * r), 0.5 * xp.sum(r * Z)


def _mean_grads(Ws: tuple, bs: tuple, x: Any, y: Any, precision: Any) -> tuple:
    n = x.shape[0]
    return tuple(tuple(g / n for g in block) for block in fstar_sweep(Ws, bs, x, y, precision)[0])


def _compile(kernel: Any, array: Any) -> Any:
    """``kernel`` through the backend's compile hook (jit on JAX, eager elsewhere)."""
    return runtime_for(array).pm.hook.pccore_compile(fn=kernel) or kernel


def equilibrium_energy_grads(net: Network, x: Any, y: Any, loss: Any = "mse") -> list:
    """dF*/dtheta for every parameter of a linear net, F* = batch mean of the equilibrium
    energy (``linear_equilibrium_energy``): a list of per-block tuples aligned with
    ``net.params`` (``net.with_params`` takes it). Exact: the local weight gradients at the
    closed-form equilibrium, divided by the batch size (envelope theorem)."""
    mse = _check_linear(net, loss)
    check_input(net, x, y)
    Ws, bs = affine_maps(net)
    return [tuple(block) for block in _compile(_mean_grads, x)(Ws, bs, x, y, mse.precision)]


def equilibrium_sums(net: Network, x: Any, y: Any, loss: Any = "mse") -> tuple:
    """Batch sums for a training step on F*: (per-block gradient tuples, feed-forward
    output loss, F*), the last two 0-d. x and y are not validated (the training session does)."""
    Ws, bs = affine_maps(net)
    return _compile(fstar_sweep, x)(Ws, bs, x, y, _check_linear(net, loss).precision)


def _hessian(As: tuple, precision: Any) -> Any:
    """The (D, D) block tri-diagonal state Hessian from the affine maps A_k."""
    A0 = As[0]
    xp, dev, dt = compat.array_namespace(A0), compat.device(A0), A0.dtype
    dims = [A.shape[0] for A in As[:-1]]
    if not dims:
        return xp.zeros((0, 0), dtype=dt, device=dev)
    n = len(dims)
    rows = []
    for l in range(n):
        A = As[l + 1]  # maps s_l to the prediction of the next state (or the output)
        scale = precision if l == n - 1 else 1.0
        row = []
        for m in range(n):
            if m == l:
                row.append(xp.eye(dims[l], dtype=dt, device=dev) + scale * (A.T @ A))
            elif m == l - 1:
                row.append(-As[l])
            elif m == l + 1:
                row.append(-A.T)
            else:
                row.append(xp.zeros((dims[l], dims[m]), dtype=dt, device=dev))
        rows.append(xp.concat(row, axis=1))
    return xp.concat(rows, axis=0)


def state_hessian(net: Network, x: Any = None, loss: Any = "mse") -> Any:
    """Hessian of the state energy E(s) of a linear net w.r.t. the hidden states of one
    sample, flattened in layer order: (D, D), D = sum of the hidden widths.

    Block tri-diagonal: diagonal I + A_{l+1}^T A_{l+1} (times the MSE precision lambda for
    the last hidden layer), off-diagonal -A_{l+1} below and -A_{l+1}^T above. Constant in
    the states and the data (E is quadratic), so ``x`` is only validated when given. Its
    eigenvalues (real and > 0: H = B^T B with B = d(e_0, .., e_{L-2}, sqrt(lambda) yhat)/ds,
    whose error rows are unit block-triangular) come from ``net.xp.linalg.eigvalsh(H)``;
    their spread is what limits plain gradient descent on the states (SO).
    """
    mse = _check_linear(net, loss)
    if x is not None:
        check_input(net, x)
    As, _ = affine_maps(net)
    return _compile(_hessian, As[0])(As, mse.precision)
