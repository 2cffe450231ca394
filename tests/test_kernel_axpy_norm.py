"""The example kernel: every engine against the float64 NumPy reference."""

import numpy as np
import pytest

from fastem import backend
from fastem.errors import InputError
from fastem.kernels import axpy_norm

from conftest import random_complex, to_numpy

SHAPES = [(1,), (7,), (1000,), (33, 17), (4, 5, 6), (256, 257)]


def _reference(a, x, y):
    y64 = to_numpy(y).astype(np.complex128)
    norm = axpy_norm(a, to_numpy(x).astype(np.complex128), y64, engine="numpy")
    return y64, norm


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype,rtol", [(np.complex64, 2e-6), (np.complex128, 1e-12)])
@pytest.mark.parametrize("engine", [None, "numpy", "numba"])
def test_cpu_engines_match_reference(rng, shape, dtype, rtol, engine):
    a = complex(rng.standard_normal(), rng.standard_normal())
    x, y = random_complex(rng, shape, dtype), random_complex(rng, shape, dtype)
    y_ref, norm_ref = _reference(a, x, y)
    norm = axpy_norm(a, x, y, engine=engine)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, y_ref, rtol=rtol, atol=rtol)
    assert norm == pytest.approx(norm_ref, rel=rtol * 10)


def test_reference_is_the_definition(rng):
    x, y = random_complex(rng, (5,)), random_complex(rng, (5,))
    expect = 0.5j * x + y
    norm = axpy_norm(0.5j, x, y, engine="numpy")
    np.testing.assert_allclose(y, expect, rtol=1e-15)
    assert norm == pytest.approx(float(np.sum(np.abs(expect) ** 2)), rel=1e-14)


def test_bad_input(rng):
    x = random_complex(rng, (4,), np.complex64)
    with pytest.raises(InputError, match="shape"):
        axpy_norm(1.0, x, random_complex(rng, (5,), np.complex64))
    with pytest.raises(InputError, match="complex64 or complex128"):
        axpy_norm(1.0, x, random_complex(rng, (4,), np.complex128))
    with pytest.raises(InputError, match="complex64 or complex128"):
        axpy_norm(1.0, x.real.copy(), x.real.copy())
    with pytest.raises(InputError, match="contiguous"):
        axpy_norm(1.0, random_complex(rng, (4, 4))[:, ::2], random_complex(rng, (4, 2)))
    with pytest.raises(ValueError, match="unknown engine"):
        axpy_norm(1.0, x, x.copy(), engine="fortran")
    with pytest.raises(ValueError, match="GPU"):
        axpy_norm(1.0, x, x.copy(), engine="cuda")


@pytest.mark.gpu
@pytest.mark.parametrize("engine", ["cuda", "numba-cuda"])
@pytest.mark.parametrize("shape", [(1,), (1001,), (513, 257)])
@pytest.mark.parametrize("dtype,rtol", [(np.complex64, 2e-6), (np.complex128, 1e-12)])
def test_gpu_engines_match_reference(rng, engine, shape, dtype, rtol):
    cp = backend.Device("cuda").xp
    a = complex(rng.standard_normal(), rng.standard_normal())
    x, y = random_complex(rng, shape, dtype), random_complex(rng, shape, dtype)
    y_ref, norm_ref = _reference(a, x, y)
    xd, yd = cp.asarray(x), cp.asarray(y)
    norm = axpy_norm(a, xd, yd, engine=engine)
    assert backend.is_cupy_array(norm)  # stays on the device: no host sync
    np.testing.assert_allclose(to_numpy(yd), y_ref, rtol=rtol, atol=rtol)
    assert float(norm) == pytest.approx(norm_ref, rel=rtol * 10)


@pytest.mark.cudasim
@pytest.mark.parametrize("shape", [(1,), (37,), (300,), (9, 11)])
def test_numba_cuda_kernel_in_simulator(rng, shape):
    a = complex(rng.standard_normal(), rng.standard_normal())
    x, y = random_complex(rng, shape), random_complex(rng, shape)
    y_ref, norm_ref = _reference(a, x, y)
    norm = axpy_norm(a, x, y, engine="numba-cuda")
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    assert norm == pytest.approx(norm_ref, rel=1e-12)
