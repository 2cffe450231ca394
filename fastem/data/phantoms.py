"""Deterministic phantoms: vesicle-like objects (2D / 3D), a 3D cell section with fine detail and the
3D Shepp-Logan head.

All are float64, non-negative, stored with axes ``(y, x)`` / ``(z, y, x)`` and centred on index
``n // 2`` (the ``fastem.geometry`` convention).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import InputError

__all__ = ["vesicle_2d", "vesicle_3d", "shepp_logan_3d", "SHEPP_LOGAN_3D_MODIFIED", "cell_3d", "complex_particle"]


def _smoothstep(t):
    """0 for t <= 0, 1 for t >= 1, cubic Hermite in between (C1, compact)."""
    s = np.clip(t, 0.0, 1.0)
    return s * s * (3.0 - 2.0 * s)


def _inside(signed_distance, width):
    """Soft indicator of ``signed_distance < 0`` (inside), exactly 0 at distance >= ``width / 2``."""
    return _smoothstep(0.5 - signed_distance / width)


def _random_rotation(rng, ndim):
    q, r = np.linalg.qr(rng.standard_normal((ndim, ndim)))
    return q * np.sign(np.diag(r))


def _ellipsoid_distance(coords, centre, semi_axes, rotation):
    """Approximate signed distance (pixels) to an ellipsoid: ``(rho - 1) * mean semi-axis``."""
    rel = np.stack([c - c0 for c, c0 in zip(coords, centre)], axis=-1) @ rotation
    rho = np.sqrt(np.sum((rel / semi_axes) ** 2, axis=-1))
    return (rho - 1.0) * float(np.mean(semi_axes))


def _vesicle_grid(n: int, ndim: int, seed, support_fraction: float):
    """Checked arguments -> ``(rng, centred coordinates, r_max, edge)`` shared by the vesicles."""
    if n < 8:
        raise InputError(f"vesicle: n must be >= 8, got {n}")
    if not 0.1 <= support_fraction <= 1.0:
        raise InputError(f"vesicle: support_fraction must lie in [0.1, 1], got {support_fraction}")
    rng = np.random.default_rng(seed)
    axis = np.arange(n, dtype=np.float64) - n // 2
    coords = np.meshgrid(*([axis] * ndim), indexing="ij")  # (z,) y, x
    r_max = support_fraction * n / 2.0 - 0.5       # nothing at or beyond this radius
    edge = max(1.5, 0.04 * r_max)                  # width of the soft edges (pixels)
    return rng, coords, r_max, edge


def _vesicle(n: int, ndim: int, seed, support_fraction: float) -> np.ndarray:
    rng, coords, r_max, edge = _vesicle_grid(n, ndim, seed, support_fraction)
    r_out = r_max - edge / 2.0                     # largest semi-axis of the outer boundary
    semi = r_out * rng.uniform(0.86, 1.0, ndim)
    semi[rng.integers(ndim)] = r_out               # touch the support limit along one axis
    rot = _random_rotation(rng, ndim)
    centre = np.zeros(ndim)
    d_out = _ellipsoid_distance(coords, centre, semi, rot)
    outer = _inside(d_out, edge)

    # membrane: a shell of thickness ~8 % of the radius (>= 2.5 px)
    thickness = max(2.5, 0.08 * r_out)
    d_in = _ellipsoid_distance(coords, centre, semi - thickness, rot)
    lumen = _inside(d_in, edge)
    membrane = outer - outer * lumen

    # lumen texture: smooth random density between ~0.1 and ~0.4
    noise = ndimage.gaussian_filter(rng.standard_normal((n,) * ndim), sigma=max(1.5, 0.08 * r_out))
    noise /= np.abs(noise).max() + 1e-30
    texture = 0.25 + 0.15 * noise

    # dense blobs inside the lumen
    blobs = np.zeros((n,) * ndim)
    for _ in range(int(rng.integers(4, 7))):
        direction = rng.standard_normal(ndim)
        direction /= np.linalg.norm(direction)
        pos = direction * rng.uniform(0.0, 0.6) * r_out
        sigma = rng.uniform(0.05, 0.12) * r_out
        r2 = sum((c - p) ** 2 for c, p in zip(coords, pos))
        blobs += rng.uniform(0.3, 0.8) * np.exp(-0.5 * r2 / sigma**2)

    # a smaller inner vesicle (a second shell)
    direction = rng.standard_normal(ndim)
    direction /= np.linalg.norm(direction)
    r_small = rng.uniform(0.22, 0.32) * r_out
    c_small = direction * rng.uniform(0.2, 0.45) * r_out
    semi_small = r_small * rng.uniform(0.85, 1.0, ndim)
    rot_small = _random_rotation(rng, ndim)
    small_out = _inside(_ellipsoid_distance(coords, c_small, semi_small, rot_small), edge)
    small_in = _inside(_ellipsoid_distance(coords, c_small, semi_small - max(2.0, 0.3 * r_small), rot_small), edge)
    small_shell = small_out - small_out * small_in

    obj = membrane + lumen * (texture + blobs + 0.6 * small_shell)
    obj *= outer
    np.maximum(obj, 0.0, out=obj)
    return obj


def _fourier_outline(rng, orders, amplitude, exponent=1.0):
    """Radius profile ``1 + sum_m a_m cos(m theta - phi_m)`` as coefficient arrays.

    ``|a_m| = amplitude * m^-exponent * U(0.5, 1)``, ``phi_m`` uniform. Every order is present,
    so odd orders (which break the centre of symmetry) are never missing.
    """
    orders = np.asarray(orders, dtype=np.float64)
    amps = amplitude * orders ** (-exponent) * rng.uniform(0.5, 1.0, orders.size)
    phases = rng.uniform(0.0, 2.0 * np.pi, orders.size)
    return orders, amps, phases


def _outline_radius(theta, orders, amps, phases):
    """``(r(theta) / R0, d r / d theta / R0)`` of a Fourier outline."""
    arg = np.multiply.outer(theta, orders) - phases
    return 1.0 + np.sum(amps * np.cos(arg), axis=-1), -np.sum(amps * orders * np.sin(arg), axis=-1)


def _outline_distance(y, x, centre, radius0, outline, rotation=0.0):
    """Approximate signed distance (pixels, < 0 inside) to the star-shaped curve
    ``rho = radius0 * r(theta)``: the radial gap times the cosine of the angle between the
    radius and the curve normal, ``(rho - R) * R / sqrt(R^2 + R'^2)`` (exact on a circle,
    accurate within a few pixels of the curve for gentle undulations)."""
    dy, dx = y - centre[0], x - centre[1]
    rho = np.hypot(dy, dx)
    theta = np.arctan2(dy, dx) - rotation
    r, dr = _outline_radius(theta, *outline)
    big_r, big_dr = radius0 * r, radius0 * dr
    return (rho - big_r) * big_r / np.sqrt(big_r**2 + big_dr**2)


def _outline_extent(outline, samples=2048):
    """``(max r, min r, min cos)`` of an outline over theta (``cos``: radial vs. normal)."""
    theta = np.linspace(0.0, 2.0 * np.pi, samples, endpoint=False)
    r, dr = _outline_radius(theta, *outline)
    return float(r.max()), float(r.min()), float(np.min(r / np.sqrt(r**2 + dr**2)))


def _random_field(rng, shape, sigma):
    """Gaussian random field: white noise low-passed by a Gaussian of ``sigma`` px, unit std."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=sigma, mode="wrap")
    return f / (f.std() + 1e-30)


