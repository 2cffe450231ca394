"""bench/kmeans_fused.py: a tiny run times both assignment paths and leaves FUSED_MAX_K as it was."""

import json

from fastem.kernels import kmeans_assign


def test_tiny_run_reports_both_paths(tmp_path):
    from bench.kmeans_fused import main

    before = kmeans_assign.FUSED_MAX_K
    report = main(["--d", "33", "--ks", "3", "11", "--n", "300", "--repeats", "2", "--threads", "1",
                   "--out", str(tmp_path)])
    assert kmeans_assign.FUSED_MAX_K == before
    assert [(r["d"], r["K"]) for r in report["rows"]] == [(33, 3), (33, 11)]
    for r in report["rows"]:
        assert r["step_ratio"] == r["fused_step_ms"] / r["gemm_step_ms"] > 0
    assert json.loads((tmp_path / "kmeans_fused.json").read_text())["rows"] == report["rows"]
    assert "| 33 | 11 |" in (tmp_path / "kmeans_fused.md").read_text()
