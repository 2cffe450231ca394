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

import functools
from typing import Any

import numpy as np

from . import backend
from .errors import InputError

__all__ = ["is_torch_tensor", "to_torch", "from_torch", "as_array", "like", "as_numba_cuda", "require_torch",
           "accepts_torch"]


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


def _to_view(x: Any):
    return from_torch(x) if is_torch_tensor(x) else x


def _to_tensor(r: Any):
    if isinstance(r, np.ndarray) or backend.is_cupy_array(r):
        return to_torch(r)
    if isinstance(r, tuple):
        return tuple(_to_tensor(v) for v in r)
    return r


def accepts_torch(func):
    """Let a NumPy/CuPy function take torch tensors: zero-copy views in, tensors back out.

    When any argument is a ``torch.Tensor``, every tensor argument is replaced by its NumPy (CPU)
    or CuPy (CUDA) view (:func:`from_torch`: shared memory, no copy; a tensor that requires grad
    is refused rather than silently detached), and every array the function returns (alone or in
    a tuple) comes back as a tensor sharing its memory. Scalars are returned as they are. Calls
    without tensors go straight through (one type check per argument).
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if not (any(map(is_torch_tensor, args)) or any(map(is_torch_tensor, kwargs.values()))):
            return func(*args, **kwargs)
        args = tuple(_to_view(a) for a in args)
        kwargs = {k: _to_view(v) for k, v in kwargs.items()}
        return _to_tensor(func(*args, **kwargs))

    return wrapper
