"""CPU twin of ``cuda/kmeans_assign.cu``: fused argmin + per-centroid sums and counts.

:func:`argmin_accumulate_block`: the cross term ``X @ C.T`` comes from BLAS; this loop reads it
once per point, picks the nearest centroid (ties to the lowest index), recomputes the exact
float64 squared distance to that centroid and accumulates the point into the *caller's* partial
sums. :func:`assign_rows_fused` does the same without BLAS for few centroids, forming the cross
term itself while each point is in cache (no gather, one read of each point).

Parallelism (``kmeans_assign.py``): the rows are split into one block per thread; each thread
computes its block's cross term with single-threaded BLAS and runs this ``nogil`` kernel into its
own partial sums ``sums_part[t]`` (no atomics, no shared writes); the caller reduces over ``t``.
This is scikit-learn's design (OpenMP over chunks, one BLAS thread each); multi-threaded BLAS on
small GEMMs plus a second thread pool oversubscribes the cores (measured by the rows "BLAS
threads, mini-batch GEMM" and "Lloyd iteration, BLAS guard" of the bench case ``cluster``:
``python -m fastem.bench.cases.cluster threads``; figures in docs/cluster.md).
"""

import numpy as np
from numba import njit

from ._numba_flags import FASTMATH_SUMS, fastmath


@njit(cache=True, nogil=True, inline="always")
def nearest(cross_row, cnorm):
    """``argmin_k cnorm[k] - 2 cross_row[k]``, ties to the lowest ``k``."""
    best = 0
    bv = cnorm[0] - 2 * cross_row[0]
    for k in range(1, cnorm.shape[0]):
        v = cnorm[k] - 2 * cross_row[k]
        if v < bv:
            bv = v
            best = k
    return best


@njit(cache=True, nogil=True, inline="always", fastmath=fastmath(FASTMATH_SUMS))
def finish_point(x, C, best, i, dist, sums, counts, accumulate, distances):
    """Point ``x`` (d,) assigned to ``best``: ``dist[i] = ||x - C_best||^2`` in float64 (when
    ``distances``) and, when ``accumulate``, ``x`` added to ``sums[best]`` and counted."""
    d = x.shape[0]
    if distances:
        acc = 0.0
        for j in range(d):
            diff = np.float64(x[j]) - np.float64(C[best, j])
            acc += diff * diff
        dist[i] = acc
    if accumulate:
        counts[best] += 1
        s = sums[best]
        for j in range(d):
            s[j] += x[j]


@njit(cache=True, nogil=True, fastmath=fastmath(FASTMATH_SUMS))
def argmin_accumulate_block(X, cross, cnorm, C, labels, dist, sums, counts, accumulate, distances=True):
    """Rows ``i`` of ``X`` (m, d); ``cross`` (m, K) = ``X @ C.T``; ``cnorm`` (K,) = ``||C_k||^2``.

    Writes ``labels[i]`` (int64), ``dist[i] = ||X_i - C_label||^2`` (float64, direct; skipped,
    ``dist`` left untouched, when not ``distances``) and, when ``accumulate``, adds into ``sums``
    (K, d) float64 / ``counts`` (K,) int64. Re-association is allowed (vectorised float64 sums;
    NaN/inf keep IEEE semantics).
    """
    for i in range(X.shape[0]):
        best = nearest(cross[i], cnorm)
        labels[i] = best
        finish_point(X[i], C, best, i, dist, sums, counts, accumulate, distances)


@njit(cache=True, nogil=True)
def gather_rows(X, rows, out):
    """``out[i] = X[rows[i]]`` for the rows of a mini-batch drawn from in-memory data: each thread
    gathers its sub-block into a cache-sized buffer right before assigning it (no batch copy)."""
    d = X.shape[1]
    for i in range(rows.shape[0]):
        r = rows[i]
        for j in range(d):          # an explicit loop: 1.5x faster than the slice copy (measured)
            out[i, j] = X[r, j]


@njit(cache=True, nogil=True)
def gather_offsets(flat, offsets, out):
    """``out[i] = flat[offsets[i] : offsets[i] + d]``: :func:`gather_rows` for a flat vector
    (a memory-mapped file) addressed by each row's element offset."""
    d = out.shape[1]
    for i in range(offsets.shape[0]):
        o = offsets[i]
        src = flat[o:o + d]         # a view: the loop index alone then addresses it (no negative-index
        for j in range(d):          # wraparound test per element on ``o + j``, so the copy vectorises)
            out[i, j] = src[j]


@njit(cache=True, nogil=True, inline="always")
def _offset(by_rows, rows, start, stride, i):
    return (rows[i] if by_rows else start + i) * stride


@njit(cache=True, nogil=True, inline="always")
def _add_row4(row, k, a, b, c, d):
    """``row[k:k + 4] += (a, b, c, d)``: one point's four running sums of a register block."""
    row[k] += a
    row[k + 1] += b
    row[k + 2] += c
    row[k + 3] += d


