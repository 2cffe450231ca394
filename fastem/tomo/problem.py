"""A tomography problem on one device: validated projections, geometry, mask and R-factor weights.

Every reconstruction (RESIRE, SIRT, FBP) starts from a :class:`TomoProblem`: the projections
are checked once at the boundary (shape, angle count, non-finite values), masked-out pixels are
zeroed (so that whatever a blocked region holds cannot reach the result), and the data, the
0/1 mask and the R-factor denominators are moved to the device for the whole run.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from .. import backend
from ..errors import InputError
from ._validate import as_array
from .projection_geometry import ProjectionGeometry, thin_film_shape

__all__ = ["TomoProblem", "default_volume_shape", "data_scale", "SAFE_RANGE"]

#: measured values whose largest magnitude lies outside ``[2**-SAFE_RANGE, 2**SAFE_RANGE]`` are
#: scaled by a power of two internally: the projections' sums, the padded spectra and the back
#: projections then stay far from float32 overflow and underflow (and the scaling is exact).
SAFE_RANGE = 32
_F32_MAX = float(np.finfo(np.float32).max)


def data_scale(values) -> float:
    """The power of two that brings ``max |values|`` near 1 when it is outside the safe range, else 1.

    Raises :class:`InputError` when the values exceed the float32 range of the reconstruction
    (the volume, in the data's units, could not be stored).
    """
    if values.size == 0 or values.dtype.kind not in "fiu":
        return 1.0
    amax = max(abs(float(values.max())), abs(float(values.min())))
    if amax > _F32_MAX / 2:
        raise InputError(f"projections: values up to {amax:.3g} exceed the float32 range of the reconstruction "
                         f"(about {_F32_MAX / 2:.1e}); rescale the data (e.g. divide by {2.0 ** math.ceil(math.log2(amax / 1e6)):.3g})")
    if amax == 0 or 2.0 ** -SAFE_RANGE <= amax <= 2.0 ** SAFE_RANGE:
        return 1.0
    scale = 2.0 ** -math.floor(math.log2(amax))
    from ..io.validate import DataWarning

    warnings.warn(f"projections: values up to {amax:.3g} are far from 1; the reconstruction works on them "
                  f"multiplied by 2^{int(round(math.log2(scale)))} (exact) to stay within float32 arithmetic, "
                  "and the volume is scaled back", DataWarning, stacklevel=3)
    return scale


def default_volume_shape(detector_shape) -> tuple[int, int, int]:
    """(cols, rows, cols): a volume as deep along the beam as the detector is wide."""
    rows, cols = (int(s) for s in detector_shape)
    return (cols, rows, cols)


class TomoProblem:
    """Projections + orientations (+ mask) of one tilt series, resident on ``device``.

    Parameters
    ----------
    projections : array_like, (n, rows, cols)
        Measured projections (line integrals). Converted to float32.
    angles : array_like, (n, 3) Euler ZYX degrees or (n,) tilts about y (degrees)
    volume_shape : (nz, ny, nx), optional
        Reconstruction volume. Default: ``thin_film_shape(..., thickness)`` when ``thickness``
        is given, else (cols, rows, cols).
    thickness : int, optional
        Slab thickness (voxels along z) of a thin film / non-isolated object; the volume then
        covers the lateral field of view of every tilt (:func:`thin_film_shape`).
    mask : array_like of bool, (n, rows, cols), optional
        1 = measured, 0 = blocked or bad. Masked pixels never enter the residual or the R-factor.
    device : Device-like
    center : float, optional
        Detector column of the rotation axis (pixels); default the detector middle ``(cols-1)/2``.
    convention : {"fastem", "thesis"}
        Angle convention (:class:`~fastem.tomo.ProjectionGeometry`); default ``"fastem"``.
    shifts : array_like (n, 2), optional
        Per-projection detector shifts (du, dv) in pixels (:class:`~fastem.tomo.ProjectionGeometry`).

    Attributes
    ----------
    scale : float
        Power of two the measured values were multiplied by on the device (1 for ordinary
        data; see :func:`data_scale`): values near float32 overflow (1e38) or underflow are
        brought near 1, the solvers work in those units and scale their volumes back exactly.

    Raises
    ------
    InputError
        wrong rank, angle / projection count mismatch, empty angle set, mask of another shape,
        complex or non-numeric values, non-finite values in measured pixels (the message counts
        them and names the first projection), values beyond the float32 range, an all-zero
        data set.
    """

    def __init__(self, projections, angles, *, volume_shape=None, thickness=None, mask=None, device=None,
                 center=None, convention: str = "fastem", shifts=None):
        proj = as_array(projections, "projections")
        if proj.ndim != 3:
            raise InputError(f"projections must be (n, rows, cols), got shape {proj.shape}")
        if proj.shape[0] == 0:
            raise InputError("empty angle set: no projections given")
        detector = proj.shape[1:]
        if min(detector) < 1:
            raise InputError(f"projections must have non-empty images, got shape {proj.shape}")
        if mask is not None:
            mask = as_array(mask, "mask") != 0
            if mask.shape != proj.shape:
                raise InputError(f"mask has shape {mask.shape} but the projections have shape {proj.shape}")
        if volume_shape is None:
            volume_shape = (thin_film_shape(detector, angles, thickness, center=center, convention=convention)
                            if thickness is not None else default_volume_shape(detector))
        elif thickness is not None:
            raise InputError("give volume_shape or thickness, not both")
        self.geometry = ProjectionGeometry(volume_shape, detector, angles, center=center, convention=convention,
                                           shifts=shifts)
        self.geometry.check_projections(proj)
        finite = np.isfinite(proj)
        bad = ~finite if mask is None else (~finite & mask)
        if bad.any():
            per = bad.reshape(bad.shape[0], -1).sum(axis=1)
            first = int(np.flatnonzero(per)[0])
            raise InputError(f"projections contain {int(bad.sum())} non-finite value(s) (NaN/inf) in "
                             f"{int((per > 0).sum())} projection(s), first in projection {first}; mask them "
                             "(mask 0 = not measured) or clean the data")
        del bad
        measured = finite if mask is None else (mask & finite)
        del finite
        values = np.where(measured, proj, 0)
        self.scale = data_scale(values)
        data = (values * self.scale if self.scale != 1.0 else values).astype(np.float32, copy=False)
        del values
        self.has_mask = mask is not None
        den = np.sum(np.abs(data, dtype=np.float64), axis=(1, 2))
        self.valid = den > 0
        if not self.valid.any():
            raise InputError("every projection is zero over its measured pixels: nothing to reconstruct")
        self.denominators = den
        self.device = backend.Device(device)
        with self.device.use():
            self.data = backend.to_device(data, self.device)
            self.mask = backend.to_device(measured.astype(np.float32), self.device)
            w = np.where(self.valid, 1.0 / np.where(self.valid, den, 1.0), 0.0) / self.valid.sum()
            self._rf_weights = backend.to_device(w, self.device)

    @property
    def n_projections(self) -> int:
        return self.geometry.n_projections

    def r_factor(self, l1) -> float:
        """R-factor (thesis eq. 3.9) from per-projection L1 residual sums ``l1`` (device, float64).

        ``R_F = (1/n') sum_k l1[k] / sum|b_k|`` over the ``n'`` projections with measured signal.
        """
        xp = self.device.xp
        return float(xp.dot(l1, self._rf_weights))
