"""Back projection ``B_k`` of RESIRE (the gradient): bilinear gather over all projections.

``out <- beta * out + alpha * weights * sum_k B_k(images[k])``, then ``max(out, 0)`` when
``positivity``. ``B_k`` spreads a 2D image back along the beam of projection ``k``: every
voxel reads the image at its detector position ``(u, v)`` (thesis eq. 3.4) by bilinear
interpolation (``subpoints=1``), or as the mean of four bilinear reads at the detector
positions of the voxel's four object-space sub-points (``subpoints=4``: see
:data:`SUBPOINT_OFFSETS`; the exact adjoint of :func:`~fastem.kernels.forward_project`); pixels
outside the detector read as 0.

Engines: ``numpy`` (float64 oracle, explicit sub-points), ``numba`` (one volume line per
parallel iteration, all projections accumulated while the line is in cache), ``cuda``
(``cuda/back_project.cu``, one voxel per thread, ``__ldg`` reads, float32), ``numba-cuda``.
"""

from __future__ import annotations

import numpy as np

from fastem import backend
from fastem.errors import InputError

from ._dispatch import KernelDispatcher, as_numba_cuda, numba_cuda_stream, require_arrays
from ._tomo_checks import check_array, check_coeffs, gpu_float32
from ._workspace import thread_buffer, tilt_transposed

__all__ = ["back_project", "with_border", "BORDER", "SUBPOINT_OFFSETS", "subpoint_shifts"]

_BACK_PROJECT = KernelDispatcher("back_project", ("numpy", "numba", "cuda", "numba-cuda"))

BORDER = 3  # zero border (pixels) the CPU projector kernels want around every image

#: Object-space offsets ``(dx, dy, dz)`` (voxels) of the sub-points of one voxel, each carrying
#: ``1/subpoints`` of it. ``subpoints=4`` divides the voxel in the object's x-z plane (the plane
#: of a slice, perpendicular to the default tilt axis y) into 2 x 2 sub-pixels at ``+-1/4``, as the
#: thesis (seed 004, section 3.2.1.3 and discussion: "dividing a pixel into 4 sub-pixels as the
#: Radon transform does") and MATLAB's ``radon`` do. Each sub-point lands on the detector at
#: ``(u, v) + R_2x3 (dx, dy, dz)``: for a tilt about y the footprint along v (the tilt axis)
#: stays one row and along u follows the angle (offsets ``(+-cos +- sin)/4``).
SUBPOINT_OFFSETS = {1: ((0.0, 0.0, 0.0),),
                    4: ((-0.25, 0.0, -0.25), (-0.25, 0.0, 0.25), (0.25, 0.0, -0.25), (0.25, 0.0, 0.25))}


def subpoint_shifts(coeffs, subpoints: int):
    """Detector shifts ``(du, dv)`` of every sub-point for every projection, float64 (n, subpoints, 2).

    ``coeffs`` (n, 2, 4) as :func:`back_project`; the shift of sub-point ``s`` of projection ``k``
    is ``coeffs[k, :, :3] @ SUBPOINT_OFFSETS[subpoints][s]`` (a voxel offset mapped onto the detector).
    """
    c = np.asarray(coeffs, dtype=np.float64)[:, :, :3]
    d = np.asarray(SUBPOINT_OFFSETS[subpoints], dtype=np.float64)  # (S, 3)
    return np.ascontiguousarray(np.einsum("kij,sj->ksi", c, d))


_TAP_PLANS: dict = {}


def cpu_tap_plan(coeffs, subpoints: int):
    """``(shifts, tilt)`` for the CPU kernels: :func:`subpoint_shifts` (read-only) and whether the
    geometry takes the tilt-about-y path (``_projector_taps_numba.tilt_aligned``), memoised by the
    coefficients' values (a solver calls the projectors with the same ones every iteration)."""
    from ._projector_taps_numba import tilt_aligned

    c = np.ascontiguousarray(coeffs, dtype=np.float64)
    key = (int(subpoints), c.shape, c.tobytes())
    plan = _TAP_PLANS.get(key)
    if plan is None:
        shifts = subpoint_shifts(c, subpoints)
        shifts.setflags(write=False)
        plan = (shifts, tilt_aligned(c, shifts))
        if len(_TAP_PLANS) >= 32:
            _TAP_PLANS.clear()
        _TAP_PLANS[key] = plan
    return plan