def _vesicle_2d_irregular(n: int, seed, support_fraction: float) -> np.ndarray:
    """The 2D vesicle model (see :func:`vesicle_2d`)."""
    rng, (y, x), r_max, edge = _vesicle_grid(n, 2, seed, support_fraction)

    # outer membrane: irregular outline, orders 2..6 with amplitudes ~1/m, ~6-9 % rms of the radius
    outline = _fourier_outline(rng, np.arange(2, 7), amplitude=rng.uniform(0.16, 0.24))
    r_hi, r_lo, cos_min = _outline_extent(outline)
    radius0 = (r_max - 0.5 * edge / cos_min) / r_hi  # the soft edge stays inside r_max
    d_out = _outline_distance(y, x, (0.0, 0.0), radius0, outline)
    outer = _inside(d_out, edge)
    outer[np.hypot(y, x) >= r_max] = 0.0
    thickness = max(2.5, 0.07 * radius0 * r_lo)    # bilayer + coat, ~7 % of the radius
    lumen = _inside(d_out + thickness, edge)
    # membrane density varies slowly along the contour (coat proteins): 0.9..1.1
    along = 1.0 + 0.1 * np.tanh(_random_field(rng, (n, n), max(2.0, 0.2 * radius0)))
    membrane = (outer - outer * lumen) * along

    # lumen: multi-scale texture (coarse, medium and pixel-scale granularity) around 0.2
    texture = 0.2 + 0.05 * _random_field(rng, (n, n), max(2.0, 0.15 * radius0)) \
        + 0.03 * _random_field(rng, (n, n), max(1.0, 0.05 * radius0)) + 0.02 * _random_field(rng, (n, n), 0.7)
    np.maximum(texture, 0.0, out=texture)
    inner_free = radius0 * r_lo - thickness - edge  # radius of the disc that is surely lumen
    content = np.zeros((n, n))

    # internal vesicles (multivesicular body): 1-3, each with its own outline, membrane, lumen
    placed: list[tuple[float, float, float]] = []
    for _ in range(int(rng.integers(1, 4))):
        r_small = rng.uniform(0.14, 0.3) * radius0
        small_outline = _fourier_outline(rng, np.arange(2, 5), amplitude=rng.uniform(0.08, 0.14))
        s_hi, s_lo, _ = _outline_extent(small_outline)
        reach = r_small * s_hi + edge
        for _try in range(20):
            dist = rng.uniform(0.0, max(0.0, inner_free - reach))
            ang = rng.uniform(0.0, 2.0 * np.pi)
            c = (dist * np.sin(ang), dist * np.cos(ang))
            if inner_free - reach > 0 and all(np.hypot(c[0] - p[0], c[1] - p[1]) > reach + p[2] for p in placed):
                break
        else:
            continue
        placed.append((c[0], c[1], reach))
        d_small = _outline_distance(y, x, c, r_small, small_outline)
        s_out = _inside(d_small, edge)
        s_in = _inside(d_small + max(1.5, 0.2 * r_small * s_lo), edge)
        content += rng.uniform(0.55, 0.85) * (s_out - s_out * s_in) + rng.uniform(-0.15, 0.25) * s_in

    # dense granules (protein aggregates), sizes log-uniform between 1 px and 0.1 radius; their
    # number, like that of the fine particles, scales with the lumen area (~8 and ~22 per 2000 px^2)
    area = np.pi * max(inner_free, 0.0) ** 2 / 2000.0
    for _ in range(int(round(rng.uniform(6, 11) * area))):
        dist, ang = rng.uniform(0.0, 0.85) * inner_free, rng.uniform(0.0, 2.0 * np.pi)
        sigma = np.exp(rng.uniform(np.log(1.0), np.log(max(1.1, 0.1 * radius0))))
        r2 = (y - dist * np.sin(ang)) ** 2 + (x - dist * np.cos(ang)) ** 2
        content += rng.uniform(0.2, 0.6) * np.exp(-0.5 * r2 / sigma**2)

    # fine features: small dense particles (ribosome-like), about one pixel across
    for _ in range(int(round(rng.uniform(15, 29) * area))):
        dist, ang = rng.uniform(0.0, 0.95) * inner_free, rng.uniform(0.0, 2.0 * np.pi)
        r2 = (y - dist * np.sin(ang)) ** 2 + (x - dist * np.cos(ang)) ** 2
        content += rng.uniform(0.25, 0.5) * np.exp(-0.5 * r2 / rng.uniform(0.5, 0.8) ** 2)

    # packing: the density of condensed matter saturates (soft cap ~1 above the lumen)
    content = np.tanh(content)
    obj = membrane + lumen * (texture + content)
    obj *= outer
    np.maximum(obj, 0.0, out=obj)
    obj[obj < 1e-6] = 0.0  # compact support: no far Gaussian tails
    return obj


