"""CPU twin of ``cuda/scan_path.cu``: spiral and jittered-grid dwell maps, parallel over the batch.

Semantics: ``fastem.scan._reference.spiral_dwell`` / ``grid_dwell`` (same random streams, same
rasterisation); here every example of the batch is one parallel task (a path is a few ten
thousand deposits, so parallelism within one path would not pay).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from . import _hash_rng as R
from .scan_geometry import MIN_DWELL as _MIN_DWELL

MIN_DWELL = np.float32(_MIN_DWELL)
_SPIRAL = np.uint64(R.SPIRAL)
_GRID_PLACE = np.uint64(R.GRID_PLACE)
_GRID_WALK = np.uint64(R.GRID_WALK)


@njit(inline="always", cache=True)
def _add(img, r, c, v):
    if v != 0.0 and 0 <= r < img.shape[0] and 0 <= c < img.shape[1]:
        img[r, c] += np.float32(v)


@njit(inline="always", cache=True)
def _finish(img):
    for r in range(img.shape[0]):
        for c in range(img.shape[1]):
            v = img[r, c]
            if v > 1.0:
                img[r, c] = 1.0
            elif v < MIN_DWELL:
                img[r, c] = 0.0


@njit(cache=True)
def spiral_params(h, w, spacing, seed, example, rotate, max_offset):
    key = R.stream_key(seed, np.uint64(example), _SPIRAL)
    u0 = R.uniform64(key, np.uint64(0))
    u1 = R.uniform64(key, np.uint64(1))
    u2 = R.uniform64(key, np.uint64(2))
    phi = 2.0 * math.pi * u0 if rotate else 0.0
    cx = 0.5 * (w - 1) + (2.0 * u1 - 1.0) * max_offset
    cy = 0.5 * (h - 1) + (2.0 * u2 - 1.0) * max_offset
    ex = max(cx, w - 1 - cx)
    ey = max(cy, h - 1 - cy)
    r_max = math.sqrt(ex * ex + ey * ey) + 2.0
    k = spacing / (2.0 * math.pi)
    theta_max = r_max / k
    steps = max(10000, int(math.ceil(math.pi * r_max * r_max / spacing)))
    return k, phi, cx, cy, theta_max, steps


@njit(inline="always", cache=True)
def _segment(img, x0, y0, x1, y1, antialias):
    """1-pixel segment (anti-aliased, or the nearer pixel only) over the half-open major-axis range [start, end).

    ``a`` is the major axis, ``b`` the other; ``swap`` says whether ``a`` is y (rows).
    """
    swap = abs(x1 - x0) < abs(y1 - y0)
    a0, b0, a1, b1 = (y0, x0, y1, x1) if swap else (x0, y0, x1, y1)
    da = a1 - a0
    if da == 0.0:
        return
    if da > 0:
        start, stop = int(math.ceil(a0)), int(math.ceil(a1))
    else:
        start, stop = int(math.floor(a1)) + 1, int(math.floor(a0)) + 1
    slope = (b1 - b0) / da
    for A in range(start, stop):
        bv = b0 + (A - a0) * slope
        bf = math.floor(bv)
        f = bv - bf
        B = int(bf)
        if antialias:
            w0 = 1.0 - f
            w1 = f
        else:
            w0 = 1.0 if f < 0.5 else 0.0
            w1 = 1.0 - w0
        if swap:
            _add(img, A, B, w0)
            _add(img, A, B + 1, w1)
        else:
            _add(img, B, A, w0)
            _add(img, B + 1, A, w1)


@njit(parallel=True, cache=True, nogil=True)
def spiral_dwell_numba(out, spacing, seed, example_base, rotate, max_offset, antialias):
    """``out``: (B, H, W) float32, overwritten with each example's spiral dwell map."""
    nb, h, w = out.shape
    for b in prange(nb):
        img = out[b]
        img[:, :] = 0.0
        k, phi, cx, cy, theta_max, steps = spiral_params(h, w, spacing, seed, example_base + b, rotate, max_offset)
        dtheta = theta_max / steps
        xp = cx
        yp = cy
        for i in range(1, steps + 1):
            th = i * dtheta
            x = cx + k * th * math.cos(th + phi)
            y = cy + k * th * math.sin(th + phi)
            _segment(img, xp, yp, x, y, antialias)
            xp = x
            yp = y
        _finish(img)


@njit(cache=True)
def grid_params(h, w, seed, example, random_place):
    n = max(h, w)
    canvas = int(1.2 * n)
    if not random_place:
        d = int(0.1 * n)
        return canvas, d, d, False, False
    key = R.stream_key(seed, np.uint64(example), _GRID_PLACE)
    oy = int(R.uniform64(key, np.uint64(0)) * (canvas - h + 1))
    ox = int(R.uniform64(key, np.uint64(1)) * (canvas - w + 1))
    fy = R.uniform64(key, np.uint64(2)) < 0.5
    fx = R.uniform64(key, np.uint64(3)) < 0.5
    return canvas, oy, ox, fy, fx


@njit(inline="always", cache=True)
def _grid_add(img, r, c, v, fy, fx):
    h, w = img.shape
    if v != 0.0 and 0 <= r < h and 0 <= c < w:
        if fy:
            r = h - 1 - r
        if fx:
            c = w - 1 - c
        img[r, c] += np.float32(v)


@njit(parallel=True, cache=True, nogil=True)
def grid_dwell_numba(out, width, amp, seed, example_base, random_place, antialias):
    """``out``: (B, H, W) float32, overwritten with each example's jittered-grid dwell map."""
    nb, h, w = out.shape
    half = 0.5 * (width - 1.0)
    steps = int(math.ceil(5.0 * amp))
    for b in prange(nb):
        img = out[b]
        img[:, :] = 0.0
        canvas, oy, ox, fy, fx = grid_params(h, w, seed, example_base + b, random_place)
        nch = int(math.ceil(canvas / width))
        key = R.stream_key(seed, np.uint64(example_base + b), _GRID_WALK)
        for j in range(nch):
            centre = j * width + half
            y = 0.0
            mom = 0.0
            for i in range(canvas):
                base = np.uint64((j * canvas + i) * 3)
                ustep = R.uniform64(key, base)
                nrm = R.normal64(key, base + np.uint64(1), base + np.uint64(2))
                y1 = y
                if ustep < 0.5:
                    mom = 0.5 * mom + 0.5 * amp * (1.0 + nrm)
                    y = y + mom
                else:
                    y = amp * (nrm - 1.0)
                if y < -half:
                    y = -half
                    mom = -mom
                elif y > half:
                    y = half
                    mom = -mom
                dy = y - y1
                scale = math.sqrt(1.0 + dy * dy) / steps
                for s in range(1, steps + 1):
                    row = centre + y1 + dy * (s / steps)
                    rf = math.floor(row)
                    f = row - rf
                    ri = int(rf)
                    if antialias:
                        w0 = (1.0 - f) * scale
                        w1 = f * scale
                    else:
                        w0 = 1.0 if f < 0.5 else 0.0
                        w1 = 1.0 - w0
                    _grid_add(img, ri - oy, i - ox, w0, fy, fx)
                    _grid_add(img, ri + 1 - oy, i - ox, w1, fy, fx)
                    _grid_add(img, i - oy, ri - ox, w0, fy, fx)
                    _grid_add(img, i - oy, ri + 1 - ox, w1, fy, fx)
        _finish(img)
