"""The complex-object real-space kernel (fastem.kernels.phase_complex): every engine against the
float64 NumPy definition (odd and even sizes, 2D and 3D, batched and not, shared and per-run
supports, every mode, with and without the phase-range constraint); the projection against a
brute-force nearest point; the real kernel as the width-0 special case; Moreau's decomposition."""

import math

import numpy as np
import pytest

from fastem import backend
from fastem.errors import InputError
from fastem.kernels import phase_complex_update, phase_real_update
from fastem.kernels import phase_complex as pc
from fastem.kernels import phase_real as pr

from conftest import random_complex, to_numpy

MODES = [pr.MODE_GPS, pr.MODE_ER, pr.MODE_HIO, pr.MODE_OSS_SPLIT, pr.MODE_OSS_MERGE, pc.MODE_GPS_FEEDBACK]
NEEDS_U = (pr.MODE_HIO, pr.MODE_OSS_SPLIT, pr.MODE_OSS_MERGE)
WRITES_IMAGE = (pr.MODE_ER, pr.MODE_HIO, pr.MODE_OSS_SPLIT)
GRIDS = [(7, 9), (16, 16), (3, 5, 6)]
RANGES = [None, (-0.7, 0.9), (0.0, 0.0), (0.3, 0.3 + math.pi)]
RANGE_IDS = ["none", "sector", "zero", "halfplane"]
TOL = {np.complex64: 1e-5, np.complex128: 1e-12}
REAL = {np.complex64: np.float32, np.complex128: np.float64}
SENTINEL = 7.0 - 3.0j


def _inputs(rng, grid, runs, per_run):
    """buf, wsup (-W inside, +W outside), u, image (sentinel); ``runs=None``: unbatched."""
    shape = grid if runs is None else (runs,) + grid
    wgrid = shape if per_run else grid
    buf = random_complex(rng, shape)
    buf.flat[::5] = buf.flat[::5].real      # some exactly real pixels (b = 0: the zero-width sector's edge case)
    wsup = rng.uniform(0.3, 1.0, wgrid) * np.where(rng.random(wgrid) < 0.5, -1.0, 1.0)
    u = random_complex(rng, shape)
    return buf, wsup, u, np.full(shape, SENTINEL)


def _run(engine, mode, arrays, dtype, with_u, with_image, phase_range, beta=0.9, xp=np):
    """Cast ``arrays`` to ``dtype`` (on ``xp``), run one engine, return host copies."""
    buf, wsup, u, img = arrays
    b = xp.asarray(buf.astype(dtype))
    w = xp.asarray(wsup.astype(REAL[dtype]))
    uu = xp.asarray(u.astype(dtype))
    im = xp.asarray(img.astype(dtype))
    phase_complex_update(mode, b, w, uu if with_u else None, im if with_image else None, beta=beta,
                         phase_range=phase_range, engine=engine)
    return to_numpy(b), to_numpy(uu), to_numpy(im)


def _rounded(arrays, dtype):
    """The inputs as ``dtype`` sees them, back in float64 (the oracle's input)."""
    buf, wsup, u, img = arrays
    return (buf.astype(dtype).astype(np.complex128), wsup.astype(REAL[dtype]).astype(np.float64),
            u.astype(dtype).astype(np.complex128), img)


def _check_against_oracle(engine, mode, arrays, dtype, with_image, phase_range, xp=np):
    with_u = mode in NEEDS_U
    ref = _run("numpy", mode, _rounded(arrays, dtype), np.complex128, with_u, with_image, phase_range)
    got = _run(engine, mode, arrays, dtype, with_u, with_image, phase_range, xp=xp)
    tol = TOL[dtype]
    for name, g, r in zip(("buf", "u", "image"), got, ref):
        np.testing.assert_allclose(g, r, rtol=tol, atol=tol * max(1.0, np.abs(r).max()), err_msg=f"{engine}: {name}")
    if with_image and mode in WRITES_IMAGE:
        assert not np.any(ref[2] == SENTINEL)  # the image was written
    else:
        assert np.all(got[2] == SENTINEL)      # ... and only then


@pytest.mark.parametrize("grid", GRIDS, ids=lambda g: "x".join(map(str, g)))
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128], ids=["c64", "c128"])
@pytest.mark.parametrize("phase_range", RANGES, ids=RANGE_IDS)
@pytest.mark.parametrize("runs,per_run,with_image", [(2, False, False), (2, False, True), (3, True, True),
                                                     (None, False, True)],
                         ids=["batched", "batched-image", "per-run-image", "unbatched-image"])
