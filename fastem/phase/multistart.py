"""Multi-start phase retrieval: R random starts as one batch, keep the best K (spec "Consistency
protocol"; thesis 2.4.1: 500 runs, best 5).

All ``R`` runs iterate together on one device (leading run axis, batched FFTs; memory about
``5 x 8 + 3 x 4`` bytes per pixel per run in complex64). Each run ends with its best image (lowest
``R_F`` over the run). The ``K`` runs with the lowest final ``R_F`` are kept, aligned to the best
one (integer translation and twin image, :func:`fastem.phase.metrics.align`), and their mean and
variance reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from fastem.errors import InputError

from .baselines import ERSolver, HIOSolver, OSSSolver
from .engine import PhaseConfig, Solver, initial_phases
from .gps import GPSSolver
from .metrics import align
from .problem import PhaseProblem, prepare_problem

__all__ = ["PhaseResult", "make_solver", "retrieve", "keep_best"]

_SOLVERS = {"gps-f": GPSSolver, "gps-r": GPSSolver, "oss": OSSSolver, "hio": HIOSolver, "er": ERSolver}


def make_solver(problem: PhaseProblem, runs: int, config: PhaseConfig) -> Solver:
    """The batched solver of ``config.algorithm`` for ``runs`` runs of ``problem``."""
    return _SOLVERS[config.algorithm](problem, runs, config)


@dataclass
class PhaseResult:
    """Outcome of :func:`retrieve` (all images host float64, object centred, disk layout).

    Attributes
    ----------
    image : ndarray grid
        Mean of the kept (aligned) reconstructions.
    variance : ndarray grid
        Their per-pixel variance (population, ``ddof=0``).
    best : ndarray grid
        The reconstruction with the lowest ``R_F``.
    kept : ndarray (K, *grid)
        The kept reconstructions, aligned to ``best``.
    kept_runs : ndarray (K,) int
        Their run indices, best first.
    final_rf : ndarray (R,)
        Per-run final ``R_F`` (of the run's best image).
    history_iterations : ndarray (E,)
        Iterations (1-based, after the step) at which ``R_F`` was evaluated.
    history_rf : ndarray (E, R)
        ``R_F`` of every run at those iterations.
    support : ndarray bool grid
    config : PhaseConfig
    seed : int
    """

    image: np.ndarray
    variance: np.ndarray
    best: np.ndarray
    kept: np.ndarray
    kept_runs: np.ndarray
    final_rf: np.ndarray
    history_iterations: np.ndarray
    history_rf: np.ndarray
    support: np.ndarray
    config: PhaseConfig
    seed: int
    support_estimated: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def kept_rf(self) -> np.ndarray:
        return self.final_rf[self.kept_runs]

    def results_dict(self) -> dict:
        """The numbers an output file records (R_F history, per-run final R_F, kept statistics)."""
        return {
            "rf_history_iterations": self.history_iterations,
            "rf_history": self.history_rf,
            "final_rf": self.final_rf,
            "kept_runs": self.kept_runs,
            "kept_rf": self.kept_rf,
            "kept_rf_mean": float(np.mean(self.kept_rf)),
            "kept_rf_variance": float(np.var(self.kept_rf)),
            "kept_variance": self.variance,
            "best_rf": float(self.final_rf[self.kept_runs[0]]),
        }


def keep_best(images: np.ndarray, final_rf: np.ndarray, keep: int):
    """``(kept aligned images, kept run indices, mean, variance)`` of the ``keep`` lowest-R_F runs."""
    order = np.argsort(final_rf, kind="stable")
    k = max(1, min(int(keep), len(order)))
    idx = order[:k]
    ref = images[idx[0]]
    kept = np.stack([ref] + [align(images[r], ref)[0] for r in idx[1:]])
    return kept, idx, kept.mean(axis=0), kept.var(axis=0)


def retrieve(intensities=None, known=None, support=None, *, problem: PhaseProblem | None = None,
             config: PhaseConfig | None = None, runs: int = 1, keep: int = 5, seed: int = 0,
             dtype=np.complex64, device: Any = None, progress: Any = None, checkpoint_every: int = 0,
             on_checkpoint: Callable[[dict], Any] | None = None, resume_state: dict | None = None,
             **options) -> PhaseResult:
    """Phase retrieval with ``runs`` random starts batched on one device; keep the best ``keep``.

    Parameters
    ----------
    intensities : ndarray, 2D or 3D
        Diffraction intensities, zero frequency at the centre (ignored when ``problem`` is given).
    known : bool ndarray, optional
        True on measured pixels.
    support : bool ndarray, optional
        Real-space support (object centred); estimated from the autocorrelation when omitted.
    problem : PhaseProblem, optional
        Prepared data (:func:`fastem.phase.problem.prepare_problem`) instead of the arrays.
    config : PhaseConfig, optional
        All algorithm parameters; otherwise built from ``options`` (``algorithm``, ``iterations``,
        ``stages``, ``t``, ``s``, ``sigma_schedule``, ``beta``, ``gamma_scale``, ``rfactor_every``).
    runs, keep, seed : int
        Number of random starts, how many to keep, and the seed of the starting phases (run ``r``
        uses ``default_rng([seed, r])``).
    dtype : complex64 or complex128
    device : Device or str, optional
    progress : tqdm-like, optional
        Advanced once per iteration; shows the best ``R_F``.
    checkpoint_every, on_checkpoint :
        Call ``on_checkpoint(state)`` every ``checkpoint_every`` iterations (``state`` includes
        ``seed``; pass it back as ``resume_state`` to continue).
    resume_state : dict, optional
        A state from ``on_checkpoint`` to resume from.

    Returns
    -------
    PhaseResult
    """
    if config is None:
        config = PhaseConfig(**options)
    elif options:
        raise InputError(f"retrieve: pass either config or options, not both ({', '.join(options)})")
    if runs < 1:
        raise InputError(f"--runs must be >= 1, got {runs}")
    if keep < 1:
        raise InputError(f"--keep must be >= 1, got {keep}")
    if problem is None:
        if intensities is None:
            raise InputError("retrieve: give intensities or a prepared problem")
        problem = prepare_problem(intensities, known, support, dtype=dtype, device=device)
    solver = make_solver(problem, runs, config)
    if resume_state is not None:
        if int(resume_state.get("seed", seed)) != int(seed):
            raise InputError(f"checkpoint was written with --seed {resume_state.get('seed')}, not {seed}")
        solver.load_state_dict(resume_state)
    else:
        solver.initialise(initial_phases(seed, range(runs), problem.shape))

    def _checkpoint(state):
        state["seed"] = int(seed)
        on_checkpoint(state)

    solver.run(progress=progress, checkpoint_every=checkpoint_every,
               on_checkpoint=_checkpoint if on_checkpoint is not None else None)
    images = solver.best_images_centred()
    kept, idx, mean, var = keep_best(images, solver.best_rf, keep)
    its, rfs = solver.history()
    return PhaseResult(image=mean, variance=var, best=kept[0], kept=kept, kept_runs=idx,
                       final_rf=solver.best_rf.copy(), history_iterations=its, history_rf=rfs,
                       support=problem.support.copy(), config=config, seed=int(seed),
                       support_estimated=problem.support_estimated)
