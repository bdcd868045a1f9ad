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

import array_api_compat

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
                        curvature_floor: float = 0.0, reorthogonalize: bool = False, loop: Any = None) -> list:
    """Per-sample CG for H x = b from x = 0, ``iters`` products at most; a sample stops
    moving once its residual norm is <= tol * ||b||, or where the curvature <d, H d> is not
    above ``curvature_floor`` * <d, d> (truncated CG for an indefinite H).

    ``reorthogonalize`` keeps each new residual orthogonal to the earlier ones (as exact
    arithmetic would), so CG ends after as many products as H has distinct eigenvalues
    (d_y + 1 for the Gauss-Newton Hessian I + J^T H_C J) instead of drifting on in rounding.
    ``loop`` (a backend ``run_loop``) runs the iterations as one compiled loop instead of
    unrolling them into the trace."""
    rs = bdot(xp, b, b)
    unit = _flat(xp, b) * safe_div(xp, xp.ones_like(rs), xp.sqrt(rs), rs > 0)[:, None]
    rows = iters + 1 if reorthogonalize else 1
    basis = xp.concat([unit[:, None, :], xp.zeros((unit.shape[0], rows - 1, unit.shape[1]), dtype=unit.dtype,
                                                  device=_device(unit))], axis=1)
    body = _CGIteration(apply, rs * (tol * tol), curvature_floor, reorthogonalize, [tuple(u.shape) for u in b])
    carry = (tuple(xp.zeros_like(u) for u in b), tuple(b), tuple(b), rs, basis, xp.zeros_like(rs[0]))
    if loop is None:
        for _ in range(iters):
            carry = body(carry, None)
    else:  # a compiled loop that ends once every sample's residual is small enough
        carry, _ = loop(body, carry, iters, None, _cg_done(body.stop))
    return list(carry[0])


def _cg_done(stop: Any) -> Any:
    """Loop stop test: every sample's squared residual is <= its threshold."""
    def done(carry: tuple, _: Any) -> Any:
        xp = array_api_compat.array_namespace(carry[3])
        return xp.all(carry[3] <= stop)
    return done


class _CGIteration:
    """One CG iteration on the carry (x, r, d, |r|^2, residual basis, iteration index)."""

    def __init__(self, apply, stop, floor, reorthogonalize, shapes):
        self.apply, self.stop, self.floor = apply, stop, floor
        self.reorthogonalize, self.shapes = reorthogonalize, shapes

    def __call__(self, carry: tuple, _: Any) -> tuple:
        x, r, d, rs, basis, j = carry
        x, r, d = list(x), list(r), list(d)
        xp = array_api_compat.array_namespace(rs)
        hd = self.apply(d)
        dhd = bdot(xp, d, hd)
        live = (rs > self.stop) & (dhd > self.floor * bdot(xp, d, d))
        alpha = safe_div(xp, rs, dhd, live)
        x = axpy(xp, alpha, d, x)
        r = axpy(xp, -alpha, hd, r)
        if self.reorthogonalize:
            r, basis = _orthogonalized(xp, r, basis, j + 1, self.shapes)
        rs_new = bdot(xp, r, r)
        beta = safe_div(xp, rs_new, rs, live)
        d = axpy(xp, beta, d, r)
        return tuple(x), tuple(r), tuple(d), xp.where(live, rs_new, rs), basis, j + 1


def _flat(xp: Any, vs: list) -> Any:
    """A list of (batch, ...) arrays as one (batch, n) array."""
    return xp.concat([xp.reshape(v, (v.shape[0], -1)) for v in vs], axis=1)


def _split(xp: Any, u: Any, shapes: list) -> list:
    """(batch, n) back to arrays of ``shapes`` (the inverse of ``_flat``)."""
    out, i = [], 0
    for shape in shapes:
        size = 1
        for n in shape[1:]:
            size *= n
        out.append(xp.reshape(u[:, i:i + size], shape))
        i += size
    return out


def _project_out(xp: Any, w: Any, basis: Any, passes: int = 2) -> Any:
    """w (batch, n) less its components along the orthonormal rows of basis (batch, k, n),
    ``passes`` times (twice is enough for Lanczos; CG's residuals need one)."""
    for _ in range(passes):
        w = w - xp.matmul(xp.matmul(basis, w[:, :, None])[:, :, 0][:, None, :], basis)[:, 0, :]
    return w


