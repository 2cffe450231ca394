"""Baselines on the same operators and data: SIRT (row/column normalised) and FBP (ramp filter).

SIRT (docs/tomo.md, "Command line" and "Python API"): ``O <- O + C A^T R (b - A O)`` on the ``linear`` pair
``A = P``, ``A^T = B`` (exact adjoints), with ``R`` the inverse row sums ``1 / (A 1)`` (times
the mask) and ``C`` the inverse column sums ``1 / (A^T M)``; both guarded below by 1e-3 of
their maximum so that rays or voxels barely touched by the geometry cannot blow up. One
iteration costs what a RESIRE ``linear`` iteration costs.

FBP: ramp (Ram-Lak, spatial-domain kernel ``h[0] = 1/4``, ``h[odd m] = -1/(pi m)^2``) filter
along the detector columns with zero padding, each projection weighted by its share of the
tilt range (radians), then the bilinear back projection. Single tilt axis only (rotations
about y); masked pixels are set to 0 before filtering.
"""

from __future__ import annotations

import time

import numpy as np
from scipy.fft import next_fast_len

from .. import backend
from .. import fft as F
from ..errors import InputError, NonFiniteResultError
from ._validate import as_bool, as_float
from .operators import BORDER, LinearProjector
from .problem import TomoProblem
from .solver import IterativeReconstruction, ReconstructionResult

__all__ = ["Sirt", "sirt", "fbp", "ramp_filter", "angular_weights"]

GUARD = 1e-3  # row / column sums below GUARD * max are clamped there


class Sirt(IterativeReconstruction):
    """SIRT on a :class:`TomoProblem` with the ``linear`` projector pair.

    Parameters
    ----------
    problem : TomoProblem
    positivity : bool
        Clamp at 0 after each update (default off: classic SIRT).
    support, initial : see :class:`~fastem.tomo.solver.IterativeReconstruction`
    relaxation : float
        Multiplies the update (1 = plain SIRT).
    engine : kernel engine, optional
    """

    algorithm = "sirt"
    divergence_hint = "try a smaller relaxation or check the data and the angles"

    def __init__(self, problem: TomoProblem, *, positivity: bool = False, support=None, initial=None,
                 relaxation: float = 1.0, engine: str | None = None):
        if not isinstance(problem, TomoProblem):
            raise InputError(f"problem must be a TomoProblem, got {type(problem).__name__}")
        relaxation = as_float(relaxation, "relaxation", positive=True)
        op = LinearProjector(problem.geometry, device=problem.device, engine=engine)
        super().__init__(problem, op, positivity=positivity, support=support, initial=initial)
        self.relaxation = relaxation
        xp = problem.device.xp
        with problem.device.use():
            ones = xp.ones(problem.geometry.volume_shape, dtype=np.float32)
            rows = op.forward(ones, xp.empty(problem.geometry.projections_shape, dtype=np.float32))
            floor = GUARD * float(rows.max())
            self.row_weights = (problem.mask / xp.maximum(rows, floor)).astype(np.float32)
            cols = op.back(problem.mask, xp.zeros(problem.geometry.volume_shape, dtype=np.float32))
            floor = GUARD * float(cols.max())
            self.column_weights = (1.0 / xp.maximum(cols, floor)).astype(np.float32)
            if self.support is not None:
                self.column_weights *= self.support
            del ones, rows, cols

    @property
    def _residual_weights(self):
        return self.row_weights

    def _step(self) -> float:
        p = self.problem
        self.op.residual(self.volume, p.data, self.row_weights, self.residual, self.l1)
        rf = p.r_factor(self.l1)
        self.op.back(self.residual, self.volume, alpha=-self.relaxation, beta=1.0, weights=self.column_weights,
                     positivity=self.positivity, border=BORDER)
        return rf

    def config(self) -> dict:
        cfg = super().config()
        cfg.update(relaxation=self.relaxation, guard=GUARD)
        return cfg


def sirt(projections, angles, *, iterations: int = 100, positivity: bool = False, mask=None, support=None,
         volume_shape=None, thickness=None, initial=None, device=None, engine: str | None = None,
         progress=None, callback=None, callback_every: int = 0, state: dict | None = None,
         rtol: float | None = None, center=None, convention: str = "fastem",
         noise_level: float | None = None) -> ReconstructionResult:
    """SIRT reconstruction (same arguments as :func:`fastem.tomo.resire`, ``linear`` projector)."""
    problem = TomoProblem(projections, angles, volume_shape=volume_shape, thickness=thickness, mask=mask,
                          device=device, center=center, convention=convention)
    solver = Sirt(problem, positivity=positivity, support=support, initial=initial, engine=engine)
    if state is not None:
        solver.restore(state)
    return solver.run(iterations, progress=progress, callback=callback, callback_every=callback_every, rtol=rtol,
                      noise_level=noise_level)


