"""k-means assignment kernel: every engine, ``numpy`` included, against an independent float64
reference written here (plain NumPy distances, argmin, per-cluster sums), and the BLAS
single-thread guard (threadpoolctl) under concurrent use."""

import threading

import numpy as np
import pytest

from fastem import backend
from fastem.errors import InputError
from fastem.kernels import assign_accumulate

from conftest import to_numpy

SIZES = [(1, 1, 1), (7, 3, 2), (33, 5, 4), (257, 17, 9), (1000, 64, 31), (129, 784, 10), (1001, 13, 7)]


def _reference(X, C):
    """Independent of the kernel module: float64 squared distances one centroid at a time, the
    first minimum, and per-cluster sums / counts by boolean selection."""
    X64, C64 = np.asarray(X, np.float64), np.asarray(C, np.float64)
    D = np.stack([np.sum((X64 - c) ** 2, axis=1) for c in C64], axis=1)
    labels = np.argmin(D, axis=1)
    dist = D[np.arange(len(X64)), labels]
    sums = np.array([X64[labels == k].sum(axis=0) for k in range(len(C64))]).reshape(C64.shape)
    counts = np.array([np.count_nonzero(labels == k) for k in range(len(C64))])
    return labels, dist, sums, counts


def _data(rng, M, d, K, dtype):
    X = rng.standard_normal((M, d)).astype(dtype)
    C = rng.standard_normal((K, d)).astype(dtype)
    return X, C


