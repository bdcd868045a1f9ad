"""PC energies over states (SO) and errors (EO), their closed-form gradients, and the
block-local weight gradients. Array API only; sums run over the batch too.

Conventions (0-based): blocks l = 0..L-1 with f_l(s) = block_l(params_l, s); hidden states
s_0..s_{L-2}, each (batch, *shape_l); errors e_l = s_l - f_l(s_{l-1}) with s_{-1} = x;
prediction yhat = f_{L-1}(s_{L-2}). The first block's output f_0(x) is constant while x
is clamped, so the sweeps take it precomputed (``f0x``).

  E(s) = sum_l 1/2 ||s_l - f_l(s_{l-1})||^2 + C(yhat, y)
  dE/ds_l = eps_l - J_{l+1}^T eps_{l+1},   eps_{L-1} := -dC/dyhat
  E(e) = sum_l 1/2 ||e_l||^2 + C(yhat(e), y)
  dE/de_l = e_l + J_{l+1}^T ... J_{L-1}^T dC/dyhat
  dE/dtheta_l = -(d f_l / d theta_l)^T eps_l   (local: no gradient crosses a block)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .checks import check_dtype, check_float, check_shape
from .errors import InputError
from .losses import get_loss
from .nn.network import NO_TARGETS, Network, Structure, check_input
from .nn.op import describe


# --------------------------------------------------------------------- kernels
def half_sq(xp: Any, v: Any) -> Any:
    """1/2 sum(v^2) as a 0-d array."""
    return 0.5 * xp.sum(v * v)


def error_sweep(k, structure: Structure, params, loss, f0x, y, errors, states=None, backward=True):
    """Forward pass with errors added, then the backward sweep; returns (grads, yhat) with
    grads[l] = dE/de_l. When ``states`` is a list, s_l = f_l(s_{l-1}) + e_l are appended to
    it; ``backward=False`` stops after the forward pass (grads is then empty)."""
    blocks, s, res = structure.blocks, f0x, []
    for l, e in enumerate(errors):
        s = s + e
        if states is not None:
            states.append(s)
        s, r = blocks[l + 1].forward(k, params[l + 1], s)
        res.append(r)
    if not backward:
        return [], s
    g, grads = loss.grad(k.xp, s, y), [None] * len(errors)
    for l in range(len(errors) - 1, -1, -1):
        g = blocks[l + 1].vjp(k, params[l + 1], res[l], g, True, False)[0]
        grads[l] = errors[l] + g
    return grads, s


def state_sweep(k, structure: Structure, params, loss, f0x, y, states, backward=True):
    """Prediction errors and dE/ds_l; returns (grads, eps, yhat) with eps_l = s_l - f_l(s_{l-1})
    and, with ``backward``, eps_{L-1} = -dC/dyhat appended (L entries)."""
    blocks, preds, res = structure.blocks, [f0x], []
    for l, s in enumerate(states):
        p, r = blocks[l + 1].forward(k, params[l + 1], s)
        preds.append(p)
        res.append(r)
    eps = [s - p for s, p in zip(states, preds)]
    yhat = preds[-1]
    if not backward:
        return [], eps, yhat
    eps.append(-loss.grad(k.xp, yhat, y))
    grads = [eps[l] - blocks[l + 1].vjp(k, params[l + 1], res[l], eps[l + 1], True, False)[0]
             for l in range(len(states))]
    return grads, eps, yhat


def _param_grads(k, structure: Structure, params, res, eps) -> tuple:
    """grads_l = -(d f_l/d theta_l)^T eps_l for every block, from its forward residuals."""
    return tuple(
        tuple(-g for g in block.vjp(k, p, r, e, False, True)[1])
        for block, p, r, e in zip(structure.blocks, params, res, eps))


def local_sweep(k, structure: Structure, params, loss, first, y, states):
    """Block-local weight gradients at fixed states: (per-block grads, eps, yhat), summed
    over the batch. ``first`` = block 0's (output, residuals) on x, from ``forward``."""
    outs, res = [first[0]], [first[1]]
    for block, p, h in zip(structure.blocks[1:], params[1:], states):
        o, r = block.forward(k, p, h)
        outs.append(o)
        res.append(r)
    eps = [s - o for s, o in zip(states, outs)] + [-loss.grad(k.xp, outs[-1], y)]
    return _param_grads(k, structure, params, res, eps), eps, outs[-1]


def local_sweep_errors(k, structure: Structure, params, loss, first, y, errors):
    """``local_sweep`` at the states s_l = f_l(s_{l-1}) + e_l of errors e, in one forward
    pass (the prediction errors there are the e_l themselves)."""
    s, res = first[0], [first[1]]
    for block, p, e in zip(structure.blocks[1:], params[1:], errors):
        s, r = block.forward(k, p, s + e)
        res.append(r)
    eps = list(errors) + [-loss.grad(k.xp, s, y)]
    return _param_grads(k, structure, params, res, eps), eps, s


def energy_from(xp: Any, loss: Any, errors: Sequence[Any], yhat: Any, y: Any) -> Any:
    """Total energy ``sum_l 1/2 ||e_l||^2 + C(yhat, y)`` as a 0-d array."""
    total = loss.value(xp, yhat, y)
    for e in errors:
        total = total + half_sq(xp, e)
    return total


def first_output(net: Network, x: Any) -> Any:
    """f_0(x): the first block's output, constant during inference."""
    return net.blocks[0](net.kernels, net.params[0], x)


