"""Numba CUDA version of ``cuda/forward_project.cu``: one voxel per thread, atomic splatting."""

import math

from numba import cuda

from ._projector_taps_numba_cuda import subpoint_offset

THREADS = 128


@cuda.jit
def forward_project_kernel(volume, coeffs, out, subpoints, border):
    nz, ny, nx = volume.shape
    nk, rp, cp = out.shape
    rows = rp - 2 * border
    cols = cp - 2 * border
    idx = cuda.grid(1)
    if idx >= nz * ny * nx:
        return
    ix = idx % nx
    iy = (idx // nx) % ny
    iz = idx // (nx * ny)
    val = volume[iz, iy, ix]
    if val == 0.0:
        return
    val = val / subpoints
    for k in range(nk):
        u0 = coeffs[k, 0, 0] * ix + coeffs[k, 0, 1] * iy + coeffs[k, 0, 2] * iz + coeffs[k, 0, 3]
        v0 = coeffs[k, 1, 0] * ix + coeffs[k, 1, 1] * iy + coeffs[k, 1, 2] * iz + coeffs[k, 1, 3]
        for s in range(subpoints):
            dx, dz = subpoint_offset(s, subpoints)
            u = u0 + coeffs[k, 0, 0] * dx + coeffs[k, 0, 2] * dz
            v = v0 + coeffs[k, 1, 0] * dx + coeffs[k, 1, 2] * dz
            fu = math.floor(u)
            fv = math.floor(v)
            iu = int(fu)
            iv = int(fv)
            wu = u - fu
            wv = v - fv
            for a in range(2):
                j = iv + a
                if j < 0 or j >= rows:
                    continue
                wa = (wv if a else 1.0 - wv) * val
                for b in range(2):
                    i = iu + b
                    if i >= 0 and i < cols:
                        cuda.atomic.add(out, (k, j + border, i + border), (wu if b else 1.0 - wu) * wa)


def forward_project_numba_cuda(volume, coeffs, out, subpoints, border, stream=0):
    """Launch on device arrays; ``out`` must be zeroed by the caller."""
    n = volume.shape[0] * volume.shape[1] * volume.shape[2]
    blocks = (n + THREADS - 1) // THREADS
    forward_project_kernel[blocks, THREADS, stream](volume, coeffs, out, subpoints, border)
