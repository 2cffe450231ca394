"""Numba CUDA version of ``cuda/volume_prior.cu`` (runs on a GPU, or under the CUDA simulator).

One thread per voxel (grid-stride), the per-voxel arithmetic of ``_volume_prior_common`` compiled
as a device function, the prior's value reduced per block and added atomically to ``out[0]``.
"""

from numba import cuda, float64

from . import _volume_prior_common
from ._numba_cuda_reduce import THREADS, block_sum

_voxel = _volume_prior_common.compile_voxel(cuda.jit(device=True))


@cuda.jit
def volume_prior_kernel(x, grad, kind, a, p, q, t, sigma, alpha, beta, out):
    partial = cuda.shared.array(THREADS, dtype=float64)
    tid = cuda.threadIdx.x
    nz, ny, nx = x.shape
    n = nz * ny * nx
    acc = 0.0
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, n, stride):
        c = i % nx
        y = (i // nx) % ny
        z = i // (nx * ny)
        g, v = _voxel(x, z, y, c, nz, ny, nx, kind, a, p, q, t, sigma)
        if beta == 0.0:
            grad[z, y, c] = alpha * g
        else:
            grad[z, y, c] = beta * grad[z, y, c] + alpha * g
        acc += v
    total = block_sum(partial, tid, acc)
    if tid == 0:
        cuda.atomic.add(out, 0, total)


def volume_prior_numba_cuda(x, grad, kind, a, p, q, t, sigma, alpha, beta, out, stream=0, max_blocks: int = 4096):
    """Launch on (nz, ny, nx) device arrays; ``out`` is a one-element float64 array holding 0."""
    blocks = max(1, min((x.size + THREADS - 1) // THREADS, max_blocks))
    volume_prior_kernel[blocks, THREADS, stream](x, grad, kind, a, p, q, t, sigma, alpha, beta, out)
