"""bench/tomo_iteration.py on a tiny size: every kernel timed, the series takes the tilt kernels,
and the report holds the side-by-side ratios."""

import json

import pytest


@pytest.mark.slow
def test_tiny_run_times_every_kernel_and_reports_ratios(tmp_path):
    from bench.tomo_iteration import main

    report = main(["--n", "16", "--repeats", "1", "--out", str(tmp_path)])
    ms = report["runs"][0]["ms"]
    assert set(ms) == {"forward tilt kernel", "forward general kernel", "back tilt kernel", "back general kernel",
                       "tv prior vectorised", "tv prior generic routine", "itv prior vectorised",
                       "itv prior generic routine", "qggmrf prior pairs", "qggmrf prior generic routine",
                       "fista iteration (tv)", "fista iteration (itv)", "fista iteration (qggmrf)",
                       "fista vector updates fused", "fista vector updates numpy sequence"}
    assert all(v > 0 for v in ms.values())
    assert json.loads((tmp_path / "tomo_iteration.json").read_text())["runs"][0]["n"] == 16
    assert "16^3: forward" in (tmp_path / "tomo_iteration.md").read_text()
    assert "FISTA vector updates" in (tmp_path / "tomo_iteration.md").read_text()
    assert "a qGGMRF iteration costs" in (tmp_path / "tomo_iteration.md").read_text()
    assert "an isotropic TV one" in (tmp_path / "tomo_iteration.md").read_text()
