"""Reproduction: partial-scan completion on synthetic partial scans, baselines and the GAN (issues 7, 12; seed 000).

For spiral and jittered-grid paths at 1/10, 1/20, 1/40 and 1/100 of a full scan's beam time
(mean dwell, the quantity the paper's coverages measure -- see ``fastem.scan.paths``), on
``--images`` synthetic 512x512 HAADF-STEM micrographs (``fastem.data.stem``, dose 500 e/px, seed
2020, never seen in training: the training pools use other seeds): RMSE (on [0, 1]) and SSIM of
nearest, linear, cubic and biharmonic completion against the blurred target. Biharmonic
inpainting takes seconds per 512x512 image, so it runs on the first ``--biharmonic-images``
micrographs of each setting only (the table says how many).

With ``--model MODEL.pt`` (a completion GAN from ``fastem scan train``; PyTorch is imported only
then) the model completes the *same* partial scans (batched, tiled inference,
``fastem.nn.inference.complete_partial_scans``) and each row adds the model's RMSE mean/std and
SSIM, the ratio model RMSE / linear RMSE (issue 12 s.4 target: at most 0.6 at 1/20), whether the
setting is the one the model was trained for (its record's path and coverage, within the 25 %
tolerance of ``fastem.nn.model.check_model_use``) or out of distribution, and the paper's 2.6 %
(seed 000 s.3: the non-adversarial generator, spiral 1/20, real micrographs) beside spiral 1/20.
The default settings are then the paper's 1/10, 1/20, 1/40.

Outputs in ``--out-dir`` (default ``bench/results``), names with ``_{images}x{size}`` appended
unless 100 images of 512x512 and ``_{kinds}_{coverages}`` when not the default settings:

* no model: ``scan_reproduction.json``, ``.md`` (the table quoted in docs/scan.md) and ``.png``
  (RMS error of linear completion against distance from the path);
* with a model: ``scan_reproduction_model.json``, ``.md``, ``scan_reproduction_model_distance.png``
  (RMS error against distance from the path, model and linear, every setting: the paper's
  per-pixel error figure, seed 000 fig. 4, as a radial profile) and ``scan_completion_gallery.png``
  (``--gallery`` test images at spiral 1/20: the scanned samples on the path, model completion,
  linear completion, truth, |error| of both). The baseline table is left alone.

    .venv/bin/python bench/reproduce_scan.py                 # baselines: 100 images, ~30-60 min on 2 cores
    .venv/bin/python bench/reproduce_scan.py --quick         # 4 images of 128x128, seconds
    .venv/bin/python bench/reproduce_scan.py --model fastem/models/completion_spiral_1-20.pt
    .venv/bin/python bench/reproduce_scan.py --model M.pt --coverages 20 --kinds spiral --images 20
"""

from __future__ import annotations

import os as _os

from fastem.config import use_passive_openmp as _use_passive_openmp  # noqa: E402
_use_passive_openmp()  # as the CLI does: PASSIVE with a short spin (bench/results/openmp_wait_policy.md)

import argparse
import json
import math
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

COVERAGES = (1 / 10, 1 / 20, 1 / 40, 1 / 100)
MODEL_COVERAGES = (1 / 10, 1 / 20, 1 / 40)   # issue 12 s.4: the model table
KINDS = ("spiral", "grid")
METHODS = ("nearest", "linear", "cubic", "biharmonic")
PAPER_RMSE_1_20 = 0.026   # seed 000: the learned (non-adversarial) generator at 1/20 coverage, real data
TARGET_RATIO_1_20 = 0.6   # issue 12 s.4: model RMSE at most 0.6x linear interpolation's at 1/20
GALLERY_SETTING = ("spiral", 1 / 20)
DISTANCE_BINS = np.arange(0, 41, 2.0)   # px
MODEL_CHUNK = 8   # images per inference call (bounds the memory of tiled_apply's float64 accumulators)


def _label(kind: str, cov: float) -> str:
    return f"{kind} 1/{round(1 / cov)}"


def _is(cov: float, ref: float) -> bool:
    return abs(cov - ref) <= 1e-9 * ref


