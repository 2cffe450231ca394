"""fastem.optim functional Laplacian smoothing against float64 matrix references."""

from __future__ import annotations

import subprocess
import sys
from math import comb

import numpy as np
import pytest

from fastem import optim
from fastem.errors import InputError


def periodic_laplacian(m: int) -> np.ndarray:
    L = -2.0 * np.eye(m)
    for i in range(m):
        L[i, (i + 1) % m] += 1.0
        L[i, (i - 1) % m] += 1.0
    return L


def smoothing_matrix(m: int, order: int, sigma: float) -> np.ndarray:
    return np.eye(m) + (-1) ** order * sigma * np.linalg.matrix_power(periodic_laplacian(m), order)


def circulant(v: np.ndarray) -> np.ndarray:
    m = len(v)
    return np.array([np.roll(v, i) for i in range(m)])


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_coefficients_are_signed_binomials(order):
    c = optim.laplacian_coefficients(order)
    assert c.tolist() == [(-1) ** k * comb(2 * order, k) for k in range(2 * order + 1)]
    if order == 2:
        assert c.tolist() == [1, -4, 6, -4, 1]


@pytest.mark.parametrize("m", [3, 5, 7, 8, 16, 17])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_stencil_is_first_row_of_laplacian_power(m, order):
    v = optim.laplacian_stencil(m, order)
    Ln = np.linalg.matrix_power(periodic_laplacian(m), order)
    np.testing.assert_allclose(circulant(v), Ln, atol=1e-9)