def test_complex_kernel_matches_float64_reference(rng, grid, mode, dtype, phase_range, runs, per_run, with_image):
    arrays = _inputs(rng, grid, runs, per_run)
    for engine in ("numba", "numpy"):
        _check_against_oracle(engine, mode, arrays, dtype, with_image, phase_range)


def _sector_nearest(v, lo, hi):
    """Nearest point of the sector {r e^{i theta}: r >= 0, lo <= theta <= hi} by angles (arctan2):
    ``v`` itself when its angle is in range, else the nearer of the projections onto the two rays."""
    c, h = 0.5 * (lo + hi), 0.5 * (hi - lo)
    rel = np.arctan2((v * np.exp(-1j * c)).imag, (v * np.exp(-1j * c)).real)   # in (-pi, pi]
    inside = (np.abs(rel) <= h) & (np.abs(v) > 0)
    cands = []
    for theta in (lo, hi):
        d = np.exp(1j * theta)
        t = np.maximum((v * np.conj(d)).real, 0)
        cands.append(t * d)
    ray = np.where(np.abs(v - cands[0]) <= np.abs(v - cands[1]), cands[0], cands[1])
    return np.where(inside | (v == 0), v, ray)


@pytest.mark.parametrize("phase_range", [(-0.7, 0.9), (0.0, 0.0), (0.3, 0.3 + math.pi), (2.5, 3.6), (-3.0, -2.2),
                                         (1.0, 1.0)])
def test_projection_is_the_nearest_point_of_the_sector(rng, phase_range):
    lo, hi = phase_range
    v = random_complex(rng, 4000) * rng.uniform(0.1, 3.0, 4000)
    v[:4] = [2.0, -2.0, 2j, -2j]            # on the axes (b = 0 included: sgn(0) = +1)
    v[4:6] = 1.5 * np.exp(1j * np.array([lo, hi]))   # on the boundary rays
    p = pc.project_complex(v, True, phase_range)
    expect = _sector_nearest(v, lo, hi)
    np.testing.assert_allclose(p, expect, rtol=1e-12, atol=1e-12)
    # brute force on a few points: no sampled point of the sector is nearer than P(v)
    r = np.linspace(0.0, 6.0, 301)
    th = np.linspace(lo, hi, 201)
    samples = (r[:, None] * np.exp(1j * th[None, :])).ravel()
    small = np.flatnonzero(np.abs(v) < 5)[::60]     # |P(v)| <= |v| < 5: inside the sampled disc
    for k in small:
        best = np.abs(samples - v[k]).min()
        assert np.abs(p[k] - v[k]) <= best + 1e-12
        assert np.abs(p[k] - v[k]) >= best - 0.05   # the sampling step bounds the gap
    # P(v) lies in the sector, outside the support it is 0, and it is idempotent
    ang = np.angle(p * np.exp(-0.5j * (lo + hi)))
    big = np.abs(p) > 1e-9
    assert np.all(np.abs(ang[big]) <= 0.5 * (hi - lo) + 1e-9)
    np.testing.assert_allclose(pc.project_complex(p, True, phase_range), p, rtol=1e-12, atol=1e-14)
    assert np.all(pc.project_complex(v, False, phase_range) == 0)


def test_projection_without_range_is_the_support_projection(rng):
    v = random_complex(rng, (5, 6))
    inside = rng.random((5, 6)) < 0.5
    np.testing.assert_array_equal(pc.project_complex(v, inside, None), np.where(inside, v, 0))


