"""The projection geometry is pinned: a single off-centre voxel lands where fastem.geometry says."""

import numpy as np
import pytest

from fastem.errors import InputError
from fastem.geometry import project_point, rotation_matrices
from fastem.tomo import (FourierSliceProjector, LinearProjector, ProjectionGeometry, projection_coefficients,
                         thin_film_shape)
from fastem.tomo import _reference as ref

VOLUME = (16, 14, 12)  # (nz, ny, nx): all different so that no axis can be confused
DETECTOR = (15, 18)    # (rows, cols), odd x even


def _voxel_volume(x, y, z):
    vol = np.zeros(VOLUME, dtype=np.float32)
    nz, ny, nx = VOLUME
    vol[z + nz // 2, y + ny // 2, x + nx // 2] = 1.0
    return vol


def _centroid(img):
    rows, cols = np.indices(img.shape)
    s = img.sum()
    return float((rows * img).sum() / s), float((cols * img).sum() / s)


ANGLES = [(0, 0, 0), (0, 30, 0), (0, -45, 0), (0, 90, 0), (25, 40, -15), (-60, 10, 70), (90, 0, 0)]


@pytest.mark.parametrize("angles", ANGLES)
@pytest.mark.parametrize("subpoints", [1, 4])
def test_single_voxel_lands_on_predicted_pixel(angles, subpoints):
    x, y, z = 3, -2, 4
    geo = ProjectionGeometry(VOLUME, DETECTOR, [angles])
    img = LinearProjector(geo, subpoints=subpoints).project(_voxel_volume(x, y, z))[0]
    row, col = project_point(geo.rotations[0], (x, y, z), DETECTOR)
    # the splat is centred on the predicted position (sub-points are symmetric) and carries unit mass
    assert img.sum() == pytest.approx(1.0, abs=1e-6)
    r, c = _centroid(img)
    assert r == pytest.approx(row, abs=1e-5)
    assert c == pytest.approx(col, abs=1e-5)
    # the brightest pixel is the nearest one to the prediction
    peak = np.unravel_index(np.argmax(img), img.shape)
    assert abs(peak[0] - row) <= 0.5 + 1e-9 and abs(peak[1] - col) <= 0.5 + 1e-9


def test_integer_landing_is_one_pixel_and_matches_by_hand():
    # R = I: u = x, v = y -> image (rows, cols) = (v, u) is the sum over z
    x, y, z = 3, -2, 4
    geo = ProjectionGeometry(VOLUME, DETECTOR, [(0, 0, 0)])
    img = LinearProjector(geo, subpoints=1).project(_voxel_volume(x, y, z))[0]
    expect = np.zeros(DETECTOR)
    expect[DETECTOR[0] // 2 + y, DETECTOR[1] // 2 + x] = 1.0
    np.testing.assert_array_equal(img, expect)
    # 90 degrees about y: u = x cos + z sin = z; the x offset disappears into the beam
    geo = ProjectionGeometry(VOLUME, DETECTOR, [(0, 90, 0)])
    img = LinearProjector(geo, subpoints=1).project(_voxel_volume(x, y, z))[0]
    assert np.unravel_index(np.argmax(img), img.shape) == (DETECTOR[0] // 2 + y, DETECTOR[1] // 2 + z)


def test_positive_tilt_moves_a_voxel_above_the_centre_towards_plus_u():
    # a voxel at z > 0 on the axis: +theta about y moves it to u = z sin(theta) > 0 (larger column)
    geo = ProjectionGeometry(VOLUME, DETECTOR, [(0, -30, 0), (0, 0, 0), (0, 30, 0)])
    imgs = LinearProjector(geo, subpoints=1).project(_voxel_volume(0, 0, 4))
    cols = [_centroid(im)[1] for im in imgs]
    centre = DETECTOR[1] // 2
    assert cols[1] == pytest.approx(centre)
    assert cols[2] == pytest.approx(centre + 4 * np.sin(np.deg2rad(30)), abs=1e-5)
    assert cols[0] == pytest.approx(centre - 4 * np.sin(np.deg2rad(30)), abs=1e-5)
    # and a voxel at x > 0 moves towards the centre: u = x cos(theta)
    imgs = LinearProjector(geo, subpoints=1).project(_voxel_volume(5, 0, 0))
    assert _centroid(imgs[2])[1] == pytest.approx(centre + 5 * np.cos(np.deg2rad(30)), abs=1e-5)


@pytest.mark.parametrize("angles", [(0, 30, 0), (25, 40, -15)])
def test_fst_projector_agrees_on_the_position(angles):
    # a smooth blob well inside the volume (a single voxel has a flat spectrum that trilinear
    # interpolation blurs; off-centre features are also damped by its apodization, so os=4)
    x, y, z = 2, -1, 2
    zz, yy, xx = np.meshgrid(*(np.arange(n) - n // 2 for n in VOLUME), indexing="ij")
    blob = np.exp(-((xx - x) ** 2 + (yy - y) ** 2 + (zz - z) ** 2) / (2 * 1.0 ** 2)).astype(np.float32)
    geo = ProjectionGeometry(VOLUME, DETECTOR, [angles])
    img = FourierSliceProjector(geo, oversampling=4).project(blob)[0]
    row, col = project_point(geo.rotations[0], (x, y, z), DETECTOR)
    r, c = _centroid(img)
    assert r == pytest.approx(row, abs=0.05)
    assert c == pytest.approx(col, abs=0.05)
    assert img.sum() == pytest.approx(blob.sum(), rel=0.02)


def test_coefficients_match_project_point(rng):
    angles = rng.uniform(-90, 90, (5, 3))
    R = rotation_matrices(angles)
    c = projection_coefficients(R, VOLUME, DETECTOR)
    nz, ny, nx = VOLUME
    for k in range(5):
        for _ in range(4):
            iz, iy, ix = (int(rng.integers(n)) for n in VOLUME)
            row, col = project_point(R[k], (ix - nx // 2, iy - ny // 2, iz - nz // 2), DETECTOR)
            assert c[k, 0] @ [ix, iy, iz, 1.0] == pytest.approx(col)
            assert c[k, 1] @ [ix, iy, iz, 1.0] == pytest.approx(row)


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
