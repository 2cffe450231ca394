"""Round trips and one-line errors for CXI, Data Exchange, EMD, MRC/.tlt, TIFF and read_images."""

import h5py
import numpy as np
import pytest

from fastem.errors import DatasetNotFoundError, InputError, OutputExistsError
from fastem.io import (CXI_DATA, MASK_SHADOWED, DataWarning, mask_from_known, provenance, read_cxi,
                       read_cxi_reconstruction, read_dxchange, read_dxchange_volume, read_emd, read_images,
                       read_mrc, read_tiff, read_tilt_series, read_tlt, write_cxi, write_cxi_reconstruction,
                       write_dxchange, write_dxchange_volume, write_emd, write_mrc, write_tiff, write_tlt)


# ------------------------------------------------------------------------------------------ CXI
def test_cxi_round_trip(tmp_path, rng):
    intensities = rng.poisson(50.0, (16, 18)).astype(np.float64) + rng.random((16, 18))
    known = rng.random((16, 18)) > 0.1
    path = write_cxi(tmp_path / "d.cxi", intensities, mask=mask_from_known(known, MASK_SHADOWED),
                     energy=1.6e-15, distance=2.5, pixel_size=(5e-5, 6e-5))
    with h5py.File(path, "r") as f:
        assert int(f["cxi_version"][()]) == 160
        link = f["/entry_1/data_1"].get("data", getlink=True)
        assert isinstance(link, h5py.SoftLink) and link.path == "/entry_1/instrument_1/detector_1/data"
        assert f["/entry_1/process_1/program"][()] == b"fastem"
    d = read_cxi(path)
    np.testing.assert_array_equal(d.intensities, intensities)
    assert d.intensities.dtype == np.float64
    np.testing.assert_array_equal(d.known, known)
    np.testing.assert_array_equal(d.mask[~known], MASK_SHADOWED)
    assert (d.energy, d.distance, d.x_pixel_size, d.y_pixel_size) == (1.6e-15, 2.5, 5e-5, 6e-5)
    np.testing.assert_allclose(d.magnitudes, np.sqrt(intensities))


def test_cxi_reads_foreign_layout_and_marks_nonfinite_unknown(tmp_path, rng):
    data = rng.random((2, 6, 7)) * 100  # 3D, no mask, data only under detector_1, no link
    data[1, 2, 3] = np.nan
    path = tmp_path / "foreign.cxi"
    with h5py.File(path, "w") as f:
        f["/entry_1/instrument_1/detector_1/data"] = data
    with pytest.warns(DataWarning, match=r"1 non-finite value.*pattern 1: 1.*set to 0"):
        d = read_cxi(path)
    assert d.mask is None and d.intensities[1, 2, 3] == 0 and not d.known[1, 2, 3]
    assert d.known.sum() == data.size - 1 and d.energy is None


def test_cxi_errors(tmp_path, rng):
    with pytest.raises(DatasetNotFoundError, match="nope.cxi: no such file"):
        read_cxi(tmp_path / "nope.cxi")
    path = tmp_path / "empty.cxi"
    with h5py.File(path, "w") as f:
        f["cxi_version"] = 160
        f["/entry_1/sample_1/name"] = "x"
    with pytest.raises(DatasetNotFoundError, match=r"no diffraction data at '/entry_1/data_1/data'.*sample_1/"):
        read_cxi(path)
    with h5py.File(path, "a") as f:
        f["/entry_1/data_1/data"] = np.ones(5)
    with pytest.raises(InputError, match=r"empty.cxi:/entry_1/data_1/data: expected a 2D or 3D array"):
        read_cxi(path)
    with pytest.raises(InputError, match="mask is boolean"):
        write_cxi(tmp_path / "m.cxi", np.ones((4, 4)), mask=np.ones((4, 4), bool))
    assert not (tmp_path / "m.cxi").exists()
    other = tmp_path / "other.cxi"
    with h5py.File(other, "w") as f:  # mask beside the data, not under detector_1
        f["/entry_1/data_1/data"] = np.ones((4, 5))
        f["/entry_1/data_1/mask"] = np.zeros((5, 4), np.uint32)
    with pytest.raises(InputError, match=r"other.cxi:/entry_1/data_1/mask has shape \(5, 4\) but the data"):
        read_cxi(other)
    with h5py.File(other, "a") as f:
        del f["/entry_1/data_1/mask"]
        f["/entry_1/data_1/mask"] = np.eye(4, 5, dtype=np.uint32) * 8
    assert read_cxi(other).known.sum() == 20 - 4


