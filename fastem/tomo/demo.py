"""``fastem demo`` job: RESIRE tomography of a vesicle phantom, with FBP beside it.

Writes under ``<out_dir>/tomo/``:

========================  ====================================================================
vesicle_tilt.h5           Data Exchange tilt series: 64^3 vesicle, 41 tilts -70..70 deg (3.5 deg
                          steps) about y, Gaussian noise 1 % of the maximum (independent ray-sum
                          projector ``fastem.data.tilt_series``)
vesicle_resire.h5         RESIRE (fst, 40 iterations) volume (z, y, x) with provenance and R_F history
slices.png                central slices XY, XZ, YZ: phantom, RESIRE, FBP
r_factor.png              RESIRE's R-factor per iteration
========================  ====================================================================

``quick=True``: 24^3, 11 tilts, 5 iterations (a smoke test used by the test suite).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ORDER = 20


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(path)


def central_slices(volume) -> list[np.ndarray]:
    """XY (central z), XZ (central y) and YZ (central x) slices of a (z, y, x) volume (rows z in XZ, YZ)."""
    nz, ny, nx = volume.shape
    return [volume[nz // 2], volume[:, ny // 2, :], volume[:, :, nx // 2]]


def slices_figure(path: Path, volumes: list[tuple[str, np.ndarray]]) -> None:
    """One row per volume (title, array), columns XY / XZ / YZ central slices, common grey scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lo, hi = 0.0, float(max(np.percentile(v, 99.9) for _, v in volumes))
    fig, axes = plt.subplots(len(volumes), 3, figsize=(9, 3 * len(volumes)), squeeze=False)
    for row, (title, vol) in zip(axes, volumes):
        for ax, img, plane in zip(row, central_slices(vol), ("XY", "XZ", "YZ")):
            ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, origin="lower")
            ax.set_title(f"{title}: {plane}", fontsize=9)
            ax.set_axis_off()
    fig.tight_layout()
    _save(fig, path)


def run(out_dir: Path, *, overwrite: bool = True, quick: bool = False) -> list[dict]:
    """Simulate a tilt series, reconstruct it with RESIRE and FBP, write volumes and PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .. import io
    from ..data import save_tilt_series, tilt_angles, tilt_series, vesicle_3d
    from . import fbp, fourier_shell_correlation, relative_error, resire

    out = Path(out_dir) / "tomo"
    out.mkdir(parents=True, exist_ok=True)
    n, step, iterations = (24, 14.0, 5) if quick else (64, 3.5, 40)
    truth = vesicle_3d(n, seed=0)
    theta = tilt_angles(-70.0, 70.0, step)
    # the file stores theta in the thesis / ASTRA / TomoPy sign (what `fastem tomo` reads by default);
    # fastem's ray-sum simulator takes the fastem sign, -theta
    projections = tilt_series(truth, -theta, noise_sigma=0.01, seed=1, centring="middle")
    series_path = out / "vesicle_tilt.h5"
    save_tilt_series(series_path, projections, theta, overwrite=overwrite,
                     config={"volume": f"vesicle_3d({n}, seed=0)", "noise_sigma": 0.01, "seed": 1})
    series = io.read_tilt_series(series_path)  # the same path the CLI takes

    result = resire(series.projections, series.angles, iterations=iterations, projector="fst",
                    convention="thesis")
    baseline = fbp(series.projections, series.angles, convention="thesis")
    volume_path = out / "vesicle_resire.h5"
    cfg = dict(result.config, input=str(series_path))
    io.write_dxchange_volume(volume_path, result.volume, provenance=io.provenance(command="fastem demo", config=cfg),
                             results={"r_factor_history": result.r_factor_history, "r_factor": result.r_factor},
                             overwrite=overwrite)

    slices_figure(out / "slices.png", [("phantom", truth), (f"RESIRE fst {iterations} it", result.volume),
                                       ("FBP", baseline.volume)])
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.semilogy(np.arange(len(result.r_factor_history)), 100 * result.r_factor_history)
    ax.set_xlabel("iteration")
    ax.set_ylabel("R_F (%)")
    ax.set_title("RESIRE R-factor", fontsize=9)
    fig.tight_layout()
    _save(fig, out / "r_factor.png")

    err_r, err_f = relative_error(result.volume, truth), relative_error(baseline.volume, truth)
    _, fsc_r, _ = fourier_shell_correlation(result.volume, truth, direction=(0, 0, 1))
    _, fsc_f, _ = fourier_shell_correlation(baseline.volume, truth, direction=(0, 0, 1))
    return [
        {"job": "tomo", "output": "tomo/vesicle_tilt.h5",
         "result": f"{len(theta)} tilts {theta[0]:g}..{theta[-1]:g} deg of a {n}^3 vesicle, noise 1 % of max"},
        {"job": "tomo", "output": "tomo/vesicle_resire.h5",
         "result": f"RESIRE fst {result.iterations} it: R_F {100 * result.r_factor:.1f} %, rel. L2 error "
                   f"{100 * err_r:.1f} %, mean FSC along z {np.nanmean(fsc_r):.2f} "
                   f"(FBP: R_F {100 * baseline.r_factor:.1f} %, error {100 * err_f:.1f} %, FSC z "
                   f"{np.nanmean(fsc_f):.2f}); {result.seconds:.1f} s"},
        {"job": "tomo", "output": "tomo/slices.png", "result": "central XY, XZ, YZ slices: phantom, RESIRE, FBP"},
    ]