_TAP_TABLES: dict = {}
_NO_TABLE: dict = {}

#: the tilt kernels' tap tables are kept when they take at most TAP_TABLE_MIN_BUDGET bytes or
#: TAP_TABLE_VOLUME_FACTOR times the volume's, whichever is more; larger geometries compute the
#: taps on every call instead
TAP_TABLE_MIN_BUDGET = 64 << 20
TAP_TABLE_VOLUME_FACTOR = 2


def tilt_tap_table(coeffs, shifts, volume_shape, cols: int, border: int, dtype):
    """``(use_table, index, weights, range)`` for the tilt kernels (``_projector_taps_numba.tilt_tap_table``):
    the merged taps of every (projection, z-slice), built once per geometry and kept (a few
    geometries, shared by all threads: read-only), or ``use_table=False`` with placeholders when
    the table would take more than :data:`TAP_TABLE_MIN_BUDGET` and twice the volume's bytes."""
    from ._projector_taps_numba import tilt_tap_table as build

    dtype = np.dtype(dtype)
    nk = coeffs.shape[0]
    nz, ny, nx = (int(v) for v in volume_shape)
    nbytes = nk * nz * (nx * (8 + 3 * dtype.itemsize) + 16)
    if nbytes > max(TAP_TABLE_MIN_BUDGET, TAP_TABLE_VOLUME_FACTOR * nz * ny * nx * dtype.itemsize):
        placeholder = _NO_TABLE.get(dtype.str)
        if placeholder is None:          # made once per dtype: a large geometry allocates nothing per call
            placeholder = _NO_TABLE[dtype.str] = (False, np.zeros((1, 1, 1), np.int64), np.zeros((1, 1, 3, 1), dtype),
                                                  np.zeros((1, 1, 2), np.int64))
        return placeholder
    key = (np.ascontiguousarray(coeffs).tobytes(), np.ascontiguousarray(shifts).tobytes(), nz, nx, int(cols),
           int(border), dtype.str)
    table = _TAP_TABLES.get(key)
    if table is None:
        index = np.zeros((nk, nz, nx), np.int64)
        weights = np.zeros((nk, nz, 3, nx), dtype)
        ranges = np.zeros((nk, nz, 2), np.int64)
        build(np.ascontiguousarray(coeffs, dtype=np.float64), shifts, int(border), int(cols), index, weights, ranges)
        table = (True, index, weights, ranges)      # shared, never written after this (Numba needs writable types)
        if len(_TAP_TABLES) >= 4:
            _TAP_TABLES.clear()
        _TAP_TABLES[key] = table
    return table


def voxel_detector_positions(coeffs, k: int, shape):
    """Float64 detector coordinates ``(u, v)`` of every voxel of a ``shape`` volume for projection k."""
    iz, iy, ix = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in shape), indexing="ij")
    c = np.asarray(coeffs, dtype=np.float64)[k]
    u = c[0, 0] * ix + c[0, 1] * iy + c[0, 2] * iz + c[0, 3]
    v = c[1, 0] * ix + c[1, 1] * iy + c[1, 2] * iz + c[1, 3]
    return u.ravel(), v.ravel()


def bilinear_taps(s):
    """The two bilinear taps ``(index, weight)`` of coordinates ``s`` (pixel j centred on j)."""
    i0 = np.floor(s)
    f = s - i0
    i0 = i0.astype(np.int64)
    return ((i0, 1.0 - f), (i0 + 1, f))