def test_cxi_reconstruction_round_trip(tmp_path, rng):
    image = rng.random((12, 12))
    support = image > 0.5
    hist = rng.random(50)
    prov = provenance(command="fastem phase d.cxi -o r.cxi", config={"algorithm": "gps-f", "iterations": 50})
    results = {"r_factor_history": hist, "r_factors": [0.1, 0.2, 0.3], "best_run": 2, "r_real": 0.012,
               "per_stage": {"stage_1": np.arange(3.0)}}
    path = write_cxi_reconstruction(tmp_path / "r.cxi", image, support=support, provenance=prov, results=results,
                                    intensities=rng.random((12, 12)), mask=np.zeros((12, 12), np.uint32),
                                    inputs=[tmp_path / "d.cxi"])
    rec = read_cxi_reconstruction(path)
    np.testing.assert_array_equal(rec.image, image)
    np.testing.assert_array_equal(rec.support, support)
    assert rec.provenance == prov
    np.testing.assert_array_equal(rec.results["r_factor_history"], hist)
    np.testing.assert_array_equal(rec.results["r_factors"], [0.1, 0.2, 0.3])
    assert rec.results["best_run"] == 2 and rec.results["r_real"] == 0.012
    np.testing.assert_array_equal(rec.results["per_stage"]["stage_1"], np.arange(3.0))
    assert rec.checkpoint is None
    assert read_cxi(path).intensities.shape == (12, 12)  # a complete CXI file
    with pytest.raises(OutputExistsError):
        write_cxi_reconstruction(path, image, provenance=prov)
    with pytest.raises(InputError, match="would overwrite the input"):
        write_cxi_reconstruction(path, image, provenance=prov, overwrite=True, inputs=[path])


# ------------------------------------------------------------------------------ Data Exchange
def test_dxchange_round_trip_theta_and_mask(tmp_path, rng):
    proj = rng.random((5, 6, 7)).astype(np.float32)
    theta = np.array([-60.0, -30.0, 0.0, 30.0, 60.0])
    mask = rng.random(proj.shape) > 0.2
    path = write_dxchange(tmp_path / "t.h5", proj, theta=theta, mask=mask)
    with h5py.File(path, "r") as f:
        assert f["implements"][()] == b"exchange:process"
        assert f["/exchange/data"].attrs["axes"] == "theta:y:x"
        assert f["/exchange/mask"].dtype == np.uint8
        assert f["/process/fastem/version"][()]
    ts = read_dxchange(path)
    np.testing.assert_array_equal(ts.projections, proj)
    assert ts.projections.dtype == np.float32
    np.testing.assert_array_equal(ts.theta, theta)
    np.testing.assert_array_equal(ts.angles, np.stack([np.zeros(5), theta, np.zeros(5)], 1))
    np.testing.assert_array_equal(ts.mask, mask)


def test_dxchange_euler_angles_flat_dark_and_log(tmp_path, rng):
    n, rows, cols = 4, 5, 6
    obj = rng.random((n, rows, cols)) * 0.5 + 0.2
    white = 100.0 + rng.random((3, rows, cols)) * 10
    dark = 5.0 + rng.random((2, rows, cols))
    data = obj * (white.mean(0) - dark.mean(0)) + dark.mean(0)
    euler = rng.uniform(-80, 80, (n, 3))
    path = write_dxchange(tmp_path / "e.h5", data, angles=euler, white=white, dark=dark)
    ts = read_dxchange(path)
    np.testing.assert_allclose(ts.projections, obj, rtol=1e-5)
    np.testing.assert_array_equal(ts.angles, euler)
    assert ts.theta is None and ts.mask is None
    raw = read_dxchange(path, flat_dark=False)
    np.testing.assert_allclose(raw.projections, data, rtol=1e-6)
    logged = read_dxchange(path, log=True)
    np.testing.assert_allclose(logged.projections, -np.log(obj), rtol=1e-4, atol=1e-5)


