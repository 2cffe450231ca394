"""Numba CUDA version of ``cuda/axpy_norm.cu`` (runs on a GPU, or under the CUDA simulator).

Kernels are module-level ``@cuda.jit`` functions (the simulator swaps the module-global ``cuda``
for its own; closures would defeat that). Importing this module needs ``numba.cuda`` only.
"""

from numba import cuda, float64

from ._numba_cuda_reduce import THREADS, block_sum


@cuda.jit
def axpy_norm_kernel(a, x, y, out):
    partial = cuda.shared.array(THREADS, dtype=float64)
    tid = cuda.threadIdx.x
    acc = 0.0
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, x.size, stride):
        v = a * x[i] + y[i]
        y[i] = v
        acc += v.real * v.real + v.imag * v.imag
    total = block_sum(partial, tid, acc)
    if tid == 0:
        cuda.atomic.add(out, 0, total)


def axpy_norm_numba_cuda(a, x, y, out, stream=0, max_blocks: int = 1024):
    """Launch on flat device arrays (CuPy via ``__cuda_array_interface__``, or NumPy in the simulator).

    ``out`` is a one-element float64 array that must hold 0 before the call.
    """
    blocks = max(1, min((x.size + THREADS - 1) // THREADS, max_blocks))
    axpy_norm_kernel[blocks, THREADS, stream](a, x, y, out)
