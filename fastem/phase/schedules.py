"""Stage, filter and sigma schedules of GPS and OSS (spec ``gps.md`` "Schedules"; thesis 2.3-2.4).

Coordinates. An array of shape ``(N_0, ..., N_{d-1})`` in centred layout (zero frequency / the
array centre at index ``N_a // 2``) has centred coordinates ``x_a = i_a - N_a // 2`` (real-space
pixels) and ``k_a`` likewise (Fourier pixels). Widths are expressed relative to the array side,
``rho_a = x_a / N_a`` and ``xi_a = k_a / N_a``, so square arrays get isotropic filters and
non-square ones filters that are isotropic in these normalised units.

Stages. ``L`` stages (default 10) split the iterations evenly; stage ``l = 1..L`` uses the OSS
width ``alpha_l = c_l * N`` Fourier pixels with ``c_l = 2 (L + 1 - l) / L`` -- for ``L = 10``,
``alpha_l = (11 - l) * 0.2 * N``, from ``2N`` down to ``0.2N`` (Rodriguez et al. 2013): the
low-pass becomes stronger stage by stage.

Filters of stage ``l`` (``s`` the GPS dual step):

* OSS (Fourier space):  ``W(k) = exp(-|xi|^2 / (2 c_l^2))``, i.e. ``exp(-k^2 / (2 alpha_l^2))``.
* GPS-R (Fourier space, thesis eq. 2.18/2.20):  ``W(k) = exp(-4 pi^2 s gamma_l |xi|^2)``.
* GPS-F (real space, thesis eq. 2.26/2.27):     ``W(x) = exp(-s gamma_l |rho|^2)``.

with ``gamma_l = g / (8 pi^2 c_l^2)`` and ``g = gamma_scale`` (default 1): then the GPS-R filter is
the OSS filter of width ``alpha_l / sqrt(s)`` -- the thesis' "same low-pass filters as OSS" --
and GPS-F uses the same ``gamma_l`` in its real-space weight (thesis notation
``W_{s gamma / 4 pi^2} = exp(-s gamma r^2)``, ``r`` in units of the array side). ``gamma_scale``
multiplies ``gamma_l`` for both GPS variants (used to study the sensitivity to the scaling).

The "relax" schedule (``PhaseConfig(gamma_schedule="relax")``, issue 15): strong smoothing
early, relaxing towards the end, set by the filter value at the array edge (GPS-F's real-space
weight at ``|rho| = 1/2``) or at Nyquist (GPS-R's Fourier filter at ``|xi| = 1/2``), ``w_l``
log-linear from ``gamma_edge[0]`` = 0.01 in stage 1 to ``gamma_edge[1]`` = 0.9 in the last
(:func:`gps_gamma_relax`). The default "oss" schedule ties ``gamma_l`` to the OSS widths: its
GPS-F weight never drops below 0.93 at the array edge.

Sigma. A piecewise-constant schedule over the fraction of iterations done, by default
``0.01`` for the first 40 %, ``0.1`` until 70 %, ``1`` after (thesis 2.4.2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastem.errors import InputError

__all__ = [
    "DEFAULT_SIGMA_SCHEDULE",
    "SigmaSchedule",
    "parse_sigma_schedule",
    "stage_bounds",
    "oss_width_factor",
    "gps_gamma",
    "centred_norm2",
    "oss_filter",
    "gps_r_filter",
    "gps_f_weight",
    "DEFAULT_RELAX_EDGE",
    "relax_edge_value",
    "gps_gamma_relax",
]

DEFAULT_SIGMA_SCHEDULE = ((0.0, 0.01), (0.4, 0.1), (0.7, 1.0))


@dataclass(frozen=True)
class SigmaSchedule:
    """Piecewise-constant ``sigma`` over the fraction of iterations: ``((f0, v0), (f1, v1), ...)``.

    ``v_j`` applies from iteration ``round(f_j * iterations)`` on; ``f0`` must be 0.
    """

    points: tuple[tuple[float, float], ...] = DEFAULT_SIGMA_SCHEDULE

    def __post_init__(self):
        try:
            pts = tuple((float(f), float(v)) for f, v in self.points)
        except (TypeError, ValueError):
            raise InputError(f"sigma_schedule {self.points!r}: expected (fraction, value) pairs such as "
                             f"((0, 0.01), (0.4, 0.1), (0.7, 1))") from None
        if not pts:
            raise InputError("sigma schedule is empty")
        if pts[0][0] != 0.0:
            raise InputError(f"sigma schedule must start at fraction 0, got {pts[0][0]}")
        fr = [f for f, _ in pts]
        if any(b <= a for a, b in zip(fr, fr[1:])) or fr[-1] > 1.0:
            raise InputError(f"sigma schedule fractions must increase within [0, 1], got {fr}")
        if any(not np.isfinite(v) or v < 0 for _, v in pts):
            raise InputError(f"sigma values must be finite and >= 0, got {[v for _, v in pts]}")
        object.__setattr__(self, "points", pts)

    def value(self, iteration: int, iterations: int) -> float:
        """``sigma`` at 0-based ``iteration`` of ``iterations``."""
        val = self.points[0][1]
        for frac, v in self.points:
            if iteration >= round(frac * iterations):
                val = v
        return val

    def __str__(self) -> str:
        return ",".join(f"{f:g}:{v:g}" for f, v in self.points)


def parse_sigma_schedule(text) -> SigmaSchedule:
    """``"0:0.01,0.4:0.1,0.7:1"`` (fraction:value pairs) or a single number -> :class:`SigmaSchedule`."""
    if isinstance(text, SigmaSchedule):
        return text
    if isinstance(text, (int, float, np.integer, np.floating)) and not isinstance(text, (bool, np.bool_)):
        return SigmaSchedule(((0.0, float(text)),))
    if isinstance(text, (list, tuple)):
        try:
            return SigmaSchedule(tuple(tuple(p) for p in text))
        except TypeError:
            raise InputError(f"sigma_schedule {text!r}: expected (fraction, value) pairs such as "
                             f"((0, 0.01), (0.4, 0.1), (0.7, 1))") from None
    if not isinstance(text, str):
        raise InputError(f"sigma_schedule {text!r}: expected 'fraction:value,...' such as '0:0.01,0.4:0.1,0.7:1', "
                         f"one number or (fraction, value) pairs")
    s = text.strip()
    try:
        if ":" not in s:
            return SigmaSchedule(((0.0, float(s)),))
        pts = []
        for part in s.split(","):
            f, v = part.split(":")
            pts.append((float(f), float(v)))
    except ValueError:
        raise InputError(f"sigma_schedule {text!r}: expected 'fraction:value,...' such as '0:0.01,0.4:0.1,0.7:1' "
                         f"or one number") from None
    return SigmaSchedule(tuple(pts))


def stage_bounds(iterations: int, stages: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` iteration ranges of ``stages`` even stages (0-based, stop exclusive)."""
    if iterations < 1:
        raise InputError(f"iterations must be >= 1, got {iterations}")
    if stages < 1:
        raise InputError(f"stages must be >= 1, got {stages}")
    stages = min(stages, iterations)
    edges = [(l * iterations) // stages for l in range(stages + 1)]
    return [(edges[l], edges[l + 1]) for l in range(stages)]


def oss_width_factor(stage: int, stages: int) -> float:
    """``c_l = 2 (L + 1 - l) / L`` for 1-based ``stage = l`` of ``L``: ``alpha_l = c_l * N``."""
    if not 1 <= stage <= stages:
        raise InputError(f"stage {stage} outside 1..{stages}")
    return 2.0 * (stages + 1 - stage) / stages


def gps_gamma(stage: int, stages: int, gamma_scale: float = 1.0) -> float:
    """``gamma_l = gamma_scale / (8 pi^2 c_l^2)`` (dimensionless; coordinates in array sides)."""
    c = oss_width_factor(stage, stages)
    return float(gamma_scale) / (8.0 * np.pi**2 * c * c)


def centred_norm2(shape, fft_layout: bool = True) -> np.ndarray:
    """``sum_a (x_a / N_a)^2`` over the grid, float64; in FFT layout (centre at index 0) by default."""
    shape = tuple(int(n) for n in shape)
    out = np.zeros(shape)
    for ax, n in enumerate(shape):
        x = (np.arange(n) - n // 2) / n
        if fft_layout:
            x = np.fft.ifftshift(x)
        sh = [1] * len(shape)
        sh[ax] = n
        out = out + (x**2).reshape(sh)
    return out


def oss_filter(shape, stage: int, stages: int, fft_layout: bool = True) -> np.ndarray:
    """OSS Fourier filter ``exp(-|xi|^2 / (2 c_l^2))`` (max 1 at zero frequency), float64."""
    c = oss_width_factor(stage, stages)
    return np.exp(-centred_norm2(shape, fft_layout) / (2.0 * c * c))


#: the "relax" schedule's filter value at the array edge (GPS-F) / at Nyquist (GPS-R), first and last stage
DEFAULT_RELAX_EDGE = (0.01, 0.9)


def relax_edge_value(stage: int, stages: int, edge=DEFAULT_RELAX_EDGE) -> float:
    """``w_l = w_1 (w_L / w_1)^((l - 1) / (L - 1))``: log-linear from ``w_1`` to ``w_L`` (one stage: ``w_L``)."""
    if not 1 <= stage <= stages:
        raise InputError(f"stage {stage} outside 1..{stages}")
    w1, wl = (float(v) for v in edge)
    if not (0 < w1 < 1 and 0 < wl < 1):
        raise InputError(f"gamma_edge must be two numbers in (0, 1), got {edge!r}")
    f = (stage - 1) / (stages - 1) if stages > 1 else 1.0
    return float(w1 * (wl / w1) ** f)


def gps_gamma_relax(stage: int, stages: int, s: float, variant: str, edge=DEFAULT_RELAX_EDGE) -> float:
    """``gamma_l`` of the "relax" schedule: strong smoothing early, relaxing stage by stage.

    GPS-F: the real-space weight at the array edge (``|rho| = 1/2``) is ``w_l``:
    ``exp(-s gamma_l / 4) = w_l``, ``gamma_l = -4 ln(w_l) / s``. GPS-R: the Fourier filter at
    Nyquist (``|xi| = 1/2``) is ``w_l``: ``exp(-pi^2 s gamma_l) = w_l``,
    ``gamma_l = -ln(w_l) / (pi^2 s)`` (noise suppression at high q, strongest early).
    """
    w = relax_edge_value(stage, stages, edge)
    if variant == "F":
        return -4.0 * np.log(w) / s
    return -np.log(w) / (np.pi**2 * s)


def gps_r_filter(shape, stage: int, stages: int, s: float, gamma_scale: float = 1.0,
                 fft_layout: bool = True, gamma: float | None = None) -> np.ndarray:
    """GPS-R Fourier multiplier ``exp(-4 pi^2 s gamma_l |xi|^2)``, float64 (``gamma``: use this
    ``gamma_l`` instead of the OSS-tied :func:`gps_gamma`)."""
    g = gps_gamma(stage, stages, gamma_scale) if gamma is None else float(gamma)
    return np.exp(-4.0 * np.pi**2 * s * g * centred_norm2(shape, fft_layout))


def gps_f_weight(shape, stage: int, stages: int, s: float, gamma_scale: float = 1.0,
                 fft_layout: bool = True, gamma: float | None = None) -> np.ndarray:
    """GPS-F real-space weight ``exp(-s gamma_l |rho|^2)``, ``rho`` from the array centre, float64
    (``gamma``: use this ``gamma_l`` instead of the OSS-tied :func:`gps_gamma`)."""
    g = gps_gamma(stage, stages, gamma_scale) if gamma is None else float(gamma)
    return np.exp(-s * g * centred_norm2(shape, fft_layout))
