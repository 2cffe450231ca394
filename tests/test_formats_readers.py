"""Readers through RosettaSciIO (DM3/DM4, Velox EMD, MRCZ, HSPY, TIFF calibration) in the one input
function (fastem.io.read_image_data / read_images), calibration into outputs, tilt angles from
metadata into `fastem tomo`, `fastem info`, and the one-line error without the extra.

DM3/DM4 and Velox files come from tests/synthetic_formats.py (RosettaSciIO has no writer for
them and ships no fixtures); the others from HyperSpy / RosettaSciIO's own writers.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from click.testing import CliRunner

from fastem import io
from fastem.cli.main import app
from fastem.errors import InputError

pytest.importorskip("rsciio")
from synthetic_formats import write_dm, write_ser, write_velox  # noqa: E402


def run(*args):
    return CliRunner().invoke(app, ["--device", "cpu", "--quiet", *map(str, args)], catch_exceptions=False)


@pytest.mark.parametrize("version", [3, 4])
def test_dm_stack_with_calibration_and_tilt_angles(tmp_path, rng, version):
    data = (rng.random((5, 12, 16)) + 0.1).astype(np.float32)
    path = tmp_path / f"series.dm{version}"
    write_dm(path, data, scales=[15.0, 0.5, 0.25], units=["deg", "nm", "nm"], origins=[4.0, 0.0, 0.0],
             version=version)
    img = io.read_image_data(path)
    np.testing.assert_array_equal(img.data, data)
    assert img.reader == "rosettasciio:digitalmicrograph"
    assert img.calibration() == {"y": (0.5, "nm", 0.0), "x": (0.25, "nm", 0.0)}
    np.testing.assert_allclose(img.tilt_angles, -60.0 + 15.0 * np.arange(5))   # origin 4 px -> offset -60 deg
    np.testing.assert_array_equal(io.read_images(path), data)


def test_velox_emd_images_with_calibration(tmp_path, rng):
    frames = (rng.random((3, 10, 14)) * 100).astype(np.float32)
    write_velox(tmp_path / "velox.emd", frames, pixel_size_m=2.5e-10)
    img = io.read_image_data(tmp_path / "velox.emd")
    np.testing.assert_array_equal(img.data, frames)
    scale, units, _ = img.calibration()["x"]
    from fastem.io.outputs import to_angstrom

    assert to_angstrom(scale, units) == pytest.approx(2.5)
    np.testing.assert_array_equal(io.read_images(tmp_path / "velox.emd"), frames)


def test_ser_image_series_with_calibration_and_tilt_angles(tmp_path, rng):
    frames = rng.random((4, 6, 9)).astype(np.float32)
    write_ser(tmp_path / "t.ser", frames, pixel_size_m=3e-10, series_units="deg", series_step=20.0,
              series_offset=-30.0)
    img = io.read_image_data(tmp_path / "t.ser")
    np.testing.assert_array_equal(img.data, frames)
    assert img.reader == "rosettasciio:tia"
    assert img.calibration()["x"][:2] == (pytest.approx(0.3), "nm")
    np.testing.assert_allclose(img.tilt_angles, [-30.0, -10.0, 10.0, 30.0])
    np.testing.assert_array_equal(io.read_images(tmp_path / "t.ser"), frames)


def test_hspy_and_mrcz_written_by_hyperspy(tmp_path, rng):
    hs = pytest.importorskip("hyperspy.api")
    data = rng.random((3, 6, 8)).astype(np.float32)
    s = hs.signals.Signal2D(data)
    for ax in s.axes_manager.signal_axes:
        ax.scale, ax.units = 0.3, "nm"
    s.save(tmp_path / "a.hspy")
    img = io.read_image_data(tmp_path / "a.hspy")
    np.testing.assert_array_equal(img.data, data)
    assert img.calibration()["x"][:2] == (pytest.approx(0.3), "nm")
    pytest.importorskip("mrcz")
    s.save(tmp_path / "a.mrcz")
    img = io.read_image_data(tmp_path / "a.mrcz")
    np.testing.assert_allclose(img.data, data)
    assert img.calibration()["x"][1] == "nm" and img.calibration()["x"][0] == pytest.approx(0.3)


def test_tiff_calibration_both_ways_with_hyperspy(tmp_path, rng):
    hs = pytest.importorskip("hyperspy.api")
    img = rng.random((6, 8)).astype(np.float32)
    io.write_tiff(tmp_path / "f.tif", img, calibration=((0.3, "nm"), (0.2, "nm")))
    s = hs.load(tmp_path / "f.tif")
    assert [ax.scale for ax in s.axes_manager.signal_axes] == pytest.approx([0.2, 0.3])   # HyperSpy: x first
    s2 = hs.signals.Signal2D(img)
    for ax, scale in zip(s2.axes_manager.signal_axes, (0.4, 0.6)):
        ax.scale, ax.units = scale, "nm"
    s2.save(tmp_path / "h.tif")
    cal = io.read_image_data(tmp_path / "h.tif").calibration()
    assert cal["x"][:2] == (pytest.approx(0.4), "nm") and cal["y"][:2] == (pytest.approx(0.6), "nm")


def test_mrc_voxel_size_opens_in_hyperspy(tmp_path, rng):
    hs = pytest.importorskip("hyperspy.api")
    io.write_mrc(tmp_path / "v.mrc", rng.random((4, 5, 6)), voxel_size=(3.0, 2.0, 2.0))
    s = hs.load(tmp_path / "v.mrc")
    scales = {ax.name: ax.scale for ax in s.axes_manager._axes}
    assert scales["x"] == pytest.approx(0.2) and scales["y"] == pytest.approx(0.2)   # angstrom -> nm


def test_calibration_flows_into_scan_output_and_tilts_into_tomo(tmp_path, rng):
    data = (rng.random((5, 12, 16)) + 0.1).astype(np.float32)
    write_dm(tmp_path / "s.dm4", data, scales=[10.0, 0.4, 0.4], units=["deg", "nm", "nm"], origins=[2.0, 0, 0],
             version=4)
    r = run("scan", "simulate", tmp_path / "s.dm4", "-o", tmp_path / "scans.emd", "--coverage", "0.2")
    assert r.exit_code == 0, r.output
    e = io.read_emd(tmp_path / "scans.emd", "partial")
    assert e.dims[2].units == "nm" and e.dims[2].scale == pytest.approx(0.4)
    r = run("tomo", tmp_path / "s.dm4", "-o", tmp_path / "v.mrc", "--iterations", "2", "--projector", "linear")
    assert r.exit_code == 0, r.output
    vol, voxel = io.read_mrc(tmp_path / "v.mrc")
    assert vol.shape[1:] == (12, 16) and voxel[2] == pytest.approx(4.0)     # 0.4 nm
    r = run("tomo", tmp_path / "s.dm4", "-o", tmp_path / "v.emd", "--iterations", "1", "--projector", "linear")
    assert r.exit_code == 0, r.output
    dims = io.read_emd(tmp_path / "v.emd").dims
    assert [(d.name, d.units) for d in dims] == [("z", "nm"), ("y", "nm"), ("x", "nm")]
    assert [d.scale for d in dims] == pytest.approx([0.4, 0.4, 0.4])
    from fastem.tomo.job import read_series

    series = read_series(tmp_path / "s.dm4").series
    np.testing.assert_allclose(series.theta, [-20.0, -10.0, 0.0, 10.0, 20.0])   # from the DM tilt axis
    r = run("info", tmp_path / "s.dm4")
    assert r.exit_code == 0 and "DM4" in r.output and "0.4 nm" in r.output
    assert "tilt angles 5 from -20 to 20 degrees" in r.output


def test_without_rosettasciio_one_line_error_naming_the_extra(tmp_path, rng, monkeypatch):
    write_dm(tmp_path / "a.dm3", rng.random((4, 5)).astype(np.float32), [1, 1], ["nm", "nm"])
    monkeypatch.setitem(sys.modules, "rsciio.digitalmicrograph", None)   # import fails as if not installed
    with pytest.raises(InputError, match=r"a.dm3: reading .dm3 files needs RosettaSciIO: pip install "
                                         r"'fastem\[formats\]'"):
        io.read_images(tmp_path / "a.dm3")
    r = run("scan", "simulate", tmp_path / "a.dm3", "-o", tmp_path / "o.h5")
    assert r.exit_code == 1 and "pip install 'fastem[formats]'" in r.output and "Traceback" not in r.output


def test_phase_reads_a_pattern_from_image_formats(tmp_path, rng):
    """A 2D diffraction pattern saved by HyperSpy (.hspy, reversed-axes .emd) or DM goes into
    read_cxi (what fastem phase reads) in NumPy order."""
    hs = pytest.importorskip("hyperspy.api")
    pattern = (rng.random((24, 32)) * 1000).astype(np.float32)
    s = hs.signals.Signal2D(pattern)
    s.save(tmp_path / "p.hspy")
    s.save(tmp_path / "p.emd")
    write_dm(tmp_path / "p.dm4", pattern, [0.1, 0.1], ["1/nm", "1/nm"], version=4)
    for name in ("p.hspy", "p.emd", "p.dm4"):
        data = io.read_cxi(tmp_path / name)
        np.testing.assert_array_equal(data.intensities, pattern.astype(np.float64), err_msg=name)
        assert data.mask is None and data.known.all()
    # (the CLI run takes the HDF5-based .hspy: fastem.phase.job._read_truth opens the input with h5py)
    r = run("phase", tmp_path / "p.hspy", "-o", tmp_path / "rec.emd", "--iterations", "4")
    assert r.exit_code == 0, r.output
    assert io.read_emd(tmp_path / "rec.emd", "object").data.shape == (24, 32)
