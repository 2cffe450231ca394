"""CPU twin of ``cuda/forward_project.cu``: splatting forward projection without atomics.

The detector is cut into tasks ``(projection k, band of rows)``; one parallel iteration owns
one task's pixels and is the only writer to them. With one band per projection (enough
projections to keep every thread busy) and a zero border of at least ``BORDER`` pixels around
each image, the inner loop clamps coordinates into the padded image and writes without tests
(only border pixels, which are scratch, receive the clamped taps). With several bands, a task
visits only the voxels whose taps can reach its rows (for each volume row ``(iz, iy)`` the range
of ``ix`` is solved from the linear map ``v(ix)``) and tests every tap, so the work stays one
pass over (volume x projections) plus ``O(nz * ny)`` bookkeeping per task.
"""

import numpy as np
from numba import njit, prange, uint64

from ._numba_flags import fastmath
from ._projector_taps_numba import axis_taps, index_range, sub4_weights

_ONE = uint64(1)
_TWO = uint64(2)


@njit(inline="always", cache=True)
def _splat_checked(img, border, r0, r1, cols, u, v, val, subpoints):
    iu, wu0, wu1, wu2 = axis_taps(u, subpoints)
    iv, wv0, wv1, wv2 = axis_taps(v, subpoints)
    for a in range(3):
        j = iv + a
        if j < r0 or j >= r1:
            continue
        wv = (wv0 if a == 0 else (wv1 if a == 1 else wv2)) * val
        for b in range(3):
            i = iu + b
            if i < 0 or i >= cols:
                continue
            img[border + j, border + i] += (wu0 if b == 0 else (wu1 if b == 1 else wu2)) * wv


@njit(inline="always", cache=True)
def _line_sub1(flat, cp, rp, au, bu, av, bv, line, x0, x1):
    hu = cp - 2.0
    hv = rp - 2.0
    for ix in range(x0, x1):
        val = line[ix]
        u = min(max(au * ix + bu, 0.0), hu)
        v = min(max(av * ix + bv, 0.0), hv)
        iu = int(u)
        iv = int(v)
        fu = u - iu
        fv = v - iv
        p = uint64(iv * cp + iu)
        q = p + uint64(cp)
        a = (1.0 - fv) * val
        flat[p] += (1.0 - fu) * a
        flat[p + _ONE] += fu * a
        a = fv * val
        flat[q] += (1.0 - fu) * a
        flat[q + _ONE] += fu * a


@njit(inline="always", cache=True)
def _line_sub4(flat, cp, rp, au, bu, av, bv, line, x0, x1):
    hu = cp - 3.0
    hv = rp - 3.0
    bu -= 0.25
    bv -= 0.25
    for ix in range(x0, x1):
        val = line[ix]
        u = min(max(au * ix + bu, 0.0), hu)
        v = min(max(av * ix + bv, 0.0), hv)
        iu = int(u)
        iv = int(v)
        fu = u - iu
        fv = v - iv
        u0, u1, u2 = sub4_weights(fu)
        v0, v1, v2 = sub4_weights(fv)
        p = uint64(iv * cp + iu)
        q = p + uint64(cp)
        r = q + uint64(cp)
        a = v0 * val
        flat[p] += u0 * a
        flat[p + _ONE] += u1 * a
        flat[p + _TWO] += u2 * a
        a = v1 * val
        flat[q] += u0 * a
        flat[q + _ONE] += u1 * a
        flat[q + _TWO] += u2 * a
        a = v2 * val
        flat[r] += u0 * a
        flat[r + _ONE] += u1 * a
        flat[r + _TWO] += u2 * a


@njit(inline="always", cache=True)
def _row_sub1(flat, cp, rp, au, bu, bv, line, x0, x1):
    """``_line_sub1`` when v is constant along the line: an integral v splats into one row."""
    hu = cp - 2.0
    v = min(max(bv, 0.0), rp - 2.0)
    iv = int(v)
    fv = v - iv
    row = uint64(iv * cp)
    if fv == 0.0:
        for ix in range(x0, x1):
            val = line[ix]
            u = min(max(au * ix + bu, 0.0), hu)
            iu = int(u)
            fu = u - iu
            p = row + uint64(iu)
            flat[p] += (1.0 - fu) * val
            flat[p + _ONE] += fu * val
        return
    gv = 1.0 - fv
    for ix in range(x0, x1):
        val = line[ix]
        u = min(max(au * ix + bu, 0.0), hu)
        iu = int(u)
        fu = u - iu
        p = row + uint64(iu)
        q = p + uint64(cp)
        a = gv * val
        flat[p] += (1.0 - fu) * a
        flat[p + _ONE] += fu * a
        a = fv * val
        flat[q] += (1.0 - fu) * a
        flat[q + _ONE] += fu * a