def _check_against_reference(X, C, labels, dist, sums, counts, exact):
    ref_l, ref_d, ref_s, ref_c = _reference(X, C)
    labels, dist, sums, counts = map(to_numpy, (labels, dist, sums, counts))
    if exact:
        np.testing.assert_array_equal(labels, ref_l)
    else:
        # float32 expanded distances: a different label only on a near-tie, and then the chosen
        # centroid's exact distance is within float32 rounding of the minimum
        D = ((X.astype(np.float64)[:, None] - C.astype(np.float64)[None]) ** 2).sum(-1)
        chosen = D[np.arange(len(labels)), labels]
        np.testing.assert_allclose(chosen, ref_d, rtol=1e-4, atol=1e-4 * (1 + np.abs(D).max()))
        assert np.mean(labels == ref_l) > 0.99
    # dist is the direct float64 distance to the chosen centroid
    X64, C64 = X.astype(np.float64), C.astype(np.float64)
    np.testing.assert_allclose(dist, ((X64 - C64[labels]) ** 2).sum(1), rtol=1e-12, atol=1e-12)
    # sums / counts are exactly those of the labels the kernel chose
    exp_s = np.zeros_like(ref_s)
    np.add.at(exp_s, labels, X64)
    np.testing.assert_array_equal(counts, np.bincount(labels, minlength=C.shape[0]))
    np.testing.assert_allclose(sums, exp_s, rtol=1e-10, atol=1e-9)
    if exact:
        np.testing.assert_allclose(dist, ref_d, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(sums, ref_s, rtol=1e-10, atol=1e-9)
        np.testing.assert_array_equal(counts, ref_c)


@pytest.mark.parametrize("M,d,K", [(1, 1, 1), (37, 11, 5), (1001, 13, 7), (263, 129, 17)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_engine_is_the_plain_definition(rng, M, d, K, dtype):
    """Was: the ``numpy`` engine was checked against itself (it *is* the module's reference)."""
    X, C = _data(rng, M, d, K, dtype)
    labels, dist, sums, counts = assign_accumulate(X, C, engine="numpy")
    ref_l, ref_d, ref_s, ref_c = _reference(X, C)
    np.testing.assert_array_equal(labels, ref_l)     # float64 distances for both: same first minimum
    np.testing.assert_allclose(dist, ref_d, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sums, ref_s, rtol=1e-12, atol=1e-10)
    np.testing.assert_array_equal(counts, ref_c)
    assert counts.sum() == M and len(np.unique(labels)) > min(1, K - 1)


@pytest.mark.parametrize("M,d,K", SIZES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("engine", [None, "numba", "numpy"])
def test_cpu_engines_match_reference(rng, M, d, K, dtype, engine):
    X, C = _data(rng, M, d, K, dtype)
    out = assign_accumulate(X, C, engine=engine)
    assert out[0].dtype == np.int64 and out[1].dtype == np.float64
    _check_against_reference(X, C, *out, exact=dtype == np.float64)


def test_reference_is_the_definition():
    X = np.array([[0.0, 0.0], [3.0, 0.0], [10.0, 1.0]])
    C = np.array([[1.0, 0.0], [9.0, 0.0]])
    labels, dist, sums, counts = assign_accumulate(X, C, engine="numpy")
    np.testing.assert_array_equal(labels, [0, 0, 1])
    np.testing.assert_allclose(dist, [1.0, 4.0, 2.0])
    np.testing.assert_allclose(sums, [[3.0, 0.0], [10.0, 1.0]])
    np.testing.assert_array_equal(counts, [2, 1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_ties_go_to_lowest_index_and_empty_clusters(rng, dtype, engine):
    # integer data: the expanded and the direct distances are exact in float32 too
    X = rng.integers(-4, 5, size=(301, 3)).astype(dtype)
    # centroid 1 duplicates centroid 0 (every tie), centroid 3 is far away (empty)
    C = np.array([[1, 0, 0], [1, 0, 0], [-1, 0, 0], [100, 100, 100]], dtype=dtype)
    labels, dist, sums, counts = assign_accumulate(X, C, engine=engine)
    assert not np.any(labels == 1)          # exact duplicate: always the lower index
    assert counts[1] == 0 and counts[3] == 0
    np.testing.assert_array_equal(sums[[1, 3]], 0)
    # points at x = 0 are equidistant from centroids 0 and 2: they go to 0
    eq = X[:, 0] == 0
    assert eq.any() and np.all(labels[eq] == 0)
    _check_against_reference(X, C, labels, dist, sums, counts, exact=True)


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_accumulates_into_given_arrays_and_skips(rng, engine):
    X, C = _data(rng, 50, 6, 5, np.float64)
    s0, c0 = rng.standard_normal((5, 6)), rng.integers(0, 9, 5).astype(np.int64)
    sums, counts = s0.copy(), c0.copy()
    labels, _, sums2, counts2 = assign_accumulate(X, C, sums=sums, counts=counts, engine=engine)
    assert sums2 is sums and counts2 is counts
    np.testing.assert_array_equal(counts - c0, np.bincount(labels, minlength=5))
    l2, d2, s3, c3 = assign_accumulate(X, C, accumulate=False, engine=engine)
    np.testing.assert_array_equal(l2, labels)
    assert not s3.any() and not c3.any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_skipping_distances_keeps_labels_sums_counts(rng, dtype):
    """distances=False (mini-batch steps): the same labels, sums and counts as the full kernel."""
    X, C = _data(rng, 700, 33, 7, dtype)
    full = assign_accumulate(X, C, engine="numba")
    part = assign_accumulate(X, C, engine="numba", distances=False)
    np.testing.assert_array_equal(part[0], full[0])
    np.testing.assert_array_equal(part[2], full[2])
    np.testing.assert_array_equal(part[3], full[3])
    ref = assign_accumulate(X, C, engine="numpy")
    np.testing.assert_allclose(part[2], ref[2], rtol=1e-6 if dtype == np.float32 else 1e-12)


def test_empty_batch():
    X = np.zeros((0, 3))
    labels, dist, sums, counts = assign_accumulate(X, np.ones((2, 3)))
    assert labels.shape == (0,) and dist.shape == (0,) and not counts.any()


def test_bad_input(rng):
    X, C = _data(rng, 5, 3, 2, np.float64)
    with pytest.raises(InputError, match="features"):
        assign_accumulate(X, C[:, :2].copy())
    with pytest.raises(InputError, match="float32 or float64"):
        assign_accumulate(X, C.astype(np.float32))
    with pytest.raises(InputError, match="float32 or float64"):
        assign_accumulate(X.astype(np.int64), C.astype(np.int64))
    with pytest.raises(InputError, match="contiguous"):
        assign_accumulate(np.asfortranarray(rng.standard_normal((5, 3))), C)
    with pytest.raises(InputError, match="K >= 1"):
        assign_accumulate(X, np.zeros((0, 3)))
    with pytest.raises(InputError, match="sums must be"):
        assign_accumulate(X, C, sums=np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="GPU"):
        assign_accumulate(X, C, engine="cuda")


# ---- the BLAS single-thread guard (threadpoolctl; process-wide, so concurrent users share it) ----
def _blas_threads():
    from threadpoolctl import threadpool_info

    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


@pytest.fixture
def two_blas_threads():
    from threadpoolctl import threadpool_limits

    if not _blas_threads():
        pytest.skip("no BLAS library visible to threadpoolctl")
    with threadpool_limits(limits=2, user_api="blas"):
        if set(_blas_threads()) != {2}:
            pytest.skip("BLAS cannot run 2 threads here")
        yield


def test_blas_guard_limits_and_restores(two_blas_threads):
    from fastem.kernels.kmeans_assign import single_thread_blas

    with single_thread_blas():
        assert set(_blas_threads()) == {1}
        with single_thread_blas():   # nested: still one thread, and the outer exit restores
            assert set(_blas_threads()) == {1}
        assert set(_blas_threads()) == {1}
    assert set(_blas_threads()) == {2}


class _FakeBlas:
    """A stand-in for threadpoolctl's controller: one process-wide thread count, as BLAS has."""

    threads = 2

    def limit(self, limits, user_api):
        assert user_api == "blas"
        saved, _FakeBlas.threads = _FakeBlas.threads, limits

        class Limiter:
            def restore_original_limits(self):
                _FakeBlas.threads = saved

        return Limiter()


def test_blas_guard_overlapping_threads(monkeypatch):
    """A leaves while B is still inside: B keeps one BLAS thread; the last to leave restores 2
    (unlocked save/restore pairs restore 2 under B, or leave 1 for good). A stand-in controller:
    the logic under test is the guard's, and OpenBLAS may ignore a worker thread's setting."""
    import threadpoolctl

    from fastem.kernels import kmeans_assign as ka

    monkeypatch.setattr(threadpoolctl, "ThreadpoolController", _FakeBlas)
    monkeypatch.setattr(ka, "_BLAS_CONTROLLER", None)
    _FakeBlas.threads = 2
    a_in, b_in, a_out, b_go = (threading.Event() for _ in range(4))
    seen = {}

    def a():
        with ka.single_thread_blas():
            a_in.set()
            seen["a_in"] = _FakeBlas.threads
            b_in.wait(10)
        a_out.set()

    def b():
        a_in.wait(10)
        with ka.single_thread_blas():
            b_in.set()
            a_out.wait(10)
            seen["b_after_a_left"] = _FakeBlas.threads
            b_go.wait(10)

    ta, tb = threading.Thread(target=a), threading.Thread(target=b)
    ta.start(), tb.start()
    ta.join(10)
    assert a_out.is_set()
    b_go.set()
    tb.join(10)
    assert seen == {"a_in": 1, "b_after_a_left": 1}
    assert _FakeBlas.threads == 2 and ka._BLAS_USERS == 0


def test_concurrent_assignments_are_right_and_restore_blas(rng, two_blas_threads):
    X, C = _data(rng, 2 * 4 * 256 + 3, 9, 5, np.float64)   # more than one row block per thread
    ref = _reference(X, C)
    errors = []

    def work():
        try:
            for _ in range(5):
                labels, _, sums, counts = assign_accumulate(X, C, engine="numba")
                np.testing.assert_array_equal(labels, ref[0])
                np.testing.assert_array_equal(counts, ref[3])
                np.testing.assert_allclose(sums, ref[2], rtol=1e-12, atol=1e-10)
        except Exception as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert set(_blas_threads()) == {2}


def test_threadpoolctl_is_a_core_dependency():
    import tomllib
    from pathlib import Path

    deps = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.replace(" ", "").startswith("threadpoolctl") for d in deps)


@pytest.mark.gpu
@pytest.mark.parametrize("engine", ["cuda", "numba-cuda"])
@pytest.mark.parametrize("M,d,K", [(1, 1, 1), (257, 17, 9), (4099, 784, 10), (5000, 64, 256)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_engines_match_reference(rng, engine, M, d, K, dtype):
    cp = backend.Device("cuda").xp
    X, C = _data(rng, M, d, K, dtype)
    out = assign_accumulate(cp.asarray(X), cp.asarray(C), engine=engine)
    assert all(backend.is_cupy_array(a) for a in out)
    _check_against_reference(X, C, *out, exact=dtype == np.float64)


@pytest.mark.gpu
def test_gpu_ties_and_empty(rng):
    cp = backend.Device("cuda").xp
    X = rng.integers(-4, 5, size=(301, 3)).astype(np.float32)
    C = np.array([[1, 0, 0], [1, 0, 0], [-1, 0, 0], [100, 100, 100]], dtype=np.float32)
    out = assign_accumulate(cp.asarray(X), cp.asarray(C))
    _check_against_reference(X, C, *out, exact=True)
    assert int(out[3][1]) == 0 and int(out[3][3]) == 0


@pytest.mark.cudasim
@pytest.mark.parametrize("M,d,K", [(1, 1, 1), (37, 5, 3), (130, 9, 7)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numba_cuda_kernel_in_simulator(rng, M, d, K, dtype):
    X, C = _data(rng, M, d, K, dtype)
    out = assign_accumulate(X, C, engine="numba-cuda")
    _check_against_reference(X, C, *out, exact=dtype == np.float64)


@pytest.mark.cudasim
def test_numba_cuda_ties_in_simulator(rng):
    X = rng.integers(-4, 5, size=(61, 3)).astype(np.float64)
    C = np.array([[1, 0, 0], [1, 0, 0], [-1, 0, 0], [100, 100, 100]], dtype=np.float64)
    out = assign_accumulate(X, C, engine="numba-cuda")
    _check_against_reference(X, C, *out, exact=True)
    assert out[3][1] == 0 and out[3][3] == 0


def test_blas_guard_sees_a_blas_loaded_later(two_blas_threads):
    """A BLAS library loaded after the guard's first use (SciPy's own OpenBLAS) is limited too."""
    from fastem.kernels.kmeans_assign import single_thread_blas

    with single_thread_blas():
        pass
    import scipy.linalg  # noqa: F401  (may load a second BLAS)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=2, user_api="blas"):
        with single_thread_blas():
            assert set(_blas_threads()) == {1}
        assert set(_blas_threads()) == {2}


# --- rows=: a mini-batch of in-memory data assigned without forming the batch ----------------------

@pytest.mark.parametrize("N,d,K,m", [(1, 1, 1, 1), (301, 13, 5, 77), (2000, 129, 7, 1029), (700, 4096, 3, 513)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_rows_equal_the_gathered_batch_and_the_reference(rng, N, d, K, m, dtype, engine):
    X, C = _data(rng, N, d, K, dtype)
    rows = np.sort(rng.choice(N, size=m, replace=m > N)).astype(np.int64)
    batch = np.ascontiguousarray(X[rows])
    got = assign_accumulate(X, C, rows=rows, engine=engine)
    want = assign_accumulate(batch, C, engine=engine)
    for g, w in zip(got, want):                  # bitwise: the same sub-blocks, the same kernels
        np.testing.assert_array_equal(g, w)
    _check_against_reference(batch, C, *got, exact=dtype == np.float64)


def test_rows_any_integer_dtype_and_unsorted(rng):
    X, C = _data(rng, 50, 6, 4, np.float32)
    rows = np.array([7, 3, 3, 49, 0], dtype=np.int32)
    got = assign_accumulate(X, C, rows=rows)
    want = assign_accumulate(np.ascontiguousarray(X[rows]), C)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_rows_errors_name_the_parameter(rng):
    X, C = _data(rng, 20, 4, 2, np.float64)
    with pytest.raises(InputError, match=r"rows must lie in \[0, 20\).*from 0 to 20"):
        assign_accumulate(X, C, rows=np.array([0, 20]))
    with pytest.raises(InputError, match="rows must lie in"):
        assign_accumulate(X, C, rows=np.array([-1, 3]))
    with pytest.raises(InputError, match="rows must be a 1-D integer array"):
        assign_accumulate(X, C, rows=np.array([0.0, 1.0]))
    with pytest.raises(InputError, match="rows must be a 1-D integer array"):
        assign_accumulate(X, C, rows=np.zeros((2, 2), np.int64))
    with pytest.raises(InputError, match="rows must be a NumPy integer array"):
        assign_accumulate(X, C, rows=[0, 1])


def test_gather_rows_kernel_against_numpy(rng):
    from fastem.kernels._kmeans_assign_numba import gather_rows

    for N, d, m in ((1, 1, 1), (97, 33, 40), (500, 4096, 17)):
        X = rng.standard_normal((N, d)).astype(np.float32)
        rows = rng.integers(0, N, m)
        out = np.empty((m, d), np.float32)
        gather_rows(X, rows, out)
        np.testing.assert_array_equal(out, X[rows])


def test_minibatch_in_memory_uses_the_fused_gather_same_result(rng, monkeypatch):
    """An in-memory mini-batch fit draws row indices and lets the kernel gather (no batch copy);
    the fit equals one where every batch is gathered first."""
    from fastem.cluster import SBEKMeans
    from fastem.cluster import sampling

    X = (rng.standard_normal((3000, 40)) + 4 * rng.integers(0, 3, (3000, 1))).astype(np.float32)
    calls = []
    real = sampling.UniformSampler.draw

    def spy(self):
        calls.append(1)
        return real(self)

    monkeypatch.setattr(sampling.UniformSampler, "draw", spy)
    for algorithm in ("minibatch", "sbe"):
        kw = dict(algorithm=algorithm, random_state=2, batch_size=500, n_outer=4, n_inner=3, n_steps=12,
                  sampling="uniform")
        calls.clear()
        fused = SBEKMeans(3, **kw).fit(X)
        assert calls, f"{algorithm}: the in-memory path did not draw rows for the kernel"
        monkeypatch.setattr(sampling.UniformSampler, "in_memory", property(lambda self: None))
        gathered = SBEKMeans(3, **kw).fit(X)
        monkeypatch.undo()
        monkeypatch.setattr(sampling.UniformSampler, "draw", spy)
        np.testing.assert_array_equal(fused.cluster_centers_, gathered.cluster_centers_)
        np.testing.assert_array_equal(fused.labels_, gathered.labels_)


@pytest.mark.cudasim
def test_rows_numba_cuda_in_simulator(rng):
    X, C = _data(rng, 90, 7, 4, np.float64)
    rows = np.sort(rng.choice(90, 33, replace=False))
    out = assign_accumulate(X, C, rows=rows, engine="numba-cuda")
    _check_against_reference(np.ascontiguousarray(X[rows]), C, *out, exact=True)


@pytest.mark.gpu
def test_rows_cuda(rng):
    cp = backend.Device("cuda").xp
    X, C = _data(rng, 900, 17, 5, np.float32)
    rows = np.sort(rng.choice(900, 301, replace=False))
    out = assign_accumulate(cp.asarray(X), cp.asarray(C), rows=cp.asarray(rows))
    _check_against_reference(np.ascontiguousarray(X[rows]), C, *out, exact=False)


# --- few centroids: the fused one-pass kernel (no gather, no GEMM) ------------------------------

@pytest.mark.parametrize("M,d,K", [(1, 1, 1), (2, 255, 3), (3, 1025, 8), (5, 4099, 6), (1027, 513, 7), (600, 40, 2),
                                   (7, 1023, 16), (33, 511, 19), (9, 130, 64)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("by_rows", [False, True])
def test_fused_kernel_matches_reference_and_the_gemm_path(rng, monkeypatch, M, d, K, dtype, by_rows):
    """Odd point counts (groups of 4 with a short tail), centroid counts below, at and between
    the blocks of 4 (K mod 4 tails) up to FUSED_MAX_K, feature counts around the tiles (512
    float64 / 1024 float32 features), both dtypes, points given as a block or as rows; against the float64 reference, and
    against the gather + GEMM path the kernel replaces for K <= FUSED_MAX_K."""
    from fastem.kernels import kmeans_assign
    from fastem.kernels import _kmeans_assign_numba as nb

    assert K <= kmeans_assign.FUSED_MAX_K
    N = M + 13
    X, C = _data(rng, N, d, K, dtype)
    rows = rng.permutation(N)[:M].astype(np.int64) if by_rows else None
    batch = np.ascontiguousarray(X[rows]) if by_rows else X[:M].copy()
    src = X if by_rows else batch
    calls = []
    real = nb.assign_rows_fused

    def spy(*a):
        calls.append(1)
        return real(*a)

    monkeypatch.setattr(nb, "assign_rows_fused", spy)
    fused = assign_accumulate(src, C, rows=rows, engine="numba")
    assert calls, "K <= FUSED_MAX_K did not take the fused kernel"
    _check_against_reference(batch, C, *fused, exact=dtype == np.float64)
    monkeypatch.setattr(kmeans_assign, "FUSED_MAX_K", 0)
    calls.clear()
    gemm = assign_accumulate(src, C, rows=rows, engine="numba")
    assert not calls
    if dtype == np.float64:
        np.testing.assert_array_equal(fused[0], gemm[0])
    else:
        assert np.mean(fused[0] == gemm[0]) > 0.99
    no_dist = assign_accumulate(src, C, rows=rows, engine="numba", distances=False)   # (fused again)
    np.testing.assert_array_equal(no_dist[0], fused[0])
    np.testing.assert_array_equal(no_dist[2], fused[2])
    np.testing.assert_array_equal(no_dist[3], fused[3])


def test_fused_kernel_on_a_flat_map_equals_the_array(rng):
    """Rows as element offsets into a flat vector (a memory-mapped file) give the same bits as
    the 2-D array they were cut from (same kernel, same summation order)."""
    X, C = _data(rng, 300, 129, 5, np.float32)
    rows = np.sort(rng.choice(300, 101, replace=False)).astype(np.int64)
    a = assign_accumulate(X, C, rows=rows)
    b = assign_accumulate(X.reshape(-1), C, rows=rows * 129)
    for g, w in zip(a, b):
        np.testing.assert_array_equal(g, w)
