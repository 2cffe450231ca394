"""k-means solvers on one kernel (:func:`fastem.kernels.assign_accumulate`).

* :func:`sbe` -- stochastic backward Euler (spec ``sbe.md``, thesis algorithm 4);
* :func:`minibatch` -- mini-batch k-means (Sculley 2010, per-centroid learning rate ``1/v_j``);
* :func:`lloyd` -- full-batch EM (Lloyd), scikit-learn's stopping rule;
* :func:`init_centroids` -- random data points (the thesis' setting) or k-means++;
* :func:`assign_full` -- labels and objective on the full data, in bounded-memory chunks.

Objective convention (spec eq. 4.4): ``phi(x) = 1/(2N) * sum_i min_j ||x_j - p_i||^2``.
scikit-learn's ``inertia_`` is ``sum_i min_j ||x_j - p_i||^2 = 2 N phi``; the estimator reports
both (``objective_`` and ``inertia_``). Centroids are updated in float64 whatever the data dtype.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fastem.errors import InputError
from fastem.kernels import assign_accumulate

from .source import DataSource, backend_to_numpy

__all__ = ["RunResult", "assign_full", "init_centroids", "sbe", "minibatch", "lloyd", "check_k", "draw_batch"]


@dataclass
class RunResult:
    """One start: final centroids (float64, on the source's device), its full-data objective."""

    centers: object
    objective: float
    n_iter: int
    labels: np.ndarray | None = None
    history: list = field(default_factory=list)
    stats: dict = field(default_factory=dict)


def check_k(source: DataSource, k: int) -> int:
    k = int(k)
    if k < 1:
        raise InputError(f"n_clusters must be >= 1, got {k}")
    if k > source.n:
        raise InputError(f"n_clusters = {k} is larger than the number of points N = {source.n} in {source.name}")
    return k


def _cast(source, C64):
    return source.xp.ascontiguousarray(C64.astype(source.dtype))


def assign_full(source: DataSource, C, *, labels: bool = True, accumulate: bool = False, engine=None,
                stats: dict | None = None):
    """Full-data pass in chunks of ``source.chunk_rows`` rows (memory ``O(chunk * max(d, K))``).

    ``stats``: a dict filled with ``counts`` (K,) int64 (points per cluster) and
    ``mean_distance`` (K,) float64 (mean Euclidean distance ``||p_i - c_j||`` of a cluster's
    points to its centroid; NaN for an empty cluster).

    Returns
    -------
    labels : ndarray int64 (N,) on the host, or None
    objective : float
        ``phi = 1/(2N) sum_i ||p_i - C_{label_i}||^2`` with every distance recomputed directly in
        float64 for the chosen centroid, so it is never below the true ``phi(C)`` by rounding.
    sums, counts : float64 (K, d), int64 (K,) on the device (zeros unless ``accumulate``)
    """
    xp = source.xp
    Cw = _cast(source, C)
    K = Cw.shape[0]
    cnorm = (Cw.astype(np.float64) ** 2).sum(axis=1).astype(source.dtype)
    sums = xp.zeros((K, source.d), np.float64)
    counts = xp.zeros(K, np.int64)
    out = np.empty(source.n, np.int64) if labels else None
    n_k, r_k = np.zeros(K, np.int64), np.zeros(K, np.float64)
    total = 0.0
    mapped = source.mapped() if getattr(source, "streaming", False) and source.xp is np else None
    if mapped is not None:   # an uncompressed file: the kernel gathers each block from the map itself
        blocks = ((a, mapped.offsets[a:min(source.n, a + source.chunk_rows)])
                  for a in range(0, source.n, source.chunk_rows))
    else:
        blocks = source.chunks()
    for start, block in blocks:
        if mapped is not None:
            lab, dist, _, _ = assign_accumulate(mapped.flat, Cw, rows=block, sums=sums, counts=counts,
                                                accumulate=accumulate, engine=engine, cnorm=cnorm)
        else:
            lab, dist, _, _ = assign_accumulate(block, Cw, sums=sums, counts=counts, accumulate=accumulate,
                                                engine=engine, cnorm=cnorm)
        total += float(dist.sum())
        if labels or stats is not None:
            lab = backend_to_numpy(lab)
        if labels:
            out[start:start + lab.shape[0]] = lab
        if stats is not None:
            n_k += np.bincount(lab, minlength=K)
            r_k += np.bincount(lab, weights=np.sqrt(backend_to_numpy(dist)), minlength=K)
    if stats is not None:
        stats["counts"] = n_k
        with np.errstate(invalid="ignore", divide="ignore"):
            stats["mean_distance"] = np.where(n_k > 0, r_k / np.maximum(n_k, 1), np.nan)
    return out, total / (2.0 * source.n), sums, counts


def draw_batch(rng: np.random.Generator, n: int, m: int) -> np.ndarray:
    """``m`` distinct row indices of ``n`` (all of them when ``m >= n``), sorted."""
    if m >= n:
        return np.arange(n, dtype=np.int64)
    return np.sort(rng.choice(n, size=m, replace=False)).astype(np.int64)


def init_centroids(source: DataSource, k: int, method="random", rng=None, *, sample_size: int = 100_000,
                   engine=None):
    """Initial centroids, float64 ``(k, d)`` on the source's device.

    ``"random"``: ``k`` distinct data points, uniformly (the thesis' setting). ``"k-means++"``:
    Arthur & Vassilvitskii's D^2 sampling (one candidate per step) on the data, or on a uniform
    sample of ``sample_size`` points when ``N`` is larger. An array ``(k, d)`` is used as given.
    """
    k = check_k(source, k)
    xp = source.xp
    rng = np.random.default_rng(rng)
    if not isinstance(method, str):
        C = xp.asarray(method, dtype=np.float64)
        if C.shape != (k, source.d):
            raise InputError(f"init array has shape {tuple(C.shape)}, expected ({k}, {source.d})")
        if not bool(xp.isfinite(C).all()):
            raise InputError("init array contains NaN or Inf")
        return xp.ascontiguousarray(C)
    if method == "random":
        idx = draw_batch(rng, source.n, k)
        C = source.rows(idx).astype(np.float64)
        perm = rng.permutation(k)  # random order, not sorted by row index
        return xp.ascontiguousarray(C[xp.asarray(perm)])
    if method not in ("k-means++", "kmeans++"):
        raise InputError(f"init must be 'random', 'k-means++' or a (k, d) array, got {method!r}")
    idx = draw_batch(rng, source.n, sample_size)
    P = source.rows(idx)
    m = P.shape[0]
    first = int(rng.integers(m))
    chosen = [first]
    C1 = xp.ascontiguousarray(P[first:first + 1])
    _, d2, _, _ = assign_accumulate(P, C1, accumulate=False, engine=engine)
    d2 = backend_to_numpy(d2)
    for _ in range(1, k):
        total = d2.sum()
        if total <= 0:  # fewer distinct points than k: take unused ones at random
            rest = np.setdiff1d(np.arange(m), chosen)
            nxt = int(rng.choice(rest))
        else:
            nxt = int(np.searchsorted(np.cumsum(d2), rng.random() * total, side="right"))
            nxt = min(nxt, m - 1)
        chosen.append(nxt)
        Cn = xp.ascontiguousarray(P[nxt:nxt + 1])
        _, dn, _, _ = assign_accumulate(P, Cn, accumulate=False, engine=engine)
        d2 = np.minimum(d2, backend_to_numpy(dn))
    return xp.ascontiguousarray(P[xp.asarray(np.array(chosen))].astype(np.float64))


def sbe(source: DataSource, C0, rng, *, batch_size: int = 1000, n_outer: int = 100, n_inner: int = 10,
        gamma0: float | None = None, alpha: float = 0.75, beta: float = 1 / 1.01, engine=None,
        callback=None, batches=None) -> RunResult:
    """Stochastic backward Euler (thesis algorithm 4; spec ``sbe.md``).

    ::

        x = x0 ; gamma = gamma0 (default K)
        for k in 1..n_outer:
            y = x ; x_avg = x
            for l in 1..n_inner:
                draw a mini-batch B of M points (without replacement)
                g_j = (1/M) sum_{i in B, nearest(y) = j} (y_j - p_i)      # eq. 4.5 on the batch
                y = x - gamma * g                                          # fixed-point step
                x_avg = alpha * x_avg + (1 - alpha) * y
            x = x_avg ; gamma = beta * gamma

    Empty clusters get ``g_j = 0`` (their centroid is kept). ``callback(k)`` after each outer step.
    ``batches``: where the mini-batch sums come from (default: ``source``'s sampler in this
    process; :mod:`fastem.cluster.distributed` passes one whose batches are drawn across the
    partitions on Dask workers). A callable ``batches(C_work, sums, counts) -> M`` that adds the
    sums and counts of a fresh batch's points nearest to each row of ``C_work`` and returns the
    batch size, with ``close()``.
    """
    xp = source.xp
    x = xp.array(C0, dtype=np.float64)
    K = x.shape[0]
    gamma = float(K if gamma0 is None else gamma0)
    if not 0 <= alpha < 1:
        raise InputError(f"alpha must be in [0, 1), got {alpha}")
    if n_outer < 1 or n_inner < 1 or batch_size < 1:
        raise InputError(f"need n_outer, n_inner, batch_size >= 1, got {n_outer}, {n_inner}, {batch_size}")
    # every array of the loop is allocated once (the kernel's labels/distances excepted)
    y, x_avg, g = xp.empty_like(x), xp.empty_like(x), xp.empty_like(x)
    y_work = xp.empty(x.shape, source.dtype)      # y in the data's dtype, for the kernel
    sums = xp.empty(x.shape, np.float64)
    counts = xp.empty(K, np.int64)
    if batches is None:
        batches = LocalBatches(source.sampler(rng, batch_size), engine)
    try:
        _sbe_loop(x, y, x_avg, g, y_work, sums, counts, batches, gamma, alpha, beta, n_outer, n_inner, xp, callback)
    finally:
        batches.close()
    return RunResult(x, float("nan"), n_outer)


class LocalBatches:
    """Mini-batches from a sampler in this process: ``batches(C_work, sums, counts) -> M``."""

    def __init__(self, sampler, engine=None):
        self.sampler, self.engine = sampler, engine

    def __call__(self, C_work, sums, counts) -> int:
        X = getattr(self.sampler, "in_memory", None)
        if X is not None and self.engine in (None, "numba") and isinstance(C_work, np.ndarray):
            # data in memory: the kernel gathers the batch's rows itself, block by block (no copy)
            rows = self.sampler.draw()
            assign_accumulate(X, C_work, rows=rows, sums=sums, counts=counts, engine=self.engine, distances=False)
            return rows.shape[0]
        batch = self.sampler.next()
        assign_accumulate(batch, C_work, sums=sums, counts=counts, engine=self.engine, distances=False)
        return batch.shape[0]

    def close(self) -> None:
        self.sampler.close()


def _sbe_loop(x, y, x_avg, g, y_work, sums, counts, batches, gamma, alpha, beta, n_outer, n_inner, xp, callback):
    for k in range(n_outer):
        y[...] = x
        x_avg[...] = x
        for _ in range(n_inner):
            y_work[...] = y
            sums.fill(0)
            counts.fill(0)
            m = batches(y_work, sums, counts)
            # g = (counts * y - sums) / M ;  y = x - gamma * g
            xp.multiply(counts[:, None], y, out=g)
            g -= sums
            g /= m
            g *= gamma
            xp.subtract(x, g, out=y)
            # x_avg = alpha * x_avg + (1 - alpha) * y
            x_avg *= alpha
            xp.multiply(y, 1 - alpha, out=g)
            x_avg += g
        x[...] = x_avg
        gamma *= beta
        if callback is not None:
            callback(k)


def minibatch(source: DataSource, C0, rng, *, batch_size: int = 1000, n_steps: int = 1000, engine=None,
              callback=None, batches=None) -> RunResult:
    """Mini-batch k-means (Sculley): per batch, ``v_j += b_j`` and
    ``c_j <- c_j + (S_j - b_j c_j) / v_j`` (``S_j``, ``b_j``: sum and count of the batch points
    nearest to ``c_j``), i.e. every centroid is the running mean of the points it has won.
    No reassignment of small clusters (scikit-learn's ``reassignment_ratio``); empty ones stay.
    ``batches``: as for :func:`sbe`."""
    xp = source.xp
    C = xp.array(C0, dtype=np.float64)
    v = xp.zeros(C.shape[0], np.float64)
    if n_steps < 1 or batch_size < 1:
        raise InputError(f"need n_steps, batch_size >= 1, got {n_steps}, {batch_size}")
    C_work = xp.empty(C.shape, source.dtype)
    sums = xp.empty(C.shape, np.float64)
    counts = xp.empty(C.shape[0], np.int64)
    b = xp.empty((C.shape[0], 1), np.float64)
    bC = xp.empty(C.shape, np.float64)
    v_safe = xp.empty_like(v)
    if batches is None:
        batches = LocalBatches(source.sampler(rng, batch_size), engine)
    try:
        for step in range(n_steps):
            _minibatch_step(batches, C, C_work, sums, counts, v, b, bC, v_safe, xp)
            if callback is not None:
                callback(step)
    finally:
        batches.close()
    return RunResult(C, float("nan"), n_steps)


def _minibatch_step(batches, C, C_work, sums, counts, v, b, bC, v_safe, xp):
    C_work[...] = C
    sums.fill(0)
    counts.fill(0)
    batches(C_work, sums, counts)
    v += counts
    b[:, 0] = counts
    # c_j += (S_j - b_j c_j) / v_j where b_j > 0 (S_j - b_j c_j is exactly 0 where b_j = 0)
    xp.multiply(b, C, out=bC)
    sums -= bC
    xp.maximum(v, 1.0, out=v_safe)
    sums /= v_safe[:, None]
    C += sums


def lloyd(source: DataSource, C0, *, max_iter: int = 300, tol: float = 1e-4, engine=None, callback=None,
          tol_scale: float | None = None, stats: dict | None = None, assign=None, changes=None) -> RunResult:
    """Lloyd's algorithm (EM) on the full data, streamed in chunks.

    Stops like scikit-learn's ``KMeans(algorithm="lloyd")``: when the labels no longer change
    ("strict convergence") or when ``sum_j ||c_j^new - c_j||^2 <= tol * mean_j var(X_j)``; then
    a final assignment with the last centroids (when not strictly converged). Empty clusters
    keep their centroid (scikit-learn relocates them to far points instead). ``stats``: filled
    as by :func:`assign_full` for the returned centroids. ``assign``: the full-data pass (default
    :func:`assign_full`; :mod:`fastem.cluster.distributed` passes one that runs on Dask workers).
    ``changes``: an object whose ``assign_counting_changes(C, stats=)`` does an iteration's pass
    returning ``(number of changed labels or None, phi, sums, counts)`` and ``last_labels()``
    the labels of the latest such pass (the distributed source: labels stay on the workers).
    """
    assign = assign_full if assign is None else assign
    xp = source.xp
    C = xp.array(C0, dtype=np.float64)
    if max_iter < 1:
        raise InputError(f"max_iter must be >= 1, got {max_iter}")
    tol_abs = tol * (source.mean_variance() if tol_scale is None else tol_scale) if tol > 0 else 0.0
    prev = None
    it = 0
    strict = False
    labels = None
    for it in range(1, max_iter + 1):
        if changes is not None:
            changed, phi, sums, counts = changes.assign_counting_changes(C, stats=stats)
            same = changed == 0
        else:
            labels, phi, sums, counts = assign(source, C, labels=True, accumulate=True, engine=engine, stats=stats)
            same = prev is not None and np.array_equal(labels, prev)
        newC = xp.where(counts[:, None] > 0, sums / xp.maximum(counts, 1)[:, None], C)
        if same:
            strict = True
            break
        shift = float(((newC - C) ** 2).sum())
        C = newC
        prev = labels
        if callback is not None:
            callback(it, phi)
        if shift <= tol_abs:
            break
    if strict:
        # labels unchanged: C (the centroids these labels, phi and stats came from) is final
        return RunResult(C, phi, it, changes.last_labels() if changes is not None else labels)
    labels, phi, _, _ = assign(source, C, labels=True, engine=engine, stats=stats)
    return RunResult(C, phi, it, labels)