@njit(cache=True, nogil=True, fastmath=fastmath(FASTMATH_SUMS))
def assign_rows_fused(flat, by_rows, rows, start, stride, C, cnorm, labels, dist, sums, counts, accumulate,
                      distances, cross, tile):
    """Points ``flat[o_i : o_i + d]`` with ``o_i = rows[i] * stride`` (``by_rows``) or
    ``o_i = (start + i) * stride`` (consecutive points), ``i < labels.shape[0]``, assigned in ONE pass over each point (no
    gather, no GEMM): the cross term ``X_i . C_k`` of four points at a time is computed here, tile
    by tile of ``tile`` features (the four points' tiles stay in L1 while the centroids' tiles
    stream past them), four centroids per sweep of a tile (16 running sums fed by 8 loads, a
    register block like a GEMM micro-kernel's; the last ``K mod 4`` centroids one at a time),
    then the argmin, the exact distance and the accumulation
    read the point again from cache. Same outputs as :func:`argmin_accumulate_block` on the
    gathered points (the cross term is summed in another order, so exact near-ties may go to the
    other centroid, as between two BLAS builds).

    ``flat``: the data as one vector (a C-contiguous ``(N, d)`` array raveled, ``stride = d``, or a
    memory-mapped file with ``rows`` as element offsets, ``stride = 1``). ``cross`` (4, K)
    scratch in the data dtype; ``tile`` >= 1 features per tile.
    """
    K, d = C.shape
    m = labels.shape[0]
    zero = flat[0] - flat[0]
    K4 = K - K % 4
    for i0 in range(0, m, 4):
        n = min(4, m - i0)
        # a short group repeats its last point (its results are discarded)
        o0 = _offset(by_rows, rows, start, stride, i0)
        o1 = _offset(by_rows, rows, start, stride, i0 + min(1, n - 1))
        o2 = _offset(by_rows, rows, start, stride, i0 + min(2, n - 1))
        o3 = _offset(by_rows, rows, start, stride, i0 + min(3, n - 1))
        for q in range(4):
            for k in range(K):
                cross[q, k] = zero
        for j0 in range(0, d, tile):
            j1 = min(d, j0 + tile)
            x0 = flat[o0 + j0:o0 + j1]
            x1 = flat[o1 + j0:o1 + j1]
            x2 = flat[o2 + j0:o2 + j1]
            x3 = flat[o3 + j0:o3 + j1]
            # four points x four centroids per sweep of the tile: 8 loads feed 16 multiply-adds
            for k in range(0, K4, 4):
                c0 = C[k, j0:j1]
                c1 = C[k + 1, j0:j1]
                c2 = C[k + 2, j0:j1]
                c3 = C[k + 3, j0:j1]
                a00 = a01 = a02 = a03 = zero
                a10 = a11 = a12 = a13 = zero
                a20 = a21 = a22 = a23 = zero
                a30 = a31 = a32 = a33 = zero
                for j in range(j1 - j0):
                    v0 = x0[j]
                    v1 = x1[j]
                    v2 = x2[j]
                    v3 = x3[j]
                    w0 = c0[j]
                    w1 = c1[j]
                    w2 = c2[j]
                    w3 = c3[j]
                    a00 += v0 * w0
                    a01 += v0 * w1
                    a02 += v0 * w2
                    a03 += v0 * w3
                    a10 += v1 * w0
                    a11 += v1 * w1
                    a12 += v1 * w2
                    a13 += v1 * w3
                    a20 += v2 * w0
                    a21 += v2 * w1
                    a22 += v2 * w2
                    a23 += v2 * w3
                    a30 += v3 * w0
                    a31 += v3 * w1
                    a32 += v3 * w2
                    a33 += v3 * w3
                _add_row4(cross[0], k, a00, a01, a02, a03)
                _add_row4(cross[1], k, a10, a11, a12, a13)
                _add_row4(cross[2], k, a20, a21, a22, a23)
                _add_row4(cross[3], k, a30, a31, a32, a33)
            for k in range(K4, K):      # the last K mod 4 centroids one at a time
                c = C[k, j0:j1]
                a0 = a1 = a2 = a3 = zero
                for j in range(j1 - j0):
                    cj = c[j]
                    a0 += x0[j] * cj
                    a1 += x1[j] * cj
                    a2 += x2[j] * cj
                    a3 += x3[j] * cj
                cross[0, k] += a0
                cross[1, k] += a1
                cross[2, k] += a2
                cross[3, k] += a3
        for q in range(n):
            i = i0 + q
            best = nearest(cross[q], cnorm)
            labels[i] = best
            o = _offset(by_rows, rows, start, stride, i)
            finish_point(flat[o:o + d], C, best, i, dist, sums, counts, accumulate, distances)
