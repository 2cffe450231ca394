"""Gathering rows by element offset: mini-batches read straight from a memory-mapped file.

A mini-batch of an HDF5 dataset stored without compression does not need a read into a buffer
first: with the file memory-mapped (``flat``, the file as one vector of the data's dtype) and the
element offset of each wanted row (from the dataset's chunk index), the batch is a gather
``out[i] = flat[offsets[i] : offsets[i] + d]`` straight from the page cache (issue 21: streaming
at the speed of memory when the file is cached, at the disk's when it is not). The same kernel
gathers from an in-memory array (``offsets = rows * d`` over ``X.ravel()``).

Engines: ``numpy`` (the reference: one fancy index), ``numba`` (a parallel loop, the default).
"""

from __future__ import annotations

import numpy as np

from fastem.errors import InputError

from ._dispatch import KernelDispatcher, require_arrays

__all__ = ["gather_rows"]

_GATHER = KernelDispatcher("gather_rows", ("numpy", "numba"))


@_GATHER.register("numpy")
def _gather_numpy(flat, offsets, out):
    out[...] = flat[offsets[:, None] + np.arange(out.shape[1])]
    return out


@_GATHER.register("numba")
def _gather_numba(flat, offsets, out):
    from ._gather_rows_numba import gather_rows_at

    gather_rows_at(flat, offsets, out)
    return out


def gather_rows(flat, offsets, out, *, engine: str | None = None):
    """``out[i, :] = flat[offsets[i] : offsets[i] + d]`` for every ``i``.

    Parameters
    ----------
    flat : ndarray (L,), float32 or float64, host
        The data as one vector (e.g. ``numpy.memmap`` of a file, or ``X.ravel()``).
    offsets : int64 ndarray (M,)
        Element offset in ``flat`` of each row to gather, in the order wanted.
    out : ndarray (M, d), C-contiguous, same dtype as ``flat``
        Written; returned.
    engine : {None, "numpy", "numba"}

    Raises
    ------
    InputError
        Shapes, dtypes, or an offset outside ``[0, L - d]`` (checked here, so a wrong offset is an
        error, not a read of foreign memory).
    """
    require_arrays("gather_rows", (), flat=flat, offsets=offsets, out=out)
    if flat.ndim != 1 or out.ndim != 2 or offsets.ndim != 1:
        raise InputError(f"gather_rows: need flat (L,), offsets (M,) and out (M, d), got {flat.shape}, "
                         f"{offsets.shape} and {out.shape}")
    if out.dtype != flat.dtype or not out.flags.c_contiguous:
        raise InputError(f"gather_rows: out must be C-contiguous {flat.dtype}, got {out.dtype}")
    if offsets.dtype != np.int64:
        raise InputError(f"gather_rows: offsets must be int64, got {offsets.dtype}")
    if out.shape[0] != offsets.shape[0]:
        raise InputError(f"gather_rows: out has {out.shape[0]} rows for {offsets.shape[0]} offsets")
    if offsets.shape[0] and (int(offsets.min()) < 0 or int(offsets.max()) + out.shape[1] > flat.shape[0]):
        raise InputError(f"gather_rows: offsets must lie in [0, {flat.shape[0] - out.shape[1]}] (rows of "
                         f"{out.shape[1]} in {flat.shape[0]} elements), got {int(offsets.min())} to "
                         f"{int(offsets.max())}")
    return _GATHER(engine, (flat, out), flat, np.ascontiguousarray(offsets), out)
