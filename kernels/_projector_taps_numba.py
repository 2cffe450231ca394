"""Interpolation weights shared by the CPU projector kernels (back and forward projection).

A voxel lands on the detector at pixel coordinates ``(u, v)`` (pixel ``j`` is centred on
coordinate ``j``). Along one detector axis the voxel spreads over at most three consecutive
pixels ``i0, i0 + 1, i0 + 2`` with weights ``w0, w1, w2`` (sum 1):

``subpoints == 1`` (bilinear)
    one point at ``s``: ``i0 = floor(s)``, ``w0 = 1 - f``, ``w1 = f``, ``w2 = 0``.
``subpoints == 4`` (the ``linear`` projector's 2 x 2 sub-points)
    two points at ``s -+ 1/4`` along this axis, each weighted 1/2 and spread bilinearly; their
    taps merged into three (``t = s - 1/4``, ``i0 = floor(t)``, ``f = t - i0``):
    ``w0 = (1 - f + max(1/2 - f, 0)) / 2``, ``w2 = max(f - 1/2, 0) / 2``, ``w1 = 1 - w0 - w2``.
    Along both axes the product gives the four sub-points at ``(u -+ 1/4, v -+ 1/4)``, each
    with weight 1/4.

The fast kernels read (or write) images with a zero border of ``back_project.BORDER`` (3)
pixels, so that every coordinate can be clamped into the padded image instead of testing each
tap: a clamped coordinate only ever touches border pixels, and so does the unclamped one it
replaces.
"""

import math

from numba import njit


@njit(inline="always", cache=True)
def axis_taps(s, subpoints):
    """``(i0, w0, w1, w2)`` for the detector coordinate ``s`` (float64, any sign)."""
    if subpoints == 1:
        fl = math.floor(s)
        f = s - fl
        return int(fl), 1.0 - f, f, 0.0
    t = s - 0.25
    fl = math.floor(t)
    w0, w1, w2 = sub4_weights(t - fl)
    return int(fl), w0, w1, w2


@njit(inline="always", cache=True)
def sub4_weights(f):
    """``(w0, w1, w2)`` of the 4-sub-point footprint for the fraction ``f = t - floor(t)``."""
    w0 = 0.5 * (1.0 - f + max(0.5 - f, 0.0))
    w2 = 0.5 * max(f - 0.5, 0.0)
    return w0, 1.0 - w0 - w2, w2


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
