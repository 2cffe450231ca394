"""4D-STEM clustering (issue 21): (Ny, Nx, ky, kx) in, label maps out; preprocessing against a
NumPy reference; chunk-aware mini-batch sampling (every row once per epoch, deterministic,
streaming equal to in-memory); the copy-speed gather."""

import warnings

import h5py
import numpy as np
import pytest

from fastem.cluster import DataSource, SBEKMeans
from fastem.cluster.preprocess import Preprocess
from fastem.cluster.sampling import ChunkSampler, sampling_blocks
from fastem.cluster.source import gather
from fastem.cluster.synthetic import stem4d_phases
from fastem.errors import InputError
from fastem.io import DataWarning


@pytest.fixture(scope="module")
def scan():
    X, phase_map, _ = stem4d_phases(12, 10, 16, 16, 4, noise=0.3, seed=5)
    return X, phase_map


def _ari(a, b):
    from sklearn.metrics import adjusted_rand_score

    return adjusted_rand_score(np.ravel(a), np.ravel(b))


# -- 4D in, label map out ----------------------------------------------------------------------
def test_4d_array_gives_label_map_patterns_and_stats(scan):
    X, phase_map = scan
    m = SBEKMeans(4, algorithm="lloyd", init="k-means++", n_init=3, random_state=0).fit(X)
    assert m.label_map_.shape == (12, 10) and m.labels_.shape == (120,)
    # row i = iy * Nx + ix
    np.testing.assert_array_equal(m.label_map_[7, 3], m.labels_[7 * 10 + 3])
    np.testing.assert_array_equal(m.label_map_.ravel(), m.labels_)
    assert m.cluster_patterns_.shape == (4, 16, 16) and m.cluster_centers_.shape == (4, 256)
    assert m.scan_shape_ == (12, 10) and m.pattern_shape_ == (16, 16) and m.n_features_in_ == 256
    assert _ari(m.label_map_, phase_map) == pytest.approx(1.0)
    # counts and mean distance from their definition
    flat = X.reshape(120, 256).astype(np.float64)
    C = m.cluster_centers_.astype(np.float64)
    dist = np.sqrt(((flat - C[m.labels_]) ** 2).sum(1))
    np.testing.assert_array_equal(m.counts_, np.bincount(m.labels_, minlength=4))
    ref = np.array([dist[m.labels_ == j].mean() for j in range(4)])
    np.testing.assert_allclose(m.mean_distance_, ref, rtol=1e-5)
    # predict on a 4D array returns a map, on (N, ky, kx) a vector
    np.testing.assert_array_equal(m.predict(X), m.label_map_)
    np.testing.assert_array_equal(m.predict(X.reshape(120, 16, 16)), m.labels_)


def test_4d_equals_flattened_input(scan):
    X, _ = scan
    kw = dict(algorithm="sbe", n_init=2, batch_size=32, n_outer=4, n_inner=3, random_state=3, sampling="uniform")
    a = SBEKMeans(4, **kw).fit(X)
    b = SBEKMeans(4, **kw).fit(X.reshape(120, 256))
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    np.testing.assert_array_equal(a.labels_, b.labels_)


@pytest.mark.parametrize("compression", [None, "gzip"])     # mapped in place / read in windows
@pytest.mark.parametrize("sampling", ["uniform", "chunks"])
@pytest.mark.parametrize("algorithm", ["sbe", "minibatch", "lloyd"])
def test_4d_hdf5_streaming_equals_in_memory(tmp_path, scan, sampling, algorithm, compression):
    X, _ = scan
    path = tmp_path / "scan.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=X, chunks=(2, 5, 16, 16), compression=compression)
    kw = dict(algorithm=algorithm, n_init=2, batch_size=20, n_outer=4, n_inner=3, random_state=7, chunk_rows=30,
              sampling=sampling)
    mem = SBEKMeans(4, sampling_chunks=(2, 5, 16, 16), **{k: v for k, v in kw.items()}).fit(X)
    disk = SBEKMeans(4, **kw).fit(f"{path}:/data")
    np.testing.assert_array_equal(disk.cluster_centers_, mem.cluster_centers_)
    np.testing.assert_array_equal(disk.label_map_, mem.label_map_)
    np.testing.assert_array_equal(disk.objectives_, mem.objectives_)
    np.testing.assert_array_equal(mem.predict(f"{path}:/data"), mem.label_map_)


