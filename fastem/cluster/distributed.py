"""Lloyd k-means on Dask workers: every full-data pass as a map-reduce over row partitions (issue 17).

The data stay where they are (an HDF5 dataset on a file system every worker can read); each
task opens the file, reads its contiguous rows ``[a, b)`` block by block (preprocessed as the
single-process :class:`~fastem.cluster.source.DataSource` does), assigns them to the broadcast
centroids with the same kernel (:func:`fastem.kernels.assign_accumulate`), and returns only
``K x d`` float64 partial sums, ``K`` counts, the partial objective and, when asked, its labels.
The client adds the partials (in partition order, so the result does not depend on which worker
finished first) and runs the same iteration as :func:`fastem.cluster.core.lloyd`.

Results equal the single-process run up to the order of float64 additions (labels identical
except for exact ties; centroids to ~1e-12 relative). Network per iteration: ``K x d x 8`` bytes
out and back per partition. See docs/distributed.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastem.errors import InputError

from .core import RunResult, lloyd
from .preprocess import Preprocess

__all__ = ["PartitionedData", "lloyd_distributed", "assign_partition"]


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


def assign_partition(task: dict) -> dict:
    """One map task: rows ``[a, b)`` assigned to ``C``; partial sums, counts, objective (+ labels)."""
    from fastem.kernels import assign_accumulate

    data: PartitionedData = task["data"]
    a, b, C = task["a"], task["b"], task["C"]
    f, src = data.open()
    try:
        Cw = np.ascontiguousarray(C.astype(src.dtype))
        K = Cw.shape[0]
        cnorm = (Cw.astype(np.float64) ** 2).sum(axis=1).astype(src.dtype)
        sums = np.zeros((K, src.d), np.float64)
        counts = np.zeros(K, np.int64)
        labels = np.empty(b - a, np.int64) if task["labels"] else None
        n_k, r_k = np.zeros(K, np.int64), np.zeros(K, np.float64)
        total = 0.0
        rows = src.chunk_rows
        for s in range(a, b, rows):
            e = min(b, s + rows)
            block = src._prepare(src.read_range_raw(s, e))
            lab, dist, _, _ = assign_accumulate(block, Cw, sums=sums, counts=counts, accumulate=task["accumulate"],
                                                cnorm=cnorm)
            total += float(dist.sum())
            if labels is not None:
                labels[s - a:e - a] = lab
            n_k += np.bincount(lab, minlength=K)
            r_k += np.bincount(lab, weights=np.sqrt(dist), minlength=K)
        return {"a": a, "b": b, "labels": labels, "total": total, "sums": sums, "counts": counts, "n_k": n_k,
                "r_k": r_k}
    finally:
        f.close()


class _Distributed:
    """The ``source`` :func:`fastem.cluster.core.lloyd` sees: passes run as tasks on ``executor``."""

    xp = np

    def __init__(self, executor, data: PartitionedData):
        f, src = data.open()
        try:
            self.n, self.d, self.dtype, self.name = src.n, src.d, src.dtype, src.name
            align = src.scan_shape[1] if src.scan_shape is not None else 1
            self._var = None
        finally:
            f.close()
        self.executor, self.data = executor, data
        self.partitions = data.ranges(self.n, align)

    def mean_variance(self) -> float:
        if self._var is None:     # one more map-reduce: per-partition sums and sums of squares
            res = self.executor.map(_moments_partition, [{"data": self.data, "a": a, "b": b}
                                                          for a, b in self.partitions])
            s = sum(r[0] for r in res)
            s2 = sum(r[1] for r in res)
            mean = s / self.n
            self._var = float(np.mean(np.maximum(s2 / self.n - mean * mean, 0.0)))
        return self._var

    def assign_full(self, _source, C, *, labels=True, accumulate=False, engine=None, stats=None):
        C = np.asarray(C, np.float64)
        tasks = [{"data": self.data, "a": a, "b": b, "C": C, "labels": labels, "accumulate": accumulate}
                 for a, b in self.partitions]
        res = self.executor.map(assign_partition, tasks)          # results in partition order
        K = C.shape[0]
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
    if not isinstance(data, PartitionedData):
        raise InputError(f"data must be a PartitionedData, got {type(data).__name__}")
    if int(data.parts) < 1:
        raise InputError(f"parts must be >= 1, got {data.parts}")
    source = _Distributed(executor, data)
    C0 = np.asarray(C0, np.float64)
    if C0.ndim != 2 or C0.shape[1] != source.d:
        raise InputError(f"C0 must have shape (K, {source.d}), got {C0.shape}")
    return lloyd(source, C0, max_iter=max_iter, tol=tol, callback=callback, tol_scale=tol_scale, stats=stats,
                 assign=source.assign_full)
