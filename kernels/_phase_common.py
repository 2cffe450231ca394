"""Argument checks shared by the phase-retrieval kernels (``phase_fourier``, ``phase_real``)."""

from __future__ import annotations

import numpy as np

from fastem.errors import InputError

REAL_OF = {np.dtype(np.complex64): np.dtype(np.float32), np.dtype(np.complex128): np.dtype(np.float64)}


def check_batch(func: str, mode, modes, buf, data, data_name: str):
    """Check ``mode``, the complex ``buf`` ``(R, *grid)`` or ``grid`` and its real per-pixel
    array ``data`` (shape ``grid``); return the real dtype.
    """
    if mode not in modes:
        raise InputError(f"{func}: unknown mode {mode!r}; expected one of {modes}")
    if buf.dtype not in REAL_OF:
        raise InputError(f"{func}: buf must be complex64 or complex128, got {buf.dtype}")
    rdt = REAL_OF[buf.dtype]
    grid = tuple(data.shape)
    if data.dtype != rdt:
        raise InputError(f"{func}: {data_name} must be {rdt} for {buf.dtype} data, got {data.dtype}")
    if tuple(buf.shape[-len(grid):]) != grid or buf.ndim not in (len(grid), len(grid) + 1):
        raise InputError(f"{func}: buf has shape {tuple(buf.shape)}; expected {grid} "
                         f"or (runs, {', '.join(map(str, grid))})")
    return rdt


def check_contiguous(func: str, arrays) -> None:
    for name, a in arrays:
        if not a.flags.c_contiguous:
            raise InputError(f"{func}: {name} must be C-contiguous")
