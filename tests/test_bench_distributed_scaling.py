"""bench/distributed_scaling.py --quick: every job kind runs inline and on 1 and 2 workers, in
interleaved rounds, with outputs bitwise equal and the scaling taken from the rounds' own ratios."""

import json

import pytest

pytest.importorskip("distributed")


@pytest.mark.slow
def test_quick_run_interleaves_rounds_and_compares_outputs(tmp_path):
    from bench.distributed_scaling import main

    assert main(["--quick", "--repeat", "2", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "distributed_scaling_quick.json").read_text())["rows"]
    assert [r["job"] for r in rows] == ["scan simulate", "cluster lloyd", "tomo sirt slabs", "phase multi-start"]
    for r in rows:
        per_round = r["seconds_per_round"]
        assert all(len(per_round[k]) == 2 for k in ("inline-1t", "dask-1w", "dask-2w"))
        ratios = [a / b for a, b in zip(per_round["dask-1w"], per_round["dask-2w"])]   # (times rounded to 1 us)
        assert r["scaling_per_round"] == pytest.approx(ratios, rel=0.05, abs=0.02)
        assert min(r["scaling_per_round"]) <= r["scaling_2w_over_1w"] <= max(r["scaling_per_round"])
        assert r["bitwise_equal_to_inline"] == {"dask-1w": True, "dask-2w": True}
    assert "interleaved rounds" in (tmp_path / "distributed_scaling_quick.md").read_text()
