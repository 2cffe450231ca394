"""Argument checks shared by the tomography kernels (``back_project``, ``forward_project``,
``central_slice``, ``projection_residual``): one-line :class:`~fastem.errors.InputError` messages."""

from __future__ import annotations

import numpy as np

from fastem import backend
from fastem.errors import InputError

REAL = (np.dtype(np.float32), np.dtype(np.float64))


def check_array(name: str, a, ndim: int, dtypes=REAL, where: str = "") -> None:
    """``a`` has ``ndim`` dimensions, a dtype in ``dtypes`` and is C-contiguous."""
    pre = f"{where}: " if where else ""
    if a.ndim != ndim:
        raise InputError(f"{pre}{name} must be {ndim}-D, got shape {tuple(a.shape)}")
    if a.dtype not in dtypes:
        names = " or ".join(str(d) for d in dtypes)
        raise InputError(f"{pre}{name} must be {names}, got {a.dtype}")
    if not a.flags.c_contiguous:
        raise InputError(f"{pre}{name} must be C-contiguous")


def check_coeffs(coeffs, n_projections: int, where: str) -> None:
    """``coeffs`` is the (n, 2, 4) float64 array of :func:`fastem.tomo.projection_coefficients`."""
    check_array("coeffs", coeffs, 3, (np.dtype(np.float64),), where)
    if tuple(coeffs.shape) != (n_projections, 2, 4):
        raise InputError(f"{where}: coeffs must have shape ({n_projections}, 2, 4) for {n_projections} "
                         f"projection(s), got {tuple(coeffs.shape)}")


def gpu_float32(where: str, *arrays) -> None:
    """The CUDA kernels take float32 images and volumes."""
    for a in arrays:
        if a is not None and backend.is_cupy_array(a) and a.dtype != np.float32 and a.dtype.kind == "f" and a.ndim == 3:
            raise InputError(f"{where}: the GPU kernels take float32 volumes and images, got {a.dtype}")
