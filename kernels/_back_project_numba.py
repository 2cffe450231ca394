"""CPU twin of ``cuda/back_project.cu``: gather back projection, parallel over volume lines.

Each parallel iteration owns one line ``out[iz, iy, :]`` of the volume (no atomics, no shared
writes): it scales the line by ``beta``, adds ``alpha * weights * sum_k B_k(images[k])`` with
all projections accumulated while the line stays in cache, then applies positivity.

``B_k`` reads, for every voxel, the mean of bilinear reads at its sub-points' detector positions
(``shifts`` (n, S, 2), ``back_project.subpoint_shifts``): the adjoint of the forward splatting.
Images carry a zero border of at least ``BORDER`` pixels, so the inner loops clamp the
coordinates into the padded image instead of testing taps (branch-free). When a volume line
keeps one integral detector row for every sub-point (tilts about y), each sub-point reads 2 taps
of that row.
"""

import math

import numpy as np

from numba import njit, prange, uint64

from ._numba_flags import fastmath
from ._projector_taps_numba import (ONE, clamped_cell, index_range, merged_row_taps, read_pair, row_shifts_zero,
                                   shift_reach, table_taps)


@njit(inline="always", cache=True)
def _line(flat, base, cp, rp, au, bu, av, bv, shifts, k, o, w, use_w, alpha, x0, x1):
    """Mean of bilinear reads at the sub-points of the voxels ``x0 <= ix < x1`` of one line."""
    hu = cp - 2.0
    hv = rp - 2.0
    nsub = shifts.shape[1]
    for ix in range(x0, x1):
        u0 = au * ix + bu
        v0 = av * ix + bv
        val = 0.0
        for s in range(nsub):
            p, q, fu, fv = clamped_cell(base, cp, u0 + shifts[k, s, 0], v0 + shifts[k, s, 1], hu, hv)
            val += (1.0 - fv) * ((1.0 - fu) * flat[p] + fu * flat[p + ONE]) \
                + fv * ((1.0 - fu) * flat[q] + fu * flat[q + ONE])
        o[ix] += (alpha * w[ix] if use_w else alpha) * val


@njit(inline="always", cache=True)
def _row(flat, base, cp, au, bu, row, shifts, k, o, w, use_w, alpha, x0, x1):
    """``_line`` when every sub-point of the line reads the one padded row ``row`` (2 taps each)."""
    hu = cp - 2.0
    start = uint64(base + row * cp)
    for ix in range(x0, x1):
        u0 = au * ix + bu
        val = 0.0
        for s in range(shifts.shape[1]):
            val += read_pair(flat, start, u0 + shifts[k, s, 0], hu)
        o[ix] += (alpha * w[ix] if use_w else alpha) * val


@njit(inline="always", cache=True)
def _row4(flat, base, cp, au, bu, row, d0, d1, d2, d3, o, w, use_w, alpha, x0, x1):
    """``_row`` for 4 sub-points, their u-shifts ``d0..d3`` held in registers (8 taps)."""
    hu = cp - 2.0
    start = uint64(base + row * cp)
    for ix in range(x0, x1):
        u0 = au * ix + bu
        val = (read_pair(flat, start, u0 + d0, hu) + read_pair(flat, start, u0 + d1, hu)
               + read_pair(flat, start, u0 + d2, hu) + read_pair(flat, start, u0 + d3, hu))
        o[ix] += (alpha * w[ix] if use_w else alpha) * val


@njit(parallel=True, cache=True, nogil=True, fastmath=fastmath())
def back_project_numba(images, border, coeffs, shifts, out, alpha, beta, weights, use_weights, positivity):
    """``out <- beta*out + alpha * weights * sum_k B_k(images[k])``, then ``max(out, 0)`` if asked.

    images (nk, rows + 2*border, cols + 2*border) float32/64 with a zero border of at least
    ``BORDER`` pixels; coeffs (nk, 2, 4) float64; shifts (nk, S, 2) float64 (sub-point detector
    shifts); out (nz, ny, nx); weights (nz, ny, nx) (read only when ``use_weights``).
    """
    nk, rp, cp = images.shape
    rows = rp - 2 * border
    cols = cp - 2 * border
    nz, ny, nx = out.shape
    flat = images.reshape(-1)
    a_sub = alpha / shifts.shape[1]
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
            mu, mv = shift_reach(shifts, k)
            # only voxels with a sub-point whose taps can reach the detector
            x0, x1 = index_range(au, bu, -1.0 - mu, cols + mu, nx)
            x0v, x1v = index_range(av, bv, -1.0 - mv, rows + mv, nx)
            x0 = max(x0, x0v)
            x1 = min(x1, x1v)
            if x0 >= x1:
                continue
            base = k * rp * cp
            if av == 0.0 and bv == math.floor(bv) and row_shifts_zero(shifts, k):
                if shifts.shape[1] == 4:
                    _row4(flat, base, cp, au, bu + border, int(bv) + border, shifts[k, 0, 0], shifts[k, 1, 0],
                          shifts[k, 2, 0], shifts[k, 3, 0], o, w, use_weights, a_sub, x0, x1)
                    continue
                _row(flat, base, cp, au, bu + border, int(bv) + border, shifts, k, o, w, use_weights, a_sub, x0, x1)
            else:
                _line(flat, base, cp, rp, au, bu + border, av, bv + border, shifts, k, o, w, use_weights, a_sub,
                      x0, x1)
        if positivity:
            for ix in range(nx):
                if o[ix] < 0.0:
                    o[ix] = 0.0