def test_dxchange_radians_attribute_honoured(tmp_path, rng):
    path = tmp_path / "rad.h5"
    theta = np.array([-45.0, 0.0, 45.0])
    with h5py.File(path, "w") as f:
        f["/exchange/data"] = rng.random((3, 4, 4))
        f["/exchange/theta"] = np.deg2rad(theta)
        f["/exchange/theta"].attrs["units"] = "radians"
    np.testing.assert_allclose(read_dxchange(path).theta, theta)


def test_dxchange_errors(tmp_path, rng):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        f["/exchange/data"] = rng.random((4, 3, 3))
        f["/exchange/theta"] = np.arange(3.0) * 20
    with pytest.raises(InputError, match=r"^\S+bad.h5: 4 projections in /exchange/data but 3 angles in \S+/exchange/theta$"):
        read_dxchange(path)
    with h5py.File(path, "a") as f:
        del f["/exchange/theta"]
        f["/exchange/theta"] = np.zeros(0)
    with pytest.raises(InputError, match="/exchange/theta: empty angle set"):
        read_dxchange(path)
    with h5py.File(path, "a") as f:
        del f["/exchange/theta"]
    with pytest.raises(DatasetNotFoundError, match=r"no angles: neither '/exchange/theta' nor '/exchange/angles' \(in '/exchange': data\)"):
        read_dxchange(path)
    with h5py.File(path, "a") as f:
        f["/exchange/theta"] = np.arange(4.0) * 10
        f["/exchange/data"][1, 0, 0] = np.nan
        f["/exchange/data"][3, 1, 1] = np.inf
        f["/exchange/data"][3, 2, 2] = np.nan
    with pytest.raises(InputError, match=r"3 non-finite values .* in 2 of 4 projections \(projection 1: 1, projection 3: 2\)"):
        read_dxchange(path)
    with pytest.warns(DataWarning, match="set to 0"):
        ts = read_dxchange(path, nonfinite="zero")
    assert ts.mask.sum() == 4 * 9 - 3 and not ts.mask[3, 1, 1] and ts.projections[3, 1, 1] == 0
    with pytest.raises(DatasetNotFoundError, match=r"no projections at '/exchange/data' \(in '/': x\)"):
        with h5py.File(tmp_path / "x.h5", "w") as f:
            f["x"] = 1
        read_dxchange(tmp_path / "x.h5")


def test_dxchange_nan_in_blocked_pixels_is_accepted(tmp_path, rng):
    proj = rng.random((3, 6, 7)).astype(np.float32) + 0.5
    mask = np.ones(proj.shape, bool)
    mask[1, :2, :3] = False
    path = write_dxchange(tmp_path / "m.h5", proj, theta=[-10.0, 0.0, 10.0], mask=mask)
    with h5py.File(path, "r+") as f:  # corrupt the blocked region with NaN/Inf after writing
        d = f["/exchange/data"][()]
        d[1, :2, :3] = np.nan
        d[1, 0, 0] = np.inf
        f["/exchange/data"][...] = d
    ts = read_dxchange(path)
    np.testing.assert_array_equal(ts.mask, mask)
    assert np.isfinite(ts.projections).all()
    np.testing.assert_array_equal(ts.projections[mask], proj[mask])
    with h5py.File(path, "r+") as f:  # a NaN in a measured pixel is still an error naming it
        d = f["/exchange/data"][()]
        d[2, 4, 4] = np.nan
        f["/exchange/data"][...] = d
    with pytest.raises(InputError, match="1 non-finite"):
        read_dxchange(path)
    ts = read_dxchange(path, nonfinite="zero")
    assert not ts.mask[2, 4, 4] and ts.projections[2, 4, 4] == 0


