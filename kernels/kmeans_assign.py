"""Fused k-means assignment: nearest centroid, exact distance, per-centroid sums and counts.

The hot path of every k-means variant in :mod:`fastem.cluster` (SBE, mini-batch, Lloyd and the
final full-data objective). For a block of points ``X`` (M, d) and centroids ``C`` (K, d):

* ``labels[i] = argmin_k ||X_i - C_k||^2`` with ties to the lowest index (spec ``sbe.md``,
  eq. 4.5), found through ``||C_k||^2 - 2 X_i.C_k`` (the cross term is one GEMM: BLAS on the CPU,
  cuBLAS through CuPy on the GPU);
* ``dist[i] = ||X_i - C_{labels[i]}||^2`` recomputed *directly* in float64 (never the expanded
  form), so a reported objective is never below the true one because of cancellation;
* ``sums[k] += sum_{labels[i] = k} X_i`` (float64) and ``counts[k] += #{labels[i] = k}``.

Engines: ``numpy`` (float64 reference, direct distances), ``numba`` (a Python thread pool over row
blocks, each with single-threaded BLAS and the ``nogil`` Numba kernel into per-thread partial
sums, reduced at the end; with at most ``FUSED_MAX_K`` (64) centroids one fused ``nogil`` pass per
point instead, which forms the cross term itself), ``cuda`` (CuPy GEMM + ``cuda/kmeans_assign.cu``) and
``numba-cuda`` (CuPy/NumPy GEMM + ``_kmeans_assign_numba_cuda.py``; runs under the simulator).
"""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager, nullcontext

import numpy as np

from fastem import backend
from fastem.errors import InputError

from ._dispatch import KernelDispatcher, require_arrays, as_numba_cuda, numba_cuda_stream
from ._workspace import thread_buffer

__all__ = ["assign_accumulate"]

_ASSIGN = KernelDispatcher("assign_accumulate", ("numpy", "numba", "cuda", "numba-cuda"))

_SUPPORTED = (np.dtype(np.float32), np.dtype(np.float64))


def _reference(X, C, accumulate):
    """Plain NumPy float64: direct distances (M, K), first-index argmin, bincount sums."""
    X64 = np.asarray(X, dtype=np.float64)
    C64 = np.asarray(C, dtype=np.float64)
    K, d = C64.shape
    D = ((X64[:, None, :] - C64[None, :, :]) ** 2).sum(axis=2) if X64.shape[0] else np.zeros((0, K))
    labels = np.argmin(D, axis=1).astype(np.int64) if X64.shape[0] else np.zeros(0, np.int64)
    dist = D[np.arange(X64.shape[0]), labels] if X64.shape[0] else np.zeros(0)
    sums = np.zeros((K, d))
    counts = np.zeros(K, np.int64)
    if accumulate and X64.shape[0]:
        np.add.at(sums, labels, X64)
        counts += np.bincount(labels, minlength=K)
    return labels, dist, sums, counts


@_ASSIGN.register("numpy")
def _assign_numpy(X, C, sums, counts, accumulate, cnorm, distances, rows=None):
    labels, dist, s, c = _reference(X if rows is None else X[rows], C, accumulate)
    sums += s
    counts += c
    return labels, dist, sums, counts


def _labels_dist(X, C, cnorm, rows=None):
    """``cnorm`` (computed when ``None``) and fresh ``labels``/``dist`` outputs for the compiled engines."""
    xp = backend.get_array_module(X)
    if cnorm is None:
        cnorm = (C.astype(np.float64) ** 2).sum(axis=1).astype(X.dtype)
    M = X.shape[0] if rows is None else rows.shape[0]
    return cnorm, xp.empty(M, dtype=np.int64), xp.empty(M, dtype=np.float64)


@_ASSIGN.register("numba")
def _assign_numba(X, C, sums, counts, accumulate, cnorm, distances, rows=None):
    cnorm, labels, dist = _labels_dist(X, C, cnorm, rows)
    if labels.shape[0] == 0:
        return labels, dist, sums, counts
    _numba_blocks(X, C, cnorm, labels, dist, sums, counts, bool(accumulate), bool(distances), rows)
    return labels, dist, sums, counts


