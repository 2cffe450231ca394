"""The phase-retrieval kernels (fastem.kernels.phase_fourier / phase_real / phase_rfactor):
every engine against the float64 NumPy definition, at odd and even sizes, 2D and 3D, batched,
with and without unknown pixels; properties of the magnitude prox and the dual projection."""

import numpy as np
import pytest

from fastem import backend
from fastem.errors import InputError
from fastem.kernels import hermitian_half, phase_fourier_update, phase_real_update, rfactor_half
from fastem.kernels import phase_fourier as pf
from fastem.kernels import phase_real as pr
from fastem.kernels.phase_rfactor import half_spectrum_weights

from conftest import random_complex, to_numpy

GRIDS = [(17, 12), (16, 16), (9, 6, 7), (6, 8, 4)]
TOL = {np.complex64: 2e-5, np.complex128: 1e-12}
REAL = {np.complex64: np.float32, np.complex128: np.float64}


def _data(rng, grid, runs, unknown_fraction):
    z = random_complex(rng, (runs,) + grid)
    y = random_complex(rng, (runs,) + grid)
    bk = np.abs(rng.standard_normal(grid)) + 0.1
    if unknown_fraction:
        bk[rng.random(grid) < unknown_fraction] = -1.0
    filt = rng.uniform(0.2, 1.0, grid)
    return z, y, bk, filt


def _fourier_pair(rng, grid, runs, unknown_fraction, mode, use_filter, dtype, engine, sigma=0.3):
    z, y, bk, filt = _data(rng, grid, runs, unknown_fraction)
    kw = dict(use_filter=use_filter, t=1.3, s=0.7, sigma=sigma, scale=0.37)
    z_ref, y_ref = z.copy(), y.copy()
    phase_fourier_update(mode, z_ref, y_ref, bk, filt, engine="numpy", **kw)
    rdt = REAL[dtype]
    z_t, y_t = z.astype(dtype), y.astype(dtype)
    phase_fourier_update(mode, z_t, y_t, bk.astype(rdt), filt.astype(rdt), engine=engine, **kw)
    return (z_ref, y_ref), (z_t, y_t)


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("unknown_fraction", [0.0, 0.3])
@pytest.mark.parametrize("mode,use_filter", [(pf.MODE_GPS, False), (pf.MODE_GPS, True), (pf.MODE_PROJECT, False),
                                             (pf.MODE_FILTER, True)])
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_fourier_kernel_matches_float64_reference(rng, grid, unknown_fraction, mode, use_filter, dtype):
    (z_ref, y_ref), (z_t, y_t) = _fourier_pair(rng, grid, 3, unknown_fraction, mode, use_filter, dtype, "numba")
    tol = TOL[dtype]
    scale = np.abs(y_ref).max()
    np.testing.assert_allclose(y_t, y_ref, rtol=tol, atol=tol * scale)
    if mode == pf.MODE_GPS:
        np.testing.assert_allclose(z_t, z_ref, rtol=tol, atol=tol * np.abs(z_ref).max())


