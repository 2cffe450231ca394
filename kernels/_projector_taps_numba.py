"""Helpers shared by the CPU projector kernels (back and forward projection).

A voxel lands on the detector at pixel coordinates ``(u, v)`` (pixel ``j`` is centred on
coordinate ``j``); its sub-points (``back_project.SUBPOINT_OFFSETS``, object space) land at
``(u + du_s, v + dv_s)`` with the per-projection shifts of ``back_project.subpoint_shifts``
(array (n, S, 2)), each carrying ``1/S`` of the voxel, and each is spread bilinearly over the
pixels ``floor(.)`` and ``floor(.) + 1`` along both detector axes.

The fast kernels read (or write) images with a zero border of ``back_project.BORDER`` (3)
pixels, so that every coordinate can be clamped into the padded image instead of testing each
tap: a coordinate is clamped only when it lies more than 3 pixels outside the detector, where
both the clamped and the unclamped taps touch border pixels only.
"""

import math

from numba import njit, prange, uint64

ONE = uint64(1)  # flat-index step (uint64 keeps the index arithmetic unsigned)


@njit(inline="always", cache=True)
def floor_tap(x):
    """Left tap ``floor(x)`` (int) and the right tap's weight ``x - floor(x)`` (no clamping)."""
    fl = math.floor(x)
    return int(fl), x - fl


@njit(inline="always", cache=True)
def clamped_tap(x, hi):
    """:func:`floor_tap` of ``x`` clamped into ``[0, hi]`` (``hi`` = padded size - 2: both taps
    stay inside the padded image; a clamped coordinate only ever touches border pixels)."""
    c = min(max(x, 0.0), hi)
    i = int(c)
    return i, c - i


@njit(inline="always", cache=True)
def clamped_cell(base, cp, u, v, hu, hv):
    """The 2 x 2 pixel cell of ``(u, v)`` in a padded image of ``cp`` columns starting at flat
    index ``base``, clamped (:func:`clamped_tap`): flat indices ``p`` (upper left) and
    ``q = p + cp`` (lower left), and the weights ``fu`` of the right column and ``fv`` of the
    lower row. Forward splatting writes ``(1-fv)((1-fu), fu)`` at ``p`` and ``fv(...)`` at ``q``;
    the back projection reads the same four pixels with the same weights (the adjoint)."""
    iu, fu = clamped_tap(u, hu)
    iv, fv = clamped_tap(v, hv)
    p = uint64(base + iv * cp + iu)
    return p, p + uint64(cp), fu, fv


@njit(inline="always", cache=True)
def splat_pair(flat, start, u, hu, val):
    """Add ``val`` at coordinate ``u`` of the padded row starting at ``start``, spread linearly
    over its two taps (:func:`clamped_tap`)."""
    iu, fu = clamped_tap(u, hu)
    p = start + uint64(iu)
    a = fu * val
    flat[p] += val - a
    flat[p + ONE] += a


@njit(inline="always", cache=True)
def read_pair(flat, start, u, hu):
    """Linear read at coordinate ``u`` of the padded row starting at ``start`` (the adjoint of
    :func:`splat_pair`)."""
    iu, fu = clamped_tap(u, hu)
    p = start + uint64(iu)
    return flat[p] + fu * (flat[p + ONE] - flat[p])


@njit(inline="always", cache=True)
def shift_reach(shifts, k):
    """Largest ``|du_s|`` and ``|dv_s|`` of projection ``k``'s sub-points (pixels)."""
    mu = 0.0
    mv = 0.0
    for s in range(shifts.shape[1]):
        mu = max(mu, abs(shifts[k, s, 0]))
        mv = max(mv, abs(shifts[k, s, 1]))
    return mu, mv


@njit(inline="always", cache=True)
def row_shifts_zero(shifts, k):
    """True when no sub-point of projection ``k`` moves off the voxel's detector row (``dv_s == 0``)."""
    for s in range(shifts.shape[1]):
        if shifts[k, s, 1] != 0.0:
            return False
    return True


@njit(inline="always", cache=True)
def index_range(a, b, lo, hi, n):
    """Half-open range ``[i0, i1)`` of indices ``i`` in ``[0, n)`` with ``lo <= a*i + b <= hi``."""
    if abs(a) < 1e-12:
        if lo <= b <= hi:
            return 0, n
        return 0, 0
    t0 = (lo - b) / a
    t1 = (hi - b) / a
    if t0 > t1:
        t0, t1 = t1, t0
    i0 = max(int(math.ceil(t0)), 0)
    i1 = min(int(math.floor(t1)) + 1, n)
    if i1 < i0:
        i1 = i0
    return i0, i1



