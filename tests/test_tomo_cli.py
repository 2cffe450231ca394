"""``fastem tomo``: Data Exchange and MRC + .tlt in, Data Exchange volume + provenance out, resume."""

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from fastem import io
from fastem.cli.main import app
from fastem.data import save_tilt_series
from fastem.tomo import ProjectionGeometry
from fastem.tomo import _reference as ref


def run(*args):
    return CliRunner().invoke(app, ["--device", "cpu", "--quiet", *map(str, args)], catch_exceptions=False)


@pytest.fixture
def series(rng, tmp_path):
    shape = (12, 10, 12)
    angles = np.linspace(-60, 60, 9)
    z, y, x = np.meshgrid(*(np.arange(s) - s // 2 for s in shape), indexing="ij")
    truth = np.exp(-((x - 1) ** 2 + y ** 2 + (z + 1) ** 2) / 8.0) + 0.5 * np.exp(-((x + 3) ** 2 + (y - 2) ** 2 + z ** 2) / 3.0)
    geo = ProjectionGeometry(shape, shape[1:], angles)
    data = (ref.forward_project_linear(truth, geo) + 0.01 * rng.standard_normal(geo.projections_shape)).astype(np.float32)
    path = tmp_path / "series.h5"
    save_tilt_series(path, data, angles, mrc_path=tmp_path / "series.mrc")
    return path, data, angles


def test_resire_on_data_exchange(series, tmp_path):
    path, data, angles = series
    out = tmp_path / "vol.h5"
    r = run("tomo", path, "-o", out, "--iterations", 5, "--projector", "linear")
    assert r.exit_code == 0, r.output
    vol = io.read_dxchange_volume(out)
    assert vol.volume.shape == (12, 10, 12) and vol.volume.dtype == np.float32 and vol.volume.max() > 0
    with h5py.File(out) as f:
        assert f["/exchange/data"].attrs["axes"] == "z:y:x"
    assert vol.provenance["program"] == "fastem" and vol.provenance["command"] and vol.provenance["date"]
    assert vol.provenance["configuration"]["projector"] == "linear"
    assert len(vol.results["r_factor_history"]) == 5 and vol.checkpoint is None
    # refuses to overwrite, and never writes into the input
    r = CliRunner().invoke(app, ["--quiet", "tomo", str(path), "-o", str(out), "--iterations", "1"])
    assert r.exit_code == 1 and "exists" in r.output
    r = CliRunner().invoke(app, ["--quiet", "tomo", str(path), "-o", str(path), "--iterations", "1", "--overwrite"])
    assert r.exit_code == 1 and "input" in r.output


def test_checkpoint_and_resume_match_a_straight_run(series, tmp_path, monkeypatch):
    path, _, _ = series
    straight, crashed = tmp_path / "straight.h5", tmp_path / "crashed.h5"
    # plain RESIRE (the default --prior itv's automatic search is not checkpointed; its resume is
    # tested in test_tomo_cli_prior_scheduler.py and test_tomo_weights_cli.py)
    assert run("tomo", path, "-o", straight, "--iterations", 6, "--prior", "none").exit_code == 0
    assert io.read_dxchange_volume(straight).checkpoint is None  # a finished run drops its checkpoint

    from fastem.tomo.solver import IterativeReconstruction

    original = IterativeReconstruction.iterate

    def crash_after_four(self):
        if self.iteration == 4:
            raise RuntimeError("killed")
        return original(self)

    monkeypatch.setattr(IterativeReconstruction, "iterate", crash_after_four)
    with pytest.raises(RuntimeError, match="killed"):
        run("tomo", path, "-o", crashed, "--iterations", 6, "--checkpoint-every", 2, "--prior", "none")
    monkeypatch.setattr(IterativeReconstruction, "iterate", original)
    left = io.read_dxchange_volume(crashed)
    assert left.checkpoint["iteration"] == 4 and len(left.results["r_factor_history"]) == 4
    assert run("tomo", path, "-o", crashed, "--iterations", 6, "--resume", "--prior", "none").exit_code == 0
    a, b = io.read_dxchange_volume(straight), io.read_dxchange_volume(crashed)
    np.testing.assert_array_equal(a.volume, b.volume)
    np.testing.assert_array_equal(a.results["r_factor_history"], b.results["r_factor_history"])
    assert b.checkpoint is None


def test_mrc_with_tlt_and_algorithms(series, tmp_path):
    _, _, _ = series
    mrc = tmp_path / "series.mrc"
    assert (tmp_path / "series.tlt").exists()
    for algorithm in ("sirt", "fbp", "resire"):
        out = tmp_path / f"{algorithm}.h5"
        r = run("tomo", mrc, "-o", out, "--algorithm", algorithm, "--iterations", 3, "--thickness", 6)
        assert r.exit_code == 0, r.output
        vol = io.read_dxchange_volume(out).volume
        assert vol.shape[0] == 6 and vol.shape[2] > 12  # a slab wider than the detector


def test_mask_and_multi_axis_from_data_exchange(rng, tmp_path):
    shape = (10, 10, 10)
    angles = np.zeros((8, 3))
    angles[:4, 1] = np.linspace(-45, 45, 4)
    angles[4:, 2] = np.linspace(-45, 45, 4)
    geo = ProjectionGeometry(shape, shape[1:], angles)
    data = ref.forward_project_linear(rng.random(shape), geo).astype(np.float32)
    mask = rng.random(data.shape) > 0.2
    data[~mask] = 1e6  # unmeasured pixels may hold anything (finite: fastem.io refuses NaN anywhere)
    path = tmp_path / "dual.h5"
    save_tilt_series(path, data, angles, mask=mask)
    out = tmp_path / "out.h5"
    r = run("tomo", path, "-o", out, "--iterations", 3, "--projector", "fst", "--oversampling", 3, "--prior", "none")
    assert r.exit_code == 0, r.output
    result = io.read_dxchange_volume(out)
    assert 0 < result.volume.max() < 5  # the 1e6 in blocked pixels never reached the volume
    cfg = result.provenance["configuration"]
    assert cfg["mask"] is True and cfg["oversampling"] == [3.0, 3.0, 3.0]
    assert cfg["step_normalisation"] == "voxel"  # auto: blocked pixels and positivity
    # --step-normalisation global: the thesis' scalar step, recorded; resume refuses a changed choice
    glob = tmp_path / "glob.h5"
    r = run("tomo", path, "-o", glob, "--iterations", 3, "--projector", "linear", "--step-normalisation", "global",
            "--checkpoint-every", 1)
    assert r.exit_code == 0, r.output
    assert io.read_dxchange_volume(glob).provenance["configuration"]["step_normalisation"] == "global"
    r = CliRunner().invoke(app, ["--quiet", "tomo", str(path), "-o", str(glob), "--iterations", "5", "--projector",
                                 "linear", "--resume"])
    assert r.exit_code == 1 and "--step-normalisation" in r.output, r.output
    r = CliRunner().invoke(app, ["--quiet", "tomo", str(path), "-o", str(tmp_path / "x.h5"),
                                 "--step-normalisation", "pixel"])
    assert r.exit_code == 2 and "--step-normalisation" in r.output
    r = CliRunner().invoke(app, ["--quiet", "tomo", str(path), "-o", str(tmp_path / "f.h5"), "--algorithm", "fbp"])
    assert r.exit_code == 1 and "single tilt axis" in r.output


def test_bad_inputs_give_one_line_errors(rng, tmp_path):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        f["/exchange/data"] = rng.random((3, 8, 8)).astype(np.float32)
        f["/exchange/theta"] = np.array([0.0, 10.0])
    r = CliRunner().invoke(app, ["--quiet", "tomo", str(path), "-o", str(tmp_path / "o.h5")])
    assert r.exit_code == 1
    assert r.output.count("\n") == 1 and "3 projections" in r.output and "2 angles" in r.output
    nan = rng.random((2, 8, 8)).astype(np.float32)
    nan[1, 3, 3] = np.nan
    with h5py.File(path, "w") as f:
        f["/exchange/data"] = nan
        f["/exchange/theta"] = np.array([0.0, 10.0])
    r = CliRunner().invoke(app, ["--quiet", "tomo", str(path), "-o", str(tmp_path / "o.h5")])
    assert r.exit_code == 1 and "non-finite" in r.output
    r = CliRunner().invoke(app, ["--quiet", "tomo", str(tmp_path / "missing.h5"), "-o", str(tmp_path / "o.h5")])
    assert r.exit_code == 1
    r = CliRunner().invoke(app, ["--quiet", "tomo", str(path), "-o", str(tmp_path / "o.h5"), "--resume"])
    assert r.exit_code == 1 and "does not exist" in r.output