def vesicle_2d(n: int = 128, *, seed=0, support_fraction: float = 0.5) -> np.ndarray:
    """A 2D vesicle-like object with an irregular outline and multi-scale internal structure.

    Model (physical motivation in brackets):

    * outer membrane: a band ~7 % of the radius thick (lipid bilayer plus coat, seen edge-on in
      projection) along a star-shaped outline ``R0 (1 + sum_{m=2}^{6} a_m cos(m theta - phi_m))``
      with ``|a_m| = A m^-1 U(0.5, 1)``, ``A`` in [0.16, 0.24] and random phases: 6-9 % rms
      deviation from a circle [real vesicles on a support are deformed by adsorption, osmotic
      stress and drying, never exact ellipses; thermal flicker alone (mean square mode
      amplitude ~ m^-3) would leave the odd modes below a pixel at this size, i.e. invisible to
      the measurement]. Every order is present, so the outline -- and the support -- has no
      centre of symmetry (the odd modes move the rim by 1-3 px at n = 128). The membrane
      density varies by +-10 % along the contour;
    * lumen: density ~0.2 with a multi-scale random texture (correlation lengths ~15 % and ~5 %
      of the radius, and ~1 px);
    * 1-3 internal vesicles (multivesicular bodies) with their own irregular outlines, membranes
      and lumen densities;
    * dense granules (Gaussian, widths 1 px to 10 % of the radius; ~8 per 2000 px^2 of lumen)
      and ~1 px dense particles (~22 per 2000 px^2: fine features that carry the high spatial
      frequencies); overlapping content saturates softly (``tanh``) below ~1.

    Parameters
    ----------
    n : int
        Array side (pixels).
    seed : int or None
        Seed for ``numpy.random.default_rng``; the same seed gives the same object.
    support_fraction : float
        The object fits in a centred disc of diameter ``support_fraction * n`` pixels, so its
        extent is at most that along every axis (default 0.5: oversampling ratio >= 4 in area,
        as phase retrieval needs).

    Returns
    -------
    ndarray, float64, (n, n)
        Real, non-negative, exactly zero outside its compact support, values ~0-1.5
        (arbitrary density units), smooth edges (~2 px), centred on ``(n // 2, n // 2)``.

    Notes
    -----
    Before this model (fastem <= the first phase release) the 2D vesicle was an exact ellipse
    (as :func:`vesicle_3d` still is): its support is centro-symmetric, so phase retrieval
    cannot tell it from its twin ``u(-x)`` and every algorithm stagnates in twin mixtures.
    """
    return _vesicle_2d_irregular(int(n), seed, float(support_fraction))


