"""RESIRE: real space iterative reconstruction engine (thesis chapter 3, algorithm 3).

Gradient descent on ``eps(O) = 1/2 sum_k || (P_k(O) - b_k) M_k ||^2`` (eq. 3.1) with all
projections in one gradient:

    O <- O - step / (n * N_z) * sum_k B_k((P_k(O) - b_k) M_k)      (eq. 3.8)
    O <- max(O, 0)                                                (positivity, default on)

``P_k`` is the ``fst`` (Fourier slice, the thesis) or ``linear`` (sub-point splatting) forward
projection; ``B_k`` the bilinear back projection (``fst``) or the exact adjoint of ``linear``.
Per iteration: one forward pass fused with the residual and the R-factor sums, one back
projection pass fused with the update, positivity and the support; nothing is allocated.
"""

from __future__ import annotations

from ..errors import InputError
from ._validate import as_float
from .operators import BORDER, make_projector
from .problem import TomoProblem
from .solver import IterativeReconstruction, ReconstructionResult

__all__ = ["Resire", "resire"]


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
    max_chunk_bytes : int, optional
        Memory for the ``fst`` projector's planes (see :class:`FourierSliceProjector`).
    """

    algorithm = "resire"
    divergence_hint = "try a smaller step (--step, e.g. half of it) or check the data and the angles"

    def __init__(self, problem: TomoProblem, *, projector: str = "fst", oversampling=2.0, step: float = 2.0,
                 positivity: bool = True, support=None, initial=None, engine: str | None = None,
                 max_chunk_bytes: int | None = None):
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

    def _step(self) -> float:
        p = self.problem
        self.op.residual(self.volume, p.data, p.mask, self.residual, self.l1)
        rf = p.r_factor(self.l1)
        self.op.back(self.residual, self.volume, alpha=-self.dt, beta=1.0, weights=self.support,
                     positivity=self.positivity, border=BORDER)
        return rf

    def config(self) -> dict:
        cfg = super().config()
        cfg.update(step=self.step, dt=self.dt)
        if self.op.name == "fst":
            cfg.update(oversampling=[float(o) for o in self.op.oversampling], gridding=self.op.gridding,
                       padded_shape=list(self.op.padded_shape),
                       plane_shape=list(self.op.plane_shape), chunk=self.op.chunk)
        return cfg


def resire(projections, angles, *, iterations: int = 100, step: float = 2.0, projector: str = "fst",
           oversampling=2.0, positivity: bool = True, mask=None, support=None, volume_shape=None, thickness=None,
           initial=None, device=None, engine: str | None = None, progress=None, callback=None,
           callback_every: int = 0, state: dict | None = None, rtol: float | None = None, center=None,
           convention: str = "fastem", noise_level: float | None = None, shifts=None) -> ReconstructionResult:
    """Reconstruct a volume from projections with RESIRE.

    Parameters
    ----------
    projections : array_like (n, rows, cols)
    angles : array_like (n, 3) Euler ZYX degrees, or (n,) tilts about y
    iterations : int
        Total iteration count (a resumed run continues up to it).
    step, projector, oversampling, positivity, support, initial, engine : see :class:`Resire`
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
                    support=support, initial=initial, engine=engine)
    if state is not None:
        solver.restore(state)
    return solver.run(iterations, progress=progress, callback=callback, callback_every=callback_every, rtol=rtol,
                      noise_level=noise_level)
