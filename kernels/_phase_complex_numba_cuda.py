"""Numba CUDA version of ``cuda/phase_complex.cu`` (real GPU or the CUDA simulator).

Module-level ``@cuda.jit`` kernel; 2D grid: x strides over the pixels of one run, y is the run.
``buf``, ``u`` and ``image`` are flat complex arrays, ``wsup`` flat real.
"""

import numpy as np
from numba import cuda

THREADS = 128


@cuda.jit
def phase_complex_kernel(mode, buf, wsup, u, image, write_image, beta, npix, wstride, constrained, cc, sc, ch, sh):
    run_off = cuda.blockIdx.y * npix
    w_off = cuda.blockIdx.y * wstride
    start = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    stride = cuda.blockDim.x * cuda.gridDim.x
    for p in range(start, npix, stride):
        i = run_off + p
        ws = wsup[w_off + p]
        inside = ws < 0
        v = buf[i]
        re = v.real
        im = v.imag
        # P(v): rotate by the sector centre, w = v e^{-ic} = a + i b
        a = re * cc + im * sc
        b = im * cc - re * sc
        ab = abs(b)
        in_cone = constrained == 0 or (a * sh - ab * ch >= 0 and a >= 0)
        if not inside:
            pr = 0.0
            pi = 0.0
        elif in_cone:
            pr = re
            pi = im
        else:
            t = a * ch + ab * sh
            if t < 0:
                t = 0.0
            tch = t * ch
            tsh = t * sh
            if b < 0:
                tsh = -tsh
            pr = tch * cc - tsh * sc
            pi = tch * sc + tsh * cc
        good = inside and in_cone
        if mode == 0:
            w = -ws if inside else ws
            buf[i] = complex(w * (re - pr), w * (im - pi))
        elif mode == 5:
            w = -ws if inside else ws
            if good:
                w = ws * 0
            buf[i] = complex(w * re, w * im)
        else:
            if write_image:
                image[i] = complex(pr, pi)
            if mode == 1:
                un = complex(pr, pi)
            elif mode == 2:
                un = v if good else u[i] - beta * v
                u[i] = un
            elif mode == 3:
                h = u[i] - beta * v
                u[i] = v if good else h
                un = h
            else:
                un = u[i] if inside else v
                u[i] = un
            buf[i] = un


def phase_complex_numba_cuda(mode, buf, wsup, u, image, write_image, beta, npix, runs, wstride, constrained, cc, sc,
                             ch, sh, stream=0, max_blocks: int = 1024):
    """Launch on flat device arrays (CuPy via ``__cuda_array_interface__``, NumPy in the simulator).

    ``wstride``: 0 when ``wsup`` is shared by every run, ``npix`` when it holds one per run;
    ``constrained`` 0/1 and ``(cc, sc)``, ``(ch, sh)`` the cosine and sine of the sector centre and
    half width (see ``phase_complex._range_constants``).

    The binder passes ``buf`` itself for an unused ``u`` / ``image``. On a GPU that alias is never
    touched; the simulator, though, copies every NumPy argument in and back out separately, so the
    untouched alias would be written back over the result: there it gets a one-element stand-in.
    """
    if isinstance(buf, np.ndarray):
        u, image = (np.zeros(1, buf.dtype) if np.may_share_memory(a, buf) else a for a in (u, image))
    blocks = max(1, min((npix + THREADS - 1) // THREADS, max_blocks))
    phase_complex_kernel[(blocks, runs), THREADS, stream](mode, buf, wsup, u, image, write_image, beta, npix, wstride,
                                                          constrained, cc, sc, ch, sh)
