"""k-means on Dask workers (issue 17): Lloyd's passes and SBE / mini-batch steps as map-reduces over
row partitions, each the same run as in one process."""

from __future__ import annotations


import h5py
import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from dask_support import cluster, is_gone, kill_first_worker_once  # noqa: E402,F401  (cluster: a fixture)

from fastem.cluster.core import lloyd  # noqa: E402
from fastem.cluster.distributed import PartitionedData, lloyd_distributed  # noqa: E402
from fastem.cluster.preprocess import Preprocess  # noqa: E402
from fastem.cluster.source import DataSource  # noqa: E402
from fastem.errors import InputError  # noqa: E402
from fastem.executor import InlineExecutor  # noqa: E402


def _blobs(rng, n, d, k=4):
    centres = rng.normal(0, 4, (k, d))
    return (centres[rng.integers(0, k, n)] + rng.normal(0, 1, (n, d))).astype(np.float32)


def _single(path, ds, C0, **kw):
    with h5py.File(path, "r") as f:
        src = DataSource(f[ds], chunk_rows=kw.pop("chunk_rows", None), preprocess=kw.pop("preprocess", None))
        stats = {}
        r = lloyd(src, C0, stats=stats, **kw)
    return r, stats


@pytest.mark.parametrize("executor_kind", ["inline", "dask"])
def test_points_equal_single_process(tmp_path, rng, cluster, executor_kind):
    X = _blobs(rng, 1003, 7)            # odd N, partitions of unequal length
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("X", data=X, chunks=(100, 7))
    C0 = X[rng.choice(len(X), 4, replace=False)].astype(np.float64)
    ref, ref_stats = _single(path, "/X", C0, chunk_rows=128)
    ex = InlineExecutor() if executor_kind == "inline" else cluster
    stats = {}
    got = lloyd_distributed(ex, PartitionedData(str(path), "/X", chunk_rows=128, parts=3), C0, stats=stats)
    np.testing.assert_array_equal(got.labels, ref.labels)
    np.testing.assert_allclose(got.centers, ref.centers, rtol=1e-10, atol=1e-10)
    assert got.n_iter == ref.n_iter and abs(got.objective - ref.objective) <= 1e-9 * ref.objective
    np.testing.assert_array_equal(stats["counts"], ref_stats["counts"])


def test_4d_stem_with_preprocessing_equal_single_process(tmp_path, rng, cluster):
    scan = np.abs(_blobs(rng, 9 * 7, 36)).reshape(9, 7, 6, 6)       # (Ny, Nx, ky, kx)
    path = tmp_path / "scan.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=scan, chunks=(1, 7, 6, 6))
    pre = Preprocess(transform="sqrt", normalize="l2")
    with h5py.File(path, "r") as f:
        d = DataSource(f["data"], preprocess=pre).d
    C0 = rng.random((3, d))
    ref, _ = _single(path, "/data", C0, preprocess=pre)
    got = lloyd_distributed(cluster, PartitionedData(str(path), "/data", preprocess=pre, parts=4), C0)
    np.testing.assert_array_equal(got.labels, ref.labels)
    np.testing.assert_allclose(got.centers, ref.centers, rtol=1e-10, atol=1e-12)


def test_partitions_cover_rows_on_scan_lines():
    data = PartitionedData("x.h5", "/X", parts=3)
    r = data.ranges(10 * 7, align=7)
    assert r[0][0] == 0 and r[-1][1] == 70 and all(a % 7 == 0 for a, _ in r)
    assert all(b1 == a2 for (_, b1), (a2, _) in zip(r[:-1], r[1:]))
    assert PartitionedData("x", "/X", parts=9).ranges(4) == [(0, 1), (1, 2), (2, 3), (3, 4)]


def test_worker_lost_mid_run_still_converges_to_the_same(tmp_path, rng, cluster):
    X = _blobs(rng, 600, 5)
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        f["X"] = X
    C0 = X[:4].astype(np.float64)
    ref, _ = _single(path, "/X", C0)
    kill_once, killed, victim = kill_first_worker_once(cluster)
    got = lloyd_distributed(cluster, PartitionedData(str(path), "/X", parts=4), C0, callback=kill_once)
    assert killed and is_gone(cluster, victim)
    np.testing.assert_array_equal(got.labels, ref.labels)
    np.testing.assert_allclose(got.centers, ref.centers, rtol=1e-10)


