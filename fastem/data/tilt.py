"""Synthetic tilt series: an independent reference projector and angle sets.

:func:`tilt_series` is deliberately *not* the RESIRE projector (no Fourier slicing, no voxel
splatting): it integrates the trilinearly interpolated volume along each detector pixel's ray
(``scipy.ndimage.map_coordinates``, ``oversample`` samples per voxel length), so that
reconstructions are not tested against their own forward model (the "inverse crime").

Geometry is exactly :mod:`fastem.geometry`: volume ``(z, y, x)``, centred coordinates
``i - n // 2``, a point ``r = (x, y, z)`` lands at ``u = R[0] . r`` (column), ``v = R[1] . r``
(row), the beam runs along ``R[2]``, ``R = Z(phi) Y(theta) X(psi)``. The ray through detector
pixel ``(row, col)`` is therefore ``r(t) = u R[0] + v R[1] + t R[2]`` with
``u = col - cols // 2``, ``v = row - rows // 2``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..geometry import angles_from_tilts, rotation_matrices

__all__ = ["tilt_series", "tilt_angles", "dual_axis_angles"]

_CHUNK_SAMPLES = 1 << 22  # samples per map_coordinates call (~100 MB of coordinates)


def tilt_angles(start: float = -70.0, stop: float = 70.0, step: float = 3.5) -> np.ndarray:
    """Single-axis tilt angles in degrees, ``start, start + step, ..., stop`` (stop included).

    The default is the thesis experiment: 41 tilts from -70 to +70 in 3.5 degree steps.
    """
    if step <= 0 or stop < start:
        raise InputError(f"tilt_angles: need step > 0 and stop >= start, got {start}, {stop}, {step}")
    n = int(np.floor((stop - start) / step + 1e-9)) + 1
    return start + step * np.arange(n, dtype=np.float64)


def dual_axis_angles(start: float = -60.0, stop: float = 60.0, step: float = 3.0) -> np.ndarray:
    """Euler ZYX angles (2n, 3) of a dual-axis series: tilts about y ``(0, t, 0)`` then about x ``(0, 0, t)``."""
    t = tilt_angles(start, stop, step)
    first = angles_from_tilts(t)
    second = np.zeros_like(first)
    second[:, 2] = t
    return np.concatenate([first, second])


def _project_one(volume, R, rows, cols, t, chunk_rows, centring="fft", center=None) -> np.ndarray:
    nz, ny, nx = volume.shape
    if centring == "middle":
        cv, cu = (rows - 1) / 2, (cols - 1) / 2 if center is None else float(center)
        centre = np.array([(nx - 1) / 2, (ny - 1) / 2, (nz - 1) / 2], dtype=np.float64)
    else:
        cv, cu = rows // 2, cols // 2 if center is None else float(center)
        centre = np.array([nx // 2, ny // 2, nz // 2], dtype=np.float64)  # index offsets of (x, y, z)
    v_axis = np.arange(rows, dtype=np.float64) - cv
    u_axis = np.arange(cols, dtype=np.float64) - cu
    out = np.empty((rows, cols))
    step = t[1] - t[0] if t.size > 1 else 1.0
    for r0 in range(0, rows, chunk_rows):
        vv, uu, tt = np.meshgrid(v_axis[r0:r0 + chunk_rows], u_axis, t, indexing="ij")
        # r = u R[0] + v R[1] + t R[2]  ->  (x, y, z); then array indices (z, y, x)
        xyz = uu[..., None] * R[0] + vv[..., None] * R[1] + tt[..., None] * R[2] + centre
        coords = np.stack([xyz[..., 2], xyz[..., 1], xyz[..., 0]])
        samples = ndimage.map_coordinates(volume, coords.reshape(3, -1), order=1, mode="constant", cval=0.0,
                                          prefilter=False)
        out[r0:r0 + chunk_rows] = samples.reshape(vv.shape).sum(axis=-1) * step
    return out


def tilt_series(volume, angles, *, detector_shape=None, noise_sigma: float = 0.0, seed=0,
                oversample: int = 2, centring: str = "fft", center=None) -> np.ndarray:
    """Project a volume at the given orientations (reference ray-sum projector).

    Parameters
    ----------
    volume : array_like, (nz, ny, nx)
        Axes (z, y, x); float64 internally.
    angles : array_like, (n,) or (n, 3)
        Single-axis tilts about y in degrees, or Euler ZYX angles in degrees (``fastem.geometry``).
    detector_shape : (rows, cols), optional
        Default ``(ny, nx)``: at zero tilt the projection is the sum over z.
    noise_sigma : float
        Additive Gaussian noise, standard deviation relative to the largest noise-free
        projection value (0.02 = 2 % of the maximum).
    seed : int or None
        Seed of the noise (``numpy.random.default_rng``).
    oversample : int
        Samples per voxel length along each ray (step ``1 / oversample`` voxels).
    centring : {"fft", "middle"}
        ``"fft"`` (default): index ``i`` at ``i - n//2``, the axis at detector ``(rows//2,
        cols//2)`` (:mod:`fastem.geometry`); ``"middle"``: index ``i`` at ``i - (n-1)/2``, the
        axis at ``((rows-1)/2, (cols-1)/2)`` (ASTRA, IMOD; :mod:`fastem.tomo`'s default).
    center : float, optional
        Detector column (pixels) the rotation axis projects to, instead of the default above.

    Returns
    -------
    ndarray, float32, (n, rows, cols)
        Line integrals in voxel-length units: a single voxel of value 1 integrates to ~1 in total.
    """
    vol = np.asarray(volume, dtype=np.float64)
    if vol.ndim != 3:
        raise InputError(f"tilt_series: volume must be 3D (z, y, x), got shape {vol.shape}")
    Rs = rotation_matrices(angles)
    rows, cols = (vol.shape[1], vol.shape[2]) if detector_shape is None else (int(detector_shape[0]), int(detector_shape[1]))
    if rows < 1 or cols < 1:
        raise InputError(f"tilt_series: bad detector shape {(rows, cols)}")
    if oversample < 1:
        raise InputError(f"tilt_series: oversample must be >= 1, got {oversample}")
    if centring not in ("fft", "middle"):
        raise InputError(f"tilt_series: centring must be 'fft' or 'middle', got {centring!r}")
    half = 0.5 * float(np.linalg.norm(vol.shape)) + 1.0
    n_t = int(np.ceil(2 * half * oversample)) + 1
    t = np.linspace(-half, half, n_t)
    chunk_rows = max(1, _CHUNK_SAMPLES // max(1, cols * n_t))
    proj = np.stack([_project_one(vol, R, rows, cols, t, chunk_rows, centring, center) for R in Rs])
    if noise_sigma > 0:
        rng = np.random.default_rng(seed)
        proj += rng.normal(0.0, noise_sigma * float(np.abs(proj).max()), size=proj.shape)
    return proj.astype(np.float32)