def test_dxchange_volume_round_trip(tmp_path, rng):
    vol = rng.random((6, 7, 8))
    prov = provenance(command="fastem tomo t.h5 -o v.h5", config={"algorithm": "resire"})
    path = write_dxchange_volume(tmp_path / "v.h5", vol, provenance=prov, results={"r_factor_history": [0.5, 0.3]})
    with h5py.File(path, "r") as f:
        assert f["/exchange/data"].dtype == np.float32 and f["/exchange/data"].attrs["axes"] == "z:y:x"
        assert f["implements"][()] == b"exchange:process"
    back = read_dxchange_volume(path)
    np.testing.assert_allclose(back.volume, vol.astype(np.float32))
    assert back.provenance == prov
    np.testing.assert_array_equal(back.results["r_factor_history"], [0.5, 0.3])


# ----------------------------------------------------------------------------------------- EMD
def test_emd_v02_round_trip(tmp_path, rng):
    img = rng.random((5, 6)).astype(np.float32)
    stack = rng.integers(0, 100, (3, 5, 6)).astype(np.uint16)
    dims = {"image": [(np.arange(5) * 0.1, "y", "nm"), (np.arange(6) * 0.1, "x", "nm")]}
    path = write_emd(tmp_path / "i.emd", {"image": img, "stack": stack}, dims)
    with h5py.File(path, "r") as f:
        assert f.attrs["version_major"] == 0 and f.attrs["version_minor"] == 2
        assert f["/data/image"].attrs["emd_group_type"] == 1
    e = read_emd(path, "image")
    np.testing.assert_array_equal(e.data, img)
    assert e.version == "0.2" and e.name == "image" and e.group == "/data/image"
    assert [(d.name, d.units) for d in e.dims] == [("y", "nm"), ("x", "nm")]
    np.testing.assert_allclose(e.dims[1].values, np.arange(6) * 0.1)
    s = read_emd(path, "/data/stack")
    np.testing.assert_array_equal(s.data, stack)
    assert [d.name for d in s.dims] == ["z", "y", "x"]
    with pytest.raises(InputError, match=r"2 EMD arrays, name one \(/data/image, /data/stack\)"):
        read_emd(path)
    with pytest.raises(DatasetNotFoundError, match="no EMD array 'nope'"):
        read_emd(path, "nope")


def test_emd_v1_read(tmp_path, rng):
    cube = rng.random((2, 3, 4, 5))
    path = tmp_path / "p4d.emd"
    with h5py.File(path, "w") as f:  # the layout py4DSTEM / emdfile write
        f.attrs["emd_group_type"] = "file"
        f.attrs["version_major"] = 1
        f.attrs["version_minor"] = 0
        root = f.create_group("experiment")
        root.attrs["emd_group_type"] = "root"
        arr = root.create_group("datacube")
        arr.attrs["emd_group_type"] = "array"
        arr["data"] = cube
        for i, (name, units) in enumerate([("Rx", "pixels"), ("Ry", "pixels"), ("Qx", "A^-1"), ("Qy", "A^-1")]):
            arr[f"dim{i + 1}"] = np.arange(cube.shape[i]) * 0.5
            arr[f"dim{i + 1}"].attrs["name"] = name
            arr[f"dim{i + 1}"].attrs["units"] = units
    e = read_emd(path)
    np.testing.assert_array_equal(e.data, cube)
    assert e.version == "1.0" and e.group == "/experiment/datacube"
    assert [d.name for d in e.dims] == ["Rx", "Ry", "Qx", "Qy"] and e.dims[2].units == "A^-1"


# ------------------------------------------------------------------------------ MRC, .tlt, TIFF
def test_mrc_round_trip_and_voxel_size(tmp_path, rng):
    vol = rng.random((4, 5, 6))
    path = write_mrc(tmp_path / "v.mrc", vol, voxel_size=(1.5, 2.0, 2.5))
    back, voxel = read_mrc(path)
    assert back.dtype == np.float32 and back.shape == (4, 5, 6)
    np.testing.assert_allclose(back, vol.astype(np.float32))
    np.testing.assert_allclose(voxel, (1.5, 2.0, 2.5))
    ints = rng.integers(-100, 100, (5, 6)).astype(np.int16)
    back2, _ = read_mrc(write_mrc(tmp_path / "i.mrc", ints))
    np.testing.assert_array_equal(back2, ints)
    assert back2.dtype == np.int16
    with pytest.raises(OutputExistsError):
        write_mrc(path, vol)
    bad = tmp_path / "bad.mrc"
    bad.write_bytes(b"not an mrc file at all")
    with pytest.raises(InputError, match="bad.mrc: not an MRC file"):
        read_mrc(bad)


