"""``fastem tomo`` geometry flags: --center COL|auto, --angles-convention, --noise-level."""

import numpy as np
import pytest
from click.testing import CliRunner

from fastem import io
from fastem.cli.main import app
from fastem.data import save_tilt_series, tilt_series, vesicle_3d

TILTS = np.arange(-60.0, 61.0, 6.0)
OFFSET = 3.5


def run(*args, quiet=True):
    pre = ["--device", "cpu"] + (["--quiet"] if quiet else [])
    return CliRunner().invoke(app, [*pre, *map(str, args)], catch_exceptions=False)


@pytest.fixture(scope="module")
def truth():
    return vesicle_3d(16)


@pytest.fixture
def series(tmp_path, truth):
    # /exchange/theta in the thesis / ASTRA / TomoPy sign (fastem's simulator takes -theta), axis off-centre
    cols = 24
    data = tilt_series(truth, -TILTS, detector_shape=(16, cols), centring="middle", center=(cols - 1) / 2 + OFFSET,
                       noise_sigma=0.01, seed=2)
    path = tmp_path / "series.h5"
    save_tilt_series(path, data, TILTS)
    return path, data


def _error(out, truth):
    vol = io.read_dxchange_volume(out).volume
    nz, ny, nx = vol.shape
    # the volume is centred on the axis: the object sits in its middle 16^3
    z0, x0 = (nz - 16) // 2, (nx - 16) // 2
    crop = vol[z0:z0 + 16, :, x0:x0 + 16]
    return float(np.linalg.norm(crop - truth) / np.linalg.norm(truth))


def test_center_auto_prints_the_estimate_and_records_it(series, tmp_path, truth):
    path, _ = series
    out = tmp_path / "auto.h5"
    r = run("tomo", path, "-o", out, "--iterations", 20, "--projector", "linear", "--center", "auto",
            "--thickness", 24, quiet=False)
    assert r.exit_code == 0, r.output
    line = next(s for s in r.output.splitlines() if s.startswith("center: column"))
    assert abs(float(line.split()[2]) - (11.5 + OFFSET)) < 0.1 and "quality" in line and "com" in line
    cfg = io.read_dxchange_volume(out).provenance["configuration"]
    assert cfg["center"] == pytest.approx(11.5 + OFFSET, abs=0.05)
    assert cfg["center_estimate"]["method"] == "com" and cfg["angles_convention"] == "thesis"
    # the estimate reconstructs much better than the default (the detector middle)
    out2 = tmp_path / "middle.h5"
    assert run("tomo", path, "-o", out2, "--iterations", 20, "--projector", "linear", "--thickness", 24).exit_code == 0
    assert io.read_dxchange_volume(out2).provenance["configuration"]["center"] == 11.5
    assert _error(out, truth) < 0.7 * _error(out2, truth)


def test_angles_convention_thesis_is_astra_sign(series, tmp_path, truth):
    path, _ = series
    errs = {}
    for conv in ("thesis", "fastem"):
        out = tmp_path / f"{conv}.h5"
        r = run("tomo", path, "-o", out, "--iterations", 20, "--projector", "linear", "--center", 11.5 + OFFSET,
                "--angles-convention", conv, "--thickness", 24)
        assert r.exit_code == 0, r.output
        errs[conv] = _error(out, truth)
    assert errs["thesis"] < 0.7 * errs["fastem"]


def test_noise_level_stops_early(series, tmp_path):
    path, data = series
    out = tmp_path / "stop.h5"
    sigma = 0.01 * float(np.abs(data).max())  # what the simulator added
    r = run("tomo", path, "-o", out, "--iterations", 300, "--projector", "linear", "--center", 11.5 + OFFSET,
            "--noise-level", sigma, "--thickness", 24)
    assert r.exit_code == 0, r.output
    saved = io.read_dxchange_volume(out)
    assert saved.provenance["configuration"]["stopped"] == "discrepancy"
    assert 3 < saved.results["iterations"] < 300
    assert saved.provenance["configuration"]["noise_level"] == pytest.approx(sigma)


@pytest.mark.parametrize("args, flag", [(["--center", "middle"], "--center"), (["--center", "nan"], "--center"),
                                        (["--noise-level", "-1"], "--noise-level"),
                                        (["--angles-convention", "astra"], "--angles-convention")])
def test_bad_geometry_flags_are_named(series, tmp_path, args, flag):
    path, _ = series
    r = CliRunner().invoke(app, ["--quiet", "tomo", str(path), "-o", str(tmp_path / "x.h5"), *args])
    assert r.exit_code == 2 and flag in r.output
    assert not (tmp_path / "x.h5").exists()


def test_center_auto_refuses_multi_axis(tmp_path, truth):
    euler = np.stack([np.zeros_like(TILTS), TILTS, np.full_like(TILTS, 10.0)], axis=1)
    data = tilt_series(truth, euler, centring="middle")
    path = tmp_path / "multi.h5"
    save_tilt_series(path, data, euler)
    r = CliRunner().invoke(app, ["--quiet", "tomo", str(path), "-o", str(tmp_path / "m.h5"), "--center", "auto"])
    assert r.exit_code == 1 and "--center auto" in r.output and "single tilt axis" in r.output
    assert len(r.output.strip().splitlines()) == 1
