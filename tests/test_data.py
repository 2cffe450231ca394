"""Synthetic data: determinism, phantom properties, R_noise, tilt-series geometry, mixtures,
writers and the demo job."""

import h5py
import numpy as np
import pytest
from scipy import ndimage

from fastem.data import (CDI_TRUTH_OBJECT, CDI_TRUTH_SUPPORT, cdi_intensities, cell_3d, dual_axis_angles, gaussian_mixture,
                         save_cdi, save_mixture, save_tilt_series, save_volume, shepp_logan_3d, tilt_angles,
                         tilt_series, vesicle_2d, vesicle_3d)
from fastem.errors import InputError
from fastem.geometry import project_point, rotation_matrices
from fastem.io import read_cxi, read_dataset, read_dxchange, read_mrc, read_tilt_series


def _extent(obj):
    idx = np.argwhere(obj > 0)
    return idx.max(axis=0) - idx.min(axis=0) + 1


# ------------------------------------------------------------------------------------ phantoms
@pytest.mark.parametrize("n,fraction", [(128, 0.5), (96, 0.5), (65, 0.4)])
def test_vesicle_2d_support_and_positivity(n, fraction):
    v = vesicle_2d(n, seed=3, support_fraction=fraction)
    assert v.shape == (n, n) and v.dtype == np.float64
    assert v.min() == 0.0 and v.max() > 0.5
    assert np.all(_extent(v) <= fraction * n)  # compact support within the requested fraction
    assert np.count_nonzero(v) <= (fraction * n) ** 2 * np.pi / 4 + 1  # inside the disc
    com = np.array(ndimage.center_of_mass(v))
    assert np.all(np.abs(com - n // 2) < 0.15 * fraction * n)  # centred
    # hollow shell: along every ray from the centre the membrane (density ~1) is crossed in the
    # outer part of the radius, while the lumen is lighter on average
    radius = fraction * n / 2
    phi = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    t = np.linspace(0.6, 1.0, 40) * radius
    rows, cols = n // 2 + np.outer(np.sin(phi), t), n // 2 + np.outer(np.cos(phi), t)
    ray_max = ndimage.map_coordinates(v, [rows, cols], order=1).max(axis=1)
    assert np.all(ray_max > 0.85)
    r = np.hypot(*np.meshgrid(np.arange(n) - n // 2, np.arange(n) - n // 2, indexing="ij"))
    assert 0 < v[r < 0.5 * radius].mean() < 0.75


@pytest.mark.parametrize("n", [128, 64])
def test_vesicle_2d_support_has_no_centre_of_symmetry(n):
    """The outline is irregular (odd Fourier orders): no translate of the twin ``S(-x)`` covers the
    support, so phase retrieval is not left with a twin ambiguity the support cannot resolve."""
    for seed in range(6):
        s = (vesicle_2d(n, seed=seed) > 0).astype(np.float64)
        t = s[::-1, ::-1]
        xc = np.fft.ifft2(np.fft.fft2(s) * np.conj(np.fft.fft2(t))).real  # overlap of s with shifted twins
        best_overlap = xc.max()
        assert s.sum() - best_overlap > 0.04 * s.sum()  # >= 4 % of the support outside the best twin


def test_vesicle_default_oversampling_at_least_4():
    v = vesicle_2d()
    assert (v.size / np.count_nonzero(v)) >= 4.0
    assert np.prod(v.shape) / np.prod(_extent(v)) >= 4.0


def test_phantoms_deterministic_per_seed_and_differ_across_seeds():
    np.testing.assert_array_equal(vesicle_2d(64, seed=1), vesicle_2d(64, seed=1))
    assert np.abs(vesicle_2d(64, seed=1) - vesicle_2d(64, seed=2)).sum() > 0.1 * vesicle_2d(64, seed=1).sum()
    a, b = vesicle_3d(24, seed=0), vesicle_3d(24, seed=0)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, vesicle_3d(24, seed=1))


def test_vesicle_3d_support_and_shell():
    v = vesicle_3d(32, seed=0)
    assert v.shape == (32, 32, 32) and v.min() == 0.0 and v.max() > 0.5
    assert np.all(_extent(v) <= 0.75 * 32)
    assert np.all(_extent(vesicle_3d(32, seed=0, support_fraction=0.5)) <= 16)
    assert v[16, 16, 16] < v.max() / 2  # hollow centre


def _high_frequency_fraction(v):
    power = np.abs(np.fft.fftn(v)) ** 2
    f = np.fft.fftfreq(v.shape[0])
    r = np.sqrt(sum(a ** 2 for a in np.meshgrid(f, f, f, indexing="ij")))
    return power[r > 0.25].sum() / power[r > 0].sum()


@pytest.mark.parametrize("n", [16, 33, 48])
def test_cell_3d_support_fine_detail_and_determinism(n):
    c = cell_3d(n, seed=3)
    assert c.shape == (n, n, n) and c.dtype == np.float64 and np.isfinite(c).all()
    assert c.min() == 0.0 and c.max() >= 1.0                    # dense particles above the cytoplasm (0.3)
    assert np.all(_extent(c) <= 0.75 * n + 1)                   # inside the support ball (soft edge: 1 voxel)
    np.testing.assert_array_equal(c, cell_3d(n, seed=3))
    assert not np.array_equal(c, cell_3d(n, seed=4))
    if n >= 33:   # voxel-sized features: far more power above 0.25 cycles/voxel than the smooth vesicle
        assert _high_frequency_fraction(c) > 2 * _high_frequency_fraction(vesicle_3d(n, seed=3))


def test_cell_3d_membrane_is_a_bilayer():
    c = cell_3d(64, seed=0)
    # along a ray from the centre: two density peaks (the leaflets) two voxels apart at the cell edge
    line = c[32, 32, 32:]
    edge = int(np.nonzero(line > 0)[0].max())
    peaks = [i for i in range(edge - 6, edge + 1) if line[i] > 0.45 and line[i] >= line[i - 1] and line[i] >= line[i + 1]]
    assert len(peaks) == 2 and peaks[1] - peaks[0] == 2, (peaks, line[edge - 8:edge + 2].round(2))


@pytest.mark.parametrize("kwargs, match", [({"n": 8}, "n must be >= 16"),
                                           ({"n": 32, "support_fraction": 0.1}, "support_fraction")])
def test_cell_3d_bad_arguments(kwargs, match):
    with pytest.raises(InputError, match=match):
        cell_3d(**kwargs)


def test_shepp_logan_3d_values_and_axis_order():
    n = 64
    s = shepp_logan_3d(n)
    assert s.shape == (n, n, n) and s.min() == 0.0 and s.max() == pytest.approx(1.0)
    assert s[0, 0, 0] == 0.0  # outside the head
    assert s[n // 2, n // 2, n // 2] == pytest.approx(0.2)  # brain: 1 - 0.8
    # ellipsoid 5 is centred at (x, y, z) = (0, 0.35, -0.15): index (z, y, x) = (27, 43, 32)
    assert s[27, 43, 32] == pytest.approx(0.3)
    assert s[43, 27, 32] == pytest.approx(0.2)  # the same point with y and z swapped is not in it
    assert s[32, 32, 39] == pytest.approx(0.0)  # inside the dark ellipsoid at x = +0.22
    assert s[n // 2, 3, n // 2] == pytest.approx(1.0)  # the skull along -y (b = 0.92)
    values = set(np.round(np.unique(s), 6))
    assert values <= {0.0, 0.1, 0.2, 0.3, 0.4, 1.0, 1.1}


# --------------------------------------------------------------------------------------- CDI
@pytest.mark.parametrize("target", [0.03, 0.06, 0.10])
def test_cdi_r_noise_reaches_target(target):
    cdi = cdi_intensities(vesicle_2d(64, seed=0), r_noise=target, seed=4)
    assert abs(cdi.r_noise - target) < 0.005
    # recompute from the returned arrays: the reported figure is the real one
    k = cdi.known
    assert np.abs(cdi.magnitudes[k] - cdi.b_true[k]).sum() / cdi.b_true[k].sum() == pytest.approx(cdi.r_noise)


def test_cdi_data_properties():
    obj = vesicle_2d(48, seed=2)
    cdi = cdi_intensities(obj, r_noise=0.06, read_noise=1.0, beamstop_radius=2, shape=(64, 64), seed=0)
    assert cdi.intensities.shape == (64, 64) and cdi.intensities.min() >= 0
    assert (~cdi.known).sum() == 13  # the disc |k| <= 2 around (32, 32)
    assert not cdi.known[32, 32] and not cdi.known[30, 32] and cdi.known[29, 32]
    assert np.all(cdi.intensities[~cdi.known] == 0)
    np.testing.assert_allclose(cdi.magnitudes, np.sqrt(cdi.intensities))
    assert np.unravel_index(np.argmax(cdi.b_true), cdi.b_true.shape) == (32, 32)  # zero frequency at the centre
    assert (cdi.b_true**2).sum() == pytest.approx(cdi.flux)
    # the object is embedded centred, the support covers it (dilated by 1 px)
    np.testing.assert_array_equal(cdi.object[8:56, 8:56], obj)
    assert cdi.support[cdi.object > 0].all()
    assert cdi.support.sum() > (cdi.object > 0).sum()
    assert np.all(cdi.mask[~cdi.known] == 0x10) and np.all(cdi.mask[cdi.known] == 0)


def test_cdi_deterministic_and_flux_given():
    obj = vesicle_2d(32, seed=0)
    a = cdi_intensities(obj, r_noise=0.08, seed=5)
    b = cdi_intensities(obj, r_noise=0.08, seed=5)
    c = cdi_intensities(obj, r_noise=0.08, seed=6)
    np.testing.assert_array_equal(a.intensities, b.intensities)
    assert not np.array_equal(a.intensities, c.intensities)
    low = cdi_intensities(obj, flux=1e4, seed=0)
    high = cdi_intensities(obj, flux=1e8, seed=0)
    assert low.flux == 1e4 and low.r_noise > high.r_noise
    with pytest.raises(InputError, match="non-negative"):
        cdi_intensities(-obj)


def test_cdi_3d():
    cdi = cdi_intensities(vesicle_3d(16, seed=0, support_fraction=0.5), r_noise=0.06, beamstop_radius=1, seed=0)
    assert cdi.intensities.shape == (16, 16, 16) and (~cdi.known).sum() == 7
    assert abs(cdi.r_noise - 0.06) < 0.005


# ------------------------------------------------------------------------------- tilt series
def test_tilt_angles_and_dual_axis():
    t = tilt_angles()
    assert t.size == 41 and t[0] == -70.0 and t[-1] == 70.0 and np.allclose(np.diff(t), 3.5)
    d = dual_axis_angles(-60, 60, 30)
    assert d.shape == (10, 3)
    np.testing.assert_array_equal(d[:5, 1], [-60, -30, 0, 30, 60])
    np.testing.assert_array_equal(d[5:, 2], [-60, -30, 0, 30, 60])
    assert not d[:5, [0, 2]].any() and not d[5:, :2].any()


@pytest.mark.parametrize("angles", [(0, 0, 0), (0, 30, 0), (0, -65, 0), (20, -45, 10), (90, 60, -30), (-35, 15, 80)])
def test_tilt_series_single_voxel_lands_at_project_point(angles):
    vol = np.zeros((21, 22, 23))
    x, y, z = 6, -3, 4  # centred coordinates of the bright voxel
    vol[z + 21 // 2, y + 22 // 2, x + 23 // 2] = 1.0
    det = (30, 31)
    proj = tilt_series(vol, np.array([angles], dtype=float), detector_shape=det)[0]
    R = rotation_matrices(np.array([angles], dtype=float))[0]
    row, col = project_point(R, (x, y, z), det)
    rows, cols = np.indices(det)
    mass = proj.sum()
    assert mass == pytest.approx(1.0, abs=0.15)
    assert (rows * proj).sum() / mass == pytest.approx(row, abs=0.1)
    assert (cols * proj).sum() / mass == pytest.approx(col, abs=0.1)
    assert np.hypot(*(np.array(np.unravel_index(proj.argmax(), det)) - (row, col))) < 1.0


def test_tilt_series_positive_tilt_moves_voxels_the_documented_way():
    vol = np.zeros((17, 17, 17))
    vol[8, 8, 8 + 7] = 1.0  # x = 7, z = 0
    vol[8 + 6, 8, 8] = 2.0  # z = 6, x = 0 (twice as bright, to tell them apart)
    proj = tilt_series(vol, np.array([30.0]))[0]
    row = proj[8]
    # x > 0 voxel: u = 7 cos 30 = 6.06; z > 0 voxel: u = 6 sin 30 = +3 (towards +u)
    cols = np.arange(17) - 8
    assert row[np.abs(cols - 6.06) < 1.5].sum() == pytest.approx(1.0, abs=0.15)
    assert row[np.abs(cols - 3.0) < 1.5].sum() == pytest.approx(2.0, abs=0.3)
    assert row[cols < 1].sum() < 1e-6 and proj.sum() == pytest.approx(row.sum(), rel=1e-6)


def test_tilt_series_zero_tilt_is_sum_over_z_and_mass_is_conserved(rng):
    vol = ndimage.gaussian_filter(rng.random((18, 20, 22)), 2.0) * np.pad(np.ones((10, 12, 14)), 4)
    proj = tilt_series(vol, np.array([0.0, 40.0, -75.0]), detector_shape=(20, 40))
    np.testing.assert_allclose(proj[0][:, 9:31], vol.sum(axis=0), rtol=1e-3, atol=1e-4 * vol.sum(0).max())
    np.testing.assert_allclose(proj.sum(axis=(1, 2)), vol.sum(), rtol=2e-3)
    assert proj.dtype == np.float32


def test_tilt_series_noise_is_relative_and_seeded(rng):
    vol = ndimage.gaussian_filter(rng.random((12, 12, 12)), 1.5)
    clean = tilt_series(vol, tilt_angles(-60, 60, 20))
    noisy = tilt_series(vol, tilt_angles(-60, 60, 20), noise_sigma=0.05, seed=3)
    again = tilt_series(vol, tilt_angles(-60, 60, 20), noise_sigma=0.05, seed=3)
    np.testing.assert_array_equal(noisy, again)
    assert np.std(noisy - clean) == pytest.approx(0.05 * clean.max(), rel=0.1)


# ---------------------------------------------------------------------------------- mixtures
def test_gaussian_mixture():
    X, labels, centres = gaussian_mixture(1003, 5, 4, spread=0.5, centre_scale=8.0, seed=1, dtype=np.float32)
    assert X.shape == (1003, 5) and X.dtype == np.float32 and centres.shape == (4, 5) and centres.dtype == np.float32
    assert labels.dtype == np.int64 and set(np.bincount(labels)) <= {250, 251}
    assert np.all(np.abs(centres) <= 8.0)
    resid = X - centres[labels]
    assert np.std(resid) == pytest.approx(0.5, rel=0.05) and abs(resid.mean()) < 0.05
    X2, labels2, _ = gaussian_mixture(1003, 5, 4, spread=0.5, centre_scale=8.0, seed=1, dtype=np.float32)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(labels, labels2)
    assert not np.array_equal(X, gaussian_mixture(1003, 5, 4, seed=2)[0])
    with pytest.raises(InputError, match="n_points >= n_clusters"):
        gaussian_mixture(3, 2, 5)


# ----------------------------------------------------------------------------------- writers
def test_save_cdi_round_trip(tmp_path):
    cdi = cdi_intensities(vesicle_2d(32, seed=0), r_noise=0.06, seed=0)
    path = save_cdi(tmp_path / "v.cxi", cdi)
    d = read_cxi(path)
    np.testing.assert_array_equal(d.intensities, cdi.intensities)
    np.testing.assert_array_equal(d.known, cdi.known)
    np.testing.assert_array_equal(read_dataset(path, CDI_TRUTH_OBJECT), cdi.object)
    np.testing.assert_array_equal(read_dataset(path, CDI_TRUTH_SUPPORT).astype(bool), cdi.support)
    with h5py.File(path, "r") as f:
        assert b'"r_noise"' in f["/entry_1/process_1/configuration"][()]


def test_save_tilt_series_single_axis_euler_and_mrc(tmp_path, rng):
    proj = rng.random((3, 5, 6)).astype(np.float32)
    theta = np.array([-20.0, 0.0, 20.0])
    save_tilt_series(tmp_path / "t.h5", proj, theta, mrc_path=tmp_path / "t.mrc")
    a, b = read_tilt_series(tmp_path / "t.h5"), read_tilt_series(tmp_path / "t.mrc")
    np.testing.assert_array_equal(a.theta, theta)
    np.testing.assert_array_equal(a.projections, b.projections)
    np.testing.assert_allclose(b.theta, theta)
    euler = rng.uniform(-50, 50, (3, 3))
    save_tilt_series(tmp_path / "e.h5", proj, euler)
    e = read_dxchange(tmp_path / "e.h5")
    assert e.theta is None
    np.testing.assert_array_equal(e.angles, euler)
    with pytest.raises(InputError, match="single-axis"):
        save_tilt_series(tmp_path / "e2.h5", proj, euler, mrc_path=tmp_path / "e2.mrc")


def test_save_volume_and_mixture(tmp_path):
    vol = vesicle_3d(16, seed=0)
    back, voxel = read_mrc(save_volume(tmp_path / "v.mrc", vol, voxel_size=2.0))
    np.testing.assert_allclose(back, vol.astype(np.float32))
    assert voxel == (2.0, 2.0, 2.0)
    X, labels, centres = gaussian_mixture(50, 3, 2, seed=0)
    path = save_mixture(tmp_path / "m.h5", X, labels, centres)
    np.testing.assert_array_equal(read_dataset(f"{path}:/data"), X)
    np.testing.assert_array_equal(read_dataset(f"{path}:/labels"), labels)
    np.testing.assert_array_equal(read_dataset(f"{path}:/centres"), centres)


# -------------------------------------------------------------------------------------- demo
def test_data_demo_quick(tmp_path):
    from click.testing import CliRunner

    from fastem.cli.main import app
    from fastem.data import demo

    assert demo.ORDER == 0
    rows = demo.run(tmp_path, quick=True)
    assert {r["job"] for r in rows} == {"data"}
    for r in rows:
        assert (tmp_path / r["output"]).is_file(), r
    assert "R_noise 6.0 %" in rows[0]["result"]
    for r in rows:
        if not r["output"].endswith(".png"):
            res = CliRunner().invoke(app, ["info", str(tmp_path / r["output"])])
            assert res.exit_code == 0, res.output
    assert read_tilt_series(tmp_path / "data" / "vesicle_tilt.mrc").n_projections == 15
    # the tilt series are written as `fastem tomo` reads them by default (thesis sign, axis at the
    # detector middle): the default reconstruction is far closer to the phantom than the opposite sign
    from fastem.data import vesicle_3d
    from fastem.tomo import relative_error, resire

    for name in ("vesicle_tilt.h5", "vesicle_dual_axis.h5"):
        series = read_tilt_series(tmp_path / "data" / name)
        truth = vesicle_3d(series.projections.shape[2], seed=0)
        errors = {c: relative_error(resire(series.projections, series.angles, iterations=20, projector="linear",
                                           convention=c, progress=False).volume, truth)
                  for c in ("thesis", "fastem")}
        assert errors["thesis"] < 0.6 * errors["fastem"], (name, errors)
    demo.run(tmp_path, quick=True, overwrite=True)  # a second run replaces the files