def test_tlt_round_trip_and_errors(tmp_path):
    angles = np.array([-60.0, -1.25, 0.0, 33.3333, 60.0])
    path = write_tlt(tmp_path / "a.tlt", angles)
    np.testing.assert_allclose(read_tlt(path), angles, atol=1e-4)
    (tmp_path / "bad.tlt").write_text("10\n\n20\nabc\n")
    with pytest.raises(InputError, match=r"bad.tlt: line 4: 'abc' is not an angle in degrees"):
        read_tlt(tmp_path / "bad.tlt")
    (tmp_path / "empty.tlt").write_text("\n\n")
    with pytest.raises(InputError, match="empty angle set"):
        read_tlt(tmp_path / "empty.tlt")


def test_tilt_series_from_mrc_and_dxchange_agree(tmp_path, rng):
    proj = rng.random((4, 5, 6)).astype(np.float32)
    theta = np.array([-30.0, -10.0, 10.0, 30.0])
    write_mrc(tmp_path / "s.mrc", proj, stack=True)
    write_tlt(tmp_path / "s.tlt", theta)
    write_dxchange(tmp_path / "s.h5", proj, theta=theta)
    a = read_tilt_series(tmp_path / "s.mrc")
    b = read_tilt_series(tmp_path / "s.h5")
    np.testing.assert_array_equal(a.projections, b.projections)
    np.testing.assert_allclose(a.angles, b.angles)
    np.testing.assert_allclose(a.theta, theta)
    write_tlt(tmp_path / "three.tlt", theta[:3])
    with pytest.raises(InputError, match=r"4 projections in the stack but 3 angles in \S*three.tlt"):
        read_tilt_series(tmp_path / "s.mrc", tlt=tmp_path / "three.tlt")
    write_mrc(tmp_path / "lonely.mrc", proj, stack=True)
    with pytest.raises(DatasetNotFoundError, match="neither lonely.tlt nor lonely.rawtlt"):
        read_tilt_series(tmp_path / "lonely.mrc")


def test_tiff_round_trip(tmp_path, rng):
    stack = rng.random((3, 8, 9)).astype(np.float32)
    path = write_tiff(tmp_path / "s.tif", stack)
    np.testing.assert_array_equal(read_tiff(path), stack)
    img = rng.integers(0, 60000, (8, 9)).astype(np.uint16)
    np.testing.assert_array_equal(read_tiff(write_tiff(tmp_path / "i.tiff", img)), img)


# ---------------------------------------------------------------------------------- read_images
def test_read_images_every_container(tmp_path, rng):
    stack = rng.random((3, 8, 9)).astype(np.float32)
    write_tiff(tmp_path / "s.tif", stack)
    write_mrc(tmp_path / "s.mrc", stack, stack=True)
    write_emd(tmp_path / "s.emd", {"haadf": stack})
    write_cxi(tmp_path / "s.cxi", stack)
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        f["/images/stack"] = stack
        f["/images/other"] = np.ones(4)
    for spec in ("s.tif", "s.mrc", "s.emd", "s.emd:/data/haadf", "s.cxi", f"s.cxi:{CXI_DATA}", "plain.h5:/images/stack"):
        np.testing.assert_array_equal(read_images(f"{tmp_path}/{spec}"), stack, err_msg=spec)
    assert read_images(tmp_path / "s.tif", dtype=np.float64).dtype == np.float64
    with pytest.raises(InputError, match="2 datasets, name one"):
        read_images(tmp_path / "plain.h5")
    with pytest.raises(InputError, match=r"plain.h5:/images/other: expected a 2D or 3D array, got shape \(4,\)"):
        read_images(f"{tmp_path}/plain.h5:/images/other")
    (tmp_path / "x.png").write_bytes(b"\x89PNG")
    with pytest.raises(InputError, match="x.png: unknown image format"):
        read_images(tmp_path / "x.png")
    with pytest.raises(DatasetNotFoundError, match="missing.tif: no such file"):
        read_images(tmp_path / "missing.tif")
