"""CPU twin of ``cuda/partial_scan.cu``: batched partial-scan formation.

Stage A (:func:`minmax_numba`, :func:`normalise_numba`, :func:`blur_numba`): non-finite
cleanup, dihedral augmentation, [-1, 1] normalisation, 5x5 Gaussian (sigma 2.5 px, reflect).
Stage B (:func:`column_pass_numba`, :func:`row_pass_numba`): the noise model on sampled pixels
and the exact Euclidean nearest sampled pixel by the separable algorithm of Felzenszwalb &
Huttenlocher ("Distance transforms of sampled functions", Theory of Computing 8, 2012):

1. column pass: for each pixel the nearest sampled row in its column (two sweeps; the upper
   one wins a tie), parallel over (image, block of 64 columns) so that every sweep reads
   contiguous rows;
2. row pass: for each row the lower envelope of the parabolas ``f(q) + (c - q)^2`` over
   columns ``q`` (``f`` the squared column-pass distance), in exact integer arithmetic
   (intersections kept as fractions), parallel over rows. A tie goes to the smaller column.

Together: the nearest sampled pixel, ties to the smaller column, then the smaller row. Every
loop is parallel over output rows/columns and the batch; no atomics; per-task scratch is
allocated once per chunk (``nchunk``, a few per thread), not per row.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from . import _hash_rng as R

RADIUS = 2
_NOISE = np.uint64(R.NOISE)
COL_BLOCK = 64


@njit(inline="always", cache=True)
def _reflect(i, n):
    """scipy.ndimage ``reflect`` (half-sample symmetric) index for any ``i`` and ``n >= 1``."""
    period = 2 * n
    i = i % period
    if i < 0:
        i += period
    return period - 1 - i if i >= n else i


@njit(parallel=True, cache=True, nogil=True)
def minmax_numba(images, minmax):
    """``minmax[b] = (min, max)`` of image ``b`` with non-finite values read as 0 (float64)."""
    nb, h, w = images.shape
    rows = np.empty((nb * h, 2))
    for t in prange(nb * h):
        b = t // h
        r = t - b * h
        lo = np.inf
        hi = -np.inf
        for c in range(w):
            v = np.float64(images[b, r, c])
            if not math.isfinite(v):
                v = 0.0
            lo = min(lo, v)
            hi = max(hi, v)
        rows[t, 0] = lo
        rows[t, 1] = hi
    for b in prange(nb):
        lo = np.inf
        hi = -np.inf
        for r in range(h):
            lo = min(lo, rows[b * h + r, 0])
            hi = max(hi, rows[b * h + r, 1])
        minmax[b, 0] = lo
        minmax[b, 1] = hi


@njit(parallel=True, cache=True, nogil=True)
def normalise_numba(images, minmax, out, seed, example_base, augment, near_constant):
    """``out[b] = 2 (x - min) / (max - min) - 1`` of the (augmented, cleaned) image; 0 if near-constant."""
    nb, ho, wo = out.shape
    for t in prange(nb * ho):
        b = t // ho
        r = t - b * ho
        orow = out[b, r]
        lo = minmax[b, 0]
        span = minmax[b, 1] - lo
        tr = R.dihedral_index(seed, np.uint64(example_base + b)) if augment else 0
        if span < near_constant:
            orow[:] = 0.0
            continue
        scale = 2.0 / span
        if tr == 0:   # contiguous rows: a vectorisable loop
            irow = images[b, r]
            for c in range(wo):
                v = np.float64(irow[c])
                v = v if math.isfinite(v) else 0.0
                orow[c] = np.float32((v - lo) * scale - 1.0)
            continue
        a = ho - 1 - r if (tr & 1) else r        # the source line of this output row
        flip = (tr & 2) != 0
        if tr & 4:                                # transposed: the source column a
            src = images[b, :, a]
        else:
            src = images[b, a, :]
        for c in range(wo):
            v = np.float64(src[wo - 1 - c] if flip else src[c])
            v = v if math.isfinite(v) else 0.0
            orow[c] = np.float32((v - lo) * scale - 1.0)


@njit(parallel=True, cache=True, nogil=True)
def blur_numba(img, weights, out, nchunk):
    """Separable 5-tap blur with reflect padding: vertical taps into a row buffer, then horizontal."""
    nb, h, w = img.shape
    ntask = nb * h
    nchunk = max(1, min(ntask, nchunk))
    for k in prange(nchunk):
        tmp = np.empty(w, np.float32)
        for t in range(k * ntask // nchunk, (k + 1) * ntask // nchunk):
            b = t // h
            r = t - b * h
            r0 = _reflect(r - 2, h)
            r1 = _reflect(r - 1, h)
            r3 = _reflect(r + 1, h)
            r4 = _reflect(r + 2, h)
            for c in range(w):
                tmp[c] = (weights[0] * img[b, r0, c] + weights[1] * img[b, r1, c] + weights[2] * img[b, r, c]
                          + weights[3] * img[b, r3, c] + weights[4] * img[b, r4, c])
            orow = out[b, r]
            for c in range(2, w - 2):   # interior: vectorisable
                orow[c] = (weights[0] * tmp[c - 2] + weights[1] * tmp[c - 1] + weights[2] * tmp[c]
                           + weights[3] * tmp[c + 1] + weights[4] * tmp[c + 2])
            for c in (0, 1, w - 2, w - 1):   # the reflected edges
                if 0 <= c < w and (c < 2 or c >= w - 2):
                    acc = np.float32(0.0)
                    for j in range(5):
                        acc += weights[j] * tmp[_reflect(c + j - 2, w)]
                    orow[c] = acc


@njit(parallel=True, cache=True, nogil=True)
def column_pass_numba(path, near_row, img, blur, partial, seed, example_base, with_det):
    """Nearest sampled row in each pixel's column (-1: none); the detected signal on sampled pixels.

    ``partial[b, r, c] = m (m img + 2 (1 - m) U blur)`` where ``m = path[b, r, c] > 0`` and ``U``
    the counter-based uniform of pixel ``r * W + c`` (only when ``with_det``).
    """
    nb, h, w = path.shape
    if with_det:
        for t in prange(nb * h):
            b = t // h
            r = t - b * h
            key = R.stream_key(seed, np.uint64(example_base + b), _NOISE)
            prow = path[b, r]
            for c in range(w):
                m = prow[c]
                if m > 0:
                    u = R.uniform32(key, np.uint64(r * w + c))
                    partial[b, r, c] = m * (m * img[b, r, c] + np.float32(2.0) * (np.float32(1.0) - m) * u * blur[b, r, c])
    nblk = (w + COL_BLOCK - 1) // COL_BLOCK
    for t in prange(nb * nblk):
        b = t // nblk
        c0 = (t - b * nblk) * COL_BLOCK
        n = min(COL_BLOCK, w - c0)
        p = path[b]
        nr = near_row[b]
        last = np.full(COL_BLOCK, -1, np.int32)
        for r in range(h):                      # from above: the last sampled row so far
            prow = p[r, c0:c0 + n]
            nrow = nr[r, c0:c0 + n]
            for k in range(n):
                last[k] = np.int32(r) if prow[k] > 0 else last[k]
                nrow[k] = last[k]
        last[:] = -1
        for r in range(h - 1, -1, -1):          # from below; the upper one wins a tie
            prow = p[r, c0:c0 + n]
            nrow = nr[r, c0:c0 + n]
            for k in range(n):
                last[k] = np.int32(r) if prow[k] > 0 else last[k]
                up = nrow[k]
                down = last[k]
                take_down = (up < 0) or (down >= 0 and down - r < r - up)
                nrow[k] = down if take_down else up


@njit(parallel=True, cache=True, nogil=True)
def row_pass_numba(path, near_row, partial, nearest, with_values, nchunk):
    """Exact nearest sampled pixel per row from the column pass (lower envelope of parabolas).

    ``nearest[b, r, c]`` = flat index ``row * W + col`` of the nearest sampled pixel (-1: none);
    with ``with_values`` unsampled pixels of ``partial`` get the value there.
    """
    nb, h, w = path.shape
    ntask = nb * h
    nchunk = max(1, min(ntask, nchunk))
    for k in prange(nchunk):
        v = np.empty(w, np.int64)      # columns of the parabolas on the envelope
        zn = np.empty(w, np.int64)     # left boundary of parabola k: zn[k] / zd[k]
        zd = np.empty(w, np.int64)
        F = np.empty(w, np.int64)      # f(q) + q^2
        for t in range(k * ntask // nchunk, (k + 1) * ntask // nchunk):
            b = t // h
            r = t - b * h
            nrow = near_row[b, r]
            top = -1
            for q in range(w):
                nr = nrow[q]
                if nr < 0:
                    continue
                fq = np.int64(r - nr) * (r - nr) + np.int64(q) * q
                F[q] = fq
                if top < 0:
                    top = 0
                    v[0] = q
                    continue
                while True:
                    vk = v[top]
                    num = fq - F[vk]
                    den = 2 * (q - vk)
                    if top > 0 and num * zd[top] <= zn[top] * den:
                        top -= 1
                    else:
                        break
                top += 1
                v[top] = q
                zn[top] = num
                zd[top] = den
            orow = nearest[b, r]
            if top < 0:
                orow[:] = -1
                if with_values:
                    partial[b, r, :] = 0.0
                continue
            j = 0
            for c in range(w):
                while j < top and zn[j + 1] < c * zd[j + 1]:
                    j += 1
                q = v[j]
                orow[c] = nrow[q] * w + q
            if with_values:
                prow = path[b, r]
                out = partial[b]
                for c in range(w):
                    if not prow[c] > 0:
                        k = orow[c]
                        out[r, c] = out[k // w, k - (k // w) * w]
