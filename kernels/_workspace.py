"""Scratch buffers kept per calling thread, so hot loops of same-shaped kernel calls allocate nothing.

A buffer lives under a name in the calling thread's storage and is reused while its key (shapes,
dtype) is unchanged; a new key replaces it. Per thread, because the CPU kernels release the GIL:
two threads running the same kernel (a Dask worker's threads, a user's pool) must never share
scratch.
"""

from __future__ import annotations

import threading

_LOCAL = threading.local()


def thread_buffer(name: str, key, make):
    """The calling thread's buffer ``name``: the cached one while ``key`` is unchanged, else ``make()``."""
    cached = getattr(_LOCAL, name, None)
    if cached is None or cached[0] != key:
        cached = (key, make())
        setattr(_LOCAL, name, cached)
    return cached[1]


def tilt_transposed(volume_shape, images_shape, volume_dtype, images_dtype):
    """The calling thread's transposed scratch of the tilt projectors: ``(volume_t, images_t)``,
    ``volume_t`` (nz, nx, ny) of ``volume_dtype`` and ``images_t`` (nk, cp, rp) of ``images_dtype``
    for a (nz, ny, nx) volume and (nk, rp, cp) bordered images.

    One pair serves the forward and the back tilt kernel: both overwrite all of it before reading
    (the forward kernel transposes the volume into ``volume_t`` and accumulates ``images_t`` from
    zero; the back kernel transposes the images into ``images_t`` and accumulates ``volume_t``
    from zero), and one thread runs one kernel at a time. A solver alternating the two then holds
    one volume and one image stack of scratch, not two of each.
    """
    import numpy as np

    nz, ny, nx = (int(v) for v in volume_shape)
    nk, rp, cp = (int(v) for v in images_shape)
    key = ((nz, nx, ny), (nk, cp, rp), np.dtype(volume_dtype).str, np.dtype(images_dtype).str)
    return thread_buffer("tilt_transposed", key, lambda: (np.empty((nz, nx, ny), volume_dtype),
                                                         np.empty((nk, cp, rp), images_dtype)))