@njit(inline="always", cache=True)
def _row_sub4(flat, cp, rp, au, bu, bv, line, x0, x1):
    """``_line_sub4`` when v is constant along the line: row weights and offsets hoisted."""
    hu = cp - 3.0
    bu -= 0.25
    v = min(max(bv - 0.25, 0.0), rp - 3.0)
    iv = int(v)
    fv = v - iv
    v0, v1, v2 = sub4_weights(fv)
    row = uint64(iv * cp)
    for ix in range(x0, x1):
        val = line[ix]
        u = min(max(au * ix + bu, 0.0), hu)
        iu = int(u)
        fu = u - iu
        u0, u1, u2 = sub4_weights(fu)
        p = row + uint64(iu)
        q = p + uint64(cp)
        r = q + uint64(cp)
        a = v0 * val
        flat[p] += u0 * a
        flat[p + _ONE] += u1 * a
        flat[p + _TWO] += u2 * a
        a = v1 * val
        flat[q] += u0 * a
        flat[q + _ONE] += u1 * a
        flat[q + _TWO] += u2 * a
        a = v2 * val
        flat[r] += u0 * a
        flat[r + _ONE] += u1 * a
        flat[r + _TWO] += u2 * a


@njit(inline="always", cache=True)
def _row_u4(flat, cp, au, bu, bv, line, x0, x1):
    """Three u-taps of the 4-sub-point footprint into one row (integral v; rows blended after)."""
    hu = cp - 3.0
    bu -= 0.25
    row = uint64(int(bv) * cp)
    for ix in range(x0, x1):
        val = line[ix]
        u = min(max(au * ix + bu, 0.0), hu)
        iu = int(u)
        fu = u - iu
        u0, u1, u2 = sub4_weights(fu)
        p = row + uint64(iu)
        flat[p] += u0 * val
        flat[p + _ONE] += u1 * val
        flat[p + _TWO] += u2 * val


@njit(inline="always", cache=True)
def _blend_rows_in_place(img, prev, cur):
    """``img[r] <- img[r-1]/8 + 3 img[r]/4 + img[r+1]/8`` for the inner rows (prev, cur: scratch rows)."""
    rp = img.shape[0]
    prev[:] = img[0]
    for r in range(1, rp - 1):
        cur[:] = img[r]
        nxt = img[r + 1]
        dst = img[r]
        for i in range(dst.shape[0]):
            dst[i] = 0.125 * prev[i] + 0.75 * cur[i] + 0.125 * nxt[i]
        prev[:] = cur


@njit(parallel=True, cache=True, nogil=True, fastmath=fastmath())
def forward_project_numba(volume, coeffs, out, border, subpoints, bands, fast, u_only=False):
    """``out[k] = P_k(volume)`` (detector pixel (r, c) at ``out[k, r + border, c + border]``).

    volume (nz, ny, nx); coeffs (nk, 2, 4) float64; out (nk, rows + 2*border, cols + 2*border);
    ``bands`` row bands per projection (tasks = nk * bands). ``fast`` (allowed when ``bands == 1``
    and ``border >= 3``) clamps instead of testing taps. ``u_only`` (with ``fast``, subpoints 4,
    every v integral and constant along x) splats 3 u-taps into one row and applies the
    (1/8, 3/4, 1/8) row blend once per image afterwards. The interior is overwritten; the border
    holds scratch afterwards.
    """
    nz, ny, nx = volume.shape
    nk, rp, cp = out.shape
    rows = rp - 2 * border
    cols = cp - 2 * border
    height = (rows + bands - 1) // bands
    for task in prange(nk * bands):
        k = task // bands
        r0 = (task - k * bands) * height
        r1 = min(rows, r0 + height)
        img = out[k]
        if fast:
            img[:, :] = 0.0
        else:
            img[border + r0:border + r1, border:border + cols] = 0.0
        if r0 >= r1:
            continue
        flat = img.reshape(-1)
        au = coeffs[k, 0, 0]
        av = coeffs[k, 1, 0]
        for iz in range(nz):
            for iy in range(ny):
                bu = coeffs[k, 0, 1] * iy + coeffs[k, 0, 2] * iz + coeffs[k, 0, 3]
                bv = coeffs[k, 1, 1] * iy + coeffs[k, 1, 2] * iz + coeffs[k, 1, 3]
                # taps of v reach rows floor(v - 1/4) .. +2: only v in [r0 - 2, r1 + 1] matters
                x0, x1 = index_range(av, bv, r0 - 2.0, r1 + 1.0, nx)
                x0u, x1u = index_range(au, bu, -2.0, cols + 1.0, nx)
                x0 = max(x0, x0u)
                x1 = min(x1, x1u)
                line = volume[iz, iy]
                if u_only:
                    _row_u4(flat, cp, au, bu + border, bv + border, line, x0, x1)
                elif fast:
                    if av == 0.0:
                        if subpoints == 1:
                            _row_sub1(flat, cp, rp, au, bu + border, bv + border, line, x0, x1)
                        else:
                            _row_sub4(flat, cp, rp, au, bu + border, bv + border, line, x0, x1)
                    elif subpoints == 1:
                        _line_sub1(flat, cp, rp, au, bu + border, av, bv + border, line, x0, x1)
                    else:
                        _line_sub4(flat, cp, rp, au, bu + border, av, bv + border, line, x0, x1)
                else:
                    for ix in range(x0, x1):
                        val = line[ix]
                        if val != 0.0:
                            _splat_checked(img, border, r0, r1, cols, au * ix + bu, av * ix + bv, val, subpoints)
        if u_only:
            _blend_rows_in_place(img, np.empty(cp, img.dtype), np.empty(cp, img.dtype))
