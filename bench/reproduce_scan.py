"""Reproduction: non-learned completion baselines on synthetic partial scans (issue 7, seed 000).

For spiral and jittered-grid paths at 1/10, 1/20, 1/40 and 1/100 of a full scan's beam time
(mean dwell, the quantity the paper's coverages measure -- see ``fastem.scan.paths``), on
``--images`` synthetic 512x512 HAADF-STEM micrographs (``fastem.data.stem``, dose 500 e/px):
RMSE (on [0, 1]) and SSIM of nearest, linear, cubic and biharmonic completion against the
blurred target. Biharmonic inpainting takes seconds per 512x512 image, so it runs on the first
``--biharmonic-images`` micrographs of each setting only (the table says how many).

Writes ``bench/results/scan_reproduction.json``, ``.md`` (the table quoted in docs/scan.md) and
``.png`` (RMS error against distance from the path, linear completion).

    .venv/bin/python bench/reproduce_scan.py                 # full: 100 images, ~30-60 min on 2 cores
    .venv/bin/python bench/reproduce_scan.py --quick         # 4 images of 128x128, seconds
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

COVERAGES = (1 / 10, 1 / 20, 1 / 40, 1 / 100)
KINDS = ("spiral", "grid")
METHODS = ("nearest", "linear", "cubic", "biharmonic")
PAPER_RMSE_1_20 = 0.026   # seed 000: the learned (non-adversarial) generator at 1/20 coverage, real data


def run(images: int = 100, size: int = 512, biharmonic_images: int = 10, seed: int = 2020,
        out_dir: Path | None = None, echo=print) -> dict:
    from fastem.data.stem import generate_stem
    from fastem.errors import InputError
    from fastem.scan import (PartialScanPipeline, complete_methods, dwell_fraction, error_vs_distance,
                             measured_coverage, rmse, ssim)

    out_dir = Path(out_dir) if out_dir else Path(__file__).resolve().parent / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    micrographs = generate_stem(images, size, seed=seed, dose=500.0, device="cpu")
    rows = []
    dist_curves = {}
    for kind in KINDS:
        for cov in COVERAGES:
            try:
                pipe = PartialScanPipeline(images, (size, size), kind, cov, measure="dwell", seed=seed, device="cpu")
            except InputError as exc:   # e.g. a grid too sparse for a small image
                rows.append({"path": kind, "coverage": cov, "skipped": str(exc)})
                echo(f"{kind:6s} 1/{round(1 / cov):<3d} skipped: {exc}")
                continue
            scans = pipe(micrographs, example_base=0)
            res = {m: {"rmse": [], "ssim": []} for m in METHODS}
            linear = []
            for i in range(images):
                methods = METHODS if i < biharmonic_images else METHODS[:3]
                done = complete_methods(scans.partial[i], scans.path[i], methods)
                for m, img in done.items():
                    res[m]["rmse"].append(rmse(img, scans.target[i]))
                    res[m]["ssim"].append(ssim(img, scans.target[i]))
                linear.append(done["linear"])
            edges, err, _ = error_vs_distance(np.stack(linear), scans.target, scans.path, bins=np.arange(0, 41, 2.0))
            dist_curves[f"{kind} 1/{round(1 / cov)}"] = (edges.tolist(), err.tolist())
            row = {"path": kind, "coverage": cov, "dwell_fraction": float(np.mean(dwell_fraction(scans.path))),
                   "pixels_visited": float(np.mean(measured_coverage(scans.path))),
                   "parameter": pipe.spacing if kind == "spiral" else pipe.u}
            for m in METHODS:
                row[m] = {"rmse_mean": float(np.mean(res[m]["rmse"])), "rmse_std": float(np.std(res[m]["rmse"])),
                          "ssim_mean": float(np.mean(res[m]["ssim"])), "images": len(res[m]["rmse"])}
            rows.append(row)
            echo(f"{kind:6s} 1/{round(1 / cov):<3d} dwell {row['dwell_fraction']:.4f} visited {row['pixels_visited']:.4f}  "
                 + "  ".join(f"{m} {row[m]['rmse_mean'] * 100:5.2f}% / {row[m]['ssim_mean']:.3f}" for m in METHODS)
                 + f"   [{time.perf_counter() - t_start:.0f} s]")
    result = {"images": images, "size": size, "biharmonic_images": min(biharmonic_images, images), "seed": seed,
              "stem_dose": 500.0, "rows": rows, "error_vs_distance_linear": dist_curves,
              "seconds": time.perf_counter() - t_start, "machine": platform.processor() or platform.machine(),
              "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])}
    stem = "scan_reproduction" if (images, size) == (100, 512) else f"scan_reproduction_{images}x{size}"
    (out_dir / f"{stem}.json").write_text(json.dumps(result, indent=2))
    (out_dir / f"{stem}.md").write_text(format_table(result))
    _plot(dist_curves, out_dir / f"{stem}.png")
    echo(format_table(result))
    return result


def format_table(result: dict) -> str:
    n, nb = result["images"], result["biharmonic_images"]
    lines = [f"RMSE on [0, 1] (mean over {n} synthetic {result['size']}x{result['size']} micrographs; biharmonic: "
             f"first {nb}) / mean SSIM. Coverage = beam time (mean dwell); 'visited' = pixels with non-zero dwell.", "",
             "| path | coverage | visited | nearest | linear | cubic | biharmonic |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in result["rows"]:
        if "skipped" in r:
            lines.append(f"| {r['path']} | 1/{round(1 / r['coverage'])} | - | n/a: {r['skipped']} | | | |")
            continue
        cells = [f"{r[m]['rmse_mean'] * 100:.2f} % / {r[m]['ssim_mean']:.3f}" for m in METHODS]
        lines.append(f"| {r['path']} | 1/{round(1 / r['coverage'])} ({r['dwell_fraction']:.4f}) | "
                     f"{r['pixels_visited']:.3f} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"The paper's learned generator: {PAPER_RMSE_1_20 * 100:.1f} % RMSE at 1/20 (real micrographs).")
    return "\n".join(lines) + "\n"


def _plot(curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, (edges, err) in curves.items():
        centres = 0.5 * (np.asarray(edges[:-1]) + np.asarray(edges[1:]))
        ax.plot(centres, np.asarray(err) * 100, label=label, ls="-" if label.startswith("spiral") else "--")
    ax.set_xlabel("distance from the scan path (px)")
    ax.set_ylabel("RMS error of linear completion (%)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=100)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--biharmonic-images", type=int, default=10)
    p.add_argument("--seed", type=int, default=2020)
    p.add_argument("--out-dir", type=Path, default=None)
    p.add_argument("--quick", action="store_true", help="4 images of 128x128 (a smoke run)")
    a = p.parse_args(argv)
    if a.quick:
        a.images, a.size, a.biharmonic_images = 4, 128, 1
    run(a.images, a.size, a.biharmonic_images, a.seed, a.out_dir)


if __name__ == "__main__":
    main()
