"""A synthetic 4D-STEM scan with known phases (tests, ``bench/cluster_4dstem.py``).

The scan is cut into ``n_phases`` domains (Voronoi cells of random seed points, so a phase
occupies contiguous regions as grains do); every phase has its own diffraction pattern (a
central beam and a 2D lattice of Bragg discs with a phase-specific rotation and spacing); each
probe position gets its phase's pattern times a thickness factor (0.95-1.05, smooth over the
scan) plus Gaussian noise of standard deviation ``noise * sqrt(pattern + 1)`` (approximate
counting noise). Everything is float32 in ``(Ny, Nx, ky, kx)`` layout.
"""

from __future__ import annotations

import numpy as np

__all__ = ["phase_patterns", "stem4d_phases"]


def phase_patterns(n_phases: int, ky: int, kx: int, *, seed: int = 0, peak: float = 100.0) -> np.ndarray:
    """``(n_phases, ky, kx)`` float32 diffraction patterns (counts): central beam + Bragg discs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:ky, 0:kx].astype(np.float64)
    cy, cx = (ky - 1) / 2, (kx - 1) / 2
    r_disc = max(1.0, 0.035 * min(ky, kx))
    out = np.empty((n_phases, ky, kx), np.float32)
    for p in range(n_phases):
        img = peak * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (2 * r_disc) ** 2))
        theta = rng.uniform(0, np.pi)
        a = rng.uniform(0.14, 0.26) * min(ky, kx)
        b = a * rng.uniform(0.8, 1.2)
        gamma = rng.uniform(np.pi / 3, 2 * np.pi / 3)
        u = np.array([np.cos(theta), np.sin(theta)]) * a
        v = np.array([np.cos(theta + gamma), np.sin(theta + gamma)]) * b
        for i in range(-3, 4):
            for j in range(-3, 4):
                if i == 0 and j == 0:
                    continue
                py, px = cy + i * u[0] + j * v[0], cx + i * u[1] + j * v[1]
                if not (0 <= py < ky and 0 <= px < kx):
                    continue
                amp = peak * 0.4 * rng.uniform(0.3, 1.0) * np.exp(-0.15 * (i * i + j * j))
                img += amp * np.exp(-((yy - py) ** 2 + (xx - px) ** 2) / (2 * r_disc ** 2))
        out[p] = img + 0.5
    return out


def stem4d_phases(ny: int, nx: int, ky: int, kx: int, n_phases: int = 6, *, noise: float = 1.0, seed: int = 0,
                  out=None):
    """A scan ``(ny, nx, ky, kx)`` float32 and its phase map ``(ny, nx)`` int64.

    ``out``: an array (or a writable h5py dataset) of that shape to fill scan line by scan line
    (memory: one line of patterns), e.g. to write a scan larger than memory.

    Returns
    -------
    data : ndarray (ny, nx, ky, kx) float32 (``out`` when given)
    phase_map : ndarray (ny, nx) int64
    patterns : ndarray (n_phases, ky, kx) float32 (noise-free phase patterns)
    """
    rng = np.random.default_rng(seed)
    patterns = phase_patterns(n_phases, ky, kx, seed=seed + 1)
    seeds = rng.uniform(0, 1, (max(n_phases * 2, n_phases), 2)) * [ny, nx]
    owner = np.concatenate([np.arange(n_phases), rng.integers(0, n_phases, len(seeds) - n_phases)])
    yy, xx = np.mgrid[0:ny, 0:nx]
    d2 = (yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2
    phase_map = owner[np.argmin(d2, axis=-1)].astype(np.int64)
    thick = (1.0 + 0.05 * np.sin(2 * np.pi * yy / max(ny, 2) * rng.uniform(0.5, 1.5))
             * np.cos(2 * np.pi * xx / max(nx, 2) * rng.uniform(0.5, 1.5))).astype(np.float32)
    sigma = (noise * np.sqrt(patterns + 1.0)).astype(np.float32)
    if out is None:
        out = np.empty((ny, nx, ky, kx), np.float32)
    line = np.empty((nx, ky, kx), np.float32)
    for y in range(ny):
        ph = phase_map[y]
        rng.standard_normal((nx, ky, kx), dtype=np.float32, out=line)
        line *= sigma[ph]
        line += patterns[ph] * thick[y][:, None, None]
        out[y] = line
    return out, phase_map, patterns