@_ASSIGN.register("cuda", "numba-cuda", with_engine=True)
def _assign_gpu(X, C, sums, counts, accumulate, cnorm, distances, rows=None, *, engine):
    xp = backend.get_array_module(X)
    if rows is not None:
        X = xp.ascontiguousarray(X[xp.asarray(rows)])
    cnorm, labels, dist = _labels_dist(X, C, cnorm)
    M, d = X.shape
    K = C.shape[0]
    if M == 0:
        return labels, dist, sums, counts
    with backend.get_device(X).use() if backend.is_cupy_array(X) else nullcontext():
        crossT = xp.ascontiguousarray(C @ X.T)  # (K, M): cuBLAS GEMM on the GPU
        if engine == "cuda":
            from . import _cuda

            suffix = "f32" if X.dtype == np.float32 else "f64"
            kernel = _cuda.get_function("kmeans_assign", f"kmeans_argmin_accumulate_{suffix}", backend.get_device(X))
            grid, block = _cuda.launch_config(M, threads=128, max_blocks=8192)
            kernel(grid, block, (X, crossT, xp.ascontiguousarray(cnorm), C, np.int64(M), np.int32(d), np.int32(K),
                                 labels, dist, sums, counts, np.int32(1 if accumulate else 0)))
        else:  # numba-cuda
            from ._kmeans_assign_numba_cuda import argmin_accumulate_numba_cuda

            argmin_accumulate_numba_cuda(as_numba_cuda(X), as_numba_cuda(crossT), as_numba_cuda(cnorm),
                                         as_numba_cuda(C), as_numba_cuda(labels), as_numba_cuda(dist),
                                         as_numba_cuda(sums), as_numba_cuda(counts), accumulate,
                                         stream=numba_cuda_stream())
    return labels, dist, sums, counts


def assign_accumulate(X, C, *, sums=None, counts=None, accumulate: bool = True, engine: str | None = None,
                      cnorm=None, distances: bool = True, rows=None):
    """Nearest centroid of every row of ``X``, its squared distance, and per-centroid sums/counts.

    Parameters
    ----------
    X : ndarray (M, d), float32 or float64, C-contiguous, NumPy or CuPy
        The points (a mini-batch or a chunk of the data). ``M`` may be 0.
    C : ndarray (K, d), same dtype and device as ``X``
        Centroids.
    sums : ndarray (K, d) float64, optional
        Added to in place (a fresh zero array when omitted).
    counts : ndarray (K,) int64, optional
        Added to in place (a fresh zero array when omitted).
    accumulate : bool
        ``False`` skips the sums and counts (assignment and distances only).
    engine : {None, "numpy", "numba", "cuda", "numba-cuda"}
        ``None``: ``numba`` for NumPy arrays, ``cuda`` for CuPy arrays.
    cnorm : ndarray (K,), optional
        Precomputed ``||C_k||^2`` in the data dtype (saves a pass when ``C`` is reused).
    distances : bool
        ``False``: the ``numba`` engine skips the exact distances (``dist`` is then undefined;
        mini-batch steps do not need it). Other engines compute them anyway.
    rows : int64 ndarray (M,), optional
        Assign the rows ``X[rows]`` (a mini-batch drawn from in-memory data ``X`` (N, d)) instead
        of ``X``, without forming that copy: the ``numba`` engine reads each row where it lies
        (with at most ``FUSED_MAX_K`` centroids) or gathers each thread's sub-blocks into a
        cache-sized buffer right before its GEMM (the gather is parallel and its rows are read
        from memory once); other engines index ``X`` first. Same results as
        passing ``X[rows]``. On the host (NumPy) for CPU engines; values in ``[0, N)``.
        With a 1-D ``X`` (L,) (e.g. a memory-mapped file, :mod:`fastem.cluster.mapped`), ``rows``
        are element offsets: point ``i`` is ``X[rows[i] : rows[i] + d]``, each offset in
        ``[0, L - d]``.

    Returns
    -------
    labels : int64 (M,)
        ``argmin_k ||X_i - C_k||^2``, ties to the lowest ``k``. (For float32 data and near-ties the
        expanded form may pick a centroid whose true distance exceeds the minimum by float32
        rounding of ``||C||^2 - 2 X.C``; ``dist`` is still that centroid's exact distance.)
    dist : float64 (M,)
        ``||X_i - C_{labels_i}||^2``, computed directly in float64.
    sums : float64 (K, d)
    counts : int64 (K,)
    """
    require_arrays("assign_accumulate", ('sums', 'counts', 'cnorm'), X=X, C=C, sums=sums, counts=counts, cnorm=cnorm)
    if X.ndim == 1 and rows is not None and C.ndim == 2:     # flat data, rows given as element offsets
        return _assign_flat(X, C, rows, sums=sums, counts=counts, accumulate=accumulate, engine=engine,
                            cnorm=cnorm, distances=distances)
    if X.ndim != 2 or C.ndim != 2:
        raise InputError(f"assign_accumulate: X must be (M, d) and C (K, d), got {X.shape} and {C.shape}")
    if X.shape[1] != C.shape[1]:
        raise InputError(f"assign_accumulate: X has d = {X.shape[1]} features but C has {C.shape[1]}")
    if C.shape[0] < 1 or C.shape[1] < 1:
        raise InputError(f"assign_accumulate: need K >= 1 centroids with d >= 1 features, got C {C.shape}")
    if X.dtype != C.dtype or X.dtype not in _SUPPORTED:
        raise InputError(f"assign_accumulate: X and C must both be float32 or float64, got {X.dtype} and {C.dtype}")
    if not (X.flags.c_contiguous and C.flags.c_contiguous):
        raise InputError("assign_accumulate: X and C must be C-contiguous")
    eng = _ASSIGN.select(engine, X, C)
    xp = backend.get_array_module(X)
    M, d = X.shape
    if rows is not None:
        rows = _checked_rows(rows, X)
        M = rows.shape[0]
    K = C.shape[0]
    if sums is None:
        sums = xp.zeros((K, d), dtype=np.float64)
    if counts is None:
        counts = xp.zeros(K, dtype=np.int64)
    if sums.shape != (K, d) or sums.dtype != np.float64 or counts.shape != (K,) or counts.dtype != np.int64:
        raise InputError(f"assign_accumulate: sums must be float64 {(K, d)} and counts int64 {(K,)}, got "
                         f"{sums.dtype} {sums.shape} and {counts.dtype} {counts.shape}")
    return _ASSIGN.implementation(eng)(X, C, sums, counts, accumulate, cnorm, distances, rows)


