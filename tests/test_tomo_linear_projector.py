"""The ``linear`` projector divides every voxel in object space (issue 14).

Its 4 sub-points are the voxel's 2 x 2 sub-pixels in the x-z plane at ``(+-1/4, 0, +-1/4)``
(``fastem.kernels.back_project.SUBPOINT_OFFSETS``), mapped onto the detector and splatted
bilinearly. Before, the sub-points sat at ``(u -+ 1/4, v -+ 1/4)`` in the detector plane, which
blurred every voxel by (1/8, 3/4, 1/8) along *both* detector axes, the tilt axis included, at
every angle. Pinned here: single-voxel footprints computed from the equation (not from the
library), and the dot-product test of the pair on every CPU engine at even and odd sizes with
an off-centre rotation axis (the Numba CUDA twins in the simulator).
"""

import math

import numpy as np
import pytest

from fastem.kernels import back_project, forward_project
from fastem.kernels.back_project import with_border
from fastem.tomo import LinearProjector, ProjectionGeometry


def _expected_row(theta_deg, cols, u_centre):
    """Footprint along u of a unit voxel at detector column ``u_centre`` for a tilt ``theta``
    about y: sub-points at ``u + (dx cos + dz sin)``, dx, dz = +-1/4, each 1/4, linear taps."""
    t = math.radians(theta_deg)
    row = np.zeros(cols)
    for dx in (-0.25, 0.25):
        for dz in (-0.25, 0.25):
            s = u_centre + dx * math.cos(t) + dz * math.sin(t)
            i0 = math.floor(s)
            f = s - i0
            row[i0] += 0.25 * (1.0 - f)
            row[i0 + 1] += 0.25 * f
    return row


@pytest.mark.parametrize("shape,detector", [((7, 5, 9), (5, 11)), ((8, 6, 10), (6, 12))])
@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_single_voxel_at_0_degrees_keeps_its_row(shape, detector, engine):
    # one voxel, off the volume centre, at 0 degrees: one detector row (no blur along the tilt
    # axis); along u the two sub-pixel columns at u -+ 1/4 give (1/8, 3/4, 1/8)
    vol = np.zeros(shape)
    vol[2, 3, 6] = 1.0
    geo = ProjectionGeometry(shape, detector, [0.0])
    img = forward_project(vol, geo.coefficients, np.empty(geo.projections_shape), subpoints=4, engine=engine)[0]
    rows, cols = detector
    r = 3 + (rows - shape[1]) // 2  # v = iy + (rows - ny)/2 (integral here)
    c = 6 + (cols - shape[2]) // 2
    expect = np.zeros(detector)
    expect[r, c - 1:c + 2] = (0.125, 0.75, 0.125)
    np.testing.assert_allclose(img, expect, atol=1e-12)
    # the old detector-plane sub-points put 1/8 of the voxel on each neighbouring row
    assert img[r - 1].sum() == 0.0 and img[r + 1].sum() == 0.0


@pytest.mark.parametrize("theta", [0.0, 20.0, 45.0, -60.0, 90.0])
@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_single_voxel_footprint_follows_the_angle(theta, engine):
    shape, detector = (9, 7, 9), (7, 15)
    vol = np.zeros(shape)
    vol[4, 2, 4] = 1.0  # x = z = 0 (centre of the rotation plane): u = (cols-1)/2 at every angle
    geo = ProjectionGeometry(shape, detector, [theta])
    img = forward_project(vol, geo.coefficients, np.empty(geo.projections_shape), subpoints=4, engine=engine)[0]
    expect = np.zeros(detector)
    expect[2] = _expected_row(theta, detector[1], (detector[1] - 1) / 2)
    np.testing.assert_allclose(img, expect, atol=1e-12)
    assert img.sum() == pytest.approx(1.0)
    if theta == 45.0:  # sub-points at u -+ 0.354 (1/4 each) and u (1/2): sharper centre than 3/4
        assert img[2, 7] == pytest.approx(0.5 + 0.5 * (1 - math.sqrt(2) / 4), abs=1e-12)


def test_subpoints_move_with_a_multi_axis_rotation():
    # a rotation about z (phi = 90): the object's x-z sub-pixels land along v (x -> v) at 0 blur in u
    shape, detector = (7, 7, 7), (7, 7)
    vol = np.zeros(shape)
    vol[3, 3, 3] = 1.0
    geo = ProjectionGeometry(shape, detector, np.array([[90.0, 0.0, 0.0]]))
    img = LinearProjector(geo, subpoints=4).project(vol)[0]
    assert img.sum() == pytest.approx(1.0, abs=1e-6)
    # all mass in one column, spread (1/8, 3/4, 1/8) over three rows
    col = np.argmax(img.sum(axis=0))
    np.testing.assert_allclose(np.sort(img[:, col])[-3:], [0.125, 0.125, 0.75], atol=1e-6)
    assert img.sum(axis=0)[col] == pytest.approx(1.0, abs=1e-6)


