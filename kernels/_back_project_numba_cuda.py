"""Numba CUDA version of ``cuda/back_project.cu`` (runs on a GPU, or under the CUDA simulator)."""

from numba import cuda

from ._projector_taps_numba_cuda import axis_taps, pick

THREADS = 128


@cuda.jit
def back_project_kernel(images, coeffs, out, alpha, beta, weights, use_weights, positivity, subpoints, border):
    nk, rp, cp = images.shape
    rows = rp - 2 * border
    cols = cp - 2 * border
    nz, ny, nx = out.shape
    idx = cuda.grid(1)
    if idx >= nz * ny * nx:
        return
    ix = idx % nx
    iy = (idx // nx) % ny
    iz = idx // (nx * ny)
    acc = 0.0
    for k in range(nk):
        u = coeffs[k, 0, 0] * ix + coeffs[k, 0, 1] * iy + coeffs[k, 0, 2] * iz + coeffs[k, 0, 3]
        v = coeffs[k, 1, 0] * ix + coeffs[k, 1, 1] * iy + coeffs[k, 1, 2] * iz + coeffs[k, 1, 3]
        iu, wu0, wu1, wu2 = axis_taps(u, subpoints)
        iv, wv0, wv1, wv2 = axis_taps(v, subpoints)
        for a in range(3):
            j = iv + a
            if j < 0 or j >= rows:
                continue
            row = 0.0
            for b in range(3):
                i = iu + b
                if i >= 0 and i < cols:
                    row += pick(b, wu0, wu1, wu2) * images[k, j + border, i + border]
            acc += pick(a, wv0, wv1, wv2) * row
    o = 0.0 if beta == 0.0 else beta * out[iz, iy, ix]
    o += alpha * (weights[iz, iy, ix] if use_weights else 1.0) * acc
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
