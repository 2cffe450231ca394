"""CPU twin of ``cuda/back_project.cu``: gather back projection, parallel over volume lines.

Each parallel iteration owns one line ``out[iz, iy, :]`` of the volume (no atomics, no shared
writes): it scales the line by ``beta``, adds ``alpha * weights * sum_k B_k(images[k])`` with
all projections accumulated while the line stays in cache, then applies positivity.

Images carry a zero border of at least ``BORDER`` pixels, so the inner loops clamp the
coordinates into the padded image instead of testing taps (branch-free).
"""

import numpy as np
from numba import njit, prange, uint64

from ._numba_flags import fastmath
from ._projector_taps_numba import index_range, sub4_weights

_ONE = uint64(1)
_TWO = uint64(2)


@njit(inline="always", cache=True)
def _line_sub1(flat, base, cp, rp, au, bu, av, bv, o, w, use_w, alpha, x0, x1):
    """Bilinear gather along one volume line from a bordered image (coordinates in padded pixels)."""
    hu = cp - 2.0
    hv = rp - 2.0
    for ix in range(x0, x1):
        u = min(max(au * ix + bu, 0.0), hu)
        v = min(max(av * ix + bv, 0.0), hv)
        iu = int(u)
        iv = int(v)
        fu = u - iu
        fv = v - iv
        p = uint64(base + iv * cp + iu)
        q = p + uint64(cp)
        val = (1.0 - fv) * ((1.0 - fu) * flat[p] + fu * flat[p + _ONE]) \
            + fv * ((1.0 - fu) * flat[q] + fu * flat[q + _ONE])
        o[ix] += (alpha * w[ix] if use_w else alpha) * val


@njit(inline="always", cache=True)
def _line_sub4(flat, base, cp, rp, au, bu, av, bv, o, w, use_w, alpha, x0, x1):
    """Four-sub-point gather (3 x 3 separable taps) along one volume line from a bordered image."""
    hu = cp - 3.0
    hv = rp - 3.0
    bu -= 0.25
    bv -= 0.25
    for ix in range(x0, x1):
        u = min(max(au * ix + bu, 0.0), hu)
        v = min(max(av * ix + bv, 0.0), hv)
        iu = int(u)
        iv = int(v)
        fu = u - iu
        fv = v - iv
        u0, u1, u2 = sub4_weights(fu)
        v0, v1, v2 = sub4_weights(fv)
        p = uint64(base + iv * cp + iu)
        q = p + uint64(cp)
        r = q + uint64(cp)
        val = v0 * (u0 * flat[p] + u1 * flat[p + _ONE] + u2 * flat[p + _TWO]) \
            + v1 * (u0 * flat[q] + u1 * flat[q + _ONE] + u2 * flat[q + _TWO]) \
            + v2 * (u0 * flat[r] + u1 * flat[r + _ONE] + u2 * flat[r + _TWO])
        o[ix] += (alpha * w[ix] if use_w else alpha) * val


@njit(inline="always", cache=True)
def _row_sub1(flat, base, cp, rp, au, bu, bv, o, w, use_w, alpha, x0, x1):
    """``_line_sub1`` when v is constant along the line (``R[1, 0] == 0``, e.g. tilts about y):
    the row weights are hoisted, and an integral v reads a single row (2 taps)."""
    hu = cp - 2.0
    v = min(max(bv, 0.0), rp - 2.0)
    iv = int(v)
    fv = v - iv
    row = uint64(base + iv * cp)
    if fv == 0.0:
        for ix in range(x0, x1):
            u = min(max(au * ix + bu, 0.0), hu)
            iu = int(u)
            fu = u - iu
            p = row + uint64(iu)
            o[ix] += (alpha * w[ix] if use_w else alpha) * ((1.0 - fu) * flat[p] + fu * flat[p + _ONE])
        return
    gv = 1.0 - fv
    for ix in range(x0, x1):
        u = min(max(au * ix + bu, 0.0), hu)
        iu = int(u)
        fu = u - iu
        p = row + uint64(iu)
        q = p + uint64(cp)
        val = gv * ((1.0 - fu) * flat[p] + fu * flat[p + _ONE]) + fv * ((1.0 - fu) * flat[q] + fu * flat[q + _ONE])
        o[ix] += (alpha * w[ix] if use_w else alpha) * val


@njit(inline="always", cache=True)
def _row_sub4(flat, base, cp, rp, au, bu, bv, o, w, use_w, alpha, x0, x1):
    """``_line_sub4`` when v is constant along the line: row weights and offsets hoisted."""
    hu = cp - 3.0
    bu -= 0.25
    v = min(max(bv - 0.25, 0.0), rp - 3.0)
    iv = int(v)
    fv = v - iv
    v0, v1, v2 = sub4_weights(fv)
    row = uint64(base + iv * cp)
    for ix in range(x0, x1):
        u = min(max(au * ix + bu, 0.0), hu)
        iu = int(u)
        fu = u - iu
        u0, u1, u2 = sub4_weights(fu)
        p = row + uint64(iu)
        q = p + uint64(cp)
        r = q + uint64(cp)
        val = v0 * (u0 * flat[p] + u1 * flat[p + _ONE] + u2 * flat[p + _TWO]) \
            + v1 * (u0 * flat[q] + u1 * flat[q + _ONE] + u2 * flat[q + _TWO]) \
            + v2 * (u0 * flat[r] + u1 * flat[r + _ONE] + u2 * flat[r + _TWO])
        o[ix] += (alpha * w[ix] if use_w else alpha) * val


