"""FILE:/dataset references, checked reads, atomic output and provenance."""

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from fastem.errors import DatasetNotFoundError, InputError, OutputExistsError
from fastem.io import (atomic_output, format_ref, parse_ref, provenance, read_dataset, read_provenance,
                       write_provenance)


@pytest.fixture
def h5file(tmp_path, rng):
    path = tmp_path / "in.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("/entry/data", data=rng.standard_normal((3, 4, 5)))
        f.create_dataset("/entry/other", data=rng.standard_normal(7))
        f.create_dataset("/top", data=np.arange(6.0).reshape(2, 3))
        f["/entry/link"] = h5py.SoftLink("/entry/data")
        f["/entry/broken"] = h5py.SoftLink("/nowhere")
        f.create_dataset("/emdlike/data", data=np.ones((2, 2)))
        f.create_dataset("/plain/a", data=np.ones(2))
    return path


def test_parse_ref_forms():
    assert parse_ref("a/b/file.h5:/entry/data") == (Path("a/b/file.h5"), "/entry/data")
    assert parse_ref("file.h5") == (Path("file.h5"), None)
    assert parse_ref(Path("x/y.cxi")) == (Path("x/y.cxi"), None)
    # the last ':/' splits, so colons earlier in the name are kept
    assert parse_ref("run:3/file.h5:/d") == (Path("run:3/file.h5"), "/d")
    assert parse_ref("file.h5:/a/b/") == (Path("file.h5"), "/a/b")
    assert format_ref("f.h5", "/d") == "f.h5:/d"
    assert parse_ref(format_ref("dir/f.h5", "/x/y")) == (Path("dir/f.h5"), "/x/y")


def test_read_dataset_by_ref_and_argument(h5file):
    with h5py.File(h5file, "r") as f:
        expected = f["/entry/data"][()]
    np.testing.assert_array_equal(read_dataset(f"{h5file}:/entry/data"), expected)
    np.testing.assert_array_equal(read_dataset(h5file, "/entry/data"), expected)
    np.testing.assert_array_equal(read_dataset(f"{h5file}:/entry/link"), expected)  # soft link followed
    np.testing.assert_array_equal(read_dataset(f"{h5file}:/emdlike"), np.ones((2, 2)))  # group with 'data'
    out = read_dataset(f"{h5file}:/top", dtype=np.float32, ndim=(2, 3))
    assert out.dtype == np.float32 and out.shape == (2, 3)


def test_read_dataset_missing_file(tmp_path):
    with pytest.raises(DatasetNotFoundError) as exc:
        read_dataset(f"{tmp_path}/nope.h5:/data")
    msg = str(exc.value)
    assert "nope.h5" in msg and "no such file" in msg and "\n" not in msg


def test_read_dataset_missing_dataset_lists_alternatives(h5file):
    with pytest.raises(DatasetNotFoundError) as exc:
        read_dataset(f"{h5file}:/entry/missing")
    msg = str(exc.value)
    assert str(h5file) in msg and "/entry/missing" in msg
    assert "data" in msg and "other" in msg and "in '/entry'" in msg and "\n" not in msg
    with pytest.raises(DatasetNotFoundError, match=r"no dataset '/nope/deeper' \(in '/': emdlike/, entry/, plain/, top\)"):
        read_dataset(f"{h5file}:/nope/deeper")
    with pytest.raises(DatasetNotFoundError, match="dangling soft link to '/nowhere'"):
        read_dataset(f"{h5file}:/entry/broken")


def test_read_dataset_wrong_rank_and_group(h5file):
    with pytest.raises(InputError, match=r"/entry/other: expected a 2D or 3D array, got shape \(7,\)"):
        read_dataset(f"{h5file}:/entry/other", ndim=(2, 3))
    with pytest.raises(InputError, match="is a group, not a dataset"):
        read_dataset(f"{h5file}:/plain")
    with pytest.raises(InputError, match="datasets, name one"):
        read_dataset(h5file)  # several datasets and none named


def test_read_dataset_not_hdf5(tmp_path):
    p = tmp_path / "x.h5"
    p.write_text("hello")
    with pytest.raises(InputError, match="not an HDF5 file"):
        read_dataset(p)


def test_atomic_output_success_and_refusals(tmp_path):
    out = tmp_path / "sub" / "out.txt"
    with atomic_output(out) as tmp:
        assert tmp.parent == out.parent and tmp != out
        tmp.write_text("first")
        assert not out.exists()  # nothing visible before the rename
    assert out.read_text() == "first"
    with pytest.raises(OutputExistsError, match="out.txt: output exists"):
        with atomic_output(out) as tmp:
            tmp.write_text("second")
    assert out.read_text() == "first"
    with atomic_output(out, overwrite=True) as tmp:
        tmp.write_text("second")
    assert out.read_text() == "second"
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.txt"]  # no temporary files left


def test_atomic_output_failure_leaves_existing_output(tmp_path):
    out = tmp_path / "out.h5"
    out.write_bytes(b"precious")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_output(out, overwrite=True) as tmp:
            with h5py.File(tmp, "w") as f:
                f["x"] = np.arange(3)
            raise RuntimeError("boom")
    assert out.read_bytes() == b"precious"
    assert [p.name for p in tmp_path.iterdir()] == ["out.h5"]


def test_atomic_output_refuses_to_write_into_an_input(tmp_path, h5file):
    before = h5file.read_bytes()
    for spec in (h5file, f"{h5file}:/entry/data", str(tmp_path / "." / "in.h5")):
        with pytest.raises(InputError, match="would overwrite the input"):
            with atomic_output(h5file, overwrite=True, inputs=[spec]):
                pass
    link = tmp_path / "alias.h5"
    os.symlink(h5file, link)
    with pytest.raises(InputError, match="would overwrite the input"):
        with atomic_output(link, overwrite=True, inputs=[h5file]):
            pass
    assert h5file.read_bytes() == before


def test_provenance_fields_round_trip(tmp_path):
    prov = provenance(command="fastem phase in.cxi -o out.cxi", config={"iterations": np.int64(100),
                      "sigma": np.float32(0.5), "path": Path("x.h5"), "grid": np.arange(3)}, device="cpu")
    assert prov["program"] == "fastem" and prov["command"] == "fastem phase in.cxi -o out.cxi"
    assert prov["date"].endswith("Z") and prov["date"][4] == "-" and "T" in prov["date"]
    assert prov["device"] == "cpu" and prov["version"]
    json.dumps(prov)  # JSON-serialisable as promised
    assert prov["configuration"] == {"iterations": 100, "sigma": 0.5, "path": "x.h5", "grid": [0, 1, 2]}
    default = provenance()
    assert default["command"] and default["device"].startswith(("cpu", "cuda"))
    with h5py.File(tmp_path / "p.h5", "w") as f:
        write_provenance(f.create_group("process"), prov)
    with h5py.File(tmp_path / "p.h5", "r") as f:
        back = read_provenance(f["process"])
        assert f["process/configuration"].attrs["format"] == "json"
    assert back == prov
