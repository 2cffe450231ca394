"""Synthetic, seeded data for self-supervised GAN pretraining and its downstream tasks (issue 13).

Seed 002 pretrains on CEM500K and fine-tunes on the Au nanoparticle HRTEM sets of Sytwu et al.
and on TEMImageNet; none is available offline (spec ``ssl_gan.md``, "Data"). These stand in:

* :func:`unlabelled_pool` -- an unlabelled pool of mixed micrographs: atomic-resolution
  HAADF-STEM lattices (:mod:`fastem.data.stem`), amorphous films (band-limited speckle on a
  thickness variation), particles on a film (smooth-edged blobs, some with fringes) and
  cell-like textures (Voronoi cells with dark membranes, organelles with dark rims, granular
  cytoplasm), each with mild shot noise;
* :func:`hrtem_nanoparticles` -- HRTEM-like images: crystalline lattice fringes (one or two
  fringe sets, period 3-7 px) inside irregular particle outlines on an amorphous background
  whose speckle has the same spatial frequencies (so the fringes' order, not their
  frequency, tells particle from background, as in phase-contrast HRTEM), a weak amplitude
  contrast, a blur and Gaussian noise; with the **exact** particle masks (uint8, 1 inside);
* :func:`stem_restoration_set` -- ADF-STEM lattices (a projected crystal from
  :data:`fastem.data.stem.STRUCTURES`, Gaussian columns) with Poisson + Gaussian noise and a
  low-frequency background (a linear ramp plus a smooth random field, TEMImageNet's
  "randomised linear and nonlinear low-frequency background"), and their targets: ``clean``
  (noise-free, background kept: denoising), ``background_free`` (noise- and background-free:
  noise + background removal) and ``high_res`` (background-free with columns of half the
  width: super-resolution, on the same pixel grid as TEMImageNet's);
* :func:`task_data` -- ``(inputs, targets)`` for a fine-tuning task by name.

Every image ``i`` is drawn from ``numpy.random.default_rng([seed, index_base + i, stream])``
(one stream per generator), so image ``i`` is the same whatever ``n`` or the batch split; use a
different ``seed`` (or ``index_base``) per split. Images are float32 ``(n, size, size)`` in
arbitrary positive intensity units (mean about 1); fastem's training code standardises them.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from fastem.errors import InputError

__all__ = ["POOL_KINDS", "TASK_TARGETS", "unlabelled_pool", "hrtem_nanoparticles", "stem_restoration_set",
           "task_data", "render_columns"]

POOL_KINDS = ("lattice", "film", "particles", "cells")
#: fine-tuning task -> the :func:`stem_restoration_set` array it learns (segment: the masks)
TASK_TARGETS = {"segment": "mask", "denoise": "clean", "background": "background_free", "superres": "high_res"}

_POOL_STREAM, _HRTEM_STREAM, _ADF_STREAM = 0x551, 0x552, 0x553


def _check(n, size, seed, index_base) -> tuple[int, int, int, int]:
    for name, v, lo in (("n", n, 1), ("size", size, 16), ("seed", seed, 0), ("index_base", index_base, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or int(v) < lo:
            raise InputError(f"{name} must be an integer >= {lo}, got {v!r}")
    return int(n), int(size), int(seed), int(index_base)


def _smooth(rng, shape, sigma) -> np.ndarray:
    f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return (f - f.mean()) / (f.std() + 1e-12)


def _bandpass(rng, size: int, f0: float, width: float) -> np.ndarray:
    """Unit-std speckle whose spectrum is a ring of radius ``f0`` (cycles/px) and std ``width``."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    ring = np.exp(-0.5 * ((np.hypot(fy, fx) - f0) / width) ** 2)
    f = np.fft.ifft2(np.fft.fft2(rng.standard_normal((size, size))) * ring).real
    return (f - f.mean()) / (f.std() + 1e-12)