def complex_particle(n: int = 64, *, ndim: int = 2, seed=0, phase_range=(-1.0, 1.0),
                     support_fraction: float = 0.5) -> np.ndarray:
    """A complex-valued particle for Bragg / phase-object CDI: a textured modulus and a smooth phase.

    Model: the modulus is the vesicle of :func:`vesicle_2d` / :func:`vesicle_3d` (same ``seed``
    and ``support_fraction``), scaled to a maximum of 1; the phase is a smooth random field
    (white noise low-passed by a Gaussian of ``n / 10`` pixels, the slowly varying phase of a
    displacement field ``u . G`` in a strained crystal), mapped linearly onto ``phase_range``
    over the support (its minimum to ``lo``, its maximum to ``hi``).

    Parameters
    ----------
    n : int
        Array side (pixels).
    ndim : {2, 3}
    seed : int or None
    phase_range : (float, float)
        The phases inside the support span exactly ``[lo, hi]`` radians (``hi - lo <= pi`` keeps
        the object inside a phase-range constraint of that width).
    support_fraction : float
        As in :func:`vesicle_2d`.

    Returns
    -------
    ndarray, complex128, ``(n,) * ndim``
        Exactly zero outside its compact support, centred on ``n // 2``.
    """
    if ndim not in (2, 3):
        raise InputError(f"complex_particle: ndim must be 2 or 3, got {ndim!r}")
    lo, hi = (float(v) for v in phase_range)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
        raise InputError(f"complex_particle: phase_range must be two finite numbers lo <= hi, got {phase_range!r}")
    n = int(n)
    mod = vesicle_2d(n, seed=seed, support_fraction=support_fraction) if ndim == 2 else \
        _vesicle(n, 3, seed, float(support_fraction))
    mod = mod / mod.max()
    rng = np.random.default_rng(None if seed is None else [7919, int(seed)])
    field = ndimage.gaussian_filter(rng.standard_normal((n,) * ndim), n / 10.0, mode="wrap")
    inside = mod > 0
    f = field[inside]
    span = float(f.max() - f.min())
    phase = lo + (hi - lo) * (field - f.min()) / (span if span > 0 else 1.0)
    return np.where(inside, mod * np.exp(1j * phase), 0).astype(np.complex128)


