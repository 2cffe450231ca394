"""The batched iteration solver shared by GPS and the baselines (ER, HIO, OSS) (formerly ``fastem.phase.engine``).

A :class:`Solver` holds ``R`` independent runs as one batch ``(R, *grid)`` on one device, all
buffers preallocated (its own private FFT plans from :func:`fastem.fft.new_plan` over the grid
axes with the run axis leading: no other solver, projector or thread ever touches its work
arrays, so solvers of the same shape may be interleaved or run in parallel threads), and drives
them through:

* **stages** -- ``L`` even stages (GPS, OSS: 10; ER, HIO: 1); in stage ``l`` the filter is fixed
  (:mod:`fastem.phase.schedules`); from stage 2 on, every run restarts from the best iterate
  (lowest ``R_F``) of its previous stage;
* **sigma** -- the GPS fidelity parameter follows a :class:`~fastem.phase.schedules.SigmaSchedule`;
* **R-factor monitoring** -- every ``rfactor_every`` iterations of a stage and at its last
  iteration, ``R_F`` of each run's current image is computed (one real FFT pair plus two light
  kernels, :mod:`fastem.kernels.phase_rfactor`) and recorded; the best image of each run (lowest
  ``R_F`` over all stages) is kept;
* **divergence** -- a run whose ``R_F`` is ever not finite (its iterate overflowed or became
  NaN) is marked in :attr:`Solver.diverged` with a warning and is never a result: it reports
  ``R_F = inf`` and :func:`fastem.phase.retrieve` never keeps it. When every run of the batch has
  diverged the iteration stops early;
* **shrink-wrap** (optional, ``PhaseConfig.shrink_wrap``; Marchesini et al., Phys. Rev. B 68,
  140101 (2003)) -- every ``shrink_wrap_every`` iterations each run's support becomes
  ``{G_sigma * u > threshold * max(G_sigma * u)}`` intersected with the initial support, ``u`` the
  run's current (support- and positivity-projected) image, ``G_sigma`` a Gaussian of ``sigma``
  pixels; ``sigma`` starts at ``shrink_wrap_sigma[0]`` and shrinks by 1 % per update down to
  ``shrink_wrap_sigma[1]`` (defaults: every 20 iterations, threshold 0.2, sigma 3 -> 1.5 px, as
  in Marchesini et al.). The first update comes ``shrink_wrap_every`` iterations after
  ``round(shrink_wrap_start * iterations)`` (default 0). A guard (``shrink_wrap_guard``, default
  0.25) undoes an update that made the fit worse: when a run's best ``R_F`` since its last
  update exceeds ``1 + guard`` times its best ``R_F`` of the window before, its support goes
  back to the one before that update (without it, a run whose iterate is still poor -- R_F
  35 % from a loose box -- shrinks onto a few bright pixels, fits worse, and shrinks further:
  runaway collapse to ~100 px, issue 15). The runs then carry one support each (``wsup`` of shape ``(R, *grid)``);
  the smoothing is a Fourier multiply on the real-FFT plan of the R-factor, so it runs on the
  GPU too;
* **checkpoints** -- :meth:`Solver.state_dict` / :meth:`Solver.load_state_dict` capture the whole
  state (iterates, stage bests, best images, stage, iteration, history, supports), so a run can
  resume.

Subclasses implement :meth:`Solver._initialise`, :meth:`Solver._set_stage_filters`,
:meth:`Solver.step`, :meth:`Solver._image_ready` and the stage-best save/restore.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from fastem import backend
from fastem.errors import InputError
from fastem.fft import empty_aligned, new_plan
from fastem.kernels import hermitian_half, rfactor_half
from fastem.kernels.phase_complex import check_phase_range

from .problem import PhaseProblem
from .schedules import DEFAULT_SIGMA_SCHEDULE, parse_sigma_schedule, stage_bounds

__all__ = ["PhaseConfig", "Solver", "ALGORITHMS", "GPS_DEFAULTS", "initial_phases"]

ALGORITHMS = ("gps-f", "gps-r", "oss", "hio", "er")

#: per-algorithm defaults of ``PhaseConfig.gamma_scale`` and ``sigma_schedule`` (None resolves to
#: these; the other algorithms take GPS-F's, which they do not use). GPS-F: the thesis' sigma
#: schedule and the OSS-tied filter; GPS-R: the same filter and sigma 0.3 (not 1) in the last
#: 30 %, measured on the robustness grid at 64^2 and 128^2 (docs/phase.md).
GPS_DEFAULTS = {
    "gps-f": {"gamma_scale": 1.0, "sigma_schedule": DEFAULT_SIGMA_SCHEDULE},
    "gps-r": {"gamma_scale": 1.0, "sigma_schedule": ((0.0, 0.01), (0.4, 0.1), (0.7, 0.3))},
}


@dataclass
class PhaseConfig:
    """Every parameter of a phase-retrieval run (defaults from the spec / thesis 2.4).

    Attributes
    ----------
    algorithm : {"gps-r", "gps-f", "oss", "hio", "er"}
        Default "gps-r": the lowest R_real in most cells of the robustness grid (docs/phase.md;
        GPS-F was the default before 2026-12-06).
    iterations : int
        Total iterations (1000).
    stages : int or None
        Number of filter stages; ``None``: 10 for GPS and OSS, 1 for ER and HIO.
    t, s : float
        GPS primal and dual step sizes (1, 0.9).
    sigma_schedule : SigmaSchedule, str or None
        GPS fidelity ``sigma`` over the run. None: the algorithm's default
        (:data:`GPS_DEFAULTS`): GPS-R 0.01 / 0.1 / 0.3 from 0 / 40 / 70 % of the iterations, GPS-F
        (and the others, which do not use it) 0.01 / 0.1 / 1 (thesis 2.4.2).
    beta : float
        HIO / OSS feedback (0.9).
    gamma_scale : float or None
        Multiplier of the GPS smoothing parameter ``gamma_l``. None: the algorithm's default
        (:data:`GPS_DEFAULTS`), 1 for both GPS variants. GPS-R's final sigma 0.3 (with the filter
        x1) meets the robustness grid's target at 64^2 and 128^2; twice the filter won at 128^2
        but lost at 64^2 (docs/phase.md, ``bench/results/phase_grid_{64,128}_g1sigma03.md``).
    rfactor_every : int
        Iterations between R-factor evaluations within a stage (also at each stage's end).
    project_output : bool
        GPS: monitor and return ``max(Re F^{-1} z, 0)`` on the support only (0 outside), the
        projection the baselines' images get (True); False: the spec's step 6 as written.
    shrink_wrap : bool
        Update each run's support by shrink-wrap (see the module docstring; default off).
    shrink_wrap_every : int
        Iterations between support updates (20).
    shrink_wrap_threshold : float
        Relative threshold on the smoothed image (0.2).
    shrink_wrap_sigma : (float, float)
        Gaussian width in pixels at the first update and its floor (3, 1.5); 1 % smaller per update.
    shrink_wrap_start : float
        Fraction of the iterations before the first update's window starts (0: the first
        update is after ``shrink_wrap_every`` iterations), in ``[0, 1)``.
    shrink_wrap_guard : float
        Undo an update after which a run's best ``R_F`` grew by more than this fraction (0.25;
        0 disables the guard).
    gamma_schedule : {"oss", "relax"}
        GPS smoothing per stage (:mod:`fastem.phase.schedules`): "oss" ties ``gamma_l`` to the OSS
        widths (times ``gamma_scale``); "relax" sets the GPS-F weight at the array edge / the
        GPS-R filter at Nyquist to ``gamma_edge[0]`` in stage 1, log-linear to ``gamma_edge[1]``
        in the last (strong smoothing early, relaxing).
    gamma_edge : (float, float)
        First and last stage's edge value of the "relax" schedule, each in (0, 1) ((0.01, 0.9)).
    stage_restart : {"stage", "global"}
        What a stage restarts from: the best iterate of the previous stage ("stage", the spec)
        or the best iterate of all stages so far ("global": ``R_F^best`` is initialised once,
        before the stage loop, in the thesis' algorithms 1-2).
    complex_object : bool
        Reconstruct a complex-valued object (Bragg CDI, phase objects): no positivity, complex
        iterates and images, the real-space step of :mod:`fastem.kernels.phase_complex`
        (default False: a real, non-negative object).
    phase_range : None or (float, float)
        With ``complex_object``: keep the phase of every pixel inside the support in
        ``[lo, hi]`` radians (``0 <= hi - lo <= pi``; e.g. ``(-pi/2, pi/2)`` for a weak phase
        object); None: no phase constraint.
    gps_dual : {None, "feedback", "polar"}
        GPS's dual step for a complex object with a phase range (:mod:`fastem.phase.gps`):
        "polar" projects onto the polar cone of the constraint set (the thesis' eq. 2.19 carried
        over to a sector), "feedback" keeps the whole value at pixels inside the support whose
        phase is out of range (Fienup's HIO rule; the two agree everywhere else, and everywhere
        without a range). None: "feedback" for complex objects (measured on the robustness grid,
        docs/phase.md), "polar" for real ones (the only rule for a real object).
    """

    algorithm: str = "gps-r"
    iterations: int = 1000
    stages: int | None = None
    t: float = 1.0
    s: float = 0.9
    sigma_schedule: Any = None
    beta: float = 0.9
    gamma_scale: Any = None
    rfactor_every: int = 5
    project_output: bool = True
    shrink_wrap: bool = False
    shrink_wrap_every: int = 20
    shrink_wrap_threshold: float = 0.2
    shrink_wrap_sigma: tuple = (3.0, 1.5)
    shrink_wrap_start: float = 0.0
    shrink_wrap_guard: float = 0.25
    stage_restart: str = "stage"
    gamma_schedule: str = "oss"
    gamma_edge: tuple = (0.01, 0.9)
    complex_object: bool = False
    phase_range: Any = None
    gps_dual: Any = None

    def __post_init__(self):
        if not isinstance(self.algorithm, str) or self.algorithm.lower() not in ALGORITHMS:
            raise InputError(f"algorithm {self.algorithm!r}: choose one of {', '.join(ALGORITHMS)}")
        self.algorithm = self.algorithm.lower()
        if self.gamma_schedule not in ("oss", "relax"):
            raise InputError(f"gamma_schedule must be 'oss' or 'relax', got {self.gamma_schedule!r}")
        try:
            ge = tuple(_finite(v, "gamma_edge") for v in self.gamma_edge)
        except TypeError:
            raise InputError(f"gamma_edge must be two numbers in (0, 1), got {self.gamma_edge!r}") from None
        if len(ge) != 2 or not all(0 < v < 1 for v in ge):
            raise InputError(f"gamma_edge must be two numbers in (0, 1), got {self.gamma_edge!r}")
        self.gamma_edge = ge
        if self.stage_restart not in ("stage", "global"):
            raise InputError(f"stage_restart must be 'stage' or 'global', got {self.stage_restart!r}")
        defaults = GPS_DEFAULTS.get(self.algorithm, GPS_DEFAULTS["gps-f"])
        if self.sigma_schedule is None:
            self.sigma_schedule = defaults["sigma_schedule"]
        self.sigma_schedule = parse_sigma_schedule(self.sigma_schedule)
        if self.gamma_scale is None:
            self.gamma_scale = defaults["gamma_scale"]
        if not isinstance(self.complex_object, (bool, np.bool_)):
            raise InputError(f"complex_object must be True or False, got {self.complex_object!r}")
        self.complex_object = bool(self.complex_object)
        self.phase_range = check_phase_range(self.phase_range, "phase_range")
        if self.phase_range is not None and not self.complex_object:
            raise InputError("phase_range constrains a complex-valued object: set complex_object=True (a real "
                             "object is already non-negative)")
        if self.gps_dual is None:
            self.gps_dual = "feedback" if self.complex_object else "polar"
        if self.gps_dual not in ("feedback", "polar"):
            raise InputError(f"gps_dual must be 'feedback' or 'polar', got {self.gps_dual!r}")
        if self.gps_dual == "feedback" and not self.complex_object:
            raise InputError("gps_dual='feedback' is for complex-valued objects (complex_object=True); a real "
                             "object's dual step is the polar projection")
        if self.stages is None:
            self.stages = 10 if self.algorithm in ("gps-f", "gps-r", "oss") else 1
        self.shrink_wrap = bool(self.shrink_wrap)
        for name in ("iterations", "stages", "rfactor_every", "shrink_wrap_every"):
            setattr(self, name, _integer(getattr(self, name), name))
        for name in ("t", "s", "beta", "gamma_scale", "shrink_wrap_threshold", "shrink_wrap_start",
                     "shrink_wrap_guard"):
            setattr(self, name, _finite(getattr(self, name), name))
        try:
            sw = tuple(_finite(v, "shrink_wrap_sigma") for v in self.shrink_wrap_sigma)
        except TypeError:
            raise InputError(f"shrink_wrap_sigma must be two numbers (start, floor), got {self.shrink_wrap_sigma!r}") \
                from None
        self.shrink_wrap_sigma = sw
        checks = [("iterations", self.iterations >= 1, ">= 1"), ("stages", self.stages >= 1, ">= 1"),
                  ("t", self.t > 0, "> 0"), ("s", self.s > 0, "> 0"), ("beta", 0 < self.beta <= 2, "in (0, 2]"),
                  ("gamma_scale", self.gamma_scale >= 0, ">= 0"), ("rfactor_every", self.rfactor_every >= 1, ">= 1"),
                  ("shrink_wrap_every", self.shrink_wrap_every >= 1, ">= 1"),
                  ("shrink_wrap_threshold", 0 < self.shrink_wrap_threshold < 1, "in (0, 1)"),
                  ("shrink_wrap_start", 0 <= self.shrink_wrap_start < 1, "in [0, 1)"),
                  ("shrink_wrap_guard", self.shrink_wrap_guard >= 0, ">= 0"),
                  ("shrink_wrap_sigma", len(sw) == 2 and sw[0] >= sw[1] > 0, "(start, floor) with start >= floor > 0")]
        for name, ok, rule in checks:
            if not ok:
                raise InputError(f"{name} must be {rule}, got {getattr(self, name)!r}")

    def as_dict(self) -> dict:
        d = asdict(self)
        d["sigma_schedule"] = str(self.sigma_schedule)
        d["shrink_wrap_sigma"] = list(self.shrink_wrap_sigma)
        d["gamma_edge"] = list(self.gamma_edge)
        d["phase_range"] = None if self.phase_range is None else list(self.phase_range)
        return d

    def shrink_wrap_width(self, update: int) -> float:
        """Gaussian width (pixels) of the ``update``-th shrink-wrap update (0-based)."""
        start, floor = self.shrink_wrap_sigma
        return max(floor, start * 0.99**update)


def _integer(value, name: str) -> int:
    """An integer parameter (``3`` or ``3.0``), or a one-line :class:`InputError` naming it."""
    if isinstance(value, (bool, np.bool_)):
        raise InputError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer():
        return int(value)
    raise InputError(f"{name} must be an integer, got {value!r}")


def _finite(value, name: str) -> float:
    """A finite real parameter, or a one-line :class:`InputError` naming it."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    if not np.isfinite(value):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def initial_phases(seed: int, run_indices, shape) -> np.ndarray:
    """Random phases ``phi`` uniform on ``[0, 2 pi)``, ``(len(run_indices), *shape)`` float64.

    Run ``r`` draws from ``numpy.random.default_rng([seed, r])``: the phases of a run depend on
    the seed and its index only, not on how many runs are batched, so every algorithm gets the
    same starts for the same seed.
    """
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be an integer >= 0, got {seed!r}")
    runs = list(run_indices)
    out = np.empty((len(runs),) + tuple(shape))
    for j, r in enumerate(runs):
        out[j] = np.random.default_rng([int(seed), int(r)]).uniform(0.0, 2.0 * np.pi, size=shape)
    return out


class Solver:
    """``R`` runs of one algorithm on one problem, batched (see the module docstring).

    Parameters
    ----------
    problem : PhaseProblem
    runs : int
    config : PhaseConfig
    """

    def __init__(self, problem: PhaseProblem, runs: int, config: PhaseConfig):
        if runs < 1:
            raise InputError(f"runs must be >= 1, got {runs}")
        self.problem = problem
        self.config = config
        self.runs = int(runs)
        self.device = problem.device
        self.xp = self.device.xp
        self.grid = tuple(problem.shape)
        self.full_shape = (self.runs,) + self.grid
        self.n = int(np.prod(self.grid))
        rdt = problem.rdtype
        # private plans: their buffers are this solver's work arrays, shared with nobody
        self.plan, self.rplan = self.plan_ffts(problem, self.runs, complex_object=config.complex_object)
        self.buf = self.plan.buffer  # the one complex work array every iteration runs through
        self.half = self.rplan.buffer  # half spectrum for the R-factor
        #: complex-valued object (:attr:`PhaseConfig.complex_object`): complex images and iterates
        self.complex_object = bool(config.complex_object)
        idt = problem.dtype if self.complex_object else rdt  # the images' dtype
        self.img = empty_aligned(self.full_shape, idt, self.device)  # current image (R-factor input)
        self.best_image = empty_aligned(self.full_shape, idt, self.device)
        if self.complex_object:
            # the full spectrum of a complex image (its R-factor counts every pixel itself: the
            # half-spectrum kernel on the full grid with no mirrored pixels, bm = -1)
            self.spec = empty_aligned(self.full_shape, problem.dtype, self.device)
            self._bm_none = problem.to_device(np.full(self.grid, -1.0), rdt)
        with self.device.use():
            self.rf_sum = self.xp.zeros(self.runs, np.float64)
        self._rf_partial = np.empty(self.runs * int(np.prod(self.half.shape[1:-1])), np.float64)
        # support (and GPS-F weight) for the real-space kernel: -W inside S, +W outside; shared by
        # every run, or one per run with shrink-wrap
        sign = np.where(problem.support_fft, -1.0, 1.0)
        if config.shrink_wrap:
            sign = np.broadcast_to(sign, self.full_shape)
            self.sw_initial = problem.to_device(problem.support_fft, bool)
            self.sw_smooth = empty_aligned(self.full_shape, rdt, self.device)
            half_grid = tuple(self.half.shape[1:])
            self._sw_q2 = problem.to_device(_half_q2(self.grid, half_grid), rdt)
            # the guard: each run's support before its last update and the best R_F of the
            # windows before / since that update
            self.sw_prev = problem.to_device(np.broadcast_to(problem.support_fft, self.full_shape), bool)
            self.sw_rf_prev = np.full(self.runs, np.inf)
            self.sw_rf_window = np.full(self.runs, np.inf)
            self.sw_rejected = np.zeros(self.runs, np.int64)
        self.wsup = problem.to_device(sign, rdt)
        self.bounds = stage_bounds(config.iterations, config.stages)
        self.restarts = len(self.bounds) > 1
        self.iteration = 0
        self.stage = -1
        self.best_rf = np.full(self.runs, np.inf)
        self.stage_rf = np.full(self.runs, np.inf)
        #: runs whose R-factor was ever not finite: never a result
        self.diverged = np.zeros(self.runs, bool)
        self.first_divergence: int | None = None
        self.history_iterations: list[int] = []
        self.history_rf: list[np.ndarray] = []
        self._warned_diverged = False

    # ---- to implement ------------------------------------------------------------------------
    def _initialise(self, phases) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _set_stage_filters(self, stage: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def step(self, sigma: float, want_image: bool = False) -> None:  # pragma: no cover - abstract
        """One iteration of every run (exactly the FFTs and kernels the algorithm needs)."""
        raise NotImplementedError

    def _image_ready(self) -> None:  # pragma: no cover - abstract
        """Make ``self.img`` the current image of every run (after a step with ``want_image``)."""
        raise NotImplementedError

    def _save_stage_best(self, runs: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _restore_stage_best(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _state_arrays(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    # ---- shared ------------------------------------------------------------------------------
    @staticmethod
    def plan_ffts(problem: PhaseProblem, runs: int, threads: int | None = None, complex_object: bool = False):
        """The two private plans a solver of ``runs`` runs computes in: complex (runs, *grid)
        and real-to-complex, over the grid axes (``threads``: FFTW threads, default the
        process's). Every FFT the solver runs goes through them, so a Dask client that builds
        these for the chunk sizes it submits has measured every plan its workers need
        (:func:`fastem.fft.export_wisdom`). ``complex_object``: also plan the out-of-place
        complex forward transform the R-factor of a complex image runs (image -> spectrum)."""
        full_shape = (int(runs),) + tuple(problem.shape)
        axes = tuple(range(1, len(problem.shape) + 1))
        plan = new_plan(full_shape, problem.dtype, axes=axes, device=problem.device, threads=threads)
        if complex_object and problem.device.is_cpu:
            # planned now (FFTW_MEASURE), not at the first R-factor: part of the client's wisdom
            plan.forward(plan.buffer, out=empty_aligned(full_shape, problem.dtype, problem.device))
        return (plan,
                new_plan(full_shape, problem.rdtype, axes=axes, real=True, device=problem.device, threads=threads))

    @classmethod
    def bytes_per_run(cls, problem: PhaseProblem, config: PhaseConfig) -> int:
        """Device memory (bytes) one run needs: its complex and real arrays (see the subclasses)."""
        stages = config.stages if config.stages is not None else 1
        complex_arrays, real_arrays = cls._arrays_per_run(stages > 1)
        if config.complex_object:  # the iterates, img and best_image are complex; + the full spectrum
            complex_arrays += real_arrays + 3
            real_arrays = 1  # the real-FFT plan's real buffer
        else:
            real_arrays += 3  # img, best_image, the real-FFT plan's real buffer
        n_last = int(problem.shape[-1])
        complex_arrays += (n_last // 2 + 1) / n_last  # the half spectrum of the R-factor
        if config.shrink_wrap:
            real_arrays += 1.25  # per-run support (wsup) and the smoothing work array (+ masks)
        c = np.dtype(problem.dtype).itemsize
        return int(problem.npix * (complex_arrays * c + real_arrays * c // 2))

    @classmethod
    def _arrays_per_run(cls, restarts: bool) -> tuple[float, float]:  # pragma: no cover - abstract
        """``(complex, real)`` full-grid arrays per run besides the shared ones."""
        raise NotImplementedError

    def initialise(self, phases) -> "Solver":
        """Start every run from ``z0 = b exp(i phi)`` (``phases``: ``(R, *grid)`` in FFT layout).

        Unknown pixels start at magnitude 0.
        """
        phases = np.asarray(phases)
        if phases.shape != self.full_shape:
            raise InputError(f"initial phases have shape {phases.shape}, expected {self.full_shape}")
        self._initialise(phases)
        if self.config.shrink_wrap:
            self._set_supports(self.xp.broadcast_to(self.sw_initial, self.full_shape))
            self.sw_prev[...] = self.sw_initial
            self.sw_rf_prev[:] = np.inf
            self.sw_rf_window[:] = np.inf
            self.sw_rejected[:] = 0
        self.iteration = 0
        self.stage = -1
        self.best_rf[:] = np.inf
        self.stage_rf[:] = np.inf
        self.diverged[:] = False
        self.first_divergence = None
        self.history_iterations.clear()
        self.history_rf.clear()
        return self

    def z0(self, phases):
        """``b exp(i phi)`` on known pixels, 0 on unknown ones, on the device (a new array)."""
        xp = self.xp
        with self.device.use():
            b = xp.maximum(self.problem.bk, 0)
            ph = xp.asarray(phases)
            return (b * xp.exp(1j * ph)).astype(self.problem.dtype)

    def stage_of(self, iteration: int) -> int:
        for l, (a, b) in enumerate(self.bounds):
            if a <= iteration < b:
                return l
        return len(self.bounds) - 1

    def sigma_at(self, iteration: int) -> float:
        return self.config.sigma_schedule.value(iteration, self.config.iterations)

    def evaluate(self) -> np.ndarray:
        """R-factor of every run's current image (host float64 array ``(R,)``)."""
        self._image_ready()
        if self.complex_object:
            self.plan.forward(self.img, out=self.spec)
            rfactor_half(self.spec, self.problem.bk, self._bm_none, self.rf_sum, partial=self._rf_partial)
        else:
            self.rplan.forward(self.img, out=self.half)
            rfactor_half(self.half, self.problem.bh, self.problem.bm, self.rf_sum, partial=self._rf_partial)
        rf = backend.to_host(self.rf_sum, copy=True)
        return rf / self.problem.sum_b

    def _begin_stage(self, stage: int) -> None:
        # a run without a finite R_F in the last stage has diverged (it is ignored whatever it
        # restarts from): it must not keep the other runs from restarting
        if stage > 0 and self.restarts and np.any(np.isfinite(self.stage_rf)):
            self._restore_stage_best()
        self._set_stage_filters(stage)
        self.stage = stage
        if self.config.stage_restart == "stage":  # "global": the best over all stages so far
            self.stage_rf[:] = np.inf

    def _record(self, iteration: int, rf: np.ndarray) -> None:
        bad = ~np.isfinite(rf)
        if bad.any():  # a diverged run (non-finite iterate) can never be a result
            self.diverged |= bad
            if self.first_divergence is None:
                self.first_divergence = iteration + 1
            if not self._warned_diverged:
                warnings.warn(f"{self.config.algorithm}: {int(bad.sum())} of {self.runs} runs diverged (non-finite "
                              f"R-factor at iteration {iteration + 1}); they are ignored", RuntimeWarning, stacklevel=3)
                self._warned_diverged = True
            rf = np.where(bad, np.inf, rf)
        self.history_iterations.append(iteration + 1)
        self.history_rf.append(rf)
        if self.config.shrink_wrap:
            np.minimum(self.sw_rf_window, rf, out=self.sw_rf_window)
        if self.restarts:
            better = np.flatnonzero(rf < self.stage_rf)
            if better.size:
                self._save_stage_best(better)
                self.stage_rf[better] = rf[better]
        better = np.flatnonzero(rf < self.best_rf)
        self._copy_runs(self.best_image, self.img, better)
        self.best_rf[better] = rf[better]

    def _copy_runs(self, dst, src, runs: np.ndarray, factor=None) -> None:
        """``dst[r] = src[r] (* factor)`` for the runs ``runs``: one whole-array operation (all
        runs), a view copy (one run) or one gather/scatter (some runs), not a launch per run."""
        xp = self.xp
        if len(runs) == 0:
            return
        if len(runs) == self.runs:
            if factor is None:
                dst[...] = src
            else:
                xp.multiply(src, factor, out=dst)
        elif len(runs) == 1:
            r = int(runs[0])
            if factor is None:
                dst[r] = src[r]
            else:
                xp.multiply(src[r], factor, out=dst[r])
        else:
            idx = xp.asarray(runs)
            dst[idx] = src[idx] if factor is None else src[idx] * factor

    def run(self, progress: Any = None, checkpoint_every: int = 0,
            on_checkpoint: Callable[[dict], Any] | None = None, stop_at: int | None = None) -> "Solver":
        """Iterate to the end (or to ``stop_at``), from the current ``iteration``.

        Parameters
        ----------
        progress : tqdm-like, optional
            ``update(1)`` per iteration and ``set_postfix(R_F=...)`` after each evaluation.
        checkpoint_every : int
            Call ``on_checkpoint(self.state_dict())`` every this many iterations (0: never).
        stop_at : int, optional
            Stop before this iteration (for tests of checkpoint / resume).
        """
        cfg = self.config
        end = cfg.iterations if stop_at is None else min(int(stop_at), cfg.iterations)
        while self.iteration < end:
            it = self.iteration
            l = self.stage_of(it)
            if l != self.stage:
                self._begin_stage(l)
            a, b = self.bounds[l]
            due = ((it - a + 1) % cfg.rfactor_every == 0) or it == b - 1
            wrap = cfg.shrink_wrap and self._shrink_wrap_due(it)
            self.step(self.sigma_at(it), want_image=due or wrap)
            if due:
                self._record(it, self.evaluate())
            if wrap:
                if not due:
                    self._image_ready()
                self._shrink_wrap(cfg.shrink_wrap_width(self._shrink_wrap_index(it)))
            self.iteration = it + 1
            if progress is not None:
                progress.update(1)
                if due:
                    progress.set_postfix(R_F=f"{float(np.min(self.best_rf)):.4f}", refresh=False)
            if checkpoint_every and on_checkpoint is not None and self.iteration % checkpoint_every == 0 \
                    and self.iteration < cfg.iterations:
                on_checkpoint(self.state_dict())
            if due and self.diverged.all():  # nothing left to iterate: no run can be a result
                self._skip_to(self.iteration, end, progress)
                break
        return self

    def _skip_to(self, start: int, end: int, progress: Any = None) -> None:
        """Every run has diverged: record ``R_F = inf`` at the evaluations of ``[start, end)``
        without iterating (the history keeps its length) and move to ``end``."""
        cfg = self.config
        for it in range(start, end):
            a, b = self.bounds[self.stage_of(it)]
            if ((it - a + 1) % cfg.rfactor_every == 0) or it == b - 1:
                self.history_iterations.append(it + 1)
                self.history_rf.append(np.full(self.runs, np.inf))
        if progress is not None and end > start:
            progress.update(end - start)
        self.iteration = end
        self.stage = self.stage_of(end - 1)

    # ---- shrink-wrap ----------------------------------------------------------------------------
    def _set_supports(self, support) -> None:
        """Make ``support`` (bool, ``(R, *grid)``, FFT layout, on the device) the runs' supports:
        the sign of ``wsup`` (its magnitude, the GPS-F weight, is kept)."""
        xp = self.xp
        mag = xp.abs(self.wsup)
        xp.copyto(self.wsup, xp.where(support, -mag, mag))
        self._supports_changed(support)

    def _supports_changed(self, support) -> None:
        """Hook for solvers that keep a copy of the support (GPS's output mask)."""

    def _shrink_wrap_first(self) -> int:
        """0-based iteration after which the first shrink-wrap update happens."""
        cfg = self.config
        start = int(round(cfg.shrink_wrap_start * cfg.iterations))
        return start + cfg.shrink_wrap_every - 1

    def _shrink_wrap_due(self, it: int) -> bool:
        cfg = self.config
        first = self._shrink_wrap_first()
        return it >= first and (it - first) % cfg.shrink_wrap_every == 0 and it + 1 < cfg.iterations

    def _shrink_wrap_index(self, it: int) -> int:
        """0-based number of the update at iteration ``it`` (sets the Gaussian width)."""
        return (it - self._shrink_wrap_first()) // self.config.shrink_wrap_every

    def _shrink_wrap(self, width: float) -> None:
        """One shrink-wrap update of every run's support from ``self.img`` (the current images).

        Guard (``shrink_wrap_guard = g > 0``): a run whose best ``R_F`` since its last update is
        more than ``(1 + g)`` times its best ``R_F`` in the window before that update was made
        worse by it (the support cut into the object): its previous support is restored and it
        is not shrunk this time (counted in :attr:`sw_rejected`).
        """
        xp = self.xp
        cfg = self.config
        if self.complex_object:  # the modulus of a complex image
            xp.abs(self.img, out=self.sw_smooth)
            self.rplan.forward(self.sw_smooth, out=self.half)
        else:
            self.rplan.forward(self.img, out=self.half)
        self.half *= xp.exp(self._sw_q2 * (-2.0 * np.pi**2 * width * width))
        self.rplan.backward(self.half, out=self.sw_smooth, normalise=False, overwrite_input=True)
        axes = tuple(range(1, len(self.full_shape)))
        peak = self.sw_smooth.max(axis=axes, keepdims=True)
        current = self.wsup < 0
        if current.shape != self.full_shape:
            current = xp.broadcast_to(current, self.full_shape)
        new = (self.sw_smooth > cfg.shrink_wrap_threshold * peak) & self.sw_initial
        keep_old = ~xp.any(new, axis=axes, keepdims=True)  # an empty image keeps its support
        new = xp.where(keep_old, current, new)
        if cfg.shrink_wrap_guard > 0:
            worse = self.sw_rf_window > (1.0 + cfg.shrink_wrap_guard) * self.sw_rf_prev
            worse &= np.isfinite(self.sw_rf_prev)
        else:
            worse = np.zeros(self.runs, bool)
        accepted = ~worse
        self.sw_rejected += worse
        w = xp.asarray(worse.reshape((-1,) + (1,) * len(self.grid)))
        new = xp.where(w, self.sw_prev, new)
        a = xp.asarray(accepted.reshape((-1,) + (1,) * len(self.grid)))
        xp.copyto(self.sw_prev, xp.where(a, current, self.sw_prev))
        self.sw_rf_prev = np.where(accepted, self.sw_rf_window, self.sw_rf_prev)
        self.sw_rf_window = np.full(self.runs, np.inf)
        self._set_supports(new)

    def supports_centred(self, runs=None) -> np.ndarray:
        """Every run's support (or those of ``runs``), host bool ``(R, *grid)``, object centred."""
        s = self.xp.broadcast_to(self.wsup < 0, self.full_shape)
        if runs is not None:
            s = s[self.xp.asarray(np.asarray(runs, int))]
        s = backend.to_host(s)
        return np.fft.fftshift(s, axes=tuple(range(1, s.ndim)))

    # ---- results ------------------------------------------------------------------------------
    def history(self) -> tuple[np.ndarray, np.ndarray]:
        """``(iterations (E,), R_F (E, R))`` of every evaluation so far."""
        if not self.history_rf:
            return np.zeros(0, int), np.zeros((0, self.runs))
        return np.asarray(self.history_iterations), np.stack(self.history_rf)

    def final_rf(self) -> np.ndarray:
        """Per-run result ``R_F``: the best ``R_F`` of each run, ``inf`` for a run that diverged."""
        return np.where(self.diverged, np.inf, self.best_rf)

    def best_images_centred(self, runs=None) -> np.ndarray:
        """The best image of every run (or of the runs ``runs``, in that order), host float64
        ``(R, *grid)`` (complex128 for a complex object), object centred (disk layout), in the
        units of the data (the internal scale of :attr:`PhaseProblem.magnitude_scale` undone)."""
        img = self.best_image
        if runs is not None:
            img = img[self.xp.asarray(np.asarray(runs, int))]
        img = backend.to_host(img)
        axes = tuple(range(1, img.ndim))
        out = np.fft.fftshift(np.asarray(img, np.complex128 if self.complex_object else np.float64), axes=axes)
        if self.problem.magnitude_scale != 1.0:
            out /= self.problem.magnitude_scale  # a power of two: exact
        return out

    # ---- checkpoint ---------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to resume: host copies of the arrays plus scalars and history."""
        def host(a):
            return backend.to_host(a, copy=True)

        its, rfs = self.history()
        state = {
            "algorithm": self.config.algorithm,
            "iteration": int(self.iteration),
            "stage": int(self.stage),
            "runs": int(self.runs),
            "best_rf": self.best_rf.copy(),
            "stage_rf": self.stage_rf.copy(),
            "history_iterations": its,
            "history_rf": rfs,
            "best_image": host(self.best_image),
            "diverged": self.diverged.astype(np.uint8),
            "image_scale": float(self.problem.magnitude_scale),
        }
        if self.config.shrink_wrap:
            state.update(sw_rf_prev=self.sw_rf_prev.copy(), sw_rf_window=self.sw_rf_window.copy(),
                         sw_rejected=self.sw_rejected.copy())
        for name, arr in self._all_state_arrays().items():
            state[f"state_{name}"] = host(arr)
        state.update(self._state_scalars())
        return state

    def _all_state_arrays(self) -> dict:
        arrays = dict(self._state_arrays())
        if self.config.shrink_wrap:
            arrays["wsup"] = self.wsup
            arrays["sw_prev"] = self.sw_prev
        return arrays

    def _state_scalars(self) -> dict:
        return {}

    def _load_scalars(self, state: dict) -> None:
        pass

    def load_state_dict(self, state: dict) -> "Solver":
        """Resume from :meth:`state_dict` output (same problem, runs and configuration)."""
        if str(state.get("algorithm")) != self.config.algorithm or int(state.get("runs", -1)) != self.runs:
            raise InputError(f"checkpoint is for {state.get('algorithm')} with {state.get('runs')} runs; this run is "
                             f"{self.config.algorithm} with {self.runs} runs")
        for name, arr in self._all_state_arrays().items():
            src = np.asarray(state[f"state_{name}"])
            if src.shape != tuple(arr.shape):
                raise InputError(f"checkpoint array {name} has shape {src.shape}, expected {tuple(arr.shape)}")
            arr[...] = self.xp.asarray(src)
        self.best_image[...] = self.xp.asarray(np.asarray(state["best_image"]))
        self.iteration = int(state["iteration"])
        self.best_rf = np.asarray(state["best_rf"], np.float64).copy()
        self.stage_rf = np.asarray(state["stage_rf"], np.float64).copy()
        its = np.asarray(state["history_iterations"]).reshape(-1)
        rfs = np.asarray(state["history_rf"]).reshape(len(its), -1) if len(its) else np.zeros((0, self.runs))
        self.history_iterations = [int(i) for i in its]
        self.history_rf = [np.array(r, np.float64) for r in rfs]
        if "diverged" in state:
            self.diverged = np.asarray(state["diverged"]).reshape(-1).astype(bool).copy()
        else:  # older checkpoints: a run diverged where its recorded R_F is not finite
            self.diverged = ~np.isfinite(rfs).all(axis=0) if len(its) else np.zeros(self.runs, bool)
        if self.diverged.shape != (self.runs,):
            raise InputError(f"checkpoint diverged flags have shape {self.diverged.shape}, expected ({self.runs},)")
        self._load_scalars(state)
        if self.config.shrink_wrap:
            for name in ("sw_rf_prev", "sw_rf_window", "sw_rejected"):
                if name in state:
                    setattr(self, name, np.asarray(state[name]).reshape(-1).astype(getattr(self, name).dtype))
        stage = int(state["stage"])
        if stage >= 0:
            self._set_stage_filters(stage)
        if self.config.shrink_wrap:
            self._supports_changed(self.wsup < 0)
        self.stage = stage
        return self


def _half_q2(grid, half_grid) -> np.ndarray:
    """``sum_a (k_a / N_a)^2`` on the real-FFT half spectrum of ``grid`` (cycles per pixel, squared)."""
    out = np.zeros(half_grid)
    for ax, n in enumerate(grid):
        k = np.fft.rfftfreq(n) if ax == len(grid) - 1 else np.fft.fftfreq(n)
        sh = [1] * len(grid)
        sh[ax] = k.size
        out = out + (k**2).reshape(sh)
    return out
