"""CPU twin of ``cuda/forward_project.cu``: splatting forward projection without atomics.

The detector is cut into tasks ``(projection k, band of rows)``; one parallel iteration owns
one task's pixels and is the only writer to them. With one band per projection (enough
projections to keep every thread busy) and a zero border of at least ``BORDER`` pixels around
each image, the inner loop clamps coordinates into the padded image and writes without tests
(only border pixels, which are scratch, receive the clamped taps). With several bands, a task
visits only the voxels whose taps can reach its rows (for each volume row ``(iz, iy)`` the range
of ``ix`` is solved from the linear map ``v(ix)``) and tests every tap, so the work stays one
pass over (volume x projections) plus ``O(nz * ny)`` bookkeeping per task.

Every voxel's sub-points (``shifts`` (n, S, 2): detector shifts of the object-space sub-points,
``back_project.subpoint_shifts``) are splatted bilinearly with ``1/S`` of the voxel each. When a
volume line keeps one integral detector row for every sub-point (tilts about y: ``v = iy +
integer``, no sub-point shift along v), each sub-point has 2 taps in that row.
"""

import math

import numpy as np

from numba import njit, prange, uint64

from ._numba_flags import fastmath
from ._projector_taps_numba import (ONE, clamped_cell, floor_tap, index_range, merged_row_taps, row_shifts_zero,
                                   shift_reach, splat_pair, table_taps)


@njit(inline="always", cache=True)
def _splat_checked(img, border, r0, r1, cols, u, v, val, shifts, k):
    """Bilinear splat of every sub-point, taps tested against the task's rows and the detector."""
    for s in range(shifts.shape[1]):
        iu, wu1 = floor_tap(u + shifts[k, s, 0])
        iv, wv1 = floor_tap(v + shifts[k, s, 1])
        for a in range(2):
            j = iv + a
            if j < r0 or j >= r1:
                continue
            wv = (wv1 if a else 1.0 - wv1) * val
            for b in range(2):
                i = iu + b
                if i < 0 or i >= cols:
                    continue
                img[border + j, border + i] += (wu1 if b else 1.0 - wu1) * wv


@njit(inline="always", cache=True)
def _line(flat, cp, rp, au, bu, av, bv, shifts, k, scale, line, x0, x1):
    """Bilinear splats of every sub-point of the voxels ``x0 <= ix < x1`` of one volume line."""
    hu = cp - 2.0
    hv = rp - 2.0
    nsub = shifts.shape[1]
    for ix in range(x0, x1):
        val = line[ix] * scale
        u0 = au * ix + bu
        v0 = av * ix + bv
        for s in range(nsub):
            p, q, fu, fv = clamped_cell(0, cp, u0 + shifts[k, s, 0], v0 + shifts[k, s, 1], hu, hv)
            a = (1.0 - fv) * val
            flat[p] += (1.0 - fu) * a
            flat[p + ONE] += fu * a
            a = fv * val
            flat[q] += (1.0 - fu) * a
            flat[q + ONE] += fu * a


@njit(inline="always", cache=True)
def _row(flat, cp, au, bu, row, shifts, k, scale, line, x0, x1):
    """``_line`` when every sub-point of the line lands on the one padded row ``row`` (2 taps each)."""
    hu = cp - 2.0
    base = uint64(row * cp)
    for ix in range(x0, x1):
        val = line[ix] * scale
        u0 = au * ix + bu
        for s in range(shifts.shape[1]):
            splat_pair(flat, base, u0 + shifts[k, s, 0], hu, val)


@njit(inline="always", cache=True)
def _row4(flat, cp, au, bu, row, d0, d1, d2, d3, scale, line, x0, x1):
    """``_row`` for 4 sub-points, their u-shifts ``d0..d3`` held in registers (8 taps)."""
    hu = cp - 2.0
    base = uint64(row * cp)
    for ix in range(x0, x1):
        val = line[ix] * scale
        u0 = au * ix + bu
        splat_pair(flat, base, u0 + d0, hu, val)
        splat_pair(flat, base, u0 + d1, hu, val)
        splat_pair(flat, base, u0 + d2, hu, val)
        splat_pair(flat, base, u0 + d3, hu, val)


