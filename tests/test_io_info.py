"""``fastem info`` / ``fastem.io.describe`` on every format, and its one-line errors."""

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from fastem.cli.main import app
from fastem.errors import DatasetNotFoundError, InputError
from fastem.io import (describe, detect_format, provenance, write_cxi, write_cxi_reconstruction, write_dxchange,
                       write_emd, write_mrc, write_tiff, write_tlt)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    rng = np.random.default_rng(5)
    d = tmp_path_factory.mktemp("info")
    out = {
        "cxi": write_cxi(d / "d.cxi", rng.random((8, 8)), mask=np.zeros((8, 8), np.uint32), energy=1e-15),
        "recon": write_cxi_reconstruction(d / "r.cxi", rng.random((8, 8)), provenance=provenance(),
                                          results={"r_factor_history": rng.random(30)}),
        "dx": write_dxchange(d / "t.h5", rng.random((3, 4, 5)).astype(np.float32), theta=[-10.0, 0.0, 10.0]),
        "emd": write_emd(d / "i.emd", {"image": rng.random((4, 6))}),
        "mrc": write_mrc(d / "v.mrc", rng.random((4, 5, 6)), voxel_size=2.0),
        "tif": write_tiff(d / "s.tif", rng.random((2, 4, 5)).astype(np.float32)),
        "tlt": write_tlt(d / "a.tlt", [-10.0, 0.0, 10.0]),
    }
    with h5py.File(d / "p.h5", "w") as f:
        f["/g/x"] = np.arange(10)
        f["/g"].attrs["note"] = "hello"
    out["h5"] = d / "p.h5"
    return out


def _run(*args):
    return CliRunner().invoke(app, ["info", *map(str, args)])


def test_info_cxi_tree_shows_link_shapes_attributes(files):
    res = _run(files["cxi"])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "CXI (cxi_version 160)" in out
    assert "data -> /entry_1/instrument_1/detector_1/data  (soft link; (8, 8) float64)" in out
    assert "mask  (8, 8) uint32" in out and "energy  = 1e-15  (float64)  {units='J'}" in out
    assert "program  = 'fastem'" in out and "configuration  = <JSON" in out


def test_info_every_format(files):
    expectations = {
        "recon": ["CXI", "image_1/", "process_1/", "r_factor_history  (30,) float64"],
        "dx": ["Data Exchange", "data  (3, 4, 5) float32  {axes='theta:y:x'}", "theta  (3,) float64  {units='degrees'}",
               "implements  = 'exchange:process'"],
        "emd": ["EMD v0.2", "image/  {emd_group_type=1,", "dim2  (4,) float64  {name='y', units='px'}", "dim1  (6,) float64  {name='x', units='px'}"],
        "mrc": ["MRC volume", "shape      (4, 5, 6)", "mode       2 (float32)", "voxel size z 2, y 2, x 2"],
        "tif": ["TIFF", "pages      2", "shape      (2, 4, 5)", "dtype      float32"],
        "tlt": ["IMOD tilt angles", "3 angles from -10 to 10 degrees, step 10"],
        "h5": ["HDF5", "g/  {note='hello'}", "x  (10,) int64"],
    }
    for key, needles in expectations.items():
        res = _run(files[key])
        assert res.exit_code == 0, (key, res.output)
        for needle in needles:
            assert needle in res.output, (key, needle, res.output)


def test_info_subtree_and_several_files(files):
    res = _run(f"{files['dx']}:/exchange/theta", files["tlt"])
    assert res.exit_code == 0, res.output
    assert "/exchange/theta  (3,) float64" in res.output and "IMOD tilt angles" in res.output
    assert "implements" not in res.output


def test_info_bad_path_one_line_exit_1(files, tmp_path):
    res = _run(tmp_path / "missing.h5")
    assert res.exit_code == 1
    lines = [line for line in res.output.splitlines() if line]
    assert lines == [f"fastem: error: {tmp_path / 'missing.h5'}: no such file"]
    res = _run(f"{files['dx']}:/exchange/nope")
    assert res.exit_code == 1
    lines = [line for line in res.output.splitlines() if line]
    assert len(lines) == 1 and "no dataset '/exchange/nope'" in lines[0] and "theta" in lines[0]
    (tmp_path / "x.png").write_bytes(b"\x89PNG")
    res = _run(tmp_path / "x.png")
    assert res.exit_code == 1 and "unknown format" in res.output
    assert _run().exit_code == 2  # usage error: no file


def test_describe_and_detect_format_api(files, tmp_path):
    assert detect_format(files["emd"]) == "EMD v0.2"
    assert detect_format(files["mrc"]) == "MRC"
    assert describe(files["h5"]).splitlines()[0].endswith("p.h5: HDF5")
    with pytest.raises(DatasetNotFoundError):
        describe(tmp_path / "none.cxi")
    with pytest.raises(InputError, match="not an HDF5 file"):
        describe(f"{files['mrc']}:/data")
