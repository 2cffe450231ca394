"""bench/tomo_weight_sweep.py and bench/tomo_rfree_stop.py on a tiny size: every strength and
every run reported, with the records written."""

import json

import pytest


@pytest.mark.slow
def test_weight_sweep_reports_every_strength(tmp_path):
    from bench.tomo_weight_sweep import DEFAULT_CASES, main

    report = main(["--n", "12", "--iterations", "25", "--multiples", "0.5,1,2", "--out", str(tmp_path),
                   "--tag", "tiny"])
    assert set(report["cases"]) == set(DEFAULT_CASES)
    for case in report["cases"].values():
        assert case["auto"]["weight"] > 0 and 0 < case["auto"]["error"] < 1
        assert -1 <= case["auto"]["fsc_wedge"] <= 1
        assert sorted(float(m) for m in case["sweep"]) == [0.5, 1.0, 2.0]
        for rows in case["sweep"].values():   # one row at iteration 25: (iteration, error, R-free, FSC, FSC wedge)
            assert len(rows) == 1 and rows[0][0] == 25 and rows[0][1] > 0 and rows[0][2] > 0
            assert -1 <= rows[0][3] <= 1 and -1 <= rows[0][4] <= 1
    assert json.loads((tmp_path / "tomo_weight_sweep-tiny.json").read_text())["n"] == 12
    text = (tmp_path / "tomo_weight_sweep-tiny.md").read_text()
    assert "| weight (x auto) |" in text and "## vesicle-5pc-70" in text


@pytest.mark.slow
def test_rfree_stop_bench_reports_every_run(tmp_path):
    from bench.tomo_rfree_stop import main

    report = main(["--n", "12", "--iterations", "20", "--out", str(tmp_path), "--tag", "tiny"])
    for case in report["cases"].values():
        assert [row[0] for row in case["trajectory"]] == [0, 10, 20]
        for key in ("stop", "no_stop", "held_out_5pc", "inner_15"):
            assert 0 < case[key]["error"] < 1 and case[key]["iterations"] <= 20
    assert (tmp_path / "tomo_rfree_stop-tiny.md").exists()


@pytest.mark.slow
def test_scale_bench_reports_time_memory_and_quality(tmp_path):
    """bench/tomo_regularised_scale.py on two tiny cases (one odd): each method ran in its own
    process and every figure is a measurement (positive time, memory read, error in (0, 1))."""
    pytest.importorskip("svmbir")
    from bench.tomo_regularised_scale import METHODS, main

    assert main(["--cases", "16x9,13x7", "--iterations", "20", "--out", str(tmp_path), "--tag", "tiny"]) == 0
    rows = json.loads((tmp_path / "tomo_regularised_scale-tiny.json").read_text())["rows"]
    assert [(r["n"], r["projections"]) for r in rows] == [(16, 9), (13, 7)]
    for row in rows:
        assert set(row["methods"]) == set(METHODS)
        for m in row["methods"].values():
            assert m["seconds"] > 0 and m["peak_mib"] > 0 and 0 < m["error"] < 1
            assert -1 <= m["fsc_low_wedge"] <= 1
    assert "| 13^3 x 7 | svmbir defaults |" in (tmp_path / "tomo_regularised_scale-tiny.md").read_text()


@pytest.mark.slow
def test_slab_thickness_bench_times_every_thickness(tmp_path):
    """bench/tomo_slab_thickness.py on a tiny series: one row per thickness, every time measured
    (alone and side by side), records written."""
    from bench.tomo_slab_thickness import main

    report = main(["--n", "24", "--iterations", "3", "--thicknesses", "4,12", "--out", str(tmp_path), "--tag", "t"])
    assert [r["thickness"] for r in report["rows"]] == [4, 12]
    for r in report["rows"]:
        assert r["alone_s"] > 0 and len(r["side_by_side_s"]) == 2 and min(r["side_by_side_s"]) > 0
    assert "| 12 |" in (tmp_path / "tomo_slab_thickness-t.md").read_text()


def test_edge_projections_hold_out_the_outermost_tilts_of_an_unsorted_series():
    import numpy as np

    from bench.tomo_weight_sweep import edge_projections

    tilts = np.array([3.0, -60.0, 57.0, 0.0, 60.0, -57.0, -3.0])
    held = edge_projections(tilts, (7, 3, 5), 1)
    assert held.shape == (7, 3, 5) and held.dtype == bool
    assert [bool(held[k].all()) for k in range(7)] == [False, True, False, False, True, False, False]
    assert held.sum() == 2 * 15
    two = edge_projections(tilts, (7, 3, 5), 2)
    assert sorted(np.flatnonzero(two.any(axis=(1, 2)))) == [1, 2, 4, 5]


