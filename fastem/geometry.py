"""Projection geometry shared by the synthetic tilt series and the tomography engine.

Conventions (docs/tomo.md "Geometry", thesis (seed 004) chapter 3):

* Volumes are stored ``(z, y, x)`` in memory; a point is written ``r = (x, y, z)``.
* Coordinates are centred: index ``i`` on an axis of length ``n`` sits at ``i - n // 2`` (the
  ``numpy.fft.fftshift`` convention); the detector centre is likewise ``(rows // 2, cols // 2)``.
* Orientation of a projection: Euler angles ``(phi, theta, psi)`` in degrees, convention ZYX,
  ``R = Z(phi) @ Y(theta) @ X(psi)``, each a right-handed rotation by +angle.
* A point ``r`` lands on the detector at ``u = R[0] . r`` (column direction) and
  ``v = R[1] . r`` (row direction); the beam runs along ``R[2]``. A projection image is stored
  ``(rows, cols) = (v, u)``, so with ``R = I`` it is the sum of the volume over z, shape (ny, nx).
* A single tilt series is ``(0, theta, 0)``: tilt about y. For +theta a voxel at ``x > 0,
  z = 0`` moves to ``u = x cos(theta)``; one at ``z > 0`` moves towards +u (``u = z sin(theta)``).
"""

from __future__ import annotations

import numpy as np

from .errors import InputError

__all__ = [
    "rotation_x",
    "rotation_y",
    "rotation_z",
    "rotation_zyx",
    "rotation_matrices",
    "angles_from_tilts",
    "centred_coordinates",
    "project_point",
]


def rotation_x(psi_deg: float) -> np.ndarray:
    """Right-handed rotation by ``psi`` degrees about x, acting on column vectors (x, y, z)."""
    c, s = np.cos(np.deg2rad(psi_deg)), np.sin(np.deg2rad(psi_deg))
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rotation_y(theta_deg: float) -> np.ndarray:
    """Right-handed rotation by ``theta`` degrees about y."""
    c, s = np.cos(np.deg2rad(theta_deg)), np.sin(np.deg2rad(theta_deg))
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rotation_z(phi_deg: float) -> np.ndarray:
    """Right-handed rotation by ``phi`` degrees about z."""
    c, s = np.cos(np.deg2rad(phi_deg)), np.sin(np.deg2rad(phi_deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rotation_zyx(phi: float, theta: float, psi: float) -> np.ndarray:
    """``R = Z(phi) Y(theta) X(psi)`` (degrees), float64 (3, 3)."""
    return rotation_z(phi) @ rotation_y(theta) @ rotation_x(psi)


def angles_from_tilts(theta_deg) -> np.ndarray:
    """Single-axis tilt angles (degrees, about y) -> Euler ZYX angles (n, 3): ``(0, theta, 0)``."""
    theta = np.asarray(theta_deg, dtype=np.float64).reshape(-1)
    out = np.zeros((theta.size, 3))
    out[:, 1] = theta
    return out


def rotation_matrices(angles_deg) -> np.ndarray:
    """Euler ZYX angles (n, 3) in degrees -> rotation matrices (n, 3, 3) float64.

    A 1D array is taken as single-axis tilts about y.
    """
    if angles_deg is None:
        raise InputError("angles are required: (n,) tilts or (n, 3) Euler ZYX angles in degrees, got None")
    try:
        a = np.asarray(angles_deg)
        if a.dtype.kind == "c":
            raise InputError(f"angles must be real numbers (degrees), got complex values (dtype {a.dtype})")
        a = a.astype(np.float64)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"angles must be numbers (degrees), got {type(angles_deg).__name__} "
                         f"({str(exc).splitlines()[0][:80]})") from None
    if a.ndim == 1:
        a = angles_from_tilts(a)
    if a.ndim != 2 or a.shape[1] != 3:
        raise InputError(f"angles must be (n,) tilts or (n, 3) Euler ZYX angles, got shape {a.shape}")
    if a.shape[0] == 0:
        raise InputError("empty angle set: at least one projection angle is needed")
    if not np.all(np.isfinite(a)):
        raise InputError(f"angles contain {int(np.sum(~np.isfinite(a)))} non-finite value(s)")
    return np.stack([rotation_zyx(*row) for row in a])


def centred_coordinates(n: int) -> np.ndarray:
    """Centred coordinates ``i - n // 2`` for ``i = 0..n-1`` (float64)."""
    return np.arange(n, dtype=np.float64) - (n // 2)


def project_point(R: np.ndarray, r_xyz, detector_shape) -> tuple[float, float]:
    """Detector position (row, col) in pixel indices of the centred point ``r = (x, y, z)``."""
    r = np.asarray(r_xyz, dtype=np.float64)
    u = float(R[0] @ r)
    v = float(R[1] @ r)
    rows, cols = detector_shape
    return v + rows // 2, u + cols // 2
