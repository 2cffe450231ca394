"""Plain float64 NumPy implementation of GPS, ER, HIO and OSS: the test oracle and the
"straightforward NumPy" peer of the benchmark.

A literal transcription of the spec (``gps.md``) with ``numpy.fft`` and nothing else: the GPS
iteration is the spec's steps 1-6 written out one after the other, with the dual ``y`` kept in
real space, four FFTs for GPS-R (its Gaussian is a convolution done as ``ifftn(W fftn(.))``),
three for GPS-F (``F(y)``, ``F^{-1}(2z' - z)``, plus none for the weight), and the R-factor
evaluated from its definition (eq. 2.21) with two more. The filters are computed here from their
definitions (``numpy.fft.fftfreq``), independently of :mod:`fastem.phase.schedules`.

Data are in FFT layout (zero frequency at index 0, the support around index 0): shift the
on-disk arrays once with ``numpy.fft.ifftshift``. One run per call; loop for several.

Complex-valued objects (``complex_object=True``, optional ``phase_range=(lo, hi)``): the iterate
is complex, the constraint set is the support (with the phase sector), and its projection
:func:`project` is written here with angles (``numpy.angle``), independently of the kernels'
branch-free form (:mod:`fastem.kernels.phase_complex`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["freq_norm2", "stage_ranges", "gps_step", "baseline_step", "r_factor", "shrink_wrap_support",
           "reference_run", "project"]


def project(v, support, phase_range=None):
    """Nearest point of the complex constraint set: 0 outside ``support``; inside, ``v`` itself
    (no range) or its nearest point in the sector ``lo <= arg <= hi`` (by angles)."""
    if phase_range is None:
        return np.where(support, v, 0)
    lo, hi = phase_range
    c, h = 0.5 * (lo + hi), 0.5 * (hi - lo)
    theta = np.angle(v * np.exp(-1j * c))               # in (-pi, pi]
    inside = np.abs(theta) <= h
    edge = np.where(theta >= 0, h, -h)                  # the nearer boundary ray
    t = np.maximum(np.abs(v) * np.cos(np.abs(theta) - h), 0.0)
    return np.where(support, np.where(inside, v, t * np.exp(1j * (c + edge))), 0)


def _in_set(v, support, phase_range):
    if phase_range is None:
        return support
    lo, hi = phase_range
    c, h = 0.5 * (lo + hi), 0.5 * (hi - lo)
    return support & (np.abs(np.angle(v * np.exp(-1j * c))) <= h)


def freq_norm2(shape) -> np.ndarray:
    """``sum_a (k_a / N_a)^2`` in FFT layout (``k`` the signed index), float64."""
    grids = np.meshgrid(*[np.fft.fftfreq(n) for n in shape], indexing="ij")
    return sum(g**2 for g in grids)


def stage_ranges(iterations: int, stages: int) -> list[tuple[int, int]]:
    stages = min(stages, iterations)
    return [((l * iterations) // stages, ((l + 1) * iterations) // stages) for l in range(stages)]


def _width_factor(stage: int, stages: int) -> float:  # c_l, alpha_l = c_l N
    return 2.0 * (stages + 1 - stage) / stages


def _filters(algorithm: str, shape, stage: int, stages: int, s: float, gamma_scale: float):
    c = _width_factor(stage, stages)
    gamma = gamma_scale / (8.0 * np.pi**2 * c * c)
    r2 = freq_norm2(shape)
    if algorithm == "gps-f":
        return np.exp(-s * gamma * r2)  # real-space weight, r in units of the array side
    if algorithm == "gps-r":
        return np.exp(-4.0 * np.pi**2 * s * gamma * r2)  # Fourier multiplier of G_{s gamma}
    if algorithm == "oss":
        return np.exp(-r2 / (2.0 * c * c))
    return None


def _sigma(schedule, iteration: int, iterations: int) -> float:
    val = schedule[0][1]
    for frac, v in schedule:
        if iteration >= round(frac * iterations):
            val = v
    return val


def r_factor(image, b, known) -> float:
    """``sum_known | |F image| - b | / sum_known b`` (eq. 2.21)."""
    mag = np.abs(np.fft.fftn(image))
    return float(np.sum(np.abs(mag - b)[known]) / np.sum(b[known]))


def gps_step(z, y, b, known, support, t, s, sigma, variant, filt, complex_object=False, phase_range=None,
             gps_dual="polar"):
    """One GPS iteration, the spec's steps 1-5 (returns the new ``z`` and ``y``); for a complex
    object step 4 is ``v - P(v)`` (the polar cone of the support / sector, Moreau), or with
    ``gps_dual="feedback"`` ``0`` where ``v`` is in the set and ``v`` elsewhere."""
    w = z - t * np.fft.fftn(y)                                                   # 1
    prox = (b * np.exp(1j * np.angle(w)) + (sigma / t) * w) / (1.0 + sigma / t)  # 2 (arg 0 -> 0)
    z_new = np.where(known, prox, w)
    v = y + s * np.fft.ifftn(2.0 * z_new - z)                                    # 3
    if complex_object and gps_dual == "feedback":                                # 4
        p = np.where(_in_set(v, support, phase_range), 0, v)
    elif complex_object:
        p = v - project(v, support, phase_range)
    else:
        p = np.where(support, np.minimum(v.real, 0.0) + 1j * v.imag, v)
    if variant == "gps-r":                                                       # 5
        y_new = np.fft.ifftn(filt * np.fft.fftn(p))
    else:
        y_new = filt * p
    return z_new, y_new


def gps_image(z, support=None, complex_object=False, phase_range=None):
    """Step 6: ``max(Re F^{-1} z, 0)``, times the support when one is given (``project_output``);
    for a complex object ``P(F^{-1} z)`` (or ``F^{-1} z`` without a support)."""
    if complex_object:
        x = np.fft.ifftn(z)
        return x if support is None else project(x, support, phase_range)
    image = np.maximum(np.fft.ifftn(z).real, 0.0)
    return image if support is None else np.where(support, image, 0.0)


def baseline_step(algorithm, G, g, b, known, support, beta, filt, complex_object=False, phase_range=None):
    """One ER / HIO / OSS iteration from ``G = F(g)``; returns ``(G_new, g_new, image)`` (complex
    ``g`` for a complex object: ``good`` = in the support and the sector, image = ``P(g')``)."""
    Gp = np.where(known, b * np.exp(1j * np.angle(G)), G)
    if complex_object:
        gp = np.fft.ifftn(Gp)
        good = _in_set(gp, support, phase_range)
        image = project(gp, support, phase_range)
    else:
        gp = np.fft.ifftn(Gp).real
        good = support & (gp >= 0)
        image = np.where(good, gp, 0.0)
    if algorithm == "er":
        g_new = image
    elif algorithm == "hio":
        g_new = np.where(good, gp, g - beta * gp)
    else:  # oss
        h = g - beta * gp
        sample = np.where(good, gp, h)
        lowpass = np.fft.ifftn(filt * np.fft.fftn(h))
        g_new = np.where(support, sample, lowpass if complex_object else lowpass.real)
    return np.fft.fftn(g_new), g_new, image


def shrink_wrap_support(image, initial, width: float, threshold: float) -> np.ndarray:
    """Marchesini et al. (2003): ``{G_width * image > threshold * max} & initial``, FFT layout.

    ``G_width`` a periodic Gaussian of ``width`` pixels (standard deviation), applied as its
    Fourier transform ``exp(-2 pi^2 width^2 |k|^2)`` (``k`` in cycles per pixel). An empty result
    is returned as None (the caller keeps its support).
    """
    image = np.abs(image) if np.iscomplexobj(image) else image  # a complex object: its modulus
    smooth = np.fft.ifftn(np.fft.fftn(image) * np.exp(-2.0 * np.pi**2 * width**2 * freq_norm2(image.shape))).real
    new = (smooth > threshold * smooth.max()) & initial
    return new if new.any() else None


def reference_run(b, known, support, phases, *, algorithm="gps-f", iterations=1000, stages=None, t=1.0, s=0.9,
                  sigma_schedule=None, beta=0.9, gamma_scale=None,
                  rfactor_every=5, project_output=True, shrink_wrap=False, shrink_wrap_every=20,
                  shrink_wrap_threshold=0.2, shrink_wrap_sigma=(3.0, 1.5), shrink_wrap_start=0.0,
                  shrink_wrap_guard=0.25, stage_restart="stage", complex_object=False, phase_range=None,
                  gps_dual=None) -> dict:
    """One run of ``algorithm``, float64, FFT layout (see the module docstring).

    ``sigma_schedule`` / ``gamma_scale`` None: GPS-R 0.01 / 0.1 / 0.3 from 0 / 40 / 70 %, every
    other algorithm 0.01 / 0.1 / 1; ``gamma_scale`` 1 (written out here, independently of
    ``PhaseConfig``'s table, so that a test can compare the two).

    ``project_output``: the GPS image (monitored and returned) is ``max(Re F^{-1} z, 0)`` on the
    support and 0 outside, like the baselines' images; ``False`` is the spec's step 6 as written.

    ``shrink_wrap``: every ``shrink_wrap_every`` iterations from ``round(shrink_wrap_start *
    iterations)`` on (not after the last iteration), the support becomes
    :func:`shrink_wrap_support` of the current image, width ``max(floor, start * 0.99^u)`` at the
    ``u``-th update; guard: if the best R_F since the last update exceeds ``(1 + guard)`` times
    the best R_F of the window before it, the support before that update is restored instead.
    The final support is returned as ``support``. ``stage_restart="global"``: a stage restarts
    from the best iterate of all stages so far (thesis algorithms 1-2), not of the last stage.
    ``gps_dual`` (complex objects; None: "feedback"): GPS's dual step, see :func:`gps_step`.

    Returns
    -------
    dict
        ``best_image`` (FFT layout), ``best_rf``, ``history_iterations``, ``history_rf``,
        ``final`` (the last iterate: ``(z, y)`` for GPS, ``(G, g)`` for the baselines).
    """
    b = np.asarray(b, np.float64)
    known = np.asarray(known, bool)
    support = np.asarray(support, bool)
    b = np.where(known, b, 0.0)
    initial = support
    sw_first = int(round(shrink_wrap_start * iterations)) + shrink_wrap_every - 1
    sw_prev, rf_prev, rf_window = support, np.inf, np.inf
    if stages is None:
        stages = 10 if algorithm in ("gps-f", "gps-r", "oss") else 1
    if sigma_schedule is None:
        sigma_schedule = ((0.0, 0.01), (0.4, 0.1), (0.7, 0.3 if algorithm == "gps-r" else 1.0))
    if gamma_scale is None:
        gamma_scale = 1.0
    ranges = stage_ranges(iterations, stages)
    z0 = b * np.exp(1j * np.asarray(phases, np.float64))
    gps = algorithm.startswith("gps")
    if gps:
        state = (z0, np.zeros_like(z0))
    else:
        state = (z0, np.fft.ifftn(z0) if complex_object else np.fft.ifftn(z0).real)
    cx = {"complex_object": complex_object, "phase_range": phase_range}
    best_rf, best_image = np.inf, None
    hist_it, hist_rf = [], []
    stage_best = None
    for l, (a, e) in enumerate(ranges):
        if l > 0 and len(ranges) > 1:
            state = stage_best[1]
            if not gps:  # restart from the best real iterate: G = F(g)
                state = (np.fft.fftn(state[1]), state[1])
        if stage_restart == "stage" or stage_best is None:
            stage_best = (np.inf, None)
        filt = _filters(algorithm, b.shape, l + 1, len(ranges), s, gamma_scale)
        for i in range(a, e):
            if gps:
                sigma = _sigma(sigma_schedule, i, iterations)
                state = gps_step(*state, b, known, support, t, s, sigma, algorithm, filt, **cx,
                                 gps_dual=gps_dual or ("feedback" if complex_object else "polar"))
            else:
                G, g, image = baseline_step(algorithm, *state, b, known, support, beta, filt, **cx)
                state = (G, image if algorithm == "er" else g)
            if ((i - a + 1) % rfactor_every == 0) or i == e - 1:
                if gps:
                    image = gps_image(state[0], support if project_output else None, **cx)
                rf = r_factor(image, b, known)
                hist_it.append(i + 1)
                hist_rf.append(rf)
                if rf < stage_best[0]:
                    stage_best = (rf, tuple(np.copy(x) for x in state))
                if rf < best_rf:
                    best_rf, best_image = rf, image.copy()
                rf_window = min(rf_window, rf)
            if shrink_wrap and i >= sw_first and (i - sw_first) % shrink_wrap_every == 0 and i + 1 < iterations:
                if gps:
                    image = gps_image(state[0], support if project_output else None, **cx)
                u = (i - sw_first) // shrink_wrap_every
                width = max(shrink_wrap_sigma[1], shrink_wrap_sigma[0] * 0.99**u)
                new = shrink_wrap_support(image, initial, width, shrink_wrap_threshold)
                new = support if new is None else new
                if shrink_wrap_guard > 0 and np.isfinite(rf_prev) and rf_window > (1 + shrink_wrap_guard) * rf_prev:
                    new = sw_prev  # the last update made the fit worse: undo it
                else:
                    sw_prev, rf_prev = support, rf_window
                support, rf_window = new, np.inf
    return {"best_image": best_image, "best_rf": best_rf, "history_iterations": np.asarray(hist_it),
            "history_rf": np.asarray(hist_rf), "final": state, "support": support}
