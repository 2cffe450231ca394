"""Mini-batch streams: uniform random rows, or a shuffled reservoir of whole HDF5 chunks.

:class:`UniformSampler` draws ``M`` distinct rows uniformly at every step (the thesis' setting;
from a chunked HDF5 file each row costs a whole chunk read).

:class:`ChunkSampler` makes one *plan* per epoch from the seed and the chunk layout alone:

1. the rows are cut into *blocks* of whole chunks (:func:`sampling_blocks`; a chunk of the row
   axes, grown to whole multiples of the chunk up to ``min_rows`` rows, e.g. 8x8 scan tiles of a
   4D scan chunked ``(8, 8, ky, kx)``);
2. the blocks are shuffled, and consecutive blocks are grouped into *windows* of at least
   ``window_rows`` rows (default ``4 M``: the reservoir);
3. the rows of each window are shuffled, and the epoch is the concatenation of the windows;
   mini-batches are consecutive runs of ``M`` rows of it (a batch may span two windows, or the
   end of one epoch and the start of the next).

Every row is used exactly once per epoch and every chunk is read exactly once per epoch; a
background thread reads the next window (whole chunks, decompressed, preprocessed) while the
current one is consumed, so I/O overlaps the compute. A file stored without compression and
needing no preprocessing is not read into windows at all: each batch is gathered in place from a
memory map of the file (:mod:`fastem.cluster.mapped`), the same rows in the same order. The plan depends only on the random
generator, the number of rows, the block layout, ``M`` and ``window_rows``: an in-memory array
given the same ``sampling_chunks`` gets the same batches, bit for bit (tested).

What changes statistically (docs/cluster.md): a batch is a uniform sample of the rows of the
``ceil(window_rows / block_rows)`` blocks in its window, not of all ``N`` rows, so neighbouring
probe positions (which tend to share a phase) arrive together; sampling is without replacement
within an epoch (scikit-learn's MiniBatchKMeans samples with replacement per step).
"""

from __future__ import annotations

import warnings
from collections import deque

import numpy as np

from .source import gather

__all__ = ["UniformSampler", "ChunkSampler", "sampling_blocks", "MIN_BLOCK_ROWS", "MAX_BLOCK_BYTES"]

MIN_BLOCK_ROWS = 64
MAX_BLOCK_BYTES = 256 * 2 ** 20


def _host_rows(source):
    """``(X, row_of)``: where a step's kernel can read the prepared rows itself, without a batch
    copy: the in-memory host array (``row_of`` ``None``: data row ``r`` is ``X[r]``), or the file
    mapped in place by :meth:`DataSource.mapped` (``X`` the flat map, ``row_of[r]`` row ``r``'s
    element offset; :func:`fastem.kernels.assign_accumulate` takes both); ``(None, None)`` else."""
    X = getattr(source, "_in_memory", None)
    if isinstance(X, np.ndarray):
        return X, None
    if getattr(source, "streaming", False) and source.xp is np:
        mapped = source.mapped()
        if mapped is not None:
            return mapped.flat, mapped.offsets
    return None, None


class UniformSampler:
    """``M`` distinct rows drawn uniformly per step (sorted), gathered into one reused buffer."""

    def __init__(self, source, rng, m: int):
        self.source, self.rng, self.m = source, rng, int(m)
        self.buf = None
        self.last_rows = None

    @property
    def in_memory(self):
        """The prepared host (NumPy) data when the source holds it (or maps its file in place),
        else ``None``: a step can then assign ``X[draw()]`` without gathering the batch first
        (``assign_accumulate(rows=)``)."""
        return _host_rows(self.source)[0]

    def draw(self):
        """The next batch's rows (sorted data rows) as :attr:`in_memory` addresses them (row
        indices, or element offsets into a mapped file)."""
        from .core import draw_batch

        self.last_rows = draw_batch(self.rng, self.source.n, self.m)
        row_of = _host_rows(self.source)[1]
        return self.last_rows if row_of is None else row_of[self.last_rows]

    def next(self):
        idx = self.draw()
        if self.buf is None:
            self.buf = self.source.batch_buffer(self.m)
        return self.source.rows(idx, out=self.buf)

    def close(self):
        pass


