"""Numba CUDA version of ``cuda/phase_fourier.cu`` (real GPU or the CUDA simulator).

Module-level ``@cuda.jit`` kernel (the simulator swaps the module-global ``cuda``). Launch: a 2D
grid, x strides over the pixels of one run, y is the run index.
"""

import math

from numba import cuda

THREADS = 128


@cuda.jit
def phase_fourier_kernel(mode, z, buf, bk, filt, use_filter, t, s, c_keep, c_mix, scale, tiny, npix):
    run_off = cuda.blockIdx.y * npix
    start = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    stride = cuda.blockDim.x * cuda.gridDim.x
    for p in range(start, npix, stride):
        i = run_off + p
        b = bk[p]
        u = buf[i]
        if mode == 0:
            if use_filter:
                u = u * filt[p]
            zv = z[i]
            w = zv - t * u
            zn = w
            if b >= 0:
                m2 = w.real * w.real + w.imag * w.imag
                if m2 > tiny:
                    zn = w * (c_keep * b / math.sqrt(m2) + c_mix)
                else:
                    zn = w * c_mix + c_keep * b
            z[i] = zn
            buf[i] = (u + s * (2 * zn - zv)) * scale
        elif mode == 1:
            if b >= 0:
                m2 = u.real * u.real + u.imag * u.imag
                if m2 > tiny:
                    u = u * (b * scale / math.sqrt(m2))
                else:
                    u = u * 0 + b * scale
            else:
                u = u * scale
            buf[i] = u
        else:
            buf[i] = u * (filt[p] * scale)


def phase_fourier_numba_cuda(mode, z, buf, bk, filt, use_filter, t, s, c_keep, c_mix, scale, tiny, npix, runs,
                             stream=0, max_blocks: int = 1024):
    """Launch on flat device arrays (CuPy via ``__cuda_array_interface__``, NumPy in the simulator)."""
    blocks = max(1, min((npix + THREADS - 1) // THREADS, max_blocks))
    phase_fourier_kernel[(blocks, runs), THREADS, stream](mode, z, buf, bk, filt, use_filter, t, s, c_keep, c_mix,
                                                          scale, tiny, npix)
