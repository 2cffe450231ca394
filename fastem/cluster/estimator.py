"""scikit-learn-style estimator over :mod:`fastem.cluster.core` (SBE, mini-batch, Lloyd)."""

from __future__ import annotations

import inspect

import numpy as np

from fastem import backend
from fastem.errors import InputError

from . import core
from .source import DataSource, backend_to_numpy

__all__ = ["SBEKMeans", "ALGORITHMS"]

ALGORITHMS = ("sbe", "minibatch", "lloyd")


def _open_ref(X):
    """``"file.h5:/ds"`` -> (ExitStack holding the file, h5py.Dataset) for streaming; else (None, X)."""
    if X is None:
        raise InputError("X must be an (N, d), (N, ky, kx) or (Ny, Nx, ky, kx) array, an h5py.Dataset or "
                         "'FILE.h5:/dataset', got None")
    if isinstance(X, (str, bytes)) or hasattr(X, "__fspath__"):
        from contextlib import ExitStack

        from fastem.io import open_h5, parse_ref
        from fastem.io.hdf5 import find_dataset

        path, ds = parse_ref(X.decode() if isinstance(X, bytes) else X)
        stack = ExitStack()
        try:
            f = stack.enter_context(open_h5(path))
            return stack, find_dataset(f, ds, file_label=str(path))
        except BaseException:
            stack.close()
            raise
    return None, X


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _int_param(value, name: str, minimum: int = 1, *, optional: bool = False):
    if value is None and optional:
        return None
    if not _is_int(value):
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if int(value) < minimum:
        raise InputError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _float_param(value, name: str, *, low: float, high: float = np.inf, low_open: bool = True,
                 high_open: bool = False, optional: bool = False):
    if value is None and optional:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"{name} must be a number, got {value!r}")
    v = float(value)
    ok = np.isfinite(v) and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        lo = "(" if low_open else "["
        hi = ")" if high_open or not np.isfinite(high) else "]"
        raise InputError(f"{name} must be a finite number in {lo}{low:g}, {high:g}{hi}, got {value!r}")
    return v