@pytest.mark.parametrize("m", [5, 8, 9, 64, 101])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_denominator_matches_fft_of_explicit_circulant(m, order):
    sigma = 0.7
    A = smoothing_matrix(m, order, sigma)
    spec = np.fft.rfft(A[0])  # A is circulant and symmetric: eigenvalues = fft of its first row
    den = optim.laplacian_denominator(m, order, sigma)
    assert den.shape == (m // 2 + 1,) and den.dtype == np.float64
    np.testing.assert_allclose(spec.imag, 0.0, atol=1e-9)
    np.testing.assert_allclose(den, spec.real, rtol=1e-12, atol=1e-9)
    assert den[0] == 1.0 and np.all(den >= 1.0)


def test_denominator_cached_and_read_only():
    a = optim.laplacian_denominator(40, 2, 1.5, np.float32)
    b = optim.laplacian_denominator(40, 2, 1.5, np.float32)
    assert a is b and a.dtype == np.float32
    assert not a.flags.writeable
    assert optim.laplacian_denominator(40, 2, 1.5, np.float64) is not a


@pytest.mark.parametrize("m", [7, 16, 33, 100])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_A_times_smoothed_gives_gradient_1d(rng, m, order):
    sigma = 1.3
    g = rng.standard_normal(m) + 0.3
    d = optim.laplacian_smooth(g, sigma, order)
    assert isinstance(d, np.ndarray) and d.dtype == np.float64 and d.shape == g.shape
    np.testing.assert_allclose(smoothing_matrix(m, order, sigma) @ d, g, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(d.mean(), g.mean(), rtol=1e-12)
    assert np.linalg.norm(d - d.mean()) < np.linalg.norm(g - g.mean())  # it smooths


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_batched_along_any_axis(rng, axis):
    g = rng.standard_normal((9, 12, 5))
    order, sigma = 2, 0.5
    d = optim.laplacian_smooth(g, sigma, order, axis=axis)
    m = g.shape[axis]
    A = smoothing_matrix(m, order, sigma)
    back = np.moveaxis(np.tensordot(A, np.moveaxis(d, axis, 0), axes=(1, 0)), 0, axis)
    np.testing.assert_allclose(back, g, atol=1e-10)
    np.testing.assert_allclose(d.mean(axis=axis), g.mean(axis=axis), atol=1e-12)


def test_float32_against_float64(rng):
    g = rng.standard_normal((6, 257)).astype(np.float32)
    d32 = optim.laplacian_smooth(g, 2.0, 1)
    d64 = optim.laplacian_smooth(g.astype(np.float64), 2.0, 1)
    assert d32.dtype == np.float32
    np.testing.assert_allclose(d32, d64, rtol=0, atol=1e-5)


def test_smooth_rows_in_place(rng):
    x = rng.standard_normal((4, 31))
    ref = np.stack([np.linalg.solve(smoothing_matrix(31, 1, 1.0), r) for r in x])
    out = optim.smooth_rows(x, 1.0, 1, out=x)
    assert out is x
    np.testing.assert_allclose(x, ref, atol=1e-10)


@pytest.mark.parametrize("order,m", [(1, 1), (1, 2), (2, 4), (3, 6)])
def test_short_signals_pass_through(rng, order, m):
    g = rng.standard_normal((3, m))
    d = optim.laplacian_smooth(g, 1.0, order)
    assert d is not g
    np.testing.assert_array_equal(d, g)


def test_shortest_smoothed_length_is_smoothed(rng):
    g = rng.standard_normal(5)
    d = optim.laplacian_smooth(g, 1.0, 2)
    np.testing.assert_allclose(smoothing_matrix(5, 2, 1.0) @ d, g, atol=1e-12)
    assert not np.allclose(d, g)


def test_out_argument_and_sigma_zero(rng):
    g = rng.standard_normal(20)
    out = np.empty_like(g)
    assert optim.laplacian_smooth(g, 0.0, 1, out=out) is out
    np.testing.assert_array_equal(out, g)


@pytest.mark.parametrize("bad", [dict(sigma=-1.0), dict(order=0), dict(order=1.5), dict(sigma=float("nan"))])
def test_bad_parameters(rng, bad):
    kw = dict(sigma=1.0, order=1)
    kw.update(bad)
    with pytest.raises(InputError):
        optim.laplacian_smooth(rng.standard_normal(10), **kw)


def test_complex_input_refused():
    with pytest.raises(InputError):
        optim.laplacian_smooth(np.ones(8, np.complex64))


def test_torch_tensor_in_same_type_out(rng):
    torch = pytest.importorskip("torch")
    g = rng.standard_normal((3, 40))
    t = torch.from_numpy(g.astype(np.float32)).requires_grad_(True)
    d = optim.laplacian_smooth(t, 1.0, 2)
    assert isinstance(d, torch.Tensor) and d.dtype == torch.float32 and d.shape == t.shape
    np.testing.assert_allclose(d.numpy(), optim.laplacian_smooth(g, 1.0, 2), atol=1e-5)
    h = optim.laplacian_smooth(t.detach().to(torch.bfloat16), 1.0, 1)
    assert h.dtype == torch.bfloat16


def test_torch_fallback_path_matches(rng):
    torch = pytest.importorskip("torch")
    from fastem.optim.smoothing import _smooth_rows_torch

    g = rng.standard_normal((5, 64))
    a = _smooth_rows_torch(torch.from_numpy(g), 0.8, 2).numpy()
    np.testing.assert_allclose(a, optim.smooth_rows(g.copy(), 0.8, 2), atol=1e-12)


@pytest.mark.parametrize("m", [50, 51])
def test_every_device_matches_matrix_solve(xp, rng, m):
    """NumPy and (with a GPU) CuPy against the float64 dense solve ``(I + sigma L) d = g``, same type out."""
    g = rng.standard_normal((4, m))
    d = optim.laplacian_smooth(xp.asarray(g), 1.3, 1)
    assert type(d) is type(xp.asarray(g))
    host = d.get() if hasattr(d, "get") else d
    expect = np.linalg.solve(smoothing_matrix(m, 1, 1.3), g.T).T
    np.testing.assert_allclose(host, expect, rtol=1e-9, atol=1e-10)


def test_imports_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import numpy as np, fastem, fastem.optim as o\n"
            "d = o.laplacian_smooth(np.arange(10.0), 1.0, 1); assert abs(d.mean() - 4.5) < 1e-12\n"
            "try:\n    o.LSSGD\nexcept ImportError:\n    print('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"
