"""Block reductions shared by the Numba CUDA kernels (one copy instead of one per kernel).

Every kernel here launches blocks of ``THREADS`` (a power of two) threads and reduces into a
``cuda.shared.array(THREADS, float64)``; the tree reduction halves the active threads each step.
"""

from __future__ import annotations

from numba import cuda

THREADS = 128   #: threads per block of the reducing kernels (a power of two)


@cuda.jit(device=True)
def block_sum(partial, tid, value):
    """Sum of ``value`` over the block's threads; every thread gets the total.

    ``partial``: the block's shared float64 scratch of ``blockDim.x`` (a power of two) entries;
    ``tid``: ``cuda.threadIdx.x``. All threads of the block must call it (it synchronises).
    """
    partial[tid] = value
    cuda.syncthreads()
    step = partial.shape[0] // 2
    while step > 0:
        if tid < step:
            partial[tid] += partial[tid + step]
        cuda.syncthreads()
        step //= 2
    total = partial[0]
    cuda.syncthreads()
    return total
