"""k-means on Dask workers: Lloyd's full-data passes and SBE / mini-batch steps as map-reduces over
row partitions (issue 17).

The data stay where they are (an HDF5 dataset on a file system every worker can read); each
task reads its contiguous rows ``[a, b)`` block by block (preprocessed as the single-process
:class:`~fastem.cluster.source.DataSource` does), assigns them to the broadcast centroids with
the same kernel (:func:`fastem.kernels.assign_accumulate`), and returns only ``K x d`` float64
partial sums, ``K`` counts, the partial objective and, when asked, its labels. When the prepared
data fit in half the workers' memory (their Dask ``memory_limit``), each partition is read once
and held by a worker (:meth:`fastem.executor.Executor.persist`, like ``dask.persist``), and every
later pass runs where its partition is held; otherwise every pass streams the file again.
The client adds the partials (in partition order, so the result does not depend on which worker
finished first) and runs the same iteration as :func:`fastem.cluster.core.lloyd`.

SBE and mini-batch draw each mini-batch across the partitions: the client draws the batch's
row indices from the whole data set with the run's generator (exactly as the single-process
uniform sampler does), sends each partition its share of them with the current centroids, and
adds the returned ``K x d`` sums and ``K`` counts in partition order; the update itself runs on
the client. Workers keep their file open between steps (:func:`_open_cached`). Each step is one
round trip, so this pays off for large batches of large patterns (the batch's rows are read and
assigned where the data are), not for small ones.

A Lloyd iteration sends no labels: each held partition keeps its latest labels and returns how
many changed (the strict-convergence test); the labels travel once, at the end.

Results equal the single-process run up to the order of float64 additions (labels identical
except for exact ties; centroids to ~1e-12 relative; SBE / mini-batch against the
single-process run with ``sampling="uniform"`` and the same seed). Network per iteration or
step: ``K x d x 8`` bytes out and back per partition (plus the batch's row indices). See
docs/distributed.md.
"""

from __future__ import annotations

import hashlib
import pickle
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from fastem.errors import InputError
from fastem.executor import TASK_MEMORY_FRACTION

from .core import RunResult, draw_batch, lloyd, minibatch, sbe
from .preprocess import Preprocess

__all__ = ["PartitionedData", "lloyd_distributed", "assign_partition", "sbe_distributed", "minibatch_distributed",
           "DistributedBatches"]