@njit(parallel=True, cache=True, nogil=True, fastmath=fastmath())
def forward_project_numba(volume, coeffs, shifts, out, border, bands, fast):
    """``out[k] = P_k(volume)`` (detector pixel (r, c) at ``out[k, r + border, c + border]``).

    volume (nz, ny, nx); coeffs (nk, 2, 4) float64; shifts (nk, S, 2) float64 (sub-point
    detector shifts); out (nk, rows + 2*border, cols + 2*border); ``bands`` row bands per
    projection (tasks = nk * bands). ``fast`` (allowed when ``bands == 1`` and ``border >= 3``)
    clamps instead of testing taps. The interior is overwritten; the border holds scratch
    afterwards.
    """
    nz, ny, nx = volume.shape
    nk, rp, cp = out.shape
    rows = rp - 2 * border
    cols = cp - 2 * border
    height = (rows + bands - 1) // bands
    scale = 1.0 / shifts.shape[1]
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
        mu, mv = shift_reach(shifts, k)
        same_row = av == 0.0 and row_shifts_zero(shifts, k)
        for iz in range(nz):
            for iy in range(ny):
                bu = coeffs[k, 0, 1] * iy + coeffs[k, 0, 2] * iz + coeffs[k, 0, 3]
                bv = coeffs[k, 1, 1] * iy + coeffs[k, 1, 2] * iz + coeffs[k, 1, 3]
                # a sub-point's taps reach rows floor(v + dv) .. +1: only v in [r0 - 1 - mv, r1 + mv]
                x0, x1 = index_range(av, bv, r0 - 1.0 - mv, r1 + mv, nx)
                x0u, x1u = index_range(au, bu, -1.0 - mu, cols + mu, nx)
                x0 = max(x0, x0u)
                x1 = min(x1, x1u)
                if x0 >= x1:
                    continue
                line = volume[iz, iy]
                if fast:
                    if same_row and bv == math.floor(bv) and shifts.shape[1] == 4:
                        _row4(flat, cp, au, bu + border, int(bv) + border, shifts[k, 0, 0], shifts[k, 1, 0],
                              shifts[k, 2, 0], shifts[k, 3, 0], scale, line, x0, x1)
                    elif same_row and bv == math.floor(bv):
                        _row(flat, cp, au, bu + border, int(bv) + border, shifts, k, scale, line, x0, x1)
                    else:
                        _line(flat, cp, rp, au, bu + border, av, bv + border, shifts, k, scale, line, x0, x1)
                else:
                    for ix in range(x0, x1):
                        val = line[ix]
                        if val != 0.0:
                            _splat_checked(img, border, r0, r1, cols, au * ix + bu, av * ix + bv, val * scale,
                                           shifts, k)


@njit(parallel=True, cache=True, nogil=True, fastmath=fastmath())
def forward_project_tilt_numba(volume, coeffs, shifts, out, border, volume_t, images_t, tap_index, tap_weights,
                               use_table, table_index, table_weights, table_range):
    """:func:`forward_project_numba` for tilts about y (``_projector_taps_numba.tilt_aligned``),
    one task per projection, ``border >= 3``, in transposed layouts so the inner loop is a
    contiguous AXPY along y (SIMD).

    Volume row ``iy`` of projection ``k`` lands on detector row ``iy + c[k,1,3]`` and ``u`` does
    not depend on ``iy``: the merged 3-tap weights of a (projection, z-slice) are computed once
    (:func:`merged_row_taps`) and used for all ``ny`` rows (3 writes per voxel and projection
    instead of 2 per sub-point). The volume is first transposed to ``volume_t`` (nz, nx, ny)
    and every projection is accumulated column-major in ``images_t[k]`` (cols + 2*border,
    rows + 2*border), then transposed into ``out[k]`` (border included, zero). Scratch, owned by
    the caller (no allocation here): ``volume_t`` (nz, nx, ny), ``images_t`` (nk, cp, rp),
    ``tap_index`` (nk, nx) int64, ``tap_weights`` (nk, 3, nx), all of the volume's dtype but
    ``tap_index``. With ``use_table`` the taps are read from the precomputed
    ``_projector_taps_numba.tilt_tap_table`` (``table_*``) instead.
    """
    nz, ny, nx = volume.shape
    nk, rp, cp = out.shape
    rows = rp - 2 * border
    cols = cp - 2 * border
    for iz in prange(nz):
        for iy in range(ny):
            line = volume[iz, iy]
            for ix in range(nx):
                volume_t[iz, ix, iy] = line[ix]
    for k in prange(nk):
        img_t = images_t[k]
        img_t[:, :] = 0.0
        i0 = tap_index[k]
        w0 = tap_weights[k, 0]
        w1 = tap_weights[k, 1]
        w2 = tap_weights[k, 2]
        au = coeffs[k, 0, 0]
        mu, _mv = shift_reach(shifts, k)
        dmin = shifts[k, 0, 0]
        for s in range(1, shifts.shape[1]):
            dmin = min(dmin, shifts[k, s, 0])
        cv = int(coeffs[k, 1, 3])
        y0 = max(0, -cv)
        y1 = min(ny, rows - cv)
        r0 = y0 + cv + border
        r1 = y1 + cv + border
        if y0 < y1:
            for iz in range(nz):
                if use_table:
                    x0, x1, i0, w0, w1, w2 = table_taps(table_range, table_index, table_weights, k, iz)
                    if x0 >= x1:
                        continue
                else:
                    bu = coeffs[k, 0, 2] * iz + coeffs[k, 0, 3]
                    x0, x1 = index_range(au, bu, -1.0 - mu, cols + mu, nx)
                    if x0 >= x1:
                        continue
                    merged_row_taps(au, bu + border, shifts, k, dmin, x0, x1, i0, w0, w1, w2)
                for ix in range(x0, x1):
                    j = i0[ix]
                    a = w0[ix]
                    b = w1[ix]
                    c = w2[ix]
                    # slices, not offset indices: the loop below then vectorises
                    src = volume_t[iz, ix, y0:y1]
                    d0 = img_t[j, r0:r1]
                    d1 = img_t[j + 1, r0:r1]
                    d2 = img_t[j + 2, r0:r1]
                    for t in range(y1 - y0):
                        val = src[t]
                        d0[t] += a * val
                        d1[t] += b * val
                        d2[t] += c * val
        img = out[k]
        for r in range(rp):
            for c in range(cp):
                img[r, c] = img_t[c, r]
