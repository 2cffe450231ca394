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