def check_projector_args(where: str, images, names, volume, coeffs, border, subpoints) -> int:
    """The checks both projectors make (one-line :class:`InputError` naming the parameter).

    ``images`` (n, rows + 2*border, cols + 2*border) and ``volume`` (nz, ny, nx): 3-D,
    C-contiguous, float32/float64, the same dtype; ``coeffs`` (n, 2, 4) float64; ``border`` fits
    the images; ``subpoints`` in :data:`SUBPOINT_OFFSETS`. ``names`` = (images' name, volume's
    name) as the calling kernel calls them. Returns ``border`` as an int.
    """
    check_array(names[0], images, 3, where=where)
    check_array(names[1], volume, 3, where=where)
    check_coeffs(coeffs, images.shape[0], where)
    border = int(border)
    if border < 0 or 2 * border >= min(images.shape[1:]):
        raise InputError(f"{where}: border {border} does not fit images of shape {tuple(images.shape)}")
    if volume.dtype != images.dtype:
        raise InputError(f"{where}: {names[1]} ({volume.dtype}) and {names[0]} ({images.dtype}) must have the "
                         "same dtype")
    if subpoints not in SUBPOINT_OFFSETS:
        raise InputError(f"{where}: subpoints must be 1 or 4, got {subpoints}")
    return border


def with_border(images, border: int = 0, width: int = BORDER):
    """A copy of ``images`` (n, rows + 2*border, cols + 2*border) with a zero border of ``width``."""
    xp = backend.get_array_module(images)
    n, rp, cp = images.shape
    rows, cols = rp - 2 * border, cp - 2 * border
    out = xp.zeros((n, rows + 2 * width, cols + 2 * width), dtype=images.dtype)
    out[:, width:width + rows, width:width + cols] = images[:, border:border + rows, border:border + cols]
    return out


def _back_project_numpy(images, coeffs, out, alpha, beta, weights, positivity, subpoints):
    img64 = np.asarray(images, dtype=np.float64)
    nk, rows, cols = img64.shape
    acc = np.zeros(out.size)
    shifts = subpoint_shifts(coeffs, subpoints)
    for k in range(nk):
        u, v = voxel_detector_positions(coeffs, k, out.shape)
        for du, dv in shifts[k]:
            for iv, wv in bilinear_taps(v + dv):
                for iu, wu in bilinear_taps(u + du):
                    ok = (iv >= 0) & (iv < rows) & (iu >= 0) & (iu < cols)
                    acc[ok] += (wv * wu)[ok] * img64[k, iv[ok], iu[ok]] / subpoints
    res = alpha * acc.reshape(out.shape)
    if weights is not None:
        res *= weights
    if beta != 0.0:
        res += beta * out.astype(np.float64)
    if positivity:
        np.maximum(res, 0.0, out=res)
    out[...] = res
    return out


@_BACK_PROJECT.register("numpy")
def _back_project_numpy_engine(images, coeffs, out, alpha, beta, weights, positivity, subpoints, border):
    inner = images[:, border:images.shape[1] - border, border:images.shape[2] - border]
    return _back_project_numpy(inner, coeffs, out, alpha, beta, weights, positivity, subpoints)


@_BACK_PROJECT.register("numba")
def _back_project_numba(images, coeffs, out, alpha, beta, weights, positivity, subpoints, border):
    from ._back_project_numba import back_project_numba

    if border < BORDER:
        images, border = with_border(images, border), BORDER
    w = weights if weights is not None else np.zeros((1, 1, 1), out.dtype)
    shifts, tilt = cpu_tap_plan(coeffs, subpoints)
    args = (images, int(border), coeffs, shifts, out, float(alpha), float(beta), w, weights is not None,
            bool(positivity))
    if tilt:
        from ._back_project_numba import back_project_tilt_numba

        nz, ny, nx = out.shape
        nk, rp, cp = images.shape
        key = (images.shape, out.shape, images.dtype, out.dtype)
        volume_t, images_t = tilt_transposed(out.shape, images.shape, out.dtype, images.dtype)
        tap_index, tap_weights = thread_buffer("back_project_tilt", key, lambda: (
            np.empty((nz, nx), np.int64), np.empty((nz, 3, nx), out.dtype)))
        table = tilt_tap_table(coeffs, shifts, out.shape, cp - 2 * border, border, out.dtype)
        back_project_tilt_numba(*args, images_t, volume_t, tap_index, tap_weights, *table)
    else:
        back_project_numba(*args)
    return out