@njit(inline="always", cache=True)
def merged_row_taps(au, bu, shifts, k, dmin, x0, x1, i0, w0, w1, w2):
    """Taps of every voxel ``x0 <= ix < x1`` of a line whose sub-points share one detector row.

    Voxel ``ix`` lands at ``u = au*ix + bu``; its sub-points at ``u + du_s`` (``shifts[k, s, 0]``,
    spread ``max - min < 1``, smallest ``dmin``) each spread linearly over 2 pixels, which merge
    into the 3 pixels ``i0[ix] .. i0[ix] + 2`` (``i0 = floor(u + dmin)``) with weights ``w0, w1,
    w2`` (each sub-point weighted ``1/S``). Written into the given arrays (length >= x1).
    """
    nsub = shifts.shape[1]
    scale = 1.0 / nsub
    for ix in range(x0, x1):
        u = au * ix + bu
        base = math.floor(u + dmin)
        a0 = 0.0
        a1 = 0.0
        a2 = 0.0
        for s in range(nsub):
            us = u + shifts[k, s, 0]
            fl = math.floor(us)
            f = us - fl
            if fl > base:  # the sub-point's taps are base + 1, base + 2
                a1 += (1.0 - f) * scale
                a2 += f * scale
            else:
                a0 += (1.0 - f) * scale
                a1 += f * scale
        i0[ix] = int(base)
        w0[ix] = a0
        w1[ix] = a1
        w2[ix] = a2


def tilt_aligned(coeffs, shifts) -> bool:
    """True when every projection maps volume row ``iy`` onto one integral detector row and ``u``
    does not depend on ``iy`` (tilts about y, no row shifts), with sub-point u-shifts spread < 1:
    the CPU kernels then compute each (projection, z-slice)'s taps once for all rows."""
    import numpy as np

    c = np.asarray(coeffs)
    d = np.asarray(shifts)
    return bool(np.all(c[:, 0, 1] == 0) and np.all(c[:, 1, 0] == 0) and np.all(c[:, 1, 2] == 0)
                and np.all(c[:, 1, 1] == 1) and np.all(c[:, 1, 3] == np.round(c[:, 1, 3]))
                and np.all(d[:, :, 1] == 0) and np.all(d[:, :, 0].max(axis=1) - d[:, :, 0].min(axis=1) < 1.0))


@njit(parallel=True, cache=True, nogil=True)
def tilt_tap_table(coeffs, shifts, border, cols, tap_index, tap_weights, tap_range):
    """The merged taps (:func:`merged_row_taps`) of every (projection k, z-slice iz) of a tilt
    series, once, for the tilt kernels to read instead of recomputing them on every call:
    ``tap_index`` (nk, nz, nx) int64, ``tap_weights`` (nk, nz, 3, nx), ``tap_range`` (nk, nz, 2)
    int64 (the voxels ``x0 <= ix < x1`` whose taps reach the detector; empty: ``x0 >= x1``)."""
    nk, nz, nx = tap_index.shape
    for task in prange(nk * nz):
        k = task // nz
        iz = task - k * nz
        au = coeffs[k, 0, 0]
        mu, _mv = shift_reach(shifts, k)
        dmin = shifts[k, 0, 0]
        for s in range(1, shifts.shape[1]):
            dmin = min(dmin, shifts[k, s, 0])
        bu = coeffs[k, 0, 2] * iz + coeffs[k, 0, 3]
        x0, x1 = index_range(au, bu, -1.0 - mu, cols + mu, nx)
        tap_range[k, iz, 0] = x0
        tap_range[k, iz, 1] = x1
        if x0 < x1:
            merged_row_taps(au, bu + border, shifts, k, dmin, x0, x1, tap_index[k, iz], tap_weights[k, iz, 0],
                            tap_weights[k, iz, 1], tap_weights[k, iz, 2])


@njit(inline="always", cache=True)
def table_taps(table_range, table_index, table_weights, k, iz):
    """``(x0, x1, i0, w0, w1, w2)`` of (projection k, z-slice iz) from a :func:`tilt_tap_table`."""
    return (table_range[k, iz, 0], table_range[k, iz, 1], table_index[k, iz], table_weights[k, iz, 0],
            table_weights[k, iz, 1], table_weights[k, iz, 2])
