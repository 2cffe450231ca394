"""The projection geometry is pinned: a single off-centre voxel lands where the equations say.

Conventions (``fastem.tomo.projection_geometry``): index ``i`` at ``i - (n-1)/2`` on every axis,
the rotation axis at detector column ``center`` (default ``(cols-1)/2``), rows centred at
``(rows-1)/2``; ``convention="fastem"`` maps ``r`` with ``R``, ``"thesis"`` (seed 004 eq. 3.4) with
``R^T``. Every case runs on even and odd volume and detector sizes.
"""

import numpy as np
import pytest

from fastem.errors import InputError
from fastem.geometry import rotation_matrices, rotation_zyx
from fastem.tomo import (FourierSliceProjector, LinearProjector, ProjectionGeometry, projection_coefficients,
                         thin_film_shape)
from fastem.tomo import _reference as ref

VOLUME = (16, 14, 12)  # (nz, ny, nx): all different so that no axis can be confused
DETECTOR = (15, 18)    # (rows, cols), odd x even
SIZES = [((16, 14, 12), (15, 18)), ((15, 13, 11), (16, 17)), ((16, 14, 12), (14, 16))]


def _voxel_volume(x, y, z, shape=VOLUME):
    """A unit voxel at centred position (x, y, z) (index ``x + (nx-1)/2`` must be integral)."""
    vol = np.zeros(shape, dtype=np.float32)
    nz, ny, nx = shape
    idx = (z + (nz - 1) / 2, y + (ny - 1) / 2, x + (nx - 1) / 2)
    assert all(float(i).is_integer() for i in idx)
    vol[tuple(int(i) for i in idx)] = 1.0
    return vol


def _offsets(shape):
    """An off-centre voxel position (x, y, z) on the grid of ``shape`` (half-integers on even axes)."""
    nz, ny, nx = shape
    return tuple(o + (0.5 if n % 2 == 0 else 0.0) for o, n in zip((3, -2, 4), (nx, ny, nz)))


def predict(angles, r, detector, center=None, convention="fastem"):
    """Detector (row, col) of the centred point r from the equations (not from the library)."""
    rows, cols = detector
    R = rotation_zyx(*angles)
    r = np.asarray(r, dtype=np.float64)
    if convention == "fastem":
        u, v = R[0] @ r, R[1] @ r
    else:  # seed 004 eq. 3.4: x = R11 u + R21 v + R31 w, y = R12 u + R22 v + R32 w (1-based)
        u = R[0, 0] * r[0] + R[1, 0] * r[1] + R[2, 0] * r[2]
        v = R[0, 1] * r[0] + R[1, 1] * r[1] + R[2, 1] * r[2]
    cu = (cols - 1) / 2 if center is None else center
    return v + (rows - 1) / 2, u + cu


def _centroid(img):
    rows, cols = np.indices(img.shape)
    s = img.sum()
    return float((rows * img).sum() / s), float((cols * img).sum() / s)


ANGLES = [(0, 0, 0), (0, 30, 0), (0, -45, 0), (0, 90, 0), (25, 40, -15), (-60, 10, 70), (90, 0, 0)]


@pytest.mark.parametrize("angles", ANGLES)
@pytest.mark.parametrize("subpoints", [1, 4])
@pytest.mark.parametrize("convention", ["fastem", "thesis"])
@pytest.mark.parametrize("volume_shape, detector", SIZES)
def test_single_voxel_lands_on_predicted_pixel(angles, subpoints, convention, volume_shape, detector):
    r = _offsets(volume_shape)
    geo = ProjectionGeometry(volume_shape, detector, [angles], convention=convention)
    img = LinearProjector(geo, subpoints=subpoints).project(_voxel_volume(*r, shape=volume_shape))[0]
    row, col = predict(angles, r, detector, convention=convention)
    # the splat is centred on the predicted position (sub-points are symmetric) and carries unit mass
    assert img.sum() == pytest.approx(1.0, abs=1e-6)
    c_r, c_c = _centroid(img)
    assert c_r == pytest.approx(row, abs=1e-5)
    assert c_c == pytest.approx(col, abs=1e-5)
    # the brightest pixel is the nearest one to the prediction
    peak = np.unravel_index(np.argmax(img), img.shape)
    assert abs(peak[0] - row) <= 0.5 + 1e-9 and abs(peak[1] - col) <= 0.5 + 1e-9