def run(images: int = 100, size: int = 512, biharmonic_images: int = 10, seed: int = 2020,
        out_dir: Path | None = None, echo=print, *, model=None, coverages=None, kinds=None, device: str = "cpu",
        batch: int = 4, gallery: int = 3, ensemble: int = 1) -> dict:
    """Score the baselines (and a completion model) on fixed synthetic partial scans; write the results.

    Parameters
    ----------
    images, size : int
        Number and side (px) of the synthetic test micrographs.
    biharmonic_images : int
        Biharmonic completion runs on the first this many images of each setting only.
    seed : int
        Micrographs, paths and noise (2020: never used by training, whose pools use other seeds).
    out_dir : path, optional
        Results folder (default ``bench/results`` beside this script).
    echo : callable
        Progress lines.
    model : path, optional
        A completion-GAN model file; adds the "model" method (imports PyTorch).
    coverages : sequence of float, optional
        Dose fractions (default :data:`COVERAGES`, or :data:`MODEL_COVERAGES` with a model).
    kinds : sequence of {"spiral", "grid"}, optional
    device : {"cpu", "cuda"}
        Where the model runs.
    batch : int
        Tiles per forward pass of the model.
    gallery : int
        Test images in the gallery PNG (model only; spiral 1/20).
    ensemble : {1, 2, 4, 8}
        The model's completion averaged over this many dihedral transforms of each scan
        (self-ensemble, :func:`fastem.nn.inference.tiled_apply`); files get ``_ensemble{n}``.

    Returns
    -------
    dict
        What the JSON holds: ``rows`` (one per setting, every method's ``rmse_mean``, ``rmse_std``,
        ``ssim_mean``, ``images``; with a model ``model.ratio_to_linear``, ``model.in_distribution``
        and ``paper_rmse``), error-vs-distance curves, the model record, timings and ``files``.
    """
    from fastem.data.stem import generate_stem
    from fastem.errors import InputError
    from fastem.scan import (PartialScanPipeline, complete_methods, dwell_fraction, error_vs_distance,
                             measured_coverage, rmse, ssim)

    kinds = tuple(kinds) if kinds else KINDS
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise InputError(f"kinds must be among {', '.join(KINDS)}, got {', '.join(map(str, bad))}")
    default_covs = MODEL_COVERAGES if model is not None else COVERAGES
    coverages = tuple(float(c) for c in coverages) if coverages else default_covs
    if any(not 0 < c <= 1 for c in coverages):
        raise InputError(f"coverages must be dose fractions in (0, 1], got {coverages}")
    net = info = None
    if model is not None:   # load first: a bad model file fails before minutes of baselines
        from fastem.interop import require_torch

        require_torch()
        from fastem.nn.inference import check_ensemble, complete_partial_scans
        from fastem.nn.model import load_model

        ensemble = check_ensemble(ensemble)
        net, info = load_model(model, kind="completion-gan", device=device)

    out_dir = Path(out_dir) if out_dir else Path(__file__).resolve().parent / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    micrographs = generate_stem(images, size, seed=seed, dose=500.0, device="cpu")
    rows = []
    dist_linear, dist_model = {}, {}
    shown = None   # gallery material
    model_seconds = 0.0
    for kind in kinds:
        for cov in coverages:
            label = _label(kind, cov)
            try:
                pipe = PartialScanPipeline(images, (size, size), kind, cov, measure="dwell", seed=seed, device="cpu")
            except InputError as exc:   # e.g. a grid too sparse for a small image
                rows.append({"path": kind, "coverage": cov, "skipped": str(exc)})
                echo(f"{label:11s} skipped: {exc}")
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
            linear = np.stack(linear)
            edges, err, _ = error_vs_distance(linear, scans.target, scans.path, bins=DISTANCE_BINS)
            dist_linear[label] = (edges.tolist(), err.tolist())
            row = {"path": kind, "coverage": cov, "dwell_fraction": float(np.mean(dwell_fraction(scans.path))),
                   "pixels_visited": float(np.mean(measured_coverage(scans.path))),
                   "parameter": pipe.spacing if kind == "spiral" else pipe.u}
            for m in METHODS:
                row[m] = _summary(res[m])
            if net is not None:
                t0 = time.perf_counter()
                done_model = np.concatenate([
                    complete_partial_scans(net, scans.partial[k:k + MODEL_CHUNK], scans.path[k:k + MODEL_CHUNK],
                                           batch=batch, device=device, ensemble=ensemble)
                    for k in range(0, images, MODEL_CHUNK)])
                dt = time.perf_counter() - t0
                model_seconds += dt
                if not np.all(np.isfinite(done_model)):
                    raise InputError(f"{model}: the model gave non-finite completions at {label}; nothing written")
                mres = {"rmse": [rmse(done_model[i], scans.target[i]) for i in range(images)],
                        "ssim": [ssim(done_model[i], scans.target[i]) for i in range(images)]}
                ok, why = _in_distribution(info, kind, cov)
                row["model"] = {**_summary(mres),
                                "ratio_to_linear": _summary(mres)["rmse_mean"] / row["linear"]["rmse_mean"],
                                "in_distribution": ok, "note": why, "seconds_per_image": dt / images}
                row["paper_rmse"] = PAPER_RMSE_1_20 if kind == "spiral" and _is(cov, 1 / 20) else None
                edges, err, _ = error_vs_distance(done_model, scans.target, scans.path, bins=DISTANCE_BINS)
                dist_model[label] = (edges.tolist(), err.tolist())
                if gallery > 0 and kind == GALLERY_SETTING[0] and _is(cov, GALLERY_SETTING[1]):
                    g = min(gallery, images)
                    shown = {"partial": np.array(scans.partial[:g]), "path": np.array(scans.path[:g]),
                             "model": done_model[:g], "linear": linear[:g], "target": np.array(scans.target[:g])}
            rows.append(row)
            extra = (f"  model {row['model']['rmse_mean'] * 100:5.2f}% / {row['model']['ssim_mean']:.3f} "
                     f"({row['model']['ratio_to_linear']:.2f}x linear)" if net is not None else "")
            echo(f"{label:11s} dwell {row['dwell_fraction']:.4f} visited {row['pixels_visited']:.4f}  "
                 + "  ".join(f"{m} {_cell(row[m])}" for m in METHODS)
                 + extra + f"   [{time.perf_counter() - t_start:.0f} s]")
    if net is not None and gallery > 0 and shown is None:   # spiral 1/20 not among the settings: make it
        shown = _gallery_scans(micrographs[:min(gallery, images)], size, seed, net, batch, device, ensemble)

    result = {"images": images, "size": size, "biharmonic_images": min(biharmonic_images, images), "seed": seed,
              "stem_dose": 500.0, "kinds": list(kinds), "coverages": list(coverages), "rows": rows,
              "error_vs_distance_linear": dist_linear,
              "seconds": time.perf_counter() - t_start, "machine": platform.processor() or platform.machine(),
              "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])}
    stem = "scan_reproduction_model" if net is not None else "scan_reproduction"
    suffix = "" if (images, size) == (100, 512) else f"_{images}x{size}"
    if kinds != KINDS or not (len(coverages) == len(default_covs) and all(map(_is, coverages, default_covs))):
        suffix += f"_{'-'.join(kinds)}_{'-'.join(str(round(1 / c)) for c in coverages)}"
    if net is not None and ensemble != 1:
        suffix += f"_ensemble{ensemble}"
    files = {"json": out_dir / f"{stem}{suffix}.json", "md": out_dir / f"{stem}{suffix}.md"}
    if net is not None:
        rec = info.get("record") or {}
        result.update({
            "model": {"file": str(Path(model)), "kind": info.get("kind"), "record": rec,
                      "width": (info.get("config") or {}).get("width"), "inference_device": str(device),
                      "inference_batch": int(batch), "inference_ensemble": ensemble,
                      "inference_seconds": model_seconds},
            "error_vs_distance_model": dist_model,
            "paper_rmse_1_20": PAPER_RMSE_1_20, "target_ratio_1_20": TARGET_RATIO_1_20,
            "target_met_1_20": {r["path"]: r["model"]["ratio_to_linear"] <= TARGET_RATIO_1_20
                                for r in rows if "model" in r and _is(r["coverage"], 1 / 20)}})
        files["distance_png"] = out_dir / f"{stem}{suffix}_distance.png"
        _plot_model_distance(dist_model, dist_linear, files["distance_png"])
        if shown is not None:
            files["gallery_png"] = out_dir / f"scan_completion_gallery{suffix}.png"
            _plot_gallery(shown, files["gallery_png"])
    else:
        files["png"] = out_dir / f"{stem}{suffix}.png"
        _plot(dist_linear, files["png"])
    result["files"] = {k: str(v) for k, v in files.items()}
    table = format_table(result)
    _write_text(files["json"], json.dumps(_json_safe(result), indent=2))
    _write_text(files["md"], table)
    echo(table)
    return result


def _summary(res: dict) -> dict:
    """Mean/std RMSE and mean SSIM over the images a method ran on (``None`` when it ran on none)."""
    if not res["rmse"]:
        return {"rmse_mean": None, "rmse_std": None, "ssim_mean": None, "images": 0}
    return {"rmse_mean": float(np.mean(res["rmse"])), "rmse_std": float(np.std(res["rmse"])),
            "ssim_mean": float(np.mean(res["ssim"])), "images": len(res["rmse"])}


def _cell(stats: dict) -> str:
    if stats["rmse_mean"] is None:
        return "- (not run)"
    return f"{stats['rmse_mean'] * 100:.2f} % / {stats['ssim_mean']:.3f}"


def _in_distribution(info: dict, kind: str, cov: float) -> tuple[bool, str]:
    """(trained setting?, why not) from the model record, with ``check_model_use``'s tolerance."""
    from fastem.nn.model import check_model_use

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        notes = check_model_use(info, path=kind, coverage=cov)
    return not notes, "; ".join(notes)


def _gallery_scans(micrographs, size, seed, net, batch, device, ensemble: int = 1) -> dict:
    """Spiral 1/20 scans of the first micrographs with model and linear completions (for the gallery)."""
    from fastem.nn.inference import complete_partial_scans
    from fastem.scan import PartialScanPipeline, complete

    kind, cov = GALLERY_SETTING
    pipe = PartialScanPipeline(len(micrographs), (size, size), kind, cov, measure="dwell", seed=seed, device="cpu")
    scans = pipe(micrographs, example_base=0)
    partial, path = np.array(scans.partial), np.array(scans.path)
    return {"partial": partial, "path": path,
            "model": complete_partial_scans(net, partial, path, batch=batch, device=device, ensemble=ensemble),
            "linear": np.stack([complete(p, m, method="linear") for p, m in zip(partial, path)]),
            "target": np.array(scans.target)}


def _json_safe(obj):
    """Non-finite floats -> None (empty distance bins are NaN), recursively; JSON stays valid."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def _write_text(path: Path, text: str) -> None:
    from fastem.io import atomic_output

    with atomic_output(path, overwrite=True) as tmp:
        Path(tmp).write_text(text)


def format_table(result: dict) -> str:
    """The Markdown table (with the model's columns and the model record when ``result`` has a model)."""
    n, nb = result["images"], result["biharmonic_images"]
    has_model = "model" in result
    lines = [f"RMSE on [0, 1] (mean over {n} synthetic {result['size']}x{result['size']} micrographs; biharmonic: "
             f"first {nb}) / mean SSIM. Coverage = beam time (mean dwell); 'visited' = pixels with non-zero dwell.", ""]
    head = ["path", "coverage", "visited", *METHODS]
    if has_model:
        head += ["model (RMSE ± std / SSIM)", "model / linear", "setting", "paper"]
    lines += ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in result["rows"]:
        if "skipped" in r:
            lines.append(f"| {r['path']} | 1/{round(1 / r['coverage'])} | - | n/a: {r['skipped']} |"
                         + " |" * (len(head) - 4))
            continue
        cells = [_cell(r[m]) for m in METHODS]
        if has_model:
            mo = r["model"]
            cells += [f"**{mo['rmse_mean'] * 100:.2f}** ± {mo['rmse_std'] * 100:.2f} % / {mo['ssim_mean']:.3f}",
                      f"{mo['ratio_to_linear']:.2f}", "trained" if mo["in_distribution"] else "out of distribution",
                      f"{r['paper_rmse'] * 100:.1f} %" if r.get("paper_rmse") else "-"]
        lines.append(f"| {r['path']} | 1/{round(1 / r['coverage'])} ({r['dwell_fraction']:.4f}) | "
                     f"{r['pixels_visited']:.3f} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"The paper's learned generator: {PAPER_RMSE_1_20 * 100:.1f} % RMSE at 1/20 "
                 "(spiral, real micrographs).")
    if has_model:
        m = result["model"]
        rec = m["record"] or {}
        lines.append("")
        lines.append(f"Model: `{m['file']}` ({m['kind']}, width {m['width']}), trained on {rec.get('path', '?')} "
                     f"scans at coverage {_fmt(rec.get('coverage'), '.4g')}, {rec.get('steps', '?')} steps of "
                     f"{rec.get('batch', '?')} x {rec.get('crop', '?')} px crops, "
                     f"{_fmt(rec.get('train_seconds'), '.0f')} s "
                     f"on {rec.get('device', '?')} ({rec.get('device_name', '?')}); validation RMSE "
                     f"{_pct(rec.get('val_rmse'))} vs linear {_pct(rec.get('val_rmse_linear'))}; differences from the "
                     f"paper's network: {rec.get('scaled_down', '?')}.")
        if rec.get("command"):
            lines.append(f"Training command: `{rec['command']}`.")
        ens = m.get("inference_ensemble", 1)
        how = f" with the {ens}-transform self-ensemble (`--ensemble {ens}`)" if ens != 1 else ""
        lines.append(f"Inference on {m['inference_device']}{how}, {m['inference_seconds']:.1f} s in all. 'setting': "
                     "'trained' = the model's recorded path and coverage (within 25 %), else out of distribution.")
        for r in result["rows"]:
            if "model" in r and _is(r["coverage"], 1 / 20):
                mo = r["model"]
                verdict = "met" if mo["ratio_to_linear"] <= TARGET_RATIO_1_20 else "not met"
                paper = (f"; model {mo['rmse_mean'] * 100:.2f} % vs the paper's {PAPER_RMSE_1_20 * 100:.1f} % "
                         f"({mo['rmse_mean'] / PAPER_RMSE_1_20:.2f}x; synthetic vs real micrographs)"
                         if r["path"] == "spiral" else "")
                lines.append(f"Target (issue 12): model RMSE <= {TARGET_RATIO_1_20}x linear at 1/20 -- {r['path']}: "
                             f"{mo['ratio_to_linear']:.2f}x ({verdict}){paper}.")
    return "\n".join(lines) + "\n"


def _fmt(v, spec: str) -> str:
    return "?" if v is None else format(v, spec)


def _pct(v) -> str:
    return "?" if v is None else f"{v * 100:.2f} %"


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
    _save(fig, path, dpi=80)


def _save(fig, path: Path, dpi: int) -> None:
    import matplotlib.pyplot as plt

    from fastem.io import atomic_output

    with atomic_output(path, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)


def _plot_model_distance(model_curves: dict, linear_curves: dict, path: Path) -> None:
    """RMS error vs distance from the path: model (solid) and linear (dashed), one panel per path kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [k for k in KINDS if any(lab.startswith(k) for lab in model_curves)]
    fig, axes = plt.subplots(1, max(len(kinds), 1), figsize=(5.5 * max(len(kinds), 1), 4), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, kind in zip(axes[0], kinds):
        for j, label in enumerate(lab for lab in model_curves if lab.startswith(kind)):
            c = colours[j % len(colours)]
            for curves, ls, who in ((model_curves, "-", "model"), (linear_curves, "--", "linear")):
                edges, err = curves[label]
                centres = 0.5 * (np.asarray(edges[:-1]) + np.asarray(edges[1:]))
                ax.plot(centres, np.asarray(err, dtype=float) * 100, ls=ls, color=c,
                        label=f"{label.split()[1]} {who}")
        ax.set_title(f"{kind} paths")
        ax.set_xlabel("distance from the scan path (px)")
        ax.set_ylabel("RMS error (%, intensities in [0, 1])")
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    _save(fig, path, dpi=80)


def _plot_gallery(shown: dict, path: Path) -> None:
    """Rows = test images; columns = scanned samples (path), model, linear, truth, |model err|, |linear err|."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fastem.scan import rmse

    n = shown["target"].shape[0]
    err_m = np.abs(shown["model"] - shown["target"]) / 2
    err_l = np.abs(shown["linear"] - shown["target"]) / 2
    top = float(max(np.percentile(err_m, 99.5), np.percentile(err_l, 99.5), 1e-3))
    fig, axes = plt.subplots(n, 6, figsize=(13.2, 2.3 * n), squeeze=False)
    gray = plt.get_cmap("gray").with_extremes(bad="black")   # unscanned pixels (NaN) black
    for i in range(n):
        sampled = np.where(shown["path"][i] > 0, shown["partial"][i], np.nan)
        panels = [("input: spiral 1/20 samples", sampled, gray, -1, 1),
                  (f"model: {rmse(shown['model'][i], shown['target'][i]) * 100:.2f} %", shown["model"][i], "gray",
                   -1, 1),
                  (f"linear: {rmse(shown['linear'][i], shown['target'][i]) * 100:.2f} %", shown["linear"][i], "gray",
                   -1, 1),
                  ("truth (blurred)", shown["target"][i], "gray", -1, 1),
                  ("|model - truth|", err_m[i], "magma", 0, top), ("|linear - truth|", err_l[i], "magma", 0, top)]
        for ax, (title, img, cmap, lo, hi) in zip(axes[i], panels):
            ax.imshow(img, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_title(title, fontsize=8)
            ax.set_axis_off()
    fig.suptitle(f"completion of spiral 1/20 partial scans (RMSE on [0, 1]; error maps 0-{top * 100:.0f} %)",
                 fontsize=9)
    fig.tight_layout()
    _save(fig, path, dpi=90)


def _parse_coverages(text: str) -> tuple:
    """``"10,20,40"`` (denominators) or ``"0.1,0.05"`` (fractions) -> dose fractions; errors name the flag."""
    out = []
    for tok in text.split(","):
        try:
            v = float(tok)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--coverages: {tok!r} is not a number (use e.g. 10,20,40)") from None
        if not math.isfinite(v) or v <= 0:
            raise argparse.ArgumentTypeError(f"--coverages: {tok!r} must be a positive number")
        out.append(1.0 / v if v > 1 else v)
    return tuple(out)


def _parse_kinds(text: str) -> tuple:
    kinds = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise argparse.ArgumentTypeError(f"--kinds: must be a comma list of {', '.join(KINDS)}, got {text!r}")
    return kinds


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=100)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--biharmonic-images", type=int, default=10)
    p.add_argument("--seed", type=int, default=2020)
    p.add_argument("--out-dir", type=Path, default=None)
    p.add_argument("--model", type=Path, default=None, help="completion-GAN model file: adds the 'model' method")
    p.add_argument("--coverages", type=_parse_coverages, default=None,
                   help="denominators or fractions, e.g. 10,20,40 (default 10,20,40,100; 10,20,40 with --model)")
    p.add_argument("--kinds", type=_parse_kinds, default=None, help="spiral,grid (default both)")
    p.add_argument("--device", default="cpu", help="where the model runs: cpu or cuda")
    p.add_argument("--batch", type=int, default=4, help="tiles per model forward pass")
    p.add_argument("--gallery", type=int, default=3, help="test images in the gallery PNG (with --model)")
    p.add_argument("--ensemble", type=int, choices=(1, 2, 4, 8), default=1,
                   help="average the model over this many flips / rotations of each scan (self-ensemble)")
    p.add_argument("--quick", action="store_true", help="4 images of 128x128 (a smoke run)")
    a = p.parse_args(argv)
    if a.quick:
        a.images, a.size, a.biharmonic_images = 4, 128, 1
    for flag, v, lo in (("--images", a.images, 1), ("--size", a.size, 32), ("--batch", a.batch, 1),
                        ("--biharmonic-images", a.biharmonic_images, 0), ("--gallery", a.gallery, 0)):
        if v < lo:
            p.error(f"{flag} must be >= {lo}, got {v}")
    from fastem.errors import InputError

    try:
        run(a.images, a.size, a.biharmonic_images, a.seed, a.out_dir, model=a.model, coverages=a.coverages,
            kinds=a.kinds, device=a.device, batch=a.batch, gallery=a.gallery, ensemble=a.ensemble)
    except (InputError, ImportError) as exc:
        sys.exit(f"{Path(sys.argv[0]).name}: error: {'--model ' if a.model and isinstance(exc, ImportError) else ''}"
                 f"{exc}")


if __name__ == "__main__":
    main()
