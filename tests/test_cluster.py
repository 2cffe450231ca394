"""fastem.cluster: SBE, mini-batch and Lloyd on the fused kernel; estimator API; HDF5 streaming."""

import h5py
import numpy as np
import pytest

from fastem.cluster import DataSource, SBEKMeans, assign_full, init_centroids, lloyd, minibatch, sbe
from fastem.data.mixture import gaussian_mixture
from fastem.errors import InputError


def _true_phi(X, C):
    X64, C64 = np.asarray(X, np.float64), np.asarray(C, np.float64)
    D = ((X64[:, None] - C64[None]) ** 2).sum(-1)
    return D.min(1).sum() / (2 * len(X64)), D.argmin(1)


@pytest.fixture
def mixture():
    X, labels, centres = gaussian_mixture(600, 5, 4, spread=1.0, centre_scale=10.0, seed=3)
    return X, labels, centres


@pytest.mark.parametrize("algorithm", ["sbe", "minibatch", "lloyd"])
def test_estimator_basics(mixture, algorithm):
    X, _, _ = mixture
    m = SBEKMeans(4, algorithm=algorithm, n_init=3, batch_size=100, n_outer=10, n_inner=5, random_state=1)
    assert m.fit(X) is m
    assert m.cluster_centers_.shape == (4, 5) and m.cluster_centers_.dtype == np.float64
    assert m.labels_.shape == (600,) and m.labels_.dtype == np.int64
    assert m.objectives_.shape == (3,) and m.objective_ == m.objectives_.min()
    assert m.n_iter_ >= 1 and m.n_features_in_ == 5
    phi, lab = _true_phi(X, m.cluster_centers_)
    np.testing.assert_array_equal(m.labels_, lab)
    assert m.objective_ == pytest.approx(phi, rel=1e-12)
    # inertia_: scikit-learn's convention (sum of squared distances) = 2 N phi
    assert m.inertia_ == pytest.approx(2 * 600 * phi, rel=1e-12)
    np.testing.assert_array_equal(m.predict(X), m.labels_)
    assert m.score(X) == pytest.approx(-m.inertia_, rel=1e-12)
    np.testing.assert_array_equal(SBEKMeans(**m.get_params()).fit_predict(X), m.labels_)  # same seed, same result


def test_params_and_clone():
    from sklearn.base import clone

    m = SBEKMeans(3, algorithm="lloyd", random_state=7)
    assert m.get_params()["n_clusters"] == 3 and m.get_params()["algorithm"] == "lloyd"
    c = clone(m)
    assert c is not m and c.get_params() == m.get_params()
    assert m.set_params(batch_size=64) is m and m.batch_size == 64
    with pytest.raises(ValueError, match="invalid parameter"):
        m.set_params(bogus=1)
    with pytest.raises(InputError, match="not fitted"):
        SBEKMeans(2).predict(np.ones((3, 2)))
    assert "lloyd" in repr(m)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lloyd_matches_scikit_learn_from_same_init(mixture, dtype):
    from sklearn.cluster import KMeans

    X = mixture[0].astype(dtype)
    for seed in range(3):
        C0 = init_centroids(DataSource(X), 6, "random", np.random.default_rng(seed))
        ours = SBEKMeans(6, algorithm="lloyd", init=C0).fit(X)
        sk = KMeans(6, init=C0.astype(dtype), n_init=1, algorithm="lloyd").fit(X)
        rtol = 1e-10 if dtype == np.float64 else 1e-4
        assert ours.inertia_ == pytest.approx(sk.inertia_, rel=rtol)
        np.testing.assert_allclose(ours.cluster_centers_, sk.cluster_centers_, rtol=rtol, atol=rtol)
        if dtype == np.float64:
            np.testing.assert_array_equal(ours.labels_, sk.labels_)
            assert ours.n_iter_ == sk.n_iter_


