"""Zero-copy interop: NumPy <-> torch (CPU), CuPy <-> torch (GPU), arrays into Numba."""

import numpy as np
import pytest

from fastem import backend, interop
from fastem.errors import InputError

torch = pytest.importorskip("torch")


def test_numpy_to_torch_shares_memory(rng):
    a = rng.standard_normal((4, 5)).astype(np.float32)
    t = interop.to_torch(a)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    assert t.data_ptr() == a.ctypes.data
    t[1, 2] = 42.0
    assert a[1, 2] == 42.0


def test_torch_to_numpy_shares_memory():
    t = torch.arange(12, dtype=torch.float64).reshape(3, 4)
    a = interop.from_torch(t)
    assert a.ctypes.data == t.data_ptr()
    a[0, 0] = -7.0
    assert t[0, 0].item() == -7.0


def test_strided_views_stay_views(rng):
    a = rng.standard_normal((6, 8))
    v = a[::2, 1::3]
    t = interop.to_torch(v)
    t.mul_(2.0)
    np.testing.assert_array_equal(a[::2, 1::3], t.numpy())
    assert np.shares_memory(interop.from_torch(t), a)


def test_refusals_instead_of_hidden_copies(rng):
    with pytest.raises(InputError, match="negative strides"):
        interop.to_torch(rng.standard_normal(5)[::-1])
    with pytest.raises(InputError, match="requires grad"):
        interop.from_torch(torch.ones(3, requires_grad=True))
    with pytest.raises(InputError, match="NumPy or CuPy"):
        interop.to_torch([1, 2, 3])


def test_as_array_and_like(rng):
    t = torch.randn(3, 3, requires_grad=True)
    a = interop.as_array(t)
    assert isinstance(a, np.ndarray) and a.ctypes.data == t.data_ptr()
    back = interop.like(a * 2, t)
    assert isinstance(back, torch.Tensor)
    x = rng.standard_normal(3)
    assert interop.as_array(x) is x and interop.like(x, x) is x


def test_numpy_passes_into_numba():
    a = np.arange(5.0)
    assert interop.as_numba_cuda(a) is a


@pytest.mark.gpu
def test_cupy_torch_dlpack_round_trip(rng):
    cp = backend.Device("cuda").xp
    a = cp.asarray(rng.standard_normal((7, 9)).astype(np.float32))
    t = interop.to_torch(a)
    assert t.is_cuda and t.data_ptr() == a.data.ptr
    t.add_(1.0)
    torch.cuda.synchronize()
    b = interop.from_torch(t)
    assert b.data.ptr == a.data.ptr
    np.testing.assert_array_equal(b.get(), a.get())
    nb = interop.as_numba_cuda(t)
    assert nb.__cuda_array_interface__["data"][0] == a.data.ptr
