"""Phase retrieval from a CXI file into a CXI file: what ``fastem phase`` and the demo run.

Input: a CXI file (``/entry_1/data_1/data``: intensities, zero frequency at the centre, and the
detector mask, ``known = mask == 0``) or ``FILE.h5:/path/to/intensities`` (any HDF5 dataset of
intensities; a ``mask`` dataset beside it is used when present), read by
:func:`fastem.io.read_cxi`; complex or non-numeric data are refused. The support comes from
``--support FILE:/dataset`` or, without it, is estimated from the autocorrelation
(:func:`fastem.phase.autocorrelation_support`).

Output (:func:`fastem.io.write_cxi_reconstruction`, atomic, never over any input -- the data
file and the support file --, refuses to overwrite without ``overwrite``)::

    /entry_1/data_1/data, detector_1/{data, mask}   the input data, so the output is a full CXI file
    /entry_1/image_1/data          mean of the K kept runs (aligned to the best), object centred
    /entry_1/image_1/support       the support used (uint8)
    /entry_1/image_1/process_1/    program, version, command, date, device, configuration (JSON)
        rf_history (E, R), rf_history_iterations (E,), final_rf (R,), kept_runs (K,), kept_rf (K,),
        kept_rf_mean, kept_rf_variance, kept_variance, best_image, best_rf,
        r_real (only when the input holds a ground truth at /entry_1/sample_1/object)
        checkpoint/                state for --resume (while the run is in progress)

One writer per output: the whole run (checkpoint writes and the final write) holds
:func:`fastem.io.output_lock` on the output, so a second run to the same output fails at once
with one line; a first write without ``overwrite`` never replaces a file created meanwhile.

Checkpoints: every ``checkpoint_every`` iterations the output is rewritten (atomically) with
the best image so far and the full solver state under ``process_1/checkpoint``, together with a
fingerprint (:func:`fastem.io.run_fingerprint`) of the input arrays (data, mask, support: their
content, not their file names) and of every parameter that affects the result.
``resume=True`` refuses a checkpoint whose fingerprint differs (naming each difference),
reads the state back and continues; the resumed run gives what the uninterrupted run would
have. ``iterations`` and ``checkpoint_every`` may change on resume (a different
``iterations`` stretches the stage and sigma schedules to the new length from there on).

Results are checked before they are written: a non-finite image, or a kept run that diverged,
is a :class:`~fastem.errors.NonFiniteResultError` (nothing written, exit status 1).

Memory: before the run, :func:`plan_run` counts what it allocates (the batch of runs on the
device and, on the host, the R-factor histories of every run, the kept images and the data),
refuses budgets beyond the memory the machine has and requests that cannot fit even with one run
per batch, and describes big requests (memory per run, chunks, a rough time) through
``report``.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from fastem.errors import DatasetNotFoundError, InputError, NonFiniteResultError

from .solver import PhaseConfig
from .metrics import r_real
from .multistart import MAX_RUNS_PER_BATCH, PhaseResult, checkpoint_best, default_batch_bytes, retrieve
from .problem import prepare_problem

__all__ = ["phase_file", "plan_run", "RunPlan", "available_memory", "cli_message", "TRUTH_DATASET", "FLAGS"]

TRUTH_DATASET = "/entry_1/sample_1/object"

#: API parameter -> ``fastem phase`` flag (for error messages on the command line, :func:`cli_message`)
FLAGS = {
    "in_path": "IN", "out_path": "-o/--output", "algorithm": "--algorithm", "iterations": "--iterations",
    "runs": "--runs", "keep": "--keep", "seed": "--seed", "support": "--support",
    "sigma_schedule": "--sigma-schedule", "gamma_scale": "--gamma-scale", "checkpoint_every": "--checkpoint-every",
    "resume": "--resume",
    "overwrite": "--overwrite", "shrink_wrap": "--shrink-wrap", "shrink_wrap_every": "--shrink-wrap-every",
    "shrink_wrap_threshold": "--shrink-wrap-threshold", "shrink_wrap_sigma": "--shrink-wrap-sigma",
    "shrink_wrap_start": "--shrink-wrap-start", "shrink_wrap_guard": "--shrink-wrap-guard",
    "gamma_schedule": "--gps-schedule", "stage_restart": "--stage-restart",
    "complex_object": "--complex", "phase_range": "--phase-range", "generations": "--generations",
    "gps_dual": "--gps-dual",
    "max_batch_bytes": "--batch-memory", "scheduler": "--scheduler",
}

#: requests estimated to take longer than this (seconds), or to need more than
#: :data:`_REPORT_BYTES` of memory, are described before they start
_REPORT_SECONDS = 300.0
_REPORT_BYTES = 1 << 30
#: rough sustained throughput (floating-point operations per second) for the time estimate
_FLOPS = {"cpu": 2e9, "gpu": 2e11}

_HINT = ("try another seed or algorithm (er and hio are the most robust), a tighter support, or check the "
         "data for huge or corrupt values")
#: phrases of the API messages that name parameters, and the same phrase with the flags
#: (:func:`cli_message`; the API names parameters, only the command line names flags)
_CLI_PHRASES = {
    "try another seed or algorithm": "try another --seed or --algorithm",
    "a tighter support": "a tighter --support",
    "use a smaller keep or more runs": "use a smaller --keep or more --runs",
    "no checkpoint to resume from": "no checkpoint to --resume from",
    "or pass a support": "or pass --support",
}


# --------------------------------------------------------------------------------------------
# argument checks
# --------------------------------------------------------------------------------------------
def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _check_path(value, name: str, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise InputError(f"phase_file: {name} must be a file name (str or os.PathLike), got {value!r}")


def _check_int(value, name: str, minimum: int) -> int:
    if not _is_int(value):
        raise InputError(f"phase_file: {name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise InputError(f"phase_file: {name} must be >= {minimum}, got {value}")
    return int(value)


def _check_bool(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"phase_file: {name} must be True or False, got {value!r}")
    return bool(value)


def _check_arguments(args: dict) -> None:
    """One-line :class:`InputError` naming the parameter for any argument of the wrong kind."""
    _check_path(args["in_path"], "in_path")
    _check_path(args["out_path"], "out_path")
    _check_path(args["support"], "support", optional=True)
    if not isinstance(args["algorithm"], str):
        raise InputError(f"phase_file: algorithm must be a string such as 'gps-f', got {args['algorithm']!r}")
    for name, minimum in (("iterations", 1), ("runs", 1), ("keep", 1), ("seed", 0), ("checkpoint_every", 0),
                          ("shrink_wrap_every", 1)):
        _check_int(args[name], name, minimum)
    for name in ("resume", "overwrite"):
        _check_bool(args[name], name)
    if args["shrink_wrap"] is not None:
        _check_bool(args["shrink_wrap"], "shrink_wrap")
    st, gd = args["shrink_wrap_start"], args["shrink_wrap_guard"]
    if not _is_number(st) or not 0 <= st < 1:
        raise InputError(f"phase_file: shrink_wrap_start must be a number in [0, 1), got {st!r}")
    if not _is_number(gd) or not math.isfinite(gd) or gd < 0:
        raise InputError(f"phase_file: shrink_wrap_guard must be a number >= 0, got {gd!r}")
    gs = args["gamma_scale"]
    if gs is not None and (not _is_number(gs) or not math.isfinite(gs) or gs < 0):
        raise InputError(f"phase_file: gamma_scale must be a number >= 0 or None, got {gs!r}")
    thr = args["shrink_wrap_threshold"]
    if not _is_number(thr) or not 0 < thr < 1:
        raise InputError(f"phase_file: shrink_wrap_threshold must be a number in (0, 1), got {thr!r}")
    sig = args["shrink_wrap_sigma"]
    if isinstance(sig, (str, bytes)) or not hasattr(sig, "__len__") or len(sig) != 2 \
            or not all(_is_number(v) and math.isfinite(v) for v in sig) or not sig[0] >= sig[1] > 0:
        raise InputError(f"phase_file: shrink_wrap_sigma must be (start, floor) with start >= floor > 0, got {sig!r}")
    mbb = args["max_batch_bytes"]
    if mbb is not None and (not _is_int(mbb) or mbb <= 0):
        raise InputError(f"phase_file: max_batch_bytes must be a positive integer (bytes) or None, got {mbb!r}")
    if args["scheduler"] is not None and not isinstance(args["scheduler"], str):
        raise InputError(f"phase_file: scheduler must be 'local', an address or None, got {args['scheduler']!r}")
    prog = args["progress"]
    if prog is not None and not callable(getattr(prog, "update", None)):
        raise InputError(f"phase_file: progress must be a tqdm-like object with update(), got {type(prog).__name__}")
    if args["keep"] > args["runs"]:
        raise InputError(f"phase_file: keep {args['keep']} is larger than runs {args['runs']}")


def cli_message(message: str) -> str:
    """An error message of :func:`phase_file` (or of the configuration it builds) with the API
    parameter names replaced by the ``fastem phase`` flags (:data:`FLAGS`)."""
    import re

    from fastem.errors import name_flags

    translated = name_flags(message, "phase_file", FLAGS)
    if translated is not None:
        return translated
    m = re.match(r"^(?:PhaseConfig: |retrieve: )?(\w+)(?=[ =])", message)
    if m and m.group(1) in FLAGS:
        return FLAGS[m.group(1)] + message[m.end():]
    if message.startswith(("sigma schedule", "sigma values")):
        return "--sigma-schedule: " + message
    for api, cli in _CLI_PHRASES.items():
        message = message.replace(api, cli)
    if ": cannot resume: " in message:  # check_fingerprint: "...; runs was 2 in the checkpoint, now 3; ..."
        head, _, diffs = message.partition(": cannot resume: ")
        diffs = re.sub(r"(?:^|(?<=; )|(?<=input ))(\w+)(?= (?:was|differs))",
                       lambda m: FLAGS.get(m.group(1), m.group(1)), diffs)
        message = f"{head}: cannot resume: {diffs}"
    return message


# --------------------------------------------------------------------------------------------
# memory and time: what a run allocates, checked before it starts
# --------------------------------------------------------------------------------------------
def available_memory(device) -> int | None:
    """Bytes the run can use on ``device``: free GPU memory, or the host's ``MemAvailable``
    (``None`` when it cannot be read)."""
    from fastem import backend

    dev = backend.Device(device)
    if dev.is_gpu:
        with dev.use():
            free, _total = dev.xp.cuda.runtime.memGetInfo()
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n: float) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} B"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.3g} days"


def _evaluations(config: PhaseConfig) -> int:
    """How many R-factor evaluations a run records (the rows of its history)."""
    from .schedules import stage_bounds

    total = 0
    for a, b in stage_bounds(config.iterations, config.stages):
        n = b - a
        total += n // config.rfactor_every + (1 if n % config.rfactor_every else 0)
    return total


@dataclass
class RunPlan:
    """What a run of ``runs`` starts will allocate and roughly take (see :func:`plan_run`)."""

    runs: int
    bytes_per_run: int
    budget: int
    runs_per_chunk: int
    chunks: int
    host_bytes: int
    available: int | None
    seconds: float

    def describe(self) -> str:
        avail = "unknown" if self.available is None else _gib(self.available)
        return (f"estimate: {self.runs} run(s) x {_gib(self.bytes_per_run)} per run; {self.chunks} chunk(s) of "
                f"<= {self.runs_per_chunk} run(s) within a {_gib(self.budget)} batch budget; "
                f"{_gib(self.host_bytes)} on the host (histories, kept images, data; {avail} available); "
                f"roughly {_duration(self.seconds)}")


def plan_run(problem, config: PhaseConfig, runs: int, keep: int, *, max_batch_bytes: int | None = None,
             distributed: bool = False) -> RunPlan:
    """Count what :func:`fastem.phase.retrieve` will allocate and refuse what cannot fit.

    Device: ``runs_per_chunk x bytes_per_run`` (:meth:`Solver.bytes_per_run`). Host: the
    R-factor histories (``E x runs`` float64, kept twice: the running record and the copy
    written), per-run final R-factors, the ``keep`` best images (kept, aligned, mean, variance)
    and the data arrays; on the CPU the batch itself is host memory too.

    Raises
    ------
    InputError
        ``max_batch_bytes`` above the available memory; one run larger than the batch budget;
        the host arrays (plus the batch on the CPU) larger than the available memory.
    """
    from .multistart import _SOLVERS

    dev = problem.device
    avail = available_memory(dev)
    where = "the GPU" if dev.is_gpu else "this machine"
    if max_batch_bytes is not None and avail is not None and max_batch_bytes > avail and not distributed:
        raise InputError(f"phase_file: max_batch_bytes {_gib(max_batch_bytes)} exceeds the memory available on "
                         f"{where} ({_gib(avail)}); give at most that")
    budget = int(max_batch_bytes) if max_batch_bytes is not None else default_batch_bytes(dev)
    bytes_per_run = int(_SOLVERS[config.algorithm].bytes_per_run(problem, config))
    if bytes_per_run > budget:
        room = "" if avail is None else f" ({_gib(avail)} available on {where})"
        raise InputError(f"phase_file: one run of a {'x'.join(map(str, problem.shape))} grid needs "
                         f"{_gib(bytes_per_run)}, more than the max_batch_bytes budget {_gib(budget)}{room}; raise "
                         f"max_batch_bytes, or use a smaller grid")
    per_chunk = min(MAX_RUNS_PER_BATCH, max(1, budget // bytes_per_run), runs)
    chunks = -(-runs // per_chunk)
    evals = _evaluations(config)
    npix = problem.npix
    host = 8 * (2 * evals * runs + 3 * runs) + 8 * npix * (4 * keep + 8)
    if not dev.is_gpu and not distributed:
        host += per_chunk * bytes_per_run
    if avail is not None and host > avail:
        raise InputError(f"phase_file: runs {runs} need {_gib(host)} of host memory (R-factor histories of "
                         f"{evals} evaluations per run, kept images, data, the batch) but {_gib(avail)} is available; "
                         f"use fewer runs or iterations")
    n_fft = 4 if config.algorithm == "oss" else 2
    flop = npix * (5.0 * n_fft * math.log2(max(npix, 2)) + 60.0)
    flop += npix * 5.0 * math.log2(max(npix, 2)) / max(1, config.rfactor_every)
    seconds = runs * config.iterations * flop / _FLOPS["gpu" if dev.is_gpu else "cpu"]
    return RunPlan(runs=runs, bytes_per_run=bytes_per_run, budget=budget, runs_per_chunk=per_chunk, chunks=chunks,
                   host_bytes=host, available=avail, seconds=seconds)


# --------------------------------------------------------------------------------------------
# the job
# --------------------------------------------------------------------------------------------
def _read_truth(path: Path, shape) -> np.ndarray | None:
    """The ground-truth object at :data:`TRUTH_DATASET` of an HDF5/CXI input, else ``None``.

    Inputs that are not HDF5 (DM, MRC, TIFF, SER read through ``fastem.io``) carry no ground
    truth: they are skipped here instead of failing with h5py's raw ``OSError`` (issue 16).
    """
    import h5py

    from fastem.io.hdf5 import is_hdf5
    from fastem.io.validate import DataWarning

    if not is_hdf5(path):
        return None
    with h5py.File(path, "r") as f:
        ds = f.get(TRUTH_DATASET)
        if not isinstance(ds, h5py.Dataset):
            return None
        if tuple(ds.shape) != tuple(shape) or ds.dtype.kind not in "biufc":
            warnings.warn(f"{path}:{TRUTH_DATASET} has shape {ds.shape} and dtype {ds.dtype}, not a numeric "
                          f"{tuple(shape)} array like the data: no R_real is computed", DataWarning, stacklevel=3)
            return None
        truth = np.asarray(ds[()], np.complex128 if ds.dtype.kind == "c" else np.float64)
    if not np.all(np.isfinite(truth)) or not np.sum(np.abs(truth)) > 0:
        return None
    return truth


def _fingerprint(data, supp, config: PhaseConfig, runs: int, keep: int, seed: int, dtype, generations: int = 1) -> dict:
    from fastem.io import run_fingerprint

    params = {k: v for k, v in config.as_dict().items() if k != "iterations"}
    if not config.complex_object:  # real objects: the fingerprint of the versions before complex objects
        params.pop("complex_object", None)
        params.pop("phase_range", None)
        params.pop("gps_dual", None)
    params.update(runs=int(runs), keep=int(keep), seed=int(seed), dtype=np.dtype(dtype).name)
    if generations > 1:   # the iterations set where each generation ends: they cannot change on resume
        params.update(generations=int(generations), iterations=int(config.iterations))
    return run_fingerprint({"data": data.intensities, "mask": data.known, "support": supp}, params)


def _check_result(result: PhaseResult, out_path: Path) -> None:
    """Refuse to write a diverged result (nothing is written; the message says what to try)."""
    from fastem.io import require_finite_result

    kept_rf = np.asarray(result.kept_rf, np.float64)
    bad = int(np.sum(~np.isfinite(kept_rf)))
    if bad:
        raise NonFiniteResultError(f"{out_path}: {bad} of the {kept_rf.size} kept run(s) diverged (R_F not finite); "
                                   f"nothing was written; use a smaller keep or more runs, or {_HINT}")
    require_finite_result(result.image, f"{out_path}: the reconstruction (mean of the kept runs)", hint=_HINT)
    require_finite_result(result.best, f"{out_path}: the best run's image", hint=_HINT)
    require_finite_result(result.variance, f"{out_path}: the variance of the kept runs", hint=_HINT)


def phase_file(in_path, out_path, *, algorithm: str = "gps-r", iterations: int = 1000, runs: int = 1,
               keep: int = 5, seed: int = 0, support: str | None = None, sigma_schedule: Any = None,
               checkpoint_every: int = 0, resume: bool = False, overwrite: bool = False,
               device: Any = None, progress: Any = None, command: str | None = None,
               dtype=np.complex64, shrink_wrap: bool | None = None, shrink_wrap_every: int = 20,
               shrink_wrap_threshold: float = 0.2, shrink_wrap_sigma=(3.0, 1.5), shrink_wrap_start: float = 0.0,
               shrink_wrap_guard: float = 0.25, gamma_schedule: str = "oss", stage_restart: str = "stage",
               max_batch_bytes: int | None = None, scheduler: str | None = None,
               report: Callable[[str], Any] | None = None, complex_object: bool = False,
               phase_range=None, generations: int = 1, gps_dual: str | None = None,
               gamma_scale: float | None = None) -> tuple[PhaseResult, dict]:
    """Run multi-start phase retrieval on a CXI file and write the CXI reconstruction.

    Parameters
    ----------
    in_path : path or str
        Input CXI file (diffraction data), or ``FILE.h5:/path/to/intensities`` (an HDF5 dataset
        of intensities, zero frequency at the centre).
    out_path : path
        Output CXI (reconstruction).
    algorithm, iterations, runs, keep, seed, sigma_schedule, gamma_scale :
        See :class:`fastem.phase.PhaseConfig` and :func:`fastem.phase.retrieve`; ``seed >= 0``;
        ``sigma_schedule`` / ``gamma_scale`` None: the algorithm's defaults.
    support : str, optional
        ``FILE:/dataset`` of a 0/1 support (object centred); default: autocorrelation estimate.
    checkpoint_every : int
        Rewrite the output with a checkpoint every this many iterations (0: never).
    resume : bool
        Continue from the checkpoint in ``out_path``: refused unless the input arrays and every
        parameter that affects the result match the checkpoint's fingerprint (``iterations`` and
        ``checkpoint_every`` may change).
    shrink_wrap, shrink_wrap_every, shrink_wrap_threshold, shrink_wrap_sigma, shrink_wrap_start, shrink_wrap_guard :
        Shrink-wrap support updates (:class:`fastem.phase.PhaseConfig`); the output's support is
        then the best run's final support (the initial one is kept in ``process_1/initial_support``).
        ``shrink_wrap=None`` (default): on when ``support`` is None (the autocorrelation estimate
        is loose), off when a support is given.
    gamma_schedule, stage_restart :
        GPS smoothing schedule ("oss" or "relax") and what a stage restarts from ("stage" or
        "global"); :class:`fastem.phase.PhaseConfig`.
    complex_object, phase_range :
        Reconstruct a complex-valued object (no positivity; the output image is complex), with
        an optional phase range ``(lo, hi)`` in radians inside the support
        (:class:`fastem.phase.PhaseConfig`).
    gps_dual : {None, "feedback", "polar"}
        GPS's dual step for a complex object (:class:`fastem.phase.PhaseConfig`; None: its default).
    generations : int
        ``G > 1``: guided multi-start (:mod:`fastem.phase.generations`; ``runs >= 2``, every run
        in one batch in this process: not with ``scheduler``). ``checkpoint_every`` counts the
        iterations of each generation; ``resume`` continues bit for bit, and is refused when
        ``generations`` or ``iterations`` differ from the checkpoint's.
    max_batch_bytes : int, optional
        Memory budget of one batch of runs (:func:`fastem.phase.retrieve`); at most the memory
        available on the device (:func:`plan_run`).
    scheduler : str, optional
        ``"local"`` or a Dask scheduler address: spread the chunks of runs over Dask workers
        (:func:`fastem.executor.make_executor`); default: in this process.
    overwrite : bool
        Replace an existing output (a resumed run always rewrites its own output).
    device : Device or str, optional
    progress : tqdm-like, optional
    command : str, optional
        The command line for the provenance record.
    report : callable, optional
        Called with one line describing a big request (memory per run, chunks, rough time)
        before it starts (:meth:`RunPlan.describe`).

    Returns
    -------
    (PhaseResult, dict)
        The result and the ``results`` written to the process group.

    Raises
    ------
    InputError
        Bad arguments (the message names the parameter), bad input data, output = an input,
        a resume whose checkpoint does not match, a request that does not fit in memory.
    OutputExistsError, OutputBusyError, OutputWriteError
        Existing output without ``overwrite``; another process writing the same output; disk full.
    NonFiniteResultError
        The runs diverged: nothing is written.
    """
    _check_arguments(dict(locals()))
    generations = _check_int(generations, "generations", 1)
    if generations > 1 and scheduler is not None:
        raise InputError("phase_file: generations > 1 runs every run in one batch in this process: not with "
                         "scheduler")
    if generations > 1 and runs < 2:
        raise InputError(f"phase_file: generations > 1 breeds the runs with the best one: runs must be >= 2, got {runs}")
    from fastem.backend import resolve_device
    from fastem.io import (check_output, output_lock, parse_ref, provenance, read_cxi, read_dataset,
                           require_finite_result, write_cxi_reconstruction)

    from .support import check_support

    in_spec = os.fspath(in_path)
    in_file, in_dataset = parse_ref(in_spec)
    out_path = Path(out_path)
    inputs = [in_file] + ([os.fspath(support)] if support is not None else [])
    check_output(out_path, overwrite=overwrite or resume, inputs=inputs)
    dev = resolve_device(device)
    data = read_cxi(in_spec)
    where_data = f"{data.path}:{data.dataset or in_dataset or '/entry_1/data_1/data'}"
    if support is not None:
        where_supp = os.fspath(support)
        supp = check_support(read_dataset(where_supp), data.intensities.shape, where=f"support {where_supp}")
    else:
        supp, where_supp = None, "autocorrelation estimate"
    if shrink_wrap is None:  # the autocorrelation estimate is loose: refine it by default
        shrink_wrap = support is None
    config = _make_config(algorithm, iterations, sigma_schedule, shrink_wrap, shrink_wrap_every,
                          shrink_wrap_threshold, shrink_wrap_sigma, shrink_wrap_start, shrink_wrap_guard,
                          gamma_schedule=gamma_schedule, stage_restart=stage_restart,
                          complex_object=complex_object, phase_range=phase_range, gps_dual=gps_dual,
                          gamma_scale=gamma_scale)
    problem = prepare_problem(data.intensities, data.known, supp, dtype=dtype, device=dev, where=where_data)
    plan = plan_run(problem, config, int(runs), int(keep), max_batch_bytes=max_batch_bytes,
                    distributed=scheduler is not None and scheduler.strip().lower() not in ("", "inline"))
    if report is not None and (plan.seconds > _REPORT_SECONDS or plan.chunks > 1
                               or plan.host_bytes + plan.bytes_per_run * plan.runs_per_chunk > _REPORT_BYTES):
        report(plan.describe())
    fingerprint = _fingerprint(data, supp, config, runs, keep, seed, dtype, generations)
    resolved = {**config.as_dict(), "runs": int(runs), "keep": int(keep), "seed": int(seed),
                "support": where_supp, "dtype": np.dtype(dtype).name, "input": in_spec}
    if generations > 1:
        resolved["generations"] = generations

    with output_lock(out_path):
        resume_state = None
        if resume:
            resume_state = _load_resume_state(out_path, inputs, fingerprint, config, where_data)
            if progress is not None:
                progress.update(int(resume_state["iteration"]))
        else:
            check_output(out_path, overwrite=overwrite, inputs=inputs)
        # without overwrite, the first write is a no-replace link: a file created meanwhile is never clobbered
        written = {"any": bool(resume or overwrite)}

        def write(image, results, checkpoint=None, support_used=None):
            write_cxi_reconstruction(out_path, image,
                                     support=problem.support if support_used is None else support_used,
                                     provenance=provenance(command=command, config=resolved, device=dev),
                                     results=results, intensities=data.intensities, mask=data.mask,
                                     checkpoint=checkpoint, overwrite=written["any"], inputs=inputs)
            written["any"] = True

        def on_checkpoint(state):
            state["configuration"] = resolved
            state["fingerprint"] = fingerprint
            _write_checkpoint(state, problem, out_path, write)

        from fastem.executor import make_executor

        with make_executor(scheduler) as executor:
            result = retrieve(problem=problem, config=config, runs=runs, keep=keep, seed=seed, progress=progress,
                              checkpoint_every=checkpoint_every,
                              on_checkpoint=on_checkpoint if checkpoint_every else None,
                              resume_state=resume_state, max_batch_bytes=plan.budget, executor=executor,
                              generations=generations)
        _check_result(result, out_path)
        results = _results(result, problem, data.path)
        require_finite_result(np.asarray(results["kept_rf_mean"]), f"{out_path}: the kept runs' mean R_F", hint=_HINT)
        write(result.image, results, support_used=result.extra.get("best_support"))
    return result, results


def _make_config(algorithm, iterations, sigma_schedule, shrink_wrap, shrink_wrap_every, shrink_wrap_threshold,
                 shrink_wrap_sigma, shrink_wrap_start=0.0, shrink_wrap_guard=0.25, *, gamma_schedule="oss",
                 stage_restart="stage", complex_object=False, phase_range=None, gps_dual=None,
                 gamma_scale=None) -> PhaseConfig:
    cfg_kw = {"algorithm": algorithm, "iterations": iterations}
    if complex_object or phase_range is not None or gps_dual is not None:
        cfg_kw.update(complex_object=complex_object, phase_range=phase_range, gps_dual=gps_dual)
    if gamma_schedule != "oss":
        cfg_kw["gamma_schedule"] = gamma_schedule
    if stage_restart != "stage":
        cfg_kw["stage_restart"] = stage_restart
    if sigma_schedule is not None:
        cfg_kw["sigma_schedule"] = sigma_schedule
    if gamma_scale is not None:
        cfg_kw["gamma_scale"] = gamma_scale
    if shrink_wrap:
        cfg_kw.update(shrink_wrap=True, shrink_wrap_every=shrink_wrap_every,
                      shrink_wrap_threshold=shrink_wrap_threshold, shrink_wrap_sigma=shrink_wrap_sigma,
                      shrink_wrap_start=shrink_wrap_start, shrink_wrap_guard=shrink_wrap_guard)
    return PhaseConfig(**cfg_kw)


def _load_resume_state(out_path: Path, inputs, fingerprint: dict, config: PhaseConfig, where_data: str) -> dict:
    """The checkpoint in ``out_path``, refused unless its fingerprint matches this run's."""
    from fastem.io import CXI_CHECKPOINT, check_fingerprint, check_output, load_checkpoint_file

    if not out_path.exists():
        raise DatasetNotFoundError(f"{out_path}: no such file, so no checkpoint to resume from")
    check_output(out_path, overwrite=True, inputs=inputs)
    state = load_checkpoint_file(out_path, CXI_CHECKPOINT)
    check_fingerprint(state.get("fingerprint"), fingerprint, where=str(out_path),
                      names={"data": f"data ({where_data})", "mask": "detector mask"})
    _check_resumed_iterations(state, config, out_path)
    return state