@pytest.mark.parametrize("engine", ["numpy", "numba"])
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128], ids=["c64", "c128"])
@pytest.mark.parametrize("mode", [pr.MODE_ER, pr.MODE_GPS])
def test_zero_width_range_is_the_real_kernel(rng, engine, dtype, mode):
    grid = (7, 9)
    buf = random_complex(rng, (2,) + grid, dtype)
    buf[0, 0, :3] = [-1.5, 2.0, 0.0]          # exactly real values (b = 0): negative, positive, zero
    wsup = (rng.uniform(0.3, 1.0, grid) * np.where(rng.random(grid) < 0.6, -1.0, 1.0)).astype(REAL[dtype])
    wsup[0, :3] = -1.0
    b_c, b_r = buf.copy(), buf.copy()
    img_c = np.full(buf.shape, SENTINEL, dtype)
    img_r = np.full(buf.shape, 7.0, REAL[dtype])
    phase_complex_update(mode, b_c, wsup, None, img_c, phase_range=(0.0, 0.0), engine=engine)
    phase_real_update(mode, b_r, wsup, None, img_r, engine=engine)
    tol = 1e-6 if dtype == np.complex64 else 1e-15
    np.testing.assert_allclose(b_c, b_r, rtol=tol, atol=tol)
    if mode == pr.MODE_ER:
        np.testing.assert_allclose(img_c.real, img_r, rtol=tol, atol=tol)
        assert np.all(img_c.imag == 0)
        assert b_c[0, 0, 0] == 0 and b_c[0, 0, 1] == 2.0
    else:
        assert b_c[0, 0, 0] == -1.5 and b_c[0, 0, 1] == 0


