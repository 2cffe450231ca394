"""Zero-copy interchange between NumPy, CuPy, PyTorch and Numba.

* NumPy <-> torch CPU tensors share memory (``torch.from_numpy`` / ``Tensor.numpy``).
* CuPy <-> torch CUDA tensors go through DLPack. Both directions are stream-safe: the producer
  is asked for a capsule that is valid on the consumer's *current* stream (the DLPack
  ``__dlpack__(stream=...)`` protocol, which both libraries implement), so no explicit
  synchronisation is needed and nothing is copied.
* CuPy arrays enter Numba CUDA kernels through ``__cuda_array_interface__``
  (:func:`as_numba_cuda`); NumPy arrays enter Numba CPU kernels as they are.

torch is optional: these functions import it lazily and raise a clear error when it is missing.
Nothing here ever copies silently; where a zero-copy view is impossible (negative strides for
torch, a tensor that requires grad) an :class:`~fastem.errors.InputError` says so.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import backend
from .errors import InputError

__all__ = ["is_torch_tensor", "to_torch", "from_torch", "as_array", "like", "as_numba_cuda", "require_torch"]


def require_torch():
    """The ``torch`` module, or an error telling how to install it."""
    torch = backend.optional_module("torch")
    if torch is None:
        raise ImportError("this feature needs PyTorch: pip install 'fastem[torch]' (torch==2.13.0 on our machines)")
    return torch


def is_torch_tensor(x: Any) -> bool:
    """True for a ``torch.Tensor`` (without importing torch if it is not loaded)."""
    return type(x).__module__.startswith("torch") and hasattr(x, "data_ptr") and hasattr(x, "device")


def to_torch(a: Any):
    """A torch tensor sharing memory with the NumPy or CuPy array ``a`` (tensors pass through).

    Raises
    ------
    InputError
        when ``a`` cannot be viewed without a copy (e.g. negative strides).
    """
    if is_torch_tensor(a):
        return a
    torch = require_torch()
    if backend.is_cupy_array(a):
        return torch.from_dlpack(a)
    if isinstance(a, np.ndarray):
        if any(s < 0 for s in a.strides):
            raise InputError("to_torch: array has negative strides (a flipped view); torch cannot share it "
                             "without a copy: pass np.ascontiguousarray(a) if a copy is acceptable")
        return torch.from_numpy(a)
    raise InputError(f"to_torch: expected a NumPy or CuPy array, got {type(a).__name__}")


def from_torch(t: Any):
    """A NumPy (CPU tensor) or CuPy (CUDA tensor) array sharing memory with ``t``.

    Tensors that require grad are refused (call ``.detach()`` first: that is also zero-copy).
    """
    if not is_torch_tensor(t):
        raise InputError(f"from_torch: expected a torch.Tensor, got {type(t).__name__}")
    if t.requires_grad:
        raise InputError("from_torch: tensor requires grad; pass tensor.detach() (no copy) instead")
    if t.device.type == "cpu":
        return t.numpy()
    if t.device.type == "cuda":
        if not backend.cupy_available():
            raise InputError(f"from_torch: a CUDA tensor needs CuPy to be viewed as an array ({backend.gpu_unavailable_reason()})")
        import cupy as cp

        return cp.from_dlpack(t)
    raise InputError(f"from_torch: unsupported tensor device {t.device}")


def as_array(x: Any):
    """NumPy/CuPy arrays as they are; torch tensors as a zero-copy NumPy/CuPy view."""
    if is_torch_tensor(x):
        return from_torch(x.detach())
    return x


def like(result: Any, template: Any):
    """Return ``result`` (a NumPy/CuPy array) in the type of ``template`` (tensor or array), zero-copy."""
    if is_torch_tensor(template):
        return to_torch(result)
    return result


def as_numba_cuda(a: Any):
    """A Numba CUDA device-array view of a CuPy array or CUDA tensor (NumPy passes through)."""
    if is_torch_tensor(a):
        a = from_torch(a.detach())
    if backend.is_cupy_array(a):
        from numba import cuda

        return cuda.as_cuda_array(a)
    return a
