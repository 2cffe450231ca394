"""RESIRE, SIRT and FBP against the float64 references; masks, thin films, errors, resume, metrics."""

import numpy as np
import pytest

from fastem.errors import InputError
from fastem.tomo import (FourierSliceProjector, LinearProjector, ProjectionGeometry, Resire, Sirt, TomoProblem, fbp,
                         fourier_shell_correlation, r_factor, relative_error, resire, sirt)
from fastem.tomo import _reference as ref


def _blobs(shape, rng, n=5):
    """A smooth non-negative test volume: a few Gaussian blobs inside the central region."""
    grids = np.meshgrid(*(np.arange(s) - s // 2 for s in shape), indexing="ij")
    vol = np.zeros(shape)
    for _ in range(n):
        centre = [rng.uniform(-s / 4, s / 4) for s in shape]
        width = rng.uniform(1.0, 2.5)
        vol += rng.uniform(0.5, 1.5) * np.exp(-sum((g - c) ** 2 for g, c in zip(grids, centre)) / (2 * width ** 2))
    return vol


@pytest.fixture
def tilt_case(rng):
    shape, detector = (12, 11, 13), (11, 13)  # non-square detector, odd sizes
    geo = ProjectionGeometry(shape, detector, np.linspace(-60, 60, 9))
    truth = _blobs(shape, rng)
    data = ref.forward_project_linear(truth, geo) + 0.01 * rng.standard_normal(geo.projections_shape)
    mask = rng.random(geo.projections_shape) > 0.15
    return geo, truth, data, mask


@pytest.mark.parametrize("normalisation", ["global", "voxel"])
@pytest.mark.parametrize("projector", ["linear", "fst"])
def test_resire_matches_float64_reference(tilt_case, projector, normalisation):
    geo, truth, data, mask = tilt_case
    support = np.zeros(geo.volume_shape, dtype=bool)
    support[1:-1, 1:-1, 2:-2] = True
    got = resire(data, geo.angles, volume_shape=geo.volume_shape, iterations=12, projector=projector, mask=mask,
                 support=support, progress=False, step_normalisation=normalisation)
    vol, hist = ref.resire(data, geo, 12, projector=projector, mask=mask, support=support,
                           voxel_steps=normalisation == "voxel")
    assert got.config["step_normalisation"] == normalisation
    np.testing.assert_allclose(got.volume, vol, rtol=1e-5, atol=1e-5 * np.abs(vol).max())
    np.testing.assert_allclose(got.r_factor_history, hist[:-1], rtol=1e-5)
    assert got.r_factor == pytest.approx(hist[-1], rel=1e-5)
    assert hist[-1] < 0.5 * hist[0]  # it does converge
    assert not got.volume[~support].any()
    assert got.iterations == 12 and got.config["step"] == 2.0


def test_sirt_matches_float64_reference(tilt_case):
    geo, truth, data, mask = tilt_case
    got = sirt(data, geo.angles, volume_shape=geo.volume_shape, iterations=10, mask=mask, progress=False)
    vol, hist = ref.sirt(data, geo, 10, mask=mask)
    np.testing.assert_allclose(got.volume, vol, rtol=1e-5, atol=1e-5 * np.abs(vol).max())
    np.testing.assert_allclose(got.r_factor_history, hist[:-1], rtol=1e-5)


def test_resire_reconstructs_better_than_sirt_and_fbp(rng):
    shape = (16, 16, 16)
    angles = np.arange(-70, 70.1, 7.0)
    geo = ProjectionGeometry(shape, shape[1:], angles)
    truth = _blobs(shape, rng, 6)
    data = ref.forward_project_linear(truth, geo)
    r = resire(data, angles, iterations=60, projector="linear", progress=False)
    s = sirt(data, angles, iterations=60, progress=False)
    f = fbp(data, angles)
    errs = [relative_error(x.volume, truth) for x in (r, s, f)]
    assert errs[0] < errs[1] < errs[2]
    assert r.r_factor < s.r_factor < f.r_factor
    assert r.r_factor_history[-1] < r.r_factor_history[0] / 10


def test_fbp_scaling_on_a_ball():
    n = 24
    z, y, x = np.meshgrid(*(np.arange(n) - n // 2,) * 3, indexing="ij")
    ball = ((x ** 2 + y ** 2 + z ** 2) <= 7 ** 2).astype(float)
    angles = np.arange(0.0, 180.0, 3.0)
    data = ref.forward_project_linear(ball, ProjectionGeometry(ball.shape, (n, n), angles), subpoints=1)
    vol = fbp(data, angles).volume
    assert vol[n // 2 - 2:n // 2 + 3, n // 2 - 2:n // 2 + 3, n // 2 - 2:n // 2 + 3].mean() == pytest.approx(1.0, abs=0.03)
    assert abs(vol[ball == 0]).mean() < 0.05


def test_fbp_refuses_multi_axis():
    with pytest.raises(InputError, match="single tilt axis"):
        fbp(np.ones((2, 6, 6)), [(0, 10, 0), (30, 10, 0)])


@pytest.mark.parametrize("projector", ["linear", "fst"])
def test_blocked_region_changes_nothing(tilt_case, projector):
    geo, truth, data, _ = tilt_case
    mask = np.ones(geo.projections_shape, dtype=bool)
    mask[:, : geo.detector_shape[0] // 2, : geo.detector_shape[1] // 2] = False  # a quarter of every projection
    corrupt = data.copy()
    corrupt[~mask] = np.linspace(-1e3, 1e3, int((~mask).sum()))
    corrupt[0, 0, 0] = np.nan
    a = resire(data, geo.angles, volume_shape=geo.volume_shape, iterations=8, projector=projector, mask=mask,
               progress=False)
    b = resire(corrupt, geo.angles, volume_shape=geo.volume_shape, iterations=8, projector=projector, mask=mask,
               progress=False)
    np.testing.assert_array_equal(a.volume, b.volume)
    np.testing.assert_array_equal(a.r_factor_history, b.r_factor_history)
    # and the unmasked run on corrupted data is different (the test is not vacuous)
    c = resire(np.nan_to_num(corrupt), geo.angles, volume_shape=geo.volume_shape, iterations=8, projector=projector,
               progress=False)
    assert np.abs(c.volume - a.volume).max() > 1.0


def test_quarter_masked_data_still_reconstruct(rng):
    shape = (14, 14, 14)
    angles = np.arange(-60, 60.1, 6.0)
    geo = ProjectionGeometry(shape, shape[1:], angles)
    truth = _blobs(shape, rng, 5)
    data = ref.forward_project_linear(truth, geo)
    mask = np.ones(data.shape, dtype=bool)  # a quarter of every projection, a different one each time
    for k in range(len(angles)):
        r0, c0 = (0 if k % 4 < 2 else 7), (0 if k % 2 == 0 else 7)
        mask[k, r0:r0 + 7, c0:c0 + 7] = False
    full = resire(data, angles, iterations=40, projector="linear", progress=False)
    masked = resire(data, angles, iterations=40, projector="linear", mask=mask, progress=False)
    zeros = resire(np.where(mask, data, 0), angles, iterations=40, projector="linear", progress=False)
    e_full, e_mask, e_zero = (relative_error(x.volume, truth) for x in (full, masked, zeros))
    assert e_mask < 1.5 * e_full  # the remaining three quarters suffice
    assert e_zero > 3 * e_mask  # treating the blocked pixels as zero data does not


@pytest.mark.parametrize("projector", ["linear", "fst"])
def test_thin_film_projection_is_a_crop(rng, projector):
    # a volume wider than the detector projects to the centre crop of its projection onto a
    # detector wide enough to see all of it
    shape = (4, 8, 24)
    angles = np.linspace(-50, 50, 5)
    vol = rng.random(shape).astype(np.float32)
    narrow = ProjectionGeometry(shape, (8, 10), angles)
    wide = ProjectionGeometry(shape, (8, 24), angles)
    make = (lambda g: LinearProjector(g)) if projector == "linear" else (lambda g: FourierSliceProjector(g, 2))
    a = make(narrow).project(vol)
    b = make(wide).project(vol)
    if projector == "fst":
        assert make(narrow).plane_shape == make(wide).plane_shape  # same sampling: the crop is exact
    np.testing.assert_allclose(a, b[:, :, 7:17], rtol=1e-5, atol=1e-5 * np.abs(b).max())


def test_thin_film_reconstruction_uses_a_wide_volume(rng):
    angles = np.linspace(-60, 60, 7)
    problem = TomoProblem(rng.random((7, 10, 12)), angles, thickness=4)
    nz, ny, nx = problem.geometry.volume_shape
    assert (nz, ny) == (4, 10) and nx > 12
    r = Resire(problem, projector="linear")
    r.run(3, progress=False)
    assert r.volume.shape == (4, 10, nx)


def test_clear_errors(rng):
    with pytest.raises(InputError, match="3 projection.*2 angle"):
        resire(rng.random((3, 6, 6)), [0.0, 10.0], iterations=1)
    with pytest.raises(InputError, match="empty angle set"):
        resire(np.zeros((0, 6, 6)), np.zeros(0), iterations=1)
    with pytest.raises(InputError, match="empty angle set"):
        resire(rng.random((2, 6, 6)), np.zeros((0, 3)), iterations=1)
    bad = rng.random((3, 6, 6))
    bad[1, 2, 3] = np.nan
    bad[2, 0, 0] = np.inf
    with pytest.raises(InputError, match=r"2 non-finite value\(s\).*2 projection\(s\), first in projection 1"):
        resire(bad, [0.0, 10.0, 20.0], iterations=1)
    with pytest.raises(InputError, match="mask has shape"):
        resire(rng.random((3, 6, 6)), [0.0, 10.0, 20.0], mask=np.ones((3, 6, 5)), iterations=1)
    with pytest.raises(InputError, match="projections must be"):
        resire(rng.random((6, 6)), [0.0], iterations=1)
    with pytest.raises(InputError, match="step"):
        resire(rng.random((2, 6, 6)), [0.0, 1.0], step=-1.0, iterations=1)
    with pytest.raises(InputError, match="projector"):
        resire(rng.random((2, 6, 6)), [0.0, 1.0], projector="spline", iterations=1)
    with pytest.raises(InputError, match="oversampling"):
        resire(rng.random((2, 6, 6)), [0.0, 1.0], oversampling=0.5, iterations=1)
    with pytest.raises(InputError, match="every projection is zero"):
        resire(np.zeros((2, 6, 6)), [0.0, 1.0], iterations=1)
    with pytest.raises(InputError, match="support has shape"):
        resire(rng.random((2, 6, 6)), [0.0, 1.0], support=np.ones((6, 6, 5)), iterations=1)


@pytest.mark.parametrize("algorithm", ["resire", "sirt"])
def test_resume_from_state_continues_exactly(tilt_case, algorithm):
    geo, truth, data, mask = tilt_case

    def make():
        problem = TomoProblem(data, geo.angles, volume_shape=geo.volume_shape, mask=mask)
        return Resire(problem, projector="fst") if algorithm == "resire" else Sirt(problem)

    straight = make()
    straight.run(6, progress=False)
    first = make()
    states = []
    first.run(3, progress=False, callback=lambda s: states.append(s.state()), callback_every=3)
    assert len(states) == 1 and states[0]["iteration"] == 3
    second = make()
    second.restore(states[0])
    second.run(6, progress=False)
    np.testing.assert_array_equal(second.volume, straight.volume)
    np.testing.assert_array_equal(second.history, straight.history)
    with pytest.raises(InputError, match="checkpoint is for"):
        (Sirt if algorithm == "resire" else Resire)(second.problem).restore(states[0])


def test_early_stop_on_flat_r_factor(tilt_case):
    geo, truth, data, mask = tilt_case
    r = resire(data, geo.angles, volume_shape=geo.volume_shape, iterations=300, projector="linear", rtol=0.02,
               progress=False)
    assert 20 < r.iterations < 300
    h = r.r_factor_history
    assert abs(h[-21] - h[-1]) <= 0.02 * h[-1] < abs(h[-22] - h[-2])


def test_metrics(rng):
    a = _blobs((16, 16, 16), rng)
    freq, fsc, counts = fourier_shell_correlation(a, a)
    np.testing.assert_allclose(fsc, 1.0, rtol=1e-12)
    assert freq[0] > 0 and freq[-1] < 0.5 and counts.sum() > 0
    noisy = a + 0.05 * rng.standard_normal(a.shape)
    _, fsc_noisy, _ = fourier_shell_correlation(noisy, a)
    assert fsc_noisy[0] > 0.99 and fsc_noisy[-1] < 0.5  # noise dominates the high shells
    _, fsc_z, counts_z = fourier_shell_correlation(noisy, a, direction=(0, 0, 1), cone_deg=20)
    assert counts_z.sum() < counts.sum() / 4
    assert relative_error(2 * a, a) == pytest.approx(1.0)
    assert relative_error(a + 1, a, norm=1) == pytest.approx(a.size / np.abs(a).sum())
    p = rng.random((3, 4, 5)) + 0.5
    b = rng.random((3, 4, 5)) + 0.5
    m = rng.random((3, 4, 5)) > 0.5
    expect = np.mean([np.abs(p[k] - b[k])[m[k]].sum() / np.abs(b[k])[m[k]].sum() for k in range(3)])
    assert r_factor(p, b, m) == pytest.approx(expect)


def test_step_normalisation_auto_and_effect(tilt_case):
    """``auto`` is the thesis' scalar step without blocked pixels (or without positivity) and the
    per-voxel step with them;
    the per-voxel step equals the scalar one where every projection measures a voxel."""
    geo, truth, data, mask = tilt_case
    kw = dict(volume_shape=geo.volume_shape, iterations=3, projector="linear", progress=False)
    plain = resire(data, geo.angles, **kw)
    assert plain.config["step_normalisation"] == "global"
    ones = resire(data, geo.angles, mask=np.ones(data.shape, bool), **kw)
    assert ones.config["step_normalisation"] == "global"  # a mask that blocks nothing
    np.testing.assert_array_equal(plain.volume, ones.volume)
    masked = resire(data, geo.angles, mask=mask, **kw)
    assert masked.config["step_normalisation"] == "voxel"
    assert resire(data, geo.angles, mask=mask, positivity=False, **kw).config["step_normalisation"] == "global"
    glob = resire(data, geo.angles, mask=mask, step_normalisation="global", **kw)
    assert not np.allclose(masked.volume, glob.volume)  # the choice matters with blocked pixels
    # a voxel measured by every projection: weight n / sum_k B_k(1) = 1 -> same first step as global
    one = dict(kw, iterations=1)
    v = resire(data, geo.angles, step_normalisation="voxel", **one).volume
    g = resire(data, geo.angles, step_normalisation="global", **one).volume
    centre = tuple(s // 2 for s in geo.volume_shape)
    assert v[centre] == pytest.approx(g[centre], rel=1e-5)
    with pytest.raises(InputError, match="step_normalisation"):
        resire(data, geo.angles, step_normalisation="pixel", **kw)
