"""Numba CUDA version of ``cuda/kmeans_assign.cu`` (runs on a GPU, or under the CUDA simulator).

One thread per point: argmin over ``K`` reading the transposed cross term ``crossT`` (K, M)
(coalesced across threads), exact float64 distance to the chosen centroid, then float64 atomic
adds of the point into ``sums`` (K, d) and of 1 into ``counts`` (K,).
"""

from numba import cuda

THREADS = 128


@cuda.jit
def argmin_accumulate_kernel(X, crossT, cnorm, C, labels, dist, sums, counts, accumulate):
    M = X.shape[0]
    d = X.shape[1]
    K = C.shape[0]
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, M, stride):
        best = 0
        bv = cnorm[0] - 2 * crossT[0, i]
        for k in range(1, K):
            v = cnorm[k] - 2 * crossT[k, i]
            if v < bv:
                bv = v
                best = k
        labels[i] = best
        acc = 0.0
        for j in range(d):
            diff = float(X[i, j]) - float(C[best, j])
            acc += diff * diff
        dist[i] = acc
        if accumulate:
            cuda.atomic.add(counts, best, 1)
            for j in range(d):
                cuda.atomic.add(sums, (best, j), float(X[i, j]))


def argmin_accumulate_numba_cuda(X, crossT, cnorm, C, labels, dist, sums, counts, accumulate,
                                 stream=0, max_blocks: int = 4096):
    """Launch on device arrays (CuPy via ``__cuda_array_interface__``, or NumPy in the simulator).

    ``sums`` (K, d) float64 and ``counts`` (K,) int64 are added to (zero them for a fresh sum).
    """
    M = X.shape[0]
    blocks = max(1, min((M + THREADS - 1) // THREADS, max_blocks))
    argmin_accumulate_kernel[blocks, THREADS, stream](X, crossT, cnorm, C, labels, dist, sums, counts,
                                                      1 if accumulate else 0)
