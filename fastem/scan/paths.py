"""Partial-scan paths: Archimedean spirals and jittered grids as dwell maps.

Spec docs/scan.md "Scan paths and coverage"; seed 000, section 2.1. A path is a
``(B, H, W)`` float32 dwell map ``m`` in [0, 1] (fraction of a full-scan dwell spent at each
pixel). By default a path is rasterised as the paper's code does, a 1-px line with dwell 1 on
the pixels it visits (a binary map); ``antialias=True`` shares the line between the two pixels
it passes between, so most visited pixels get a fractional dwell.

Two coverage figures, both reported:

``dwell fraction`` (the default meaning of ``coverage``)
    the mean dwell, i.e. the beam time and dose relative to a full scan
    (:func:`dwell_fraction`): the paper's "1/20 coverage" cuts dose and scan time 20x, and its
    code measures a walk's coverage as ``np.sum(walk) / cropsize**2``;
``pixel coverage`` (``measure="coverage"``)
    the fraction of pixels with non-zero dwell (:func:`measured_coverage`), the spec's
    wording.

For the default binary paths the two are equal. With anti-aliasing a line touches about 1.8
pixels per unit length, so the pixel coverage is about 1.8x the dwell fraction.
:func:`solve_coverage` finds the spiral spacing or grid ``u`` that gives a requested value of
either, and the path functions take ``coverage=`` as that target.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from fastem import backend
from fastem.errors import InputError

from fastem.kernels.scan_geometry import grid_channel_width

__all__ = [
    "PAPER_GRID_SETTINGS", "PATH_KINDS", "spiral_path", "grid_path", "scan_path", "solve_coverage",
    "measured_coverage", "dwell_fraction", "grid_channel_width", "check_coverage", "check_grid_u",
    "path_parameter",
]

PATH_KINDS = ("spiral", "grid")

#: The paper's jittered-grid settings ``coverage -> (u, amp)`` (seed 000 section 2.1 and its code).
PAPER_GRID_SETTINGS = {1 / 10: (0.055, 1.0), 1 / 20: (0.03, 1.0), 1 / 40: (0.013, 1.0), 1 / 100: (0.005, 1.0)}

_MAX_GRID_U = 0.25


def check_coverage(coverage: float, what: str = "coverage") -> float:
    """``coverage`` as a float in (0, 1], or an :class:`InputError` naming the argument."""
    try:
        c = float(coverage)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number in (0, 1], got {coverage!r}") from None
    if not (0.0 < c <= 1.0) or math.isnan(c):
        raise InputError(f"{what} must be in (0, 1], got {coverage}")
    return c


def _dwell_map(path):
    if not hasattr(path, "ndim") or not hasattr(path, "dtype"):
        if path is None or isinstance(path, (str, bytes)):
            raise InputError(f"path must be a (rows, cols) or (batch, rows, cols) dwell array, got {path!r}")
        path = np.asarray(path)
    if path.ndim not in (2, 3) or path.dtype.kind not in "fiub":
        raise InputError(f"path must be a real (rows, cols) or (batch, rows, cols) dwell array, got shape "
                         f"{tuple(path.shape)} dtype {path.dtype}")
    return path


def measured_coverage(path) -> np.ndarray | float:
    """Fraction of pixels with non-zero dwell, per example (``(B,)``) or for one ``(H, W)`` map."""
    path = _dwell_map(path)
    xp = backend.get_array_module(path)
    frac = xp.mean(path > 0, axis=(-2, -1))
    return float(frac) if path.ndim == 2 else frac


def dwell_fraction(path) -> np.ndarray | float:
    """Mean dwell (beam time relative to a full scan), per example or for one map."""
    path = _dwell_map(path)
    xp = backend.get_array_module(path)
    frac = xp.mean(path, axis=(-2, -1), dtype=np.float64)
    return float(frac) if path.ndim == 2 else frac


def _out(out, batch, shape, device):
    if out is not None:
        return out
    dev = backend.resolve_device(device) if device is not None else backend.cpu_device
    with dev.use():
        return dev.xp.empty((batch, *shape), np.float32)


def _shape(shape) -> tuple[int, int]:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (int(shape), int(shape))
    try:
        if isinstance(shape, (str, bytes)):
            raise TypeError
        shape = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise InputError(f"shape must be an int or (rows, cols), got {shape!r}") from None
    if len(shape) != 2 or min(shape) < 2:
        raise InputError(f"path shape must be (rows, cols) with both >= 2, got {shape}")
    return shape


def _int_arg(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if int(value) < minimum:
        raise InputError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _float_arg(value, name: str, *, minimum: float = 0.0, strict: bool = True, optional: bool = False):
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or (v <= minimum if strict else v < minimum):
        raise InputError(f"{name} must be a finite number {'>' if strict else '>='} {minimum:g}, got {value!r}")
    return v


def _check_common(batch, seed, example_base, out, shape) -> tuple[int, int, int]:
    """Validate the arguments every path function shares; returns ``(batch, seed, example_base)``."""
    seed = _int_arg(seed, "seed", 0)
    example_base = _int_arg(example_base, "example_base", 0)
    if out is None:
        batch = _int_arg(batch, "batch", 1)
    else:
        xp = backend.get_array_module(out) if hasattr(out, "shape") else None
        if xp is None or out.ndim != 3 or tuple(out.shape[1:]) != tuple(shape) or out.dtype != np.float32:
            raise InputError(f"out must be a (batch, {shape[0]}, {shape[1]}) float32 array, got "
                             f"{getattr(out, 'shape', type(out).__name__)} {getattr(out, 'dtype', '')}".rstrip())
        batch = out.shape[0]
    return batch, seed, example_base


def spiral_path(shape=(512, 512), coverage: float | None = 1 / 20, *, spacing: float | None = None, batch: int = 1,
                seed: int = 0, example_base: int = 0, rotate: bool = True, max_offset: float = 0.0,
                measure: str = "dwell", antialias: bool = False, device=None, out=None, engine: str | None = None):
    """Archimedean spiral dwell maps (spec: ``r = k theta``, arm spacing ``2 pi k``).

    Parameters
    ----------
    shape : (rows, cols) or int
    coverage : float in (0, 1], optional
        Target ``measure`` (see :func:`solve_coverage`); 1 gives a full scan. Ignored when
        ``spacing`` is given.
    spacing : float, optional
        Arm spacing in px (the spec's nominal ``1 / coverage``), used as is.
    batch, seed, example_base : int
        Example ``b`` is ``example_base + b``; its rotation/offset depend on ``(seed, example)``.
    rotate : bool
        Random rotation per example.
    max_offset : float
        Random centre offset per example, uniform in ``[-max_offset, max_offset]`` px per axis.
    measure : {"dwell", "coverage"}
        What ``coverage`` counts: the mean dwell (dose fraction, default) or the fraction of
        visited pixels.
    antialias : bool
        Anti-aliased rasterisation (fractional dwell on two pixels across the line) instead of
        the paper's binary 1-px line.
    device, out, engine
        Where to build the maps (``out`` (B, H, W) float32 decides when given).

    Returns
    -------
    (batch, rows, cols) float32 dwell maps on the device.
    """
    from fastem.kernels.scan_path import spiral_dwell

    shape = _shape(shape)
    batch, seed, example_base = _check_common(batch, seed, example_base, out, shape)
    max_offset = _float_arg(max_offset, "max_offset", strict=False)
    spacing = _float_arg(spacing, "spacing", optional=True)
    out = _out(out, batch, shape, device)
    spacing = path_parameter("spiral", coverage, shape, param=spacing, measure=measure, antialias=antialias)
    if spacing is None:
        out[...] = 1.0
        return out
    return spiral_dwell(out, float(spacing), seed, example_base, rotate, max_offset, antialias=bool(antialias),
                        engine=engine)


def grid_path(shape=(512, 512), coverage: float | None = 1 / 20, *, u: float | None = None, amp: float = 1.0,
              batch: int = 1, seed: int = 0, example_base: int = 0, random_place: bool = True,
              measure: str = "dwell", antialias: bool = False, device=None, out=None, engine: str | None = None):
    """Jittered-grid dwell maps (spec: random walks with momentum in channels, plus the transpose).

    ``u`` (fraction per direction, channel spacing ``(2 + sqrt(4 - 16 u)) / (2 u)``) is used as
    given, else solved from ``coverage`` for ``amp``; the paper's settings are in
    :data:`PAPER_GRID_SETTINGS`. ``random_place`` crops the 1.2 n canvas at a random offset in
    [0, 0.2 n] with random flips (else at 0.1 n, as the spec). Other parameters as
    :func:`spiral_path`.
    """
    from fastem.kernels.scan_path import grid_dwell

    shape = _shape(shape)
    batch, seed, example_base = _check_common(batch, seed, example_base, out, shape)
    amp = _float_arg(amp, "amp", strict=False)
    u = _float_arg(u, "u", optional=True)
    out = _out(out, batch, shape, device)
    u = path_parameter("grid", coverage, shape, param=u, amp=amp, measure=measure, antialias=antialias)
    if u is None:
        out[...] = 1.0
        return out
    return grid_dwell(out, float(u), float(amp), seed, example_base, random_place, antialias=bool(antialias),
                      engine=engine)


def path_parameter(kind: str, coverage: float | None, shape, *, param: float | None = None, amp: float = 1.0,
                   measure: str = "dwell", antialias: bool = False) -> float | None:
    """The spiral spacing or grid ``u`` for ``coverage`` (``param`` as given when not None).

    ``None`` means a full scan (coverage 1). Grid parameters are checked against ``shape``.
    """
    if param is None:
        c = check_coverage(coverage)
        if c >= 1.0:
            return None
        param = solve_coverage(kind, c, shape, amp=amp, measure=measure, antialias=antialias)
    param = _float_arg(param, "spacing" if kind == "spiral" else "u")
    if kind == "grid":
        check_grid_u(param, shape)
    return float(param)


def check_grid_u(u: float, shape) -> float:
    """``u`` if a jittered grid with it fits ``shape``, else an :class:`InputError` saying why."""
    if not 0.0 < u <= _MAX_GRID_U:
        raise InputError(f"grid u must be in (0, {_MAX_GRID_U}], got {u}")
    if grid_channel_width(u) > max(shape):
        raise InputError(f"grid u={u:.4g} spaces its channels {grid_channel_width(u):.0f} px apart, more than the "
                         f"{max(shape)} px image: a crop may hold no channel at all (use a spiral, a larger image, "
                         f"or a higher coverage)")
    return float(u)


def scan_path(kind: str, shape=(512, 512), coverage: float = 1 / 20, **kwargs):
    """:func:`spiral_path` or :func:`grid_path` by name (``kind`` in :data:`PATH_KINDS`)."""
    if kind == "spiral":
        return spiral_path(shape, coverage, **kwargs)
    if kind == "grid":
        return grid_path(shape, coverage, **kwargs)
    raise InputError(f"path kind must be one of {', '.join(PATH_KINDS)}, got {kind!r}")


def _mean_measure(kind: str, param: float, shape, amp: float, measure: str, samples: int, seed: int,
                  antialias: bool) -> float:
    out = np.empty((samples, *shape), np.float32)
    if kind == "spiral":
        from fastem.kernels.scan_path import spiral_dwell

        spiral_dwell(out, param, seed, 0, True, 0.0, antialias=antialias, engine="numba")
    else:
        from fastem.kernels.scan_path import grid_dwell

        grid_dwell(out, param, amp, seed, 0, True, antialias=antialias, engine="numba")
    return float(np.mean(measured_coverage(out) if measure == "coverage" else dwell_fraction(out)))


@functools.lru_cache(maxsize=256)
def _solve(kind: str, target: float, shape: tuple, amp: float, measure: str, samples: int, seed: int,
           antialias: bool) -> float:
    binary = not antialias
    if kind == "spiral":
        param = (1.0 if binary else 1.8 if measure == "coverage" else 0.9) / target
        lo, hi = 0.5, 64.0 * max(shape) / target
    else:
        param = min(_MAX_GRID_U, target / (1.9 if binary or measure == "dwell" else 3.2))
        lo, hi = 1e-6, _MAX_GRID_U
    best = (math.inf, param)
    below, above = None, None   # (param, measure) on either side of the target once both are seen
    for _ in range(30):
        got = _mean_measure(kind, param, shape, amp, measure, samples, seed, antialias)
        err = abs(got / target - 1.0)
        if err < best[0]:
            best = (err, param)
        if err < 2e-3:
            break
        if got < target:
            below = (param, got)   # measure below the target
        else:
            above = (param, got)
        if below is not None and above is not None:
            # bracketed: interpolate (regula falsi), kept inside the bracket (the measure is
            # monotone but step-like for sparse grids, where proportional updates oscillate)
            (p0, g0), (p1, g1) = below, above
            new = p0 + (target - g0) * (p1 - p0) / (g1 - g0) if g1 != g0 else 0.5 * (p0 + p1)
            lo_b, hi_b = min(p0, p1), max(p0, p1)
            if not lo_b < new < hi_b or abs(new - param) < 1e-3 * abs(hi_b - lo_b):
                new = 0.5 * (p0 + p1)
        elif got <= 0:
            new = param * (0.5 if kind == "spiral" else 2.0)
        else:
            # the measure is close to proportional to 1/spacing (spiral) and to u (grid)
            new = param * ((got / target) if kind == "spiral" else (target / got))
        new = min(hi, max(lo, new))
        if kind == "grid" and new == hi and param == hi:
            raise InputError(f"a jittered grid reaches at most {measure} {got:.3f} at amp {amp}; "
                             f"{target:.4g} was requested")
        param = new
    return best[1]


def solve_coverage(kind: str, target: float, shape=(512, 512), *, amp: float = 1.0, measure: str = "dwell",
                   antialias: bool = False, samples: int | None = None, seed: int = 20200904) -> float:
    """The path parameter whose ``measure`` averages ``target`` over ``samples`` random examples.

    Parameters
    ----------
    kind : {"spiral", "grid"}
    target : float in (0, 1)
    shape : (rows, cols)
    amp : float
        Grid random-walk amplitude (grid only).
    measure : {"dwell", "coverage"}
        ``"dwell"``: mean dwell, the dose fraction (default); ``"coverage"``: fraction of
        non-zero pixels (the spec's wording). Equal for binary (non-anti-aliased) paths.
    antialias : bool
        Solve for anti-aliased paths (else the default binary 1-px line).
    samples : int, optional
        Random examples averaged per evaluation (default 4 for spirals, 32 for grids, whose
        coverage depends on how many channels the random crop catches).

    Returns
    -------
    float
        Spiral arm spacing in px, or the grid's ``u``. Typically within 0.2 % of the target on
        average; single examples scatter by about 1 % (spirals) and a few % (grids at low
        coverage). Memoised per argument set.
    """
    if kind not in PATH_KINDS:
        raise InputError(f"path kind must be one of {', '.join(PATH_KINDS)}, got {kind!r}")
    if measure not in ("coverage", "dwell"):
        raise InputError(f"measure must be 'dwell' or 'coverage', got {measure!r}")
    target = check_coverage(target)
    if target >= 1.0:
        raise InputError("coverage 1 is a full scan: no path parameter to solve for")
    if samples is None:
        samples = 4 if kind == "spiral" else 32
    samples = _int_arg(samples, "samples", 1)
    seed = _int_arg(seed, "seed", 0)
    amp = _float_arg(amp, "amp", strict=False)
    return _solve(kind, target, _shape(shape), float(amp), measure, int(samples), int(seed), bool(antialias))
