"""Fault injection for ``fastem cluster`` on 4D-STEM data (issue 21), in child processes.

Bad shapes and preprocessing options are one-line errors naming the flag or the dataset (exit 1,
nothing written); a compressed (bitshuffle/LZ4) file is read without the caller importing
``hdf5plugin``; a chunk layout that cannot be streamed efficiently is a warning saying what to do,
with a finite result.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from fault_tools import assert_clean_error, leftover_temporaries, run_cli


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from fastem.cluster.synthetic import stem4d_phases

    d = tmp_path_factory.mktemp("faults_cluster_4dstem")
    X, _, _ = stem4d_phases(8, 8, 16, 16, 3, noise=0.3, seed=1)
    with h5py.File(d / "scan.h5", "w") as f:
        f.create_dataset("data", data=X, chunks=(2, 8, 16, 16))
        f["five"] = np.ones((2, 2, 2, 4, 4), np.float32)
        f["odd"] = X[:, :, :14, :14]
        f["points"] = X.reshape(64, 256)
        f["mask8"] = np.zeros((8, 8), np.uint8)
        f["mask16"] = np.zeros((16, 16), np.uint8)
        f.create_dataset("bad_chunks", data=X, chunks=(8, 8, 4, 4))
    try:
        import hdf5plugin

        with h5py.File(d / "lz4.h5", "w") as f:
            f.create_dataset("data", data=X, chunks=(2, 8, 16, 16), **hdf5plugin.Bitshuffle(cname="lz4"))
    except ImportError:  # pragma: no cover
        pass
    return d


BASE = ["-k", "3", "--algorithm", "minibatch", "--batch", "16", "--steps", "8"]


@pytest.mark.parametrize("argv, words", [
    (["{d}/scan.h5:/five"], ["scan.h5:/five", "4D-STEM", "(2, 2, 2, 4, 4)"]),
    (["{d}/scan.h5:/data", "--detector-mask", "{d}/scan.h5:/mask8"], ["--detector-mask", "(8, 8)", "(16, 16)"]),
    (["{d}/scan.h5:/odd", "--bin", "4"], ["--bin 4", "(14, 14)"]),
    (["{d}/scan.h5:/points", "--detector-mask", "{d}/scan.h5:/mask16"], ["--detector-mask", "(N, d) points"]),
    (["{d}/scan.h5:/data", "--detector-mask", "{d}/scan.h5:/nope"], ["--detector-mask", "nope"]),
], ids=["5d", "mask-shape", "bin-divides", "mask-on-points", "mask-missing"])
def test_bad_4d_input_is_one_line(data, tmp_path, argv, words):
    out = tmp_path / "out.h5"
    proc = run_cli(["cluster", *[a.format(d=data) for a in argv], *BASE, "-o", str(out)])
    assert_clean_error(proc, *words)
    assert not out.exists() and not leftover_temporaries(tmp_path)


@pytest.mark.parametrize("mode", ["--stream", "--load"])
def test_compressed_scan_needs_no_import_by_the_caller(data, tmp_path, mode):
    pytest.importorskip("hdf5plugin")
    out = tmp_path / "out.h5"
    proc = run_cli(["--quiet", "cluster", f"{data}/lz4.h5:/data", *BASE, "-o", str(out), mode])
    assert proc.returncode == 0, proc.stderr
    with h5py.File(out, "r") as f:
        assert f["cluster/label_map"].shape == (8, 8) and np.isfinite(f["cluster/patterns"][()]).all()


def test_unstreamable_chunks_warn_and_finish(data, tmp_path):
    out = tmp_path / "out.h5"
    proc = run_cli(["cluster", f"{data}/scan.h5:/bad_chunks", *BASE, "-o", str(out), "--stream"])
    assert proc.returncode == 0, proc.stderr
    assert "cannot be streamed efficiently" in proc.stderr and "rechunk" in proc.stderr and "--load" in proc.stderr
    with h5py.File(out, "r") as f:
        assert np.isfinite(f["cluster/centroids"][()]).all()


@pytest.mark.parametrize("layout", ["chunked", "contiguous"])
def test_nan_in_a_mapped_file_names_the_scan_position(tmp_path, layout):
    # an uncompressed file is checked in place through its memory map (in file order, which for a
    # chunked file is not row order): the error still names the first bad row and its position
    from fastem.cluster import DataSource, SBEKMeans
    from fastem.cluster.synthetic import stem4d_phases
    from fastem.errors import InputError

    X, _, _ = stem4d_phases(8, 8, 16, 16, 3, noise=0.3, seed=1)
    X[5, 6, 3, 4] = np.nan         # row 46
    X[6, 1, 0, 0] = np.inf         # row 49 (same 2-line chunk band, later in row order)
    path = tmp_path / f"{layout}.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=X, chunks=(2, 8, 16, 16) if layout == "chunked" else None)
    with h5py.File(path, "r") as f:
        src = DataSource(f["data"])
        assert src.mapped() is not None
        with pytest.raises(InputError, match=r"row 46 \(scan position y=5, x=6\) contains NaN or Inf"):
            src.check_finite()
    with pytest.raises(InputError, match="row 46"):
        SBEKMeans(3, batch_size=16, n_steps=4, algorithm="minibatch").fit(f"{path}:/data")
    r = run_cli(["cluster", f"{path}:/data", "-o", str(tmp_path / "out.h5"), *BASE])
    assert_clean_error(r, "row 46", "y=5, x=6")
    assert not (tmp_path / "out.h5").exists() and not leftover_temporaries(tmp_path)


def test_finite_mapped_check_returns_the_largest_magnitude(tmp_path, rng):
    from fastem.cluster import DataSource

    X = rng.standard_normal((37, 5, 6)).astype(np.float32)
    X[11, 2, 3] = -7.5
    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=X, chunks=(4, 5, 6))
    with h5py.File(path, "r") as f:
        src = DataSource(f["data"])
        assert src.mapped() is not None and src.check_finite() == pytest.approx(7.5)
        src._mapped = None                                 # the window reads agree
        assert src.check_finite() == pytest.approx(7.5)