class SBEKMeans:
    """k-means by stochastic backward Euler (default), mini-batch k-means or Lloyd's algorithm.

    Parameters
    ----------
    n_clusters : int
        ``K``.
    algorithm : {"sbe", "minibatch", "lloyd"}
    init : {"random", "k-means++"} or ndarray (K, d)
        ``"random"``: ``K`` distinct data points (the thesis' setting).
    n_init : int
        Independent starts; the one with the lowest full-data objective is kept.
    batch_size : int
        Mini-batch size ``M`` (sbe, minibatch).
    n_outer, n_inner : int
        SBE's ``omaxit`` and ``imaxit`` (thesis: 100-150 and 5-10).
    gamma0 : float, optional
        SBE's initial step (default ``K``). ``alpha`` (0.75) and ``beta`` (1/1.01) as in the thesis.
    n_steps : int, optional
        Mini-batches of ``"minibatch"`` (default ``n_outer * n_inner``: as many points as SBE).
    max_iter, tol : int, float
        Lloyd's iteration cap and scikit-learn's relative tolerance.
    random_state : int, numpy Generator or None
        Start ``r`` uses ``SeedSequence(random_state).spawn(n_init)[r]`` (reproducible per start).
    dtype : {None, float32, float64}
        Working dtype (default: float32 data stays float32, anything else float64).
    chunk_rows : int, optional
        Rows per chunk of the full-data passes (bounded memory).
    engine : kernel engine (see :func:`fastem.kernels.assign_accumulate`)
    device : str or fastem.backend.Device, optional
        Where to compute (default: the data's device; the CPU for HDF5). HDF5 batches are read
        on the host and copied there.
    progress : tqdm-like object or callable, optional
        Progress report (the library draws no bars; the CLI does): an object with ``update(n)``
        (``n`` steps done; ``set_postfix(run=, phi=, best=)`` too, if it has it, after every
        start) or a callable called as ``progress(n)``. :meth:`progress_total` is the number of
        steps a fit reports at most (Lloyd stops early on convergence). ``True`` is deprecated
        (it drew a bar) and reports nothing.
    transform : {"none", "sqrt", "log1p"}
        Intensity transform of every pattern (:mod:`fastem.cluster.preprocess`).
    detector_mask : ndarray (ky, kx), optional
        Nonzero = detector pixel hidden (set to 0), e.g. the central beam or dead pixels.
    binning : {1, 2, 4}
        Detector binning on both pattern axes (sum of ``b x b`` pixels).
    normalize : {"none", "sum", "l2"}
        Per-pattern normalisation (after the transform).
    sampling : {"auto", "uniform", "chunks"}
        Mini-batch sampling (:mod:`fastem.cluster.sampling`). ``auto``: whole chunks (a shuffled
        reservoir, each chunk read once per epoch) for a chunked HDF5 dataset, uniform rows
        otherwise.
    sampling_chunks : tuple of int, optional
        The chunk shape the chunk sampler plans with (default: the dataset's own HDF5 chunks).
    reservoir_rows : int, optional
        Rows per reservoir window of the chunk sampler (default ``4 * batch_size``).

    Attributes
    ----------
    cluster_centers_ : ndarray (K, d), data dtype, on the data's device (NumPy for HDF5)
    labels_ : int64 ndarray (N,) (host NumPy)
    objective_ : float
        ``phi = 1/(2N) sum_i min_j ||c_j - p_i||^2`` (thesis eq. 4.4) of the kept start.
    inertia_ : float
        ``sum_i min_j ||c_j - p_i||^2 = 2 N objective_`` (scikit-learn's convention).
    objectives_ : float64 ndarray (n_init,)
        ``phi`` of every start (in start order).
    n_iter_ : int
        Lloyd: iterations; SBE: outer steps; minibatch: mini-batches (of the kept start).
    n_features_in_ : int
        Raw features per row (``ky*kx`` for patterns, before binning).
    n_features_ : int
        Features the centroids have (after binning).
    scan_shape_ : (Ny, Nx) or None
        For 4D input ``(Ny, Nx, ky, kx)``.
    pattern_shape_ : (ky, kx) or None
        Raw pattern shape (3D / 4D input).
    label_map_ : int64 ndarray (Ny, Nx) or None
        ``labels_`` as a map over the scan (4D input).
    cluster_patterns_ : ndarray (K, ky/b, kx/b) or None
        The centroids as (preprocessed) patterns.
    counts_ : int64 ndarray (K,)
        Points per cluster.
    mean_distance_ : float64 ndarray (K,)
        Mean Euclidean distance of a cluster's points to its centroid (NaN if empty).
    preprocess_ : Preprocess
        What was done to every pattern; ``predict`` does the same.
    """

    def __init__(self, n_clusters: int = 8, *, algorithm: str = "sbe", init="random", n_init: int = 1,
                 batch_size: int = 1000, n_outer: int = 100, n_inner: int = 10, gamma0: float | None = None,
                 alpha: float = 0.75, beta: float = 1 / 1.01, n_steps: int | None = None, max_iter: int = 300,
                 tol: float = 1e-4, random_state=None, dtype=None, chunk_rows: int | None = None, engine=None,
                 device=None, progress=None, transform: str = "none", detector_mask=None, binning: int = 1,
                 normalize: str = "none", sampling: str = "auto", sampling_chunks=None,
                 reservoir_rows: int | None = None):
        self.n_clusters = n_clusters
        self.algorithm = algorithm
        self.init = init
        self.n_init = n_init
        self.batch_size = batch_size
        self.n_outer = n_outer
        self.n_inner = n_inner
        self.gamma0 = gamma0
        self.alpha = alpha
        self.beta = beta
        self.n_steps = n_steps
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.dtype = dtype
        self.chunk_rows = chunk_rows
        self.engine = engine
        self.device = device
        self.progress = progress
        self.transform = transform
        self.detector_mask = detector_mask
        self.binning = binning
        self.normalize = normalize
        self.sampling = sampling
        self.sampling_chunks = sampling_chunks
        self.reservoir_rows = reservoir_rows

    # -- scikit-learn protocol ---------------------------------------------------------------
    @classmethod
    def _param_names(cls):
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict:
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        valid = self._param_names()
        for key, value in params.items():
            if key not in valid:
                raise InputError(f"invalid parameter {key!r} for {type(self).__name__}; valid: {', '.join(valid)}")
            setattr(self, key, value)
        return self

    def __repr__(self):
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        changed = [f"{k}={v!r}" for k, v in self.get_params().items()
                   if not (isinstance(v, np.ndarray) or v is defaults.get(k) or v == defaults.get(k))]
        return f"{type(self).__name__}({', '.join(changed)})"

    # -- fitting ----------------------------------------------------------------------------
    def _preprocess(self):
        from .preprocess import Preprocess

        return Preprocess(transform=self.transform, mask=self.detector_mask, binning=self.binning,
                          normalize=self.normalize)

    def _source(self, X, name="X", dtype=None, preprocess=None):
        return DataSource(X, dtype=dtype or self.dtype, chunk_rows=self.chunk_rows, device=self.device, name=name,
                          preprocess=preprocess if preprocess is not None else self._preprocess(),
                          sampling=self.sampling, sampling_chunks=self.sampling_chunks,
                          reservoir_rows=self.reservoir_rows)

    def fit(self, X, y=None, *, callback=None, name: str | None = None, executor=None):
        """Fit on ``X``: (N, d), (N, ky, kx) or (Ny, Nx, ky, kx) NumPy/CuPy array, ``h5py.Dataset``
        or ``"file.h5:/ds"`` (HDF5 is streamed: mini-batches and chunks are read from disk).

        ``callback(run, result)`` is called after every start (``result``: its
        :class:`~fastem.cluster.RunResult`); steps are reported through ``progress`` (see the class).
        ``name``: how messages refer to the data (default ``FILE:/dataset`` for HDF5, else ``"X"``).
        ``executor`` (:mod:`fastem.executor`, an HDF5 dataset only): every full-data pass of Lloyd,
        and every mini-batch of SBE and mini-batch k-means (drawn uniformly across the partitions),
        runs as a map-reduce on its workers, which read the file themselves
        (:mod:`fastem.cluster.distributed`); initialisation, checks and the updates run here. Same
        result as one process (SBE / mini-batch: as with ``sampling="uniform"``).

        Raises
        ------
        InputError
            A bad parameter (named), bad data (shape, dtype, NaN / inf, values whose squared
            distances overflow even in float64), ``n_clusters`` > N.
        NonFiniteResultError
            The fit diverged (e.g. a too large ``gamma0``).
        """
        self._check_params()
        f, X = _open_ref(X)
        if name is None:
            name = f"{X.file.filename}:{X.name}" if hasattr(X, "file") and hasattr(X, "name") else "X"
        self._name = str(name)
        from fastem.executor import InlineExecutor

        self._executor = None if executor is None or isinstance(executor, InlineExecutor) else executor
        if self._executor is not None:
            if self.algorithm != "lloyd" and self.sampling == "chunks":
                raise InputError("executor: SBE and mini-batch on workers draw uniform batches across the "
                                 "partitions; sampling='chunks' runs in one process only (use sampling='auto' "
                                 "or 'uniform')")
            if not (hasattr(X, "file") and hasattr(X, "name")):
                raise InputError("executor: the data must be an HDF5 dataset (the workers read it themselves), "
                                 f"got {type(X).__name__}")
        try:
            return self._fit(X, callback)
        finally:
            self._executor = None
            if f is not None:
                f.close()

    def _check_params(self) -> None:
        """One-line :class:`InputError` naming the first bad parameter (before any work)."""
        if not isinstance(self.algorithm, str) or self.algorithm not in ALGORITHMS:
            raise InputError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}")
        _int_param(self.n_clusters, "n_clusters")
        _int_param(self.n_init, "n_init")
        _int_param(self.batch_size, "batch_size")
        _int_param(self.n_outer, "n_outer")
        _int_param(self.n_inner, "n_inner")
        _int_param(self.n_steps, "n_steps", optional=True)
        _int_param(self.max_iter, "max_iter")
        _int_param(self.chunk_rows, "chunk_rows", optional=True)
        _int_param(self.reservoir_rows, "reservoir_rows", optional=True)
        from .source import SAMPLING

        if not isinstance(self.sampling, str) or self.sampling not in SAMPLING:
            raise InputError(f"sampling must be one of {', '.join(SAMPLING)}, got {self.sampling!r}")
        if self.sampling_chunks is not None and (
                not isinstance(self.sampling_chunks, (tuple, list)) or not self.sampling_chunks
                or not all(_is_int(c) and int(c) >= 1 for c in self.sampling_chunks)):
            raise InputError(f"sampling_chunks must be a tuple of integers >= 1, got {self.sampling_chunks!r}")
        self._preprocess()  # transform, detector_mask, binning, normalize
        _float_param(self.gamma0, "gamma0", low=0.0, optional=True)
        _float_param(self.alpha, "alpha", low=0.0, high=1.0, low_open=False, high_open=True)
        _float_param(self.beta, "beta", low=0.0, high=1.0)
        _float_param(self.tol, "tol", low=0.0, low_open=False)
        rs = self.random_state
        if not (rs is None or isinstance(rs, np.random.Generator) or (_is_int(rs) and int(rs) >= 0)):
            raise InputError(f"random_state must be None, an integer >= 0 or a numpy Generator, got {rs!r}")
        prog = self.progress
        if not (prog is None or isinstance(prog, (bool, np.bool_)) or callable(getattr(prog, "update", None))
                or callable(prog)):
            raise InputError(f"progress must be None, a tqdm-like object with update(n) or a callable, got "
                             f"{type(prog).__name__}")
        if isinstance(self.init, str):
            if self.init not in ("random", "k-means++", "kmeans++"):
                raise InputError(f"init must be 'random', 'k-means++' or a (k, d) array, got {self.init!r}")
        elif self.init is None:
            raise InputError("init must be 'random', 'k-means++' or a (k, d) array, got None")

    def _checked_source(self, X) -> DataSource:
        """The data source, finite and within the range where squared distances cannot overflow.

        float32 data too large for float32 arithmetic is computed in float64 (with a
        :class:`~fastem.io.DataWarning`) unless float32 was requested; data too large even for
        float64 is refused (rescale it).
        """
        source = self._source(X, getattr(self, "_name", "X"))
        largest = source.check_finite()
        if largest <= source.max_abs_for(source.dtype):
            return source
        limit64 = source.max_abs_for(np.float64)
        if largest > limit64:
            raise InputError(f"{source.name}: values up to {largest:.3g} overflow the squared distances of k-means "
                             f"(|x| must stay below {limit64:.3g} for N = {source.n}, d = {source.d}); divide the "
                             f"data by a constant first")
        if self.dtype is not None:
            raise InputError(f"{source.name}: values up to {largest:.3g} overflow squared distances in dtype "
                             f"{np.dtype(self.dtype).name} (|x| must stay below {source.max_abs_for(source.dtype):.3g}); "
                             f"use dtype float64")
        import warnings

        from fastem.io import DataWarning

        warnings.warn(f"{source.name}: values up to {largest:.3g} overflow squared distances in float32; computing "
                      f"in float64", DataWarning, stacklevel=4)
        return self._source(X, source.name, dtype=np.float64, preprocess=source.preprocess)

    def _fit(self, X, callback):
        n_init = int(self.n_init)
        source = self._checked_source(X)
        k = core.check_k(source, self.n_clusters)
        if isinstance(self.random_state, np.random.Generator):
            seeds = [np.random.default_rng(s) for s in self.random_state.bit_generator.seed_seq.spawn(n_init)]
        else:
            seeds = [np.random.default_rng(s) for s in np.random.SeedSequence(self.random_state).spawn(n_init)]
        tol_scale = source.mean_variance() if self.algorithm == "lloyd" and self.tol > 0 else None
        tick, postfix = self._progress_reporters()
        best = None
        objectives = np.empty(n_init)
        for r, rng in enumerate(seeds):
            C0 = core.init_centroids(source, k, self.init, rng, engine=self.engine)
            # a diverging run (too large gamma0) is reported once, by _check_result, not by NumPy warnings
            stats = {}
            with np.errstate(over="ignore", invalid="ignore"):
                res = self._run(source, C0, rng, tol_scale, tick, stats)
                if self.algorithm != "lloyd" or res.labels is None:
                    assign = core.assign_full
                    if getattr(self, "_executor", None) is not None:      # the final pass on the workers too
                        from .distributed import _Distributed

                        assign = _Distributed(self._executor, self._partitioned(source), hold=False).assign_full
                    res.labels, res.objective, _, _ = assign(source, res.centers, engine=self.engine, stats=stats)
            res.stats = stats
            objectives[r] = res.objective
            if postfix is not None:
                postfix(run=r + 1, phi=f"{res.objective:.6g}", best=f"{np.min(objectives[:r + 1]):.6g}")
            if callback is not None:
                callback(r, res)
            if best is None or res.objective < best.objective:
                best = res
        self._check_result(best, source)
        self.cluster_centers_ = best.centers.astype(source.dtype)
        self.labels_ = best.labels
        self.objective_ = float(best.objective)
        self.inertia_ = 2.0 * source.n * self.objective_
        self.objectives_ = objectives
        self.n_iter_ = int(best.n_iter)
        self.n_features_in_ = source.raw_d
        self.n_features_ = source.d
        self._dtype = source.dtype
        self.scan_shape_ = source.scan_shape
        self.pattern_shape_ = source.pattern_shape
        self.preprocess_ = source.preprocess
        self.label_map_ = None if source.scan_shape is None else self.labels_.reshape(source.scan_shape)
        fs = source.feature_shape
        self.cluster_patterns_ = None if fs is None else self.cluster_centers_.reshape((k,) + tuple(fs))
        self.counts_ = best.stats["counts"]
        self.mean_distance_ = best.stats["mean_distance"]
        return self

    def _check_result(self, best, source) -> None:
        """A diverged fit (NaN / inf centroids or objective) is an error, never a result."""
        from fastem.io import require_finite_result

        hint = ("lower gamma0 (SBE's initial step)" if self.algorithm == "sbe" else
                "check the data scale") + " or rescale the data"
        require_finite_result(best.centers, f"{self.algorithm} k-means centroids of {source.name}", hint=hint)
        require_finite_result(np.array([best.objective]), f"{self.algorithm} k-means objective of {source.name}",
                              hint=hint)

    def progress_total(self) -> int:
        """Steps a fit reports through ``progress`` at most: ``n_init`` times the outer steps (sbe),
        mini-batches (minibatch) or ``max_iter`` (lloyd, which may stop early)."""
        self._check_params()
        per_run = {"sbe": self.n_outer, "minibatch": self.n_steps or self.n_outer * self.n_inner,
                   "lloyd": self.max_iter}[self.algorithm]
        return int(self.n_init) * int(per_run)

    def _progress_reporters(self):
        """(``tick(*_)`` adding one step, ``set_postfix(**kw)`` or None) from ``progress``."""
        prog = self.progress
        if prog is None or (isinstance(prog, (bool, np.bool_)) and not prog):
            return None, None
        if isinstance(prog, (bool, np.bool_)):
            import warnings

            warnings.warn("SBEKMeans(progress=True) is deprecated and draws nothing (the library draws no bars): "
                          "pass a tqdm-like object with update(n) or a callable", DeprecationWarning, stacklevel=4)
            return None, None
        update = getattr(prog, "update", None)
        if callable(update):
            postfix = getattr(prog, "set_postfix", None)
            return (lambda *_: update(1)), (postfix if callable(postfix) else None)
        return (lambda *_: prog(1)), None

    def _partitioned(self, source):
        from fastem.executor import items_per_task

        from .distributed import PartitionedData

        # a task holds a block of raw and prepared rows (and, for SBE / mini-batch, its share of a
        # batch) plus K x d float64 centroids and sums: block rows and partitions from the budget
        row_bytes = 3 * source.d * np.dtype(source.dtype).itemsize
        fixed = 3 * int(self.n_clusters) * source.d * 8
        rows = items_per_task(self._executor, source.chunk_rows, row_bytes, what="cluster", item="data row",
                              fixed_bytes=fixed)
        parts = max(2, 2 * self._executor.slots)
        if self.algorithm in ("sbe", "minibatch"):
            share = items_per_task(self._executor, -(-int(self.batch_size) // parts), row_bytes,
                                   what="cluster (mini-batch share)", item="data row", fixed_bytes=fixed)
            parts = max(parts, -(-int(self.batch_size) // share))
        return PartitionedData(source._data.file.filename, source._data.name, dtype=source.dtype,
                               preprocess=source.preprocess, chunk_rows=rows, parts=parts)

    def _run(self, source, C0, rng, tol_scale, tick=None, stats=None):
        executor = getattr(self, "_executor", None)
        batches = None
        if executor is not None and self.algorithm in ("sbe", "minibatch"):
            from .distributed import DistributedBatches

            batches = DistributedBatches(executor, self._partitioned(source), rng, self.batch_size)
        if self.algorithm == "sbe":
            return core.sbe(source, C0, rng, batch_size=self.batch_size, n_outer=self.n_outer, n_inner=self.n_inner,
                            gamma0=self.gamma0, alpha=self.alpha, beta=self.beta, engine=self.engine, callback=tick,
                            batches=batches)
        if self.algorithm == "minibatch":
            return core.minibatch(source, C0, rng, batch_size=self.batch_size,
                                  n_steps=self.n_steps or self.n_outer * self.n_inner, engine=self.engine, callback=tick,
                                  batches=batches)
        if executor is not None:
            from .distributed import _Distributed

            dist = _Distributed(executor, self._partitioned(source))
            try:
                return core.lloyd(dist, C0, max_iter=self.max_iter, tol=self.tol, callback=tick, tol_scale=tol_scale,
                                  stats=stats, assign=dist.assign_full, changes=dist)
            finally:
                dist.close()
        return core.lloyd(source, C0, max_iter=self.max_iter, tol=self.tol, engine=self.engine, callback=tick,
                          tol_scale=tol_scale, stats=stats)

    # -- using a fit ------------------------------------------------------------------------
    def _check_fitted(self):
        if not hasattr(self, "cluster_centers_"):
            raise InputError(f"this {type(self).__name__} is not fitted yet: call fit first")

    def _assign(self, X):
        self._check_fitted()
        f, X = _open_ref(X)
        try:
            from .source import split_shape

            _, _, pshape, raw_d = split_shape(getattr(X, "shape", np.shape(X)), "X")
            if raw_d != self.n_features_in_ or (self.pattern_shape_ is not None and pshape is not None
                                                and tuple(pshape) != tuple(self.pattern_shape_)):
                got = f"patterns of shape {tuple(pshape)}" if pshape is not None else f"{raw_d} features"
                want = (f"patterns of shape {tuple(self.pattern_shape_)}" if self.pattern_shape_ is not None
                        else f"{self.n_features_in_}")
                raise InputError(f"X has {got} but the model was fitted with {want}")
            if self.pattern_shape_ is not None and pshape is None and not self.preprocess_.is_identity:
                raise InputError(f"X: the model preprocesses patterns of shape {tuple(self.pattern_shape_)}; "
                                 "pass (N, ky, kx) or (Ny, Nx, ky, kx) data, not (N, d) rows")
            source = DataSource(X, dtype=self._dtype, chunk_rows=self.chunk_rows, device=self.device,
                                preprocess=self.preprocess_ if pshape is not None else None)
            largest = source.check_finite()
            if largest > source.max_abs_for(source.dtype):
                raise InputError(f"X: values up to {largest:.3g} overflow squared distances in dtype "
                                 f"{source.dtype.name}; divide the data by a constant first")
            centers = self.cluster_centers_
            if backend.is_cupy_array(centers) != (source.xp is not np):
                centers = source.xp.asarray(backend_to_numpy(centers))
            centers = centers.astype(np.float64)
            return core.assign_full(source, centers, engine=self.engine), source
        finally:
            if f is not None:
                f.close()

    def predict(self, X):
        """Index of the nearest centroid for every point (int64, host NumPy).

        ``X`` as in :meth:`fit` (the fitted preprocessing is applied to patterns); a 4D scan
        ``(Ny, Nx, ky, kx)`` gives an ``(Ny, Nx)`` label map, anything else ``(N,)`` labels.
        """
        (labels, _, _, _), source = self._assign(X)
        return labels.reshape(source.scan_shape) if source.scan_shape is not None else labels

    def fit_predict(self, X, y=None):
        return self.fit(X).labels_

    def score(self, X, y=None) -> float:
        """``-sum_i min_j ||c_j - x_i||^2`` (scikit-learn's sign and scale)."""
        (_, phi, _, _), source = self._assign(X)
        return -2.0 * source.n * phi

    def objective(self, X) -> float:
        """``phi`` (thesis eq. 4.4) of the fitted centroids on ``X``."""
        (_, phi, _, _), _ = self._assign(X)
        return phi
