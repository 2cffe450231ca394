"""The README's claim, checked: torch tensors in, torch tensors out, no copies (issue 18).

``fastem.fft`` and the kernels marked ``accepts_torch`` take CPU tensors as zero-copy NumPy views
and return tensors that share the result's memory; the values equal the NumPy path's.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fastem import fft, interop  # noqa: E402
from fastem.errors import InputError  # noqa: E402
from fastem.kernels import axpy_norm, nearest_sampled, pad_rows, spiral_dwell  # noqa: E402


@pytest.mark.parametrize("func,shape,dtype", [
    ("fft2", (3, 9, 8), np.complex64), ("ifftn", (5, 7), np.complex128), ("rfftn", (6, 9), np.float64),
    ("fft", (11,), np.complex128), ("fftshift", (4, 5), np.float32),
])
def test_fft_tensor_in_tensor_out(rng, func, shape, dtype):
    x = rng.standard_normal(shape).astype(dtype)
    if np.dtype(dtype).kind == "c":
        x = x + 1j * rng.standard_normal(shape).astype(dtype)
    t = torch.from_numpy(x.copy())
    got = getattr(fft, func)(t)
    assert interop.is_torch_tensor(got)
    np.testing.assert_allclose(got.numpy(), getattr(fft, func)(x), rtol=1e-5, atol=1e-5)


def test_fft_out_tensor_is_written_in_place(rng):
    x = (rng.standard_normal((4, 6)) + 1j * rng.standard_normal((4, 6))).astype(np.complex128)
    out = torch.zeros((4, 6), dtype=torch.complex128)
    got = fft.fft2(torch.from_numpy(x), out=out)
    assert got.data_ptr() == out.data_ptr()                    # the caller's tensor, not a copy
    np.testing.assert_allclose(out.numpy(), np.fft.fft2(x), rtol=1e-10, atol=1e-10)


def test_kernels_take_tensors(rng):
    x = (rng.standard_normal(33) + 1j * rng.standard_normal(33)).astype(np.complex64)
    y = (rng.standard_normal(33) + 1j * rng.standard_normal(33)).astype(np.complex64)
    tx, ty = torch.from_numpy(x.copy()), torch.from_numpy(y.copy())
    norm = axpy_norm(0.5 - 0.25j, tx, ty)
    expect = np.sum(np.abs(y.astype(np.complex128) + (0.5 - 0.25j) * x) ** 2)
    assert abs(norm - expect) < 1e-4 * expect
    np.testing.assert_allclose(ty.numpy(), y + (0.5 - 0.25j) * x, rtol=1e-5, atol=1e-6)   # y updated in place

    out = torch.zeros((2, 17, 19), dtype=torch.float32)
    res = spiral_dwell(out, 4.0, seed=3)
    assert res.data_ptr() == out.data_ptr() and float(out.sum()) > 0
    np.testing.assert_array_equal(out.numpy(), spiral_dwell(np.zeros((2, 17, 19), np.float32), 4.0, seed=3))

    idx = nearest_sampled((out > 0).to(torch.float32))
    assert interop.is_torch_tensor(idx) and idx.dtype == torch.int32
    vol = rng.standard_normal((2, 3, 5)).astype(np.float32)
    padded = pad_rows(torch.from_numpy(vol), torch.zeros((2, 3, 8)))
    np.testing.assert_array_equal(padded.numpy(), pad_rows(vol, np.zeros((2, 3, 8), np.float32)))


def test_tensor_requiring_grad_is_refused_not_detached():
    t = torch.ones(8, dtype=torch.complex64, requires_grad=True)
    with pytest.raises(InputError, match="requires grad"):
        fft.fft(t)