def test_fourier_reference_is_the_spec(rng):
    """The NumPy engine is eq. 2.14 / 2.28 and step 3 written out."""
    grid = (5, 4)
    z, y, bk, filt = _data(rng, grid, 1, 0.3)
    t, s, sigma, scale = 0.8, 0.9, 0.25, 0.1
    w = z - t * y
    b = np.where(bk >= 0, bk, 0)
    prox = (b * np.exp(1j * np.angle(w)) + sigma / t * w) / (1 + sigma / t)
    z_new = np.where(bk >= 0, prox, w)
    expect_buf = (y + s * (2 * z_new - z)) * scale
    phase_fourier_update(pf.MODE_GPS, z, y, bk, t=t, s=s, sigma=sigma, scale=scale, engine="numpy")
    np.testing.assert_allclose(z, z_new, rtol=1e-14)
    np.testing.assert_allclose(y, expect_buf, rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_prox_with_sigma_zero_returns_measured_magnitudes_and_leaves_unknown_alone(rng, dtype, engine):
    grid = (13, 10)
    z, y, bk, _ = _data(rng, grid, 2, 0.35)
    rdt = REAL[dtype]
    z, y, bk = z.astype(dtype), y.astype(dtype), bk.astype(rdt)
    w = z - dtype(1.0) * y  # t = 1
    phase_fourier_update(pf.MODE_GPS, z, y, bk, t=1.0, s=0.9, sigma=0.0, scale=1.0, engine=engine)
    known = np.broadcast_to(bk >= 0, z.shape)
    mags = np.broadcast_to(bk, z.shape)
    np.testing.assert_allclose(np.abs(z[known]), mags[known], rtol=4 * np.finfo(rdt).eps)
    np.testing.assert_allclose(np.angle(z[known]), np.angle(w[known]), atol=8 * np.finfo(rdt).eps)
    assert np.array_equal(z[~known], w[~known])  # bit for bit: pass-through


@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_prox_phase_of_zero_is_one(engine):
    z = np.zeros((1, 4, 4), np.complex64)
    y = np.zeros_like(z)
    bk = np.full((4, 4), 2.0, np.float32)
    phase_fourier_update(pf.MODE_GPS, z, y, bk, t=1.0, s=0.9, sigma=0.0, engine=engine)
    np.testing.assert_array_equal(z, np.full(z.shape, 2.0 + 0j, np.complex64))


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("mode", [pr.MODE_GPS, pr.MODE_ER, pr.MODE_HIO, pr.MODE_OSS_SPLIT, pr.MODE_OSS_MERGE])
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
@pytest.mark.parametrize("with_image,per_run", [(False, False), (True, False), (True, True)])
def test_real_kernel_matches_float64_reference(rng, grid, mode, dtype, with_image, per_run):
    runs = 2
    buf = random_complex(rng, (runs,) + grid)
    wgrid = (runs,) + grid if per_run else grid  # one support per run (shrink-wrap) or shared
    wsup = rng.uniform(0.3, 1.0, wgrid) * np.where(rng.random(wgrid) < 0.4, -1.0, 1.0)
    u = rng.standard_normal((runs,) + grid)
    img = np.full((runs,) + grid, 7.0)
    needs_u = mode in (pr.MODE_HIO, pr.MODE_OSS_SPLIT, pr.MODE_OSS_MERGE)
    b_ref, u_ref, i_ref = buf.copy(), u.copy(), img.copy()
    phase_real_update(mode, b_ref, wsup, u_ref if needs_u else None, i_ref if with_image else None, beta=0.9,
                      engine="numpy")
    rdt = REAL[dtype]
    b_t, u_t, i_t = buf.astype(dtype), u.astype(rdt), img.astype(rdt)
    phase_real_update(mode, b_t, wsup.astype(rdt), u_t if needs_u else None, i_t if with_image else None, beta=0.9,
                      engine="numba")
    tol = TOL[dtype]
    np.testing.assert_allclose(b_t, b_ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(u_t, u_ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(i_t, i_ref, rtol=tol, atol=tol)
    if with_image and mode in (pr.MODE_ER, pr.MODE_HIO, pr.MODE_OSS_SPLIT):
        assert not np.any(i_ref == 7.0)  # the image was written


def test_real_reference_is_the_spec(rng):
    """GPS mode is eq. 2.19 followed by the GPS-F weight (eq. 2.27); HIO is Fienup's update."""
    grid = (6, 5)
    v = random_complex(rng, (1,) + grid)
    w = rng.uniform(0.5, 1.0, grid)
    inside = rng.random(grid) < 0.5
    expect = w * np.where(inside, np.minimum(v.real, 0) + 1j * v.imag, v)
    buf = v.copy()
    phase_real_update(pr.MODE_GPS, buf, np.where(inside, -w, w), engine="numpy")
    np.testing.assert_allclose(buf, expect, rtol=1e-15)
    u = rng.standard_normal((1,) + grid)
    x = v.real
    good = inside & (x >= 0)
    expect_u = np.where(good, x, u - 0.9 * x)
    buf = v.copy()
    phase_real_update(pr.MODE_HIO, buf, np.where(inside, -1.0, 1.0), u, beta=0.9, engine="numpy")
    np.testing.assert_allclose(u, expect_u, rtol=1e-15)
    np.testing.assert_allclose(buf, expect_u + 0j, rtol=1e-15)


@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_dual_projection_is_idempotent(rng, engine):
    grid = (11, 8)
    buf = random_complex(rng, (2,) + grid, np.complex64)
    wsup = np.where(rng.random(grid) < 0.5, -1.0, 1.0).astype(np.float32)  # W = 1: the pure projection
    phase_real_update(pr.MODE_GPS, buf, wsup, engine=engine)
    once = buf.copy()
    phase_real_update(pr.MODE_GPS, buf, wsup, engine=engine)
    assert np.array_equal(buf, once)
    inside = np.broadcast_to(wsup < 0, buf.shape)
    assert np.all(once.real[inside] <= 0) and np.any(once.real[~inside] > 0)


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_hermitian_half_gives_the_real_part_of_the_inverse_fft(rng, grid, dtype):
    runs = 2
    z = random_complex(rng, (runs,) + grid)
    half_shape = (runs,) + grid[:-1] + (grid[-1] // 2 + 1,)
    ref = np.empty(half_shape, np.complex128)
    hermitian_half(z, ref, scale=0.5, engine="numpy")
    got = np.empty(half_shape, dtype)
    hermitian_half(z.astype(dtype), got, scale=0.5, engine="numba")
    np.testing.assert_allclose(got, ref, rtol=TOL[dtype], atol=TOL[dtype] * np.abs(ref).max())
    axes = tuple(range(1, len(grid) + 1))
    x = np.fft.irfftn(ref, s=grid, axes=axes) * np.prod(grid)
    np.testing.assert_allclose(x, 0.5 * np.prod(grid) * np.fft.ifftn(z, axes=axes).real, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
@pytest.mark.parametrize("unknown_fraction", [0.0, 0.3])
def test_rfactor_half_counts_every_pixel_once(rng, grid, dtype, unknown_fraction):
    runs = 3
    img = rng.random((runs,) + grid)
    axes = tuple(range(1, len(grid) + 1))
    bk = np.abs(rng.standard_normal(grid)) * 10
    if unknown_fraction:
        bk[rng.random(grid) < unknown_fraction] = -1.0
    full = np.abs(np.fft.fftn(img, axes=axes))
    expect = np.where(bk >= 0, np.abs(full - bk), 0).reshape(runs, -1).sum(axis=1)
    bh, bm = half_spectrum_weights(bk)
    spec = np.fft.rfftn(img, axes=axes)
    out = np.zeros(runs)
    rfactor_half(spec, bh, bm, out, engine="numpy")
    np.testing.assert_allclose(out, expect, rtol=1e-12)
    rdt = REAL[dtype]
    out2 = np.zeros(runs)
    rfactor_half(spec.astype(dtype), bh.astype(rdt), bm.astype(rdt), out2, engine="numba")
    np.testing.assert_allclose(out2, expect, rtol=TOL[dtype] * 10)


def test_bad_input(rng):
    z = random_complex(rng, (1, 4, 4), np.complex64)
    bk = np.ones((4, 4), np.float32)
    with pytest.raises(InputError, match="bk must be float32"):
        phase_fourier_update(pf.MODE_GPS, z, z.copy(), bk.astype(np.float64))
    with pytest.raises(InputError, match="buf has shape"):
        phase_fourier_update(pf.MODE_PROJECT, None, random_complex(rng, (1, 4, 5), np.complex64), bk)
    with pytest.raises(InputError, match="z must match"):
        phase_fourier_update(pf.MODE_GPS, None, z, bk)
    with pytest.raises(InputError, match="filt must be"):
        phase_fourier_update(pf.MODE_FILTER, None, z, bk)
    with pytest.raises(InputError, match="t must be > 0"):
        phase_fourier_update(pf.MODE_GPS, z, z.copy(), bk, t=0.0)
    with pytest.raises(InputError, match="unknown mode"):
        phase_fourier_update(7, z, z.copy(), bk)
    with pytest.raises(InputError, match="contiguous"):
        phase_fourier_update(pf.MODE_PROJECT, None, random_complex(rng, (1, 4, 8), np.complex64)[..., ::2], bk)
    with pytest.raises(InputError, match="needs the real iterate u"):
        phase_real_update(pr.MODE_HIO, z, bk)
    with pytest.raises(InputError, match="complex64 or complex128"):
        phase_real_update(pr.MODE_GPS, z.real.copy(), bk)
    with pytest.raises(InputError, match="half has shape"):
        hermitian_half(z, np.empty((1, 4, 4), np.complex64))
    with pytest.raises(InputError, match="out must be float64"):
        rfactor_half(np.empty((1, 4, 3), np.complex64), np.ones((4, 3), np.float32), np.ones((4, 3), np.float32),
                     np.zeros(2))
    with pytest.raises(ValueError, match="GPU"):
        phase_real_update(pr.MODE_GPS, z, bk, engine="cuda")


# ---- Numba CUDA kernels under the simulator ------------------------------------------------------
@pytest.mark.cudasim
@pytest.mark.parametrize("grid", [(5, 6), (3, 4, 5)])
@pytest.mark.parametrize("mode,use_filter", [(pf.MODE_GPS, False), (pf.MODE_GPS, True), (pf.MODE_PROJECT, False),
                                             (pf.MODE_FILTER, True)])
def test_fourier_kernel_in_simulator(rng, grid, mode, use_filter):
    (z_ref, y_ref), (z_t, y_t) = _fourier_pair(rng, grid, 2, 0.3, mode, use_filter, np.complex128, "numba-cuda")
    np.testing.assert_allclose(y_t, y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(z_t, z_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.cudasim
@pytest.mark.parametrize("mode", [pr.MODE_GPS, pr.MODE_ER, pr.MODE_HIO, pr.MODE_OSS_SPLIT, pr.MODE_OSS_MERGE])
@pytest.mark.parametrize("per_run", [False, True])
def test_real_kernel_in_simulator(rng, mode, per_run):
    grid = (4, 5)
    buf = random_complex(rng, (2,) + grid)
    wgrid = (2,) + grid if per_run else grid
    wsup = rng.uniform(0.3, 1.0, wgrid) * np.where(rng.random(wgrid) < 0.5, -1.0, 1.0)
    u = rng.standard_normal((2,) + grid)
    needs_u = mode in (pr.MODE_HIO, pr.MODE_OSS_SPLIT, pr.MODE_OSS_MERGE)
    refs = [buf.copy(), u.copy(), np.zeros_like(u)]
    phase_real_update(mode, refs[0], wsup, refs[1] if needs_u else None, refs[2], beta=0.9, engine="numpy")
    got = [buf.copy(), u.copy(), np.zeros_like(u)]
    phase_real_update(mode, got[0], wsup, got[1] if needs_u else None, got[2], beta=0.9, engine="numba-cuda")
    for a, b in zip(got, refs):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.cudasim
@pytest.mark.parametrize("grid", [(5, 6), (3, 4, 5)])
def test_rfactor_kernels_in_simulator(rng, grid):
    runs = 2
    z = random_complex(rng, (runs,) + grid)
    hs = (runs,) + grid[:-1] + (grid[-1] // 2 + 1,)
    ref, got = np.empty(hs, np.complex128), np.empty(hs, np.complex128)
    hermitian_half(z, ref, scale=0.3, engine="numpy")
    hermitian_half(z, got, scale=0.3, engine="numba-cuda")
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    bk = np.abs(rng.standard_normal(grid))
    bk[0, 1] = -1
    bh, bm = half_spectrum_weights(bk)
    o_ref, o_got = np.zeros(runs), np.zeros(runs)
    rfactor_half(ref, bh, bm, o_ref, engine="numpy")
    rfactor_half(ref, bh, bm, o_got, engine="numba-cuda")
    np.testing.assert_allclose(o_got, o_ref, rtol=1e-12)


# ---- CUDA C and Numba CUDA on a real GPU ----------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("engine", ["cuda", "numba-cuda"])
@pytest.mark.parametrize("grid", [(33, 20), (9, 10, 11)])
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_gpu_kernels_match_cpu(rng, engine, grid, dtype):
    cp = backend.Device("cuda").xp
    rdt = REAL[dtype]
    for mode, use_filter in [(pf.MODE_GPS, False), (pf.MODE_GPS, True), (pf.MODE_PROJECT, False),
                             (pf.MODE_FILTER, True)]:
        z, y, bk, filt = _data(rng, grid, 3, 0.3)
        kw = dict(use_filter=use_filter, t=1.3, s=0.7, sigma=0.3, scale=0.37)
        z_ref, y_ref = z.copy(), y.copy()
        phase_fourier_update(mode, z_ref, y_ref, bk, filt, engine="numpy", **kw)
        zd, yd = cp.asarray(z.astype(dtype)), cp.asarray(y.astype(dtype))
        phase_fourier_update(mode, zd, yd, cp.asarray(bk.astype(rdt)), cp.asarray(filt.astype(rdt)), engine=engine,
                             **kw)
        tol = TOL[dtype]
        np.testing.assert_allclose(to_numpy(yd), y_ref, rtol=tol, atol=tol * np.abs(y_ref).max())
        np.testing.assert_allclose(to_numpy(zd), z_ref, rtol=tol, atol=tol * np.abs(z_ref).max())
    for mode, wgrid in [(m, grid) for m in (pr.MODE_GPS, pr.MODE_ER, pr.MODE_HIO, pr.MODE_OSS_SPLIT,
                                             pr.MODE_OSS_MERGE)] + [(pr.MODE_GPS, (2,) + grid), (pr.MODE_HIO, (2,) + grid)]:
        wsup = rng.uniform(0.3, 1.0, wgrid) * np.where(rng.random(wgrid) < 0.4, -1.0, 1.0)
        buf = random_complex(rng, (2,) + grid)
        u = rng.standard_normal((2,) + grid)
        needs_u = mode in (pr.MODE_HIO, pr.MODE_OSS_SPLIT, pr.MODE_OSS_MERGE)
        b_ref, u_ref, i_ref = buf.copy(), u.copy(), np.zeros_like(u)
        phase_real_update(mode, b_ref, wsup, u_ref if needs_u else None, i_ref, beta=0.9, engine="numpy")
        bd, ud, idd = cp.asarray(buf.astype(dtype)), cp.asarray(u.astype(rdt)), cp.zeros(u.shape, rdt)
        phase_real_update(mode, bd, cp.asarray(wsup.astype(rdt)), ud if needs_u else None, idd, beta=0.9,
                          engine=engine)
        tol = TOL[dtype]
        np.testing.assert_allclose(to_numpy(bd), b_ref, rtol=tol, atol=tol)
        np.testing.assert_allclose(to_numpy(ud), u_ref, rtol=tol, atol=tol)
        np.testing.assert_allclose(to_numpy(idd), i_ref, rtol=tol, atol=tol)
    z = random_complex(rng, (2,) + grid)
    hs = (2,) + grid[:-1] + (grid[-1] // 2 + 1,)
    h_ref = np.empty(hs, np.complex128)
    hermitian_half(z, h_ref, scale=0.5, engine="numpy")
    hd = cp.empty(hs, dtype)
    hermitian_half(cp.asarray(z.astype(dtype)), hd, scale=0.5, engine=engine)
    np.testing.assert_allclose(to_numpy(hd), h_ref, rtol=TOL[dtype], atol=TOL[dtype] * np.abs(h_ref).max())
    bk = np.abs(rng.standard_normal(grid))
    bk[0, 0] = -1
    bh, bm = half_spectrum_weights(bk)
    o_ref = np.zeros(2)
    rfactor_half(h_ref, bh, bm, o_ref, engine="numpy")
    od = cp.zeros(2)
    rfactor_half(cp.asarray(h_ref.astype(dtype)), cp.asarray(bh.astype(rdt)), cp.asarray(bm.astype(rdt)), od,
                 engine=engine)
    np.testing.assert_allclose(to_numpy(od), o_ref, rtol=TOL[dtype] * 10)
