"""Fault cases of issue 16 (formats), each reproducing what a user met before the fix."""

from __future__ import annotations

import warnings

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from fastem import io
from fastem.cli.main import app
from fastem.io import DataWarning


def run(*args, quiet=True):
    return CliRunner().invoke(app, ["--device", "cpu", *(["--quiet"] if quiet else []), *map(str, args)],
                              catch_exceptions=False)


def test_hyperspy_emd_stack_goes_into_scan_simulate(tmp_path, rng):
    """Was: 'images of 96x5 pixels are too small' (the stored, reversed axes taken as NumPy's)."""
    hs = pytest.importorskip("hyperspy.api")
    s = hs.signals.Signal2D((rng.random((5, 40, 48)) + 0.1).astype(np.float32))
    s.metadata.General.title = "haadf"
    s.save(tmp_path / "hs.emd")
    r = run("scan", "simulate", tmp_path / "hs.emd", "-o", tmp_path / "s.h5", "--coverage", "0.2")
    assert r.exit_code == 0, r.output
    with h5py.File(tmp_path / "s.h5", "r") as f:
        assert f["/scan/partial"].shape == (5, 40, 48)


def test_dash_o_emd_writes_emd_that_hyperspy_opens(tmp_path, rng):
    """Was: plain HDF5 under the .emd name, refused by HyperSpy ('not a supported EMD file')."""
    hs = pytest.importorskip("hyperspy.api")
    io.write_tiff(tmp_path / "in.tif", (rng.random((2, 32, 40)) + 0.1).astype(np.float32))
    r = run("scan", "simulate", tmp_path / "in.tif", "-o", tmp_path / "s.emd", "--coverage", "0.2")
    assert r.exit_code == 0, r.output
    with h5py.File(tmp_path / "s.emd", "r") as f:
        assert f.attrs["version_major"] == 0 and f.attrs["version_minor"] == 2
    signals = {sig.metadata.General.title: sig for sig in hs.load(tmp_path / "s.emd")}
    assert signals["partial"].data.shape == (2, 32, 40)


def test_mrc_without_voxel_size_is_not_zero_and_reads_as_unknown(tmp_path, rng):
    """Was: voxel size 0 in the header (HyperSpy axes of scale 0)."""
    io.write_mrc(tmp_path / "v.mrc", rng.random((3, 4, 5)))
    import mrcfile

    with mrcfile.open(tmp_path / "v.mrc") as m:
        assert float(m.voxel_size.x) > 0 and float(m.voxel_size.z) > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")           # our own "unknown" file: no warning at all
        assert io.read_mrc(tmp_path / "v.mrc")[1] is None
    r = run("info", tmp_path / "v.mrc")
    assert r.exit_code == 0 and "voxel size unknown" in r.output
    hs = pytest.importorskip("hyperspy.api")
    assert all(ax.scale > 0 for ax in hs.load(tmp_path / "v.mrc").axes_manager._axes)


@pytest.mark.parametrize("sampling", [0, 4])
def test_mrc_zero_cell_one_warning_no_numpy_warnings(tmp_path, rng, sampling):
    """Was: voxel size inf with divide-by-zero RuntimeWarnings (a zero cell, as MRCZ writes)."""
    import mrcfile

    with mrcfile.new(tmp_path / "z.mrc") as m:
        m.set_data(rng.random((3, 4, 5)).astype(np.float32))
        m.header.cella.x = m.header.cella.y = m.header.cella.z = 0.0
        m.header.mx = m.header.my = m.header.mz = sampling
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data, voxel = io.read_mrc(tmp_path / "z.mrc")
    assert voxel is None and data.shape == (3, 4, 5)
    assert [w.category for w in caught] == [DataWarning]
    assert "unknown voxel size" in str(caught[0].message)


