"""Guided multi-start ("generations", as in cohere / Ulvestad et al., Sci. Rep. 7, 9920 (2017)).

Plain multi-start runs ``R`` independent random starts for ``N`` iterations and keeps the best.
The guided variant splits the same ``N`` iterations of each run into ``G`` generations of
``N / G`` iterations; after each generation (but the last) every run's best image ``u_r`` is
aligned to the best run's ``u_best`` (integer translation and twin image,
:func:`fastem.phase.metrics.align`) and *bred* with it::

    child_r = sqrt(max(u_r, 0) * max(u_best, 0))          ("sqrt_ab", cohere's default breeding)

(for a complex object, aligned also in constant phase and conjugate twin: the geometric mean
``sqrt(|u_r| |u_best|) exp(i (arg u_r + arg(u_best conj u_r) / 2))``, the branch of
``sqrt(u_r u_best)`` nearer to both)

and run ``r`` of the next generation starts from the measured magnitudes with the phases of
``F(child_r)`` (``z0 = b exp(i arg F child_r)``), with the stage and sigma schedules started
afresh. The total number of iterations per run is that of the plain multi-start, so the two can
be compared at equal cost (``bench/phase_generations.py``).

Shrink-wrap, when on, restarts from the initial support in every generation.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from fastem.errors import InputError

from .solver import PhaseConfig, initial_phases
from .metrics import align
from .multistart import DEFAULT_KEEP_TOLERANCE, KeptSelection, keep_consistent, make_solver
from .problem import PhaseProblem

__all__ = ["breed_sqrt_ab", "retrieve_generations", "generations_result"]


def breed_sqrt_ab(image: np.ndarray, best: np.ndarray) -> np.ndarray:
    """``sqrt(max(a, 0) max(b, 0))`` of ``image`` aligned to ``best`` (both centred, float);
    for complex images the geometric mean ``sqrt(|a| |b|) exp(i (arg a + arg(b conj a) / 2))``
    of the aligned ``a`` (translation, conjugate twin and constant phase removed) and ``b``."""
    a = align(image, best)[0]
    if np.iscomplexobj(a) or np.iscomplexobj(best):
        return np.sqrt(np.abs(a) * np.abs(best)) * np.exp(1j * (np.angle(a) + 0.5 * np.angle(best * np.conj(a))))
    return np.sqrt(np.maximum(a, 0.0) * np.maximum(best, 0.0))


def retrieve_generations(problem: PhaseProblem, config: PhaseConfig, *, runs: int, generations: int, keep: int = 5,
                         seed: int = 0, keep_tolerance: float | None = DEFAULT_KEEP_TOLERANCE
                         ) -> tuple[KeptSelection, np.ndarray, np.ndarray]:
    """Guided multi-start: ``runs`` runs, ``config.iterations`` iterations each in ``generations``.

    Parameters
    ----------
    problem : PhaseProblem
    config : PhaseConfig
        ``iterations`` is the total per run; each generation runs ``iterations // generations``
        (the last one the remainder as well).
    runs, generations, keep, seed, keep_tolerance :
        ``runs >= 2``, ``1 <= generations <= iterations``; ``keep`` and ``keep_tolerance`` as in
        :func:`fastem.phase.retrieve` (applied to the last generation).

    Returns
    -------
    (KeptSelection, final_rf (R,), images (R, *grid))
        The kept average of the last generation, and every run's last R_F and best image.
    """
    if not isinstance(problem, PhaseProblem):
        raise InputError(f"problem must be a PhaseProblem, got {type(problem).__name__}")
    if not isinstance(config, PhaseConfig):
        raise InputError(f"config must be a PhaseConfig, got {type(config).__name__}")
    for name, value, minimum in (("runs", runs, 2), ("generations", generations, 1), ("keep", keep, 1),
                                 ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if generations > config.iterations:
        raise InputError(f"generations {generations} exceeds iterations {config.iterations}")
    sel, rf, images, _ = _generations(problem, config, runs, generations, keep, seed, keep_tolerance)
    return sel, rf, images


def _generations(problem, config, runs, generations, keep, seed, keep_tolerance, progress=None, *,
                 checkpoint_every: int = 0, on_checkpoint=None, resume_state: dict | None = None):
    """The loop of :func:`retrieve_generations` (arguments checked); also returns the R_F
    history ``(iterations (E,), R_F (E, R))`` over all generations (iterations counted from the
    first generation's start).

    ``checkpoint_every``, ``on_checkpoint``: every ``checkpoint_every`` iterations *of each
    generation*, ``on_checkpoint(state)`` with the solver's state plus ``generation`` (0-based),
    ``generations``, ``generation_start`` (iterations of the earlier generations),
    ``generation_history_start`` (how many history entries the earlier generations hold) and
    ``seed``; ``iteration``, ``history_iterations`` and ``history_rf`` count over all generations.
    ``resume_state``: such a state; the run goes on from it and gives the uninterrupted run's
    result bit for bit (a generation's start depends only on the previous generation's images)."""
    per = config.iterations // generations
    first, done, phases, local_state = 0, 0, None, None
    hist_its, hist_rf = [], []
    if resume_state is not None:
        if "generation" not in resume_state:
            raise InputError("resume_state is not from a run with generations (no 'generation' in it)")
        if int(resume_state.get("generations", -1)) != generations:
            raise InputError(f"generations {generations} does not match the checkpoint, written with "
                             f"{resume_state.get('generations')}")
        first, done = int(resume_state["generation"]), int(resume_state["generation_start"])
        if not 0 <= first < generations:
            raise InputError(f"checkpoint generation {first} outside 0..{generations - 1}")
        split = int(resume_state["generation_history_start"])
        its_all = np.asarray(resume_state["history_iterations"]).reshape(-1)
        rf_all = (np.asarray(resume_state["history_rf"], np.float64).reshape(len(its_all), -1) if len(its_all)
                  else np.zeros((0, runs)))
        if split:
            hist_its.append(its_all[:split])
            hist_rf.append(rf_all[:split])
        local_state = dict(resume_state, iteration=int(resume_state["iteration"]) - done,
                           history_iterations=its_all[split:] - done, history_rf=rf_all[split:])
    else:
        phases = initial_phases(seed, range(runs), problem.shape)
    images = rf = None
    for g in range(first, generations):
        its = per if g < generations - 1 else config.iterations - per * (generations - 1)
        sol = make_solver(problem, runs, replace(config, iterations=its))
        if local_state is not None:
            sol.load_state_dict(local_state)
            local_state = None
        else:
            sol.initialise(phases)

        def generation_checkpoint(state, g=g, done=done):
            its_l = np.asarray(state["history_iterations"]).reshape(-1)
            rf_l = np.asarray(state["history_rf"]).reshape(len(its_l), -1) if len(its_l) else np.zeros((0, runs))
            earlier_its = np.concatenate(hist_its) if hist_its else np.zeros(0, np.int64)
            earlier_rf = np.concatenate(hist_rf) if hist_rf else np.zeros((0, runs))
            state.update(iteration=done + int(state["iteration"]), generation=int(g), generations=int(generations),
                         generation_start=int(done), generation_history_start=int(len(earlier_its)),
                         history_iterations=np.concatenate([earlier_its, its_l + done]),
                         history_rf=np.concatenate([earlier_rf, rf_l]), seed=int(seed))
            on_checkpoint(state)

        sol.run(progress=progress, checkpoint_every=checkpoint_every,
                on_checkpoint=generation_checkpoint if on_checkpoint is not None else None)
        images, rf = sol.best_images_centred(), sol.final_rf()
        h_its, h_rf = sol.history()
        hist_its.append(h_its + done)
        hist_rf.append(h_rf)
        done += its
        if g == generations - 1:
            break
        best = images[int(np.argmin(rf))]
        children = np.stack([breed_sqrt_ab(im, best) if np.isfinite(r) else best for im, r in zip(images, rf)])
        axes = tuple(range(1, children.ndim))  # the grid axes (FFT layout for the solver)
        phases = np.angle(np.fft.fftn(np.fft.ifftshift(children, axes=axes), axes=axes))
    sel = keep_consistent(images, rf, keep, tolerance=keep_tolerance)
    return sel, rf, images, (np.concatenate(hist_its), np.concatenate(hist_rf))


def generations_result(problem: PhaseProblem, config: PhaseConfig, *, runs: int, generations: int, keep: int,
                       seed: int, keep_tolerance: float | None, progress=None, checkpoint_every: int = 0,
                       on_checkpoint=None, resume_state: dict | None = None):
    """:func:`retrieve_generations` as a :class:`~fastem.phase.multistart.PhaseResult` (what
    ``retrieve(..., generations=G)`` and ``fastem phase --generations G`` return): the kept
    average of the last generation, every run's last R_F, the R_F history of all generations.
    All runs form one batch in this process (no chunks or Dask); checkpoints and resume as
    :func:`_generations` describes."""
    from .metrics import r_factor
    from .multistart import NonFiniteResultError, PhaseResult

    if generations > config.iterations:
        raise InputError(f"generations {generations} exceeds iterations {config.iterations}")
    sel, rf, _, (its, hist) = _generations(problem, config, runs, generations, keep, seed, keep_tolerance,
                                           progress, checkpoint_every=checkpoint_every, on_checkpoint=on_checkpoint,
                                           resume_state=resume_state)
    if not np.all(np.isfinite(rf[sel.indices])):
        raise NonFiniteResultError(f"phase retrieval diverged: every run of {config.algorithm} gave non-finite "
                                   f"iterates in the last generation")
    report = [dict(e, run=int(e.pop("index"))) for e in sel.report]
    extra = {"chunks": [[0, int(runs)]], "generations": int(generations), "kept_report": report,
             "rejected_runs": [e["run"] for e in report if not e["kept"]], "keep_tolerance": keep_tolerance,
             "mean_rf": r_factor(sel.mean, problem.magnitudes, problem.known)}
    return PhaseResult(image=sel.mean, variance=sel.variance, best=sel.images[0], kept=sel.images,
                       kept_runs=np.asarray(sel.indices, int), final_rf=rf, history_iterations=its,
                       history_rf=hist, support=problem.support.copy(), config=config, seed=int(seed),
                       support_estimated=problem.support_estimated, extra=extra)
