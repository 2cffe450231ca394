"""Side-by-side benchmark harness (``fastem bench``; cases live in ``bench/cases``).

A *case module* ``bench/cases/<name>.py`` (installed as ``fastem.bench.cases.<name>``) defines::

    NAME = "fft"                      # what ``fastem bench fft`` selects
    DESCRIPTION = "one line"
    def run(ctx: BenchContext) -> None:
        ctx.measure("fft2 c64", "512x512", "fastem", fn, role="fastem", work=512*512)
        ctx.measure("fft2 c64", "512x512", "numpy.fft", fn2, role="peer")
        ctx.measure("fft2 c64", "512x512", "2 pyFFTW transforms", fn3, role="floor")

Everything inside one ``run`` is measured in the same process, one after the other, so ratios
are comparable even on a busy machine. Each measurement: warm-up calls, then repeats until both
``repeat`` calls and ``min_time`` seconds are reached; the median, min and max are recorded.
``sync`` (e.g. a CUDA stream synchronize) is called after every timed call so GPU work is
counted. The table shows, per (case, size), the fastem time, each peer/floor time and the ratio
``other / fastem`` (above 1: fastem is faster), and throughput when ``work`` is given. Results
go to ``<results folder>/<name>-<device>-<date>.json`` with the machine description: ``--out-dir``,
else ``bench/results`` of the source checkout, else (an installed fastem: results are never
written into site-packages) the current directory. The folder is created and checked for
writing *before* any case runs, so a bad folder fails at once, not after the benchmark.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import json
import os
import pkgutil
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import __version__, backend
from .config import available_cores, settings

__all__ = ["Measurement", "BenchContext", "time_call", "machine_info", "discover_cases", "run_cases",
           "format_table", "results_dir", "prepare_results_dir"]


@dataclass
class Measurement:
    case: str
    size: str
    impl: str
    role: str  # "fastem", "peer", "floor", "reference"
    median_s: float
    min_s: float
    max_s: float
    repeats: int
    work: float | None = None  # units of work per call (e.g. voxel x projection updates)
    work_unit: str | None = None
    note: str = ""

    @property
    def throughput(self) -> float | None:
        return None if not self.work else self.work / self.median_s


def time_call(fn: Callable[[], Any], warmup: int = 2, repeat: int = 7, min_time: float = 0.2,
              max_time: float = 60.0, sync: Callable[[], Any] | None = None) -> list[float]:
    """Wall-clock times (s) of ``fn()`` after ``warmup`` untimed calls.

    Repeats at least ``repeat`` times and until ``min_time`` seconds have been spent, stopping
    early once ``max_time`` is exceeded (at least 3 timed calls).
    """
    for _ in range(warmup):
        fn()
        if sync is not None:
            sync()
    times: list[float] = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn()
        if sync is not None:
            sync()
        times.append(time.perf_counter() - t0)
        spent = time.perf_counter() - start
        if len(times) >= repeat and spent >= min_time:
            break
        if spent >= max_time and len(times) >= 3:
            break
    return times


@dataclass
class BenchContext:
    """Passed to each case's ``run``: device, sizing, timing defaults, and the results list."""

    device: backend.Device = field(default_factory=lambda: backend.cpu_device)
    quick: bool = False  # smaller sizes / fewer repeats (used by the test suite's smoke run)
    repeat: int = 7
    warmup: int = 2
    min_time: float = 0.2
    measurements: list[Measurement] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    echo: Callable[[str], Any] = print

    @property
    def xp(self):
        return self.device.xp

    def sync(self) -> None:
        self.device.synchronize()

    def measure(self, case: str, size: str, impl: str, fn: Callable[[], Any], role: str = "fastem",
                work: float | None = None, work_unit: str | None = None, note: str = "",
                repeat: int | None = None, warmup: int | None = None, min_time: float | None = None,
                per_call: float = 1.0) -> Measurement:
        """Time ``fn`` and record it. ``per_call`` divides the times (``fn`` doing k iterations)."""
        if role not in ("fastem", "peer", "floor", "reference"):
            raise ValueError(f"bad role {role!r}")
        sync = self.sync if self.device.is_gpu else None
        times = time_call(fn, warmup=self.warmup if warmup is None else warmup,
                          repeat=(self.repeat if repeat is None else repeat) if not self.quick else 2,
                          min_time=(self.min_time if min_time is None else min_time) if not self.quick else 0.0,
                          sync=sync)
        times = [t / per_call for t in times]
        m = Measurement(case, size, impl, role, statistics.median(times), min(times), max(times), len(times),
                        work, work_unit, note)
        self.measurements.append(m)
        if not settings.quiet:
            tp = f"  {format_rate(m.throughput, work_unit)}" if m.throughput else ""
            self.echo(f"  {case:<28} {size:<14} {impl:<28} {format_seconds(m.median_s):>10}{tp}")
        return m

    def note(self, text: str) -> None:
        """A free-text line stored with the results (e.g. 'peer X not installed: skipped')."""
        self.notes.append(text)
        if not settings.quiet:
            self.echo(f"  note: {text}")


