"""The acquisition geometry of a tilt series: volume and detector shapes and orientations.

Conventions are those of :mod:`fastem.geometry` (``../shared/specs/resire.md``): volume stored
(z, y, x), point ``r = (x, y, z)`` with index ``i`` at ``i - n//2``; orientation ``k`` is the
Euler ZYX rotation ``R_k = Z(phi) Y(theta) X(psi)`` (degrees); the point lands on detector
column ``u = R_k[0].r + cols//2`` and row ``v = R_k[1].r + rows//2`` (pixel ``j`` centred on
``j``); the beam runs along ``R_k[2]``. A projection image is stored (rows, cols) = (v, u).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..geometry import rotation_matrices

__all__ = ["ProjectionGeometry", "projection_coefficients", "thin_film_shape"]


def _shape(value, n: int, what: str) -> tuple[int, ...]:
    try:
        items = tuple(value)
        shape = tuple(int(s) for s in items)
        exact = all(not isinstance(s, (bool, np.bool_)) and float(s) == int(s) for s in items)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{what} must be a sequence of {n} positive integers, got {value!r}") from None
    if len(shape) != n or any(s < 1 for s in shape) or not exact:
        raise InputError(f"{what} must be {n} positive integers, got {value!r}")
    return shape


def projection_coefficients(rotations, volume_shape, detector_shape) -> np.ndarray:
    """Affine maps from voxel indices to detector pixel coordinates, (n, 2, 4) float64.

    ``u = c[k,0,0]*ix + c[k,0,1]*iy + c[k,0,2]*iz + c[k,0,3]`` (column coordinate) and ``v``
    from ``c[k, 1]`` (row coordinate), for the voxel at index (iz, iy, ix) of a volume of
    ``volume_shape`` (nz, ny, nx) and a detector of ``detector_shape`` (rows, cols).
    """
    R = np.asarray(rotations, dtype=np.float64)
    nz, ny, nx = volume_shape
    rows, cols = detector_shape
    centre = np.array([nx // 2, ny // 2, nz // 2], dtype=np.float64)  # (x, y, z)
    c = np.empty((R.shape[0], 2, 4))
    for a, det_centre in ((0, cols // 2), (1, rows // 2)):
        c[:, a, :3] = R[:, a, :]
        c[:, a, 3] = det_centre - R[:, a, :] @ centre
    return c


@dataclass(frozen=True)
class ProjectionGeometry:
    """Volume shape, detector shape and orientations of a (multi-axis) tilt series.

    Parameters
    ----------
    volume_shape : (nz, ny, nx)
        Reconstruction volume; z is the beam direction at zero tilt. It may be wider than the
        detector (thin films: voxels outside a projection's field of view get nothing from it).
    detector_shape : (rows, cols)
        Projection images (v, u); need not be square.
    angles : array_like, (n, 3) Euler ZYX degrees, or (n,) tilts about y in degrees

    Attributes
    ----------
    rotations : ndarray (n, 3, 3) float64
    coefficients : ndarray (n, 2, 4) float64 (:func:`projection_coefficients`)
    """

    volume_shape: tuple
    detector_shape: tuple
    angles: np.ndarray
    rotations: np.ndarray = field(init=False, repr=False)
    coefficients: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "volume_shape", _shape(self.volume_shape, 3, "volume_shape"))
        object.__setattr__(self, "detector_shape", _shape(self.detector_shape, 2, "detector_shape"))
        rot = rotation_matrices(self.angles)  # validates: None, non-numbers, empty set, non-finite, wrong shape
        a = np.asarray(self.angles, dtype=np.float64)
        if a.ndim == 1:
            a = np.stack([np.zeros_like(a), a, np.zeros_like(a)], axis=1)
        object.__setattr__(self, "angles", a)
        object.__setattr__(self, "rotations", rot)
        object.__setattr__(self, "coefficients",
                           projection_coefficients(rot, self.volume_shape, self.detector_shape))

    @property
    def n_projections(self) -> int:
        return int(self.rotations.shape[0])

    @property
    def beam_length(self) -> int:
        """``N_z`` of the step ``step / (n * N_z)``: the volume's extent along z (thesis 3.2.1.2)."""
        return int(self.volume_shape[0])

    @property
    def projections_shape(self) -> tuple[int, int, int]:
        return (self.n_projections, *self.detector_shape)

    def single_axis_tilts(self) -> np.ndarray | None:
        """Tilt angles (degrees) when every orientation is a rotation about y, else ``None``."""
        R = self.rotations
        if not np.allclose(R[:, 1, :], [0.0, 1.0, 0.0], atol=1e-9):
            return None
        return np.rad2deg(np.arctan2(R[:, 0, 2], R[:, 0, 0]))

    def check_projections(self, projections, what: str = "projections") -> None:
        """Raise a one-line :class:`InputError` unless ``projections`` is (n, rows, cols)."""
        shape = tuple(projections.shape)
        if len(shape) != 3:
            raise InputError(f"{what} must be (n, rows, cols), got shape {shape}")
        if shape[0] != self.n_projections:
            raise InputError(f"{what}: {shape[0]} projection(s) but {self.n_projections} angle(s)")
        if shape[1:] != self.detector_shape:
            raise InputError(f"{what}: images of {shape[1]}x{shape[2]} but the detector is "
                             f"{self.detector_shape[0]}x{self.detector_shape[1]}")


def thin_film_shape(detector_shape, angles, thickness: int, max_factor: float = 4.0) -> tuple[int, int, int]:
    """Volume (thickness, ny, nx) covering every voxel of a slab that some projection sees.

    A voxel at ``|z| <= thickness/2`` is kept when it lands on the detector for at least one
    orientation; the lateral extent is the bounding box of those regions (the detector's
    corners mapped back into the slab planes ``z = -+ thickness/2``). Near-edge-on orientations
    (whose field of view in the slab would exceed ``max_factor`` times the detector) are
    capped there, with a warning.
    """
    from ._validate import as_int

    rows, cols = _shape(detector_shape, 2, "detector_shape")
    t = as_int(thickness, "thickness", minimum=1)
    R = rotation_matrices(angles)
    half_x, half_y = cols / 2.0, rows / 2.0
    cap_x, cap_y = max_factor * half_x, max_factor * half_y
    ext_x, ext_y, capped = half_x, half_y, 0
    corners = np.array([[su * half_x, sv * half_y] for su in (-1, 1) for sv in (-1, 1)])
    for Rk in R:
        A = Rk[:2, :2]  # (u, v) = A (x, y) + Rk[:2, 2] z
        if abs(np.linalg.det(A)) < 1e-6:
            capped += 1
            ext_x, ext_y = max(ext_x, cap_x), max(ext_y, cap_y)
            continue
        Ainv = np.linalg.inv(A)
        for z in (-t / 2.0, t / 2.0):
            xy = (corners - Rk[:2, 2] * z) @ Ainv.T
            ext_x = max(ext_x, float(np.abs(xy[:, 0]).max()))
            ext_y = max(ext_y, float(np.abs(xy[:, 1]).max()))
    if ext_x > cap_x or ext_y > cap_y or capped:
        warnings.warn(f"thin film: the field of view of the steepest tilts is capped at {max_factor:g} x the "
                      "detector laterally", stacklevel=2)
    ext_x, ext_y = min(ext_x, cap_x), min(ext_y, cap_y)
    nx = max(cols, 2 * math.ceil(ext_x - 1e-9))
    ny = max(rows, 2 * math.ceil(ext_y - 1e-9))
    return (t, int(ny), int(nx))