def _assign_flat(flat, C, offsets, **kw):
    """``assign_accumulate`` of the points ``flat[offsets[i] : offsets[i] + d]``."""
    d = C.shape[1]
    if not isinstance(flat, np.ndarray) or not isinstance(offsets, np.ndarray):
        raise InputError("assign_accumulate: a 1-D X (rows as element offsets) must be a NumPy array, and so must rows")
    if offsets.ndim != 1 or offsets.dtype.kind not in "iu":
        raise InputError(f"assign_accumulate: rows must be a 1-D integer array, got {offsets.dtype} {offsets.shape}")
    if offsets.shape[0] and (int(offsets.min()) < 0 or int(offsets.max()) + d > flat.shape[0]):
        raise InputError(f"assign_accumulate: with a 1-D X, rows are element offsets in [0, {flat.shape[0] - d}], "
                         f"got {int(offsets.min())} to {int(offsets.max())}")
    if flat.dtype != C.dtype or flat.dtype not in _SUPPORTED or not C.flags.c_contiguous:
        raise InputError(f"assign_accumulate: X and C must both be float32 or float64 (C C-contiguous), got "
                         f"{flat.dtype} and {C.dtype}")
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    eng = _ASSIGN.select(kw.pop("engine"), flat, C)
    K = C.shape[0]
    sums = np.zeros((K, d)) if kw.get("sums") is None else kw["sums"]
    counts = np.zeros(K, np.int64) if kw.get("counts") is None else kw["counts"]
    if sums.shape != (K, d) or sums.dtype != np.float64 or counts.shape != (K,) or counts.dtype != np.int64:
        raise InputError(f"assign_accumulate: sums must be float64 {(K, d)} and counts int64 {(K,)}, got "
                         f"{sums.dtype} {sums.shape} and {counts.dtype} {counts.shape}")
    if eng != "numba":                  # the other engines: form the batch, then assign it
        batch = np.ascontiguousarray(flat[offsets[:, None] + np.arange(d)])
        return _ASSIGN.implementation(eng)(batch, C, sums, counts, kw["accumulate"], kw["cnorm"], kw["distances"])
    cnorm, labels, dist = _labels_dist(flat, C, kw["cnorm"], offsets)
    if labels.shape[0]:
        _numba_blocks(flat, C, cnorm, labels, dist, sums, counts, bool(kw["accumulate"]), bool(kw["distances"]),
                      offsets, flat_rows=True)
    return labels, dist, sums, counts


