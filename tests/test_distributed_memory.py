"""Distributed jobs size their tasks from the workers' memory limit (issue 17: "memory limits
respected, chunk sizes from a memory budget").

A budgeted executor that runs tasks in this process stands in for Dask workers with a small
``memory_limit`` (a real worker process needs ~100 MB itself, so tiny limits cannot be tried on
it); :meth:`DaskExecutor.task_memory` is checked against a real ``LocalCluster``.
"""

from __future__ import annotations

import warnings

import h5py
import numpy as np
import pytest

from fastem.errors import InputError
from fastem.executor import TASK_MEMORY_FRACTION, Executor, items_per_task


class Budgeted(Executor):
    """Runs tasks here, records each task, and reports ``budget`` bytes per task."""

    slots = 2

    def __init__(self, budget):
        self.budget, self.tasks = budget, []

    def task_memory(self):
        return self.budget

    def map(self, fn, items):
        items = list(items)
        self.tasks.extend(items)
        return [fn(i) for i in items]

    def imap_unordered(self, fn, items, window=None):
        for i, item in enumerate(items):
            self.tasks.append(item)
            yield i, fn(item)


def test_items_per_task_arithmetic():
    ex = Budgeted(1000)
    usable = int(1000 * TASK_MEMORY_FRACTION)
    assert items_per_task(ex, 3, 100, what="w", item="x") == 3                       # fits: unchanged
    with pytest.warns(ResourceWarning, match=r"w: 9 xs per task .* using 4 per task"):
        assert items_per_task(ex, 9, 100, what="w", item="x", fixed_bytes=usable - 400) == 4
    with pytest.raises(InputError, match="w: one x needs about .* MiB per task but the Dask workers allow"):
        items_per_task(ex, 1, usable + 1, what="w", item="x")
    assert items_per_task(Budgeted(None), 10 ** 9, 10 ** 9, what="w", item="x") == 10 ** 9    # no limit known


def test_scan_simulate_chunks_shrink_to_the_budget_same_file(tmp_path, rng):
    from fastem.executor import InlineExecutor
    from fastem.scan.job import simulate_to_file

    imgs = rng.random((7, 32, 40))
    simulate_to_file(tmp_path / "one.h5", imgs, "spiral", 0.1, seed=3, chunk=6, executor=InlineExecutor())
    ex = Budgeted(int(2.5 * 12 * 4 * 32 * 40 / TASK_MEMORY_FRACTION))                  # 2 images fit
    with pytest.warns(ResourceWarning, match="scan simulate: 6 images per task .* using 2 per task"):
        simulate_to_file(tmp_path / "two.h5", imgs, "spiral", 0.1, seed=3, chunk=6, executor=ex)
    assert [t["stop"] - t["start"] for t in ex.tasks] == [2, 2, 2, 1]
    with h5py.File(tmp_path / "one.h5", "r") as a, h5py.File(tmp_path / "two.h5", "r") as b:
        for k in ("partial", "path", "truth"):
            np.testing.assert_array_equal(a["scan"][k][()], b["scan"][k][()])


def test_tomo_slabs_multiply_to_fit_same_volume(tmp_path):
    from fastem.data import tilt_angles, tilt_series, vesicle_3d
    from fastem.tomo import sirt
    from fastem.tomo.distributed import SlabJob, reconstruct_slabs

    vol = vesicle_3d(16, seed=1).astype(np.float32)
    ang = tilt_angles(-60, 60, 10)
    proj = tilt_series(vol, ang, centring="middle").astype(np.float32)
    path = tmp_path / "s.h5"
    with h5py.File(path, "w") as f:
        f["p"] = proj
    n, rows, cols = proj.shape
    per_row = 4 * (5 * cols * cols + 4 * n * cols)
    ex = Budgeted(int(3.5 * per_row / TASK_MEMORY_FRACTION))                            # 3 rows per slab
    with pytest.warns(ResourceWarning, match="tomo slabs: .* using 3 per task"):
        res = reconstruct_slabs(ex, SlabJob(f"{path}:/p", ang, "sirt", {"iterations": 4}), slabs=2)
    assert max(b - a for a, b in res["slabs"]) <= 3 and len(res["slabs"]) == -(-rows // 3)
    np.testing.assert_array_equal(res["volume"], sirt(proj, ang, iterations=4, progress=False).volume)


@pytest.mark.parametrize("algorithm", ["lloyd", "sbe"])
def test_cluster_blocks_and_partitions_from_the_budget(tmp_path, rng, algorithm):
    from fastem.cluster import SBEKMeans

    X = rng.normal(size=(900, 16)).astype(np.float32) + 5 * rng.integers(0, 3, (900, 1))
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        f["X"] = X
    kw = dict(algorithm=algorithm, random_state=1, batch_size=300, n_outer=3, n_inner=2, max_iter=5, tol=0)
    row_bytes, fixed = 3 * 16 * 8, 3 * 3 * 16 * 8            # the working dtype here is float64 (Lloyd's, SBE's)
    ex = Budgeted(int((fixed + 50.5 * row_bytes) / TASK_MEMORY_FRACTION))                # 50 rows per task
    with h5py.File(path, "r") as f:
        one = SBEKMeans(3, sampling="uniform", **kw).fit(f["X"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            two = SBEKMeans(3, **kw).fit(f["X"], executor=ex)
    data = ex.tasks[-1]["data"]
    assert np.dtype(data.dtype) == np.float64 and data.chunk_rows == 50
    if algorithm == "sbe":
        assert data.parts >= 6                                     # 300-row batches in shares of <= 50 rows
        shares = [len(t["idx"]) for t in ex.tasks if "idx" in t]
        assert shares and max(shares) <= 80                        # random split: about 300 / parts each
    np.testing.assert_array_equal(one.labels_, two.labels_)
    np.testing.assert_allclose(one.cluster_centers_, two.cluster_centers_, rtol=1e-5, atol=1e-5)


def test_dask_task_memory_is_limit_over_threads():
    pytest.importorskip("distributed")
    from fastem.executor import DaskExecutor

    with DaskExecutor.make_local(n_workers=1, threads_per_worker=2, memory_limit="1GiB") as ex:
        assert ex.task_memory() == 2 ** 30 // 2
    with DaskExecutor.make_local(n_workers=1, threads_per_worker=1, memory_limit=0) as ex:
        assert ex.task_memory() is None
