"""``fastem scan simulate`` / ``complete``: file layout, provenance, safety, errors; the demo job;
and a reduced run of the reproduction script (slow)."""

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from fastem.cli.main import app
from fastem.io import read_provenance



def run(*args):
    return CliRunner().invoke(app, ["--device", "cpu", "--quiet", *args])


@pytest.fixture
def images_h5(tmp_path, rng):
    from fastem.data.stem import generate_stem

    imgs = generate_stem(3, 64, seed=4, dose=None)
    imgs[1, 5, 5] = np.nan
    path = tmp_path / "imgs.h5"
    with h5py.File(path, "w") as f:
        f["stack"] = imgs
    return path, imgs


def test_simulate_then_complete(tmp_path, images_h5):
    src, imgs = images_h5
    out = tmp_path / "scans.h5"
    r = run("scan", "simulate", f"{src}:/stack", "-o", str(out), "--path", "spiral", "--coverage", "0.2", "--seed", "3")
    assert r.exit_code == 0, r.output
    with h5py.File(out, "r") as f:
        g = f["scan"]
        assert g["partial"].shape == g["path"].shape == g["truth"].shape == (3, 64, 64)
        assert g.attrs["coverage"] == pytest.approx(0.2)
        np.testing.assert_allclose(g.attrs["dwell_fraction"], 0.2, rtol=0.08)
        # the paper's 1-px line: dwell 1 where visited, so dose fraction = pixels visited
        np.testing.assert_array_equal(g.attrs["dwell_fraction"], g.attrs["measured_coverage"])
        assert g.attrs["coverage_measure"] == "dwell" and not g.attrs["antialias"] and g.attrs["scan_blurred"]
        partial, path, truth = g["partial"][()], g["path"][()], g["truth"][()]
        prov = read_provenance(f["process/fastem"])
    assert prov["configuration"]["path"] == "spiral" and prov["configuration"]["seed"] == 3 and prov["program"] == "fastem"
    assert np.isfinite(partial).all() and np.abs(truth).max() <= 1
    # the file holds what the library makes
    from fastem.scan import make_partial_scans

    lib = make_partial_scans(imgs, "spiral", 0.2, seed=3)
    np.testing.assert_array_equal(partial, lib.partial)

    np.testing.assert_array_equal(path, lib.path)

    done = tmp_path / "done.h5"
    r = run("scan", "complete", str(out), "-o", str(done), "--method", "nearest")
    assert r.exit_code == 0, r.output
    with h5py.File(done, "r") as f:
        comp = f["scan/completed"][()]
        assert comp.shape == (3, 64, 64) and f["scan/completed"].attrs["method"] == "nearest"
        rm = f["process/fastem/rmse"][()]
    assert rm.shape == (3,) and np.all((rm > 0) & (rm < 0.3))


def test_simulate_antialiased_and_pixel_coverage(tmp_path, images_h5):
    """--antialias spreads dwell over ~1.8x pixels; --coverage-measure pixels counts those instead."""
    src, _ = images_h5
    outs = {}
    for name, extra in (("aa", ["--antialias"]), ("px", ["--antialias", "--coverage-measure", "pixels"])):
        outs[name] = tmp_path / f"{name}.h5"
        r = run("scan", "simulate", f"{src}:/stack", "-o", str(outs[name]), "--coverage", "0.1", "--seed", "3", *extra)
        assert r.exit_code == 0, r.output
    with h5py.File(outs["aa"], "r") as f:
        g = f["scan"]
        np.testing.assert_allclose(g.attrs["dwell_fraction"], 0.1, rtol=0.08)
        assert np.all(g.attrs["measured_coverage"] > 1.4 * g.attrs["dwell_fraction"])
        assert g.attrs["antialias"]
    with h5py.File(outs["px"], "r") as f:
        g = f["scan"]
        np.testing.assert_allclose(g.attrs["measured_coverage"], 0.1, rtol=0.08)
        assert np.all(g.attrs["dwell_fraction"] < 0.75 * g.attrs["measured_coverage"])
        assert g.attrs["coverage_measure"] == "coverage"


def test_simulate_synthetic_grid_with_dose(tmp_path):
    out = tmp_path / "syn.h5"
    r = run("scan", "simulate", "--synthetic", "1", "-o", str(out), "--path", "grid", "--coverage", "0.1", "--dose", "100")
    assert r.exit_code == 0, r.output
    with h5py.File(out, "r") as f:
        assert f["scan/partial"].shape == (1, 512, 512) and f["scan"].attrs["path"] == "grid"


