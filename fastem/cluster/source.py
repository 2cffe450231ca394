"""Where the points come from: an in-memory array (NumPy or CuPy) or an HDF5 dataset on disk.

Every algorithm in :mod:`fastem.cluster` reads data only through :class:`DataSource`:
``rows(idx)`` (a mini-batch; ``idx`` sorted, as HDF5 point selection requires) and
``chunks()`` (contiguous blocks for full-data passes). Both return C-contiguous ``(m, d)``
arrays in the working dtype on the working device, so an HDF5 dataset larger than memory is
streamed, and the same seed draws the same mini-batches from memory and from disk.
"""

from __future__ import annotations

import numpy as np

from fastem import backend
from fastem.errors import InputError

__all__ = ["DataSource", "as_source", "working_dtype"]


def working_dtype(dtype, requested=None) -> np.dtype:
    """float32 data stays float32, everything else is computed in float64 (unless ``requested``)."""
    if requested is not None:
        try:
            req = np.dtype(requested)
        except TypeError:
            raise InputError(f"dtype must be float32 or float64, got {requested!r}") from None
        if req not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise InputError(f"dtype must be float32 or float64, got {req}")
        return req
    return np.dtype(np.float32) if np.dtype(dtype) == np.float32 else np.dtype(np.float64)


def _is_h5(data) -> bool:
    try:
        import h5py
    except ImportError:  # pragma: no cover
        return False
    return isinstance(data, h5py.Dataset)