@pytest.mark.parametrize("writer", ["hdf5plugin", "bitshuffle"])
def test_bitshuffle_lz4_file_read_by_the_fast_decoder_equals_in_memory(tmp_path, scan, writer):
    """With the ``bitshuffle`` package installed, ``load_hdf5_filters`` registers its filter (the
    AVX2/OpenMP build) over hdf5plugin's; a bitshuffle/LZ4 file written by either library then
    streams to the same fit as the array in memory, and its chunks decode to the written bits."""
    import sys

    hdf5plugin = pytest.importorskip("hdf5plugin")
    pytest.importorskip("bitshuffle")
    from fastem.cluster.source import load_hdf5_filters

    assert load_hdf5_filters()
    assert "bitshuffle.h5" in sys.modules
    X, _ = scan
    path = tmp_path / "scan.h5"
    with h5py.File(path, "w") as f:
        if writer == "hdf5plugin":
            f.create_dataset("data", data=X, chunks=(2, 5, 16, 16), **hdf5plugin.Bitshuffle(cname="lz4"))
        else:
            import bitshuffle.h5

            f.create_dataset("data", data=X, chunks=(2, 5, 16, 16), compression=bitshuffle.h5.H5FILTER,
                             compression_opts=(0, bitshuffle.h5.H5_COMPRESS_LZ4))
    with h5py.File(path, "r") as f:
        assert f["data"].id.get_create_plist().get_filter(0)[0] == 32008
        np.testing.assert_array_equal(f["data"][...], X)
    kw = dict(algorithm="minibatch", n_init=1, batch_size=20, n_steps=12, random_state=7, sampling="chunks")
    mem = SBEKMeans(4, sampling_chunks=(2, 5, 16, 16), **kw).fit(X)
    disk = SBEKMeans(4, **kw).fit(f"{path}:/data")
    np.testing.assert_array_equal(disk.cluster_centers_, mem.cluster_centers_)
    np.testing.assert_array_equal(disk.label_map_, mem.label_map_)


def test_4d_errors(scan, rng):
    X, _ = scan
    with pytest.raises(InputError, match=r"5D array of shape \(2, 3, 4, 4, 4\)"):
        SBEKMeans(2).fit(np.ones((2, 3, 4, 4, 4)))
    with pytest.raises(InputError, match=r"detector_mask has shape \(8, 8\) but the patterns of X are \(16, 16\)"):
        SBEKMeans(2, detector_mask=np.zeros((8, 8), bool)).fit(X)
    with pytest.raises(InputError, match="detector_mask must be a 2D"):
        SBEKMeans(2, detector_mask=np.zeros(16, bool)).fit(X)
    with pytest.raises(InputError, match="binning 4 does not divide"):
        SBEKMeans(2, binning=4).fit(X[:, :, :14, :14])
    with pytest.raises(InputError, match="binning must be one of"):
        SBEKMeans(2, binning=3).fit(X)
    with pytest.raises(InputError, match="transform must be one of"):
        SBEKMeans(2, transform="log").fit(X)
    with pytest.raises(InputError, match="need patterns"):
        SBEKMeans(2, binning=2).fit(rng.standard_normal((20, 4)))
    with pytest.raises(InputError, match="sampling must be one of"):
        SBEKMeans(2, sampling="rows").fit(X)
    with pytest.raises(InputError, match=r"sampling_chunks \(4, 5\) must have one entry per axis"):
        SBEKMeans(2, sampling="chunks", sampling_chunks=(4, 5), n_outer=1, n_inner=1).fit(X)
    m = SBEKMeans(2, algorithm="lloyd", random_state=0).fit(X)
    with pytest.raises(InputError, match=r"patterns of shape \(8, 32\) but the model was fitted with patterns of "
                                          r"shape \(16, 16\)"):
        m.predict(X.reshape(12, 10, 8, 32))