def test_sbe_follows_the_spec_on_a_tiny_case():
    """One outer step, two inner steps, full batch: compare with the spec's pseudo-code by hand."""
    X = np.array([[0.0], [1.0], [4.0], [6.0]])
    x0 = np.array([[0.5], [3.0]])
    gamma, alpha = 2.0, 0.75
    y, xavg = x0.copy(), x0.copy()
    for _ in range(2):
        lab = np.abs(X - y.T).argmin(1)
        g = np.array([[(y[j, 0] - X[lab == j, 0]).sum() / 4] for j in range(2)])
        y = x0 - gamma * g
        xavg = alpha * xavg + (1 - alpha) * y
    res = sbe(DataSource(X), x0, np.random.default_rng(0), batch_size=4, n_outer=1, n_inner=2, gamma0=gamma,
              alpha=alpha)
    np.testing.assert_allclose(res.centers, xavg, rtol=1e-14)


def test_empty_clusters_keep_their_centroid(mixture):
    X = mixture[0]
    C0 = np.vstack([X[:3], np.full((1, 5), 1e6)])
    for res in (sbe(DataSource(X), C0, np.random.default_rng(0), batch_size=50, n_outer=3, n_inner=2),
                minibatch(DataSource(X), C0, np.random.default_rng(0), batch_size=50, n_steps=5),
                lloyd(DataSource(X), C0, max_iter=5)):
        np.testing.assert_array_equal(res.centers[3], C0[3])


def test_sbe_finds_the_mixture(mixture):
    X, labels, centres = mixture
    m = SBEKMeans(4, algorithm="sbe", batch_size=100, n_outer=30, n_inner=5, n_init=4, random_state=0).fit(X)
    truth_phi, _ = _true_phi(X, np.array([X[labels == j].mean(0) for j in range(4)]))
    assert m.objective_ == pytest.approx(truth_phi, rel=2e-2)


def test_kmeanspp_spreads_the_starts(mixture):
    X, labels, _ = mixture
    src = DataSource(X)
    hits = 0
    for seed in range(10):
        C = init_centroids(src, 4, "k-means++", np.random.default_rng(seed))
        assert C.shape == (4, 5)
        # every chosen point is a data point
        assert all(np.any(np.all(X == c, axis=1)) for c in C)
        _, lab = _true_phi(C, np.array([X[labels == j].mean(0) for j in range(4)]))
        hits += len(set(lab.tolist())) == 4
    assert hits >= 8  # D^2 sampling almost always puts one start in each well-separated cluster


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_objective_never_below_true_value(rng, dtype):
    # near-ties and large offsets: the expanded form ||x||^2 - 2 x.c + ||c||^2 cancels badly in float32
    X = (1000.0 + rng.standard_normal((500, 8))).astype(dtype)
    C = (1000.0 + rng.standard_normal((7, 8)) * 1e-3).astype(dtype)
    _, phi, _, _ = assign_full(DataSource(X, chunk_rows=64), C.astype(np.float64))
    true_phi, _ = _true_phi(X, C)
    assert phi >= true_phi * (1 - 1e-13)
    # float64: the same assignment; float32: near-ties may go to a centroid whose exact distance
    # is a little larger (float32 GEMM rounding at |x| ~ 1000), which only ever raises phi
    assert phi == pytest.approx(true_phi, rel=1e-12 if dtype == np.float64 else 1e-2)


def test_chunked_pass_equals_single_pass(mixture):
    X = mixture[0]
    C = X[:5].copy()
    a = assign_full(DataSource(X, chunk_rows=37), C, accumulate=True)
    b = assign_full(DataSource(X, chunk_rows=10_000), C, accumulate=True)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == pytest.approx(b[1], rel=1e-13)
    np.testing.assert_allclose(a[2], b[2], rtol=1e-12)
    np.testing.assert_array_equal(a[3], b[3])


