"""``fastem demo`` job 0: generate and write the synthetic data sets used by the other jobs.

Writes under ``<out_dir>/data/``:

=========================  ==========================================================================
vesicle_cdi.cxi            2D vesicle (128^2, support half the side), Poisson + Gaussian noise at
                           R_noise 6 %, beamstop radius 2 px; ground truth in /entry_1/sample_1
vesicle_3d.mrc             3D vesicle phantom (64^3)
shepp_logan_3d.mrc         modified 3D Shepp-Logan (64^3)
vesicle_tilt.h5            Data Exchange tilt series of the 3D vesicle: 41 tilts -70..70 deg step 3.5,
                           Gaussian noise 1 % of the maximum
vesicle_tilt.mrc/.tlt      the same series as an MRC stack + IMOD .tlt
vesicle_dual_axis.h5       Data Exchange Euler series (/exchange/angles): tilts about y and about x
mixture.h5                 Gaussian mixture, 20000 points x 16 features, 10 clusters
preview.png                vesicle, its diffraction pattern (log), a projection, a volume slice
=========================  ==========================================================================

``quick=True`` shrinks every size (64^2 diffraction, 32^3 volumes, 15 tilts; tests); the file names
stay the same.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ORDER = 0


def _preview(path: Path, vesicle, intensities, projection, volume_slice, r_noise) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(14, 3.8))
    panels = [
        (vesicle, "2D vesicle (object)", "gray"),
        (np.log10(1.0 + intensities), f"diffraction, log10(1+I), R_noise {100 * r_noise:.1f} %", "magma"),
        (projection, "tilt series, projection at 0 deg", "gray"),
        (volume_slice, "3D vesicle, central slice z", "gray"),
    ]
    for ax, (img, title, cmap) in zip(axes, panels):
        ax.imshow(img, cmap=cmap)
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(path)


def run(out_dir: Path, *, overwrite: bool = True, quick: bool = False) -> list[dict]:
    """Generate every synthetic data set under ``out_dir/data`` and return summary rows."""
    from . import (cdi_intensities, dual_axis_angles, gaussian_mixture, save_cdi, save_mixture, save_tilt_series,
                   save_volume, shepp_logan_3d, tilt_angles, tilt_series, vesicle_2d, vesicle_3d)

    out = Path(out_dir) / "data"
    out.mkdir(parents=True, exist_ok=True)
    n2, n3 = (64, 32) if quick else (128, 64)
    step, dual_step = (10.0, 20.0) if quick else (3.5, 6.0)
    n_points = 2000 if quick else 20000
    rows: list[dict] = []

    def row(name, result):
        rows.append({"job": "data", "output": f"data/{name}", "result": result})

    obj = vesicle_2d(n2, seed=0)
    cdi = cdi_intensities(obj, r_noise=0.06, read_noise=1.0, beamstop_radius=2, seed=0)
    save_cdi(out / "vesicle_cdi.cxi", cdi, overwrite=overwrite, config={"object": f"vesicle_2d({n2}, seed=0)"})
    row("vesicle_cdi.cxi", f"{n2}x{n2} intensities, R_noise {100 * cdi.r_noise:.1f} %, "
        f"flux {cdi.flux:.3g} photons, {int((~cdi.known).sum())} beamstop px")

    vol = vesicle_3d(n3, seed=0)
    save_volume(out / "vesicle_3d.mrc", vol, voxel_size=1.0, overwrite=overwrite,
                config={"generator": "fastem.data.vesicle_3d", "n": n3, "seed": 0})
    row("vesicle_3d.mrc", f"{n3}^3 vesicle phantom, {100 * np.mean(vol > 0):.1f} % of voxels non-zero")
    sl = shepp_logan_3d(n3)
    save_volume(out / "shepp_logan_3d.mrc", sl, voxel_size=1.0, overwrite=overwrite,
                config={"generator": "fastem.data.shepp_logan_3d", "n": n3})
    row("shepp_logan_3d.mrc", f"{n3}^3 modified Shepp-Logan, values {sl.min():.1f}..{sl.max():.1f}")

    # written as `fastem tomo` reads by default: the thesis / ASTRA / TomoPy angle sign (the
    # simulator takes fastem-sign angles, hence -theta) and the axis at the detector middle
    theta = tilt_angles(-70.0, 70.0, step)
    proj = tilt_series(vol, -theta, noise_sigma=0.01, seed=0, centring="middle")
    save_tilt_series(out / "vesicle_tilt.h5", proj, theta, mrc_path=out / "vesicle_tilt.mrc", overwrite=overwrite,
                     config={"volume": f"vesicle_3d({n3}, seed=0)", "noise_sigma": 0.01, "seed": 0,
                             "angles_convention": "thesis", "center": "middle"})
    row("vesicle_tilt.h5", f"{len(theta)} tilts {theta[0]:g}..{theta[-1]:g} deg, {proj.shape[1]}x{proj.shape[2]} "
        "px, noise 1 % of max (also vesicle_tilt.mrc + .tlt)")

    euler = dual_axis_angles(-60.0, 60.0, dual_step)
    # one non-zero Euler angle per projection: R^T is the rotation by -angle, so -euler in the fastem
    # sign is the thesis convention for the saved euler
    proj2 = tilt_series(vol, -euler, noise_sigma=0.01, seed=1, centring="middle")
    save_tilt_series(out / "vesicle_dual_axis.h5", proj2, euler, overwrite=overwrite,
                     config={"volume": f"vesicle_3d({n3}, seed=0)", "noise_sigma": 0.01, "seed": 1,
                             "angles_convention": "thesis", "center": "middle"})
    row("vesicle_dual_axis.h5", f"{len(euler)} projections, two tilt axes (y and x), Euler ZYX angles")

    X, labels, centres = gaussian_mixture(n_points, 16, 10, spread=1.0, centre_scale=10.0, seed=0)
    save_mixture(out / "mixture.h5", X, labels, centres, overwrite=overwrite,
                 config={"n_points": n_points, "n_features": 16, "n_clusters": 10, "spread": 1.0, "seed": 0})
    row("mixture.h5", f"{n_points} points x 16 features, 10 clusters")

    zero = int(np.argmin(np.abs(theta)))
    _preview(out / "preview.png", obj, cdi.intensities, proj[zero], vol[n3 // 2], cdi.r_noise)
    row("preview.png", "vesicle, diffraction (log), projection, volume slice")
    return rows
