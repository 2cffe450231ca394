"""Process-wide settings: threads, default device, verbosity, cache directory.

The CLI's global options (``--threads``, ``--device``, ``--quiet``, ``--debug``) write here;
library users call :func:`set_threads` etc. or leave the defaults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .backend import available_cores  # noqa: F401  (re-exported: fastem.config.available_cores)
from . import backend as _backend

#: libgomp spin count between parallel regions before an idle worker sleeps (``GOMP_SPINCOUNT``;
#: libgomp's own estimate is about 100 000 spins per ms, so about 10 us). See :func:`use_passive_openmp`.
OPENMP_SPIN_COUNT = 1000


def use_passive_openmp() -> bool:
    """Ask OpenMP's idle workers to spin briefly, then sleep (``OMP_WAIT_POLICY=PASSIVE``,
    ``GOMP_SPINCOUNT=1000``).

    Numba's default threading layer on Linux is GNU OpenMP, whose idle workers spin-wait after
    every parallel region (about 3 ms by default, libgomp's own estimate); interleaved with FFTW's own threads (every
    iterative solver alternates FFTs and Numba kernels) the spinning workers starve FFTW on a
    small machine -- measured here: 300 (FFT + kernel) pairs at 4x64x64 took 6.6 s spinning vs
    0.016 s passive. ``PASSIVE`` alone sleeps at once, and waking a sleeping worker cost 42.3 us per
    parallel region on this machine (1.3 us with a spin): a tomography iteration at 48^3 runs
    about eight regions in 2 ms. A short spin of :data:`OPENMP_SPIN_COUNT` (about 10 us; ``GOMP_SPINCOUNT``
    overrides the policy's own count) keeps the workers awake from one region to the next while
    a long FFT still finds them asleep (``bench/openmp_wait_policy.py``,
    ``bench/results/openmp_wait_policy.md``: an FFT-based phase retrieval in 0.66x and a
    regularised tomography in 0.87x the time with ``PASSIVE`` alone; 5000 spins starve FFTW
    again, 1.58x).

    The settings are process-wide, so ``import fastem`` does not make them: the ``fastem`` CLI
    and the benchmark harness call this at start; a library user who interleaves FFTs with
    fastem's Numba kernels calls it (or sets the variables) before the first kernel runs. A
    value the user set wins, for each variable.

    Returns
    -------
    bool
        Whether the policy is now PASSIVE (False: the user chose another policy). It only takes
        effect if called before the OpenMP runtime starts (the first Numba parallel call).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("GOMP_SPINCOUNT", str(OPENMP_SPIN_COUNT))
    return os.environ["OMP_WAIT_POLICY"].upper() == "PASSIVE"


def _default_cache_dir() -> Path:
    env = os.environ.get("FASTEM_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fastem"


def _timelimit_from_env() -> float | None:
    raw = os.environ.get("FASTEM_FFT_PLANNING_TIMELIMIT", "5")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"FASTEM_FFT_PLANNING_TIMELIMIT must be a number of seconds, got {raw!r}") from None
    return None if value < 0 else value


def _threads_from_env() -> int:
    """``$FASTEM_THREADS`` (a positive integer) or, when unset, every available core."""
    raw = os.environ.get("FASTEM_THREADS", "").strip()
    if not raw:
        return available_cores()
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"FASTEM_THREADS must be a positive integer (threads per process), got {raw!r}")
    return value


@dataclass
class Settings:
    #: CPU threads of FFTW plans and Numba kernels: ``$FASTEM_THREADS`` or all available cores
    #: (set it for each Dask worker process to the cores that worker may use).
    threads: int = field(default_factory=_threads_from_env)
    device: str = "auto"
    quiet: bool = False
    debug: bool = False
    cache_dir: Path = field(default_factory=_default_cache_dir)
    fft_planner: str = field(default_factory=lambda: os.environ.get("FASTEM_FFT_PLANNER", "FFTW_MEASURE"))
    #: upper bound in seconds on FFTW's planning of one transform (FFTW then keeps the best plan it
    #: found); ``FFTW_MEASURE`` of a large 1D length otherwise takes a minute on a small machine.
    #: ``$FASTEM_FFT_PLANNING_TIMELIMIT``; ``None`` (or a negative value) = no limit.
    fft_planning_timelimit: float | None = field(default_factory=lambda: _timelimit_from_env())
    #: follow HDF5 external links and virtual datasets that map other files when reading inputs
    #: (``fastem --allow-external-links``); refused by default, since a link can point anywhere.
    allow_external_links: bool = False

    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)
        if name == "device":   # the default device lives in the backend (which imports nothing above it)
            _backend.set_default_device(value)


settings = Settings()


def set_threads(n: int | None) -> int:
    """Set the CPU thread count used by FFTW plans and Numba parallel kernels.

    ``None`` or ``0`` means all available cores. Returns the value in effect.
    """
    n = available_cores() if not n else int(n)
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    settings.threads = n
    from fastem.kernels import _threads as kernel_threads

    kernel_threads.set(n)
    try:
        import numba

        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    except Exception:  # pragma: no cover - numba missing or threading layer refuses
        pass
    return n


def set_quiet(quiet: bool) -> None:
    settings.quiet = bool(quiet)


def cache_dir(create: bool = True) -> Path:
    """The user cache directory (FFTW wisdom, ...); ``$FASTEM_CACHE_DIR`` overrides.

    Created private (mode 0700) when missing: what is read from it must be written by this user
    only (:mod:`fastem.fft` ignores a cache that group or others can write).
    """
    d = Path(settings.cache_dir)
    if create:
        try:
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError:
            pass
    return d


if os.environ.get("FASTEM_THREADS", "").strip():   # push the variable down to the kernels and Numba
    set_threads(settings.threads)