def _results(result: PhaseResult, problem, data_path: Path) -> dict:
    """What the final output records in ``process_1`` (R_F history, kept statistics, R_real)."""
    results = result.results_dict()
    results["chunks"] = np.asarray(result.extra["chunks"], np.int64)
    if result.extra.get("best_support") is not None:
        results["initial_support"] = problem.support.astype(np.uint8)
    results["best_image"] = result.best
    report = result.extra.get("kept_report") or []
    if report:  # every candidate looked at for the kept average: kept or not, and why
        results["kept_candidates"] = np.asarray([e["run"] for e in report], np.int64)
        results["kept_candidates_rf"] = np.asarray([e["rf"] for e in report], np.float64)
        results["kept_candidates_difference"] = np.asarray([e["difference"] for e in report], np.float64)
        results["kept_candidates_flipped"] = np.asarray([e["flipped"] for e in report], np.uint8)
        results["kept_candidates_kept"] = np.asarray([e["kept"] for e in report], np.uint8)
        results["kept_candidates_reason"] = "\n".join(f"run {e['run']}: {e['reason']}" for e in report)
        results["rejected_runs"] = np.asarray(result.extra.get("rejected_runs", []), np.int64)
    if "mean_rf" in result.extra:
        results["mean_rf"] = float(result.extra["mean_rf"])
    truth = _read_truth(data_path, problem.shape)
    if truth is not None:
        results["r_real"] = r_real(result.image, truth)
        results["r_real_best"] = r_real(result.best, truth)
    return results


