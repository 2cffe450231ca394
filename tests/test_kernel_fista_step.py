"""FISTA's fused vector updates (kernels/fista_step.py): every engine against a float64 NumPy
reference on random inputs at odd and even sizes, bitwise equality of the engines, NaN kept,
errors at the boundary."""

import numpy as np
import pytest

from fastem import backend
from fastem.errors import InputError
from fastem.kernels import fista_extrapolate, fista_update
from fastem.kernels._dispatch import UnsupportedEngineError

from conftest import to_numpy

SHAPES = [(5, 6, 7), (1, 1, 1), (3, 4, 2), (17, 19, 23)]


def _reference_update(y, g, x, step, positivity, support):
    y, g, x = (a.astype(np.float64) for a in (y, g, x))
    xn = y - step * g
    if positivity:
        xn = np.maximum(xn, 0.0)
    if support is not None:
        xn = xn * support
    return xn, float(np.sum((y - xn) * (xn - x)))


def _inputs(rng, shape, dtype):
    return [rng.standard_normal(shape).astype(dtype) for _ in range(4)]


@pytest.mark.parametrize("engine", ["numpy", "numba"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype,rtol", [(np.float32, 2e-6), (np.float64, 1e-13)])
def test_extrapolate_matches_reference(rng, engine, shape, dtype, rtol):
    x, x_prev, y, _ = _inputs(rng, shape, dtype)
    out = fista_extrapolate(x, x_prev, y, 0.73, engine=engine)
    assert out is y
    expect = x.astype(np.float64) + 0.73 * (x.astype(np.float64) - x_prev)
    np.testing.assert_allclose(y, expect, rtol=rtol, atol=rtol * 4)


@pytest.mark.parametrize("engine", ["numpy", "numba"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype,rtol", [(np.float32, 2e-6), (np.float64, 1e-13)])
@pytest.mark.parametrize("positivity", [True, False])
@pytest.mark.parametrize("with_support", [False, True])
def test_update_matches_reference(rng, engine, shape, dtype, rtol, positivity, with_support):
    y, g, x, x_prev = _inputs(rng, shape, dtype)
    support = (rng.random(shape) > 0.3).astype(dtype) if with_support else None
    expect, s_expect = _reference_update(y, g, x, 0.37, positivity, support)
    x0, y0 = x.copy(), y.copy()
    s = fista_update(y, g, x, x_prev, 0.37, positivity=positivity, support=support, engine=engine)
    np.testing.assert_allclose(g, expect, rtol=rtol, atol=rtol * 4)
    np.testing.assert_array_equal(x_prev, x0)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)
    assert s == pytest.approx(s_expect, rel=1e-5 if dtype == np.float32 else 1e-11, abs=1e-9)
    if positivity:
        assert (g >= 0).all()
        if g.size > 10:
            assert (g == 0).any() and (g > 0).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_engines_give_the_same_bits(rng, dtype):
    """No FMA contraction: the Numba engine rounds every element as NumPy does (the solver's
    iterates do not depend on the engine)."""
    shape = (17, 19, 23)
    a = _inputs(rng, shape, dtype)
    b = [v.copy() for v in a]
    support = (rng.random(shape) > 0.2).astype(dtype)
    fista_extrapolate(a[0], a[1], a[2], 0.61, engine="numpy")
    fista_extrapolate(b[0], b[1], b[2], 0.61, engine="numba")
    assert a[2].tobytes() == b[2].tobytes()
    fista_update(a[2], a[3], a[0], a[1], 0.29, support=support, engine="numpy")
    fista_update(b[2], b[3], b[0], b[1], 0.29, support=support, engine="numba")
    assert a[3].tobytes() == b[3].tobytes() and a[1].tobytes() == b[1].tobytes()


@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_update_keeps_nan_for_the_divergence_check(rng, engine):
    y, g, x, x_prev = _inputs(rng, (4, 5, 6), np.float32)
    g[1, 2, 3] = np.nan
    s = fista_update(y, g, x, x_prev, 0.5, positivity=True, engine=engine)
    assert np.isnan(g[1, 2, 3]) and np.isnan(s)
    assert np.isfinite(np.delete(g.reshape(-1), 1 * 30 + 2 * 6 + 3)).all()


def test_errors_name_the_parameter(rng, monkeypatch):
    y, g, x, x_prev = _inputs(rng, (4, 5, 6), np.float32)
    with pytest.raises(InputError, match="fista_update: x_prev is float32 \\(4, 5, 7\\) but y is float32"):
        fista_update(y, g, x, np.zeros((4, 5, 7), np.float32), 0.5)
    with pytest.raises(InputError, match="fista_update: y must be float32 or float64, got int64"):
        fista_update(*(a.astype(np.int64) for a in (y, g, x, x_prev)), 0.5)
    with pytest.raises(InputError, match="fista_update: step must be finite and > 0"):
        fista_update(y, g, x, x_prev, 0.0)
    with pytest.raises(InputError, match="fista_update: support is float64"):
        fista_update(y, g, x, x_prev, 0.5, support=np.ones((4, 5, 6)))
    with pytest.raises(InputError, match="fista_extrapolate: y must be C-contiguous"):
        fista_extrapolate(x, x_prev, np.zeros((6, 5, 4), np.float32).T, 0.5)
    with pytest.raises(InputError, match="fista_extrapolate: momentum must be finite"):
        fista_extrapolate(x, x_prev, y, float("nan"))
    # fault: a scalar of the wrong type raised float()'s TypeError instead of naming the parameter
    with pytest.raises(InputError, match="fista_extrapolate: momentum must be a real number, got NoneType"):
        fista_extrapolate(x, x_prev, y, None)
    with pytest.raises(InputError, match="fista_update: step must be a real number, got str"):
        fista_update(y, g, x, x_prev, "abc")
    with pytest.raises(InputError, match="fista_extrapolate: x_prev must be a NumPy or CuPy array"):
        fista_extrapolate(x, [1.0], y, 0.5)
    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "1")     # lets numba-cuda pass the device check on NumPy arrays
    with pytest.raises(UnsupportedEngineError, match="^fista_update: engine 'numba-cuda' is not implemented"):
        fista_update(y, g, x, x_prev, 0.5, engine="numba-cuda")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("with_support", [False, True])
def test_cuda_engine_gives_numpys_bits(rng, dtype, with_support):
    cp = backend.Device("cuda").xp
    shape = (17, 19, 23)
    a = _inputs(rng, shape, dtype)
    support = (rng.random(shape) > 0.2).astype(dtype) if with_support else None
    d = [cp.asarray(v) for v in a]
    fista_extrapolate(a[0], a[1], a[2], 0.61, engine="numpy")
    fista_extrapolate(d[0], d[1], d[2], 0.61)
    assert to_numpy(d[2]).tobytes() == a[2].tobytes()
    s_ref = fista_update(a[2], a[3], a[0], a[1], 0.29, support=support, engine="numpy")
    s = fista_update(d[2], d[3], d[0], d[1], 0.29, support=None if support is None else cp.asarray(support))
    assert to_numpy(d[3]).tobytes() == a[3].tobytes() and to_numpy(d[1]).tobytes() == a[1].tobytes()
    assert s == pytest.approx(s_ref, rel=1e-9)
