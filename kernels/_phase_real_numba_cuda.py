"""Numba CUDA version of ``cuda/phase_real.cu`` (real GPU or the CUDA simulator).

Module-level ``@cuda.jit`` kernel; 2D grid: x strides over the pixels of one run, y is the run.
"""

from numba import cuda

THREADS = 128


@cuda.jit
def phase_real_kernel(mode, buf, wsup, u, image, write_image, beta, npix, wstride):
    run_off = cuda.blockIdx.y * npix
    w_off = cuda.blockIdx.y * wstride
    start = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    stride = cuda.blockDim.x * cuda.gridDim.x
    for p in range(start, npix, stride):
        i = run_off + p
        ws = wsup[w_off + p]
        v = buf[i]
        if mode == 0:
            re = v.real
            if ws < 0:
                if re > 0:
                    re = 0.0
                ws = -ws
            buf[i] = complex(ws * re, ws * v.imag)
        else:
            x = v.real
            good = ws < 0 and x >= 0
            if write_image:
                image[i] = x if good else 0.0
            if mode == 1:
                un = x if good else 0.0
            elif mode == 2:
                un = x if good else u[i] - beta * x
                u[i] = un
            elif mode == 3:
                h = u[i] - beta * x
                u[i] = x if good else h
                un = h
            else:
                un = u[i] if ws < 0 else x
                u[i] = un
            buf[i] = complex(un, 0.0)


def phase_real_numba_cuda(mode, buf, wsup, u, image, write_image, beta, npix, runs, wstride=0, stream=0,
                          max_blocks: int = 1024):
    """Launch on flat device arrays (CuPy via ``__cuda_array_interface__``, NumPy in the simulator).

    ``wstride``: 0 when ``wsup`` is shared by every run, ``npix`` when it holds one per run."""
    blocks = max(1, min((npix + THREADS - 1) // THREADS, max_blocks))
    phase_real_kernel[(blocks, runs), THREADS, stream](mode, buf, wsup, u, image, write_image, beta, npix, wstride)