def _outline_mask(size: int, cy: float, cx: float, r0: float, rng) -> np.ndarray:
    """Boolean mask of an irregular particle: ``r(theta) = r0 (1 + sum_k a_k cos(k theta + phi_k))``."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    theta = np.arctan2(y - cy, x - cx)
    r = np.full_like(theta, r0)
    for k in (2, 3, 4, 5):
        r += r0 * rng.uniform(0.0, 0.12 / (k - 1)) * np.cos(k * theta + rng.uniform(0, 2 * math.pi))
    return np.hypot(y - cy, x - cx) <= r


def _shot_noise(rng, img: np.ndarray, dose: float) -> np.ndarray:
    lam = np.clip(img, 0, None) / max(float(img.mean()), 1e-12) * dose
    return (rng.poisson(lam) / dose).astype(np.float32)


# ------------------------------------------------------------------------------------------
# unlabelled pool
# ------------------------------------------------------------------------------------------
def _film(rng, size: int) -> np.ndarray:
    speckle = _bandpass(rng, size, rng.uniform(0.12, 0.3), rng.uniform(0.03, 0.08))
    thick = _smooth(rng, (size, size), size / rng.uniform(3, 8))
    return 1.0 + rng.uniform(0.1, 0.3) * speckle + rng.uniform(0.05, 0.2) * thick


def _particles(rng, size: int) -> np.ndarray:
    img = _film(rng, size)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    for _ in range(int(rng.integers(2, 12))):
        r0 = rng.uniform(0.03, 0.15) * size
        cy, cx = rng.uniform(0, size, 2)
        inside = ndimage.gaussian_filter(_outline_mask(size, cy, cx, r0, rng).astype(np.float64), rng.uniform(0.5, 2))
        level = rng.uniform(-0.8, 0.6)
        if rng.random() < 0.4:
            k = rng.uniform(1 / 7, 1 / 3)
            a = rng.uniform(0, math.pi)
            level = level + 0.3 * np.cos(2 * math.pi * k * (x * math.cos(a) + y * math.sin(a)))
        img = img + level * inside
    return np.clip(img, 0.05, None)


def _cells(rng, size: int) -> np.ndarray:
    n_cells = int(rng.integers(3, 14))
    seeds = rng.uniform(0, size, (n_cells, 2))
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    d = np.sort(np.stack([np.hypot(y - sy, x - sx) for sy, sx in seeds]), axis=0)
    edge = d[1] - d[0] if n_cells > 1 else np.full_like(y, size)   # distance to the nearest membrane (x2)
    width = rng.uniform(1.0, 2.5)
    img = 1.0 + 0.08 * _smooth(rng, (size, size), rng.uniform(0.7, 1.5))      # granular cytoplasm
    img -= rng.uniform(0.4, 0.8) * np.exp(-0.5 * (edge / width) ** 2)          # membranes
    for _ in range(int(rng.integers(2, 10))):                                   # organelles with dark rims
        r0 = rng.uniform(0.02, 0.08) * size
        cy, cx = rng.uniform(0, size, 2)
        rr = np.hypot((y - cy) / rng.uniform(0.6, 1.0), x - cx)
        img -= rng.uniform(0.3, 0.6) * np.exp(-0.5 * ((rr - r0) / rng.uniform(0.7, 1.5)) ** 2)
        img += rng.uniform(-0.2, 0.2) * (rr < r0)
    return np.clip(img, 0.05, None)


def unlabelled_pool(n: int, size: int = 128, *, seed: int = 0, index_base: int = 0,
                    kinds: tuple = POOL_KINDS) -> np.ndarray:
    """``n`` unlabelled micrographs of mixed kinds, (n, size, size) float32.

    Image ``i``'s kind is drawn uniformly from ``kinds`` (:data:`POOL_KINDS`); lattices are
    :func:`fastem.data.stem.generate_stem` images (noise-free, index ``index_base + i``), the
    others get shot noise at a dose drawn log-uniformly in [500, 20000] per pixel.
    """
    n, size, seed, index_base = _check(n, size, seed, index_base)
    bad = [k for k in kinds if k not in POOL_KINDS]
    if bad or not kinds:
        raise InputError(f"unknown pool kind(s) {bad}; available: {', '.join(POOL_KINDS)}")
    out = np.empty((n, size, size), np.float32)
    for i in range(n):
        rng = np.random.default_rng([seed, index_base + i, _POOL_STREAM])
        kind = kinds[int(rng.integers(len(kinds)))]
        if kind == "lattice":
            from .stem import generate_stem

            out[i] = generate_stem(1, size, seed=seed, index_base=index_base + i, dose=None, device="cpu")[0]
            continue
        img = {"film": _film, "particles": _particles, "cells": _cells}[kind](rng, size)
        out[i] = _shot_noise(rng, img, math.exp(rng.uniform(math.log(500), math.log(20000))))
    return out


# ------------------------------------------------------------------------------------------
# HRTEM nanoparticles with masks
# ------------------------------------------------------------------------------------------
def hrtem_nanoparticles(n: int, size: int = 128, *, seed: int = 0, index_base: int = 0,
                        particles: tuple = (1, 5), radius: tuple = (0.06, 0.16), period: tuple = (3.0, 7.0),
                        amplitude_contrast: tuple = (0.2, 0.6), noise: tuple = (0.3, 0.8)):
    """HRTEM-like nanoparticle images and their exact masks.

    Parameters
    ----------
    n, size, seed, index_base
        See the module docstring.
    particles : (int, int)
        Range of the number of particles per image (inclusive).
    radius : (float, float)
        Mean particle radius as a fraction of ``size``.
    period : (float, float)
        Lattice-fringe period (px); the background speckle is centred on the same frequency.
    amplitude_contrast : (float, float)
        Darkening of the particles, in background-speckle stds (weak: HRTEM phase contrast).
    noise : (float, float)
        Gaussian noise std, in background-speckle stds.

    Returns
    -------
    images : (n, size, size) float32
    masks : (n, size, size) uint8, 1 inside a particle, 0 outside (the exact supports).
    """
    n, size, seed, index_base = _check(n, size, seed, index_base)
    images = np.empty((n, size, size), np.float32)
    masks = np.zeros((n, size, size), np.uint8)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    for i in range(n):
        rng = np.random.default_rng([seed, index_base + i, _HRTEM_STREAM])
        p = rng.uniform(*period)
        f0 = 1.0 / p
        img = _bandpass(rng, size, f0, f0 * rng.uniform(0.15, 0.3))
        img += 0.3 * _smooth(rng, (size, size), size / 6)
        mask = np.zeros((size, size), bool)
        for _ in range(int(rng.integers(particles[0], particles[1] + 1))):
            r0 = rng.uniform(*radius) * size
            cy, cx = rng.uniform(0.1 * size, 0.9 * size, 2)
            inside = _outline_mask(size, cy, cx, r0, rng) & ~mask
            if not inside.any():
                continue
            mask |= inside
            pp = p * rng.uniform(0.85, 1.15)
            a = rng.uniform(0, math.pi)
            fr = np.cos(2 * math.pi / pp * (x * math.cos(a) + y * math.sin(a)) + rng.uniform(0, 2 * math.pi))
            if rng.random() < 0.5:
                a2 = a + rng.uniform(math.pi / 4, math.pi / 2)
                fr = fr + np.cos(2 * math.pi / pp * (x * math.cos(a2) + y * math.sin(a2)) + rng.uniform(0, 6.3))
            amp = rng.uniform(0.9, 1.6)
            img[inside] = (0.4 * img[inside] + amp * fr[inside] - rng.uniform(*amplitude_contrast))
        img = ndimage.gaussian_filter(img, rng.uniform(0.4, 0.8))
        img = img / (img.std() + 1e-12) + rng.uniform(*noise) * rng.standard_normal((size, size))
        images[i] = (img + 8.0).astype(np.float32)    # positive intensities around 8
        masks[i] = mask
    return images, masks


# ------------------------------------------------------------------------------------------
# ADF-STEM restoration sets
# ------------------------------------------------------------------------------------------
def render_columns(x, y, amp, sigma, shape) -> np.ndarray:
    """Sum of Gaussian columns ``amp * exp(-r^2 / (2 sigma^2))`` on a (rows, cols) grid (float64).

    ``x`` (cols) and ``y`` (rows) in px; ``amp`` and ``sigma`` per column or scalar; columns
    are cut off at 3.5 sigma.
    """
    h, w = shape
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    amp = np.broadcast_to(np.asarray(amp, np.float64), x.shape)
    sigma = np.broadcast_to(np.asarray(sigma, np.float64), x.shape)
    out = np.zeros(h * w)
    if x.size == 0:
        return out.reshape(h, w)
    r = int(math.ceil(3.5 * float(sigma.max())))
    d = np.arange(-r, r + 1)
    ci, cj = np.rint(y).astype(np.int64), np.rint(x).astype(np.int64)
    rows = ci[:, None, None] + d[None, :, None]
    cols = cj[:, None, None] + d[None, None, :]
    dy = rows - y[:, None, None]
    dx = cols - x[:, None, None]
    val = amp[:, None, None] * np.exp(-(dy * dy + dx * dx) / (2 * sigma[:, None, None] ** 2))
    ok = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w) & (dy * dy + dx * dx <= (3.5 * sigma[:, None, None]) ** 2)
    rows, cols = np.broadcast_to(rows, ok.shape), np.broadcast_to(cols, ok.shape)
    out += np.bincount((rows[ok] * w + cols[ok]), weights=val[ok], minlength=h * w)
    return out.reshape(h, w)


def _crystal(rng, size: int, magnification: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    from .stem import STRUCTURES, lattice_sites

    name = list(STRUCTURES)[int(rng.integers(len(STRUCTURES)))]
    st = STRUCTURES[name]
    a_px = st.a_px * rng.uniform(*magnification)
    ang = rng.uniform(0, 2 * math.pi)
    c, s = math.cos(ang), math.sin(ang)
    cell = a_px * np.array([[c, -s], [s, c]]) @ np.array([st.a1, st.a2], dtype=np.float64).T
    reach = int(math.ceil(1.5 * size / (a_px * min(np.linalg.norm(st.a1), np.linalg.norm(st.a2))))) + 2
    ii, jj = np.meshgrid(np.arange(-reach, reach + 1), np.arange(-reach, reach + 1), indexing="ij")
    base = np.stack([ii.ravel(), jj.ravel()], axis=1).astype(np.float64)
    shift = rng.uniform(0, a_px, 2) + size / 2
    x, y, w = lattice_sites(base, st.basis, cell, shift)
    keep = (x > -8) & (x < size + 8) & (y > -8) & (y < size + 8)
    # nearest column spacing sets the probe width (sigma ~ 0.25 of it)
    pts = np.stack([x[keep], y[keep]], axis=1)
    centre = pts[np.argmin(((pts - size / 2) ** 2).sum(1))]
    dist = np.sqrt(((pts - centre) ** 2).sum(1))
    spacing = float(np.min(dist[dist > 1e-6])) if pts.shape[0] > 1 else a_px
    return x[keep], y[keep], w[keep] / w.max(), spacing


def stem_restoration_set(n: int, size: int = 128, *, seed: int = 0, index_base: int = 0,
                         dose: tuple = (20.0, 200.0), background: tuple = (0.3, 1.5), scan_noise: tuple = (0.0, 0.1),
                         magnification: tuple = (0.5, 1.0), sharpening: float = 0.5) -> dict:
    """ADF-STEM lattices with noise and background, and their three targets.

    Parameters
    ----------
    n, size, seed, index_base
        See the module docstring.
    dose : (float, float)
        Range (log-uniform) of the mean electrons per pixel of the Poisson noise.
    background : (float, float)
        Background strength relative to the brightest column's peak.
    scan_noise : (float, float)
        Gaussian (read-out / scan) noise std relative to the brightest column's peak.
    magnification : (float, float)
        Factor on the structure's lattice parameter in px (:data:`fastem.data.stem.STRUCTURES`).
    sharpening : float
        Column width of ``high_res`` relative to the input's.

    Returns
    -------
    dict of (n, size, size) float32 arrays: ``noisy`` (the input), ``clean`` (noise-free,
    background kept), ``background_free`` (noise- and background-free), ``high_res``
    (background-free, columns ``sharpening`` times as wide), and ``dose`` (n,) float64.
    Intensities: the brightest column peaks at about 1.
    """
    n, size, seed, index_base = _check(n, size, seed, index_base)
    if not 0 < sharpening <= 1:
        raise InputError(f"sharpening must be in (0, 1], got {sharpening}")
    keys = ("noisy", "clean", "background_free", "high_res")
    out = {k: np.empty((n, size, size), np.float32) for k in keys}
    doses = np.empty(n)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size - 0.5
    for i in range(n):
        rng = np.random.default_rng([seed, index_base + i, _ADF_STREAM])
        x, y, w, spacing = _crystal(rng, size, magnification)
        sigma = max(0.8, 0.25 * spacing) * rng.uniform(0.9, 1.1)
        w = w * (1.0 + 0.05 * rng.standard_normal(w.size))
        cols = render_columns(x, y, w, sigma, (size, size))
        sharp = render_columns(x, y, w, sigma * sharpening, (size, size))
        ang = rng.uniform(0, 2 * math.pi)
        ramp = xx * math.cos(ang) + yy * math.sin(ang)
        bg = rng.uniform(*background) * (0.5 + 0.5 * ramp + 0.25 * _smooth(rng, (size, size), size / 5))
        bg = np.clip(bg, 0.0, None)
        clean = cols + bg
        d = math.exp(rng.uniform(math.log(dose[0]), math.log(dose[1])))
        noisy = rng.poisson(np.clip(clean, 0, None) * d) / d
        noisy = noisy + rng.uniform(*scan_noise) * rng.standard_normal(clean.shape)
        out["noisy"][i], out["clean"][i] = noisy, clean
        out["background_free"][i], out["high_res"][i] = cols, sharp
        doses[i] = d
    out["dose"] = doses
    return out


def task_data(task: str, n: int, size: int = 128, *, seed: int = 0, index_base: int = 0, **options):
    """``(inputs, targets)`` for a fine-tuning task: ``segment`` (HRTEM images, uint8 masks),
    ``denoise`` / ``background`` / ``superres`` (noisy ADF-STEM images, their targets)."""
    if task not in TASK_TARGETS:
        raise InputError(f"unknown task {task!r}; known: {', '.join(TASK_TARGETS)}")
    if task == "segment":
        return hrtem_nanoparticles(n, size, seed=seed, index_base=index_base, **options)
    d = stem_restoration_set(n, size, seed=seed, index_base=index_base, **options)
    return d["noisy"], d[TASK_TARGETS[task]]
