"""Boundary validation: rank, shape, non-finite values, angle units."""

import warnings

import numpy as np
import pytest

from fastem.errors import InputError
from fastem.io import DataWarning, angles_to_degrees, check_finite, check_ndim, check_same_shape


def test_check_ndim_and_same_shape(rng):
    a = rng.standard_normal((4, 5))
    assert check_ndim(a, 2, "a") is a
    assert check_ndim(a, (2, 3), "a") is a
    with pytest.raises(InputError, match=r"^f.h5:/x: expected a 3D array, got shape \(4, 5\)$"):
        check_ndim(a, 3, "f.h5:/x")
    check_same_shape(a, a.copy(), ("data", "mask"))
    with pytest.raises(InputError, match=r"data has shape \(4, 5\) but mask has shape \(5, 4\)"):
        check_same_shape(a, a.T, ("data", "mask"))


def test_check_finite_passes_finite_arrays_without_copy(rng):
    a = rng.standard_normal((3, 4, 5))
    assert check_finite(a, "a") is a
    ints = np.arange(5)
    assert check_finite(ints, "ints") is ints


def test_check_finite_error_counts_and_frames(rng):
    a = rng.standard_normal((6, 4, 5))
    a[1, 2, 3] = np.nan
    a[1, 0, 0] = np.inf
    a[4, 3, 4] = np.nan
    with pytest.raises(InputError) as exc:
        check_finite(a, "d.h5:/exchange/data", frame_label="projection")
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith("d.h5:/exchange/data: 3 non-finite values (NaN 2, inf 1) of 120")
    assert "in 2 of 6 projections (projection 1: 2, projection 4: 1)" in msg
    assert "first at index (1, 0, 0)" in msg and "refusing to continue" in msg


def test_check_finite_zero_and_ignore_policies(rng):
    a = rng.standard_normal((8, 9))
    a[2, 3] = np.nan
    with pytest.warns(DataWarning, match=r"1 non-finite value \(NaN 1\) of 72, first at index \(2, 3\); they are set to 0"):
        out = check_finite(a, "img", policy="zero")
    assert out[2, 3] == 0 and np.isnan(a[2, 3])  # a copy was cleaned
    np.testing.assert_array_equal(np.delete(out.ravel(), 2 * 9 + 3), np.delete(a.ravel(), 2 * 9 + 3))
    with pytest.warns(DataWarning, match="left as they are"):
        same = check_finite(a, "img", policy="ignore")
    assert same is a


def test_angles_units_attribute_honoured():
    rad = np.deg2rad([-60.0, 0.0, 60.0])
    np.testing.assert_allclose(angles_to_degrees(rad, {"units": "radians"}), [-60.0, 0.0, 60.0])
    np.testing.assert_allclose(angles_to_degrees(rad, {"units": b"rad"}), [-60.0, 0.0, 60.0])
    np.testing.assert_allclose(angles_to_degrees([10.0, 20.0], {"units": "degrees"}), [10.0, 20.0])
    with pytest.raises(InputError, match=r"theta: unknown angle units 'grad'"):
        angles_to_degrees([1.0, 2.0], {"units": "grad"}, what="theta")


def test_angles_beyond_two_pi_in_degrees_are_fine():
    deg = np.arange(-70.0, 71.0, 3.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = angles_to_degrees(deg, {})
    np.testing.assert_array_equal(out, deg)


def test_angles_that_look_like_radians_warn_but_stay_degrees():
    rad = np.deg2rad(np.arange(-70.0, 71.0, 3.5))
    with pytest.warns(DataWarning, match="look like radians but are taken as degrees"):
        out = angles_to_degrees(rad, None, what="f.h5:/exchange/theta")
    np.testing.assert_array_equal(out, rad)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        angles_to_degrees([0.1, 0.2, 0.3], None)  # a narrow range of small degrees is plausible


def test_angles_non_finite_rejected():
    with pytest.raises(InputError, match=r"angles: 1 non-finite angle\(s\), first at flat index 2"):
        angles_to_degrees([1.0, 2.0, np.nan])
