"""CPU twin of ``cuda/volume_prior.cu``: one parallel pass over the voxels (gather form, no races).

:func:`volume_prior_numba` runs the shared per-voxel routine for every kind (the GPU engines'
routine compiled for the CPU; the engine itself runs the passes below); :func:`face_prior_numba`
is the vectorised path of the face-neighbour kinds (smoothed anisotropic TV and Huber, pairs from
both ends; smoothed isotropic TV in gather form, 4 square roots per voxel);
:func:`qggmrf_prior_numba` evaluates each qGGMRF pair once (scatter in even/odd slice sweeps).
"""

import math

from numba import njit, prange

from . import _volume_prior_common
from ._numba_flags import FASTMATH_SUMS, fastmath

_voxel = _volume_prior_common.compile_voxel(njit(inline="always"))


# no cache=True here: Numba's cache checks only this file's time stamp, not _volume_prior_common.py's,
# so a cached build would silently keep old arithmetic after an edit there (compiles once per process);
# face_prior_numba and qggmrf_prior_numba below import no arithmetic from there and are cached
@njit(parallel=True, nogil=True)
def volume_prior_numba(x, grad, kind, a, p, q, t, sigma, alpha, beta):
    """``grad <- beta*grad + alpha*dR/dx`` over a (nz, ny, nx) volume; returns ``R(x)`` (float64).

    ``beta == 0`` overwrites ``grad`` (its old values, NaN included, are not read).
    """
    nz, ny, nx = x.shape
    total = 0.0
    for z in prange(nz):
        acc = 0.0
        for y in range(ny):
            for c in range(nx):
                g, v = _voxel(x, z, y, c, nz, ny, nx, kind, a, p, q, t, sigma)
                if beta == 0.0:
                    grad[z, y, c] = alpha * g
                else:
                    grad[z, y, c] = beta * grad[z, y, c] + alpha * g
                acc += v
        total += acc
    return total


@njit(inline="always")
def _pair(d, huber, a):
    """``(rho'(d), rho(d))`` of smoothed TV (``a`` = eps; ``rho = d^2 / (sqrt(d^2 + a^2) + a)``, the
    same as ``sqrt(d^2 + a^2) - a`` without its cancellation, exactly 0 at ``d = 0``) or Huber
    (``a`` = delta), in the volume's precision."""
    if huber:
        ad = abs(d)
        if ad <= a:
            return d, 0.5 * d * d
        return (a if d > 0 else -a), a * (ad - 0.5 * a)
    n = math.sqrt(d * d + a * a)
    return d / n, d * d / (n + a)


@njit(inline="always")
def _anisotropic_run(xr, xyp, xym, xzp, xzm, gr, c0, c1, dm, dp, huber, a, alpha, beta):
    """Voxels ``c0 <= c < c1`` of one row: the 6 face pairs (x neighbours ``c - dm``, ``c + dp``);
    ``gr[c] <- beta*gr[c] + alpha*g``. Returns the row's share of ``R`` (the +x, +y, +z pairs)."""
    acc = 0.0
    for c in range(c0, c1):
        v = xr[c]
        g, r = _pair(v - xr[c + dp], huber, a)
        acc += r
        d, r = _pair(v - xyp[c], huber, a)
        g += d
        acc += r
        d, r = _pair(v - xzp[c], huber, a)
        g += d
        acc += r
        d, r = _pair(v - xr[c - dm], huber, a)
        g += d
        d, r = _pair(v - xym[c], huber, a)
        g += d
        d, r = _pair(v - xzm[c], huber, a)
        g += d
        gr[c] = beta * gr[c] + alpha * g
    return acc


@njit(inline="always")
def _isotropic_run(xr, ryp, rzp, rym, rymzp, rzm, rzmyp, gr, c0, c1, dm, dp, a, alpha, beta):
    """Voxels ``c0 <= c < c1`` of one row of isotropic TV (gather form): the voxel's own term and
    the three whose forward differences reach it, at (z, y, c-1), (z, y-1, c), (z-1, y, c).

    Rows (clamped at the volume's faces, so a missing neighbour is the voxel itself and its
    difference 0): ``xr`` = x[z, y], ``ryp`` = x[z, y+1], ``rzp`` = x[z+1, y], ``rym`` = x[z, y-1],
    ``rymzp`` = x[z+1, y-1], ``rzm`` = x[z-1, y], ``rzmyp`` = x[z-1, y+1]. A backward term whose
    voxel is off the volume has a zero numerator (its difference to ``x[z, y, c]`` is between the
    clamped row and itself), so it adds nothing without a branch. Returns the row's share of ``R``."""
    a2 = a * a
    acc = 0.0
    for c in range(c0, c1):
        v = xr[c]
        dx = xr[c + dp] - v
        dy = ryp[c] - v
        dz = rzp[c] - v
        s = dx * dx + dy * dy + dz * dz
        n = math.sqrt(s + a2)
        g = -(dx + dy + dz) / n
        acc += s / (n + a)              # = n - a without its cancellation
        w = xr[c - dm]                  # (z, y, c-1): its x difference ends at v
        ex = v - w
        ey = ryp[c - dm] - w
        ez = rzp[c - dm] - w
        g += ex / math.sqrt(ex * ex + ey * ey + ez * ez + a2)
        w = rym[c]                      # (z, y-1, c)
        ey = v - w
        ex = rym[c + dp] - w
        ez = rymzp[c] - w
        g += ey / math.sqrt(ex * ex + ey * ey + ez * ez + a2)
        w = rzm[c]                      # (z-1, y, c)
        ez = v - w
        ex = rzm[c + dp] - w
        ey = rzmyp[c] - w
        g += ez / math.sqrt(ex * ex + ey * ey + ez * ez + a2)
        gr[c] = beta * gr[c] + alpha * g
    return acc