# --------------------------------------------------------------------------------------------
# machine description
# --------------------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: backend.Device | None = None) -> dict:
    """CPU model, cores, memory, GPU (if any) and library versions."""
    info: dict[str, Any] = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_model": _cpu_model(),
        "cores_available": available_cores(),
        "threads": settings.threads,
        "fastem": __version__,
        # what the OpenMP runtimes (Numba's, svmbir's, torch's) read at start: they change timings
        # (bench/results/openmp_wait_policy.md), so every record states them
        "openmp": {k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")},
    }
    try:
        info["memory_gb"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    versions = {}
    for mod in ("numpy", "scipy", "numba", "pyfftw", "h5py", "cupy", "torch", "sklearn", "skimage", "astra"):
        m = backend.optional_module(mod)
        if m is not None:
            versions[mod] = getattr(m, "__version__", "?")
    info["versions"] = versions
    if device is not None and device.is_gpu:
        info["gpu"] = device.name
    elif backend.cupy_available():
        info["gpu"] = backend.Device(0).name
    else:
        info["gpu"] = None
    return info


# --------------------------------------------------------------------------------------------
# formatting
# --------------------------------------------------------------------------------------------
def format_seconds(t: float) -> str:
    if t >= 1:
        return f"{t:.3f} s"
    if t >= 1e-3:
        return f"{t * 1e3:.3f} ms"
    return f"{t * 1e6:.1f} us"


def format_rate(r: float | None, unit: str | None) -> str:
    if not r:
        return ""
    return f"{r:.3g} {unit or 'items'}/s"


def format_table(measurements: list[Measurement]) -> str:
    """One row per (case, size): fastem time, then every peer/floor/reference with its ratio."""
    groups: dict[tuple[str, str], list[Measurement]] = {}
    for m in measurements:
        groups.setdefault((m.case, m.size), []).append(m)
    lines = []
    header = f"{'case':<28} {'size':<14} {'fastem':>22} {'throughput':>16}   others (time, ratio other/fastem)"
    lines.append(header)
    lines.append("-" * len(header))
    for (case, size), ms in groups.items():
        ours = [m for m in ms if m.role == "fastem"]
        others = [m for m in ms if m.role != "fastem"]
        if not ours:  # peers only (e.g. a floor measured alone)
            ours_txt, tp, base = "-", "", None
        else:
            base = ours[0]
            ours_txt = f"{base.impl}: {format_seconds(base.median_s)}"
            tp = format_rate(base.throughput, base.work_unit)
        parts = []
        for o in others + ours[1:]:
            ratio = f"{o.median_s / base.median_s:.2f}x" if base is not None else "-"
            tag = {"floor": " [floor]", "reference": " [ref]"}.get(o.role, "")
            parts.append(f"{o.impl}{tag}: {format_seconds(o.median_s)} ({ratio})")
        lines.append(f"{case:<28} {size:<14} {ours_txt:>22} {tp:>16}   " + "; ".join(parts))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# discovery and running
# --------------------------------------------------------------------------------------------
def discover_cases() -> dict[str, Any]:
    """Deprecated: case discovery lives with the cases, :func:`fastem.bench.discover_cases`.

    The library does not import the benchmark package itself; the ``fastem bench`` command
    discovers the cases and passes them to :func:`run_cases`.
    """
    import warnings

    warnings.warn("fastem.benchmark.discover_cases moved to fastem.bench.discover_cases", DeprecationWarning,
                  stacklevel=2)
    return importlib.import_module("fastem.bench").discover_cases()


#: the folder holding the ``fastem`` package (a source checkout's root, or site-packages)
_PACKAGE_PARENT = Path(__file__).resolve().parent.parent


def _checkout_root() -> Path | None:
    """The source checkout fastem runs from (``pyproject.toml`` and ``bench/`` beside the
    ``fastem`` package), or ``None`` for an installed copy (site-packages, dist-packages)."""
    root = _PACKAGE_PARENT
    if any(part in ("site-packages", "dist-packages") for part in root.parts):
        return None
    if (root / "bench").is_dir() and (root / "pyproject.toml").is_file():
        return root
    return None


def results_dir() -> Path:
    """Default results folder: ``bench/results`` of the source checkout, else the current
    directory (never a folder inside an installed package). Not created here."""
    root = _checkout_root()
    return root / "bench" / "results" if root is not None else Path.cwd()


def prepare_results_dir(out_dir=None, *, flag: str = "--out-dir") -> Path:
    """Create (with parents) and check the results folder before anything runs; returns it.

    Raises
    ------
    InputError
        The path is a file, cannot be created, or is not writable (the message names ``flag``).
    """
    from .errors import InputError

    d = Path(out_dir) if out_dir is not None else results_dir()
    what = f"{flag} {d}" if out_dir is not None else f"results folder {d}"
    if d.exists() and not d.is_dir():
        raise InputError(f"{what}: is a file, not a folder")
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{what}: cannot create the folder ({exc.strerror or exc})") from None
    probe = d / f".fastem-bench-write-test.{os.getpid()}.tmp"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise InputError(f"{what}: cannot write there ({exc.strerror or exc}); choose another {flag}") from None
    return d


def run_cases(names: list[str] | None = None, device: Any = "cpu", quick: bool = False,
              out_dir: Path | None = None, echo: Callable[[str], Any] = print, write: bool = True,
              cases: dict[str, Any] | None = None) -> dict[str, Path | None]:
    """Run the named cases (all when empty), print a table for each, write JSON results.

    ``cases``: ``{NAME: case module}`` (:func:`fastem.bench.discover_cases`, which the ``fastem
    bench`` command passes; omitted: discovered the deprecated way, with a warning).

    Returns ``{case name: path of the JSON written}``. With ``write``, the results folder
    (``out_dir``, default :func:`results_dir`) is created and checked first
    (:func:`prepare_results_dir`): a bad folder fails before any case runs.
    """
    from .config import use_passive_openmp

    use_passive_openmp()   # as the CLI does: timings must not include OpenMP spin-waits
    dev = backend.Device(device)
    if cases is None:
        cases = discover_cases()
    names = list(names) if names else list(cases)
    unknown = [n for n in names if n not in cases]
    if unknown:
        from .errors import InputError

        raise InputError(f"unknown bench case(s) {', '.join(unknown)}; available: {', '.join(cases)}")
    results = prepare_results_dir(out_dir) if write else None
    if write and out_dir is None and not settings.quiet:
        where = "the source checkout's bench/results" if _checkout_root() is not None else \
            "the current directory (fastem is installed, not run from a checkout; use --out-dir to choose)"
        echo(f"results go to {results} ({where})")
    info = machine_info(dev)
    written: dict[str, Path | None] = {}
    for name in names:
        mod = cases[name]
        ctx = BenchContext(device=dev, quick=quick, echo=echo)
        if not settings.quiet:
            echo(f"== {name}: {getattr(mod, 'DESCRIPTION', '')} [{dev.name}]")
        mod.run(ctx)
        echo("")
        echo(format_table(ctx.measurements))
        echo("")
        if write:
            date = _dt.datetime.now(_dt.timezone.utc)
            out = results / f"{name}-{'cpu' if dev.is_cpu else 'gpu'}-{date:%Y%m%d-%H%M%S}.json"
            payload = {
                "case": name,
                "description": getattr(mod, "DESCRIPTION", ""),
                "date_utc": date.isoformat(timespec="seconds"),
                "device": str(dev),
                "quick": quick,
                "machine": info,
                "command": " ".join(sys.argv),
                "measurements": [asdict(m) | {"throughput": m.throughput} for m in ctx.measurements],
                "notes": ctx.notes,
            }
            from .io import atomic_output

            with atomic_output(out, overwrite=False) as tmp:
                tmp.write_text(json.dumps(payload, indent=2))
            written[name] = out
            if not settings.quiet:
                echo(f"results written to {out}")
        else:
            written[name] = None
    return written
