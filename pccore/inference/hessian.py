"""Hessian-vector products of the error energy, and the per-sample Krylov methods on them.

E(e) = sum_l 1/2 ||e_l||^2 + C(yhat(e)) with s_l = f_l(s_{l-1}) + e_l. With J the Jacobian
of the output w.r.t. all errors and H_C the output loss curvature (MSE: precision * I; CE:
the softmax Jacobian), the Gauss-Newton Hessian is H = I + J^T H_C J: one forward tangent
sweep (block JVPs) and one backward sweep (block VJPs) per product. The exact Hessian adds
each block's second-order term (``Op.hvp_term``), i.e. the activations' phi''.

The Hessian is block-diagonal over the samples, so conjugate gradients and Lanczos run per
sample (inner products are (batch,) arrays): for a deep linear net each sample's Hessian
has at most d_y + 1 distinct eigenvalues and CG is exact after d_y + 1 products.
"""

from __future__ import annotations

from typing import Any

import attrs


# ------------------------------------------------------------- per-sample algebra
def bdot(xp: Any, a: list, b: list) -> Any:
    """Per-sample inner product of two lists of (batch, ...) arrays: (batch,)."""
    total = None
    for u, v in zip(a, b):
        d = xp.sum(xp.reshape(u * v, (u.shape[0], -1)), axis=1)
        total = d if total is None else total + d
    return total


def bscale(xp: Any, alpha: Any, vs: list) -> list:
    """alpha (batch,) times each (batch, ...) array."""
    return [xp.reshape(alpha, (-1,) + (1,) * (v.ndim - 1)) * v for v in vs]


def axpy(xp: Any, alpha: Any, xs: list, ys: list) -> list:
    """ys + alpha * xs, alpha per sample."""
    return [y + a for y, a in zip(ys, bscale(xp, alpha, xs))]


def safe_div(xp: Any, num: Any, den: Any, ok: Any) -> Any:
    """num / den where ``ok``, else 0 (no division by zero is evaluated)."""
    return xp.where(ok, num / xp.where(ok, den, xp.ones_like(den)), xp.zeros_like(num))


# --------------------------------------------------------------------- the point
@attrs.frozen
class Point:
    """What products at errors ``e`` need: each block's forward residuals, the prediction,
    and (for exact products) the backward cotangents at each block's output."""

    res: tuple
    yhat: Any
    cot: tuple | None


def linearize(step: Any, args: tuple, errors: tuple, exact: bool = False) -> Point:
    """One forward pass at ``errors`` keeping the residuals (and, if ``exact``, the
    backward pass of dC/dyhat keeping the cotangents)."""
    params, f0x, y = args
    k, blocks = step.kernels, step.structure.blocks
    s, res = f0x, []
    for l, e in enumerate(errors):
        s, r = blocks[l + 1].forward(k, params[l + 1], s + e)
        res.append(r)
    cot = None
    if exact:
        c, cots = step.loss.grad(k.xp, s, y), [None] * len(errors)
        for l in range(len(errors) - 1, -1, -1):
            cots[l] = c
            c = blocks[l + 1].vjp(k, params[l + 1], res[l], c, True, False)[0]
        cot = tuple(cots)
    return Point(tuple(res), s, cot)


def hvp(step: Any, args: tuple, point: Point, v: list, exact: bool = False) -> list:
    """H v for the error energy at ``point``: Gauss-Newton (I + J^T H_C J), or the exact
    Hessian with the blocks' second-order terms."""
    params, _, y = args
    k, blocks, xp = step.kernels, step.structure.blocks, step.kernels.xp
    n = len(v)
    tangents, t = [], v[0]  # tangents[l]: of state s_l; block l+1 maps it on
    for l in range(n):
        tangents.append(t)
        u = blocks[l + 1].jvp(k, params[l + 1], point.res[l], t)
        t = u + v[l + 1] if l + 1 < n else u
    c = step.loss.hvp(xp, point.yhat, y, t)
    out = [None] * n
    for l in range(n - 1, -1, -1):
        block, p, r = blocks[l + 1], params[l + 1], point.res[l]
        dc = block.vjp(k, p, r, c, True, False)[0]
        if exact:
            term = block.hvp_term(k, p, r, point.cot[l], tangents[l])
            if term is not None:
                dc = dc + term
        c = dc
        out[l] = v[l] + c
    return out


