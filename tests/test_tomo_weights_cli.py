"""fastem tomo --weights (issue 20): per-pixel weights of RESIRE's data term through the CLI.

Zero-weight pixels influence nothing (huge values there leave the volume bit for bit the same),
poisson weights from counts, clear errors naming --weights, and the weights file is an input
that is never overwritten.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from fastem.cli.main import app
from fastem.data import tilt_angles, tilt_series, vesicle_3d


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    vol = vesicle_3d(16, seed=4).astype(np.float32)
    ang = tilt_angles(-60, 60, 6.0)
    proj = tilt_series(vol, ang, centring="middle").astype(np.float32)
    rng = np.random.default_rng(1)
    proj += rng.normal(0, 0.02 * float(proj.max()), proj.shape).astype(np.float32)
    weights = rng.uniform(0.5, 2.0, proj.shape).astype(np.float32)
    weights[2, 3:9, 4:12] = 0                       # a blocked rectangle
    weights[rng.random(proj.shape) < 0.05] = 0      # scattered dead pixels
    d = tmp_path_factory.mktemp("w")
    spoiled = proj.copy()
    spoiled[weights == 0] = 1e6                     # garbage where the weight is 0
    for name, data in (("clean.h5", proj), ("spoiled.h5", spoiled)):
        with h5py.File(d / name, "w") as f:
            f["/exchange/data"] = data
            f["/exchange/theta"] = ang
    with h5py.File(d / "w.h5", "w") as f:
        f["w"] = weights
        f["bad_shape"] = weights[:, :, :-1]
        f["negative"] = -weights
        f["w_alt"] = np.where(weights > 0, 1.0, 0.0).astype(np.float32)
    return d, proj, weights


def _run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _volume(path):
    with h5py.File(path, "r") as f:
        return f["/exchange/data"][()], json.loads(f["/process/fastem/configuration"][()])


def test_zero_weight_pixels_change_nothing(series):
    d, _, _ = series
    base = ["--algorithm", "resire", "--projector", "linear", "--iterations", "15", "--weights", f"{d}/w.h5:/w"]
    r1 = _run("-q", "tomo", d / "clean.h5", "-o", d / "a.h5", *base, "--prior", "tv", "--prior-weight", "0.05")
    r2 = _run("-q", "tomo", d / "spoiled.h5", "-o", d / "b.h5", *base, "--prior", "tv", "--prior-weight", "0.05")
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
    (va, cfg), (vb, _) = _volume(d / "a.h5"), _volume(d / "b.h5")
    np.testing.assert_array_equal(va, vb)
    assert cfg["weights"] == f"{d}/w.h5:/w"
    # the weights matter where they are not zero (this test can fail): uniform weights differ
    r3 = _run("-q", "tomo", d / "clean.h5", "-o", d / "c.h5", "--algorithm", "resire", "--projector", "linear",
              "--iterations", "15", "--prior", "tv", "--prior-weight", "0.05")
    assert r3.exit_code == 0, r3.output
    assert not np.array_equal(_volume(d / "c.h5")[0], va)


def test_auto_strength_ignores_zero_weight_pixels_and_prior_none_works(series):
    d, _, _ = series
    base = ["--algorithm", "resire", "--projector", "linear", "--iterations", "8", "--weights", f"{d}/w.h5:/w"]
    r1 = _run("tomo", d / "clean.h5", "-o", d / "auto1.h5", *base, "--prior", "huber")
    r2 = _run("tomo", d / "spoiled.h5", "-o", d / "auto2.h5", *base, "--prior", "huber")
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
    (v1, c1), (v2, c2) = _volume(d / "auto1.h5"), _volume(d / "auto2.h5")
    assert c1["noise_estimate"] == c2["noise_estimate"] and c1["prior_weight"] == c2["prior_weight"]
    np.testing.assert_array_equal(v1, v2)
    r = _run("-q", "tomo", d / "spoiled.h5", "-o", d / "none.h5", *base, "--prior", "none")   # weighted LS
    assert r.exit_code == 0, r.output
    v, cfg = _volume(d / "none.h5")
    assert np.all(np.isfinite(v)) and cfg["prior"] == "none" and float(np.abs(v).max()) < 1e3


def test_poisson_weights_from_counts(series, tmp_path):
    d, proj, _ = series
    counts = np.random.default_rng(2).poisson(np.clip(proj, 0, None) * 50 + 5).astype(np.float32)
    with h5py.File(tmp_path / "counts.h5", "w") as f:
        f["/exchange/data"] = counts
        f["/exchange/theta"] = tilt_angles(-60, 60, 6.0)
    r = _run("-q", "tomo", tmp_path / "counts.h5", "-o", tmp_path / "p.h5", "--algorithm", "resire",
             "--projector", "linear", "--iterations", "5", "--weights", "poisson", "--prior", "tv",
             "--prior-weight", "0.1")
    assert r.exit_code == 0, r.output
    assert _volume(tmp_path / "p.h5")[1]["weights"].startswith("poisson")


@pytest.mark.parametrize("extra,match", [
    (["--weights", "{d}/w.h5:/bad_shape"], "--weights .*shape"),
    (["--weights", "{d}/w.h5:/negative"], "--weights .*finite and >= 0"),
    (["--weights", "{d}/w.h5:/missing"], "missing"),
    (["--weights", "{d}/w.h5:/w", "--algorithm", "sirt"], "--weights weight RESIRE's data term"),
    (["--weights", "{d}/w.h5:/w", "--scheduler", "local"], "cannot be combined with .*--weights"),
    (["--weights", "nonsense"], "--weights must be FILE.h5:/dataset or 'poisson'"),
])
def test_errors_name_the_flag_and_write_nothing(series, extra, match):
    d, _, _ = series
    out = d / "never.h5"
    r = _run("tomo", d / "clean.h5", "-o", out, "--iterations", "3", "--projector", "linear",
             *[e.format(d=d) for e in extra])
    assert r.exit_code != 0
    import re

    assert re.search(match, r.output), r.output
    assert not out.exists()


def test_weights_file_is_never_overwritten(series):
    d, _, _ = series
    before = (d / "w.h5").read_bytes()
    r = _run("tomo", d / "clean.h5", "-o", d / "w.h5", "--overwrite", "--iterations", "2", "--projector", "linear",
             "--weights", f"{d}/w.h5:/w")
    assert r.exit_code != 0 and (d / "w.h5").read_bytes() == before


def test_resume_with_prior_and_weights_is_exact(series, tmp_path):
    """A regularised run (automatic strength, weights) checkpointed and resumed gives the volume of
    an uninterrupted run bit for bit (FISTA's momentum is in the checkpoint; the stored strength is
    reused, not searched again); changing --prior, --prior-weight or the weights refuses to resume."""
    d, _, _ = series
    base = ["-q", "tomo", d / "clean.h5", "--algorithm", "resire", "--projector", "linear", "--prior", "tv",
            "--weights", f"{d}/w.h5:/w", "--checkpoint-every", "3"]
    r = _run(*base, "-o", tmp_path / "straight.h5", "--iterations", "10")
    assert r.exit_code == 0, r.output
    r = _run(*base, "-o", tmp_path / "part.h5", "--iterations", "6")
    assert r.exit_code == 0, r.output
    r = _run(*base, "-o", tmp_path / "part.h5", "--iterations", "10", "--resume")
    assert r.exit_code == 0, r.output
    (v1, c1), (v2, c2) = _volume(tmp_path / "straight.h5"), _volume(tmp_path / "part.h5")
    np.testing.assert_array_equal(v1, v2)
    assert c1["prior_weight"] == c2["prior_weight"]
    for change in (["--prior", "huber"], ["--prior-weight", "0.5"], ["--weights", f"{d}/w.h5:/w_alt"]):
        args = list(base)
        if change[0] in args:
            args[args.index(change[0]) + 1] = change[1]
        else:
            args += change
        r = _run(*args, "-o", tmp_path / "part.h5", "--iterations", "12", "--resume")
        assert r.exit_code != 0 and "resume" in r.output.lower(), (change, r.output)