def _check_resumed_iterations(state: dict, config: PhaseConfig, out_path: Path) -> None:
    """``iterations`` may change on resume, but not below the checkpoint's iteration, nor when
    finished chunks of runs already ran another number of iterations."""
    done = int(state.get("iteration", 0))
    if config.iterations < done:
        raise InputError(f"phase_file: iterations {config.iterations} is below the checkpoint's iteration {done} in "
                         f"{out_path}; give at least {done}")
    saved = state.get("configuration")
    old = saved.get("iterations") if isinstance(saved, dict) else None
    chunks = np.asarray(state.get("chunks", np.zeros((0, 2)))).reshape(-1, 2)
    if old is not None and int(old) != config.iterations and int(state.get("chunk", 0)) > 0 and len(chunks) > 1:
        raise InputError(f"phase_file: iterations cannot change on resume of {out_path}: its first "
                         f"{int(state['chunk'])} chunk(s) of runs already ran {int(old)} iterations; give "
                         f"iterations {int(old)}")


def _write_checkpoint(state: dict, problem, out_path: Path, write) -> None:
    """Write the in-progress output: the best image so far (zeros before the first R-factor
    evaluation) and the state. All runs diverged: stop now with a one-line error."""
    from fastem.io import require_finite_result

    image, best_rf = checkpoint_best(state)
    history = np.asarray(state.get("history_rf", np.zeros((0, 0))))
    results = {"rf_history": state["history_rf"], "rf_history_iterations": state["history_iterations"],
               "in_progress_iteration": int(state["iteration"]), "in_progress_chunk": int(state.get("chunk", 0))}
    if math.isfinite(best_rf):
        results["best_rf"] = best_rf
        require_finite_result(image, f"{out_path}: the best image at iteration {int(state['iteration'])}", hint=_HINT)
    elif history.size and not np.isfinite(history).any():
        raise NonFiniteResultError(f"{out_path}: every run diverged by iteration {int(state['iteration'])} (R_F not "
                                   f"finite); nothing more was written; {_HINT}")
    else:
        image = np.zeros(problem.shape)  # no R-factor evaluated yet: no best image
    write(image, results, checkpoint=state)
