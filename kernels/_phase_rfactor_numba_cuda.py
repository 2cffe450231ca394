"""Numba CUDA versions of ``cuda/phase_rfactor.cu`` (real GPU or the CUDA simulator).

Module-level ``@cuda.jit`` kernels; 2D grid: x strides over the elements of one run, y is the run.
"""

import math

from numba import cuda, float64

from ._numba_cuda_reduce import THREADS, block_sum


@cuda.jit
def hermitian_half_kernel(z, half, na, nb, nc, half_scale):
    nh = nc // 2 + 1
    nhalf = na * nb * nh
    npix = na * nb * nc
    r = cuda.blockIdx.y
    start = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    stride = cuda.blockDim.x * cuda.gridDim.x
    for q in range(start, nhalf, stride):
        c = q % nh
        ab = q // nh
        a = ab // nb
        b = ab - a * nb
        ma = (na - a) % na
        mb = (nb - b) % nb
        mc = (nc - c) % nc
        v = z[r * npix + (a * nb + b) * nc + c]
        m = z[r * npix + (ma * nb + mb) * nc + mc]
        half[r * nhalf + q] = complex(half_scale * (v.real + m.real), half_scale * (v.imag - m.imag))


@cuda.jit
def rfactor_half_kernel(spec, bh, bm, out, npix):
    partial = cuda.shared.array(THREADS, dtype=float64)
    tid = cuda.threadIdx.x
    off = cuda.blockIdx.y * npix
    start = cuda.blockIdx.x * cuda.blockDim.x + tid
    stride = cuda.blockDim.x * cuda.gridDim.x
    acc = 0.0
    for p in range(start, npix, stride):
        v = spec[off + p]
        mag = math.sqrt(float(v.real) * float(v.real) + float(v.imag) * float(v.imag))
        b1 = bh[p]
        b2 = bm[p]
        if b1 >= 0:
            acc += abs(mag - b1)
        if b2 >= 0:
            acc += abs(mag - b2)
    total = block_sum(partial, tid, acc)
    if tid == 0:
        cuda.atomic.add(out, cuda.blockIdx.y, total)


def hermitian_half_numba_cuda(z, half, runs, na, nb, nc, half_scale, stream=0, max_blocks: int = 1024):
    nhalf = na * nb * (nc // 2 + 1)
    blocks = max(1, min((nhalf + THREADS - 1) // THREADS, max_blocks))
    hermitian_half_kernel[(blocks, runs), THREADS, stream](z, half, na, nb, nc, half_scale)


def rfactor_half_numba_cuda(spec, bh, bm, out, npix, runs, stream=0, max_blocks: int = 256):
    """``out`` (float64, one entry per run) must hold 0 before the call."""
    blocks = max(1, min((npix + THREADS - 1) // THREADS, max_blocks))
    rfactor_half_kernel[(blocks, runs), THREADS, stream](spec, bh, bm, out, npix)