def test_issue_example_fastem_vs_thesis():
    # angles (20, 30, 40), r = (3, -2, 5): fastem (u, v) = (5.26, -3.14), thesis (-0.65, 1.24)
    shape, det = (15, 15, 15), (21, 21)
    for convention, (u, v) in (("fastem", (5.26022, -3.13605)), ("thesis", (-0.65100, 1.24384))):
        geo = ProjectionGeometry(shape, det, [(20, 30, 40)], convention=convention)
        c = geo.coefficients[0]
        idx = [3 + 7, -2 + 7, 5 + 7, 1.0]
        assert c[0] @ idx - 10 == pytest.approx(u, abs=1e-5)
        assert c[1] @ idx - 10 == pytest.approx(v, abs=1e-5)
    # single axis: thesis theta is fastem -theta
    a = ProjectionGeometry(shape, det, [25.0], convention="thesis").coefficients
    b = ProjectionGeometry(shape, det, [-25.0]).coefficients
    np.testing.assert_allclose(a, b, atol=1e-12)


@pytest.mark.parametrize("volume_shape, detector", SIZES)
@pytest.mark.parametrize("center", [None, 3.0, 9.25])
def test_axis_column_is_where_the_centre_says(volume_shape, detector, center):
    # a voxel on the rotation axis (x = z = 0) stays at column `center` at every tilt
    nz, ny, nx = volume_shape
    vol = np.zeros(volume_shape, np.float32)
    if nx % 2 == 0 or nz % 2 == 0:  # no voxel on the axis: use the 2x2 block around it (x, z = -+1/2)
        vol[(nz - 1) // 2:nz // 2 + 1, ny // 2, (nx - 1) // 2:nx // 2 + 1] = 1.0
    else:
        vol[nz // 2, ny // 2, nx // 2] = 1.0
    geo = ProjectionGeometry(volume_shape, detector, [-50.0, 0.0, 35.0, 80.0], center=center)
    expect = (detector[1] - 1) / 2 if center is None else center
    assert geo.center == expect
    for img in LinearProjector(geo, subpoints=1).project(vol):
        assert _centroid(img)[1] == pytest.approx(expect, abs=1e-5)


@pytest.mark.parametrize("volume_shape, detector", SIZES)
def test_integer_landing_is_one_pixel_and_matches_by_hand(volume_shape, detector):
    # R = I: u = x, v = y -> image (rows, cols) = (v, u) is the sum over z
    r = _offsets(volume_shape)
    geo = ProjectionGeometry(volume_shape, detector, [(0, 0, 0)])
    img = LinearProjector(geo, subpoints=1).project(_voxel_volume(*r, shape=volume_shape))[0]
    row, col = predict((0, 0, 0), r, detector)
    if float(row).is_integer() and float(col).is_integer():
        expect = np.zeros(detector)
        expect[int(row), int(col)] = 1.0
        np.testing.assert_array_equal(img, expect)
    else:  # half-pixel landing (volume and detector of different parity): two equal halves
        assert np.sort(img.ravel())[-2:] == pytest.approx([0.5, 0.5]) or np.sort(img.ravel())[-4:] == \
            pytest.approx([0.25] * 4)


def test_positive_tilt_moves_a_voxel_above_the_centre_towards_plus_u():
    # fastem: a voxel at z > 0 on the axis: +theta about y moves it to u = z sin(theta) > 0;
    # thesis (= ASTRA / TomoPy sign): the same voxel moves to u = -z sin(theta)
    shape, det = (15, 13, 11), (13, 17)
    for convention, sign in (("fastem", 1.0), ("thesis", -1.0)):
        geo = ProjectionGeometry(shape, det, [(0, -30, 0), (0, 0, 0), (0, 30, 0)], convention=convention)
        imgs = LinearProjector(geo, subpoints=1).project(_voxel_volume(0, 0, 4, shape))
        cols = [_centroid(im)[1] for im in imgs]
        centre = (det[1] - 1) / 2
        assert cols[1] == pytest.approx(centre)
        assert cols[2] == pytest.approx(centre + sign * 4 * np.sin(np.deg2rad(30)), abs=1e-5)
        assert cols[0] == pytest.approx(centre - sign * 4 * np.sin(np.deg2rad(30)), abs=1e-5)
        # and a voxel at x > 0 moves towards the centre: u = x cos(theta)
        imgs = LinearProjector(geo, subpoints=1).project(_voxel_volume(5, 0, 0, shape))
        assert _centroid(imgs[2])[1] == pytest.approx(centre + 5 * np.cos(np.deg2rad(30)), abs=1e-5)


@pytest.mark.parametrize("angles", [(0, 30, 0), (25, 40, -15)])
@pytest.mark.parametrize("volume_shape, detector", SIZES)
@pytest.mark.parametrize("center", [None, 6.6])
def test_fst_projector_agrees_on_the_position(angles, volume_shape, detector, center):
    # a smooth blob well inside the volume (a single voxel has a flat spectrum that trilinear
    # interpolation blurs; off-centre features are also damped by its apodization, so os=4)
    x, y, z = 2.0, -1.0, 1.5
    zz, yy, xx = np.meshgrid(*(np.arange(n) - (n - 1) / 2 for n in volume_shape), indexing="ij")
    blob = np.exp(-((xx - x) ** 2 + (yy - y) ** 2 + (zz - z) ** 2) / (2 * 1.0 ** 2)).astype(np.float32)
    geo = ProjectionGeometry(volume_shape, detector, [angles], center=center)
    img = FourierSliceProjector(geo, oversampling=4).project(blob)[0]
    row, col = predict(angles, (x, y, z), detector, center=center)
    r, c = _centroid(img)
    assert r == pytest.approx(row, abs=0.05)
    assert c == pytest.approx(col, abs=0.05)
    assert img.sum() == pytest.approx(blob.sum(), rel=0.02)
    # and the whole image matches the float64 oracle
    np.testing.assert_allclose(img, ref.forward_project_fst(blob, geo, 4)[0], atol=2e-5 * blob.sum())


@pytest.mark.parametrize("convention", ["fastem", "thesis"])
def test_coefficients_match_the_equations(rng, convention):
    angles = rng.uniform(-90, 90, (5, 3))
    geo = ProjectionGeometry(VOLUME, DETECTOR, angles, center=7.75, convention=convention)
    c = geo.coefficients
    nz, ny, nx = VOLUME
    for k in range(5):
        for _ in range(4):
            iz, iy, ix = (int(rng.integers(n)) for n in VOLUME)
            row, col = predict(angles[k], (ix - (nx - 1) / 2, iy - (ny - 1) / 2, iz - (nz - 1) / 2), DETECTOR,
                               center=7.75, convention=convention)
            assert c[k, 0] @ [ix, iy, iz, 1.0] == pytest.approx(col)
            assert c[k, 1] @ [ix, iy, iz, 1.0] == pytest.approx(row)
    R = rotation_matrices(angles)
    np.testing.assert_allclose(projection_coefficients(R, VOLUME, DETECTOR, 7.75)[:, :, :3], R[:, :2, :])


def test_single_axis_detection():
    geo = ProjectionGeometry(VOLUME, DETECTOR, np.array([-60.0, 0.0, 35.0]))
    np.testing.assert_allclose(geo.single_axis_tilts(), [-60.0, 0.0, 35.0], atol=1e-12)
    assert geo.angles.shape == (3, 3)
    assert ProjectionGeometry(VOLUME, DETECTOR, [(10, 20, 0)]).single_axis_tilts() is None
    assert geo.beam_length == VOLUME[0]


def test_bad_geometry_inputs():
    with pytest.raises(InputError, match="empty angle set"):
        ProjectionGeometry(VOLUME, DETECTOR, np.zeros((0, 3)))
    with pytest.raises(InputError, match="non-finite"):
        ProjectionGeometry(VOLUME, DETECTOR, [np.nan, 1.0])
    with pytest.raises(InputError, match="volume_shape"):
        ProjectionGeometry((4, 4), DETECTOR, [0.0])
    with pytest.raises(InputError, match="detector_shape"):
        ProjectionGeometry(VOLUME, (0, 4), [0.0])
    geo = ProjectionGeometry(VOLUME, DETECTOR, [0.0, 10.0])
    with pytest.raises(InputError, match="3 projection.*2 angle"):
        geo.check_projections(np.zeros((3, *DETECTOR)))
    with pytest.raises(InputError, match="detector is 15x18"):
        geo.check_projections(np.zeros((2, 18, 15)))
    with pytest.raises(InputError, match="angles convention must be one of fastem, thesis"):
        ProjectionGeometry(VOLUME, DETECTOR, [0.0], convention="astra")
    with pytest.raises(InputError, match="center must be a finite"):
        ProjectionGeometry(VOLUME, DETECTOR, [0.0], center=float("nan"))
    with pytest.raises(InputError, match="center must be a detector column"):
        ProjectionGeometry(VOLUME, DETECTOR, [0.0], center="middle")


def test_thin_film_shape_covers_every_tilt():
    angles = np.arange(-60, 61, 10.0)
    t, ny, nx = thin_film_shape((20, 32), angles, 8)
    assert (t, ny) == (8, 20)  # tilt about y: no lateral growth along y
    # the steepest tilt sees |x| up to (cols/2 + t/2 sin 60) / cos 60
    assert nx >= 2 * (16 + 4 * np.sin(np.deg2rad(60))) / np.cos(np.deg2rad(60)) - 1e-9
    assert nx <= 2 * (16 + 4 * np.sin(np.deg2rad(60))) / np.cos(np.deg2rad(60)) + 2
    with pytest.warns(UserWarning, match="capped"):
        assert thin_film_shape((20, 32), [0.0, 89.9], 8)[2] == 4 * 32
    with pytest.raises(InputError, match="thickness"):
        thin_film_shape((20, 32), angles, 0)


def test_reference_projections_are_ray_sums_at_zero_tilt(rng):
    vol = rng.random(VOLUME)
    geo = ProjectionGeometry(VOLUME, (VOLUME[1], VOLUME[2]), [(0, 0, 0)])
    ray_sum = vol.sum(axis=0)
    np.testing.assert_allclose(ref.forward_project_linear(vol, geo, subpoints=1)[0], ray_sum, rtol=1e-12)
    # fst samples grid points exactly at zero tilt: equal to the ray sum except for the detector's
    # Nyquist row and column, which the fst planes leave out (their sign is ambiguous)
    diff = np.fft.fft2(ref.forward_project_fst(vol, geo, 2)[0] - ray_sum)
    rows, cols = ray_sum.shape
    nyquist = np.zeros(diff.shape, dtype=bool)
    nyquist[rows // 2, :] = nyquist[:, cols // 2] = True
    assert np.abs(diff[~nyquist]).max() < 1e-9 * np.abs(np.fft.fft2(ray_sum)).max()
    assert np.abs(diff[nyquist]).max() > 1e-3  # the check above is not vacuous