# ------------------------------------------------------------------ validation
def check_hidden(net: Network, x: Any, y: Any, values: Sequence[Any], arg: str) -> Any:
    """Validate a list of L-1 hidden arrays (states or errors); returns the namespace."""
    hidden = net.depth - 1
    if not isinstance(values, (list, tuple)):
        raise InputError(f"{arg} must be a list of {hidden} arrays, got {type(values).__name__}")
    if len(values) != hidden:
        raise InputError(f"{arg} must hold one array per hidden layer ({hidden}), got {len(values)}")
    xp = check_input(net, x, y, **{f"{arg}[{l}]": v for l, v in enumerate(values)})
    for l, v in enumerate(values):
        check_float(xp, f"{arg}[{l}]", v)
        shape = net.structure.shapes[l]
        check_shape(f"{arg}[{l}]", v, (x.shape[0], *shape), f"block {l}'s output is {describe(shape)}")
        check_dtype(f"{arg}[{l}]", v, x.dtype)
    return xp


# ------------------------------------------------------------------ public API
# Each public function validates its arguments, then calls a kernel compiled by the backend
# with the structure and loss as constants (one jitted call on JAX; plain code elsewhere).
def _f0(k, structure, params, x):
    return structure.blocks[0](k, params[0], x)


def _state_energy(k, structure, loss, params, x, y, states):
    _, eps, yhat = state_sweep(k, structure, params, loss, _f0(k, structure, params, x), y, states, False)
    return energy_from(k.xp, loss, eps, yhat, y)


def _state_grad(k, structure, loss, params, x, y, states):
    return state_sweep(k, structure, params, loss, _f0(k, structure, params, x), y, states)[0]


def _error_energy(k, structure, loss, params, x, y, errors):
    _, yhat = error_sweep(k, structure, params, loss, _f0(k, structure, params, x), y, errors, None, False)
    return energy_from(k.xp, loss, errors, yhat, y)


def _error_grad(k, structure, loss, params, x, y, errors):
    return error_sweep(k, structure, params, loss, _f0(k, structure, params, x), y, errors)[0]


def _local(k, structure, loss, params, x, y, states):
    first = structure.blocks[0].forward(k, params[0], x)
    return local_sweep(k, structure, params, loss, first, y, states)[0]


def _states(k, structure, params, x, errors):
    states: list = []
    error_sweep(k, structure, params, None, _f0(k, structure, params, x), None, errors, states, False)
    return states


def _errors(k, structure, params, x, states):
    return state_sweep(k, structure, params, None, _f0(k, structure, params, x), None, states, False)[1]


def _run(net: Network, kernel: Any, *static_and_arrays: Any, loss: Any = None) -> Any:
    k = net.kernels
    static = (k, net.structure) + (() if loss is None else (get_loss(loss),))
    return k.compiled(kernel, *static)(net.params, *static_and_arrays)


def state_energy(net: Network, x: Any, y: Any, states: Sequence[Any], loss: Any = "mse") -> Any:
    """E(s) = sum_l 1/2 ||s_l - f_l(s_{l-1})||^2 + C(f_{L-1}(s_{L-2}), y), a 0-d array."""
    check_hidden(net, x, y, states, "states")
    return _run(net, _state_energy, x, y, list(states), loss=loss)


def state_energy_grad(net: Network, x: Any, y: Any, states: Sequence[Any], loss: Any = "mse") -> list:
    """dE/ds_l for each hidden state, each (batch, *shape_l): eps_l - J_{l+1}^T eps_{l+1}."""
    check_hidden(net, x, y, states, "states")
    return list(_run(net, _state_grad, x, y, list(states), loss=loss))


def error_energy(net: Network, x: Any, y: Any, errors: Sequence[Any], loss: Any = "mse") -> Any:
    """E(e) = sum_l 1/2 ||e_l||^2 + C(f_{L-1}(s_{L-2}(e)), y), a 0-d array."""
    check_hidden(net, x, y, errors, "errors")
    return _run(net, _error_energy, x, y, list(errors), loss=loss)


def error_energy_grad(net: Network, x: Any, y: Any, errors: Sequence[Any], loss: Any = "mse") -> list:
    """dE/de_l = e_l + g_l with g backpropagated from dC/dyhat; each (batch, *shape_l)."""
    check_hidden(net, x, y, errors, "errors")
    return list(_run(net, _error_grad, x, y, list(errors), loss=loss))


def local_weight_grads(net: Network, x: Any, y: Any, states: Sequence[Any], loss: Any = "mse") -> tuple:
    """dE/dtheta_l at fixed states, per block (aligned with ``net.params``).

    Block-local: dE/dtheta_l = -(df_l/dtheta_l)^T eps_l with eps_{L-1} = -dC/dyhat; for a
    Dense layer dE/dW = -(phi'(a) * eps)^T s_{l-1}. Summed over the batch (divide by the
    batch size for a weight step).
    """
    check_hidden(net, x, y, states, "states")
    return tuple(tuple(g) for g in _run(net, _local, x, y, list(states), loss=loss))


def states_from_errors(net: Network, x: Any, errors: Sequence[Any]) -> list:
    """Hidden states s_l = f_l(s_{l-1}) + e_l for errors e (the EO parametrisation)."""
    check_hidden(net, x, NO_TARGETS, errors, "errors")
    return list(_run(net, _states, x, list(errors)))


def errors_from_states(net: Network, x: Any, states: Sequence[Any]) -> list:
    """Errors e_l = s_l - f_l(s_{l-1}) for hidden states s (inverse of states_from_errors)."""
    check_hidden(net, x, NO_TARGETS, states, "states")
    return list(_run(net, _errors, x, list(states)))
