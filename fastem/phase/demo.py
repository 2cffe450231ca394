"""``fastem demo`` job: GPS-R phase retrieval (the default algorithm) of the synthetic vesicle, end to end through CXI.

Writes under ``<out_dir>/phase/``:

=====================  ========================================================================
vesicle_cdi.cxi        the input: 2D vesicle (128^2), Poisson + Gaussian noise at R_noise 6 %,
                       beamstop radius 2 px, ground truth in /entry_1/sample_1
vesicle_gpsr.cxi       GPS-R, 16 random starts x 1000 iterations, mean of the best 5
                       (support: the file's dilated true support)
vesicle_gpsr.png       object, reconstruction (mean of the kept runs), R_F curves of every run
                       of GPS-R next to HIO and OSS from the same 16 starts
=====================  ========================================================================

``quick=True``: 64^2, 4 starts x 200 iterations (tests).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ORDER = 10


def _preview(path: Path, obj, result, curves, r_real_mean) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fastem.io import atomic_output

    from .metrics import align

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), gridspec_kw={"width_ratios": [1, 1, 1.4]})
    recon = align(result.image, obj)[0]
    axes[0].imshow(obj, cmap="gray")
    axes[0].set_title("vesicle (ground truth)", fontsize=9)
    axes[1].imshow(recon, cmap="gray")
    axes[1].set_title(f"GPS-R, mean of best {len(result.kept_runs)}: R_F {100 * result.kept_rf[0]:.2f} %, "
                      f"R_real {100 * r_real_mean:.1f} %", fontsize=9)
    for ax in axes[:2]:
        ax.set_axis_off()
    colours = {"gps-r": "C0", "hio": "C3", "oss": "C2"}
    for name, (its, rfs) in curves.items():
        for r in range(rfs.shape[1]):
            axes[2].plot(its, 100 * rfs[:, r], color=colours[name], lw=0.6, alpha=0.6,
                         label=name.upper() if r == 0 else None)
    axes[2].set_xlabel("iteration")
    axes[2].set_ylabel("R_F (%)")
    axes[2].set_yscale("log")
    axes[2].set_title("R_F of every run (same random starts)", fontsize=9)
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    with atomic_output(path, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def run(out_dir: Path, *, overwrite: bool = True, quick: bool = False) -> list[dict]:
    """Simulate the vesicle data, run GPS-R (the default; CXI in, CXI out), HIO and OSS for the R_F curves."""
    from fastem.data import cdi_intensities, save_cdi, vesicle_2d

    from .job import phase_file
    from .multistart import retrieve

    out = Path(out_dir) / "phase"
    out.mkdir(parents=True, exist_ok=True)
    n, runs, iterations = (64, 4, 200) if quick else (128, 16, 1000)
    keep = min(5, runs)
    cdi = cdi_intensities(vesicle_2d(n, seed=0), r_noise=0.06, read_noise=1.0, beamstop_radius=2, seed=0)
    cxi_in = out / "vesicle_cdi.cxi"
    save_cdi(cxi_in, cdi, overwrite=overwrite, config={"object": f"vesicle_2d({n}, seed=0)"})
    cxi_out = out / "vesicle_gpsr.cxi"
    result, results = phase_file(cxi_in, cxi_out, algorithm="gps-r", iterations=iterations, runs=runs, keep=keep,
                                 seed=0, support=f"{cxi_in}:/entry_1/sample_1/support", overwrite=overwrite,
                                 command=f"fastem demo (phase job{', quick' if quick else ''})")
    curves = {"gps-r": (result.history_iterations, result.history_rf)}
    for name in ("hio", "oss"):
        other = retrieve(cdi.intensities, cdi.known, cdi.support, algorithm=name, iterations=iterations,
                         runs=runs, keep=keep, seed=0)
        curves[name] = (other.history_iterations, other.history_rf)
    png = out / "vesicle_gpsr.png"
    _preview(png, cdi.object, result, curves, results["r_real"])
    summary = (f"R_noise {100 * cdi.r_noise:.1f} %; GPS-R {runs} runs x {iterations} it: best R_F "
               f"{100 * result.kept_rf[0]:.2f} %, R_real (mean of {keep}) {100 * results['r_real']:.1f} %; "
               f"HIO best R_F {100 * np.min(curves['hio'][1]):.2f} %, OSS {100 * np.min(curves['oss'][1]):.2f} %")
    return [{"job": "phase", "output": "phase/vesicle_gpsr.cxi", "result": summary},
            {"job": "phase", "output": "phase/vesicle_gpsr.png", "result": "object, reconstruction, R_F curves"}]
