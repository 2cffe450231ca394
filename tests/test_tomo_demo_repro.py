"""The tomography demo job (quick) and the reproduction script (slow, reduced)."""

import json

import numpy as np
import pytest

from fastem import io


def test_demo_quick_writes_volume_and_previews(tmp_path):
    from fastem.tomo import demo

    rows = demo.run(tmp_path, quick=True)
    assert demo.ORDER == 20
    assert {r["output"] for r in rows} >= {"tomo/vesicle_tilt.h5", "tomo/vesicle_resire.h5", "tomo/slices.png"}
    vol = io.read_dxchange_volume(tmp_path / "tomo" / "vesicle_resire.h5")
    assert vol.volume.shape == (24, 24, 24) and vol.volume.max() > 0
    assert len(vol.results["r_factor_history"]) == 5
    for png in ("slices.png", "r_factor.png"):
        assert (tmp_path / "tomo" / png).stat().st_size > 1000
    assert "R_F" in rows[1]["result"]


@pytest.mark.slow
def test_reproduction_quick(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "reproduce_tomo.py"
    spec = importlib.util.spec_from_file_location("reproduce_tomo", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    report = mod.main(["--quick", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "reproduce_tomo-quick.json").read_text())
    assert [(r["method"], r["rel_l2"]) for r in saved["single_axis"]["rows"]] == \
        [(r["method"], r["rel_l2"]) for r in report["single_axis"]["rows"]]
    by = {r["method"]: r for r in report["single_axis"]["rows"]}
    for name in ("RESIRE fst", "RESIRE linear"):
        # better data fit (independent ray-sum model) and fewer missing-wedge errors than FBP
        assert by[name]["r_factor_raysum"] < by["FBP"]["r_factor_raysum"]
        assert by[name]["rel_l2"] < 0.7 * by["FBP"]["rel_l2"]
        assert by[name]["fsc_z_mean"] > by["FBP"]["fsc_z_mean"]
        assert by[name]["fsc_z_mean"] >= by["SIRT (fastem)"]["fsc_z_mean"] - 0.02
    single, dual = report["two_axis"]["rows"]
    assert dual["rel_l2"] < single["rel_l2"] and dual["fsc_z_mean"] > single["fsc_z_mean"]
    full, masked, zeros = report["quarter_masked"]["rows"]
    assert masked["rel_l2"] < 1.2 * full["rel_l2"]  # three quarters of every projection suffice
    assert zeros["rel_l2"] > 1.5 * masked["rel_l2"]  # reading the blocked pixels as zeros does not
    for png in ("-slices.png", "-fsc.png", "-r_factor.png"):
        assert (tmp_path / f"reproduce_tomo-quick{png}").exists()
    assert np.isfinite([r["fsc_mean"] for r in report["single_axis"]["rows"]]).all()
