"""``fastem demo`` job: a synthetic micrograph, a spiral partial scan, every baseline completion.

Writes ``scan/partial_scan.h5`` (the ``fastem scan simulate`` layout), ``scan/completed.h5``
(linear completion, the ``fastem scan complete`` layout), ``scan/partial_scan.png`` (micrograph,
path, partial scan, target and each baseline with its RMSE) and ``scan/gallery.png`` (a gallery
of synthetic micrographs; ``docs/scan_gallery.png`` is made by :func:`write_gallery`).
"""

from __future__ import annotations

import pathlib

import numpy as np

ORDER = 50
SEED = 2020


def write_gallery(path, *, n: int = 8, size: int = 256, seed: int = 7, dpi: int = 60) -> pathlib.Path:
    """A 2 x n/2 gallery PNG of synthetic HAADF-STEM micrographs (for the README)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fastem.data.stem import generate_stem

    imgs, info = generate_stem(n, size, seed=seed, return_info=True, device="cpu")
    cols = (n + 1) // 2
    fig, axes = plt.subplots(2, cols, figsize=(2.2 * cols, 4.6))
    for ax, img, meta in zip(axes.flat, imgs, info):
        ax.imshow(img, cmap="gray")
        names = sorted(set(meta["structures"]))
        ax.set_title(", ".join(n.replace("_", " ") for n in names) + f"\n{meta['grains']} grain(s)", fontsize=7)
        ax.axis("off")
    for ax in list(axes.flat)[len(imgs):]:
        ax.axis("off")
    fig.tight_layout()
    out = pathlib.Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out


def run(out_dir: pathlib.Path, *, overwrite: bool = True, quick: bool = False) -> list[dict]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fastem.data.stem import generate_stem

    from .baselines import METHODS, complete_methods
    from .job import simulate_images, write_completed, write_partial_scans
    from .metrics import rmse, ssim
    from .paths import dwell_fraction, measured_coverage

    out = pathlib.Path(out_dir) / "scan"
    out.mkdir(parents=True, exist_ok=True)
    size = 128 if quick else 512
    coverage = 1 / 20   # the paper's headline setting, what the packaged model is trained for
    image = generate_stem(1, size, seed=SEED, device="cpu")
    partial, path, truth, pipe = simulate_images(image, "spiral", coverage, seed=SEED, device="cpu")
    config = {"input": f"synthetic HAADF-STEM micrograph (seed {SEED})", "path": "spiral", "coverage": coverage,
              "seed": SEED, "shape": [size, size], "path_parameter": {"spacing_px": pipe.spacing}}
    write_partial_scans(out / "partial_scan.h5", partial, path, truth, coverage=coverage, kind="spiral",
                        config=config, overwrite=overwrite)
    results = complete_methods(partial[0], path[0], METHODS)
    errors = {m: rmse(results[m], truth[0]) for m in METHODS}
    write_completed(out / "completed.h5", results["linear"][None].astype(np.float32), method="linear",
                    config={"input": "partial_scan.h5", "method": "linear", "images": 1},
                    results={"rmse": [errors["linear"]], "ssim": [ssim(results["linear"], truth[0])]},
                    overwrite=overwrite)

    model_img, model_note = _model_completion(partial, path)
    if model_img is not None:
        errors["model"] = rmse(model_img, truth[0])

    cov, dwell = float(measured_coverage(path[0])), float(dwell_fraction(path[0]))
    panels = [("micrograph (normalised)", pipe.image[0], "gray"), ("scan path (dwell)", path[0], "magma"),
              ("partial scan (infilled)", partial[0], "gray"), ("target (5x5 blur)", truth[0], "gray")]
    panels += [(f"{m}: RMSE {errors[m] * 100:.2f} %", results[m], "gray") for m in METHODS]
    if model_img is not None:
        panels.append((f"model (GAN): RMSE {errors['model'] * 100:.2f} %", model_img, "gray"))
    fig, axes = plt.subplots(2, 5, figsize=(17.5, 7.4))
    for ax in axes.flat:
        ax.axis("off")
    if model_img is None:
        axes.flat[9].text(0.5, 0.5, "model: " + model_note, ha="center", va="center", wrap=True, fontsize=9)
    for ax, (title, img, cmap) in zip(axes.flat, panels):
        ax.imshow(img, cmap=cmap, vmin=0 if cmap == "magma" else -1, vmax=1)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.suptitle(f"spiral partial scan: dose {dwell * 100:.1f} % of a full scan, {cov * 100:.1f} % of pixels visited "
                 f"({size}x{size}, RMSE on [0, 1] against the target)", fontsize=11)
    fig.tight_layout()
    fig.savefig(out / "partial_scan.png", dpi=50 if quick else 80)
    plt.close(fig)
    write_gallery(out / "gallery.png", n=4 if quick else 8, size=96 if quick else 256)
    best = min(errors, key=errors.get)
    shown = [*METHODS, *(["model"] if "model" in errors else [])]
    return [
        {"job": "scan", "output": "scan/partial_scan.h5",
         "result": f"spiral, dose fraction {dwell:.3f} (target {coverage}), pixels visited {cov:.3f}"},
        {"job": "scan", "output": "scan/partial_scan.png",
         "result": "RMSE " + ", ".join(f"{m} {errors[m] * 100:.1f} %" for m in shown) + f" (best: {best})"
                   + ("" if model_img is not None else f"; model: {model_note}")},
        {"job": "scan", "output": "scan/gallery.png", "result": "synthetic HAADF-STEM micrographs"},
    ]


def _model_completion(partial, path):
    """The packaged completion GAN's completion of ``partial[0]``, or ``(None, why not)``.

    The demo runs without PyTorch (an optional extra) and without a packaged model; it then says
    which is missing instead of failing.
    """
    try:
        import torch  # noqa: F401
    except ImportError:
        return None, "not shown (PyTorch is not installed: pip install 'fastem[torch]')"
    from fastem.nn.default_model import default_model_path
    from fastem.nn.inference import complete_partial_scans
    from fastem.nn.model import load_model

    where = default_model_path()
    if not where.is_file():
        return None, f"not shown (no packaged model at {where.name}; train one with `fastem scan train`)"
    model, _ = load_model(where, kind="completion-gan")
    done = complete_partial_scans(model, partial[:1], path[:1], device="cpu")
    return np.asarray(done[0], dtype=np.float32), ""