def _orthogonalized(xp: Any, r: list, basis: Any, row: Any, shapes: list) -> tuple[list, Any]:
    """Residual r orthogonalised against ``basis`` (batch, rows, n; unused rows are zero), and
    its direction written into row ``row`` (a fixed-size buffer, so the loop compiles once)."""
    w = _project_out(xp, _flat(xp, r), basis, passes=1)
    norm = xp.sqrt(xp.sum(w * w, axis=1))
    unit = w * safe_div(xp, xp.ones_like(norm), norm, norm > 0)[:, None]
    return _split(xp, w, shapes), basis + _row(xp, basis[:, :, 0], row)[:, :, None] * unit[:, None, :]


def lanczos_extremes(xp: Any, apply: Any, start: list, steps: int, loop: Any = None) -> tuple[Any, Any]:
    """Per-sample Lanczos (full re-orthogonalisation, twice) from ``start``: the largest and
    the smallest Ritz values after ``steps`` products, each (batch,). A sample whose Krylov
    space is exhausted early (b ~ 0) stops there with its Ritz values. The vectors are
    flattened to (batch, n) so each re-orthogonalisation is two batched matrix products;
    ``loop`` (a backend ``run_loop``) runs the steps as one compiled loop."""
    q = _flat(xp, start)
    norm = xp.sqrt(xp.sum(q * q, axis=1))
    alive = norm > 0
    q = q * safe_div(xp, xp.ones_like(norm), norm, alive)[:, None]
    batch, n = q.shape
    basis = xp.concat([q[:, None, :], xp.zeros((batch, steps, n), dtype=q.dtype, device=_device(q))], axis=1)
    coeffs = xp.zeros((batch, steps), dtype=q.dtype, device=_device(q))
    body = _LanczosStep(apply, [tuple(v.shape) for v in start])
    carry = (q, basis, coeffs, coeffs, alive, xp.zeros_like(norm[0]))
    if loop is None:
        for _ in range(steps):
            carry = body(carry, None)
    else:
        carry, _ = loop(body, carry, steps, None)
    _, _, alpha, beta, _, _ = carry
    index = xp.arange(steps, dtype=alpha.dtype, device=_device(alpha))
    beta = beta * xp.astype(index < steps - 1, beta.dtype)[None, :]  # the last b is not in T
    eye = xp.eye(steps, dtype=alpha.dtype, device=_device(alpha))
    upper = xp.eye(steps, k=1, dtype=alpha.dtype, device=_device(alpha))
    tri = (alpha[:, :, None] * eye + beta[:, :, None] * upper + beta[:, None, :] * xp.permute_dims(upper, (1, 0)))
    eig = xp.linalg.eigvalsh(tri)
    return eig[:, -1], eig[:, 0]


class _LanczosStep:
    """One Lanczos step on the carry (q, basis, alphas, betas, alive, step index); the
    basis and coefficient arrays have fixed sizes and are written by masks."""

    def __init__(self, apply, shapes):
        self.apply, self.shapes = apply, shapes

    def __call__(self, carry: tuple, _: Any) -> tuple:
        q, basis, alphas, betas, alive, j = carry
        xp = array_api_compat.array_namespace(q)
        w = _flat(xp, self.apply(_split(xp, q, self.shapes)))
        a = xp.sum(q * w, axis=1)
        w = _project_out(xp, w, basis)
        b = xp.sqrt(xp.sum(w * w, axis=1))
        first = xp.where(j == 0, a, alphas[:, 0])  # a stopped sample repeats a value inside its spectrum
        alphas = alphas + _row(xp, alphas, j) * xp.where(alive, a, first)[:, None]
        scale = xp.max(xp.abs(alphas), axis=1)
        # stop where the Krylov space is exhausted up to rounding: continuing from a noise
        # vector breaks the three-term recurrence and gives spurious values
        alive = alive & (b > xp.finfo(b.dtype).eps ** 0.5 * scale)
        betas = betas + _row(xp, betas, j) * xp.where(alive, b, xp.zeros_like(b))[:, None]
        q = w * safe_div(xp, xp.ones_like(b), b, alive)[:, None]
        mask = _row(xp, basis[:, :, 0], j + 1)
        return q, basis + mask[:, :, None] * q[:, None, :], alphas, betas, alive, j + 1


def _row(xp: Any, like: Any, j: Any) -> Any:
    """(1, k) one-hot row selecting column ``j`` of a (batch, k) array."""
    index = xp.arange(like.shape[1], dtype=like.dtype, device=_device(like))
    return xp.astype(index == xp.astype(j, like.dtype), like.dtype)[None, :]


def _device(a: Any) -> Any:
    import array_api_compat

    return array_api_compat.device(a)
