"""Fused complex axpy and squared norm -- the example kernel of fastem's build path.

This module shows the pattern every fastem kernel follows:

1. a plain NumPy implementation (``engine="numpy"``), which is also the float64 test oracle;
2. the CPU twin, ``_axpy_norm_numba.py`` (``@njit(parallel=True, cache=True)``);
3. the GPU kernels: CUDA C in ``cuda/axpy_norm.cu`` (loaded by ``_cuda.get_function``) and
   Numba CUDA in ``_axpy_norm_numba_cuda.py``;
4. one implementation per engine, registered on the kernel's ``KernelDispatcher``
   (``_dispatch.py``), and one public function that validates its inputs and calls the
   dispatcher, which resolves the engine for the arrays' device (``engine=None`` picks
   ``numba`` for NumPy arrays, ``cuda`` for CuPy arrays) and runs its implementation.
"""

from __future__ import annotations

import contextlib

import numpy as np

from fastem import backend
from fastem.errors import InputError

from fastem.interop import accepts_torch

from ._dispatch import KernelDispatcher, require_arrays, as_numba_cuda, numba_cuda_stream

_AXPY_NORM = KernelDispatcher("axpy_norm", ("numpy", "numba", "cuda", "numba-cuda"))

__all__ = ["axpy_norm"]

_SUPPORTED = (np.dtype(np.complex64), np.dtype(np.complex128))


@_AXPY_NORM.register("numpy")
def _axpy_norm_numpy(a, x, y) -> float:
    xp = backend.get_array_module(x)
    y += xp.asarray(a, dtype=y.dtype) * x
    return float(xp.sum(y.real.astype(np.float64) ** 2 + y.imag.astype(np.float64) ** 2))


@_AXPY_NORM.register("numba")
def _axpy_norm_numba(a, x, y) -> float:
    from ._axpy_norm_numba import axpy_norm_numba

    scalar = np.complex64(a) if x.dtype == np.complex64 else np.complex128(a)
    return float(axpy_norm_numba(scalar, x.reshape(-1), y.reshape(-1)))


@_AXPY_NORM.register("cuda", "numba-cuda", with_engine=True)
def _axpy_norm_gpu(a, x, y, engine):
    xp = backend.get_array_module(x)
    with backend.get_device(x).use() if backend.is_cupy_array(x) else contextlib.nullcontext():
        out = xp.zeros(1, dtype=np.float64)
        if engine == "cuda":
            from . import _cuda

            name = "axpy_norm_c64" if x.dtype == np.complex64 else "axpy_norm_c128"
            kernel = _cuda.get_function("axpy_norm", name, backend.get_device(x))
            grid, block = _cuda.launch_config(x.size, threads=256, max_blocks=4096)
            kernel(grid, block, (x.dtype.type(a), x, y, np.int64(x.size), out))
        else:  # numba-cuda
            from ._axpy_norm_numba_cuda import axpy_norm_numba_cuda

            axpy_norm_numba_cuda(x.dtype.type(a), as_numba_cuda(x.reshape(-1)), as_numba_cuda(y.reshape(-1)),
                                 as_numba_cuda(out), stream=numba_cuda_stream())
        return out[0] if backend.is_cupy_array(x) else float(out[0])


@accepts_torch
def axpy_norm(a: complex, x, y, engine: str | None = None):
    """In place ``y <- a * x + y``; return ``||y||^2 = sum |y_i|^2`` (accumulated in float64).

    Parameters
    ----------
    a : complex
        Scalar multiplier.
    x : ndarray, complex64 or complex128, any shape, C-contiguous
        NumPy or CuPy array; not modified.
    y : ndarray, same shape, dtype and device as ``x``, C-contiguous
        Updated in place.
    engine : {None, "numpy", "numba", "cuda", "numba-cuda"}
        ``None`` picks ``"numba"`` on the CPU and ``"cuda"`` on the GPU.

    Returns
    -------
    float or cupy 0-d float64 array
        The squared norm of the updated ``y``. On the GPU it stays on the device (no host
        synchronisation); call ``float()`` on it when you need it on the host.
    """
    require_arrays("axpy_norm", (), x=x, y=y)
    if x.shape != y.shape:
        raise InputError(f"axpy_norm: x has shape {x.shape} but y has shape {y.shape}")
    if x.dtype != y.dtype or x.dtype not in _SUPPORTED:
        raise InputError(f"axpy_norm: x and y must both be complex64 or complex128, got {x.dtype} and {y.dtype}")
    if not (x.flags.c_contiguous and y.flags.c_contiguous):
        raise InputError("axpy_norm: x and y must be C-contiguous")
    return _AXPY_NORM(engine, (x, y), complex(a), x, y)