@pytest.mark.parametrize("algorithm,init", [("sbe", "random"), ("minibatch", "k-means++"), ("lloyd", "random")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sampling", ["uniform", "chunks"])
def test_hdf5_streaming_equals_in_memory(tmp_path, mixture, algorithm, init, dtype, sampling):
    """Same seed, same sampling plan: bit-identical from memory and from disk. ``chunks``: the
    file's default (auto) chunk-reservoir sampling against the in-memory array told the file's
    chunk shape."""
    X = mixture[0].astype(dtype)
    path = tmp_path / "pts.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("pts", data=X, chunks=(16, 5))
    kw = dict(algorithm=algorithm, init=init, n_init=2, batch_size=64, n_outer=5, n_inner=3, random_state=11,
              chunk_rows=100)
    if sampling == "uniform":
        mem = SBEKMeans(4, sampling="uniform", **kw).fit(X)
        kw["sampling"] = "uniform"
    else:
        mem = SBEKMeans(4, sampling="chunks", sampling_chunks=(16, 5), **kw).fit(X)
    disk = SBEKMeans(4, **kw).fit(f"{path}:/pts")
    with h5py.File(path, "r") as f:
        ds = SBEKMeans(4, **kw).fit(f["pts"])
    for other in (disk, ds):
        np.testing.assert_array_equal(other.cluster_centers_, mem.cluster_centers_)
        np.testing.assert_array_equal(other.labels_, mem.labels_)
        np.testing.assert_array_equal(other.objectives_, mem.objectives_)
    assert mem.cluster_centers_.dtype == dtype
    np.testing.assert_array_equal(mem.predict(f"{path}:/pts"), mem.labels_)


def test_images_are_flattened(rng):
    imgs = rng.standard_normal((40, 3, 4))
    m = SBEKMeans(3, algorithm="lloyd", random_state=0).fit(imgs)
    assert m.cluster_centers_.shape == (3, 12)
    np.testing.assert_array_equal(m.predict(imgs.reshape(40, 12)), m.labels_)


def test_clear_errors(tmp_path, rng):
    X = rng.standard_normal((10, 3))
    with pytest.raises(InputError, match="larger than the number of points N = 10"):
        SBEKMeans(11).fit(X)
    with pytest.raises(InputError, match="n_clusters must be >= 1"):
        SBEKMeans(0).fit(X)
    bad = X.copy()
    bad[7, 1] = np.nan
    with pytest.raises(InputError, match="row 7 contains NaN"):
        SBEKMeans(2).fit(bad)
    path = tmp_path / "nan.h5"
    with h5py.File(path, "w") as f:
        f["x"] = bad
    with pytest.raises(InputError, match="row 7 contains NaN"):
        SBEKMeans(2, chunk_rows=3).fit(f"{path}:/x")
    with pytest.raises(InputError, match="d = 0"):
        SBEKMeans(2).fit(np.zeros((10, 0)))
    with pytest.raises(InputError, match="no points"):
        SBEKMeans(1).fit(np.zeros((0, 3)))
    with pytest.raises(InputError, match="algorithm"):
        SBEKMeans(2, algorithm="em").fit(X)
    with pytest.raises(InputError, match="init"):
        SBEKMeans(2, init="furthest").fit(X)
    with pytest.raises(InputError, match="init array has shape"):
        SBEKMeans(2, init=np.zeros((3, 3))).fit(X)
    with pytest.raises(InputError, match="features"):
        SBEKMeans(2, algorithm="lloyd").fit(X).predict(np.ones((4, 2)))
    with pytest.raises(InputError, match="real numeric"):
        SBEKMeans(2).fit(np.array([["a", "b"]] * 4))


@pytest.mark.gpu
@pytest.mark.parametrize("algorithm", ["sbe", "minibatch", "lloyd"])
def test_cupy_arrays_give_the_numpy_result(mixture, algorithm):
    from fastem import backend

    cp = backend.Device("cuda").xp
    X = mixture[0]
    kw = dict(algorithm=algorithm, n_init=2, batch_size=64, n_outer=5, n_inner=3, random_state=4)
    cpu = SBEKMeans(4, **kw).fit(X)
    gpu = SBEKMeans(4, **kw).fit(cp.asarray(X))
    assert backend.is_cupy_array(gpu.cluster_centers_)
    np.testing.assert_allclose(gpu.cluster_centers_.get(), cpu.cluster_centers_, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(gpu.labels_, cpu.labels_)
    np.testing.assert_array_equal(gpu.predict(cp.asarray(X)), cpu.labels_)


# ---- progress: reported through a callback, never drawn by the library (issue 18) ------------------
class _Recorder:
    def __init__(self):
        self.steps, self.postfix = 0, []

    def update(self, n=1):
        self.steps += n

    def set_postfix(self, **kw):
        self.postfix.append(kw)


@pytest.mark.parametrize("algorithm,kw,per_run", [("sbe", dict(n_outer=7), 7),
                                                  ("minibatch", dict(n_outer=3, n_inner=4), 12),
                                                  ("minibatch", dict(n_steps=5), 5)])
def test_progress_object_gets_every_step_and_the_run_summary(mixture, algorithm, kw, per_run):
    X, _, _ = mixture
    rec = _Recorder()
    m = SBEKMeans(4, algorithm=algorithm, n_init=2, batch_size=50, random_state=3, progress=rec, **kw)
    assert m.progress_total() == 2 * per_run
    m.fit(X)
    assert rec.steps == 2 * per_run
    assert [p["run"] for p in rec.postfix] == [1, 2]
    assert float(rec.postfix[-1]["best"]) == pytest.approx(m.objective_, rel=1e-5)


def test_progress_callable_and_lloyd_stops_within_the_total(mixture):
    X, _, _ = mixture
    calls = []
    m = SBEKMeans(4, algorithm="lloyd", n_init=2, max_iter=50, random_state=3, progress=calls.append).fit(X)
    assert m.progress_total() == 100
    assert set(calls) == {1} and 2 <= len(calls) <= 100    # one call per iteration, early stop allowed


def test_progress_true_is_deprecated_and_draws_nothing(mixture, capsys):
    X, _, _ = mixture
    with pytest.warns(DeprecationWarning, match=r"progress=True\) is deprecated"):
        SBEKMeans(4, n_outer=2, n_inner=2, batch_size=50, random_state=0, progress=True).fit(X)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_progress_of_the_wrong_type_names_the_parameter(mixture):
    X, _, _ = mixture
    with pytest.raises(InputError, match="^progress must be None, a tqdm-like object"):
        SBEKMeans(4, progress=3).fit(X)


def test_the_estimator_loads_no_progress_bar_module():
    import subprocess
    import sys

    code = ("import sys, numpy as np\nfrom fastem.cluster import SBEKMeans\n"
            "X = np.random.default_rng(0).standard_normal((200, 3))\n"
            "SBEKMeans(3, n_outer=2, n_inner=2, batch_size=50, random_state=0, progress=lambda n: None).fit(X)\n"
            "print(sorted(m for m in ('tqdm', 'fastem.progress') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_bench_case_has_the_interleaved_and_threading_rows():
    """The rows docs/cluster.md quotes (once one-off scripts: cluster_ab.py, cluster_threads_check.py)."""
    pytest.importorskip("sklearn")
    from fastem.bench import discover_cases
    from fastem.benchmark import BenchContext
    from fastem.kernels import kmeans_assign as ka

    guard = ka.single_thread_blas
    ctx = BenchContext(quick=True, echo=lambda s: None)
    discover_cases()["cluster"].run(ctx)
    rows = {}
    for m in ctx.measurements:
        rows.setdefault(m.case, []).append(m)
    inter = rows["mini-batch epoch interleaved"] + rows["Lloyd iteration interleaved"]
    assert sorted(m.impl for m in inter) == sorted(["fastem mini-batch", "fastem SBE", "sklearn MiniBatchKMeans",
                                                    "fastem Lloyd", "sklearn KMeans"])
    assert all(m.repeats == 2 and m.work > 0 for m in inter)
    assert [m.impl for m in rows["BLAS threads, mini-batch GEMM"]] == ["1 BLAS thread(s)", "2 BLAS thread(s)"]
    assert len(rows["Lloyd iteration, BLAS guard"]) == 2 and len(rows["numba.get_num_threads()"]) == 1
    assert any("ratio of minima" in n for n in ctx.notes)
    assert ka.single_thread_blas is guard       # the guard-off row puts the guard back