def test_tiff_output_with_shape_in_configuration_stays_readable(tmp_path, rng):
    """Was: a configuration holding a "shape" key made tifffile parse the provenance as its own
    shaped description and fail reading the file (KeyError 'shape')."""
    stack = rng.random((2, 6, 7)).astype(np.float32)
    prov = io.provenance(config={"shape": [6, 7], "images": 2})
    io.write_tiff(tmp_path / "s.tif", stack, provenance=prov)
    np.testing.assert_array_equal(io.read_tiff(tmp_path / "s.tif"), stack)


def test_emdfile_dims_not_shifted(tmp_path, rng):
    """Was: dims [y, x, dim3] for an emdfile (dim0-based) array and 2-entry dim vectors."""
    with h5py.File(tmp_path / "e.h5", "w") as f:
        f.attrs["emd_group_type"], f.attrs["version_major"], f.attrs["version_minor"] = "file", 1, 0
        g = f.create_group("root/arr")
        g.attrs["emd_group_type"] = "array"
        g["data"] = rng.random((3, 4, 5))
        for i, (name, step) in enumerate([("n", 1.0), ("y", 0.5), ("x", 0.25)]):
            g[f"dim{i}"] = np.array([0.0, step])
            g[f"dim{i}"].attrs["name"], g[f"dim{i}"].attrs["units"] = name, "nm"
    e = io.read_emd(tmp_path / "e.h5")
    assert [d.name for d in e.dims] == ["n", "y", "x"]
    assert [d.values.size for d in e.dims] == [3, 4, 5]
    np.testing.assert_allclose(e.dims[2].values, np.arange(5) * 0.25)


def test_quiet_demo_prints_no_summary_table(tmp_path, monkeypatch):
    """Was: `fastem -q demo` printed its progress lines and summary table although --quiet
    promises no summaries. Failures still print their one error line."""
    import types

    from fastem import demo

    def job(order, fail=False):
        mod = types.ModuleType(f"fake{order}")
        mod.ORDER = order

        def run_job(out_dir, *, overwrite=True, quick=False):
            if fail:
                raise RuntimeError("boom")
            (out_dir / f"job{order}.txt").write_text("x")
            return [{"output": f"job{order}.txt", "result": "fine result"}]

        mod.run = run_job
        return mod

    monkeypatch.setattr(demo, "discover_jobs", lambda: [("a", job(1))])
    r = CliRunner().invoke(app, ["-q", "demo", "--out", str(tmp_path / "d")])
    assert r.exit_code == 0 and r.output == "" and (tmp_path / "d" / "job1.txt").exists()
    r = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "d2")])
    assert r.exit_code == 0 and "fine result" in r.output                 # without -q: the table
    monkeypatch.setattr(demo, "discover_jobs", lambda: [("a", job(1)), ("b", job(2, fail=True))])
    r = CliRunner().invoke(app, ["-q", "demo", "--out", str(tmp_path / "d3")])
    assert r.exit_code == 1 and "fine result" not in r.output
    assert "demo job(s) failed: b (RuntimeError: boom)" in r.output


def test_quiet_bench_prints_nothing(tmp_path):
    r = CliRunner().invoke(app, ["-q", "bench", "fft", "--quick", "--out-dir", str(tmp_path)])
    assert r.exit_code == 0 and r.output == "" and len(list(tmp_path.glob("fft-*.json"))) == 1


def test_converted_output_leaves_nothing_behind_on_failure_and_refuses_overwrite(tmp_path, rng):
    proj = (rng.random((4, 6, 8)) + 0.1).astype(np.float32)
    io.write_mrc(tmp_path / "t.mrc", proj, stack=True)          # no .tlt beside it: the job fails
    r = run("tomo", tmp_path / "t.mrc", "-o", tmp_path / "v.emd", "--iterations", "1")
    assert r.exit_code == 1 and "t.tlt" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.mrc"]   # no v.emd, no staging file
    (tmp_path / "v.emd").write_text("keep me")
    io.write_tlt(tmp_path / "t.tlt", np.linspace(-30, 30, 4))
    r = run("tomo", tmp_path / "t.mrc", "-o", tmp_path / "v.emd", "--iterations", "1")
    assert r.exit_code == 1 and "exists" in r.output and (tmp_path / "v.emd").read_text() == "keep me"


