"""bench/tomo_memory_phases.py on a tiny case: every phase recorded, peaks at least what is held."""

import json

import pytest


@pytest.mark.slow
def test_tiny_run_records_every_phase(tmp_path):
    from bench.tomo_memory_phases import main

    report = main(["--n", "16", "--projections", "9", "--iterations", "12", "--out", str(tmp_path)])
    phases = [r["phase"] for r in report["rows"]]
    assert phases == ["problem and set-up", "full solver", "noise estimate and strength search set-up",
                      "held-out solver", "search", "final solve set-up", "final solve and result",
                      "input projections"]
    for r in report["rows"][:-1]:
        assert r["peak"] >= r["held_after"] - 1e-9 and r["peak"] > 0
    # the solvers hold FISTA's four volumes at least
    assert report["rows"][1]["held_after"] >= 4
    assert report["peak_volumes"] == max(r["peak"] for r in report["rows"][:-1])
    assert json.loads((tmp_path / "tomo_memory_phases.json").read_text())["n"] == 16