def ramp_filter(n_pad: int) -> np.ndarray:
    """Real frequency response (n_pad//2 + 1,) of the Ram-Lak kernel on ``n_pad`` samples."""
    m = np.fft.fftfreq(n_pad, 1.0 / n_pad)  # signed sample offsets 0, 1, ..., -1
    h = np.zeros(n_pad)
    h[0] = 0.25
    odd = (np.abs(m) % 2) == 1
    h[odd] = -1.0 / (np.pi * m[odd]) ** 2
    return np.fft.rfft(h).real


def angular_weights(tilts_deg) -> np.ndarray:
    """Each projection's share of the tilt range in radians (half the gap to each neighbour;
    the end points take their one-sided gap), in the order given."""
    t = np.deg2rad(np.asarray(tilts_deg, dtype=np.float64))
    if t.size == 1:
        return np.array([np.pi])
    order = np.argsort(t)
    ts = t[order]
    gaps = np.diff(ts)
    w = np.empty_like(ts)
    w[1:-1] = 0.5 * (gaps[:-1] + gaps[1:])
    w[0], w[-1] = gaps[0], gaps[-1]
    out = np.empty_like(w)
    out[order] = w
    return out


def fbp(projections, angles, *, mask=None, volume_shape=None, thickness=None, positivity: bool = False,
        device=None, engine: str | None = None, center=None, convention: str = "fastem") -> ReconstructionResult:
    """Filtered back projection (single tilt axis about y; ``center``, ``convention`` as :func:`resire`).

    Returns a :class:`ReconstructionResult` whose R-factor is that of the ``linear`` forward
    projection of the FBP volume (the history is empty: FBP is one step).
    """
    t0 = time.perf_counter()
    positivity = as_bool(positivity, "positivity")
    problem = TomoProblem(projections, angles, volume_shape=volume_shape, thickness=thickness, mask=mask,
                          device=device, center=center, convention=convention)
    geo = problem.geometry
    tilts = geo.single_axis_tilts()
    if tilts is None:
        raise InputError("FBP needs a single tilt axis: every orientation must be a rotation about y "
                         "(Euler angles (0, theta, 0)); use RESIRE or SIRT for multi-axis data")
    n, rows, cols = geo.projections_shape
    n_pad = next_fast_len(2 * cols)
    n_pad += n_pad % 2
    xp = problem.device.xp
    with problem.device.use():
        padded = xp.zeros((n, rows, n_pad), dtype=np.float32)
        padded[:, :, :cols] = problem.data  # masked pixels are already 0
        spectrum = F.rfft(padded, axis=-1)
        spectrum *= backend.to_device(ramp_filter(n_pad).astype(np.float32), problem.device)
        filtered = F.irfft(spectrum, n=n_pad, axis=-1)[:, :, :cols]
        w = backend.to_device(angular_weights(tilts).astype(np.float32), problem.device)
        images = xp.ascontiguousarray(filtered * w[:, None, None], dtype=np.float32)
        bilinear = LinearProjector(geo, device=problem.device, subpoints=1, engine=engine)
        volume = bilinear.back(images, bilinear.empty_volume(), positivity=positivity)
        linear = LinearProjector(geo, device=problem.device, engine=engine)  # R-factor through the linear model
        residual = linear.bordered_images()
        l1 = xp.zeros(n, dtype=np.float64)
        linear.residual(volume, problem.data, problem.mask, residual, l1)
        rf = problem.r_factor(l1)
    volume = np.asarray(backend.to_device(volume, "cpu")).copy()
    if problem.scale != 1.0:
        volume *= np.float32(1.0 / problem.scale)  # a power of two: exact
    if not np.isfinite(rf) or not np.all(np.isfinite(volume)):
        raise NonFiniteResultError(f"fbp: the volume holds NaN/inf (R-factor {rf:.3g}); check the data")
    return ReconstructionResult(volume=volume,
                                r_factor_history=np.zeros(0), r_factor=rf, iterations=1, algorithm="fbp",
                                config={"algorithm": "fbp", "filter": "ram-lak", "padding": n_pad,
                                        "positivity": bool(positivity), "volume_shape": list(geo.volume_shape),
                                        "detector_shape": list(geo.detector_shape), "n_projections": n,
                                        "mask": problem.has_mask, "device": str(problem.device),
                                        "data_scale": problem.scale, "center": geo.center,
                                        "angles_convention": geo.convention},
                                seconds=time.perf_counter() - t0)