def test_errors(tmp_path, rng):
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        f["X"] = rng.random((20, 3))
    with pytest.raises(InputError, match="C0 must have shape \\(K, 3\\)"):
        lloyd_distributed(InlineExecutor(), PartitionedData(str(path), "/X"), rng.random((2, 4)))
    with pytest.raises(InputError, match="data must be a PartitionedData"):
        lloyd_distributed(InlineExecutor(), str(path), rng.random((2, 3)))


def test_estimator_and_cli_with_workers_equal_one_process(tmp_path, rng, cluster):
    import json

    from click.testing import CliRunner

    from fastem.cli.main import app
    from fastem.cluster import SBEKMeans

    X = _blobs(rng, 800, 6)
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("X", data=X, chunks=(100, 6))
    with h5py.File(path, "r") as f:
        one = SBEKMeans(4, algorithm="lloyd", random_state=3).fit(f["X"])
        two = SBEKMeans(4, algorithm="lloyd", random_state=3).fit(f["X"], executor=cluster)
    np.testing.assert_array_equal(one.labels_, two.labels_)
    np.testing.assert_allclose(one.cluster_centers_, two.cluster_centers_, rtol=1e-10, atol=1e-10)
    with pytest.raises(InputError, match="sampling='chunks' runs in one process only"):
        SBEKMeans(4, algorithm="sbe", sampling="chunks").fit(str(path) + ":/X", executor=cluster)

    runner = CliRunner()
    base = ["-q", "cluster", f"{path}:/X", "-k", "4", "--algorithm", "lloyd", "--seed", "3"]
    assert runner.invoke(app, [*base, "-o", str(tmp_path / "a.h5")]).exit_code == 0
    r = runner.invoke(app, [*base, "-o", str(tmp_path / "b.h5"), "--scheduler", "local"])
    assert r.exit_code == 0, r.output
    with h5py.File(tmp_path / "a.h5", "r") as fa, h5py.File(tmp_path / "b.h5", "r") as fb:
        np.testing.assert_array_equal(fa["cluster/labels"][()], fb["cluster/labels"][()])
    bad = runner.invoke(app, ["cluster", f"{path}:/X", "-k", "4", "-o", str(tmp_path / "c.h5"),
                              "--sampling", "chunks", "--scheduler", "local"])
    assert bad.exit_code == 2 and "--sampling" in bad.output and not (tmp_path / "c.h5").exists()


# --- SBE and mini-batch: every mini-batch drawn across the partitions --------------------------------

def _single_stochastic(path, ds, C0, algorithm, seed, **kw):
    from fastem.cluster.core import minibatch, sbe

    with h5py.File(path, "r") as f:
        src = DataSource(f[ds], chunk_rows=kw.pop("chunk_rows", None), preprocess=kw.pop("preprocess", None),
                         sampling="uniform")
        run = sbe if algorithm == "sbe" else minibatch
        return run(src, C0, np.random.default_rng(seed), **kw)


@pytest.mark.parametrize("algorithm", ["sbe", "minibatch"])
@pytest.mark.parametrize("executor_kind", ["inline", "dask"])
def test_stochastic_equal_single_process(tmp_path, rng, cluster, algorithm, executor_kind):
    from fastem.cluster.distributed import minibatch_distributed, sbe_distributed

    X = _blobs(rng, 1003, 7, k=5)
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("X", data=X, chunks=(100, 7))
    C0 = X[rng.choice(len(X), 5, replace=False)].astype(np.float64)
    kw = dict(n_outer=6, n_inner=4) if algorithm == "sbe" else dict(n_steps=20)
    ref = _single_stochastic(path, "/X", C0, algorithm, 11, batch_size=97, **kw)
    ex = InlineExecutor() if executor_kind == "inline" else cluster
    run = sbe_distributed if algorithm == "sbe" else minibatch_distributed
    got = run(ex, PartitionedData(str(path), "/X", parts=3), C0, 11, batch_size=97, **kw)
    assert not np.allclose(got.centers, C0)                 # the run moved the centroids
    np.testing.assert_allclose(got.centers, ref.centers, rtol=1e-10, atol=1e-10)


