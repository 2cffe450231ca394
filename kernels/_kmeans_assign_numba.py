"""CPU twin of ``cuda/kmeans_assign.cu``: fused argmin + per-centroid sums and counts.

The cross term ``X @ C.T`` comes from BLAS (NumPy); this loop reads it once per point, picks the
nearest centroid (ties to the lowest index), recomputes the exact float64 squared distance to
that centroid and accumulates the point into *per-thread* partial sums (``sums_part[t]``), so
no two threads ever write the same memory (no atomics); the caller reduces over ``t``.
"""

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True, nogil=True)
def argmin_accumulate_numba(X, cross, cnorm, C, labels, dist, sums_part, counts_part, accumulate):
    """Rows ``i`` of ``X`` (M, d); ``cross`` (M, K) = ``X @ C.T``; ``cnorm`` (K,) = ``||C_k||^2``.

    Writes ``labels[i]`` (int64), ``dist[i] = ||X_i - C_label||^2`` (float64, direct) and, when
    ``accumulate``, adds into ``sums_part[t, k, :]`` / ``counts_part[t, k]`` for thread slice ``t``.
    """
    M = X.shape[0]
    d = X.shape[1]
    K = C.shape[0]
    T = sums_part.shape[0]
    step = (M + T - 1) // T
    for t in prange(T):
        lo = t * step
        hi = min(M, lo + step)
        for i in range(lo, hi):
            best = 0
            bv = cnorm[0] - 2 * cross[i, 0]
            for k in range(1, K):
                v = cnorm[k] - 2 * cross[i, k]
                if v < bv:
                    bv = v
                    best = k
            labels[i] = best
            acc = 0.0
            for j in range(d):
                diff = np.float64(X[i, j]) - np.float64(C[best, j])
                acc += diff * diff
            dist[i] = acc
            if accumulate:
                counts_part[t, best] += 1
                for j in range(d):
                    sums_part[t, best, j] += X[i, j]