def _grow(lead, chunk_lead, min_rows):
    """Block extents on the row axes: whole chunks, grown along the last row axis first."""
    c = [max(1, min(int(ci), int(li))) for ci, li in zip(chunk_lead, lead)]
    if len(lead) == 1:
        g = -(-min_rows // c[0])
        return (min(lead[0], c[0] * g),)
    cy, cx = c
    gx = min(-(-lead[1] // cx), max(1, -(-min_rows // (cy * cx))))
    bx = min(lead[1], cx * gx)
    by = cy
    if cy * bx < min_rows and bx >= lead[1]:
        by = min(lead[0], cy * -(-min_rows // (cy * bx)))
    return by, bx


def sampling_blocks(shape, chunks, *, min_rows: int = MIN_BLOCK_ROWS, name: str = "X", itemsize: int = 4,
                    warn: bool = True):
    """Blocks of whole chunks covering the rows of a dataset of ``shape``.

    Parameters
    ----------
    shape : tuple
        The data's shape: ``(N, ...)`` (one row axis) or ``(Ny, Nx, ky, kx)`` (two row axes).
    chunks : tuple or None
        The HDF5 chunk shape (None: contiguous; blocks of ``min_rows`` rows).
    min_rows : int
        Blocks hold at least this many rows when the data allows (fewer, larger reads), and at
        most ``N / 16`` rows unless a single chunk is larger.

    Returns
    -------
    list of (selection, rows)
        ``selection``: tuple of slices of the row axes (what to read); ``rows``: int64 flat row
        indices of the block in row-major order (what the read returns).

    Warns
    -----
    fastem.io.DataWarning
        When a block must read more than ``MAX_BLOCK_BYTES`` or one chunk holds more than a
        quarter of the rows: chunk-aware streaming cannot be efficient with that layout.
    """
    shape = tuple(int(s) for s in shape)
    lead = shape[:2] if len(shape) == 4 else shape[:1]
    row_items = int(np.prod(shape[len(lead):])) if len(shape) > len(lead) else 1
    n = int(np.prod(lead))
    min_rows = max(1, min(int(min_rows), n // 16))  # at least ~16 blocks to shuffle
    if chunks is None:
        chunk_lead = (1,) * (len(lead) - 1) + (min(lead[-1], min_rows),)
        ext = _grow(lead, chunk_lead, min_rows)
    else:
        chunks = tuple(int(c) for c in chunks)
        chunk_lead = chunks[:len(lead)]
        ext = _grow(lead, chunk_lead, min_rows)
        block_rows = int(np.prod(ext))
        block_bytes = block_rows * row_items * itemsize
        chunk_rows = int(np.prod([min(c, li) for c, li in zip(chunk_lead, lead)]))
        if warn and (block_bytes > MAX_BLOCK_BYTES or (n >= 16 and chunk_rows > n // 4)):
            from fastem.io import DataWarning

            good = ("(1, 32" if len(lead) == 2 else "(64") + "".join(f", {s}" for s in shape[len(lead):]) + ")"
            warnings.warn(f"{name}: HDF5 chunks {chunks} hold {int(np.prod(chunk_lead))} row(s) each, so one "
                          f"chunk-aware read is {block_rows} rows ({block_bytes / 2 ** 20:.0f} MiB) of {n}: "
                          f"mini-batches cannot be streamed efficiently; rechunk the file with whole patterns per "
                          f"chunk, e.g. h5repack -l <dataset>:CHUNK={'x'.join(good.strip('()').split(', '))}, "
                          f"or read it into memory first (a NumPy array instead of the dataset; the CLI: --load)",
                          DataWarning, stacklevel=3)
    blocks = []
    if len(lead) == 1:
        for a in range(0, lead[0], ext[0]):
            b = min(lead[0], a + ext[0])
            blocks.append(((slice(a, b),), np.arange(a, b, dtype=np.int64)))
        return blocks
    ny, nx = lead
    for y0 in range(0, ny, ext[0]):
        y1 = min(ny, y0 + ext[0])
        for x0 in range(0, nx, ext[1]):
            x1 = min(nx, x0 + ext[1])
            rows = (np.arange(y0, y1, dtype=np.int64)[:, None] * nx + np.arange(x0, x1, dtype=np.int64)).ravel()
            blocks.append(((slice(y0, y1), slice(x0, x1)), rows))
    return blocks


class _Window:
    __slots__ = ("blocks", "order", "local", "data", "pos")

    def __init__(self, blocks, order, local):
        self.blocks, self.order, self.local, self.data, self.pos = blocks, order, local, None, 0


class ChunkSampler:
    """Mini-batches from a shuffled reservoir of whole chunks (module docstring).

    Parameters
    ----------
    source : DataSource
    rng : numpy.random.Generator
        The only randomness of the plan (same generator state -> same batches).
    m : int
        Batch size ``M`` (``min(M, N)``).
    chunks : tuple, optional
        Chunk shape (default: the HDF5 dataset's; contiguous / in memory: blocks of 64 rows).
    window_rows : int, optional
        Reservoir window (default ``4 M``; at least ``M``).
    prefetch : bool
        Read the next window in a background thread (streamed data only).
    """

    def __init__(self, source, rng, m: int, *, chunks=None, window_rows: int | None = None, prefetch: bool = True):
        self.source, self.rng = source, rng
        self.m = min(int(m), source.n)
        if chunks is None and source.streaming:
            chunks = source._data.chunks
        itemsize = np.dtype(source._data.dtype).itemsize
        if chunks is not None and len(chunks) != len(source.shape):
            from fastem.errors import InputError

            raise InputError(f"sampling_chunks {tuple(chunks)} must have one entry per axis of {source.name} "
                             f"(shape {source.shape})")
        self.blocks = sampling_blocks(source.shape if len(source.shape) > 1 else (source.n, 1), chunks,
                                      name=source.name, itemsize=itemsize)
        self.block_rows = np.array([b[1].size for b in self.blocks], np.int64)
        self.window_rows = max(self.m, int(window_rows) if window_rows else 4 * self.m)
        self.buf = source.batch_buffer(self.m)
        self._plan = deque()
        self._cur = None
        self._pool = None
        self._bufs = [None, None]
        self._slot = 0
        self.prefetch = bool(prefetch) and source.streaming
        # an uncompressed file: batches gathered in place from the page cache, no window reads
        self.mapped = source.mapped() if source.streaming else None
        self.last_rows = None
        self.epochs_planned = 0

    # -- plan --------------------------------------------------------------------------------
    def _plan_epoch(self):
        order = self.rng.permutation(len(self.blocks))
        group, rows = [], 0
        for b in order:
            group.append(int(b))
            rows += int(self.block_rows[b])
            if rows >= self.window_rows:
                self._add_window(group, rows)
                group, rows = [], 0
        if group:
            self._add_window(group, rows)
        self.epochs_planned += 1

    def _add_window(self, group, rows):
        perm = self.rng.permutation(rows)
        concat = np.concatenate([self.blocks[b][1] for b in group])
        order = concat[perm]  # global row ids in batch order
        local = order if not self.source.streaming else perm
        self._plan.append(_Window(group, order, local))

    def _read(self, w, slot):
        """Read window ``w`` into window buffer ``slot`` (two buffers alternate: the one being
        consumed and the one being filled; allocated once, so no page faults per window)."""
        src = self.source
        rows = int(self.block_rows[w.blocks].sum())
        if self._bufs[slot] is None:
            cap = self.window_rows + int(self.block_rows.max())
            self._bufs[slot] = src.xp.empty((cap, src.d), src.dtype)
        out = self._bufs[slot][:rows]
        at = 0
        for b in w.blocks:
            n = int(self.block_rows[b])
            src.read_block(self.blocks[b][0], out=out[at:at + n])
            at += n
        return out

    def _ensure(self, k):
        while len(self._plan) < k:
            self._plan_epoch()

    def _next_window(self):
        self._ensure(2)
        w = self._plan.popleft()
        if not self.source.streaming:
            w.data = self.source._in_memory
            return w
        if self.mapped is not None:
            return w
        if self.prefetch:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(1, thread_name_prefix="fastem-chunk-reader")
            if w.data is None:
                w.data = self._pool.submit(self._read, w, self._flip())
            w.data = w.data.result()
            nxt = self._plan[0]  # the previous window is consumed: its buffer takes the next one
            if nxt.data is None:
                nxt.data = self._pool.submit(self._read, nxt, self._flip())
        else:
            w.data = self._read(w, 0)
        return w

    def _flip(self) -> int:
        self._slot ^= 1
        return self._slot

    # -- batches -----------------------------------------------------------------------------
    @property
    def in_memory(self):
        """As :attr:`UniformSampler.in_memory` (same rows, same order as :meth:`next`)."""
        return _host_rows(self.source)[0]

    def draw(self):
        """The next batch's rows (the ones :meth:`next` would gather, in its order) as
        :attr:`in_memory` addresses them, without reading them."""
        parts, filled = [], 0
        while filled < self.m:
            if self._cur is None or self._cur.pos >= self._cur.local.size:
                self._ensure(2)
                self._cur = self._plan.popleft()
            w = self._cur
            k = min(self.m - filled, w.local.size - w.pos)
            parts.append(w.order[w.pos:w.pos + k])
            w.pos += k
            filled += k
        self.last_rows = parts[0] if len(parts) == 1 else np.concatenate(parts)
        row_of = _host_rows(self.source)[1]
        return self.last_rows if row_of is None else row_of[self.last_rows]

    def next(self, track: bool = False):
        """The next ``(M, d)`` batch (the sampler's buffer, overwritten by the next call).

        ``track``: also set ``last_rows`` to the batch's global row indices (tests)."""
        filled = 0
        parts = [] if track else None
        while filled < self.m:
            if self._cur is None or self._cur.pos >= self._cur.local.size:
                self._cur = self._next_window()
            w = self._cur
            k = min(self.m - filled, w.local.size - w.pos)
            if self.mapped is not None:
                from fastem.kernels import gather_rows

                gather_rows(self.mapped.flat, self.mapped.offsets[w.order[w.pos:w.pos + k]],
                            self.buf[filled:filled + k])
            else:
                gather(w.data, w.local[w.pos:w.pos + k], self.buf[filled:filled + k])
            if track:
                parts.append(w.order[w.pos:w.pos + k])
            w.pos += k
            filled += k
        if track:
            self.last_rows = np.concatenate(parts)
        return self.buf

    def close(self):
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._plan.clear()
        self._cur = None
        self._bufs = [None, None]
