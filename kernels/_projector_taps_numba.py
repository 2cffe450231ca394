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

from numba import njit


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