def test_cli_errors_are_one_line(tmp_path, images_h5):
    src, _ = images_h5
    out = tmp_path / "o.h5"
    cases = [
        (["scan", "simulate", "-o", str(out)], "either IN"),
        (["scan", "simulate", str(tmp_path / "missing.h5"), "-o", str(out)], "missing.h5"),
        (["scan", "simulate", f"{src}:/stack", "-o", str(src)], "input"),
        (["scan", "complete", f"{src}", "-o", str(out)], "/scan/partial"),
        (["scan", "complete", f"{src}", "-o", str(out), "--method", "model"], "/scan/partial"),
    ]
    for args, needle in cases:
        r = run(*args)
        assert r.exit_code == 1, (args, r.output)
        lines = [ln for ln in r.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("fastem: error:") and needle in lines[0], (args, r.output)
    assert not out.exists()
    r = run("scan", "simulate", f"{src}:/stack", "-o", str(out), "--coverage", "0.3")
    assert r.exit_code == 0
    r = run("scan", "simulate", f"{src}:/stack", "-o", str(out), "--coverage", "0.3")
    assert r.exit_code == 1 and "exists" in r.output
    assert run("scan", "simulate", f"{src}:/stack", "-o", str(out), "--coverage", "0.3", "--overwrite").exit_code == 0
    assert run("scan", "simulate", f"{src}:/stack", "-o", str(out), "--path", "zigzag").exit_code == 2
    r = run("scan", "simulate", str(src), "-o", str(tmp_path / "o2.h5"), "--coverage", "0")
    assert r.exit_code == 2 and "--coverage" in r.output     # a usage error naming the flag


def test_demo_job_quick(tmp_path):
    from fastem.scan import demo

    rows = demo.run(tmp_path, quick=True)
    assert {r["output"] for r in rows} >= {"scan/partial_scan.h5", "scan/partial_scan.png"}
    assert (tmp_path / "scan" / "partial_scan.png").stat().st_size > 10_000
    with h5py.File(tmp_path / "scan" / "completed.h5", "r") as f:
        assert f["scan/completed"].shape == (1, 128, 128)
    assert "linear" in rows[1]["result"] and "%" in rows[1]["result"]


def test_demo_shows_the_model_beside_the_baselines(tmp_path, monkeypatch):
    """With a (here: tiny) packaged model the demo adds its completion and RMSE; without one it
    says why the panel is empty instead of failing."""
    pytest.importorskip("torch")
    import fastem.nn.default_model as dm
    from fastem.nn import CompletionConfig, train_completion
    from fastem.scan import demo

    monkeypatch.setattr(dm, "default_model_path", lambda: tmp_path / "absent.pt")
    rows = demo.run(tmp_path / "a", quick=True)
    assert "model: not shown (no packaged model" in rows[1]["result"]
    model = tmp_path / "tiny.pt"
    train_completion(model, synthetic=2, crop=32, batch=2, steps=2, val_count=2,
                     config=CompletionConfig(width=0.1, inner_blocks=1, outer_blocks=1, disc_input=16))
    monkeypatch.setattr(dm, "default_model_path", lambda: model)
    rows = demo.run(tmp_path / "b", quick=True)
    assert "model " in rows[1]["result"] and "not shown" not in rows[1]["result"]


@pytest.mark.slow
def test_reproduction_reduced(tmp_path):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("reproduce_scan",
                                                  Path(__file__).resolve().parents[1] / "bench" / "reproduce_scan.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.run(images=6, size=256, biharmonic_images=2, out_dir=tmp_path, echo=lambda s: None)
    rows = [r for r in res["rows"] if "skipped" not in r]
    assert len(rows) >= 7 and (tmp_path / "scan_reproduction_6x256.md").exists()
    for r in rows:   # grids on 6 small crops scatter more (how many channels a crop catches)
        assert abs(r["dwell_fraction"] / r["coverage"] - 1) < (0.1 if r["path"] == "spiral" else 0.2)
        assert r["linear"]["rmse_mean"] < r["nearest"]["rmse_mean"] < 0.3
    spiral = {round(1 / r["coverage"]): r["linear"]["rmse_mean"] for r in rows if r["path"] == "spiral"}
    assert spiral[10] < spiral[20] < spiral[40] < spiral[100]
