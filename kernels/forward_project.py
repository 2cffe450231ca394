"""``linear`` forward projection ``P_k``: sub-point bilinear splatting, the adjoint of
:func:`~fastem.kernels.back_project` with the same ``subpoints``.

Every voxel of value ``o`` is split into sub-points in object space (4: the 2 x 2 sub-pixels of
the voxel in the x-z plane at ``(+-1/4, 0, +-1/4)``, as the thesis divides object pixels;
1: the voxel centre; :data:`~fastem.kernels.back_project.SUBPOINT_OFFSETS`), each carrying
``o / subpoints``; every sub-point is mapped onto the detector and splatted bilinearly; taps
outside the detector are dropped (docs/tomo.md, "How it works"). For a tilt about y a voxel
at 0 degrees covers one detector row, (1/8, 3/4, 1/8) along u; at 45 degrees
(1/4 at ``u -+ 0.354``, 1/2 at ``u``) along u.

Engines: ``numpy`` (float64 oracle, explicit sub-points), ``numba`` (tasks = projection x row
band, each the only writer of its pixels: no atomics), ``cuda`` (``cuda/forward_project.cu``,
one voxel per thread, ``atomicAdd``), ``numba-cuda`` (same, Numba CUDA).
"""

from __future__ import annotations

import numpy as np

from fastem import backend

from . import _threads
from ._dispatch import KernelDispatcher, as_numba_cuda, numba_cuda_stream, require_arrays
from ._tomo_checks import gpu_float32
from ._workspace import thread_buffer, tilt_transposed
from .back_project import (BORDER, bilinear_taps, check_projector_args, cpu_tap_plan, subpoint_shifts, tilt_tap_table,
                           voxel_detector_positions)

__all__ = ["forward_project"]

_FORWARD_PROJECT = KernelDispatcher("forward_project", ("numpy", "numba", "cuda", "numba-cuda"))


def _forward_project_numpy(volume, coeffs, out, subpoints):
    nk, rows, cols = out.shape
    vals = np.asarray(volume, dtype=np.float64).ravel()
    shifts = subpoint_shifts(coeffs, subpoints)
    for k in range(nk):
        img = np.zeros((rows, cols))
        u, v = voxel_detector_positions(coeffs, k, volume.shape)
        for du, dv in shifts[k]:
            for iv, wv in bilinear_taps(v + dv):
                for iu, wu in bilinear_taps(u + du):
                    ok = (iv >= 0) & (iv < rows) & (iu >= 0) & (iu < cols)
                    np.add.at(img, (iv[ok], iu[ok]), (wv * wu * vals)[ok] / subpoints)
        out[k] = img
    return out