def _checked_rows(rows, X):
    """``rows`` as a C-contiguous int64 vector with every value in ``[0, N)`` (NumPy for NumPy ``X``)."""
    n = X.shape[0]
    if not (isinstance(rows, np.ndarray) or (backend.is_cupy_array(rows) and backend.is_cupy_array(X))):
        raise InputError(f"assign_accumulate: rows must be a NumPy integer array (or CuPy, for CuPy X), "
                         f"got {type(rows).__name__}")
    if rows.ndim != 1 or rows.dtype.kind not in "iu":
        raise InputError(f"assign_accumulate: rows must be a 1-D integer array, got {rows.dtype} {rows.shape}")
    if rows.shape[0] and (int(rows.min()) < 0 or int(rows.max()) >= n):
        raise InputError(f"assign_accumulate: rows must lie in [0, {n}) (the rows of X), got values from "
                         f"{int(rows.min())} to {int(rows.max())}")
    xp = backend.get_array_module(rows)
    return xp.ascontiguousarray(rows, dtype=np.int64)

MIN_ROWS_PER_THREAD = 256
SUB_ROWS = 256  # rows per GEMM + kernel call inside a thread's block (scikit-learn uses 256 too; smaller
# sub-blocks that fit a core's L2 at d = 4096 measured slower: 0.65 s against 0.24 s for a K = 16
# mini-batch fit of 64 steps, the per-call overhead outweighing the cache reuse)
#: with at most this many centroids the assignment skips the gather and the GEMM:
#: :func:`assign_rows_fused` reads each point once and forms the cross term 4 points x 4
#: centroids at a time (``bench/kmeans_fused.py``, ``bench/results/kmeans_fused.md``: mini-batch
#: steps 0.55-0.89x the gather + GEMM time for K = 2..128 at d = 4096 and 784, full passes
#: 0.66-0.95x up to K = 48 and even (1.01-1.04x) at K = 64; beyond 64 the GEMM keeps the path)
FUSED_MAX_K = 64
#: bytes of one point's (or one centroid's) tile in the fused kernel: 4 point tiles + 4 centroid
#: tiles = 32 KiB, one core's L1 data cache (tiles of 256, 512 and 1024 float32 were compared in
#: development, not benchmarked separately)
FUSED_TILE_BYTES = 4096
_NO_ROWS = np.zeros(0, np.int64)   # the fused kernel's ``rows`` when the points are a block (length 0)
_POOL = None


def _threads() -> int:
    """The thread count (``fastem --threads`` / ``set_threads``, capped by ``NUMBA_NUM_THREADS``).

    Read from ``kernels._threads`` (set by ``fastem.config.set_threads``): ``numba.get_num_threads()`` costs 2 us a call on a quiet machine
    but showed 0.2 ms a call (cProfile, 174 calls) under load, 20 % of a mini-batch step there.
    """
    from numba import config

    from . import _threads

    return max(1, min(_threads.get(), int(config.NUMBA_NUM_THREADS)))


def _pool():
    global _POOL
    n = _threads()
    if _POOL is None or _POOL._max_workers != n:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(n, thread_name_prefix="fastem-kmeans")
    return _POOL


_BLAS_LOCK = threading.Lock()
_BLAS_USERS = 0          # threads inside single_thread_blas() now (guarded by _BLAS_LOCK)
_BLAS_LIMITER = None     # the threadpoolctl limiter of the outermost entry
_BLAS_CONTROLLER = None  # (len(sys.modules) when made, threadpoolctl.ThreadpoolController)


@contextmanager
def single_thread_blas():
    """BLAS limited to one thread for the duration (``threadpoolctl``), safe under concurrent use.

    BLAS thread counts are process-wide, so concurrent callers share one limit: the first to
    enter sets it (``ThreadpoolController.limit(limits=1, user_api="blas")``, the context manager
    behind ``threadpoolctl.threadpool_limits``) and the last to leave restores the original
    counts; the count of callers inside is kept under a lock, so an early leaver never restores
    the threads while another caller still runs its GEMMs, and the original counts are never
    lost. Other threads of the process also see one BLAS thread meanwhile.

    The controller (the scan of the loaded BLAS libraries) is reused while no module has been
    imported since it was made: ``threadpool_limits`` rescans them on every call, which costs
    more than a small mini-batch step, and a BLAS is loaded by importing an extension module
    (SciPy brings a second OpenBLAS), after which the scan is redone.
    """
    global _BLAS_USERS, _BLAS_LIMITER, _BLAS_CONTROLLER
    with _BLAS_LOCK:
        if _BLAS_USERS == 0:
            n_modules = len(sys.modules)
            if _BLAS_CONTROLLER is None or _BLAS_CONTROLLER[0] != n_modules:
                from threadpoolctl import ThreadpoolController

                _BLAS_CONTROLLER = (len(sys.modules), ThreadpoolController())
            _BLAS_LIMITER = _BLAS_CONTROLLER[1].limit(limits=1, user_api="blas")
        _BLAS_USERS += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_USERS -= 1
            if _BLAS_USERS == 0:
                limiter, _BLAS_LIMITER = _BLAS_LIMITER, None
                limiter.restore_original_limits()


