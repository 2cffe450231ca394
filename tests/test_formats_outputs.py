"""Outputs chosen by extension or --format (fastem.io.outputs, cli/formats.py): every format a
command writes opens in HyperSpy / fastem with the right shape; mismatches are usage errors."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from fastem import io
from fastem.cli.main import app
from fastem.errors import InputError
from fastem.io.outputs import output_format


def run(*args):
    return CliRunner().invoke(app, ["--device", "cpu", "--quiet", *map(str, args)], catch_exceptions=False)


def test_output_format_from_extension_and_flag():
    assert output_format("a.h5") == "hdf5" and output_format("a.emd") == "emd"
    assert output_format("a.MRC") == "mrc" and output_format("a.tiff") == "tiff"
    try:
        import rsciio.hspy  # noqa: F401
    except ImportError:   # without the formats extra: refused before any work
        with pytest.raises(InputError, match=r"-o a.hspy: writing .hspy needs RosettaSciIO"):
            output_format("a.hspy")
    else:
        assert output_format("a.hspy") == "hspy"
    assert output_format("a.out") == "hdf5"                      # unknown extension: today's HDF5
    assert output_format("a.out", "emd") == "emd"                # the flag decides for an unknown extension
    assert output_format("a.emd", "emd") == "emd"
    with pytest.raises(InputError, match=r"-o a.emd: the extension .emd is emd, but --format hdf5 was asked"):
        output_format("a.emd", "hdf5")
    with pytest.raises(InputError, match=r"-o a.mrc: fastem cluster does not write mrc"):
        output_format("a.mrc", allowed=("hdf5", "emd"), command="fastem cluster")
    with pytest.raises(InputError, match=r"--format bmp: unknown format"):
        output_format("a.h5", "bmp")


@pytest.fixture
def images(tmp_path, rng):
    """A calibrated (0.25 nm) stack of 3 images 40x48 as a HyperSpy-style EMD file."""
    stack = (rng.random((3, 40, 48)) + 0.1).astype(np.float32)
    dims = [(np.arange(3.0), "frame", ""), (np.arange(40) * 0.25, "y", "nm"), (np.arange(48) * 0.25, "x", "nm")]
    return io.write_emd(tmp_path / "in.emd", {"haadf": stack}, {"haadf": dims}), stack


@pytest.mark.parametrize("suffix", [".emd", ".mrc", ".tif", ".hspy"])
def test_scan_simulate_writes_the_format_of_the_extension(images, tmp_path, suffix):
    src, stack = images
    if suffix == ".hspy":
        pytest.importorskip("rsciio")
    out = tmp_path / f"scans{suffix}"
    r = run("scan", "simulate", src, "-o", out, "--coverage", "0.2")
    assert r.exit_code == 0, r.output
    assert out.exists() and not list(tmp_path.glob(".scans*"))   # staging file removed
    if suffix == ".emd":
        e = io.read_emd(out, "partial")
        assert e.data.shape == (3, 40, 48) and e.dims[2].units == "nm" and e.dims[2].scale == pytest.approx(0.25)
        assert io.read_emd(out, "path").data.shape == (3, 40, 48)
        with h5py.File(out, "r") as f:
            c = f["/comments"].attrs
            assert c["program"] == "fastem" and '"coverage": 0.2' in c["configuration"]
    elif suffix == ".mrc":
        data, voxel = io.read_mrc(out)
        assert data.shape == (3, 40, 48)
        assert voxel is not None and voxel[1:] == pytest.approx((2.5, 2.5))   # 0.25 nm = 2.5 A
    elif suffix == ".tif":
        assert io.read_tiff(out).shape == (3, 40, 48)
    else:
        hs = pytest.importorskip("hyperspy.api")
        s = hs.load(out)
        assert s.data.shape == (3, 40, 48) and s.axes_manager.signal_dimension == 2
        assert s.axes_manager["x"].scale == pytest.approx(0.25) and s.axes_manager["x"].units == "nm"
        assert s.original_metadata.fastem.program == "fastem"


def test_mismatched_extension_is_a_usage_error_naming_the_flag(images, tmp_path):
    src, _ = images
    r = run("scan", "simulate", src, "-o", tmp_path / "scans.emd", "--format", "hdf5")
    assert r.exit_code == 2 and "--format" in r.output and "the extension .emd is emd" in r.output
    assert not (tmp_path / "scans.emd").exists()
    r = run("phase", tmp_path / "in.cxi", "-o", tmp_path / "o.tif")
    assert r.exit_code == 2 and "for -o:" in r.output and "o.tif: fastem phase does not write tiff" in r.output
    r = run("tomo", src, "-o", tmp_path / "v.h5", "--format", "mrc")
    assert r.exit_code == 2 and "--format" in r.output and "the extension .h5 is hdf5" in r.output


def test_scan_complete_to_emd_and_tomo_to_mrc_with_voxel_size(images, tmp_path, rng):
    src, _ = images
    assert run("scan", "simulate", src, "-o", tmp_path / "s.h5", "--coverage", "0.2").exit_code == 0
    r = run("scan", "complete", tmp_path / "s.h5", "-o", tmp_path / "c.emd")
    assert r.exit_code == 0, r.output
    assert io.read_emd(tmp_path / "c.emd", "completed").data.shape == (3, 40, 48)
    # tomo: MRC stack + .tlt with a real voxel size -> MRC volume with that voxel size
    proj = (rng.random((5, 8, 10)) + 0.1).astype(np.float32)
    io.write_mrc(tmp_path / "t.mrc", proj, voxel_size=3.0, stack=True)
    io.write_tlt(tmp_path / "t.tlt", np.linspace(-40, 40, 5))
    r = run("tomo", tmp_path / "t.mrc", "-o", tmp_path / "v.mrc", "--iterations", "2", "--projector", "linear")
    assert r.exit_code == 0, r.output
    vol, voxel = io.read_mrc(tmp_path / "v.mrc")
    assert vol.ndim == 3 and vol.shape[1:] == (8, 10)
    assert voxel == pytest.approx((3.0, 3.0, 3.0))
    r = run("tomo", tmp_path / "t.mrc", "-o", tmp_path / "v.emd", "--checkpoint-every", "1", "--iterations", "2")
    assert r.exit_code == 2 and "--checkpoint-every" in r.output and "needs an HDF5 output" in r.output


def test_cluster_reads_image_files_and_writes_centroid_images(images, tmp_path):
    src, stack = images
    r = run("cluster", src, "-k", "2", "-o", tmp_path / "c.emd", "--algorithm", "lloyd", "--max-iter", "5")
    assert r.exit_code == 0, r.output
    cent = io.read_emd(tmp_path / "c.emd", "centroids")
    assert cent.data.shape == (2, 40, 48)               # centroids as images, not (K, h*w)
    assert io.read_emd(tmp_path / "c.emd", "labels").data.shape == (3,)
    io.write_tiff(tmp_path / "s.tif", stack)
    r = run("cluster", tmp_path / "s.tif", "-k", "2", "-o", tmp_path / "c.tif", "--algorithm", "lloyd",
            "--max-iter", "5")
    assert r.exit_code == 0, r.output
    assert io.read_tiff(tmp_path / "c.tif").shape == (2, 40, 48)
    r = run("cluster", src, "-k", "2", "-o", tmp_path / "c.h5", "--format", "emd")
    assert r.exit_code == 2 and "the extension .h5 is hdf5" in r.output
