"""Rows of an uncompressed HDF5 dataset read in place, through a memory map (issue 21).

An HDF5 dataset stored without filters keeps each row's values as ``d`` consecutive numbers in
the file: contiguous datasets row after row, chunked ones row-major inside each chunk, provided
a chunk spans whole rows (every pattern axis unchunked). :func:`map_rows` finds the element
offset of every row from the dataset's chunk index (``h5py``'s ``chunk_iter``) and maps the file
read-only; a mini-batch is then a gather straight from the page cache
(:func:`fastem.kernels.gather_rows`), with no read into a window buffer first and no second
copy. When the file is not cached, the gather's page faults read it from disk.

Anything else (compression or other filters, unallocated chunks, chunks that split a row, a
byte order or dtype other than the working one, offsets not aligned to the dtype, a driver other
than the default) returns ``None`` and the caller reads windows of chunks as before.
"""

from __future__ import annotations

import sys

import numpy as np

__all__ = ["MappedRows", "map_rows"]


class MappedRows:
    """``flat``: the file as a read-only vector of the dtype; ``offsets[r]``: row ``r``'s first
    element in it (int64, (N,))."""

    def __init__(self, flat, offsets):
        self.flat, self.offsets = flat, offsets

    def close(self) -> None:
        mm = getattr(self.flat, "_mmap", None)
        self.flat = None
        if mm is not None:
            try:
                mm.close()
            except BufferError:       # a view is still alive somewhere; the map goes with it
                pass


def map_rows(dataset, n: int, d: int, dtype) -> MappedRows | None:
    """A :class:`MappedRows` for ``dataset`` ((N, d), (N, ky, kx) or (Ny, Nx, ky, kx), rows
    flattened in C order) when its storage allows it (module docstring), else ``None``."""
    dtype = np.dtype(dtype)
    try:
        if (dataset.dtype != dtype or dataset.dtype.byteorder not in ("=", "|", "<" if sys.byteorder == "little"
                                                                      else ">")
                or dataset.file.driver != "sec2" or dataset.id.get_create_plist().get_nfilters() != 0
                or dataset.id.get_create_plist().get_external_count() != 0):
            return None
        shape = tuple(int(s) for s in dataset.shape)
        lead = 1 if len(shape) in (2, 3) else 2                 # row axes: (N,) or (Ny, Nx)
        itemsize = dtype.itemsize
        if dataset.chunks is None:
            off = dataset.id.get_offset()
            if off is None or off % itemsize:
                return None
            offsets = off // itemsize + np.arange(n, dtype=np.int64) * d
        else:
            chunks = tuple(int(c) for c in dataset.chunks)
            if chunks[lead:] != shape[lead:]:                   # a chunk must hold whole rows
                return None
            offsets = np.full(n, -1, np.int64)
            bad = []

            def place(info):
                if info.filter_mask or info.byte_offset is None or info.byte_offset % itemsize:
                    bad.append(info)
                    return
                base = info.byte_offset // itemsize
                start = info.chunk_offset[:lead]
                stop = [min(s + c, full) for s, c, full in zip(start, chunks[:lead], shape[:lead])]
                if lead == 1:
                    r = np.arange(start[0], stop[0], dtype=np.int64)
                    local = r - start[0]
                else:
                    y = np.arange(start[0], stop[0], dtype=np.int64)[:, None]
                    x = np.arange(start[1], stop[1], dtype=np.int64)[None, :]
                    r = (y * shape[1] + x).ravel()
                    local = ((y - start[0]) * chunks[1] + (x - start[1])).ravel()
                offsets[r] = base + local * d

            if hasattr(dataset.id, "chunk_iter"):
                dataset.id.chunk_iter(place)
            else:   # pragma: no cover - h5py < 3.8
                for i in range(dataset.id.get_num_chunks()):
                    place(dataset.id.get_chunk_info(i))
            if bad or (offsets < 0).any():                     # filtered or unallocated chunks
                return None
        import os

        size = os.path.getsize(dataset.file.filename) // itemsize
        if n and int(offsets.max()) + d > size:
            return None
        flat = np.memmap(dataset.file.filename, dtype=dtype, mode="r", shape=(size,))
        return MappedRows(flat, offsets)
    except (AttributeError, OSError, ValueError, TypeError):   # an h5py / file layout this cannot map
        return None
