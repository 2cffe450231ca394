"""Numba CUDA version of ``sample_slices_c64`` in ``cuda/central_slice.cu``."""

import math

from numba import cuda

BLOCK = (32, 8)


@cuda.jit(device=True, inline=True)
def _fetch(spec, kz, ky, kx, pz, py, px):
    if kx >= px - px // 2:
        kx -= px
    if kx < 0:
        return spec[(-kz) % pz, (-ky) % py, -kx].conjugate()
    return spec[kz % pz, ky % py, kx]


@cuda.jit
def sample_slices_kernel(spec, frames, out, pz, py, px):
    nk, qr, qh = out.shape
    c, r, k = cuda.grid(3)
    if c >= qh or r >= qr or k >= nk:
        return
    kv = r - qr if r >= qr - qr // 2 else r
    x = c * frames[k, 0, 0] + kv * frames[k, 1, 0]
    y = c * frames[k, 0, 1] + kv * frames[k, 1, 1]
    z = c * frames[k, 0, 2] + kv * frames[k, 1, 2]
    acc = 0j
    nyquist = (qr % 2 == 0 and r == qr // 2) or c == qh - 1
    if not nyquist and abs(x) < 0.5 * px and abs(y) < 0.5 * py and abs(z) < 0.5 * pz:
        fx = math.floor(x)
        fy = math.floor(y)
        fz = math.floor(z)
        wx = x - fx
        wy = y - fy
        wz = z - fz
        ix = int(fx)
        iy = int(fy)
        iz = int(fz)
        for dz in range(2):
            for dy in range(2):
                for dx in range(2):
                    w = (wz if dz else 1.0 - wz) * (wy if dy else 1.0 - wy) * (wx if dx else 1.0 - wx)
                    acc += w * _fetch(spec, iz + dz, iy + dy, ix + dx, pz, py, px)
    out[k, r, c] = acc


def sample_slices_numba_cuda(spec, frames, out, pz, py, px, stream=0):
    nk, qr, qh = out.shape
    grid = ((qh + BLOCK[0] - 1) // BLOCK[0], (qr + BLOCK[1] - 1) // BLOCK[1], nk)
    sample_slices_kernel[grid, (BLOCK[0], BLOCK[1], 1), stream](spec, frames, out, pz, py, px)
