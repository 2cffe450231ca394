"""Multi-start phase retrieval: R random starts in batches, keep the best K (spec "Consistency
protocol"; thesis 2.4.1: 500 runs, best 5).

Runs iterate together on one device (leading run axis, batched FFTs). Each run ends with its
best image (lowest ``R_F`` over the run). The ``K`` runs with the lowest final ``R_F`` are kept,
aligned to the best one (integer translation and twin image, :func:`fastem.phase.metrics.align`),
and their mean and variance reported.

Chunks. A batch needs :meth:`fastem.phase.solver.Solver.bytes_per_run` bytes per run (GPS with
stages, complex64: ``4.5 x 8 + 2 x 4`` bytes per pixel: 11.5 MB per run at 512 x 512). When ``R``
runs do not fit ``max_batch_bytes`` (default: half the free GPU memory, a quarter of the
available host memory), the runs are split into the fewest near-equal chunks that do
(:func:`split_runs`), run one after the other -- or spread over workers by an ``executor``
(:mod:`fastem.executor`, e.g. Dask). Run ``r`` always starts from ``default_rng([seed, r])`` and
runs are independent, so the per-run results do not depend on the chunking (tested bit for bit
on the CPU). Only the ``K`` best images are kept between chunks. Every chunk's solver owns its
FFT plans and work arrays, so chunks may run in parallel threads (threaded Dask workers) with the
same results as one after the other.

Divergence. A run whose ``R_F`` is ever not finite has diverged: its final ``R_F`` is reported as
``inf`` and it is never kept (fewer than ``K`` runs are kept when fewer converged). When every run
diverged, :func:`retrieve` raises :class:`~fastem.errors.NonFiniteResultError`; the images it
returns are always finite.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any, Callable

import numpy as np

from fastem import backend
from fastem.errors import InputError, NonFiniteResultError

from .baselines import ERSolver, HIOSolver, OSSSolver
from .solver import PhaseConfig, Solver, initial_phases
from .gps import GPSSolver
from .metrics import align
from .problem import PhaseProblem, prepare_problem, problem_from_host

__all__ = ["PhaseResult", "make_solver", "retrieve", "keep_best", "keep_consistent", "KeptSelection",
           "DEFAULT_KEEP_TOLERANCE", "split_runs", "default_batch_bytes",
           "checkpoint_best"]

_SOLVERS = {"gps-f": GPSSolver, "gps-r": GPSSolver, "oss": OSSSolver, "hio": HIOSolver, "er": ERSolver}


def make_solver(problem: PhaseProblem, runs: int, config: PhaseConfig) -> Solver:
    """The batched solver of ``config.algorithm`` for ``runs`` runs of ``problem``."""
    return _SOLVERS[config.algorithm](problem, runs, config)


def default_batch_bytes(device) -> int:
    """Memory budget of one batch: half the free memory of a GPU, a quarter of the host memory
    available now (``MemAvailable``) on the CPU (4 GiB when it cannot be read)."""
    dev = backend.Device(device)
    if dev.is_gpu:
        with dev.use():
            free, _total = dev.xp.cuda.runtime.memGetInfo()
        return int(free // 2)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 4
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")) // 4
    except (ValueError, OSError, AttributeError):
        return 4 << 30


#: the GPU kernels put the run index on the y axis of the launch grid (at most 65535 blocks)
MAX_RUNS_PER_BATCH = 65535


def _client_wisdom(problem: PhaseProblem, chunks, executor, complex_object: bool = False) -> bytes | None:
    """The client's FFTW wisdom after planning here every FFT the chunks' solvers will build on
    the workers (each chunk size, at each thread count the workers run with); ``None`` on the
    GPU or without pyFFTW.

    ``FFTW_MEASURE`` picks among algorithms by timing them, so a worker planning for itself may
    choose another algorithm than this process did and round differently; over hundreds of
    iterations a multi-start run then ends elsewhere (``bench/fftw_plan_determinism.py``: of 10
    fresh processes running one 128^2 GPS-F multi-start, 1 ended with another result; with the
    first one's wisdom adopted, 10 of 10 equal). With the client's wisdom adopted, every worker
    runs the client's plans, and a worker with the client's thread count reproduces the
    in-process result bit for bit. The planning costs the client one chunk's FFT buffers for
    a moment, and no time when its wisdom cache already holds the geometry.
    """
    from fastem.fft import export_wisdom, provider

    if problem.device.is_gpu or provider("cpu") != "pyfftw":
        return None
    from fastem.config import settings

    asked = getattr(executor, "worker_threads", None)      # duck-typed executors may not report them
    thread_counts = asked() if callable(asked) else [settings.threads]
    for runs in sorted({int(b) - int(a) for a, b in chunks}):
        for threads in thread_counts:
            Solver.plan_ffts(problem, runs, threads=threads, complex_object=complex_object)  # dropped: the wisdom stays
    return export_wisdom()


def split_runs(runs: int, bytes_per_run: int, budget: int, min_chunks: int = 1) -> list[tuple[int, int]]:
    """``[(start, stop), ...]``: the fewest near-equal chunks of ``runs`` that each fit ``budget``
    bytes (and :data:`MAX_RUNS_PER_BATCH`), and at least ``min_chunks`` (e.g. one per worker),
    never more than ``runs``."""
    runs = int(runs)
    per_chunk = min(MAX_RUNS_PER_BATCH, max(1, int(budget) // max(1, int(bytes_per_run))))
    chunks = min(runs, max(-(-runs // per_chunk), int(min_chunks), 1))
    edges = [(k * runs) // chunks for k in range(chunks + 1)]
    return [(edges[k], edges[k + 1]) for k in range(chunks)]


def _run_chunk(task: dict) -> dict:
    """Run the runs ``[start, stop)`` of a problem to the end (an executor task; picklable in and out).

    ``task``: ``problem`` (a :class:`PhaseProblem`, in process) or ``problem_data``
    (:meth:`PhaseProblem.host_data`, rebuilt on this worker's default device), ``config``,
    ``seed``, ``start``, ``stop``; optionally ``fftw_wisdom`` (the client's, adopted before the
    solver plans its FFTs); in process also ``state`` (resume), ``progress``,
    ``checkpoint_every`` and ``on_checkpoint``.
    """
    problem = task.get("problem")
    if problem is None:
        problem = problem_from_host(task["problem_data"], task.get("device"))
    config, start, stop = task["config"], int(task["start"]), int(task["stop"])
    if task.get("fftw_wisdom") is not None:   # plan exactly as the client did (see _client_wisdom)
        from fastem.fft import adopt_wisdom

        adopt_wisdom(task["fftw_wisdom"])
    solver = make_solver(problem, stop - start, config)  # owns its plans and buffers
    if task.get("state") is not None:
        solver.load_state_dict(task["state"])
    else:
        solver.initialise(initial_phases(task["seed"], range(start, stop), problem.shape))
    solver.run(progress=task.get("progress"), checkpoint_every=task.get("checkpoint_every", 0),
               on_checkpoint=task.get("on_checkpoint"))
    its, rfs = solver.history()
    final_rf = solver.final_rf()  # inf for a diverged run
    # only this chunk's `keep` best converged runs leave the device (no other run can be kept)
    local = np.lexsort((np.arange(stop - start), final_rf))
    local = local[np.isfinite(final_rf[local])][: int(task.get("keep", stop - start))]
    out = {"start": start, "stop": stop, "best_rf": final_rf, "history_iterations": its,
           "history_rf": rfs, "local": local, "images": solver.best_images_centred(local),
           "first_divergence": solver.first_divergence}
    if config.shrink_wrap:
        out["supports"] = solver.supports_centred(local)
    return out


class _Kept:
    """The ``keep`` lowest-R_F runs seen so far (stable: ties go to the lower run index)."""

    def __init__(self, keep: int):
        self.keep = int(keep)
        self.runs = np.zeros(0, int)
        self.rf = np.zeros(0)
        self.images: np.ndarray | None = None
        self.supports: np.ndarray | None = None

    def add(self, runs, rf, images, supports=None) -> None:
        runs = np.concatenate([self.runs, np.asarray(runs, int)])
        rf = np.concatenate([self.rf, np.asarray(rf, np.float64)])
        images = images if self.images is None else np.concatenate([self.images, images])
        if supports is not None:
            supports = supports if self.supports is None else np.concatenate([self.supports, supports])
        order = np.lexsort((runs, rf))[: self.keep]
        self.runs, self.rf, self.images = runs[order], rf[order], images[order]
        self.supports = None if supports is None else supports[order]

    def state(self) -> dict:
        d = {"done_kept_runs": self.runs, "done_kept_rf": self.rf}
        if self.images is not None:
            d["done_kept_images"] = self.images
        if self.supports is not None:
            d["done_kept_supports"] = self.supports
        return d

    def load(self, state: dict) -> None:
        self.runs = np.asarray(state.get("done_kept_runs", np.zeros(0, int)), int).reshape(-1)
        self.rf = np.asarray(state.get("done_kept_rf", np.zeros(0)), np.float64).reshape(-1)
        self.images = np.asarray(state["done_kept_images"]) if "done_kept_images" in state else None
        self.supports = np.asarray(state["done_kept_supports"], bool) if "done_kept_supports" in state else None


def checkpoint_best(state: dict) -> tuple[np.ndarray, float]:
    """``(image, R_F)``: the best image so far (centred, in the data's units) in a checkpoint
    ``state`` of :func:`retrieve` (the running chunk's runs and those of finished chunks); diverged
    runs are left out (``R_F = inf`` when no run has a finite one yet)."""
    rfs = np.asarray(state["best_rf"], np.float64).reshape(-1)
    if "diverged" in state:
        rfs = np.where(np.asarray(state["diverged"]).reshape(-1).astype(bool), np.inf, rfs)
    rfs = np.where(np.isfinite(rfs), rfs, np.inf)
    best = int(np.argmin(rfs))
    rf = float(rfs[best])
    image = np.asarray(state["best_image"][best])
    image = np.fft.fftshift(image.astype(np.complex128 if np.iscomplexobj(image) else np.float64))
    scale = float(state.get("image_scale", 1.0))
    if scale != 1.0:
        image = image / scale
    done_rf = np.asarray(state.get("done_kept_rf", np.zeros(0))).reshape(-1)
    if done_rf.size and float(done_rf[0]) < rf:
        return np.asarray(state["done_kept_images"][0]), float(done_rf[0])
    return image, rf


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
    """``(kept aligned images, kept run indices, mean, variance)`` of the ``keep`` lowest-R_F runs
    (no consistency check: :func:`keep_consistent` with ``tolerance=None``)."""
    sel = keep_consistent(images, final_rf, keep, tolerance=None)
    return sel.images, sel.indices, sel.mean, sel.variance


#: default of ``retrieve(keep_tolerance=...)``: a run whose aligned image differs from the best
#: one by more than this (relative L1, after a least-squares scale) is not averaged
DEFAULT_KEEP_TOLERANCE = 0.3
#: with a tolerance, a run whose R_F exceeds ``KEEP_RF_RATIO`` times the best run's, by more than
#: ``KEEP_RF_FLOOR`` (absolute), is not averaged either: its image may look like the best one
#: (a 2 % difference passes the tolerance) while it fits the data 30x worse (a noise-free cell of
#: the robustness grid: R_F 0.34 % against 0.011 %, which took the kept mean from 0.005 % to 0.42 %
#: R_real). Converged runs on noisy data differ in R_F by a few per cent at most; the floor keeps
#: runs at the numerical floor of a noise-free case (R_F 1e-5 against 3e-5) from being rejected.
KEEP_RF_RATIO = 2.0
KEEP_RF_FLOOR = 1e-3


@dataclass
class KeptSelection:
    """Outcome of :func:`keep_consistent`.

    Attributes
    ----------
    images : ndarray (K, *grid)
        The kept images, aligned to the best one (translation, twin), best first.
    indices : ndarray (K,) int
        Their indices into the candidates.
    mean, variance : ndarray grid
    report : list of dict
        One entry per candidate looked at, in R_F order: ``index``, ``rf``, ``shift``,
        ``flipped`` (the twin matched better), ``difference`` (relative L1 distance to the best
        after alignment and scale), ``kept`` and ``reason``.
    """

    images: np.ndarray
    indices: np.ndarray
    mean: np.ndarray
    variance: np.ndarray
    report: list


def _difference(image: np.ndarray, ref: np.ndarray) -> float:
    """``sum |c u - ref| / sum |ref|`` with the least-squares scale ``c = <u, ref> / <u, u>``
    (complex for complex images)."""
    if np.iscomplexobj(image) or np.iscomplexobj(ref):
        uu = float(np.vdot(image, image).real)
        c = np.vdot(image, ref) / uu if uu > 0 else 0.0
    else:
        uu = float(np.sum(image * image))
        c = float(np.sum(image * ref)) / uu if uu > 0 else 0.0
    den = float(np.sum(np.abs(ref)))
    return float(np.sum(np.abs(c * image - ref)) / den) if den > 0 else 0.0


def keep_consistent(images: np.ndarray, final_rf: np.ndarray, keep: int,
                    tolerance: float | None = DEFAULT_KEEP_TOLERANCE) -> KeptSelection:
    """The ``keep`` lowest-R_F candidates that agree with the best one, aligned and averaged.

    Every candidate (in R_F order) is aligned to the best one (integer translation and twin
    image by cross-correlation, :func:`fastem.phase.metrics.align`); its ``difference`` to the
    best is the relative L1 distance after a least-squares scale. With a ``tolerance``, a
    candidate that differs by more is an outlier (another local minimum, a twin mixture, a
    shifted copy) and is not averaged -- averaging such runs gives a mean that fits the data far
    worse than any of them -- and the next candidate is looked at instead; so is a candidate
    whose R_F is more than :data:`KEEP_RF_RATIO` (2) times the best one's and more than
    :data:`KEEP_RF_FLOOR` (0.1 %) above it (a worse fit of the same-looking image).
    ``tolerance=None`` keeps the ``keep`` best whatever they look like.

    Parameters
    ----------
    images : ndarray (C, *grid)
        Candidate images (float, object centred).
    final_rf : ndarray (C,)
        Their R_F (``inf`` for diverged runs, never kept).
    keep : int
    tolerance : float or None

    Returns
    -------
    KeptSelection
    """
    rf = np.asarray(final_rf, np.float64)
    order = [int(i) for i in np.argsort(rf, kind="stable") if np.isfinite(rf[i])] or \
        [int(i) for i in np.argsort(rf, kind="stable")]
    if len(order) == 0:
        raise NonFiniteResultError("keep_best: no run to keep (every run diverged)")
    k = max(1, min(int(keep), len(order)))
    ref = np.asarray(images[order[0]])
    ref = ref.astype(np.complex128 if np.iscomplexobj(ref) else np.float64)
    kept_idx, kept_img = [order[0]], [ref]
    report = [{"index": order[0], "rf": float(rf[order[0]]), "shift": [0] * ref.ndim, "flipped": False,
               "difference": 0.0, "kept": True, "reason": "best R_F (reference)"}]
    for i in order[1:]:
        if len(kept_idx) >= k:
            break
        a, shift, flipped = align(images[i], ref)
        shift = tuple(int(v) if v <= n // 2 else int(v) - n for v, n in zip(shift, ref.shape))  # signed
        d = _difference(a, ref)
        entry = {"index": i, "rf": float(rf[i]), "shift": list(shift), "flipped": bool(flipped), "difference": d}
        if tolerance is not None and d > tolerance:
            entry.update(kept=False, reason=f"outlier: differs from the best by {100 * d:.0f} % "
                                             f"(> {100 * tolerance:.0f} %) after alignment")
        elif tolerance is not None and rf[i] > KEEP_RF_RATIO * rf[order[0]] \
                and rf[i] - rf[order[0]] > KEEP_RF_FLOOR:
            entry.update(kept=False, reason=f"outlier: R_F {100 * rf[i]:.3g} % is {rf[i] / rf[order[0]]:.1f}x the "
                                             f"best's {100 * rf[order[0]]:.3g} % (> {KEEP_RF_RATIO:g}x)")
        else:
            entry.update(kept=True, reason=f"agrees with the best ({100 * d:.0f} % after "
                                           f"{'twin + ' if flipped else ''}shift {tuple(shift)})")
            kept_idx.append(i)
            kept_img.append(a)
        report.append(entry)
    kept = np.stack(kept_img)
    return KeptSelection(images=kept, indices=np.asarray(kept_idx, int), mean=kept.mean(axis=0),
                         variance=kept.var(axis=0), report=report)


def _check_int(value, name: str, minimum: int) -> int:
    """``value`` as an int ``>= minimum`` or a one-line :class:`InputError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise InputError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _all_diverged_message(config: PhaseConfig, runs: int, first: int | None) -> str:
    when = f" (first at iteration {first})" if first is not None else ""
    return (f"phase retrieval diverged: all {runs} run(s) of {config.algorithm} gave non-finite iterates{when}, "
            f"so there is no result; try another seed or algorithm (er and hio are the most robust), double "
            f"precision (complex128), a tighter support, or check the data for huge or corrupt values")


def retrieve(intensities=None, known=None, support=None, *, problem: PhaseProblem | None = None,
             config: PhaseConfig | None = None, runs: int = 1, keep: int = 5, seed: int = 0,
             dtype=np.complex64, device: Any = None, progress: Any = None, checkpoint_every: int = 0,
             on_checkpoint: Callable[[dict], Any] | None = None, resume_state: dict | None = None,
             max_batch_bytes: int | None = None, executor: Any = None,
             keep_tolerance: float | None = DEFAULT_KEEP_TOLERANCE, generations: int = 1,
             **options) -> PhaseResult:
    """Phase retrieval with ``runs`` random starts batched on one device; keep the best ``keep``.

    Parameters
    ----------
    intensities : ndarray, 2D or 3D
        Diffraction intensities, zero frequency at the centre (ignored when ``problem`` is given).
    known : bool ndarray, optional
        True on measured pixels.
    support : bool ndarray, optional
        Real-space support (object centred); estimated from the autocorrelation when omitted,
        and then refined by shrink-wrap unless ``shrink_wrap=False`` is passed (or a ``config``).
    problem : PhaseProblem, optional
        Prepared data (:func:`fastem.phase.problem.prepare_problem`) instead of the arrays.
    config : PhaseConfig, optional
        All algorithm parameters; otherwise built from ``options`` (``algorithm``, ``iterations``,
        ``stages``, ``t``, ``s``, ``sigma_schedule``, ``beta``, ``gamma_scale``, ``rfactor_every``,
        ``shrink_wrap``, ...).
    runs, keep, seed : int
        Number of random starts (``>= 1``), how many to keep (``>= 1``; at most the runs that
        converged are kept), and the seed of the starting phases (``>= 0``; run ``r`` uses
        ``default_rng([seed, r])``).
    dtype : complex64 or complex128
    device : Device or str, optional
    progress : tqdm-like, optional
        Advanced once per iteration of each chunk (its ``total`` is raised to cover every chunk);
        shows the best ``R_F``.
    checkpoint_every, on_checkpoint :
        Call ``on_checkpoint(state)`` every ``checkpoint_every`` iterations (``state`` includes
        ``seed`` and, with several chunks, the finished chunks' results; pass it back as
        ``resume_state`` to continue). In-process only (not with a Dask executor).
    resume_state : dict, optional
        A state from ``on_checkpoint`` to resume from.
    max_batch_bytes : int, optional
        Memory budget of one batch (default :func:`default_batch_bytes`); more runs than fit are
        split into chunks (:func:`split_runs`) with the same per-run results.
    keep_tolerance : float or None
        Consistency of the kept runs (:func:`keep_consistent`): a run whose aligned image differs
        from the best one by more than this (relative L1; default 0.3), or whose R_F is more than
        twice the best one's (and 0.1 % above it), is reported as an outlier and not averaged,
        the next run by R_F is taken instead (up to ``2 keep`` candidates are looked at).
        ``None``: average the ``keep`` best whatever they look like.
        ``result.extra["kept_report"]`` says for every candidate whether it was kept and why,
        ``result.extra["mean_rf"]`` is the R_F of the mean image.
    executor : fastem.executor.Executor, optional
        Where the chunks run (default: in this process, one after the other). With a
        :class:`fastem.executor.DaskExecutor` the runs are split into at least one chunk per
        worker thread and each chunk runs on a worker's default device.
    generations : int
        ``G > 1``: guided multi-start (:mod:`fastem.phase.generations`): the iterations of
        every run are split into ``G`` generations, each run bred with the best one between
        them (``runs >= 2``; all runs in one batch, in this process: no executor or chunks;
        ``checkpoint_every`` counts the iterations of each generation). 1 (default): plain multi-start.

    Returns
    -------
    PhaseResult
        Its images are finite; diverged runs have ``final_rf = inf`` and are never kept.

    Raises
    ------
    InputError
        A bad argument (one line naming the parameter, e.g. ``runs must be >= 1, got 0``).
    NonFiniteResultError
        Every run diverged (nothing to return); the message says what to try.
    """
    from fastem.executor import InlineExecutor

    runs = _check_int(runs, "runs", 1)
    keep = _check_int(keep, "keep", 1)
    seed = _check_int(seed, "seed", 0)
    checkpoint_every = _check_int(checkpoint_every, "checkpoint_every", 0)
    if max_batch_bytes is not None:
        max_batch_bytes = _check_int(max_batch_bytes, "max_batch_bytes", 1)
    if on_checkpoint is not None and not callable(on_checkpoint):
        raise InputError(f"on_checkpoint must be callable, got {type(on_checkpoint).__name__}")
    if resume_state is not None and not isinstance(resume_state, dict):
        raise InputError(f"resume_state must be a checkpoint dict, got {type(resume_state).__name__}")
    if config is None:
        if support is None and problem is None and "shrink_wrap" not in options:
            options["shrink_wrap"] = True  # the autocorrelation estimate is loose: refine it
        unknown = sorted(set(options) - set(PhaseConfig.__dataclass_fields__))
        if unknown:
            raise InputError(f"retrieve: unknown option {unknown[0]!r} (options: "
                             f"{', '.join(PhaseConfig.__dataclass_fields__)})")
        config = PhaseConfig(**options)
    elif not isinstance(config, PhaseConfig):
        raise InputError(f"config must be a PhaseConfig, got {type(config).__name__}")
    elif options:
        raise InputError(f"retrieve: pass either config or options, not both ({', '.join(options)})")
    if problem is None:
        if intensities is None:
            raise InputError("intensities must be an array (or pass a prepared problem), got None")
        problem = prepare_problem(intensities, known, support, dtype=dtype, device=device)
    elif not isinstance(problem, PhaseProblem):
        raise InputError(f"problem must be a PhaseProblem from prepare_problem(), got {type(problem).__name__}")
    inline = executor is None or isinstance(executor, InlineExecutor)
    if not inline and not (callable(getattr(executor, "map", None)) and hasattr(executor, "slots")):
        raise InputError(f"executor must be a fastem.executor.Executor, got {type(executor).__name__}")
    if not inline and (checkpoint_every or resume_state is not None):
        raise InputError("checkpoint_every and resume_state need an in-process run (no executor); checkpoints "
                         "cannot be taken on remote workers")
    if resume_state is not None and int(resume_state.get("seed", seed)) != int(seed):
        raise InputError(f"seed {seed} does not match the checkpoint, written with seed {resume_state.get('seed')}")
    bytes_per_run = _SOLVERS[config.algorithm].bytes_per_run(problem, config)
    budget = default_batch_bytes(problem.device) if max_batch_bytes is None else int(max_batch_bytes)
    if resume_state is not None and "chunks" in resume_state:
        chunks = [tuple(int(v) for v in c) for c in np.asarray(resume_state["chunks"]).reshape(-1, 2)]
        if chunks[-1][1] != runs:
            raise InputError(f"runs {runs} does not match the checkpoint, which holds {chunks[-1][1]} runs")
    else:
        chunks = split_runs(runs, bytes_per_run, budget, min_chunks=1 if inline else executor.slots)

    if keep_tolerance is not None:
        if isinstance(keep_tolerance, bool) or not isinstance(keep_tolerance, (int, float, np.integer, np.floating)) \
                or not 0 < float(keep_tolerance) < np.inf:
            raise InputError(f"keep_tolerance must be a number > 0 or None, got {keep_tolerance!r}")
        keep_tolerance = float(keep_tolerance)
    generations = _check_int(generations, "generations", 1)
    if generations > 1:
        if not inline:
            raise InputError("generations > 1 runs every run in one batch in this process: it takes no executor")
        if runs < 2:
            raise InputError(f"generations > 1 breeds runs with the best one: runs must be >= 2, got {runs}")
        if len(chunks) > 1:
            raise InputError(f"generations > 1 needs every run in one batch, but {runs} runs need "
                             f"{runs * bytes_per_run / 2**30:.2f} GiB (max_batch_bytes {budget}): use fewer runs")
        from .generations import generations_result

        return generations_result(problem, config, runs=runs, generations=generations, keep=keep, seed=seed,
                                  keep_tolerance=keep_tolerance, progress=progress, checkpoint_every=checkpoint_every,
                                  on_checkpoint=on_checkpoint, resume_state=resume_state)
    if resume_state is not None and "generation" in resume_state:
        raise InputError(f"the checkpoint is from a run with {resume_state.get('generations')} generations; "
                         f"pass generations={resume_state.get('generations')}")
    # candidates for the kept average: twice as many when outliers may be set aside
    kept = _Kept(keep if keep_tolerance is None else min(runs, 2 * keep))
    final_rf = np.full(runs, np.inf)
    hist_its, hist_rf = None, np.zeros((0, runs))
    first = 0
    if resume_state is not None and "chunk" in resume_state:
        first = int(resume_state["chunk"])
        kept.load(resume_state)
        done = chunks[first][0]
        if done:
            final_rf[:done] = np.asarray(resume_state["done_final_rf"]).reshape(-1)
            prev = np.asarray(resume_state["done_history_rf"]).reshape(-1, done)
            hist_rf = np.zeros((prev.shape[0], runs))
            hist_rf[:, :done] = prev
    if progress is not None and len(chunks) > 1 and hasattr(progress, "total"):
        progress.total = config.iterations * len(chunks)
        if resume_state is not None:
            progress.update(config.iterations * first)
    supports_all = config.shrink_wrap

    first_divergence = None

    def merge(out: dict) -> None:
        nonlocal hist_its, hist_rf, first_divergence
        a, b = out["start"], out["stop"]
        if out.get("first_divergence") is not None:
            fd = int(out["first_divergence"])
            first_divergence = fd if first_divergence is None else min(first_divergence, fd)
        final_rf[a:b] = out["best_rf"]
        its, rfs = out["history_iterations"], out["history_rf"]
        if hist_its is None:
            hist_its = its
            if hist_rf.shape[0] != len(its):
                hist_rf = np.zeros((len(its), runs))
        hist_rf[:, a:b] = rfs
        local = out["local"]
        kept.add(a + local, out["best_rf"][local], out["images"], out.get("supports") if supports_all else None)

    if inline:
        for k in range(first, len(chunks)):
            a, b = chunks[k]

            def chunk_checkpoint(state, k=k, a=a):
                state["seed"] = int(seed)
                if len(chunks) > 1 or k:
                    state["chunk"] = k
                    state["chunks"] = np.asarray(chunks, np.int64)
                    state["done_final_rf"] = final_rf[:a].copy()
                    state["done_history_rf"] = hist_rf[:, :a].copy()
                    state.update(kept.state())
                on_checkpoint(state)

            task = {"problem": problem, "config": config, "seed": seed, "start": a, "stop": b, "keep": kept.keep,
                    "state": resume_state if (resume_state is not None and k == first) else None,
                    "progress": progress, "checkpoint_every": checkpoint_every,
                    "on_checkpoint": chunk_checkpoint if on_checkpoint is not None else None}
            merge(_run_chunk(task))
    else:
        data = problem.host_data()
        dev = "cuda" if problem.device.is_gpu else "cpu"
        wisdom = _client_wisdom(problem, chunks, executor, config.complex_object)
        tasks = [{"problem_data": data, "device": dev, "config": config, "seed": seed, "start": a, "stop": b,
                  "keep": kept.keep, "fftw_wisdom": wisdom} for a, b in chunks]
        for out in executor.map(_run_chunk, tasks):
            merge(out)
            if progress is not None:
                progress.update(config.iterations)

    images, rf_kept = kept.images, kept.rf
    if images is None or len(rf_kept) == 0:
        raise NonFiniteResultError(_all_diverged_message(config, runs, first_divergence))
    sel = keep_consistent(images, rf_kept, keep, tolerance=keep_tolerance)
    kimg, kidx, mean, var = sel.images, sel.indices, sel.mean, sel.variance
    for what, arr in (("mean image", mean), ("variance", var)):
        if not np.all(np.isfinite(arr)):  # finite runs whose mean overflows: never returned as a result
            raise NonFiniteResultError(f"phase retrieval: the {what} of the kept runs is not finite (values beyond "
                                       f"the float64 range); check the data for huge values")
    kept_runs = kept.runs[kidx]
    report = [dict(e, run=int(kept.runs[e.pop("index")])) for e in sel.report]
    extra = {"chunks": [list(c) for c in chunks], "bytes_per_run": bytes_per_run, "kept_report": report,
             "rejected_runs": [e["run"] for e in report if not e["kept"]], "keep_tolerance": keep_tolerance}
    try:
        from .metrics import r_factor

        extra["mean_rf"] = r_factor(mean, problem.magnitudes, problem.known)
    except InputError:  # pragma: no cover - magnitudes validated when prepared
        pass
    if kept.supports is not None:
        extra["best_support"] = kept.supports[kidx[0]]
    return PhaseResult(image=mean, variance=var, best=kimg[0], kept=kimg, kept_runs=kept_runs,
                       final_rf=final_rf, history_iterations=np.asarray(hist_its), history_rf=hist_rf,
                       support=problem.support.copy(), config=config, seed=int(seed),
                       support_estimated=problem.support_estimated, extra=extra)
