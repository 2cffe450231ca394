"""The acquisition geometry of a tilt series: volume and detector shapes and orientations.

Conventions (docs/tomo.md, "Geometry"): volume stored (z, y, x), point
``r = (x, y, z)``; index ``i`` of an axis of length ``n`` sits at ``i - (n-1)/2`` (the geometric
middle of the grid, as ASTRA and IMOD place it; for odd ``n`` this is ``i - n//2``). The rotation
axis passes through detector column ``center`` (default the detector middle ``(cols-1)/2``) and
the detector rows are centred at ``(rows-1)/2``. With the *effective* rotation ``A_k`` of
projection ``k`` the point lands on column ``u = A_k[0].r + center`` and row
``v = A_k[1].r + (rows-1)/2`` (pixel ``j`` centred on ``j``); the beam runs along ``A_k[2]``. A
projection image is stored (rows, cols) = (v, u).

Angle conventions (Euler ZYX degrees ``(phi, theta, psi)``, ``R = Z(phi) Y(theta) X(psi)``,
right-handed):

``"fastem"``
    ``A = R``: the point lands at the first two components of ``R r`` (:mod:`fastem.geometry`,
    :func:`fastem.data.tilt_series`). A tilt ``theta`` about y maps ``r`` to ``u = x cos(theta)
    + z sin(theta)``.
``"thesis"``
    ``A = R^T``: seed 004 eq. 3.3-3.4, ``Pi(O){x, y} = sum_z O{R (x, y, z)}``, so the point
    lands at the first two components of ``R^T r`` -- the convention of RESIRE and GENFIRE
    angle files. For one tilt axis it is ``fastem`` with ``theta -> -theta``, which is also
    ASTRA's parallel-beam angle (and TomoPy's, which hands theta to ASTRA unchanged) for the
    slice ``volume[:, y, :]`` taken as ASTRA's (row, col) image: ``u = x cos(theta) -
    z sin(theta)``, ``z`` growing with the row index.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..geometry import rotation_matrices

__all__ = ["ProjectionGeometry", "projection_coefficients", "thin_film_shape", "effective_rotations",
           "ANGLE_CONVENTIONS", "grid_centre"]

#: the angle conventions :class:`ProjectionGeometry` accepts (see the module docstring)
ANGLE_CONVENTIONS = ("fastem", "thesis")


def grid_centre(n: int) -> float:
    """Index of the geometric middle of an axis of ``n`` samples: ``(n - 1) / 2``."""
    return (int(n) - 1) / 2.0


def effective_rotations(angles, convention: str = "fastem") -> np.ndarray:
    """Rotations ``A_k`` (n, 3, 3) whose rows 0 and 1 give the detector axes u and v.

    ``convention="fastem"``: ``A = R = Z(phi) Y(theta) X(psi)``; ``"thesis"`` (seed 004 eq.
    3.3-3.4, RESIRE/GENFIRE angle files): ``A = R^T``. ``angles`` (n,) are tilts about y.
    """
    if not isinstance(convention, str) or convention not in ANGLE_CONVENTIONS:
        raise InputError(f"angles convention must be one of {', '.join(ANGLE_CONVENTIONS)}, got {convention!r}")
    R = rotation_matrices(angles)
    return np.ascontiguousarray(np.transpose(R, (0, 2, 1))) if convention == "thesis" else R


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


def projection_coefficients(rotations, volume_shape, detector_shape, center=None) -> np.ndarray:
    """Affine maps from voxel indices to detector pixel coordinates, (n, 2, 4) float64.

    ``u = c[k,0,0]*ix + c[k,0,1]*iy + c[k,0,2]*iz + c[k,0,3]`` (column coordinate) and ``v``
    from ``c[k, 1]`` (row coordinate), for the voxel at index (iz, iy, ix) of a volume of
    ``volume_shape`` (nz, ny, nx) and a detector of ``detector_shape`` (rows, cols).
    ``rotations`` are the effective rotations (:func:`effective_rotations`); the voxel sits at
    ``r = (ix - (nx-1)/2, iy - (ny-1)/2, iz - (nz-1)/2)`` and the rotation axis projects to
    column ``center`` (pixels, default ``(cols-1)/2``), the detector rows are centred at
    ``(rows-1)/2``.
    """
    R = np.asarray(rotations, dtype=np.float64)
    nz, ny, nx = volume_shape
    rows, cols = detector_shape
    centre = np.array([grid_centre(nx), grid_centre(ny), grid_centre(nz)], dtype=np.float64)  # (x, y, z)
    cu = grid_centre(cols) if center is None else float(center)
    c = np.empty((R.shape[0], 2, 4))
    for a, det_centre in ((0, cu), (1, grid_centre(rows))):
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
    center : float, optional
        Detector column (pixels, may be fractional or outside the detector) through which the
        rotation axis projects; default the detector middle ``(cols - 1) / 2``.
    convention : {"fastem", "thesis"}
        How the angles map points to the detector (module docstring): ``"fastem"`` (default of
        the Python API, ``u, v`` from ``R r``) or ``"thesis"`` (seed 004 eq. 3.3-3.4, ``R^T r``).
    shifts : array_like (n, 2), optional
        Per-projection detector shifts ``(du, dv)`` in pixels (columns, rows): projection ``k``
        is the ideal one moved by ``+du`` columns and ``+dv`` rows (from alignment,
        :func:`fastem.tomo.refine_alignment`); default none.

    Attributes
    ----------
    rotations : ndarray (n, 3, 3) float64
        The effective rotations ``A_k`` (``R`` or ``R^T``): rows 0, 1 are the detector axes.
    coefficients : ndarray (n, 2, 4) float64 (:func:`projection_coefficients`)
    """

    volume_shape: tuple
    detector_shape: tuple
    angles: np.ndarray
    center: float | None = None
    convention: str = "fastem"
    shifts: np.ndarray | None = None
    rotations: np.ndarray = field(init=False, repr=False)
    coefficients: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "volume_shape", _shape(self.volume_shape, 3, "volume_shape"))
        object.__setattr__(self, "detector_shape", _shape(self.detector_shape, 2, "detector_shape"))
        # validates: None, non-numbers, empty set, non-finite, wrong shape, unknown convention
        rot = effective_rotations(self.angles, self.convention)
        if self.center is None:
            center = grid_centre(self.detector_shape[1])
        else:
            try:
                center = float(self.center)
            except (TypeError, ValueError):
                raise InputError(f"center must be a detector column in pixels, got {self.center!r}") from None
            if isinstance(self.center, (bool, np.bool_)) or not math.isfinite(center):
                raise InputError(f"center must be a finite detector column in pixels, got {self.center!r}")
        object.__setattr__(self, "center", center)
        a = np.asarray(self.angles, dtype=np.float64)
        if a.ndim == 1:
            a = np.stack([np.zeros_like(a), a, np.zeros_like(a)], axis=1)
        object.__setattr__(self, "angles", a)
        object.__setattr__(self, "rotations", rot)
        coeffs = projection_coefficients(rot, self.volume_shape, self.detector_shape, center)
        if self.shifts is not None:
            try:
                sh = np.array(self.shifts, dtype=np.float64)
            except (TypeError, ValueError):
                raise InputError(f"shifts must be (n, 2) numbers (du, dv) in pixels, got {self.shifts!r}") from None
            if sh.shape != (rot.shape[0], 2) or not np.all(np.isfinite(sh)):
                raise InputError(f"shifts must be ({rot.shape[0]}, 2) finite pixel shifts (du, dv), got shape "
                                 f"{sh.shape}")
            coeffs[:, 0, 3] += sh[:, 0]
            coeffs[:, 1, 3] += sh[:, 1]
            sh.setflags(write=False)
            object.__setattr__(self, "shifts", sh)
        object.__setattr__(self, "coefficients", coeffs)

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

    @property
    def max_shift(self) -> tuple[float, float]:
        """Largest ``|du|`` and ``|dv|`` of the per-projection shifts (0 without shifts)."""
        if self.shifts is None:
            return 0.0, 0.0
        return float(np.abs(self.shifts[:, 0]).max()), float(np.abs(self.shifts[:, 1]).max())

    @property
    def axis_offset(self) -> float:
        """``center - (cols-1)/2``: how far (pixels) the rotation axis sits from the detector middle."""
        return float(self.center - grid_centre(self.detector_shape[1]))

    def single_axis_tilts(self) -> np.ndarray | None:
        """Tilts (degrees, ``fastem`` sign: ``u = x cos + z sin``) when every orientation is a
        rotation about y, else ``None`` (the effective rotations are tested, any convention)."""
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


def thin_film_shape(detector_shape, angles, thickness: int, max_factor: float = 4.0, *, center=None,
                    convention: str = "fastem") -> tuple[int, int, int]:
    """Volume (thickness, ny, nx) covering every voxel of a slab that some projection sees.

    A voxel at ``|z| <= thickness/2`` is kept when it lands on the detector for at least one
    orientation; the lateral extent is the bounding box of those regions (the detector's
    corners mapped back into the slab planes ``z = -+ thickness/2``). Near-edge-on orientations
    (whose field of view in the slab would exceed ``max_factor`` times the detector) are
    capped there, with a warning. ``center`` (rotation-axis column, default the middle) widens
    the field of view by its offset from the middle; ``convention`` as :class:`ProjectionGeometry`.
    """
    from ._validate import as_int

    rows, cols = _shape(detector_shape, 2, "detector_shape")
    t = as_int(thickness, "thickness", minimum=1)
    R = effective_rotations(angles, convention)
    offset = 0.0 if center is None else abs(float(center) - grid_centre(cols))
    half_x, half_y = cols / 2.0 + offset, rows / 2.0
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