#: ``mode`` of :func:`face_prior_numba`
FACE_TV, FACE_HUBER, FACE_ITV = 0, 1, 2


# re-association and contraction only (FASTMATH_SUMS): with the approximate reciprocal and sqrt
# flags of FASTMATH, LLVM computes d / sqrt(.) one way in the vector body and another in the
# scalar remainder, whose share depends on where the rows sit in memory, so the same inputs gave
# different bits in different processes (a resume, a rescaled series)
@njit(parallel=True, nogil=True, cache=True, fastmath=fastmath(FASTMATH_SUMS))
def face_prior_numba(x, grad, mode, a, alpha, beta):
    """:func:`volume_prior_numba` for the face-neighbour priors, SIMD: ``mode`` :data:`FACE_TV`
    (smoothed anisotropic TV), :data:`FACE_HUBER` or :data:`FACE_ITV` (smoothed isotropic TV,
    forward differences, 0 at the far faces).

    Branch-free rows: a neighbour off the volume is clamped to the voxel itself, whose difference
    0 adds nothing (anisotropic: ``rho(0) = rho'(0) = 0``; isotropic: a backward term whose voxel
    is off the volume has a zero numerator), and the x edges run apart from the interior, so the
    interior loop is contiguous and vectorises. The arithmetic runs in the volume's precision;
    each slice's ``R`` share is summed in float64. Each voxel's gradient is written from its own
    row (gather form): the same bits at any thread count.
    """
    nz, ny, nx = x.shape
    af = x.dtype.type(a)
    alf = grad.dtype.type(alpha)
    bef = grad.dtype.type(beta)
    huber = mode == FACE_HUBER
    total = 0.0
    for z in prange(nz):
        acc = 0.0
        zp = min(z + 1, nz - 1)
        zm = max(z - 1, 0)
        for y in range(ny):
            yp = min(y + 1, ny - 1)
            ym = max(y - 1, 0)
            xr = x[z, y]
            gr = grad[z, y]
            if beta == 0.0:
                gr[:] = 0.0          # the old gradient (NaN included) is not read
            ryp = x[z, yp]
            rzp = x[zp, y]
            rym = x[z, ym]
            rzm = x[zm, y]
            if mode == FACE_ITV:
                rymzp = x[zp, ym]
                rzmyp = x[zm, yp]
                if nx == 1:
                    acc += _isotropic_run(xr, ryp, rzp, rym, rymzp, rzm, rzmyp, gr, 0, 1, 0, 0, af, alf, bef)
                    continue
                acc += _isotropic_run(xr, ryp, rzp, rym, rymzp, rzm, rzmyp, gr, 0, 1, 0, 1, af, alf, bef)
                acc += _isotropic_run(xr, ryp, rzp, rym, rymzp, rzm, rzmyp, gr, 1, nx - 1, 1, 1, af, alf, bef)
                acc += _isotropic_run(xr, ryp, rzp, rym, rymzp, rzm, rzmyp, gr, nx - 1, nx, 1, 0, af, alf, bef)
                continue
            if nx == 1:
                acc += _anisotropic_run(xr, ryp, rym, rzp, rzm, gr, 0, 1, 0, 0, huber, af, alf, bef)
                continue
            acc += _anisotropic_run(xr, ryp, rym, rzp, rzm, gr, 0, 1, 0, 1, huber, af, alf, bef)
            acc += _anisotropic_run(xr, ryp, rym, rzp, rzm, gr, 1, nx - 1, 1, 1, huber, af, alf, bef)
            acc += _anisotropic_run(xr, ryp, rym, rzp, rzm, gr, nx - 1, nx, 1, 0, huber, af, alf, bef)
        total += acc
    return total