def test_sbe_4d_with_preprocessing_and_batches_split_by_partition(tmp_path, rng, cluster):
    from fastem.cluster.distributed import DistributedBatches, sbe_distributed

    scan = np.abs(_blobs(rng, 9 * 7, 36)).reshape(9, 7, 6, 6)
    path = tmp_path / "scan.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=scan, chunks=(1, 7, 6, 6))
    pre = Preprocess(transform="sqrt", normalize="l2")
    data = PartitionedData(str(path), "/data", preprocess=pre, parts=4)
    with h5py.File(path, "r") as f:
        d = DataSource(f["data"], preprocess=pre).d
    C0 = rng.random((3, d))
    ref = _single_stochastic(path, "/data", C0, "sbe", 5, preprocess=pre, batch_size=20, n_outer=5, n_inner=3)
    got = sbe_distributed(cluster, data, C0, 5, batch_size=20, n_outer=5, n_inner=3)
    np.testing.assert_allclose(got.centers, ref.centers, rtol=1e-10, atol=1e-12)
    # one step by hand: the partitions' sums add up to the one-process batch sums, counts to M
    batches = DistributedBatches(InlineExecutor(), data, np.random.default_rng(0), 25)
    sums, counts = np.zeros((3, d)), np.zeros(3, np.int64)
    assert batches(C0.astype(np.float32), sums, counts) == 25 and counts.sum() == 25
    assert all(a % 7 == 0 for a, _ in batches.partitions) and len(batches.partitions) == 4


def test_sbe_worker_lost_mid_run_same_result(tmp_path, rng, cluster):
    from fastem.cluster.distributed import sbe_distributed

    X = _blobs(rng, 600, 5)
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        f["X"] = X
    C0 = X[:4].astype(np.float64)
    ref = _single_stochastic(path, "/X", C0, "sbe", 2, batch_size=50, n_outer=8, n_inner=3)
    kill_once, killed, victim = kill_first_worker_once(cluster)

    got = sbe_distributed(cluster, PartitionedData(str(path), "/X", parts=4), C0, 2, batch_size=50, n_outer=8,
                          n_inner=3, callback=kill_once)
    assert killed and is_gone(cluster, victim)
    np.testing.assert_allclose(got.centers, ref.centers, rtol=1e-10, atol=1e-10)


def test_stochastic_estimator_and_cli_with_workers(tmp_path, rng, cluster):
    from click.testing import CliRunner

    from fastem.cli.main import app
    from fastem.cluster import SBEKMeans

    X = _blobs(rng, 700, 6)
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("X", data=X, chunks=(100, 6))
    for algorithm in ("sbe", "minibatch"):
        kw = dict(algorithm=algorithm, random_state=4, batch_size=64, n_outer=5, n_inner=4)
        with h5py.File(path, "r") as f:
            one = SBEKMeans(4, sampling="uniform", **kw).fit(f["X"])
            two = SBEKMeans(4, **kw).fit(f["X"], executor=cluster)
        np.testing.assert_allclose(one.cluster_centers_, two.cluster_centers_, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(one.labels_, two.labels_)
        assert abs(one.objective_ - two.objective_) <= 1e-9 * one.objective_

    runner = CliRunner()
    base = ["-q", "cluster", f"{path}:/X", "-k", "4", "--algorithm", "sbe", "--seed", "3", "--batch", "64",
            "--outer", "5", "--inner", "4"]
    assert runner.invoke(app, [*base, "--sampling", "uniform", "-o", str(tmp_path / "a.h5")]).exit_code == 0
    r = runner.invoke(app, [*base, "-o", str(tmp_path / "b.h5"), "--scheduler", "local"])
    assert r.exit_code == 0, r.output
    with h5py.File(tmp_path / "a.h5", "r") as fa, h5py.File(tmp_path / "b.h5", "r") as fb:
        np.testing.assert_array_equal(fa["cluster/labels"][()], fb["cluster/labels"][()])
        np.testing.assert_allclose(fa["cluster/centroids"][()], fb["cluster/centroids"][()], rtol=1e-6, atol=1e-6)


def test_lloyd_holds_partitions_when_they_fit_else_streams(tmp_path, rng, cluster):
    """Partitions that fit in the workers' memory are read once and held (each pass runs where its
    partition is); a small memory limit streams the file every pass. Same result either way."""
    from fastem.cluster.distributed import _Distributed

    X = _blobs(rng, 500, 6)
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("X", data=X, chunks=(64, 6))
    data = PartitionedData(str(path), "/X", chunk_rows=64, parts=3)
    held = _Distributed(cluster, data)
    assert held.held is not None and len(held.held) == 3
    held.close()
    assert held.held is None

    class Tight(InlineExecutor):
        def task_memory(self):
            return 1000                                  # far below 500 x 6 x 8 bytes

    assert _Distributed(Tight(), data).held is None
    C0 = X[:4].astype(np.float64)
    ref, _ = _single(path, "/X", C0, chunk_rows=64)
    for ex in (cluster, Tight()):
        got = lloyd_distributed(ex, data, C0)
        np.testing.assert_array_equal(got.labels, ref.labels)
        np.testing.assert_allclose(got.centers, ref.centers, rtol=1e-10, atol=1e-10)
