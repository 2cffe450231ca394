"""Smoke tests of two small benches: the forward-projection kernels' paths and FFT plans across
processes (their figures are recorded in bench/results; here only that they run and agree)."""

import json

import pytest


def test_forward_paths_bench_agrees_and_records(tmp_path):
    from bench.tomo_forward_paths import main

    assert main(["--n", "12", "--projections", "3,9", "--repeat", "1", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "tomo_forward_paths.json").read_text())["rows"]
    assert [r["projections"] for r in rows] == [3, 9]
    for r in rows:
        assert r["tilt_geometry"] and r["generic_s"] > 0 and r["tilt_s"] > 0
        assert r["max_relative_difference"] < 1e-5          # the two kernels compute the same projections


@pytest.mark.slow
def test_plan_determinism_bench_counts_results(tmp_path):
    pytest.importorskip("pyfftw")
    from bench.fftw_plan_determinism import main

    assert main(["--processes", "2", "--size", "16", "--runs", "2", "--iterations", "10",
                 "--out", str(tmp_path)]) == 0
    rows = {r["group"]: r for r in json.loads((tmp_path / "fftw_plan_determinism.json").read_text())["rows"]}
    adopted = rows["adopted wisdom"]
    assert adopted["distinct"] == 1 and adopted["equal_to_the_first_process"] == 2
    assert len(rows["own plans"]["results"]) == 2