@pytest.mark.parametrize("call, name", [
    (lambda: io.read_image_data(5), "spec"),
    (lambda: io.read_calibration(None), "spec"),
    (lambda: __import__("fastem.io.outputs", fromlist=["x"]).output_format("a.h5", "bmp"), "--format"),
    (lambda: __import__("fastem.io.outputs", fromlist=["x"]).export_hdf5("a.h5", "b.emd", "emd", "nope"), "layout"),
    (lambda: __import__("fastem.io.show", fromlist=["x"]).show("a.h5", "b.png", max_images=0), "max_images"),
    (lambda: io.write_tiff("never.tif", np.ones((3, 3)), calibration=((0.0, "nm"), (1.0, "nm"))), "calibration"),
])
def test_format_api_arguments_named(call, name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from fastem.errors import InputError

    with pytest.raises(InputError, match=name):
        call()


def test_format_modules_import_no_optional_package():
    """RosettaSciIO, HyperSpy, matplotlib stay optional imports: loading fastem.io and the format
    modules imports none of them (they load when a file needs them)."""
    import subprocess
    import sys

    code = ("import sys, fastem, fastem.io, fastem.io.outputs, fastem.io.show, fastem.io.inputs; "
            "print(','.join(m for m in ('rsciio', 'hyperspy', 'matplotlib', 'emdfile', 'mrcz') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_hspy_output_without_rosettasciio_refused_before_the_run(tmp_path, rng, monkeypatch):
    io.write_tiff(tmp_path / "in.tif", (rng.random((2, 16, 16)) + 0.1).astype(np.float32))
    monkeypatch.setitem(__import__("sys").modules, "rsciio.hspy", None)
    r = run("scan", "simulate", tmp_path / "in.tif", "-o", tmp_path / "s.hspy")
    assert r.exit_code == 2 and "pip install 'fastem[formats]'" in r.output and ".tmp" not in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


@pytest.mark.parametrize("ext", ["mrc", "emd", "hspy", "cxi"])
def test_complex_phase_result_keeps_its_imaginary_part_in_every_output_format(tmp_path, ext):
    """Was (issue 15, complex objects): ``fastem phase --complex -o out.mrc`` stored the real part
    only (complex128 became float32, mode 2) with exit 0; now complex64 (mode 4)."""
    from fastem.data import cdi_intensities, complex_particle, embed_centred, save_cdi

    obj = embed_centred(complex_particle(12, seed=3), (24, 24))
    save_cdi(tmp_path / "in.cxi", cdi_intensities(obj, r_noise=0.02, beamstop_radius=0, seed=0))
    out = tmp_path / f"out.{ext}"
    r = run("phase", tmp_path / "in.cxi", "-o", out, "--complex", "--algorithm", "hio", "--iterations", 20)
    assert r.exit_code == 0, r.output
    if ext == "mrc":
        import mrcfile

        with mrcfile.open(out) as m:
            data = np.array(m.data)
    elif ext == "cxi":
        data = io.read_cxi_reconstruction(out).image
    elif ext == "hspy":
        with h5py.File(out, "r") as f:
            data = f["Experiments/__unnamed__/data"][()] if "Experiments/__unnamed__/data" in f else \
                next(f[k][()] for k in _datasets(f) if f[k].ndim == 2 and f[k].dtype.kind == "c")
    else:
        with h5py.File(out, "r") as f:
            data = f["data/object/data"][()]
    assert data.dtype.kind == "c" and data.shape == (24, 24) and np.abs(data.imag).max() > 0


def _datasets(f):
    names = []
    f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    return names