@_BACK_PROJECT.register("cuda", "numba-cuda", with_engine=True)
def _back_project_gpu(images, coeffs, out, alpha, beta, weights, positivity, subpoints, border, engine):
    nk, rows, cols = images.shape[0], images.shape[1] - 2 * border, images.shape[2] - 2 * border
    nz, ny, nx = out.shape
    with backend.get_device(out).use():
        if engine == "cuda":
            from . import _cuda

            name = "back_project_sub4" if subpoints == 4 else "back_project_sub1"
            kernel = _cuda.get_function("back_project", name, backend.get_device(out))
            block = (128,)
            grid = ((nx * ny * nz + block[0] - 1) // block[0],)
            w = weights if weights is not None else out  # never read when use_weights == 0
            kernel(grid, block, (images, coeffs, np.int32(nk), np.int32(rows), np.int32(cols), np.int32(border), out,
                                 np.int32(nz), np.int32(ny), np.int32(nx), np.float32(alpha), np.float32(beta),
                                 w, np.int32(weights is not None), np.int32(bool(positivity))))
        else:
            from ._back_project_numba_cuda import back_project_numba_cuda

            # a separate dummy when unweighted: the simulator copies every argument back to the host
            w = weights if weights is not None else backend.get_array_module(out).zeros((1, 1, 1), out.dtype)
            back_project_numba_cuda(as_numba_cuda(images), as_numba_cuda(coeffs), as_numba_cuda(out),
                                    float(alpha), float(beta), as_numba_cuda(w), weights is not None,
                                    bool(positivity), int(subpoints), int(border), stream=numba_cuda_stream())
    return out


def back_project(images, coeffs, out, *, alpha: float = 1.0, beta: float = 0.0, weights=None,
                 positivity: bool = False, subpoints: int = 1, border: int = 0, engine: str | None = None):
    """Accumulate the back projection of ``images`` into the volume ``out`` (in place).

    Parameters
    ----------
    images : ndarray, (n, rows + 2*border, cols + 2*border), float32 or float64, C-contiguous
        One 2D image per projection (rows = v, cols = u), detector pixel (r, c) at
        ``[k, r + border, c + border]``; the border must be zero. NumPy or CuPy (float32 on the
        GPU). The CPU kernel needs ``border >= 3`` (:data:`BORDER`) and copies smaller-bordered
        images into a bordered buffer first.
    coeffs : ndarray, (n, 2, 4), float64
        Detector-mapping coefficients from :func:`fastem.tomo.projection_coefficients`:
        ``u = c[k,0,0]*ix + c[k,0,1]*iy + c[k,0,2]*iz + c[k,0,3]`` in pixel units, ``v`` from row 1.
    out : ndarray, (nz, ny, nx), same dtype and device as ``images``
        Volume (z, y, x), updated in place.
    alpha, beta : float
        ``out <- beta*out + alpha*weights*B(images)``.
    weights : ndarray (nz, ny, nx) of out's dtype, optional
        Per-voxel factor (SIRT's inverse column sums, a 0/1 support).
    positivity : bool
        Clamp ``out`` at 0 afterwards (RESIRE's positivity, fused into the same pass).
    subpoints : {1, 4}
        1: bilinear at ``(u, v)``; 4: mean of bilinear reads at the voxel's 4 object-space
        sub-points (:data:`SUBPOINT_OFFSETS`; adjoint of the ``linear`` forward projector).
    border : int
        Width of the zero border around every image (0: plain detector images).
    engine : {None, "numpy", "numba", "cuda", "numba-cuda"}

    Returns
    -------
    out
    """
    require_arrays("back_project", ('weights',), images=images, coeffs=coeffs, out=out, weights=weights)
    where = "back_project"
    border = check_projector_args(where, images, ("images", "out"), out, coeffs, border, subpoints)
    if weights is not None:
        check_array("weights", weights, 3, (out.dtype,), where)
        if weights.shape != out.shape:
            raise InputError(f"{where}: weights have shape {tuple(weights.shape)} but out has {tuple(out.shape)}")
    gpu_float32(where, images, out)
    return _BACK_PROJECT(engine, (images, coeffs, out, weights), images, coeffs, out, alpha, beta, weights,
                         positivity, subpoints, border)