@njit(inline="always", cache=True)
def _row_u4(flat, base, cp, au, bu, bv, o, w, use_w, alpha, x0, x1):
    """Three u-taps of the 4-sub-point footprint from one row of row-blended images (integral v)."""
    hu = cp - 3.0
    bu -= 0.25
    row = uint64(base + int(bv) * cp)
    for ix in range(x0, x1):
        u = min(max(au * ix + bu, 0.0), hu)
        iu = int(u)
        fu = u - iu
        u0, u1, u2 = sub4_weights(fu)
        p = row + uint64(iu)
        val = u0 * flat[p] + u1 * flat[p + _ONE] + u2 * flat[p + _TWO]
        o[ix] += (alpha * w[ix] if use_w else alpha) * val


@njit(parallel=True, cache=True, nogil=True)
def blend_rows_numba(src, dst, w0, w1, w2):
    """``dst[k, r] = w0*src[k, r-1] + w1*src[k, r] + w2*src[k, r+1]`` (first and last rows 0)."""
    nk, rp, cp = src.shape
    for t in prange(nk * rp):
        k = t // rp
        r = t - k * rp
        d = dst[k, r]
        if r == 0 or r == rp - 1:
            d[:] = 0.0
            continue
        a, b, c = src[k, r - 1], src[k, r], src[k, r + 1]
        for i in range(cp):
            d[i] = w0 * a[i] + w1 * b[i] + w2 * c[i]


@njit(parallel=True, cache=True, nogil=True, fastmath=fastmath())
def back_project_numba(images, border, coeffs, out, alpha, beta, weights, use_weights, positivity, subpoints,
                       u_only=False):
    """``out <- beta*out + alpha * weights * sum_k B_k(images[k])``, then ``max(out, 0)`` if asked.

    images (nk, rows + 2*border, cols + 2*border) float32/64 with a zero border of at least
    ``BORDER`` pixels; coeffs (nk, 2, 4)
    float64; out (nz, ny, nx); weights (nz, ny, nx) (read only when ``use_weights``).
    ``u_only`` (subpoints 4, every v integral and constant along x): ``images`` were row-blended
    with (1/8, 3/4, 1/8) by :func:`blend_rows_numba`, so each voxel reads 3 taps of one row.
    """
    nk, rp, cp = images.shape
    rows = rp - 2 * border
    cols = cp - 2 * border
    nz, ny, nx = out.shape
    flat = images.reshape(-1)
    for line in prange(nz * ny):
        iz = line // ny
        iy = line - iz * ny
        o = out[iz, iy]
        if beta == 0.0:
            o[:] = 0.0
        elif beta != 1.0:
            for ix in range(nx):
                o[ix] = beta * o[ix]
        w = weights[iz, iy] if use_weights else weights[0, 0]
        for k in range(nk):
            au = coeffs[k, 0, 0]
            bu = coeffs[k, 0, 1] * iy + coeffs[k, 0, 2] * iz + coeffs[k, 0, 3]
            av = coeffs[k, 1, 0]
            bv = coeffs[k, 1, 1] * iy + coeffs[k, 1, 2] * iz + coeffs[k, 1, 3]
            # only voxels whose taps can reach the detector: u, v in [-2, size + 1]
            x0, x1 = index_range(au, bu, -2.0, cols + 1.0, nx)
            x0v, x1v = index_range(av, bv, -2.0, rows + 1.0, nx)
            x0 = max(x0, x0v)
            x1 = min(x1, x1v)
            base = k * rp * cp
            if u_only:
                _row_u4(flat, base, cp, au, bu + border, bv + border, o, w, use_weights, alpha, x0, x1)
            elif av == 0.0:
                if subpoints == 1:
                    _row_sub1(flat, base, cp, rp, au, bu + border, bv + border, o, w, use_weights, alpha, x0, x1)
                else:
                    _row_sub4(flat, base, cp, rp, au, bu + border, bv + border, o, w, use_weights, alpha, x0, x1)
            elif subpoints == 1:
                _line_sub1(flat, base, cp, rp, au, bu + border, av, bv + border, o, w, use_weights, alpha, x0, x1)
            else:
                _line_sub4(flat, base, cp, rp, au, bu + border, av, bv + border, o, w, use_weights, alpha, x0, x1)
        if positivity:
            for ix in range(nx):
                if o[ix] < 0.0:
                    o[ix] = 0.0
