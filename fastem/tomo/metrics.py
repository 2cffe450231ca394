"""Figures of merit for tomographic reconstructions (host NumPy, float64).

* :func:`r_factor` -- thesis eq. 3.9 over measured pixels;
* :func:`relative_error` -- ``||x - x_true||_p / ||x_true||_p`` (p = 1 or 2);
* :func:`fourier_shell_correlation` -- FSC shell by shell, optionally restricted to a cone of
  frequencies around a direction (e.g. z, the missing-wedge direction of a tilt series about
  y) -- the "directional FSC".
"""

from __future__ import annotations

import numpy as np

from .. import backend
from ..errors import InputError

__all__ = ["r_factor", "r_factor_per_projection", "relative_error", "fourier_shell_correlation"]


def _host(a) -> np.ndarray:
    return np.asarray(backend.to_device(a, "cpu") if backend.is_cupy_array(a) else a, dtype=np.float64)


def r_factor_per_projection(predicted, data, mask=None) -> np.ndarray:
    """``sum |p_k - b_k| / sum |b_k|`` over measured pixels, per projection (NaN where sum|b_k| = 0)."""
    p, b = _host(predicted), _host(data)
    if p.shape != b.shape:
        raise InputError(f"predicted projections {p.shape} and data {b.shape} differ in shape")
    m = np.ones(b.shape, dtype=bool) if mask is None else (np.asarray(_host(mask)) != 0)
    num = np.sum(np.abs(p - b) * m, axis=(1, 2))
    den = np.sum(np.abs(b) * m, axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def r_factor(predicted, data, mask=None) -> float:
    """Thesis eq. 3.9: ``(1/n) sum_k sum|P_k(O) - b_k| / sum|b_k|`` over measured pixels.

    Projections with no measured signal are left out of the mean.
    """
    per = r_factor_per_projection(predicted, data, mask)
    return float(np.nanmean(per))


def relative_error(volume, reference, norm: int = 2) -> float:
    """``||volume - reference||_p / ||reference||_p`` for ``p = norm`` in {1, 2}."""
    x, ref = _host(volume), _host(reference)
    if x.shape != ref.shape:
        raise InputError(f"volume {x.shape} and reference {ref.shape} differ in shape")
    if norm not in (1, 2):
        raise InputError(f"norm must be 1 or 2, got {norm}")
    ord_ = None if norm == 2 else 1
    denom = np.linalg.norm(ref.ravel(), ord_)
    if denom == 0:
        raise InputError("the reference volume is zero: relative error undefined")
    return float(np.linalg.norm((x - ref).ravel(), ord_) / denom)


def fourier_shell_correlation(volume, reference, *, shells: int | None = None, direction=None,
                              cone_deg: float = 30.0):
    """Fourier shell correlation between two volumes, shell by shell.

    Parameters
    ----------
    volume, reference : array_like (nz, ny, nx)
    shells : int, optional
        Number of shells from 0 to 0.5 cycles/voxel (default ``min(shape) // 2``).
    direction : (x, y, z) vector, optional
        Keep only frequencies within ``cone_deg`` of +-direction (a directional FSC; e.g.
        ``(0, 0, 1)`` for the missing-wedge direction z of a tilt series about y).
    cone_deg : float
        Half angle of the cone.

    Returns
    -------
    frequency : ndarray (shells,)
        Shell centres in cycles per voxel.
    fsc : ndarray (shells,)
        ``Re sum F1 F2* / sqrt(sum |F1|^2 sum |F2|^2)`` per shell (NaN for empty shells).
    counts : ndarray (shells,) of int
        Fourier voxels per shell.
    """
    a, b = _host(volume), _host(reference)
    if a.shape != b.shape or a.ndim != 3:
        raise InputError(f"FSC needs two volumes of the same 3D shape, got {a.shape} and {b.shape}")
    shells = int(shells or min(a.shape) // 2)
    fa, fb = np.fft.fftn(a), np.fft.fftn(b)
    fz, fy, fx = np.meshgrid(*(np.fft.fftfreq(n) for n in a.shape), indexing="ij")
    radius = np.sqrt(fx ** 2 + fy ** 2 + fz ** 2)
    keep = radius <= 0.5
    if direction is not None:
        d = np.asarray(direction, dtype=np.float64)
        if d.shape != (3,) or not np.any(d):
            raise InputError(f"direction must be a non-zero (x, y, z) vector, got {direction}")
        d = d / np.linalg.norm(d)
        with np.errstate(invalid="ignore", divide="ignore"):
            cosang = np.abs(fx * d[0] + fy * d[1] + fz * d[2]) / radius
        keep &= (radius == 0) | (cosang >= np.cos(np.deg2rad(cone_deg)))
    idx = np.minimum((radius / 0.5 * shells).astype(np.int64), shells - 1)[keep]
    cross = np.bincount(idx, (fa * np.conj(fb)).real[keep], minlength=shells)
    pa = np.bincount(idx, (np.abs(fa) ** 2)[keep], minlength=shells)
    pb = np.bincount(idx, (np.abs(fb) ** 2)[keep], minlength=shells)
    counts = np.bincount(idx, minlength=shells)
    with np.errstate(invalid="ignore", divide="ignore"):
        fsc = cross / np.sqrt(pa * pb)
    fsc[counts == 0] = np.nan
    freq = (np.arange(shells) + 0.5) * 0.5 / shells
    return freq, fsc, counts