@dataclass(frozen=True)
class PartitionedData:
    """A picklable description of an HDF5 dataset for the workers, plus its partitions.

    ``path``/``dataset``: the file (same path on every worker) and dataset ((N, d), (N, ky, kx) or
    (Ny, Nx, ky, kx)); ``dtype``/``preprocess``/``chunk_rows`` as for ``DataSource``; ``parts``:
    the number of row partitions (whole scan lines for 4D data).
    """

    path: str
    dataset: str
    dtype: object = None
    preprocess: Preprocess | None = None
    chunk_rows: int | None = None
    parts: int = 2

    def open(self):
        """``(h5py.File, DataSource)`` (close the file after use)."""
        import h5py

        from .source import DataSource

        f = h5py.File(self.path, "r")
        try:
            src = DataSource(f[self.dataset], dtype=self.dtype, chunk_rows=self.chunk_rows, device="cpu",
                             name=f"{self.path}:{self.dataset}", preprocess=self.preprocess)
        except Exception:
            f.close()
            raise
        return f, src

    def ranges(self, n: int, align: int = 1) -> list[tuple[int, int]]:
        """``parts`` contiguous row ranges covering ``[0, n)``, boundaries on multiples of ``align``."""
        units = -(-n // align)
        parts = max(1, min(int(self.parts), units))
        cuts = [min(n, (units * i // parts) * align) for i in range(parts + 1)]
        return [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


def _assign_blocks(blocks, a: int, b: int, C, *, labels: bool, accumulate: bool, dtype) -> dict:
    """Assign the rows ``[a, b)`` given as consecutive ``(start, block)`` pieces to ``C``: partial
    sums, counts, objective (+ labels), as the single-process pass over the same blocks."""
    from fastem.kernels import assign_accumulate

    Cw = np.ascontiguousarray(C.astype(dtype))
    K, d = Cw.shape
    cnorm = (Cw.astype(np.float64) ** 2).sum(axis=1).astype(dtype)
    sums = np.zeros((K, d), np.float64)
    counts = np.zeros(K, np.int64)
    out = np.empty(b - a, np.int64) if labels else None
    n_k, r_k = np.zeros(K, np.int64), np.zeros(K, np.float64)
    total = 0.0
    for s, block in blocks:
        lab, dist, _, _ = assign_accumulate(block, Cw, sums=sums, counts=counts, accumulate=accumulate, cnorm=cnorm)
        total += float(dist.sum())
        if out is not None:
            out[s - a:s - a + block.shape[0]] = lab
        n_k += np.bincount(lab, minlength=K)
        r_k += np.bincount(lab, weights=np.sqrt(dist), minlength=K)
    return {"a": a, "b": b, "labels": out, "total": total, "sums": sums, "counts": counts, "n_k": n_k, "r_k": r_k}


def assign_partition(task: dict) -> dict:
    """One map task: rows ``[a, b)`` read from the file and assigned to ``C``; partial sums,
    counts, objective (+ labels)."""
    data: PartitionedData = task["data"]
    a, b = task["a"], task["b"]
    src, lock = _open_cached(data)

    def blocks():
        for s in range(a, b, src.chunk_rows):
            with lock:
                raw = src.read_range_raw(s, min(b, s + src.chunk_rows))
            yield s, src._prepare(raw)

    return _assign_blocks(blocks(), a, b, task["C"], labels=task["labels"], accumulate=task["accumulate"],
                          dtype=src.dtype)


@dataclass
class HeldPartition:
    """Rows ``[a, b)`` prepared once and kept in a worker's memory (:meth:`Executor.persist`)."""

    a: int
    b: int
    rows: np.ndarray
    chunk_rows: int
    last: np.ndarray | None = None      # labels of the latest pass, kept here for the convergence test


def load_partition(task: dict) -> HeldPartition:
    """Read and prepare rows ``[a, b)`` once (the task :meth:`Executor.persist` keeps)."""
    data: PartitionedData = task["data"]
    a, b = task["a"], task["b"]
    src, lock = _open_cached(data)
    with lock:
        raw = src.read_range_raw(a, b)
    return HeldPartition(a, b, np.ascontiguousarray(src._prepare(raw)), src.chunk_rows)


def assign_held(part: HeldPartition, C, labels, accumulate: bool) -> dict:
    """:func:`assign_partition` on a held partition, block by block as the file would be read.

    ``labels``: True (return them), False, or ``"changes"``: keep them here and return only how
    many differ from the previous pass's (``None`` when there is none, e.g. after the partition
    was recomputed on another worker), so a Lloyd iteration sends no labels over the network.
    """
    blocks = ((s, part.rows[s - part.a:min(part.b, s + part.chunk_rows) - part.a])
              for s in range(part.a, part.b, part.chunk_rows))
    want = labels is True or labels == "changes"
    res = _assign_blocks(blocks, part.a, part.b, C, labels=want, accumulate=accumulate, dtype=part.rows.dtype)
    if want:
        lab = res["labels"]
        if labels == "changes":
            res["changed"] = None if part.last is None else int(np.count_nonzero(lab != part.last))
            res["labels"] = None
        part.last = lab
    return res


def held_labels(part: HeldPartition):
    """The labels of the latest pass over a held partition."""
    return part.last


def moments_held(part: HeldPartition):
    return part.rows.sum(axis=0, dtype=np.float64), np.einsum("ij,ij->j", part.rows, part.rows, dtype=np.float64)


class _Distributed:
    """The ``source`` :func:`fastem.cluster.core.lloyd` sees: passes run as tasks on ``executor``."""

    xp = np

    def __init__(self, executor, data: PartitionedData, *, hold: bool = True):
        f, src = data.open()
        try:
            self.n, self.d, self.dtype, self.name = src.n, src.d, src.dtype, src.name
            align = src.scan_shape[1] if src.scan_shape is not None else 1
            self._var = None
        finally:
            f.close()
        self.executor, self.data = executor, data
        self.partitions = data.ranges(self.n, align)
        self.held = None
        budget = executor.task_memory()
        itemsize = np.dtype(self.dtype).itemsize
        if hold and budget is not None and self.n * self.d * itemsize <= TASK_MEMORY_FRACTION * budget * executor.slots:
            # the prepared data fit in the workers' memory: read once, every later pass runs where
            # its partition is held (Dask's data locality) instead of rereading the file
            self.held = executor.persist(load_partition, [{"data": data, "a": a, "b": b}
                                                          for a, b in self.partitions])

    def close(self) -> None:
        """Free the held partitions (they are also freed when this object is collected)."""
        if self.held is not None:
            self.executor.release(self.held)
            self.held = None

    def mean_variance(self) -> float:
        if self._var is None:     # one more map-reduce: per-partition sums and sums of squares
            if self.held is not None:
                res = self.executor.map_held(moments_held, self.held)
            else:
                res = self.executor.map(_moments_partition, [{"data": self.data, "a": a, "b": b}
                                                              for a, b in self.partitions])
            s = sum(r[0] for r in res)
            s2 = sum(r[1] for r in res)
            mean = s / self.n
            self._var = float(np.mean(np.maximum(s2 / self.n - mean * mean, 0.0)))
        return self._var

    def assign_full(self, _source, C, *, labels=True, accumulate=False, engine=None, stats=None):
        C = np.asarray(C, np.float64)
        if self.held is not None:
            res = self.executor.map_held(assign_held, self.held, C, labels, accumulate)   # in partition order
        else:
            tasks = [{"data": self.data, "a": a, "b": b, "C": C, "labels": labels, "accumulate": accumulate}
                     for a, b in self.partitions]
            res = self.executor.map(assign_partition, tasks)          # results in partition order
        return self._reduce(res, C.shape[0], labels, stats)

    def _reduce(self, res, K, labels, stats):
        sums = np.zeros((K, self.d), np.float64)
        counts = np.zeros(K, np.int64)
        out = np.empty(self.n, np.int64) if labels else None
        n_k, r_k = np.zeros(K, np.int64), np.zeros(K, np.float64)
        total = 0.0
        for r in res:
            sums += r["sums"]
            counts += r["counts"]
            total += r["total"]
            n_k += r["n_k"]
            r_k += r["r_k"]
            if labels:
                out[r["a"]:r["b"]] = r["labels"]
        if stats is not None:
            stats["counts"] = n_k
            with np.errstate(invalid="ignore", divide="ignore"):
                stats["mean_distance"] = np.where(n_k > 0, r_k / np.maximum(n_k, 1), np.nan)
        return out, total / (2.0 * self.n), sums, counts

    # -- Lloyd's convergence test without moving labels (see fastem.cluster.core.lloyd's ``changes``) --
    def assign_counting_changes(self, C, *, stats=None):
        """A Lloyd pass returning ``(changed, phi, sums, counts)``: ``changed`` is how many labels
        differ from the previous pass (``None`` on the first). With held partitions the labels
        stay on the workers; streamed, they come here and are compared here."""
        C = np.asarray(C, np.float64)
        if self.held is not None:
            res = self.executor.map_held(assign_held, self.held, C, "changes", True)
            changed = [r["changed"] for r in res]
            _, phi, sums, counts = self._reduce(res, C.shape[0], False, stats)
            return (None if any(c is None for c in changed) else int(sum(changed))), phi, sums, counts
        labels, phi, sums, counts = self.assign_full(None, C, labels=True, accumulate=True, stats=stats)
        prev, self._prev = getattr(self, "_prev", None), labels
        return (None if prev is None else int(np.count_nonzero(labels != prev))), phi, sums, counts

    def last_labels(self) -> np.ndarray:
        """The labels of the latest :meth:`assign_counting_changes` pass (gathered once, at the end)."""
        if self.held is not None:
            return np.concatenate(self.executor.map_held(held_labels, self.held))
        return self._prev


def _moments_partition(task: dict):
    f, src = task["data"].open()
    try:
        s = np.zeros(src.d, np.float64)
        s2 = np.zeros(src.d, np.float64)
        for i in range(task["a"], task["b"], src.chunk_rows):
            block = src._prepare(src.read_range_raw(i, min(task["b"], i + src.chunk_rows)))
            s += block.sum(axis=0)
            s2 += np.einsum("ij,ij->j", block, block)
        return s, s2
    finally:
        f.close()


def lloyd_distributed(executor, data: PartitionedData, C0, *, max_iter: int = 300, tol: float = 1e-4,
                      callback=None, tol_scale: float | None = None, stats: dict | None = None) -> RunResult:
    """:func:`fastem.cluster.core.lloyd` with every full-data pass spread over ``executor``.

    Parameters
    ----------
    executor : fastem.executor.Executor
        Where the partitions are assigned (a :class:`~fastem.executor.DaskExecutor`, or the
        inline one for a single process).
    data : PartitionedData
        The HDF5 dataset and its partitions (use at least one per worker).
    C0 : array (K, d)
        Initial centroids (float64; the same start gives the same run as in one process).
    max_iter, tol, callback, tol_scale, stats
        As :func:`fastem.cluster.core.lloyd`.
    """
    C0 = _checked(data, C0)
    source = _Distributed(executor, data)
    try:
        return lloyd(source, C0, max_iter=max_iter, tol=tol, callback=callback, tol_scale=tol_scale, stats=stats,
                     assign=source.assign_full, changes=source)
    finally:
        source.close()


# --- SBE / mini-batch: each mini-batch drawn across the partitions -----------------------------------

_OPEN_LOCK = threading.Lock()
_OPEN: "OrderedDict[bytes, tuple]" = OrderedDict()
_OPEN_MAX = 4


def _open_cached(data: PartitionedData):
    """``(DataSource, lock)`` for ``data``, opened once per worker process and kept open between
    steps (a mini-batch step is too short to pay a file open); keyed by the description and the
    file's size and modification time, so a rewritten file is opened afresh. At most
    ``_OPEN_MAX`` files stay open (least recently used closed first)."""
    import os

    st = os.stat(data.path)
    key = hashlib.sha256(pickle.dumps((data, st.st_size, st.st_mtime_ns))).digest()
    with _OPEN_LOCK:
        hit = _OPEN.get(key)
        if hit is not None:
            _OPEN.move_to_end(key)
            return hit[1], hit[2]
        f, src = data.open()
        _OPEN[key] = (f, src, threading.Lock())
        while len(_OPEN) > _OPEN_MAX:
            _, (old_f, _, _) = _OPEN.popitem(last=False)
            old_f.close()
        return src, _OPEN[key][2]


def batch_partition(task: dict) -> tuple[np.ndarray, np.ndarray]:
    """One map task of a mini-batch step: rows ``idx`` (sorted, inside this partition) assigned to
    ``C``; returns the ``K x d`` float64 sums and ``K`` counts of the points nearest each centroid."""
    from fastem.kernels import assign_accumulate

    src, lock = _open_cached(task["data"])
    with lock:                                  # h5py reads are serialised anyway; the source is shared
        block = src.rows(np.asarray(task["idx"], np.int64))
    C = task["C"]
    sums = np.zeros(C.shape, np.float64)
    counts = np.zeros(C.shape[0], np.int64)
    assign_accumulate(block, np.ascontiguousarray(C.astype(src.dtype)), sums=sums, counts=counts,
                      distances=False)
    return sums, counts


class DistributedBatches:
    """``batches(C_work, sums, counts) -> M`` for :func:`fastem.cluster.core.sbe` / ``minibatch``:
    each step draws ``m`` rows of all ``N`` with ``rng`` (as the single-process uniform sampler
    does), splits them by partition and accumulates the workers' partial sums in partition order."""

    def __init__(self, executor, data: PartitionedData, rng, m: int):
        f, src = data.open()
        try:
            self.n, self.d = src.n, src.d
            align = src.scan_shape[1] if src.scan_shape is not None else 1
        finally:
            f.close()
        self.executor, self.data, self.rng, self.m = executor, data, rng, int(m)
        self.partitions = data.ranges(self.n, align)
        self._bounds = np.array([a for a, _ in self.partitions[1:]], np.int64)
        self.steps = 0

    def __call__(self, C_work, sums, counts) -> int:
        idx = draw_batch(self.rng, self.n, self.m)
        cuts = np.searchsorted(idx, self._bounds)
        C = np.asarray(C_work)
        tasks = [{"data": self.data, "idx": part, "C": C} for part in np.split(idx, cuts) if part.size]
        for part_sums, part_counts in self.executor.map(batch_partition, tasks):   # partition order
            sums += part_sums
            counts += part_counts
        self.steps += 1
        return int(idx.size)

    def close(self) -> None:
        pass


def _checked(data, C0):
    if not isinstance(data, PartitionedData):
        raise InputError(f"data must be a PartitionedData, got {type(data).__name__}")
    if int(data.parts) < 1:
        raise InputError(f"parts must be >= 1, got {data.parts}")
    f, src = data.open()
    try:
        d = src.d
    finally:
        f.close()
    C0 = np.asarray(C0, np.float64)
    if C0.ndim != 2 or C0.shape[1] != d:
        raise InputError(f"C0 must have shape (K, {d}), got {C0.shape}")
    return C0


class _HostSource:
    """What ``sbe`` / ``minibatch`` need of a source when the batches come from workers."""

    xp = np

    def __init__(self, data: PartitionedData):
        f, src = data.open()
        try:
            self.n, self.d, self.dtype, self.name = src.n, src.d, src.dtype, src.name
        finally:
            f.close()


def sbe_distributed(executor, data: PartitionedData, C0, rng, *, batch_size: int = 1000, **kw) -> RunResult:
    """:func:`fastem.cluster.core.sbe` with every mini-batch drawn across ``data``'s partitions on
    ``executor`` (see the module). ``rng``: a seed or ``numpy.random.Generator`` (the same seed
    gives the same run as in one process with ``sampling="uniform"``); ``kw`` as for ``sbe``."""
    C0 = _checked(data, C0)
    rng = np.random.default_rng(rng)
    return sbe(_HostSource(data), C0, rng, batch_size=batch_size,
               batches=DistributedBatches(executor, data, rng, batch_size), **kw)


def minibatch_distributed(executor, data: PartitionedData, C0, rng, *, batch_size: int = 1000,
                          **kw) -> RunResult:
    """:func:`fastem.cluster.core.minibatch` with every mini-batch drawn across ``data``'s
    partitions on ``executor``; as :func:`sbe_distributed`."""
    C0 = _checked(data, C0)
    rng = np.random.default_rng(rng)
    return minibatch(_HostSource(data), C0, rng, batch_size=batch_size,
                     batches=DistributedBatches(executor, data, rng, batch_size), **kw)