@njit(parallel=True, cache=True, nogil=True, fastmath=fastmath())
def back_project_tilt_numba(images, border, coeffs, shifts, out, alpha, beta, weights, use_weights, positivity,
                            images_t, volume_t, tap_index, tap_weights, use_table, table_index, table_weights,
                            table_range):
    """:func:`back_project_numba` for tilts about y (``_projector_taps_numba.tilt_aligned``), in
    transposed layouts so the inner loop is contiguous along y (SIMD).

    Every voxel row ``iy`` of projection ``k`` reads detector row ``iy + c[k,1,3]`` and ``u``
    does not depend on ``iy``: the merged 3-tap weights of a (z-slice, projection) are computed
    once (:func:`merged_row_taps`) and applied to all ``ny`` rows (3 reads per voxel and
    projection instead of 2 per sub-point). The images are first transposed to ``images_t``
    (nk, cp, rp); each z-slice sums into ``volume_t[iz]`` (nx, ny), then is written (transposed,
    with ``alpha``, ``beta``, the weights and positivity) into ``out[iz]``. Parallel over
    z-slices. Scratch, owned by the caller (no allocation here): ``images_t`` (nk, cp, rp),
    ``volume_t`` (nz, nx, ny), ``tap_index`` (nz, nx) int64, ``tap_weights`` (nz, 3, nx), all of
    the volume's dtype but ``tap_index``. With ``use_table`` the taps are read from the
    precomputed ``_projector_taps_numba.tilt_tap_table`` (``table_*``) instead.
    """
    nk, rp, cp = images.shape
    rows = rp - 2 * border
    cols = cp - 2 * border
    nz, ny, nx = out.shape
    for k in prange(nk):
        for r in range(rp):
            row = images[k, r]
            for c in range(cp):
                images_t[k, c, r] = row[c]
    for iz in prange(nz):
        acc = volume_t[iz]
        acc[:, :] = 0.0
        for k in range(nk):
            cv = int(coeffs[k, 1, 3])
            y0 = max(0, -cv)
            y1 = min(ny, rows - cv)
            if y0 >= y1:
                continue
            if use_table:
                x0, x1, i0, w0, w1, w2 = table_taps(table_range, table_index, table_weights, k, iz)
                if x0 >= x1:
                    continue
            else:
                au = coeffs[k, 0, 0]
                bu = coeffs[k, 0, 2] * iz + coeffs[k, 0, 3]
                mu, _mv = shift_reach(shifts, k)
                x0, x1 = index_range(au, bu, -1.0 - mu, cols + mu, nx)
                if x0 >= x1:
                    continue
                dmin = shifts[k, 0, 0]
                for s in range(1, shifts.shape[1]):
                    dmin = min(dmin, shifts[k, s, 0])
                i0 = tap_index[iz]
                w0 = tap_weights[iz, 0]
                w1 = tap_weights[iz, 1]
                w2 = tap_weights[iz, 2]
                merged_row_taps(au, bu + border, shifts, k, dmin, x0, x1, i0, w0, w1, w2)
            r0 = y0 + cv + border
            r1 = y1 + cv + border
            img_t = images_t[k]
            for ix in range(x0, x1):
                j = i0[ix]
                a = w0[ix]
                b = w1[ix]
                c = w2[ix]
                # slices, not offset indices: the loop below then vectorises
                s0 = img_t[j, r0:r1]
                s1 = img_t[j + 1, r0:r1]
                s2 = img_t[j + 2, r0:r1]
                d = acc[ix, y0:y1]
                for t in range(y1 - y0):
                    d[t] += a * s0[t] + b * s1[t] + c * s2[t]
        for iy in range(ny):
            o = out[iz, iy]
            for ix in range(nx):
                val = alpha * acc[ix, iy]
                if use_weights:
                    val *= weights[iz, iy, ix]
                if beta != 0.0:
                    val += beta * o[ix]
                if positivity and val < 0.0:
                    val = 0.0
                o[ix] = val
