"""Single-axis tomography in slabs on Dask workers (issue 17): equal to the whole reconstruction."""

from __future__ import annotations


import h5py
import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from dask_support import cluster, first_worker, is_gone, kill_worker  # noqa: E402,F401  (cluster: a fixture)

from fastem.data import tilt_angles, tilt_series, vesicle_3d  # noqa: E402
from fastem.errors import InputError  # noqa: E402
from fastem.executor import InlineExecutor  # noqa: E402
from fastem.tomo import fbp, resire, sirt  # noqa: E402
from fastem.tomo.distributed import SlabJob, reconstruct_slabs, slab_ranges  # noqa: E402


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    vol = vesicle_3d(20, seed=3).astype(np.float32)
    ang = tilt_angles(-60, 60, 7.5)
    proj = tilt_series(vol, ang, centring="middle").astype(np.float32)[:, :, :]
    proj = proj[:, :19, :]                         # 19 rows: odd, slabs of unequal size
    path = tmp_path_factory.mktemp("tomo") / "series.h5"
    with h5py.File(path, "w") as f:
        f["/exchange/data"] = proj
    return path, proj, ang


@pytest.mark.parametrize("method,kw", [("sirt", {"iterations": 8}),
                                       ("resire", {"iterations": 8, "projector": "linear"}),
                                       ("fbp", {})])
def test_slabs_equal_the_whole_bitwise(series, cluster, method, kw):
    path, proj, ang = series
    fn = {"sirt": sirt, "resire": resire, "fbp": fbp}[method]
    whole = fn(proj, ang, **({"progress": False} | kw if method != "fbp" else kw)).volume
    res = reconstruct_slabs(cluster, SlabJob(f"{path}:/exchange/data", ang, method, dict(kw)), slabs=3)
    assert res["slabs"] == [(0, 6), (6, 12), (12, 19)]
    if method == "fbp":    # the ramp filter's FFT batches differ with the slab: equal to float32 rounding
        np.testing.assert_allclose(res["volume"], whole, rtol=0, atol=1e-6 * float(np.abs(whole).max()))
    else:
        np.testing.assert_array_equal(res["volume"], whole)
    assert len(res["r_factor"]) == 3 and all(np.isfinite(res["r_factor"]))


def test_written_by_region_into_an_hdf5_dataset(series, tmp_path):
    path, proj, ang = series
    whole = sirt(proj, ang, iterations=5, progress=False).volume
    with h5py.File(tmp_path / "out.h5", "w") as f:
        ds = f.create_dataset("volume", shape=whole.shape, dtype=np.float32)
        res = reconstruct_slabs(InlineExecutor(), SlabJob(f"{path}:/exchange/data", ang, "sirt",
                                                          {"iterations": 5}), slabs=10, out=ds)
        assert np.isnan(res["r_factor"]).any()      # an empty slab (rows outside the object): zeros
        np.testing.assert_array_equal(ds[()], whole)


def test_worker_lost_mid_run(series, cluster):
    path, proj, ang = series
    whole = sirt(proj, ang, iterations=6, progress=False).volume
    victim = first_worker(cluster)
    killed = []

    class Kill:
        def update(self, k):
            if not killed:
                killed.append(k)
                kill_worker(cluster, victim)

    res = reconstruct_slabs(cluster, SlabJob(f"{path}:/exchange/data", ang, "sirt", {"iterations": 6}), slabs=6,
                            progress=Kill())
    assert killed and is_gone(cluster, victim)
    np.testing.assert_array_equal(res["volume"], whole)


@pytest.mark.parametrize("method,kw,match", [
    ("resire", {"projector": "fst"}, "projector 'fst' does not split"),
    ("sirt", {"rtol": 1e-3}, "rtol is a global stopping rule"),
    ("sirt", {"mask": np.ones(3)}, "mask is not supported with slabs"),
    ("art", {}, "method must be one of"),
])
def test_refusals(series, method, kw, match):
    path, _, ang = series
    with pytest.raises(InputError, match=match):
        reconstruct_slabs(InlineExecutor(), SlabJob(f"{path}:/exchange/data", ang, method, kw))


def test_euler_series_refused(series):
    path, _, ang = series
    euler = np.stack([np.zeros_like(ang), ang, np.zeros_like(ang)], axis=1)
    with pytest.raises(InputError, match="single tilt axis"):
        reconstruct_slabs(InlineExecutor(), SlabJob(f"{path}:/exchange/data", euler, "sirt", {}))