def _numba_blocks(X, C, cnorm, labels, dist, sums, counts, accumulate, distances=True, rows=None,
                  flat_rows=False):
    """One row block per thread into per-thread partial sums, reduced at the end: with at most
    ``FUSED_MAX_K`` centroids the fused one-pass kernel, else single-threaded BLAS cross terms +
    the nogil Numba kernel per cache-sized sub-block (with ``rows``, each sub-block first gathered
    from ``X`` into the thread's own buffer)."""
    from ._kmeans_assign_numba import argmin_accumulate_block, assign_rows_fused, gather_offsets, gather_rows

    M = X.shape[0] if rows is None else rows.shape[0]
    K, d = C.shape
    T = max(1, min(_threads(), M // MIN_ROWS_PER_THREAD))
    sub = SUB_ROWS
    # few centroids: one pass per point, no gather and no GEMM, whether the points are given as a
    # block or as rows of X (the choice depends on K alone, so a batch assigned from rows, from a
    # mapped file or gathered first gives the same bits)
    fused = K <= FUSED_MAX_K
    bufs = None if rows is None or fused else _gather_buffers(T, d, X.dtype)
    if fused:
        flat, stride = (X, 1) if flat_rows else (X.reshape(-1), d)
        scratch = _fused_scratch(T, K, X.dtype)
        tile = max(1, FUSED_TILE_BYTES // X.dtype.itemsize)
    else:
        # C^T as a C-contiguous (d, K) copy, not the transposed view of C: OpenBLAS's GEMM with few
        # columns was faster on it in development timings (not benchmarked separately)
        CT = _transposed(C)

    def block(t, lo, hi, s, c):
        if fused:
            r = _NO_ROWS if rows is None else rows[lo:hi]
            assign_rows_fused(flat, rows is not None, r, lo, stride, C, cnorm, labels[lo:hi], dist[lo:hi], s, c,
                              accumulate, distances, scratch[t], tile)
            return
        # cache-sized sub-blocks: the GEMM and the kernel then read the rows from cache
        for a in range(lo, hi, sub):
            b = min(hi, a + sub)
            if rows is None:
                Xb = X[a:b]
            else:
                Xb = bufs[t][:b - a]
                (gather_offsets if flat_rows else gather_rows)(X, rows[a:b], Xb)
            argmin_accumulate_block(Xb, Xb @ CT, cnorm, C, labels[a:b], dist[a:b], s, c, accumulate, distances)

    with single_thread_blas():
        if T == 1:
            block(0, 0, M, sums, counts)
            return
        step = -(-M // T)
        parts_s, parts_c = _partials(T, K, d, accumulate)
        futures = [_pool().submit(block, t, t * step, min(M, (t + 1) * step), parts_s[t], parts_c[t])
                   for t in range(T)]
        for f in futures:
            f.result()
    if accumulate:
        for t in range(T):
            sums += parts_s[t]
            counts += parts_c[t]


def _transposed(C):
    """``C.T`` copied into a C-contiguous ``(d, K)`` buffer reused between calls (per calling thread)."""
    out = thread_buffer("ct", (C.shape, C.dtype), lambda: np.empty(C.shape[::-1], C.dtype))
    np.copyto(out, C.T)
    return out


def _fused_scratch(T, K, dtype):
    """Per-thread ``(4, K)`` cross-term scratch of :func:`assign_rows_fused`, reused between calls."""
    return thread_buffer("fused", (T, K, np.dtype(dtype)), lambda: [np.empty((4, K), dtype) for _ in range(T)])


def _gather_buffers(T, d, dtype):
    """Per-thread ``(SUB_ROWS, d)`` gather buffers, reused between calls (one set per calling thread)."""
    return thread_buffer("gather", (T, d, np.dtype(dtype)), lambda: [np.empty((SUB_ROWS, d), dtype) for _ in range(T)])


def _partials(T, K, d, accumulate):
    """Per-thread partial sums / counts, zeroed; reused between calls of the same shape (one
    cache per calling thread), so a mini-batch step allocates no (K, d) arrays."""
    key = (T, K, d) if accumulate else (T, 1, 1)
    sums, counts = thread_buffer("parts", key, lambda: ([np.empty(key[1:]) for _ in range(T)],
                                                  [np.empty(key[1], np.int64) for _ in range(T)]))
    for a, b in zip(sums, counts):
        a.fill(0)
        b.fill(0)
    return sums, counts

