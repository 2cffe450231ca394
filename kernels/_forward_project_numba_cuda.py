"""Numba CUDA version of ``cuda/forward_project.cu``: one voxel per thread, atomic splatting."""

from numba import cuda

from ._projector_taps_numba_cuda import subpoint_cell, voxel_index, voxel_uv

THREADS = 128


@cuda.jit(device=True, inline=True)
def _splat_cell(out, k, border, rows, cols, iu, iv, wu, wv, val):
    """Atomically add ``val`` to the bilinear cell ``(iu, iv, wu, wv)`` of image ``k``; taps
    outside the detector are dropped."""
    for a in range(2):
        j = iv + a
        if j < 0 or j >= rows:
            continue
        wa = (wv if a else 1.0 - wv) * val
        for b in range(2):
            i = iu + b
            if i >= 0 and i < cols:
                cuda.atomic.add(out, (k, j + border, i + border), (wu if b else 1.0 - wu) * wa)


@cuda.jit
def forward_project_kernel(volume, coeffs, out, subpoints, border):
    nz, ny, nx = volume.shape
    nk, rp, cp = out.shape
    rows = rp - 2 * border
    cols = cp - 2 * border
    idx = cuda.grid(1)
    if idx >= nz * ny * nx:
        return
    ix, iy, iz = voxel_index(idx, ny, nx)
    val = volume[iz, iy, ix]
    if val == 0.0:
        return
    val = val / subpoints
    for k in range(nk):
        u0, v0 = voxel_uv(coeffs, k, ix, iy, iz)
        for s in range(subpoints):
            iu, iv, wu, wv = subpoint_cell(coeffs, k, u0, v0, s, subpoints)
            _splat_cell(out, k, border, rows, cols, iu, iv, wu, wv, val)


def forward_project_numba_cuda(volume, coeffs, out, subpoints, border, stream=0):
    """Launch on device arrays; ``out`` must be zeroed by the caller."""
    n = volume.shape[0] * volume.shape[1] * volume.shape[2]
    blocks = (n + THREADS - 1) // THREADS
    forward_project_kernel[blocks, THREADS, stream](volume, coeffs, out, subpoints, border)