def row_bands(n_projections: int, rows: int, threads: int | None = None) -> int:
    """Row bands per projection so that the CPU kernel has at least ``4 x threads`` tasks."""
    threads = _threads.get() if threads is None else threads
    want = -(-4 * threads // max(n_projections, 1))
    return int(max(1, min(rows, want)))


@_FORWARD_PROJECT.register("numpy")
def _forward_project_numpy_engine(volume, coeffs, out, subpoints, border):
    rows, cols = out.shape[1] - 2 * border, out.shape[2] - 2 * border
    _forward_project_numpy(volume, coeffs, out[:, border:border + rows, border:border + cols], subpoints)
    return out


@_FORWARD_PROJECT.register("numba")
def _forward_project_numba(volume, coeffs, out, subpoints, border):
    from ._forward_project_numba import forward_project_numba

    nk, rows = out.shape[0], out.shape[1] - 2 * border
    shifts, tilt = cpu_tap_plan(coeffs, subpoints)
    if tilt and border == 0:
        # The SIMD tilt kernel writes bordered images (its taps are not bounds-checked). Without
        # a border the generic per-voxel kernel used to run instead, about two orders of
        # magnitude slower (bench/results/tomo_forward_paths.md; SIRT of a 128 x 64 x 128 slab, 30
        # iterations: 1.71 s before, 0.70 s after, tomo_slab_thickness.md and -bordered.md).
        # Project into this thread's cached bordered images and copy the interior.
        cols = out.shape[2]
        bordered = thread_buffer("forward_project_bordered", (out.shape, volume.dtype), lambda: np.empty(
            (nk, rows + 2 * BORDER, cols + 2 * BORDER), volume.dtype))
        _forward_project_numba(volume, coeffs, bordered, subpoints, BORDER)
        out[...] = bordered[:, BORDER:BORDER + rows, BORDER:BORDER + cols]
        return out
    if tilt and border >= BORDER:
        # one task per projection: with fewer projections than 4 x threads some threads idle,
        # but the generic kernel's row bands are far slower per voxel than this SIMD loop
        from ._forward_project_numba import forward_project_tilt_numba

        nz, ny, nx = volume.shape
        nk, rp, cp = out.shape
        key = (volume.shape, out.shape, volume.dtype)
        volume_t, images_t = tilt_transposed(volume.shape, out.shape, volume.dtype, volume.dtype)
        tap_index, tap_weights = thread_buffer("forward_project_tilt", key, lambda: (
            np.empty((nk, nx), np.int64), np.empty((nk, 3, nx), volume.dtype)))
        table = tilt_tap_table(coeffs, shifts, volume.shape, cp - 2 * border, border, volume.dtype)
        forward_project_tilt_numba(volume, coeffs, shifts, out, border, volume_t, images_t, tap_index, tap_weights,
                                   *table)
    else:
        bands = row_bands(nk, rows)
        fast = bands == 1 and border >= BORDER
        forward_project_numba(volume, coeffs, shifts, out, border, bands, fast)
    return out


@_FORWARD_PROJECT.register("cuda", "numba-cuda", with_engine=True)
def _forward_project_gpu(volume, coeffs, out, subpoints, border, engine):
    nk, rows, cols = out.shape[0], out.shape[1] - 2 * border, out.shape[2] - 2 * border
    nz, ny, nx = volume.shape
    with backend.get_device(out).use():
        out.fill(0)
        if engine == "cuda":
            from . import _cuda

            name = "forward_project_sub4" if subpoints == 4 else "forward_project_sub1"
            kernel = _cuda.get_function("forward_project", name, backend.get_device(out))
            block = (128,)
            grid = ((nx * ny * nz + block[0] - 1) // block[0],)
            kernel(grid, block, (volume, coeffs, np.int32(nk), np.int32(rows), np.int32(cols), np.int32(border), out,
                                 np.int32(nz), np.int32(ny), np.int32(nx)))
        else:
            from ._forward_project_numba_cuda import forward_project_numba_cuda

            forward_project_numba_cuda(as_numba_cuda(volume), as_numba_cuda(coeffs), as_numba_cuda(out),
                                       int(subpoints), int(border), stream=numba_cuda_stream())
    return out


def forward_project(volume, coeffs, out, *, subpoints: int = 4, border: int = 0, engine: str | None = None):
    """Forward project ``volume`` into ``out`` (overwritten): ``out[k] = P_k(volume)``.

    Parameters
    ----------
    volume : ndarray, (nz, ny, nx), float32 or float64, C-contiguous
        Volume (z, y, x); NumPy or CuPy (float32 on the GPU).
    coeffs : ndarray, (n, 2, 4), float64
        From :func:`fastem.tomo.projection_coefficients` (see :func:`back_project`).
    out : ndarray, (n, rows + 2*border, cols + 2*border), same dtype and device as ``volume``
        Projections (rows = v, cols = u), detector pixel (r, c) at ``[k, r + border, c + border]``.
        The interior is overwritten; the border is scratch (unspecified afterwards).
    subpoints : {4, 1}
        4: the ``linear`` projector (4 object-space sub-points per voxel); 1: plain bilinear
        splatting of the voxel centre.
    border : int
        Width of the border around every output image; ``border >= 3`` (:data:`BORDER`) lets
        the CPU kernel splat without per-tap tests.
    engine : {None, "numpy", "numba", "cuda", "numba-cuda"}

    Returns
    -------
    out
    """
    require_arrays("forward_project", (), volume=volume, coeffs=coeffs, out=out)
    where = "forward_project"
    border = check_projector_args(where, out, ("out", "volume"), volume, coeffs, border, subpoints)
    gpu_float32(where, volume, out)
    return _FORWARD_PROJECT(engine, (volume, coeffs, out), volume, coeffs, out, subpoints, border)