def vesicle_3d(n: int = 64, *, seed=0, support_fraction: float = 0.75) -> np.ndarray:
    """A 3D vesicle-like object (hollow shell, textured lumen, blobs, an inner vesicle).

    Parameters
    ----------
    n : int
        Volume side (voxels); the tomography reproduction uses 64.
    seed : int or None
    support_fraction : float
        The object fits in a centred ball of diameter ``support_fraction * n`` voxels (default
        0.75 for tomography; use 0.5 for 3D coherent diffraction).

    Returns
    -------
    ndarray, float64, (n, n, n), axes (z, y, x)
        Non-negative, compact support, centred on ``n // 2``.
    """
    return _vesicle(int(n), 3, seed, float(support_fraction))


#: The modified (high-contrast, Toft) 3D Shepp-Logan: rows ``A, a, b, c, x0, y0, z0, phi, theta, psi``
#: (intensity, semi-axes and centre in units of the half-width, Euler angles in degrees), as in the
#: widely used 3D extension of Kak & Slaney's head phantom (M. Schabel's ``phantom3d``).
SHEPP_LOGAN_3D_MODIFIED = np.array([
    [1.0, 0.6900, 0.920, 0.810, 0.00, 0.0000, 0.00, 0.0, 0.0, 0.0],
    [-0.8, 0.6624, 0.874, 0.780, 0.00, -0.0184, 0.00, 0.0, 0.0, 0.0],
    [-0.2, 0.1100, 0.310, 0.220, 0.22, 0.0000, 0.00, -18.0, 0.0, 10.0],
    [-0.2, 0.1600, 0.410, 0.280, -0.22, 0.0000, 0.00, 18.0, 0.0, 10.0],
    [0.1, 0.2100, 0.250, 0.410, 0.00, 0.3500, -0.15, 0.0, 0.0, 0.0],
    [0.1, 0.0460, 0.046, 0.050, 0.00, 0.1000, 0.25, 0.0, 0.0, 0.0],
    [0.1, 0.0460, 0.046, 0.050, 0.00, -0.1000, 0.25, 0.0, 0.0, 0.0],
    [0.1, 0.0460, 0.023, 0.050, -0.08, -0.6050, 0.00, 0.0, 0.0, 0.0],
    [0.1, 0.0230, 0.023, 0.020, 0.00, -0.6060, 0.00, 0.0, 0.0, 0.0],
    [0.1, 0.0230, 0.046, 0.020, 0.06, -0.6050, 0.00, 0.0, 0.0, 0.0],
])


