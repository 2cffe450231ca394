"""CPU twin of :func:`fastem.kernels.gather_rows`: rows copied by element offset, in parallel."""

from numba import njit, prange


@njit(cache=True, parallel=True, nogil=True)
def gather_rows_at(flat, offsets, out):
    """``out[i, :] = flat[offsets[i] : offsets[i] + d]`` for every ``i`` (one row per iteration
    of a parallel loop; an explicit inner loop, which Numba turns into a vector copy)."""
    d = out.shape[1]
    for i in prange(offsets.shape[0]):
        o = offsets[i]
        for j in range(d):
            out[i, j] = flat[o + j]
