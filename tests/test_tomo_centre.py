"""Automatic rotation-axis finding (fastem.tomo.centre) on series with a known axis offset."""

import numpy as np
import pytest

from fastem.data import tilt_series, vesicle_3d
from fastem.errors import InputError
from fastem.tomo import resire
from fastem.tomo.centre import find_center

TILTS = np.arange(-70.0, 71.0, 5.0)


@pytest.fixture(scope="module")
def object24():
    return vesicle_3d(24)


def _series(vol, offset, cols=40, noise=0.01, tilts=TILTS):
    # simulated in the thesis/ASTRA sign: fastem's tilt_series uses the fastem sign, hence -tilts
    return tilt_series(vol, -tilts, detector_shape=(vol.shape[1], cols), centring="middle",
                       center=(cols - 1) / 2 + offset, noise_sigma=noise, seed=3)


@pytest.mark.parametrize("offset", [-7.3, 0.0, 4.5])
def test_centre_of_mass_method_recovers_known_offsets(object24, offset):
    proj = _series(object24, offset)
    est = find_center(proj, TILTS, convention="thesis")
    assert est.method == "com"
    assert est.offset == pytest.approx(offset, abs=0.05)
    assert est.center == pytest.approx(19.5 + offset, abs=0.05)
    assert est.quality > 0.99 and est.fit_rms < 0.1
    # the wrong sign convention cannot fit the sinusoid as well, but the axis is the same
    other = find_center(proj, TILTS, convention="fastem")
    assert other.offset == pytest.approx(offset, abs=0.05)


def test_reprojection_method_finds_the_axis(object24):
    # slower and less exact than com (a shallow minimum, biased by the unconverged SIRT rounds)
    proj = _series(object24, 3.0, noise=0.0)
    est = find_center(proj, TILTS, convention="thesis", method="reprojection", search=6, rows=[9, 14],
                      iterations=15, tolerance=0.25)
    assert est.method == "reprojection"
    assert est.offset == pytest.approx(3.0, abs=0.6)
    assert 0 < est.quality <= 1
    assert len(est.scan) > 10 and min(r for _, r in est.scan) == pytest.approx(est.r_factor, rel=0.2)


def test_found_centre_reconstructs_better(object24):
    proj = _series(object24, 4.5, noise=0.0)
    est = find_center(proj, TILTS, convention="thesis")
    kw = dict(iterations=20, projector="linear", convention="thesis", volume_shape=(24, 24, 24), progress=False)
    good = resire(proj, TILTS, center=est.center, **kw)
    bad = resire(proj, TILTS, **kw)  # axis assumed at the middle
    err = lambda v: np.linalg.norm(v - object24) / np.linalg.norm(object24)  # noqa: E731
    assert err(good.volume) < 0.6 * err(bad.volume)
    assert good.config["center"] == pytest.approx(est.center)


def test_centre_finding_errors(object24):
    proj = _series(object24, 0.0)
    with pytest.raises(InputError, match="single tilt axis"):
        find_center(proj, np.stack([np.zeros_like(TILTS), TILTS, TILTS], axis=1))
    with pytest.raises(InputError, match="method must be"):
        find_center(proj, TILTS, method="vo")
    mask = np.ones(proj.shape, bool)
    mask[0, :2, :2] = False
    with pytest.raises(InputError, match="com.*reprojection"):
        find_center(proj, TILTS, mask=mask)
    with pytest.raises(InputError, match="at least 3 projections"):
        find_center(proj[:2], TILTS[:2])
    with pytest.raises(InputError, match="rows must be detector rows"):
        find_center(proj, TILTS, method="reprojection", rows=[99])
