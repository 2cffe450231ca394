"""RESIRE: real space iterative reconstruction engine (thesis chapter 3, algorithm 3).

Gradient descent on ``eps(O) = 1/2 sum_k || (P_k(O) - b_k) M_k ||^2`` (eq. 3.1) with all
projections in one gradient:

    O <- O - step / (n * N_z) * sum_k B_k((P_k(O) - b_k) M_k)      (eq. 3.8)
    O <- max(O, 0)                                                (positivity, default on)

With blocked pixels (a mask) the scalar step becomes a per-voxel one
(``step_normalisation="voxel"``, the default there with positivity, through ``"auto"``):

    O <- O - step / (n * N_z) * D * sum_k B_k((P_k(O) - b_k) M_k),   D = sum_k B_k(1) / sum_k B_k(M_k)

``D`` is 1 for a voxel whose rays are all measured (the thesis' step is unchanged there and
without a mask) and 1/f for one of which only the fraction ``f`` is measured. This is the
thesis' Lipschitz argument (section 3.2.1.2: ``L = n N_z`` because ``n`` projections contribute
``N_z`` each) made per voxel: a voxel behind a blocked region in some projections receives
gradient from fewer rays and gets the correspondingly larger step, instead of converging slower
than the rest of the volume (SIRT's column weights do the same). ``D`` is then scaled down (slightly:
a voxel with all rays measured keeps nearly the thesis' step) until the Collatz-Wielandt bound
``max_v (D sum_k B_k(M_k P_k(1)))_v`` is not above the scalar step's: the thesis' ``t = 2`` sits
at the edge of stability (the step is ``2 / L`` for the thesis' estimate ``L = n N_z``), so any
uniform increase can diverge slowly without positivity.

Measured on that case (48^3, 15 % of every projection blocked, 5 % noise; docs/tomo.md): with
positivity the per-voxel step stops by the discrepancy rule at a much lower error than the scalar
one and than SIRT. Without positivity the slowest mode of the weighted step at ``t = 2`` decays
slowly and the result is worse than with the scalar step, so ``"auto"`` keeps the scalar step there.

``P_k`` is the ``fst`` (Fourier slice, the thesis) or ``linear`` (sub-point splatting) forward
projection; ``B_k`` the bilinear back projection (``fst``) or the exact adjoint of ``linear``.
Per iteration: one forward pass fused with the residual and the R-factor sums, one back
projection pass fused with the update, positivity and the support; nothing is allocated.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ._validate import as_float
from .operators import BORDER, make_projector
from .problem import TomoProblem
from .solver import IterativeReconstruction, ReconstructionResult

__all__ = ["Resire", "resire", "STEP_NORMALISATIONS"]

#: ``step_normalisation`` choices: ``auto`` = ``voxel`` with blocked pixels and positivity, else ``global``
STEP_NORMALISATIONS = ("auto", "global", "voxel")
GUARD = 1e-3  # per-voxel counts below GUARD * max are clamped there (as SIRT's column sums)


def resolve_step_normalisation(step_normalisation: str, problem: TomoProblem, positivity: bool = True) -> str:
    """``"global"`` or ``"voxel"`` for ``problem`` (``"auto"``: voxel with a mask that blocks a pixel,
    when positivity is on; see the module docstring for why not without it)."""
    if step_normalisation not in STEP_NORMALISATIONS:
        raise InputError(f"step_normalisation must be one of {', '.join(STEP_NORMALISATIONS)}, "
                         f"got {step_normalisation!r}")
    blocked = problem.has_mask and float(problem.device.xp.min(problem.mask)) < 1.0
    return step_normalisation_for(step_normalisation, blocked, positivity)


def step_normalisation_for(step_normalisation: str, blocked: bool, positivity: bool) -> str:
    """The rule behind ``"auto"``: ``"voxel"`` when the mask blocks a pixel (``blocked``) and
    positivity is on, else ``"global"``; an explicit choice is returned as it is."""
    if step_normalisation != "auto":
        return step_normalisation
    return "voxel" if blocked and positivity else "global"


class Resire(IterativeReconstruction):
    """RESIRE on a :class:`TomoProblem` (see the module docstring).

    Parameters
    ----------
    problem : TomoProblem
    projector : {"fst", "linear"}
    oversampling : float or (z, y, x) floats
        ``fst`` zero padding (default 2).
    step : float
        Normalised step ``t``; the update uses ``t / (n * N_z)`` (thesis 3.2.1.2, default 2).
    positivity, support, initial : see :class:`~fastem.tomo.solver.IterativeReconstruction`
    engine : kernel engine, optional
    step_normalisation : {"auto", "global", "voxel"}
        ``global``: the thesis' scalar ``t / (n * N_z)``; ``voxel``: that step times
        ``sum_k B_k(1) / sum_k B_k(M_k)`` per voxel (module docstring); ``auto`` (default):
        ``voxel`` when the mask blocks a pixel and ``positivity`` is on, else ``global``.
    max_chunk_bytes : int, optional
        Memory for the ``fst`` projector's planes (see :class:`FourierSliceProjector`).
    """

    algorithm = "resire"
    divergence_hint = "try a smaller step (--step, e.g. half of it) or check the data and the angles"

    def __init__(self, problem: TomoProblem, *, projector: str = "fst", oversampling=2.0, step: float = 2.0,
                 positivity: bool = True, support=None, initial=None, engine: str | None = None,
                 max_chunk_bytes: int | None = None, step_normalisation: str = "auto"):
        if not isinstance(problem, TomoProblem):
            raise InputError(f"problem must be a TomoProblem, got {type(problem).__name__}")
        step = as_float(step, "step", positive=True)
        if not isinstance(projector, str):
            raise InputError(f"projector must be one of 'fst', 'linear', got {projector!r}")
        op = make_projector(projector, problem.geometry, device=problem.device, oversampling=oversampling,
                            max_chunk_bytes=max_chunk_bytes, engine=engine)
        super().__init__(problem, op, positivity=positivity, support=support, initial=initial)
        self.step = step
        self.dt = step / (problem.n_projections * problem.geometry.beam_length)
        self.step_normalisation = resolve_step_normalisation(step_normalisation, problem, self.positivity)
        self.voxel_weights = self.support  # what the back projection multiplies the update by
        if self.step_normalisation == "voxel":
            xp = problem.device.xp
            shape = problem.geometry.volume_shape
            with problem.device.use():
                # weights B(1) / B(M): the fraction of a voxel's rays that are measured, inverted; in place,
                # at most two volumes and one projection stack beside the solver's own arrays
                images = xp.ones(problem.geometry.projections_shape, dtype=np.float32)
                weights = self.op.back(images, xp.zeros(shape, dtype=np.float32))
                counts = self.op.back(problem.mask, xp.zeros(shape, dtype=np.float32))
                xp.maximum(counts, np.float32(GUARD * float(counts.max())), out=counts)
                xp.divide(weights, counts, out=weights)
                # keep the scalar step's stability margin: scale so that the Collatz-Wielandt bound
                # max_v (D B M P 1)_v of the weighted gradient operator is not above the unweighted one
                # (the thesis' t = 2 sits at the edge of stability: slightly more diverges slowly
                # without positivity)
                counts.fill(1.0)
                self.op.forward(counts, images)
                images *= problem.mask
                reach = self.op.back(images, counts)     # B(M P 1), into the buffer of the ones
                del images
                top = float(xp.max(reach))
                reach *= weights
                weighted = float(xp.max(reach))
                del reach, counts
                if weighted > top > 0:
                    weights *= np.float32(top / weighted)
                self.voxel_weights = weights
                if self.support is not None:
                    self.voxel_weights *= self.support

    def _step(self) -> float:
        p = self.problem
        self.op.residual(self.volume, p.data, p.mask, self.residual, self.l1)
        rf = p.r_factor(self.l1)
        self.op.back(self.residual, self.volume, alpha=-self.dt, beta=1.0, weights=self.voxel_weights,
                     positivity=self.positivity, border=BORDER)
        return rf

    def config(self) -> dict:
        cfg = super().config()
        cfg.update(step=self.step, dt=self.dt, step_normalisation=self.step_normalisation)
        if self.op.name == "fst":
            cfg.update(oversampling=[float(o) for o in self.op.oversampling], gridding=self.op.gridding,
                       padded_shape=list(self.op.padded_shape),
                       plane_shape=list(self.op.plane_shape), chunk=self.op.chunk)
        return cfg


def resire(projections, angles, *, iterations: int = 100, step: float = 2.0, projector: str = "fst",
           oversampling=2.0, positivity: bool = True, mask=None, support=None, volume_shape=None, thickness=None,
           initial=None, device=None, engine: str | None = None, progress=None, callback=None,
           callback_every: int = 0, state: dict | None = None, rtol: float | None = None, center=None,
           convention: str = "fastem", noise_level: float | None = None, shifts=None,
           step_normalisation: str = "auto") -> ReconstructionResult:
    """Reconstruct a volume from projections with RESIRE.

    Parameters
    ----------
    projections : array_like (n, rows, cols)
    angles : array_like (n, 3) Euler ZYX degrees, or (n,) tilts about y
    iterations : int
        Total iteration count (a resumed run continues up to it).
    step, projector, oversampling, positivity, support, initial, engine, step_normalisation :
        see :class:`Resire`
    mask, volume_shape, thickness, device : see :class:`~fastem.tomo.problem.TomoProblem`
    progress : object with ``update(n)``, optional
        Told of every iteration (e.g. a tqdm bar; :func:`~fastem.tomo.solver.as_progress`); the
        library draws no bar itself. ``False``/``None``: no reporting.
    callback, callback_every : called as ``callback(solver)`` every ``callback_every``
        iterations (checkpoints: ``solver.state()``).
    state : dict, optional
        A checkpoint from :meth:`Resire.state` to continue from.
    rtol : float, optional
        Stop early when the R-factor changes by less than ``rtol`` over 20 iterations.
    center : float, optional
        Detector column of the rotation axis (pixels; default the detector middle ``(cols-1)/2``).
    convention : {"fastem", "thesis"}
        Angle convention (:class:`~fastem.tomo.ProjectionGeometry`): ``"thesis"`` for RESIRE /
        GENFIRE angle files and ASTRA / TomoPy single-axis angles.
    noise_level : float, optional
        Standard deviation of the measurement noise (data units): stop at the discrepancy
        principle (:meth:`~fastem.tomo.solver.IterativeReconstruction.run`).
    shifts : array_like (n, 2), optional
        Per-projection detector shifts (du, dv) in pixels (e.g. from
        :func:`~fastem.tomo.refine_alignment`).

    Returns
    -------
    ReconstructionResult
    """
    problem = TomoProblem(projections, angles, volume_shape=volume_shape, thickness=thickness, mask=mask,
                          device=device, center=center, convention=convention, shifts=shifts)
    solver = Resire(problem, projector=projector, oversampling=oversampling, step=step, positivity=positivity,
                    support=support, initial=initial, engine=engine, step_normalisation=step_normalisation)
    if state is not None:
        solver.restore(state)
    return solver.run(iterations, progress=progress, callback=callback, callback_every=callback_every, rtol=rtol,
                      noise_level=noise_level)
