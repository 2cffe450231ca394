"""EMD round trips with HyperSpy / RosettaSciIO (v0.2) and emdfile (EMD 1.0), both directions.

HyperSpy, RosettaSciIO and emdfile are in the ``test`` extra; without them these tests skip.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from fastem.io import read_emd, read_images, write_emd
from fastem.io.emd import EMDDim

hs = pytest.importorskip("hyperspy.api")


def _axes(signal):
    """(name, units, scale, size) of every axis in NumPy order (HyperSpy lists them reversed)."""
    ordered = sorted(signal.axes_manager._axes, key=lambda a: a.index_in_array)
    return [(a.name, a.units, pytest.approx(a.scale), a.size) for a in ordered]


def test_fastem_emd_opens_in_hyperspy_with_shape_axes_and_provenance(tmp_path, rng):
    stack = rng.random((4, 20, 32)).astype(np.float32)
    image = rng.random((20, 32)).astype(np.float32)
    dims = [EMDDim(np.arange(4.0), "frame", ""), EMDDim(np.arange(20) * 0.5, "y", "nm"),
            EMDDim(10 + np.arange(32) * 0.25, "x", "nm")]
    prov = {"program": "fastem", "version": "9.9", "command": "fastem scan simulate in.h5 -o s.emd",
            "date": "2026-12-05T00:00:00Z", "device": "cpu", "configuration": {"coverage": 0.1}}
    path = write_emd(tmp_path / "s.emd", {"stack": stack, "image": image},
                     {"stack": dims, "image": dims[1:]}, provenance=prov)
    signals = {s.metadata.General.title: s for s in hs.load(path)}
    s = signals["stack"]
    assert s.data.shape == (4, 20, 32)
    np.testing.assert_array_equal(s.data, stack)
    assert _axes(s) == [("frame", None, 1.0, 4), ("y", "nm", 0.5, 20), ("x", "nm", 0.25, 32)] or \
        _axes(s) == [("frame", "", 1.0, 4), ("y", "nm", 0.5, 20), ("x", "nm", 0.25, 32)]
    assert s.axes_manager["x"].offset == pytest.approx(10.0)
    img = signals["image"]
    assert type(img).__name__ == "Signal2D" and img.data.shape == (20, 32)
    np.testing.assert_array_equal(img.data, image)
    comments = s.original_metadata.comments
    assert comments.program == "fastem" and comments.command == prov["command"]
    assert '"coverage": 0.1' in comments.configuration


def test_hyperspy_emd_opens_in_fastem(tmp_path, rng):
    data = rng.random((5, 12, 16)).astype(np.float32)
    s = hs.signals.Signal2D(data)
    s.metadata.General.title = "haadf"
    s.axes_manager[0].name = "frame"
    for ax, scale in ((s.axes_manager[1], 0.2), (s.axes_manager[2], 0.3)):
        ax.units, ax.scale = "nm", scale
    s.axes_manager[1].name, s.axes_manager[2].name = "x", "y"
    path = tmp_path / "hs.emd"
    s.save(path)
    with h5py.File(path, "r") as f:  # HyperSpy stores the axes reversed
        assert f["/signals/haadf/data"].shape == (16, 12, 5)
    e = read_emd(path)
    assert e.data.shape == (5, 12, 16) and e.name == "haadf"
    np.testing.assert_array_equal(e.data, data)
    assert [(d.name, d.units, d.values.size) for d in e.dims] == [("frame", "", 5), ("y", "nm", 12), ("x", "nm", 16)]
    assert e.dims[1].scale == pytest.approx(0.3) and e.dims[2].scale == pytest.approx(0.2)
    np.testing.assert_allclose(e.dims[2].values, np.arange(16) * 0.2)
    # every reader path gives the same NumPy order (the issue: "images of 96x5 pixels")
    np.testing.assert_array_equal(read_images(path), data)
    np.testing.assert_array_equal(read_images(f"{path}:/signals/haadf"), data)
    np.testing.assert_array_equal(read_images(f"{path}:/signals/haadf/data"), data)


def test_hyperspy_round_trip_of_fastem_file_back_into_fastem(tmp_path, rng):
    """fastem -> HyperSpy (load, save) -> fastem keeps data, names, units and scales."""
    data = rng.random((3, 8, 10)).astype(np.float32)
    dims = [(np.arange(3.0), "frame", ""), (np.arange(8) * 0.7, "y", "nm"), (np.arange(10) * 0.7, "x", "nm")]
    write_emd(tmp_path / "a.emd", {"img": data}, {"img": dims})
    hs.load(tmp_path / "a.emd").save(tmp_path / "b.emd")
    e = read_emd(tmp_path / "b.emd")
    np.testing.assert_array_equal(e.data, data)
    assert [d.name for d in e.dims] == ["frame", "y", "x"] and e.dims[2].units == "nm"
    assert e.dims[1].scale == pytest.approx(0.7)


def test_emdfile_emd1_dims_in_order_with_axis_length(tmp_path, rng):
    emdfile = pytest.importorskip("emdfile")
    data = rng.random((5, 6, 7))
    arr = emdfile.Array(data=data, name="stack", dims=[np.arange(5), np.arange(6) * 0.25, np.arange(7) * 0.5],
                        dim_units=["n", "nm", "nm"], dim_names=["frame", "y", "x"])
    root = emdfile.Root(name="root")
    root.tree(arr)
    emdfile.save(str(tmp_path / "e.h5"), root, mode="o")
    e = read_emd(tmp_path / "e.h5")
    assert e.version == "1.0"
    np.testing.assert_array_equal(e.data, data)
    assert [(d.name, d.units) for d in e.dims] == [("frame", "n"), ("y", "nm"), ("x", "nm")]
    assert [d.values.size for d in e.dims] == [5, 6, 7]
    np.testing.assert_allclose(e.dims[2].values, np.arange(7) * 0.5)
    np.testing.assert_array_equal(read_images(tmp_path / "e.h5"), data)


def test_legacy_fastem_emd_layout_still_read(tmp_path, rng):
    """Files of an earlier fastem (C order, dim1 = axis 0, /comments/fastem, no layout mark)."""
    data = rng.random((3, 4, 5))
    path = tmp_path / "old.emd"
    with h5py.File(path, "w") as f:
        f.attrs["version_major"], f.attrs["version_minor"] = 0, 2
        g = f.create_group("data/stack")
        g.attrs["emd_group_type"] = 1
        g["data"] = data
        for i, name in enumerate("zyx"):
            g[f"dim{i + 1}"] = np.arange(data.shape[i], dtype=float)
            g[f"dim{i + 1}"].attrs["name"] = name
        f.create_group("comments/fastem")
    e = read_emd(path)
    np.testing.assert_array_equal(e.data, data)
    assert [d.name for d in e.dims] == ["z", "y", "x"]
    np.testing.assert_array_equal(read_images(path), data)


def test_fastem_writes_emd1_that_emdfile_reads(tmp_path, rng):
    """The other direction of the EMD 1.0 round trip: fastem.io.write_emd1 -> emdfile."""
    emdfile = pytest.importorskip("emdfile")
    from fastem.io.emd import write_emd1

    data = rng.random((5, 6, 7))
    dims = [(np.arange(5), "frame", "n"), (np.arange(6) * 0.25, "y", "nm"), (np.arange(7) * 0.5, "x", "nm")]
    write_emd1(tmp_path / "f.emd", {"stack": data}, {"stack": dims})
    arr = emdfile.read(str(tmp_path / "f.emd"))
    np.testing.assert_array_equal(arr.data, data)
    assert list(arr.dim_names) == ["frame", "y", "x"] and list(arr.dim_units) == ["n", "nm", "nm"]
    np.testing.assert_allclose(arr.dims[1][:2], [0.0, 0.25])
    e = read_emd(tmp_path / "f.emd")                     # and fastem reads its own EMD 1.0 back
    assert e.version == "1.0" and [d.values.size for d in e.dims] == [5, 6, 7]
    from fastem.errors import OutputExistsError

    with pytest.raises(OutputExistsError):               # never overwrites without overwrite=True
        write_emd1(tmp_path / "f.emd", {"stack": data})