@pytest.mark.parametrize("engine", ["numpy", "numba"])
@pytest.mark.parametrize("phase_range", RANGES + [(2.5, 3.6)], ids=RANGE_IDS + ["sector2"])
def test_gps_is_the_moreau_complement(rng, engine, phase_range):
    """With W = 1, GPS gives v - P(v): P(v) + GPS(v) = v, the two are orthogonal, GPS(v) lies in the
    polar cone (Re <GPS(v), k> <= 0 for every k of the set) and is 0 exactly where v is in the set."""
    grid = (9, 8)
    v = random_complex(rng, (2,) + grid)
    inside = rng.random(grid) < 0.6
    wsup = np.where(inside, -1.0, 1.0)
    g = v.copy()
    phase_complex_update(pr.MODE_GPS, g, wsup, phase_range=phase_range, engine=engine)
    p = v.copy()
    phase_complex_update(pr.MODE_ER, p, wsup, phase_range=phase_range, engine=engine)
    np.testing.assert_allclose(p, pc.project_complex(v, inside, phase_range), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(p + g, v, rtol=1e-13, atol=1e-14)
    ins = np.broadcast_to(inside, v.shape)
    np.testing.assert_allclose((np.conj(p) * g).real[ins], 0, atol=1e-12)
    assert np.all(g[~ins] == v[~ins])
    if phase_range is None:
        assert np.all(g[ins] == 0)
    else:
        for theta in phase_range:      # the rays span the sector: the polar cone is where both are <= 0
            assert np.all((np.conj(g) * np.exp(1j * theta)).real[ins] <= 1e-12)
        good = pc._in_set(v, ins, phase_range)
        assert np.all(g[good] == 0) and np.all(np.abs(g[ins & ~good]) > 0)


@pytest.mark.parametrize("engine", ["numpy", "numba"])
@pytest.mark.parametrize("phase_range", RANGES + [(2.5, 3.6)], ids=RANGE_IDS + ["sector2"])
def test_gps_feedback_dual_against_its_definition(rng, engine, phase_range):
    """The feedback dual, written per pixel with angles (arctan2, independent of the kernels'
    rotation test): 0 inside S where the phase of v is in [lo, hi], W v everywhere else; equal to
    the polar projection (MODE_GPS) except inside S outside the sector, and everywhere without a range."""
    grid = (9, 8)
    v = random_complex(rng, (2,) + grid)
    inside = rng.random(grid) < 0.6
    weight = rng.uniform(0.3, 1.0, grid)
    wsup = np.where(inside, -weight, weight)
    g = v.copy()
    phase_complex_update(pc.MODE_GPS_FEEDBACK, g, wsup, phase_range=phase_range, engine=engine)
    ins = np.broadcast_to(inside, v.shape)
    if phase_range is None:
        in_sector = np.ones(v.shape, bool)
    else:
        lo, hi = phase_range
        c, h = 0.5 * (lo + hi), 0.5 * (hi - lo)
        rel = np.angle(v * np.exp(-1j * c))
        in_sector = np.abs(rel) <= h + 1e-12
    expect = np.where(ins & in_sector, 0, weight * v)
    np.testing.assert_allclose(g, expect, rtol=1e-13, atol=1e-14)
    polar = v.copy()
    phase_complex_update(pr.MODE_GPS, polar, wsup, phase_range=phase_range, engine=engine)
    same = ~ins | in_sector
    np.testing.assert_allclose(g[same], polar[same], rtol=1e-13, atol=1e-14)
    if phase_range is not None:
        differ = ins & ~in_sector
        assert differ.sum() > 10
        # where they differ, the feedback keeps v's component along the sector that the polar drops
        assert np.all(np.abs(g[differ]) >= np.abs(polar[differ]) - 1e-12)
        assert np.any(np.abs(g[differ]) > np.abs(polar[differ]) + 1e-3)


@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_bound_update_writes_the_image_only_when_asked(rng, engine):
    buf, wsup, u, img = _inputs(rng, (6, 7), 2, False)
    img = img.astype(np.complex128)
    update = pc.bind_phase_complex_update(pr.MODE_HIO, buf, wsup, u, img, beta=0.8, phase_range=(-0.7, 0.9),
                                          engine=engine)
    update(False)
    assert np.all(img == SENTINEL)
    x = buf.copy()
    update(True)
    np.testing.assert_allclose(img, pc.project_complex(x, wsup < 0, (-0.7, 0.9)), rtol=1e-13, atol=1e-14)


def test_bad_input(rng):
    z = random_complex(rng, (1, 4, 4), np.complex64)
    w = -np.ones((4, 4), np.float32)
    with pytest.raises(InputError, match="needs the complex iterate u"):
        phase_complex_update(pr.MODE_HIO, z, w)
    with pytest.raises(InputError, match="u must be complex64"):
        phase_complex_update(pr.MODE_HIO, z, w, z.real.copy())
    with pytest.raises(InputError, match="image must be complex64"):
        phase_complex_update(pr.MODE_ER, z, w, None, z.real.copy())
    with pytest.raises(InputError, match="u must be complex64"):
        phase_complex_update(pr.MODE_OSS_MERGE, z, w, z.astype(np.complex128))
    with pytest.raises(InputError, match="wsup must be float32"):
        phase_complex_update(pr.MODE_ER, z, w.astype(np.float64))
    with pytest.raises(InputError, match="complex64 or complex128"):
        phase_complex_update(pr.MODE_ER, z.real.copy(), w)
    with pytest.raises(InputError, match="unknown mode"):
        phase_complex_update(9, z, w)
    for bad, what in [((0.0, 3.2), "width"), ((0.5, -0.5), "lo <= hi"), ((float("nan"), 1.0), "finite"),
                      ((0.0, float("inf")), "finite"), ((1.0,), "two numbers"), ("ab", "two numbers"),
                      (1.0, "two numbers")]:
        with pytest.raises(InputError, match=f"phase_range.*{what}"):
            phase_complex_update(pr.MODE_ER, z, w, phase_range=bad)
    phase_complex_update(pr.MODE_ER, z, w, phase_range=(0.0, math.pi))   # width pi exactly is allowed
    with pytest.raises(ValueError, match="GPU"):
        phase_complex_update(pr.MODE_GPS, z, w, engine="cuda")


# ---- Numba CUDA kernel under the simulator ------------------------------------------------------
@pytest.mark.cudasim
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("phase_range", RANGES, ids=RANGE_IDS)
def test_complex_kernel_in_simulator(rng, mode, phase_range):
    grid = (3, 5)
    for dtype, runs, per_run, with_image in [(np.complex128, 2, False, True), (np.complex128, 2, True, True),
                                             (np.complex128, 2, False, False), (np.complex64, None, False, True)]:
        _check_against_oracle("numba-cuda", mode, _inputs(rng, grid, runs, per_run), dtype, with_image, phase_range)


# ---- CUDA C and Numba CUDA on a real GPU ----------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("engine", ["cuda", "numba-cuda"])
@pytest.mark.parametrize("grid", [(33, 20), (9, 10, 11)], ids=["33x20", "9x10x11"])
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128], ids=["c64", "c128"])
def test_gpu_kernels_match_reference(rng, engine, grid, dtype):
    cp = backend.Device("cuda").xp
    for phase_range in RANGES:
        for mode in MODES:
            for runs, per_run, with_image in [(2, False, True), (3, True, True), (None, False, False)]:
                _check_against_oracle(engine, mode, _inputs(rng, grid, runs, per_run), dtype, with_image,
                                      phase_range, xp=cp)
