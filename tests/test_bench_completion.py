"""Completion-model results tooling (issue 12 s.4) on a tiny model trained in seconds: the reproduction
table's model column (bench/reproduce_scan.py --model), the ablations (bench/ablate_completion.py) and
the ``scan-model`` bench case. Structure and sane values, not timings."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fastem.bench import ablate_completion, reproduce_scan  # noqa: E402
from fastem.bench.cases import scan_model  # noqa: E402
from fastem.errors import InputError  # noqa: E402


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from fastem.nn.completion import CompletionConfig
    from fastem.nn.train_completion import train_completion

    out = tmp_path_factory.mktemp("model") / "tiny.pt"
    train_completion(out, steps=6, crop=64, batch=2, synthetic=4, val_count=2, config=CompletionConfig(width=0.1))
    return out


def test_scripts_do_not_import_torch_at_import_time():
    code = ("import sys, fastem.bench.reproduce_scan, fastem.bench.ablate_completion, fastem.bench.cases.scan_model;"
            "sys.exit(3 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_reproduction_with_model(tiny_model, tmp_path):
    res = reproduce_scan.run(images=3, size=128, biharmonic_images=1, out_dir=tmp_path, echo=lambda s: None,
                             model=tiny_model, coverages=(1 / 10, 1 / 20), kinds=("spiral",), gallery=2)
    files = {k: os.path.basename(v) for k, v in res["files"].items()}
    assert files == {"json": "scan_reproduction_model_3x128_spiral_10-20.json",
                     "md": "scan_reproduction_model_3x128_spiral_10-20.md",
                     "distance_png": "scan_reproduction_model_3x128_spiral_10-20_distance.png",
                     "gallery_png": "scan_completion_gallery_3x128_spiral_10-20.png"}
    for f in files.values():
        assert (tmp_path / f).stat().st_size > 0
    assert not any(p.name.startswith("scan_reproduction_3x128") for p in tmp_path.iterdir())  # baseline names kept

    rows = res["rows"]
    assert [(r["path"], round(1 / r["coverage"])) for r in rows] == [("spiral", 10), ("spiral", 20)]
    for r in rows:
        mo = r["model"]
        assert mo["images"] == 3 and math.isfinite(mo["rmse_mean"]) and 0 < mo["rmse_mean"] < 1
        assert mo["rmse_std"] >= 0 and -1 <= mo["ssim_mean"] <= 1
        assert mo["ratio_to_linear"] == pytest.approx(mo["rmse_mean"] / r["linear"]["rmse_mean"], rel=1e-12)
    r10, r20 = rows
    assert r20["model"]["in_distribution"] and r20["paper_rmse"] == 0.026
    assert not r10["model"]["in_distribution"] and "coverage" in r10["model"]["note"] and r10["paper_rmse"] is None
    assert res["model"]["record"]["steps"] == 6 and res["model"]["width"] == pytest.approx(0.1)
    assert res["target_met_1_20"] == {"spiral": r20["model"]["ratio_to_linear"] <= 0.6}
    for label in ("spiral 1/10", "spiral 1/20"):
        edges, err = res["error_vs_distance_model"][label]
        assert len(err) == len(edges) - 1 == len(res["error_vs_distance_linear"][label][1])
        assert np.isfinite(err[0]) and err[0] > 0

    saved = json.loads((tmp_path / files["json"]).read_text())   # valid JSON (no NaN), same numbers
    assert [r["model"]["ratio_to_linear"] for r in saved["rows"]] == [r["model"]["ratio_to_linear"] for r in rows]
    md = (tmp_path / files["md"]).read_text()
    assert "| model (RMSE ± std / SSIM) | model / linear | setting | paper |" in md
    assert "| trained | 2.6 % |" in md and "out of distribution" in md
    assert f"{r20['model']['ratio_to_linear']:.2f}" in md and "Target (issue 12)" in md


def test_reproduction_cli_gallery_outside_the_settings(tiny_model, tmp_path):
    # grid 1/10 only: out of distribution; the spiral 1/20 gallery is made separately
    reproduce_scan.main(["--images", "2", "--size", "128", "--biharmonic-images", "0", "--model", str(tiny_model),
                         "--coverages", "10", "--kinds", "grid", "--gallery", "1", "--out-dir", str(tmp_path)])
    stem = "scan_reproduction_model_2x128_grid_10"
    res = json.loads((tmp_path / f"{stem}.json").read_text())
    (row,) = res["rows"]
    assert row["path"] == "grid" and not row["model"]["in_distribution"] and "spiral" in row["model"]["note"]
    assert row["biharmonic"]["images"] == 0 and row["biharmonic"]["rmse_mean"] is None   # not run: no NaN
    assert (tmp_path / "scan_completion_gallery_2x128_grid_10.png").stat().st_size > 0
    assert (tmp_path / f"{stem}_distance.png").is_file()


def test_reproduction_with_the_self_ensemble(tiny_model, tmp_path):
    """--ensemble 8: the model column is the 8-transform self-ensemble (what the library gives on the
    same scans), the files and the table say so."""
    from fastem.data.stem import generate_stem
    from fastem.nn.inference import complete_partial_scans
    from fastem.nn.model import load_model
    from fastem.scan import PartialScanPipeline, rmse

    reproduce_scan.main(["--images", "2", "--size", "128", "--biharmonic-images", "0", "--model", str(tiny_model),
                         "--coverages", "20", "--kinds", "spiral", "--gallery", "1", "--ensemble", "8",
                         "--out-dir", str(tmp_path)])
    stem = "scan_reproduction_model_2x128_spiral_20_ensemble8"
    res = json.loads((tmp_path / f"{stem}.json").read_text())
    assert res["model"]["inference_ensemble"] == 8
    assert "8-transform self-ensemble (`--ensemble 8`)" in (tmp_path / f"{stem}.md").read_text()
    assert (tmp_path / "scan_completion_gallery_2x128_spiral_20_ensemble8.png").stat().st_size > 0
    net, _ = load_model(tiny_model)
    scans = PartialScanPipeline(2, (128, 128), "spiral", 0.05, measure="dwell", seed=2020, device="cpu")(
        generate_stem(2, 128, seed=2020, dose=500.0, device="cpu"), example_base=0)
    done = complete_partial_scans(net, scans.partial, scans.path, ensemble=8)
    want = np.mean([rmse(done[i], scans.target[i]) for i in range(2)])
    assert res["rows"][0]["model"]["rmse_mean"] == pytest.approx(want, rel=1e-5)
    with pytest.raises(SystemExit):
        reproduce_scan.main(["--quick", "--model", str(tiny_model), "--ensemble", "3", "--out-dir", str(tmp_path)])


def test_reproduction_cli_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        reproduce_scan.main(["--quick", "--model", str(tmp_path / "nope.pt"), "--out-dir", str(tmp_path)])
    assert "nope.pt" in str(exc.value.code)
    with pytest.raises(SystemExit) as exc:
        reproduce_scan.main(["--coverages", "ten"])
    assert exc.value.code == 2 and "--coverages" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        reproduce_scan.main(["--kinds", "zigzag"])
    assert "--kinds" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())   # nothing written


def test_ablation_quick_and_resume(tmp_path, monkeypatch):
    lines = []
    res = ablate_completion.run(tmp_path, quick=True, echo=lines.append)
    runs = res["runs"]
    assert sorted(runs) == sorted(f"{c}/seed0" for c in ablate_completion.ABLATIONS)
    lin = res["linear_val_rmse"]
    assert 0 < lin < 0.5
    for r in runs.values():
        assert math.isfinite(r["val_rmse"]) and r["val_rmse"] > 0
        assert r["ratio_to_linear"] == pytest.approx(r["val_rmse"] / lin, rel=1e-12)
        assert r["curve"] and r["curve"][-1][0] == 6
    # the switches took effect: nothing replayed without replay, nothing clipped without ALRC
    assert runs["no-replay/seed0"]["totals"]["replayed"] == 0
    assert runs["no-alrc/seed0"]["totals"]["clipped"] == 0
    summ = res["summary"]
    assert summ["full"]["delta_vs_full"] == 0
    for name, o in summ.items():
        assert o["delta_vs_full"] == pytest.approx(o["val_rmse_mean"] - summ["full"]["val_rmse_mean"])
    saved = json.loads((tmp_path / "completion_ablation_quick.json").read_text())
    assert saved["runs"].keys() == runs.keys() and saved["settings"]["steps"] == 6
    md = (tmp_path / "completion_ablation_quick.md").read_text()
    assert all(f"| {name} |" in md for name in ablate_completion.ABLATIONS)
    assert (tmp_path / "completion_ablation_models_quick" / ".gitignore").read_text() == "*\n"

    # resumable: finished configurations are skipped, nothing is trained again
    tc = sys.modules["fastem.nn.train_completion"]   # (fastem.nn re-exports the function under the same name)

    def boom(*a, **k):
        raise AssertionError("retrained a finished configuration")

    monkeypatch.setattr(tc, "train_completion", boom)
    again = ablate_completion.run(tmp_path, quick=True, echo=lines.append)
    assert again["runs"] == saved["runs"]
    assert sum("(skipped)" in ln for ln in lines) == 5
    with pytest.raises(InputError, match="steps 6 -> 7"):
        ablate_completion.run(tmp_path, quick=True, steps=7, echo=lines.append)


def test_ablation_cli_rejects_unknown_config(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        ablate_completion.main(["--quick", "--configs", "no-everything", "--out-dir", str(tmp_path)])
    assert exc.value.code == 2 and "--configs" in capsys.readouterr().err


def test_bench_case_scan_model_quick(tiny_model, monkeypatch):
    from fastem.bench import discover_cases
    from fastem.benchmark import BenchContext

    assert discover_cases()["scan-model"] is scan_model
    monkeypatch.setenv(scan_model.MODEL_ENV, str(tiny_model))
    ctx = BenchContext(quick=True, echo=lambda s: None)
    scan_model.run(ctx)
    got = {(m.case, m.size, m.role) for m in ctx.measurements}
    for b in (1, 4):
        assert ("model inference cpu", f"{b}x128x128", "fastem") in got
        assert ("model inference cpu", f"{b}x128x128", "reference") in got
    for stage in ("stage 1 (MSE)", "stage 3 (GAN)"):
        assert (f"train step, {stage}", "2x64x64 cpu", "fastem") in got         # pipeline on
        assert (f"train step, {stage}", "2x64x64 cpu", "reference") in got      # fixed batch
    assert ("model inference cpu, self-ensemble 8", "1x128x128", "fastem") in got
    assert ("data pipeline alone", "2x64x64 cpu", "fastem") in got
    assert all(m.median_s > 0 and m.throughput > 0 for m in ctx.measurements)
    notes = " ".join(ctx.notes)
    assert str(tiny_model) in notes and "width 0.1" in notes and notes.count("headroom") == 2
    assert "latency per 128x128 scan on cpu" in notes and "self-ensemble of 8" in notes


def test_bench_case_model_fallbacks(tmp_path, monkeypatch):
    import fastem.nn.default_model as dm

    monkeypatch.delenv(scan_model.MODEL_ENV, raising=False)
    monkeypatch.setattr(dm, "default_model_path", lambda: tmp_path / "absent.pt")
    net, info, what = scan_model.resolve_model(torch)
    assert "freshly initialised" in what and info["record"] == {} and sum(p.numel() for p in net.parameters()) > 0
    monkeypatch.setenv(scan_model.MODEL_ENV, str(tmp_path / "missing.pt"))
    with pytest.raises(InputError, match="FASTEM_BENCH_MODEL"):
        scan_model.resolve_model(torch)


def test_compare_model_storage(tiny_model, capsys):
    """float16 storage of a (tiny) model: both RMSEs reported and close, the completions too.

    The 6-step model is untrained (outputs up to ~900 before clipping), so a few pixels that sit
    at the clip boundary can flip; the RMS difference stays small."""
    from fastem.bench import compare_model_storage

    res = compare_model_storage.main([str(tiny_model), "--images", "1"])
    assert 0 < res["rmse_float32"] < 1 and 0 < res["rmse_float16"] < 1
    assert abs(res["rmse_float16"] - res["rmse_float32"]) < 0.01 * res["rmse_float32"]
    assert 0 < res["rms_diff"] < 0.05 and res["rms_diff"] <= res["max_abs_diff"] <= 2
    assert "float16" in capsys.readouterr().out