SIZES = [((8, 10, 12), (9, 14)), ((7, 9, 11), (10, 13))]  # even and odd volumes, even and odd detectors


def _geometry(rng, shape, detector, kind):
    n = 7
    angles = np.linspace(-75, 80, n) if kind == "tilt" else rng.uniform(-90, 90, (n, 3))
    return ProjectionGeometry(shape, detector, angles, center=(detector[1] - 1) / 2 + 1.7)


def _dot_product(rng, geo, engine, dtype=np.float64):
    x = rng.standard_normal(geo.volume_shape).astype(dtype)
    y = rng.standard_normal(geo.projections_shape).astype(dtype)
    px = forward_project(x, geo.coefficients, np.empty(geo.projections_shape, dtype), subpoints=4, engine=engine)
    by = back_project(with_border(y, 0, 1), geo.coefficients, np.empty(geo.volume_shape, dtype), subpoints=4,
                      border=1, engine=engine)
    return float(np.sum(px.astype(np.float64) * y)), float(np.sum(x.astype(np.float64) * by))


@pytest.mark.parametrize("shape,detector", SIZES)
@pytest.mark.parametrize("kind", ["tilt", "euler"])
@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_dot_product_off_centre_axis(rng, shape, detector, kind, engine):
    geo = _geometry(rng, shape, detector, kind)
    assert geo.axis_offset == pytest.approx(1.7)
    lhs, rhs = _dot_product(rng, geo, engine)
    assert abs(lhs) > 1.0
    assert lhs == pytest.approx(rhs, rel=1e-12)


@pytest.mark.cudasim
@pytest.mark.parametrize("shape,detector", [((4, 6, 5), (6, 8)), ((5, 5, 4), (7, 7))])
def test_numba_cuda_dot_product_off_centre_axis_in_simulator(rng, shape, detector):
    geo = _geometry(rng, shape, detector, "euler")
    lhs, rhs = _dot_product(rng, geo, "numba-cuda", np.float32)
    assert abs(lhs) > 0.1
    assert lhs == pytest.approx(rhs, rel=1e-4)
    vol = np.zeros(shape, np.float32)
    vol[2, 2, 2] = 1.0
    geo0 = ProjectionGeometry(shape, detector, [0.0])
    img = forward_project(vol, geo0.coefficients, np.empty(geo0.projections_shape, np.float32), subpoints=4,
                          engine="numba-cuda")[0]
    ref = forward_project(vol.astype(np.float64), geo0.coefficients, np.empty(geo0.projections_shape), subpoints=4,
                          engine="numpy")[0]
    np.testing.assert_allclose(img, ref, atol=1e-6)
    assert np.count_nonzero(img.sum(axis=1)) == 1  # one row


@pytest.mark.parametrize("shape,detector", [((8, 10, 12), (10, 14)), ((7, 9, 11), (11, 13)),
                                            ((6, 12, 9), (8, 11))])  # last: volume taller than the detector
@pytest.mark.parametrize("subpoints", [1, 4])
def test_tilt_kernels_are_exact_adjoints_and_match_the_reference(rng, shape, detector, subpoints):
    # tilts about y take the CPU kernels' per-(projection, z-slice) tap path (tilt_aligned) in both
    # directions when the images are bordered and every thread has whole projections
    from fastem.kernels._projector_taps_numba import tilt_aligned
    from fastem.kernels.back_project import BORDER, subpoint_shifts

    geo = ProjectionGeometry(shape, detector, np.linspace(-80, 75, 9), center=(detector[1] - 1) / 2 - 1.3)
    assert tilt_aligned(geo.coefficients, subpoint_shifts(geo.coefficients, subpoints))
    x = rng.standard_normal(shape)
    y = rng.standard_normal(geo.projections_shape)
    px = forward_project(x, geo.coefficients, np.empty((9, detector[0] + 2 * BORDER, detector[1] + 2 * BORDER)),
                         subpoints=subpoints, border=BORDER, engine="numba")[:, BORDER:-BORDER, BORDER:-BORDER]
    ref = forward_project(x, geo.coefficients, np.empty(geo.projections_shape), subpoints=subpoints, engine="numpy")
    np.testing.assert_allclose(px, ref, rtol=1e-12, atol=1e-12)
    by = back_project(with_border(y, 0, BORDER), geo.coefficients, np.empty(shape), subpoints=subpoints,
                      border=BORDER, engine="numba")
    np.testing.assert_allclose(by, back_project(y, geo.coefficients, np.empty(shape), subpoints=subpoints,
                                                engine="numpy"), rtol=1e-12, atol=1e-12)
    lhs, rhs = float(np.sum(px * y)), float(np.sum(x * by))
    assert abs(lhs) > 1.0 and lhs == pytest.approx(rhs, rel=1e-12)
