"""The ``fst`` projector's gridding correction against the exact line integral (issue 14).

Gaussian blobs off the volume centre have analytic parallel-beam projections
(``bench/tomo_fst_model_error.py``); trilinear sampling of the padded spectrum weights the
volume by ``sinc^2(t/P)`` per interpolated axis, which the correction divides out. Pinned: the
corrected ``fst`` error is well below the uncorrected one on both a tilt series and Euler
angles, even and odd sizes, and falls with the oversampling; the correction factors themselves;
the fast projector still matches the float64 reference (which applies the same correction).
"""

import numpy as np
import pytest

from fastem.bench.tomo_fst_model_error import blob_volume, exact_projections, model_errors
from fastem.errors import InputError
from fastem.tomo import FourierSliceProjector, ProjectionGeometry
from fastem.tomo import _reference as ref
from fastem.tomo.operators import gridding_correction


@pytest.mark.parametrize("n", [16, 17])
def test_gridding_correction_reduces_the_model_error(n):
    err = model_errors(n, sigma=1.2, seed=3, n_blobs=3)
    for case in ("tilt -70..70 (15)", "Euler random (10)"):
        raw2 = err[(case, "fst os 2, no correction")]
        cor2 = err[(case, "fst os 2, gridding corrected")]
        cor3 = err[(case, "fst os 3, gridding corrected")]
        assert cor2 < 0.75 * raw2, (case, raw2, cor2)
        assert cor3 < cor2
        assert cor2 < 0.08
    assert err[("Euler random (10)", "fst os 3, gridding corrected")] < 0.02


def test_gridding_correction_factors():
    cz, cy, cx = gridding_correction((8, 9, 10), (16, 18, 30))
    assert cz[4] == 1.0 and cy[4] == 1.0 and cx[5] == 1.0  # the FFT origin n//2
    assert cz[0] == pytest.approx(1.0 / np.sinc(4 / 16) ** 2)  # face at os 2: 1/0.81
    assert cx[0] == pytest.approx(1.0 / np.sinc(5 / 30) ** 2)
    # an axis sampled only at grid coordinates (tilt axis y) is left alone
    frames = np.zeros((2, 2, 3))
    frames[:, 0, 0] = [0.7, 1.0]
    frames[:, 1, 1] = 1.0
    frames[:, 0, 2] = [0.3, 0.0]
    cz, cy, cx = gridding_correction((8, 9, 10), (16, 18, 30), frames)
    assert np.all(cy == 1.0) and cz[0] > 1.0 and cx[0] > 1.0


def test_corrected_fst_matches_reference_and_the_option(rng):
    shape = (10, 9, 12)
    geo = ProjectionGeometry(shape, (11, 13), rng.uniform(-80, 80, (4, 3)), center=6.4)
    vol = (rng.random(shape) + 0.1).astype(np.float32)
    on = FourierSliceProjector(geo, 2.0).project(vol)
    off = FourierSliceProjector(geo, 2.0, gridding=False).project(vol)
    np.testing.assert_allclose(on, ref.forward_project_fst(vol, geo, 2.0), rtol=2e-4, atol=2e-4 * np.abs(on).max())
    np.testing.assert_allclose(off, ref.forward_project_fst(vol, geo, 2.0, gridding=False), rtol=2e-4,
                               atol=2e-4 * np.abs(off).max())
    assert np.abs(on - off).max() > 0.01 * np.abs(on).max()  # the correction does something
    with pytest.raises(InputError, match="gridding"):
        FourierSliceProjector(geo, 2.0, gridding="yes")


def test_exact_projection_of_a_centred_blob_is_its_line_integral():
    # the oracle itself: a centred blob's exact projection sums to the blob's volume integral
    geo = ProjectionGeometry((21, 21, 21), (21, 21), [0.0, 37.0])
    ex = exact_projections(geo, [(0.0, 0.0, 0.0)], 1.5)
    vol = blob_volume((21, 21, 21), [(0.0, 0.0, 0.0)], 1.5)
    np.testing.assert_allclose(ex.sum(axis=(1, 2)), vol.sum(), rtol=1e-6)
