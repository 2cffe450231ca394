"""Weighted projection residual and its per-projection L1 norm (RESIRE's residual and R-factor).

``out[k] = (scale * crop(src[k]) - data[k]) * weights[k]`` and
``l1[k] = sum |scale * crop(src[k]) - data[k]|`` over the pixels where ``weights[k] != 0``
(thesis eq. 3.9's numerator, restricted to the mask). ``crop`` reads the detector window out
of a larger periodic image: detector pixel ``(r, c)`` is ``src[(r + row_shift) mod Qr,
(c + col_shift) mod Qc]`` (the ``fst`` projector's inverse FFT has its centre at index 0: shifts
``-(rows // 2), -(cols // 2)``). ``out`` may carry a zero border of ``out_border`` pixels
(the layout the CPU back projection wants); it may be ``src`` itself when the crop reads only
its interior (equal shapes, shifts ``out_border``): the residual then replaces the prediction.

Engines: ``numpy`` (float64), ``numba`` (parallel over projections), ``cuda``
(``cuda/projection_residual.cu``, block reduction + one ``atomicAdd`` per block). There is no
Numba CUDA twin: ``engine="numba-cuda"`` is refused with
:class:`~fastem.kernels._dispatch.UnsupportedEngineError` (it used to run ``cuda`` or ``numba``
in its place without saying so).
"""

from __future__ import annotations

import numpy as np

from fastem import backend
from fastem.errors import InputError

from ._dispatch import KernelDispatcher, require_arrays
from ._tomo_checks import check_array

__all__ = ["projection_residual"]

_PROJECTION_RESIDUAL = KernelDispatcher("projection_residual", ("numpy", "numba", "cuda"))


@_PROJECTION_RESIDUAL.register("numpy")
def _projection_residual_numpy(src, data, weights, out, l1, scale, row_shift, col_shift, ob):
    nk, rows, cols = data.shape
    ri = (np.arange(rows) + row_shift) % src.shape[1]
    ci = (np.arange(cols) + col_shift) % src.shape[2]
    d = scale * np.asarray(src, dtype=np.float64)[:, ri][:, :, ci] - data.astype(np.float64)
    w = weights.astype(np.float64)
    l1[...] = np.sum(np.abs(d) * (w != 0), axis=(1, 2))
    out[...] = 0
    out[:, ob:ob + rows, ob:ob + cols] = d * w
    return out, l1


@_PROJECTION_RESIDUAL.register("numba")
def _projection_residual_numba(src, data, weights, out, l1, scale, row_shift, col_shift, ob):
    from ._projection_residual_numba import projection_residual_numba

    projection_residual_numba(src, data, weights, out, l1, float(scale), int(row_shift), int(col_shift), ob)
    return out, l1


@_PROJECTION_RESIDUAL.register("cuda")
def _projection_residual_cuda(src, data, weights, out, l1, scale, row_shift, col_shift, ob):
    from . import _cuda

    where = "projection_residual"
    n, rows, cols = data.shape
    if data.dtype != np.float32:
        raise InputError(f"{where}: the GPU kernel takes float32 arrays, got {data.dtype}")
    with backend.get_device(out).use():
        l1.fill(0)
        kernel = _cuda.get_function("projection_residual", "projection_residual_f32", backend.get_device(out))
        block = 256
        grid = (min(((rows + 2 * ob) * (cols + 2 * ob) + block - 1) // block, 1024), n)
        kernel(grid, (block,), (src, data, weights, out, l1, np.int32(n), np.int32(rows), np.int32(cols),
                                np.int32(src.shape[1]), np.int32(src.shape[2]), np.float32(scale),
                                np.int32(row_shift), np.int32(col_shift), np.int32(ob)))
    return out, l1


def projection_residual(src, data, weights, out, l1, *, scale: float = 1.0, row_shift: int = 0,
                        col_shift: int = 0, out_border: int = 0, engine: str | None = None):
    """Fused crop / subtract / weight / L1 pass (see the module docstring).

    Parameters
    ----------
    src : ndarray, (n, Qr, Qc), float32 or float64
        Predicted projections (possibly larger periodic images), Qr >= rows, Qc >= cols.
    data, weights : ndarray, (n, rows, cols), src's dtype
        Measured projections and per-pixel weights (the mask, or SIRT's mask / row sums).
    out : ndarray, (n, rows + 2*out_border, cols + 2*out_border), src's dtype
        The residual (interior) with a zero border. May alias ``src`` (see above).
    l1 : ndarray, (n,), float64
        Per-projection sums ``sum |scale*src - data|`` over ``weights != 0`` (overwritten).
    scale : float
        Multiplies ``src`` (e.g. ``1 / (Qr*Qc)`` for an unnormalised inverse FFT).
    row_shift, col_shift : int
    out_border : int
    engine : {None, "numpy", "numba", "cuda"}
        ``None``: ``numba`` for NumPy arrays, ``cuda`` for CuPy arrays.

    Returns
    -------
    (out, l1)
    """
    require_arrays("projection_residual", (), src=src, data=data, weights=weights, out=out, l1=l1)
    where = "projection_residual"
    for name, a in (("src", src), ("data", data), ("weights", weights), ("out", out)):
        check_array(name, a, 3, where=where)
        if a.dtype != data.dtype:
            raise InputError(f"{where}: {name} is {a.dtype} but data is {data.dtype}")
    check_array("l1", l1, 1, (np.dtype(np.float64),), where)
    n, rows, cols = data.shape
    ob = int(out_border)
    if weights.shape != data.shape or out.shape != (n, rows + 2 * ob, cols + 2 * ob):
        raise InputError(f"{where}: data {tuple(data.shape)}, weights {tuple(weights.shape)} and out "
                         f"{tuple(out.shape)} (border {ob}) do not match")
    if src.shape[0] != n or src.shape[1] < rows or src.shape[2] < cols:
        raise InputError(f"{where}: src of shape {tuple(src.shape)} cannot cover {n} projection(s) of {rows}x{cols}")
    if l1.shape[0] != n:
        raise InputError(f"{where}: l1 has {l1.shape[0]} entries for {n} projection(s)")
    return _PROJECTION_RESIDUAL(engine, (src, data, weights, out, l1), src, data, weights, out, l1, scale,
                                row_shift, col_shift, ob)
