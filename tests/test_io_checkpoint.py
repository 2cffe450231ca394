"""Checkpoint round trips (arrays, scalars, strings, dicts, RNG state) and atomic checkpoint files."""

import h5py
import numpy as np
import pytest

from fastem.errors import DatasetNotFoundError, InputError
from fastem.io import (CXI_CHECKPOINT, DX_CHECKPOINT, load_checkpoint_file, provenance, read_checkpoint,
                       read_cxi_reconstruction, read_dxchange_volume, save_checkpoint_file, write_checkpoint,
                       write_cxi_reconstruction, write_dxchange_volume)


def _state(rng):
    gen = np.random.default_rng(42)
    gen.standard_normal(17)  # advance: the state is not the seed's initial state
    return {
        "iteration": 123,
        "big": 2**80 + 7,
        "step": 0.9,
        "converged": False,
        "phase": 1.5 - 2.0j,
        "sigma32": np.float32(0.25),
        "count": np.int16(-3),
        "name": "gps-f",
        "nothing": None,
        "z": (rng.standard_normal((4, 5)) + 1j * rng.standard_normal((4, 5))).astype(np.complex64),
        "support": rng.random((4, 5)) > 0.5,
        "empty": np.zeros((0, 3)),
        "history": [0.5, 0.25, 0.125],
        "shape": (4, 5),
        "stage": {"index": 3, "alpha": np.arange(3.0), "inner": {"tag": "x"}},
        "rng": gen,
    }


def _assert_state_equal(a, b):
    assert set(a) == set(b)
    for key, va in a.items():
        vb = b[key]
        if isinstance(va, dict):
            _assert_state_equal(va, vb)
        elif isinstance(va, np.ndarray):
            assert isinstance(vb, np.ndarray) and vb.dtype == va.dtype and vb.shape == va.shape, key
            np.testing.assert_array_equal(vb, va)
        elif isinstance(va, np.random.Generator):
            assert vb.bit_generator.state == va.bit_generator.state
        else:
            assert type(vb) is type(va) and vb == va, key


def test_checkpoint_round_trip_in_group(tmp_path, rng):
    state = _state(rng)
    with h5py.File(tmp_path / "c.h5", "w") as f:
        write_checkpoint(f.create_group("ck"), state)
    with h5py.File(tmp_path / "c.h5", "r") as f:
        back = read_checkpoint(f["ck"])
    _assert_state_equal(state, back)


def test_restored_generator_continues_the_same_stream(tmp_path):
    gen = np.random.default_rng(7)
    gen.random(5)
    save_checkpoint_file(tmp_path / "out.h5", "/process/fastem/checkpoint", {"rng": gen})
    expected = gen.random(10)  # what the uninterrupted run draws next
    resumed = load_checkpoint_file(tmp_path / "out.h5", "/process/fastem/checkpoint")["rng"]
    np.testing.assert_array_equal(resumed.random(10), expected)
    mt = np.random.Generator(np.random.MT19937(3))
    mt.random(4)
    save_checkpoint_file(tmp_path / "mt.h5", "ck", {"rng": mt})
    np.testing.assert_array_equal(load_checkpoint_file(tmp_path / "mt.h5", "ck")["rng"].random(3), mt.random(3))


def test_save_checkpoint_file_keeps_the_rest_and_replaces_atomically(tmp_path, rng):
    prov = provenance(command="fastem tomo in.h5 -o out.h5", config={"iterations": 400})
    vol = rng.random((4, 4, 4))
    out = write_dxchange_volume(tmp_path / "out.h5", vol, provenance=prov, results={"r_factor_history": [0.3]},
                                checkpoint={"iteration": 10})
    assert read_dxchange_volume(out).checkpoint == {"iteration": 10}
    save_checkpoint_file(out, DX_CHECKPOINT, {"iteration": 20, "volume": vol})
    back = read_dxchange_volume(out)
    np.testing.assert_allclose(back.volume, vol.astype(np.float32))
    assert back.provenance == prov and back.checkpoint["iteration"] == 20
    before = out.read_bytes()
    with pytest.raises(InputError, match="unsupported type"):
        save_checkpoint_file(out, DX_CHECKPOINT, {"iteration": 30, "bad": object()})
    assert out.read_bytes() == before  # the failed save left the file as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5"]


def test_cxi_reconstruction_carries_checkpoint(tmp_path, rng):
    state = {"iteration": 200, "z": rng.standard_normal((6, 6)) + 0j, "rng": np.random.default_rng(1)}
    path = write_cxi_reconstruction(tmp_path / "r.cxi", rng.random((6, 6)), provenance=provenance(),
                                    results={"r_factor_history": rng.random(200)}, checkpoint=state)
    rec = read_cxi_reconstruction(path)
    _assert_state_equal(state, rec.checkpoint)
    _assert_state_equal(state, load_checkpoint_file(path, CXI_CHECKPOINT))
    assert "checkpoint" not in rec.results


def test_missing_checkpoint_is_a_one_line_error(tmp_path, rng):
    path = write_dxchange_volume(tmp_path / "v.h5", rng.random((3, 3, 3)), provenance=provenance())
    with pytest.raises(DatasetNotFoundError, match=r"no checkpoint at '/process/fastem/checkpoint'") as exc:
        load_checkpoint_file(path, DX_CHECKPOINT)
    assert "\n" not in str(exc.value)
    with pytest.raises(InputError, match="invalid key"):
        save_checkpoint_file(tmp_path / "x.h5", "ck", {"a/b": 1})


def test_file_digest_and_default_checkpoint(tmp_path):
    import hashlib

    from fastem.io import file_digest
    from fastem.io.checkpoint import default_checkpoint

    p = tmp_path / "m.pt"
    data = bytes(range(256)) * 5000   # > 1 MiB: more than one block
    p.write_bytes(data)
    assert file_digest(p) == hashlib.sha256(data).hexdigest()
    assert default_checkpoint(p) == tmp_path / "m.pt.ckpt"
