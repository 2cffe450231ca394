"""Numba CUDA version of ``cuda/back_project.cu`` (runs on a GPU, or under the CUDA simulator)."""

from numba import cuda

from ._projector_taps_numba_cuda import subpoint_cell, voxel_index, voxel_uv

THREADS = 128


@cuda.jit(device=True, inline=True)
def _gather_cell(images, k, border, rows, cols, iu, iv, wu, wv):
    """Bilinear read of image ``k`` over the cell ``(iu, iv, wu, wv)``; pixels outside the
    detector read as 0 (the adjoint of the forward kernel's splat)."""
    acc = 0.0
    for a in range(2):
        j = iv + a
        if j < 0 or j >= rows:
            continue
        row = 0.0
        for b in range(2):
            i = iu + b
            if i >= 0 and i < cols:
                row += (wu if b else 1.0 - wu) * images[k, j + border, i + border]
        acc += (wv if a else 1.0 - wv) * row
    return acc


@cuda.jit
def back_project_kernel(images, coeffs, out, alpha, beta, weights, use_weights, positivity, subpoints, border):
    nk, rp, cp = images.shape
    rows = rp - 2 * border
    cols = cp - 2 * border
    nz, ny, nx = out.shape
    idx = cuda.grid(1)
    if idx >= nz * ny * nx:
        return
    ix, iy, iz = voxel_index(idx, ny, nx)
    acc = 0.0
    for k in range(nk):
        u0, v0 = voxel_uv(coeffs, k, ix, iy, iz)
        for s in range(subpoints):
            iu, iv, wu, wv = subpoint_cell(coeffs, k, u0, v0, s, subpoints)
            acc += _gather_cell(images, k, border, rows, cols, iu, iv, wu, wv)
    o = 0.0 if beta == 0.0 else beta * out[iz, iy, ix]
    o += alpha * (weights[iz, iy, ix] if use_weights else 1.0) * acc / subpoints
    if positivity and o < 0.0:
        o = 0.0
    out[iz, iy, ix] = o


def back_project_numba_cuda(images, coeffs, out, alpha, beta, weights, use_weights, positivity, subpoints,
                            border, stream=0):
    """Launch on device arrays (CuPy via ``__cuda_array_interface__``, or NumPy in the simulator)."""
    n = out.shape[0] * out.shape[1] * out.shape[2]
    blocks = (n + THREADS - 1) // THREADS
    back_project_kernel[blocks, THREADS, stream](images, coeffs, out, alpha, beta, weights, use_weights,
                                                 positivity, subpoints, border)