class DataSource:
    """Points ``(N, d)`` (or ``(N, h, w)`` images, flattened to ``d = h*w``) for clustering.

    Parameters
    ----------
    data : numpy.ndarray, cupy.ndarray or h5py.Dataset
        Rank 2 or 3 (rank 1 is taken as ``N`` points with ``d = 1``). An ``h5py.Dataset`` is
        never read whole: mini-batches and chunks are read on demand.
    dtype : {None, float32, float64}
        Working dtype (default: float32 for float32 data, float64 otherwise).
    device : fastem.backend.Device or str, optional
        Where batches are computed. Default: the array's device; ``cpu`` for HDF5.
    chunk_rows : int, optional
        Rows per chunk in full-data passes (default: about 32 MiB of float64 per chunk).
    name : str
        How errors refer to the data.
    """

    def __init__(self, data, *, dtype=None, device=None, chunk_rows: int | None = None, name: str = "X"):
        self.name = name
        self.streaming = _is_h5(data)
        if not self.streaming and not backend.is_cupy_array(data):
            data = np.asarray(data)
        shape = tuple(data.shape)
        if len(shape) == 1:
            shape = (shape[0], 1)
        if len(shape) not in (2, 3):
            raise InputError(f"{name}: expected (N, d) points or (N, h, w) images, got shape {tuple(data.shape)}")
        self.n = int(shape[0])
        self.d = int(np.prod(shape[1:]))
        if self.d == 0:
            raise InputError(f"{name}: points have d = 0 features (shape {tuple(data.shape)})")
        if self.n == 0:
            raise InputError(f"{name}: no points (shape {tuple(data.shape)})")
        kind = np.dtype(data.dtype).kind
        if kind not in "fiub":
            raise InputError(f"{name}: expected a real numeric array, got dtype {data.dtype}")
        self.dtype = working_dtype(data.dtype, dtype)
        self.device = backend.resolve_device(device) if device is not None else (
            backend.get_device(data) if not self.streaming else backend.Device("cpu"))
        self.xp = self.device.xp
        self._data = data
        self._in_memory = None
        if not self.streaming:
            flat = data.reshape(self.n, self.d)
            if backend.get_device(flat) != self.device:
                flat = self.xp.asarray(backend_to_numpy(flat))
            self._in_memory = self.xp.ascontiguousarray(flat.astype(self.dtype, copy=False))
        row_bytes = 8 * max(self.d, 1)
        self.chunk_rows = int(chunk_rows) if chunk_rows else int(np.clip(2 ** 25 // row_bytes, 256, 65536))
        if self.chunk_rows < 1:
            raise InputError(f"chunk_rows must be >= 1, got {chunk_rows}")

    # -- reads -------------------------------------------------------------------------------
    def _prepare(self, block):
        block = np.asarray(block).reshape(block.shape[0], self.d)
        return self.xp.ascontiguousarray(self.xp.asarray(block.astype(self.dtype, copy=False)))

    def batch_buffer(self, m: int):
        """A reusable ``(min(m, N), d)`` array in the working dtype for :meth:`rows` (``out=``)."""
        return self.xp.empty((min(int(m), self.n), self.d), self.dtype)

    def rows(self, idx: np.ndarray, out=None):
        """Rows ``idx`` (sorted, unique int64 on the host) as a contiguous ``(len(idx), d)`` array.

        ``out``: a buffer from :meth:`batch_buffer` that in-memory gathers write into (no
        allocation per mini-batch); streamed reads ignore it."""
        if self._in_memory is not None:
            if idx.size == self.n:
                return self._in_memory
            if out is not None and out.shape == (idx.size, self.d):
                return self.xp.take(self._in_memory, self.xp.asarray(idx), axis=0, out=out)
            return self._in_memory[self.xp.asarray(idx)]
        if idx.size == self.n:
            return self._prepare(self._data[()])
        return self._prepare(self._data[idx])

    def chunks(self, rows: int | None = None):
        """Yield ``(start, block)`` over the whole data in contiguous blocks of ``rows``."""
        rows = rows or self.chunk_rows
        for start in range(0, self.n, rows):
            stop = min(self.n, start + rows)
            if self._in_memory is not None:
                yield start, self._in_memory[start:stop]
            else:
                yield start, self._prepare(self._data[start:stop])

    # -- checks ------------------------------------------------------------------------------
    def check_finite(self) -> float:
        """Raise :class:`InputError` naming the first row with a NaN or infinite value.

        Returns the largest ``|x|`` of the data (one streamed pass does both), which
        :meth:`check_range` compares with what squared distances can hold.
        """
        xp = self.xp
        largest = 0.0
        for start, block in self.chunks():
            ok = xp.isfinite(block).all(axis=1)
            if not bool(ok.all()):
                bad = np.flatnonzero(~backend_to_numpy(ok))
                raise InputError(f"{self.name}: row {start + int(bad[0])} contains NaN or Inf "
                                 f"({bad.size} bad row(s) in rows {start}..{start + block.shape[0] - 1}); "
                                 "remove or impute them first")
            if block.size:
                largest = max(largest, float(xp.abs(block).max()))
        return largest

    def max_abs_for(self, dtype) -> float:
        """Largest ``|x|`` whose squared distances (and their float64 total over N) cannot overflow in ``dtype``.

        A distance is at most ``4 d max|x|^2`` (centroids lie in the data's bounding box); the
        kernel's cross term ``|x|^2 + |c|^2 - 2 x.c`` needs a few times that, and the objective
        sums N of them in float64. A margin of 32 covers both.
        """
        dmax = float(np.finfo(np.float64).max) / (32.0 * self.d * self.n)
        if np.dtype(dtype) == np.float32:
            dmax = min(dmax, float(np.finfo(np.float32).max) / (32.0 * self.d))
        return float(np.sqrt(dmax))

    def mean_variance(self) -> float:
        """``mean_j var(X[:, j])`` (float64, chunked; scikit-learn's tolerance scale)."""
        xp = self.xp
        s = xp.zeros(self.d, np.float64)
        s2 = xp.zeros(self.d, np.float64)
        for _, block in self.chunks():
            # per-chunk sums in the data dtype (a tolerance scale, not a result), totals in float64
            s += block.sum(axis=0)
            s2 += xp.einsum("ij,ij->j", block, block)
        mean = s / self.n
        return float(xp.mean(xp.maximum(s2 / self.n - mean * mean, 0.0)))


def backend_to_numpy(a):
    return a.get() if backend.is_cupy_array(a) else np.asarray(a)


def as_source(X, **kwargs) -> DataSource:
    """``X`` if it already is a :class:`DataSource`, else ``DataSource(X, **kwargs)``."""
    return X if isinstance(X, DataSource) else DataSource(X, **kwargs)
