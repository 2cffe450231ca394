"""RESIRE tomography (thesis chapter 3; docs/tomo.md).

Entry points
    :func:`resire`, :func:`sirt`, :func:`fbp` -- reconstruct a volume (z, y, x) from
    projections (n, rows, cols) and Euler ZYX angles (n, 3) or tilts about y (n,);
    :class:`Resire`, :class:`Sirt` -- the same as resumable solvers (``state()`` /
    ``restore()``); :class:`TomoProblem` -- validated data on a device.
Operators
    :class:`ProjectionGeometry`, :class:`LinearProjector` (sub-point splatting and its exact
    adjoint), :class:`FourierSliceProjector` (``fst``), :func:`make_projector`,
    :func:`thin_film_shape`, :func:`projection_coefficients`.
Geometry helpers
    :func:`find_center` (``fastem.tomo.centre``: rotation axis of a single-axis series);
    :func:`refine_alignment` (``fastem.tomo.refine``: per-projection angle and shift refinement).
Metrics
    :func:`r_factor`, :func:`relative_error`, :func:`fourier_shell_correlation`.
Jobs
    :mod:`fastem.tomo.job` (``tomo_file``: what ``fastem tomo`` runs: locked output, resume
    fingerprints, finite results only, memory pre-check) and :mod:`fastem.tomo.memory`
    (``estimate_run_bytes``, ``available_bytes``).
"""

from .baselines import Sirt, angular_weights, fbp, ramp_filter, sirt
from .centre import CenterEstimate, find_center
from .metrics import fourier_shell_correlation, r_factor, r_factor_per_projection, relative_error
from .operators import BORDER, PROJECTORS, FourierSliceProjector, LinearProjector, fst_grid, make_projector
from .problem import TomoProblem, default_volume_shape
from .projection_geometry import ProjectionGeometry, projection_coefficients, thin_film_shape
from .refine import AlignmentResult, refine_alignment
from .resire import Resire, resire
from .solver import IterativeReconstruction, ReconstructionResult

__all__ = [
    "resire", "Resire", "sirt", "Sirt", "fbp", "ramp_filter", "angular_weights",
    "TomoProblem", "default_volume_shape", "IterativeReconstruction", "ReconstructionResult",
    "ProjectionGeometry", "projection_coefficients", "thin_film_shape",
    "LinearProjector", "FourierSliceProjector", "make_projector", "fst_grid", "PROJECTORS", "BORDER",
    "r_factor", "r_factor_per_projection", "relative_error", "fourier_shell_correlation",
    "find_center", "CenterEstimate", "refine_alignment", "AlignmentResult",
]