def test_slab_ranges():
    assert slab_ranges(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert slab_ranges(2, 5) == [(0, 1), (1, 2)]


def test_default_slabs_follow_the_slots_and_the_slab_size():
    from fastem.tomo.distributed import SLAB_BYTES, SLAB_MIN_ROWS, default_slabs

    assert 4 * 128 * 128 * 128 <= SLAB_BYTES                 # 128^3: one slab per slot (8 MiB each)
    assert [default_slabs(128, 128, 128, s) for s in (1, 2, 3)] == [1, 2, 3]
    # 256^3: 8 MiB = 32-row slabs, the same thickness on 1 and on 2 workers
    assert SLAB_BYTES // (4 * 256 * 256) == 32 and SLAB_MIN_ROWS <= 32
    assert default_slabs(256, 256, 256, 1) == default_slabs(256, 256, 256, 2) == 8
    assert default_slabs(256, 256, 256, 3) == 9                # a multiple of the slots: equal shares
    # 2048^3: the byte cap alone would give 0-row slabs; the SIMD loop keeps them at SLAB_MIN_ROWS
    assert default_slabs(2048, 2048, 2048, 16) == 2048 // SLAB_MIN_ROWS
    assert default_slabs(5, 400, 400, 8) == 5                  # never more slabs than rows
    assert default_slabs(10, 4, 4, 1, slab_bytes=1, min_rows=3) == 4


class _HereExecutor:
    """Runs the slab tasks in this process through the distributed code path (not InlineExecutor)."""

    slots = 2

    def task_memory(self):
        return None

    def describe(self):
        return "here"

    def imap_unordered(self, fn, items, window=None):
        for i, item in enumerate(items):
            yield i, fn(item)


def _series_file(tmp_path, proj, ang):
    src = tmp_path / "in.h5"
    with h5py.File(src, "w") as f:
        f["/exchange/data"] = proj
        f["/exchange/theta"] = ang
    return src


def test_tomo_file_writes_slabs_by_region_never_the_whole_volume(series, tmp_path, monkeypatch):
    """The job streams each slab into the output file as it arrives; the result's volume is read
    from disk on demand; the file equals the one-process run."""
    from fastem.io.dxchange import VolumeOnDisk, VolumeWriter
    from fastem.tomo.job import tomo_file

    _, proj, ang = series
    src = _series_file(tmp_path, proj, ang)
    tomo_file(src, tmp_path / "one.h5", algorithm="sirt", iterations=5)
    writes = []
    real = VolumeWriter.__setitem__

    def record(self, region, values):
        writes.append(np.shape(values))
        real(self, region, values)

    monkeypatch.setattr(VolumeWriter, "__setitem__", record)
    result, _ = tomo_file(src, tmp_path / "slabs.h5", algorithm="sirt", iterations=5, executor=_HereExecutor())
    assert len(writes) == 2 and all(s[1] < proj.shape[1] for s in writes)     # one slab per slot, each a part
    assert isinstance(result.volume, VolumeOnDisk) and result.volume.shape == (proj.shape[2],) + proj.shape[1:]
    with h5py.File(tmp_path / "one.h5", "r") as a, h5py.File(tmp_path / "slabs.h5", "r") as b:
        np.testing.assert_array_equal(a["/exchange/data"][()], b["/exchange/data"][()])
        assert b["/exchange/data"].attrs["axes"] == "z:y:x" and "process" in b
    np.testing.assert_array_equal(np.asarray(result.volume), _volume_of(tmp_path / "one.h5"))


def _volume_of(path):
    with h5py.File(path, "r") as f:
        return f["/exchange/data"][()]


def test_non_finite_slab_leaves_no_output(series, tmp_path, monkeypatch):
    import fastem.tomo.distributed as d
    from fastem.errors import NonFiniteResultError
    from fastem.tomo.job import tomo_file

    _, proj, ang = series
    src = _series_file(tmp_path, proj, ang)
    real = d.reconstruct_slab

    def poisoned(task):
        res = real(task)
        if task["r0"] > 0:
            res["volume"][0, 0, 0] = np.nan
        return res

    monkeypatch.setattr(d, "reconstruct_slab", poisoned)
    with pytest.raises(NonFiniteResultError, match=r"sirt volume \(region \[:, \d+:\d+, :\]\)"):
        tomo_file(src, tmp_path / "bad.h5", algorithm="sirt", iterations=3, executor=_HereExecutor())
    assert not (tmp_path / "bad.h5").exists() and not list(tmp_path.glob(".bad.h5*"))