@njit(inline="always")
def _qg_run(xr, xn, gr, gn, c0, c1, ox, w, p, qp, cq, lts, q2, q, alf, one):
    """qGGMRF pairs ``(z, y, c) - (z', y', c + ox)`` for ``c0 <= c < c1`` of one row ``xr`` against the
    neighbour row ``xn``: ``gr[c] += alf*w*rho'(d)`` and ``gn[c + ox] -= alf*w*rho'(d)`` (scatter; see
    :func:`qggmrf_prior_numba`). Returns ``sum w*rho(d)`` (float64).

    ``rho(d) = cq |d|^q / (1 + u)``, ``u = (|d| / (T sigma))^(q - p)`` (the definition's
    ``|d|^p u / (p sigma^p (1 + u))`` with the powers merged: one log and one exp per pair at
    ``q = 2``, where ``|d|^q = d^2``), ``rho'(|d|) = rho (p + (q - p) / (1 + u)) / |d|``."""
    acc = 0.0
    for c in range(c0, c1):
        d = xr[c] - xn[c + ox]
        if d == 0:
            continue
        ad = abs(d)
        lg = math.log(ad)
        u = math.exp(qp * (lg - lts))
        num = d * d if q2 else math.exp(q * lg)
        inv = one / (one + u)
        r = cq * num * inv
        g = alf * w * r * (p + qp * inv) / d       # rho'(|d|) sign(d) = rho (.) / d
        gr[c] += g
        gn[c + ox] -= g
        acc += w * r
    return acc


# cached: the neighbour weights come in as arguments (a cached build would keep constants read
# from _volume_prior_common, whose edits Numba's cache does not see; see volume_prior_numba)
@njit(parallel=True, nogil=True, cache=True)
def qggmrf_prior_numba(x, grad, p, q, t, sigma, alpha, beta, w_face, w_edge, w_corner):
    """:func:`volume_prior_numba` for qGGMRF (26 neighbours), each pair evaluated once.

    The gather routine evaluates every pair at both of its voxels (26 potentials per voxel, three
    transcendentals each); here each voxel visits its 13 pairs with a lexicographically positive
    offset and adds ``+-rho'`` to both ends (scatter), with two transcendentals per pair at
    ``q = 2`` (one log, one exp; see :func:`_qg_run`). A pair reaches at most the next z slice,
    so the slices run in two parallel sweeps, even then odd z: within a sweep no two threads write
    the same slice, and every voxel's gradient sum has a fixed order whatever the thread count
    (the gradient is reproducible bit for bit; ``R``, a reduction over slices, to rounding). Pair
    arithmetic in the volume's precision; ``R`` summed in float64. Weights (``w_face``, ``w_edge``,
    ``w_corner``: ``_volume_prior_common.W_*``), neighbours and the potential are those of
    :func:`volume_prior_numba`.
    """
    nz, ny, nx = x.shape
    ft = x.dtype.type
    pf, qf = ft(p), ft(q)
    one = ft(1.0)
    qp = ft(q - p)
    cq = ft(1.0 / (p * sigma ** p) * (t * sigma) ** (p - q))
    lts = ft(math.log(t * sigma))
    q2 = q == 2.0
    alf = grad.dtype.type(alpha)
    wf = ft(w_face)
    we = ft(w_edge)
    wc = ft(w_corner)
    for z in prange(nz):
        for y in range(ny):
            gr = grad[z, y]
            if beta == 0.0:
                gr[:] = 0.0            # the old gradient (NaN included) is not read
            elif beta != 1.0:
                for c in range(nx):
                    gr[c] = beta * gr[c]
    total = 0.0
    for parity in range(2):
        for k in prange((nz - parity + 1) // 2):
            z = 2 * k + parity
            acc = 0.0
            for y in range(ny):
                xr = x[z, y]
                gr = grad[z, y]
                # in-plane: (0, 0, +1), then (0, +1, -1 | 0 | +1)
                acc += _qg_run(xr, xr, gr, gr, 0, nx - 1, 1, wf, pf, qp, cq, lts, q2, qf, alf, one)
                if y + 1 < ny:
                    xn = x[z, y + 1]
                    gn = grad[z, y + 1]
                    acc += _qg_run(xr, xn, gr, gn, 1, nx, -1, we, pf, qp, cq, lts, q2, qf, alf, one)
                    acc += _qg_run(xr, xn, gr, gn, 0, nx, 0, wf, pf, qp, cq, lts, q2, qf, alf, one)
                    acc += _qg_run(xr, xn, gr, gn, 0, nx - 1, 1, we, pf, qp, cq, lts, q2, qf, alf, one)
                if z + 1 < nz:         # the next slice: (+1, -1 | 0 | +1, -1 | 0 | +1)
                    for oy in range(-1, 2):
                        yy = y + oy
                        if yy < 0 or yy >= ny:
                            continue
                        xn = x[z + 1, yy]
                        gn = grad[z + 1, yy]
                        w0 = wf if oy == 0 else we
                        w1 = we if oy == 0 else wc
                        acc += _qg_run(xr, xn, gr, gn, 1, nx, -1, w1, pf, qp, cq, lts, q2, qf, alf, one)
                        acc += _qg_run(xr, xn, gr, gn, 0, nx, 0, w0, pf, qp, cq, lts, q2, qf, alf, one)
                        acc += _qg_run(xr, xn, gr, gn, 0, nx - 1, 1, w1, pf, qp, cq, lts, q2, qf, alf, one)
            total += acc
    return total