# -- preprocessing against a NumPy reference -----------------------------------------------------
def _reference(raw, transform, mask, b, normalize):
    """Pattern by pattern, float64, in the documented order."""
    out = []
    for p in raw.astype(np.float64):
        p = p.copy()
        if mask is not None:
            p[mask] = 0.0
        ky, kx = p.shape
        p = np.array([[p[i:i + b, j:j + b].sum() for j in range(0, kx, b)] for i in range(0, ky, b)])
        if transform == "sqrt":
            p = np.sqrt(np.clip(p, 0, None))
        elif transform == "log1p":
            p = np.log1p(np.clip(p, 0, None))
        if normalize == "sum" and p.sum() != 0:
            p = p / p.sum()
        elif normalize == "l2" and np.linalg.norm(p) != 0:
            p = p / np.linalg.norm(p)
        out.append(p.ravel())
    return np.array(out)


@pytest.mark.parametrize("transform", ["none", "sqrt", "log1p"])
@pytest.mark.parametrize("b", [1, 2, 4])
@pytest.mark.parametrize("normalize", ["none", "sum", "l2"])
def test_preprocess_matches_numpy_reference(rng, transform, b, normalize):
    raw = rng.gamma(2.0, 10.0, (7, 8, 8)) - 2.0  # some negative values (dark-subtracted counts)
    raw[3] = 0.0  # an all-zero pattern stays zero under normalisation
    mask = rng.random((8, 8)) < 0.2
    pre = Preprocess(transform=transform, mask=mask, binning=b, normalize=normalize)
    assert pre.check((8, 8)) == (8 // b, 8 // b)
    got = pre.apply(raw.reshape(7, 64), (8, 8), np.float64)
    np.testing.assert_allclose(got, _reference(raw, transform, mask, b, normalize), rtol=1e-12, atol=1e-14)
    got32 = pre.apply(raw.reshape(7, 64), (8, 8), np.float32)
    assert got32.dtype == np.float32 and got32.flags.c_contiguous
    np.testing.assert_allclose(got32, _reference(raw, transform, mask, b, normalize), rtol=1e-5, atol=1e-6)


def test_preprocessing_is_recorded_and_applied_by_predict(tmp_path, scan):
    X, phase_map = scan
    mask = np.zeros((16, 16), bool)
    mask[6:10, 6:10] = True  # the central beam
    kw = dict(algorithm="lloyd", init="k-means++", random_state=1, transform="sqrt", detector_mask=mask, binning=2,
              normalize="sum")
    m = SBEKMeans(4, **kw).fit(X)
    assert m.cluster_patterns_.shape == (4, 8, 8) and m.n_features_ == 64 and m.n_features_in_ == 256
    assert m.preprocess_.record() == {"transform": "sqrt", "binning": 2, "normalize": "sum",
                                      "detector_mask": {"shape": [16, 16], "hidden_pixels": 16}}
    # Lloyd's centroids are the means of the preprocessed patterns of their clusters
    P = _reference(X.reshape(120, 16, 16), "sqrt", mask, 2, "sum")
    for j in range(4):
        np.testing.assert_allclose(m.cluster_centers_[j], P[m.labels_ == j].mean(0), rtol=2e-4, atol=1e-7)
    np.testing.assert_array_equal(m.predict(X), m.label_map_)
    # streamed from HDF5: the preprocessing is fused into the reads, same result
    path = tmp_path / "s.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=X, chunks=(3, 10, 16, 16))
    disk = SBEKMeans(4, **kw).fit(f"{path}:/data")
    np.testing.assert_allclose(disk.cluster_centers_, m.cluster_centers_, rtol=1e-5, atol=1e-8)
    np.testing.assert_array_equal(disk.label_map_, m.label_map_)
    assert _ari(m.label_map_, phase_map) == pytest.approx(1.0)


# -- chunk-aware sampling --------------------------------------------------------------------------
def _rows_of(sampler, steps):
    out = []
    for _ in range(steps):
        sampler.next(track=True)
        out.append(sampler.last_rows.copy())
    return out


@pytest.mark.parametrize("n, m, chunks", [(120, 20, (2, 5, 16, 16)), (120, 7, (1, 10, 16, 16)),
                                          (120, 50, None)])
def test_chunk_sampler_every_row_once_per_epoch(scan, n, m, chunks):
    X, _ = scan
    src = DataSource(X, sampling="chunks", sampling_chunks=chunks)
    s = ChunkSampler(src, np.random.default_rng(0), m, chunks=chunks)
    steps = 3 * n // np.gcd(n, m) * m // m  # a whole number of epochs
    rows = np.concatenate(_rows_of(s, steps))
    assert rows.size % n == 0
    for e in range(rows.size // n):
        np.testing.assert_array_equal(np.sort(rows[e * n:(e + 1) * n]), np.arange(n))
    # a batch holds the rows it names
    b = s.next(track=True)
    np.testing.assert_array_equal(b, X.reshape(n, -1)[s.last_rows])


def test_chunk_sampler_is_deterministic_and_reads_each_chunk_once(tmp_path, scan, monkeypatch):
    X, _ = scan
    path = tmp_path / "c.h5"
    with h5py.File(path, "w") as f:     # compressed: read in windows (an uncompressed file is mapped)
        f.create_dataset("data", data=X, chunks=(2, 5, 16, 16), compression="gzip")
    with h5py.File(path, "r") as f:
        src = DataSource(f["data"])
        reads = []
        orig = src.read_block
        monkeypatch.setattr(src, "read_block", lambda sel, out=None: (reads.append(sel), orig(sel, out=out))[1])
        a = ChunkSampler(src, np.random.default_rng(42), 24)
        rows_a = _rows_of(a, 10)  # two epochs (120 rows / 24)
        batches_a = [a.next().copy() for _ in range(5)]
        a.close()
        n_reads = len(reads)
        b = ChunkSampler(src, np.random.default_rng(42), 24)
        rows_b = _rows_of(b, 10)
        batches_b = [b.next().copy() for _ in range(5)]
        b.close()
    for ra, rb in zip(rows_a, rows_b):
        np.testing.assert_array_equal(ra, rb)
    for ba, bb in zip(batches_a, batches_b):
        np.testing.assert_array_equal(ba, bb)
    blocks = sampling_blocks(X.shape, (2, 5, 16, 16))
    # 3 epochs consumed (+ at most one window read ahead): every block read once per epoch
    keys = [tuple((s.start, s.stop) for s in sel) for sel in reads[:3 * len(blocks)]]
    for e in range(3):
        assert sorted(keys[e * len(blocks):(e + 1) * len(blocks)]) == sorted(
            tuple((s.start, s.stop) for s in blk[0]) for blk in blocks)
    assert n_reads <= 4 * len(blocks)
    c = ChunkSampler(DataSource(X, sampling_chunks=(2, 5, 16, 16)), np.random.default_rng(43), 24,
                     chunks=(2, 5, 16, 16))
    assert not all(np.array_equal(x, y) for x, y in zip(rows_a, _rows_of(c, 10)))


def test_streamed_batches_equal_in_memory_batches(tmp_path, scan):
    X, _ = scan
    path = tmp_path / "c.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=X, chunks=(3, 2, 16, 16))
    pre = Preprocess(transform="log1p", binning=2)
    mem = ChunkSampler(DataSource(X, preprocess=pre), np.random.default_rng(9), 17, chunks=(3, 2, 16, 16))
    with h5py.File(path, "r") as f:
        disk = ChunkSampler(DataSource(f["data"], preprocess=pre), np.random.default_rng(9), 17)
        for _ in range(25):
            np.testing.assert_array_equal(disk.next(track=True), mem.next(track=True))
            np.testing.assert_array_equal(disk.last_rows, mem.last_rows)
        disk.close()


def test_blocks_cover_the_scan_in_whole_chunks():
    blocks = sampling_blocks((12, 10, 4, 4), (2, 5, 4, 4), min_rows=20)
    rows = np.concatenate([b[1] for b in blocks])
    np.testing.assert_array_equal(np.sort(rows), np.arange(120))
    for sel, r in blocks:
        ys, xs = sel
        assert ys.start % 2 == 0 and xs.start % 5 == 0  # aligned to chunks
        np.testing.assert_array_equal(r, (np.arange(ys.start, ys.stop)[:, None] * 10
                                          + np.arange(xs.start, xs.stop)).ravel())
    assert {b[1].size for b in blocks} == {10}  # at most N/16 = 7 rows asked: one 2x5 chunk per block
    big = sampling_blocks((64, 40, 4, 4), (2, 5, 4, 4), min_rows=20)
    assert {b[1].size for b in big} == {20}  # 2x10 tiles: whole chunks grown to >= 20 rows
    assert big[0][0] == (slice(0, 2), slice(0, 10))
    one = sampling_blocks((2000, 7), (16, 7), min_rows=64)
    assert [b[1].size for b in one][:2] == [64, 64] and sum(b[1].size for b in one) == 2000


def test_unstreamable_chunk_layout_warns(tmp_path, scan):
    X, _ = scan
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=X, chunks=(12, 10, 4, 4))  # every chunk spans the whole scan
    with h5py.File(path, "r") as f, pytest.warns(DataWarning, match="cannot be streamed efficiently.*rechunk"):
        SBEKMeans(2, batch_size=16, n_outer=2, n_inner=2, random_state=0).fit(f["data"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        sampling_blocks(X.shape, (2, 5, 16, 16))


# -- gather --------------------------------------------------------------------------------------
def test_gather_is_fancy_indexing(rng):
    X = rng.standard_normal((50, 9)).astype(np.float32)
    idx = np.array([3, 3, 49, 0, 17])
    out = np.empty((5, 9), np.float32)
    assert gather(X, idx, out) is out
    np.testing.assert_array_equal(out, X[idx])
    with pytest.raises(IndexError):
        gather(X, np.array([1, 50]), np.empty((2, 9), np.float32))


# -- the bench script ----------------------------------------------------------------------------
def test_bench_cluster_4dstem_quick(tmp_path):
    """bench/cluster_4dstem.py --quick writes its table and every method's figures."""
    pytest.importorskip("sklearn")
    pytest.importorskip("hdf5plugin")
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import cluster_4dstem

    out = tmp_path / "q"
    assert cluster_4dstem.main(["--quick", "--repeats", "1", "--ks", "3", "--no-peak", "--tmp", str(tmp_path),
                                "--out", str(out)]) == 0
    res = json.loads(out.with_suffix(".json").read_text())
    (case,) = res["cases"]
    assert case["scan"] == [16, 16] and case["K"] == 3
    for name, r in case["methods"].items():
        assert r["median_s"] > 0 and 0 <= r["objective_median"] and -1 <= r["ari_median"] <= 1, name
    # same plan from memory and from every file layout: the same centroids, so the same objective
    m = case["methods"]
    for name in ("fastem mini-batch, HDF5 chunked", "fastem mini-batch, HDF5 contiguous",
                 "fastem mini-batch, HDF5 bitshuffle-LZ4"):
        assert m[name]["objective_median"] == m["fastem mini-batch, memory, chunk plan"]["objective_median"], name
    assert m["fastem Lloyd, memory"]["objective_median"] == m["fastem Lloyd, HDF5 chunked"]["objective_median"]
    assert "| sklearn MiniBatchKMeans |" in out.with_suffix(".md").read_text()



@pytest.mark.parametrize("layout", [dict(chunks=(2, 5, 16, 16)), dict(chunks=(3, 7, 16, 16)), {}])
def test_uncompressed_file_is_mapped_in_place_same_batches_and_fit(tmp_path, scan, layout):
    """An uncompressed file (chunked, with edge chunks, or contiguous) is read in place through a
    memory map: no window reads, the same batches as reading windows, the same fit."""
    from fastem.cluster import SBEKMeans
    from fastem.cluster.mapped import map_rows

    X, _ = scan
    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=X, **layout)
    n, d = X.shape[0] * X.shape[1], X.shape[2] * X.shape[3]
    with h5py.File(path, "r") as f:
        mapped = map_rows(f["data"], n, d, np.float32)
        assert mapped is not None
        flat = X.reshape(n, d)
        for r in (0, 1, n // 2, n - 1):
            np.testing.assert_array_equal(mapped.flat[mapped.offsets[r]:mapped.offsets[r] + d], flat[r])
        src, windows = DataSource(f["data"]), DataSource(f["data"])
        windows._mapped = None                                   # force the window reads
        a = ChunkSampler(src, np.random.default_rng(5), 24, chunks=(2, 5, 16, 16))
        b = ChunkSampler(windows, np.random.default_rng(5), 24, chunks=(2, 5, 16, 16))
        assert a.mapped is not None and b.mapped is None
        for _ in range(7):
            np.testing.assert_array_equal(a.next(), b.next())
        a.close(), b.close()
        for kw in (dict(algorithm="minibatch", random_state=3, batch_size=24, n_steps=9),
                   dict(algorithm="lloyd", random_state=3, max_iter=4, chunk_rows=35)):
            chunk_rows = kw.pop("chunk_rows", None)
            fit_mapped = SBEKMeans(3, **kw).fit(f["data"]) if chunk_rows is None else None
            if chunk_rows is not None:       # Lloyd: full passes in blocks gathered from the map
                from fastem.cluster.core import lloyd

                C0 = np.random.default_rng(0).random((3, d)).astype(np.float64)
                src_m = DataSource(f["data"], chunk_rows=chunk_rows)
                assert src_m.mapped() is not None
                fit_mapped = lloyd(src_m, C0, max_iter=4, tol=0.0)
                src_r = DataSource(f["data"], chunk_rows=chunk_rows)
                src_r._mapped = None
                fit_read = lloyd(src_r, C0, max_iter=4, tol=0.0)
                np.testing.assert_array_equal(fit_mapped.labels, fit_read.labels)
                np.testing.assert_array_equal(fit_mapped.centers, fit_read.centers)
                assert fit_mapped.objective == fit_read.objective
                continue
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(DataSource, "mapped", lambda self: None)     # every read through HDF5
                fit_read = SBEKMeans(3, **kw).fit(f["data"])
            np.testing.assert_array_equal(fit_mapped.cluster_centers_, fit_read.cluster_centers_)
            np.testing.assert_array_equal(fit_mapped.labels_, fit_read.labels_)


def test_filtered_or_split_rows_are_not_mapped(tmp_path, scan):
    from fastem.cluster.mapped import map_rows

    X, _ = scan
    n, d = X.shape[0] * X.shape[1], X.shape[2] * X.shape[3]
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f.create_dataset("gz", data=X, chunks=(2, 5, 16, 16), compression="gzip")
        f.create_dataset("split", data=X, chunks=(2, 5, 8, 16))          # a chunk holds half a pattern
        f.create_dataset("f64", data=X.astype(np.float64))
        f.create_dataset("empty", shape=X.shape, dtype=np.float32, chunks=(2, 5, 16, 16))   # unallocated
    with h5py.File(tmp_path / "f.h5", "r") as f:
        assert map_rows(f["gz"], n, d, np.float32) is None
        assert map_rows(f["split"], n, d, np.float32) is None
        assert map_rows(f["f64"], n, d, np.float32) is None                 # dtype differs from the working one
        assert map_rows(f["empty"], n, d, np.float32) is None