# ------------------------------------------------------------------ Krylov methods
def conjugate_gradients(xp: Any, apply: Any, b: list, iters: int, tol: float = 0.0,
                        curvature_floor: float = 0.0) -> list:
    """Per-sample CG for H x = b from x = 0, ``iters`` products at most; a sample stops
    moving once its residual norm is <= tol * ||b||, or where the curvature <d, H d> is not
    above ``curvature_floor`` * <d, d> (truncated CG for an indefinite H)."""
    x = [xp.zeros_like(u) for u in b]
    r, d = list(b), list(b)
    rs = bdot(xp, r, r)
    stop = rs * (tol * tol)
    for _ in range(iters):
        hd = apply(d)
        dhd = bdot(xp, d, hd)
        live = (rs > stop) & (dhd > curvature_floor * bdot(xp, d, d))
        alpha = safe_div(xp, rs, dhd, live)
        x = axpy(xp, alpha, d, x)
        r = axpy(xp, -alpha, hd, r)
        rs_new = bdot(xp, r, r)
        beta = safe_div(xp, rs_new, rs, live)
        d = axpy(xp, beta, d, r)
        rs = xp.where(live, rs_new, rs)
    return x


def lanczos_extremes(xp: Any, apply: Any, start: list, steps: int) -> tuple[Any, Any]:
    """Per-sample Lanczos (full re-orthogonalisation, twice) from ``start``: the largest and
    the smallest Ritz values after ``steps`` products, each (batch,). A sample whose Krylov
    space is exhausted early (b ~ 0) stops there with its Ritz values. The vectors are
    flattened to (batch, n) so each re-orthogonalisation is two batched matrix products."""
    shapes = [tuple(v.shape) for v in start]

    def flat(vs):
        return xp.concat([xp.reshape(v, (v.shape[0], -1)) for v in vs], axis=1)

    def split(u):
        out, i = [], 0
        for shape in shapes:
            size = 1
            for n in shape[1:]:
                size *= n
            out.append(xp.reshape(u[:, i:i + size], shape))
            i += size
        return out

    q = flat(start)
    norm = xp.sqrt(xp.sum(q * q, axis=1))
    alive = norm > 0
    q = q * safe_div(xp, xp.ones_like(norm), norm, alive)[:, None]
    basis, alphas, betas = q[:, None, :], [], []
    for _ in range(steps):
        w = flat(apply(split(q)))
        a = xp.sum(q * w, axis=1)
        for _ in range(2):  # "twice is enough"
            w = w - xp.matmul(xp.matmul(basis, w[:, :, None])[:, :, 0][:, None, :], basis)[:, 0, :]
        b = xp.sqrt(xp.sum(w * w, axis=1))
        a0 = a if not alphas else alphas[0]
        alphas.append(xp.where(alive, a, a0))  # a stopped sample repeats a value inside its spectrum
        scale = xp.max(xp.abs(xp.stack(alphas, axis=1)), axis=1)
        # stop where the Krylov space is exhausted up to rounding: continuing from a noise
        # vector breaks the three-term recurrence and gives spurious values
        alive = alive & (b > xp.finfo(b.dtype).eps ** 0.5 * scale)
        betas.append(xp.where(alive, b, xp.zeros_like(b)))
        q = w * safe_div(xp, xp.ones_like(b), b, alive)[:, None]
        basis = xp.concat([basis, q[:, None, :]], axis=1)
    k = len(alphas)
    alpha = xp.stack(alphas, axis=1)  # (batch, k)
    beta = xp.stack(betas[:-1] + [xp.zeros_like(betas[-1])], axis=1)
    eye = xp.eye(k, dtype=alpha.dtype, device=_device(alpha))
    upper = xp.eye(k, k=1, dtype=alpha.dtype, device=_device(alpha))
    tri = (alpha[:, :, None] * eye + beta[:, :, None] * upper + beta[:, None, :] * xp.permute_dims(upper, (1, 0)))
    eig = xp.linalg.eigvalsh(tri)
    return eig[:, -1], eig[:, 0]


def _device(a: Any) -> Any:
    import array_api_compat

    return array_api_compat.device(a)