def _zxz(phi, theta, psi):
    """The z-x-z Euler rotation used by the 3D Shepp-Logan table (angles in degrees)."""
    ph, th, ps = np.deg2rad([phi, theta, psi])
    cph, sph, cth, sth, cps, sps = np.cos(ph), np.sin(ph), np.cos(th), np.sin(th), np.cos(ps), np.sin(ps)
    return np.array([
        [cps * cph - cth * sph * sps, cps * sph + cth * cph * sps, sps * sth],
        [-sps * cph - cth * sph * cps, -sps * sph + cth * cph * cps, cps * sth],
        [sth * sph, -sth * cph, cth],
    ])


def shepp_logan_3d(n: int = 64, *, ellipsoids: np.ndarray | None = None) -> np.ndarray:
    """The modified 3D Shepp-Logan phantom (Toft's high-contrast intensities).

    Uses :data:`SHEPP_LOGAN_3D_MODIFIED` (the 3D extension of Kak & Slaney's head phantom in
    the form popularised by M. Schabel's ``phantom3d``): 10 ellipsoids with intensities
    1, -0.8, -0.2, -0.2, 0.1 x 6, rotated by z-x-z Euler angles; a point ``(x, y, z)`` is inside
    ellipsoid k when ``sum(((R_k r - r0_k) / axes_k)^2) <= 1``.

    Parameters
    ----------
    n : int
        Volume side; coordinates are ``(i - n // 2) / (n / 2)`` on every axis.
    ellipsoids : ndarray (k, 10), optional
        Another table in the same format.

    Returns
    -------
    ndarray, float64, (n, n, n), axes (z, y, x)
        Values in [0, 1] (0 outside the head).
    """
    n = int(n)
    if n < 4:
        raise InputError(f"shepp_logan_3d: n must be >= 4, got {n}")
    table = SHEPP_LOGAN_3D_MODIFIED if ellipsoids is None else np.asarray(ellipsoids, dtype=np.float64)
    axis = (np.arange(n, dtype=np.float64) - n // 2) / (n / 2.0)
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    xyz = np.stack([x.ravel(), y.ravel(), z.ravel()])
    out = np.zeros(n**3)
    for amp, a, b, c, x0, y0, z0, phi, theta, psi in table:
        xp, yp, zp = _zxz(phi, theta, psi) @ xyz
        inside = ((xp - x0) / a) ** 2 + ((yp - y0) / b) ** 2 + ((zp - z0) / c) ** 2 <= 1.0
        out[inside] += amp
    out = out.reshape(n, n, n)
    np.maximum(out, 0.0, out=out)  # round-off (1 - 0.8 - 0.2) must not go negative
    return out


def _segment_distance(coords, p0, p1):
    """Distance (voxels) of every point of ``coords`` (z, y, x grids) to the segment ``p0``-``p1``."""
    d = np.asarray(p1, np.float64) - np.asarray(p0, np.float64)
    length2 = float(d @ d)
    rel = [c - c0 for c, c0 in zip(coords, p0)]
    t = sum(r * di for r, di in zip(rel, d)) / max(length2, 1e-30)
    np.clip(t, 0.0, 1.0, out=t)
    return np.sqrt(sum((r - t * di) ** 2 for r, di in zip(rel, d)))


def cell_3d(n: int = 64, *, seed=0, support_fraction: float = 0.75) -> np.ndarray:
    """A 3D cell-section phantom with fine detail, for tomography benchmarks.

    What a cryo-electron tomogram of a small cell or a thick section holds, at the scale of the
    voxel: features one to three voxels across, which a missing wedge elongates and an
    edge-preserving prior can flatten. Unlike :func:`vesicle_3d` (smooth texture, one thick
    membrane) and :func:`shepp_logan_3d` (large piecewise-constant ellipsoids), much of its
    power lies at high spatial frequencies (above 0.25 cycles/voxel: more than twice the
    vesicle's fraction, ``tests/test_data.py``):

    * cytoplasm: an ellipsoidal body, density 0.3 with +-0.05 smooth texture;
    * plasma membrane: a bilayer, two shells one voxel thick, two voxels apart (density +0.5);
    * 3-6 organelles: vesicles with a one-voxel membrane (+0.5) and a lumen of 0.1-0.3;
    * 6-12 filaments: straight cylinders of radius 0.7-1.2 voxels, random directions (+0.4);
    * 12-30 dense particles (gold fiducials, ribosome-like): balls of radius 0.8-1.6 voxels,
      density 1-1.5.

    The thin features keep their voxel sizes at any ``n`` (the lengths and positions scale with
    ``n``); every edge is soft over one voxel, so the volume is not aliased.

    Parameters
    ----------
    n : int
        Volume side (voxels), >= 16.
    seed : int or None
    support_fraction : float
        The object fits in a centred ball of diameter ``support_fraction * n`` voxels, in [0.3, 1].

    Returns
    -------
    ndarray, float64, (n, n, n), axes (z, y, x)
        Non-negative, 0 outside the cell, centred on ``n // 2``.
    """
    n = int(n)
    if n < 16:
        raise InputError(f"cell_3d: n must be >= 16, got {n}")
    support_fraction = float(support_fraction)
    if not 0.3 <= support_fraction <= 1.0:
        raise InputError(f"cell_3d: support_fraction must lie in [0.3, 1], got {support_fraction}")
    rng = np.random.default_rng(seed)
    axis = np.arange(n, dtype=np.float64) - n // 2
    coords = np.meshgrid(axis, axis, axis, indexing="ij")
    edge = 1.0                                          # soft edges over one voxel
    r_out = support_fraction * n / 2.0 - 1.0            # outer membrane's largest semi-axis
    semi = r_out * rng.uniform(0.8, 1.0, 3)
    semi[rng.integers(3)] = r_out
    rot = _random_rotation(rng, 3)
    centre = np.zeros(3)

    def shell(c, axes, rotation, thickness):
        d = _ellipsoid_distance(coords, c, axes, rotation)
        return _inside(np.abs(d + thickness / 2.0) - thickness / 2.0, edge)

    body = _inside(_ellipsoid_distance(coords, centre, semi - 0.5, rot), edge)
    texture = ndimage.gaussian_filter(rng.standard_normal((n,) * 3), 2.0)
    texture /= np.abs(texture).max() + 1e-30
    obj = body * (0.3 + 0.05 * texture)
    obj += 0.5 * (shell(centre, semi, rot, 1.0) + shell(centre, semi - 2.0, rot, 1.0))   # bilayer

    inner = semi - 4.0                                  # room for features inside the membrane

    def random_point(scale):
        while True:
            u = rng.uniform(-1.0, 1.0, 3)
            if u @ u <= 1.0:
                return rot @ (u * inner * scale)

    free = body.copy()                                  # organelles do not overlap each other
    for _ in range(int(rng.integers(3, 7))):
        r_org = rng.uniform(0.08, 0.16) * r_out + 1.5
        c = random_point(max(0.0, 1.0 - r_org / float(inner.min())))
        axes = r_org * rng.uniform(0.75, 1.0, 3)
        rot_o = _random_rotation(rng, 3)
        lumen = _inside(_ellipsoid_distance(coords, c, axes - 1.0, rot_o), edge) * free
        membrane = shell(c, axes, rot_o, 1.0) * free
        obj += (rng.uniform(0.1, 0.3) - 0.3) * lumen + 0.5 * membrane
        free *= 1.0 - _inside(_ellipsoid_distance(coords, c, axes + 1.0, rot_o), edge)
    for _ in range(int(rng.integers(6, 13))):
        p0, p1 = random_point(1.0), random_point(1.0)
        obj += 0.4 * body * _inside(_segment_distance(coords, p0, p1) - rng.uniform(0.7, 1.2), edge)
    for _ in range(int(rng.integers(12, 31))):
        c = random_point(1.0)
        r = np.sqrt(sum((x - c0) ** 2 for x, c0 in zip(coords, c)))
        obj += rng.uniform(1.0, 1.5) * _inside(r - rng.uniform(0.8, 1.6), edge)
    np.maximum(obj, 0.0, out=obj)
    return obj