@pytest.mark.slow
def test_weight_sweep_edge_mode_reports_both_residuals(tmp_path):
    from bench.tomo_weight_sweep import main

    report = main(["--n", "12", "--iterations", "25", "--multiples", "0.5,1", "--cases", "vesicle", "--prior", "itv",
                   "--held-out", "edge", "--out", str(tmp_path), "--tag", "edge"])
    case = report["cases"]["vesicle"]
    assert report["prior"] == "itv" and report["held_out"] == "edge"
    assert sorted(float(m) for m in case["edge_sweep"]) == [0.5, 1.0]
    for rows in case["edge_sweep"].values():
        assert len(rows) == 1 and rows[0][2] > 0 and 0 < rows[0][1] < 1
    assert set(case["lowest"]) == {"R-free", "edge R-free", "error, any iteration", "error at the R-free stop"}
    text = (tmp_path / "tomo_weight_sweep-edge.md").read_text()
    assert "edge R-free, lowest (iteration) |" in text and "Lowest over the strengths" in text


def test_edge_holdout_zeroes_exactly_the_outermost_projections_and_keeps_the_input():
    import numpy as np

    from bench.tomo_edge_holdout import without_edges

    tilts = np.array([10.0, -60.0, 0.0, 60.0, -30.0, 57.0, -57.0])
    weights = np.random.default_rng(0).uniform(0.5, 2.0, (7, 3, 4)).astype(np.float32)
    weights[2, 0, 0] = 0.0
    before = weights.copy()
    out = without_edges(tilts, weights, weights.shape, 1)
    assert np.array_equal(weights, before)                       # the input is not modified
    assert not out[[1, 3]].any()                                 # -60 and +60 unmeasured
    keep = [0, 2, 4, 5, 6]
    assert np.array_equal(out[keep], before[keep])               # every other weight as given, zeros included
    two = without_edges(tilts, None, weights.shape, 2)
    assert not two[[1, 3, 5, 6]].any() and two[[0, 2, 4]].min() == 1.0


def test_edge_holdout_summary_reports_the_mean_ratio():
    from bench.tomo_edge_holdout import summarise

    def row(e_all, e_wo):
        def r(e):
            return {"error": e, "fsc_low": 0.9, "fsc_low_wedge": 0.8, "weight": 1.0, "seconds": 1.0}
        return {"all": r(e_all), "without edges": r(e_wo)}

    text = summarise({"command": "x", "wall_s": 1.0, "seeds": 2, "edge_projections": 1,
                      "cases": {"issue48": [row(0.2, 0.3), row(0.4, 0.3)]}})
    assert "| issue48 | 0.3000 | 0.3000 | 1.000 |" in text


def test_edge_final_summary_lists_every_check():
    from bench.tomo_edge_final import summarise

    rows = [[0, 0.3, 0.9, 0.8, 100.0], [10, 0.25, 0.92, 0.85, 99.0]]
    report = {"command": "x", "wall_s": 1.0, "iterations": 10,
              "cases": {"issue48": {"weaker": {"weight": 0.2, "edge": {}, "rows": rows},
                                    "kept": {"weight": 0.4, "edge": {}, "rows": rows}}}}
    text = summarise(report)
    assert "| 10 | 0.2500 | 0.9200 / 0.850 | 99.0 | 0.2500 | 0.9200 / 0.850 | 99.0 |" in text
    assert "Strengths: weaker 0.2, kept 0.4\n" in text and "seed 0" in text
    assert "## issue48 (48^3, tilt step 3)" in text
    for branch in ("weaker", "kept"):
        report["cases"]["issue48"][branch]["edge"] = {"z": 0.98}
    text = summarise(dict(report, seed=1, edge_min_z=1.0))
    assert "seed 1" in text and "Strengths: weaker 0.2, kept 0.4; the edge check's z: 0.98 (the weaker" in text


def test_convergence_curves_png_from_a_record(tmp_path):
    """bench/tomo_regularised_convergence.py draws its curves (objective gap, error) as a PNG from
    its JSON record; the best run's last point (gap 0) is drawn, not dropped by the log scale."""
    from bench.tomo_regularised_convergence import plot

    rows = [[k, 10.0 / (k + 1) + 1.0, 0.5 / (k + 1) + 0.2] for k in (0, 10, 20)]
    record = {"weight": 0.4, "checkpoints": [0, 10, 20],
              "curves": {"none": rows, "fista": rows, "restart": [r[:1] + [1.0] + r[2:] for r in rows]}}
    out = tmp_path / "curves.png"
    plot(record, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
