"""``fastem scan simulate`` and ``fastem scan complete``: partial-scan STEM from the command line.

File layout: :mod:`fastem.scan.files` (``/scan/partial``, ``/scan/path``, ``/scan/truth``,
attributes ``coverage``, ``measured_coverage``, ``dwell_fraction``; ``/scan/completed``;
provenance in ``/process/fastem``).
"""

from __future__ import annotations

import click


@click.group("scan")
def command():
    """Partial-scan STEM: simulate partial scans, complete them with non-learned baselines."""


@command.command("simulate")
@click.argument("source", required=False, metavar="IN")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Output HDF5 file.")
@click.option("--path", "kind", type=click.Choice(["spiral", "grid"]), default="spiral", show_default=True,
              help="Scan path.")
@click.option("--coverage", type=float, default=1 / 20, show_default=True,
              help="Fraction of pixels the path visits, in (0, 1] (solved for; 1 = full scan).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of paths, noise (and synthetic images).")
@click.option("--dose", type=float, default=None, help="Poisson shot noise, electrons per full-dwell pixel.")
@click.option("--synthetic", type=click.IntRange(min=1), default=None, metavar="N",
              help="Use N synthetic 512x512 HAADF-STEM micrographs instead of IN.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
def simulate(source, output, kind, coverage, seed, dose, synthetic, overwrite):
    """Simulate partial scans of the images in IN (an (N, h, w) or (h, w) dataset: HDF5 FILE:/ds,
    CXI, EMD, MRC or TIFF) or of --synthetic N generated micrographs.

    Example: fastem scan simulate --synthetic 8 -o scans.h5 --path spiral --coverage 0.05
    """
    import numpy as np

    from fastem.backend import resolve_device
    from fastem.config import settings
    from fastem.errors import InputError
    from fastem.io import check_output, read_images
    from fastem.progress import progress
    from fastem.scan.files import simulate_images, write_partial_scans
    from fastem.scan.paths import check_coverage

    if (source is None) == (synthetic is None):
        raise InputError("give either IN (an image file or FILE:/dataset) or --synthetic N")
    coverage = check_coverage(coverage, "--coverage")
    inputs = [source] if source else []
    check_output(output, overwrite=overwrite, inputs=inputs)
    device = resolve_device()
    if synthetic is not None:
        from fastem.data.stem import StemGenerator

        images = StemGenerator(512, seed=seed, device="cpu")(synthetic)
        origin = f"synthetic HAADF-STEM micrographs (fastem.data.stem, seed {seed})"
    else:
        images = read_images(source)
        origin = str(source)
    n = 1 if images.ndim == 2 else images.shape[0]
    bar = progress(n, "scan simulate", unit="image")
    try:
        partial, path, truth, pipe = simulate_images(images, kind, coverage, seed=seed, dose=dose, device=device, bar=bar)
    except InputError as exc:
        raise InputError(f"{origin}: {exc}") from None
    finally:
        bar.close()
    config = {"input": origin, "path": kind, "coverage": coverage, "seed": seed, "dose": dose, "synthetic": synthetic,
              "images": n, "shape": list(partial.shape[1:]),
              "path_parameter": {"spacing_px": pipe.spacing} if kind == "spiral" else {"u": pipe.u, "amp": pipe.amp}}
    stats = write_partial_scans(output, partial, path, truth, coverage=coverage, kind=kind, config=config,
                                device=device, overwrite=overwrite, inputs=inputs)
    if not settings.quiet:
        click.echo(f"{output}: {n} partial scans ({kind}), coverage {float(np.mean(stats['measured_coverage'])):.4f} "
                   f"(target {coverage:.4f}), mean dwell {float(np.mean(stats['dwell_fraction'])):.4f}")


@command.command("complete")
@click.argument("source", metavar="IN.h5")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Output HDF5 file.")
@click.option("--method", type=click.Choice(["nearest", "linear", "cubic", "biharmonic", "model"]), default="linear",
              show_default=True, help="Completion method (model: the GAN, not available yet).")
@click.option("--model", "model_path", type=click.Path(dir_okay=False), default=None,
              help="Trained completion network (for --method model).")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
def complete(source, output, method, model_path, overwrite):
    """Complete the partial scans in IN.h5 (/scan/partial and /scan/path, as written by
    `fastem scan simulate`) and write /scan/completed to OUT.h5 (with RMSE and SSIM against
    /scan/truth when IN.h5 has it).

    Example: fastem scan complete scans.h5 -o completed.h5 --method linear
    """
    import numpy as np

    from fastem.config import settings
    from fastem.errors import InputError
    from fastem.io import check_output
    from fastem.progress import progress
    from fastem.scan import complete as complete_one
    from fastem.scan import rmse, ssim
    from fastem.scan.files import read_partial_scans, write_completed

    if method == "model":
        raise InputError("--method model needs the completion GAN, which is not part of this version of fastem")
    if model_path is not None:
        raise InputError("--model is only used with --method model")
    check_output(output, overwrite=overwrite, inputs=[source])
    partial, path, truth = read_partial_scans(source)
    n = partial.shape[0]
    completed = np.empty(partial.shape, np.float32)
    errors, sims = [], []
    bar = progress(n, f"scan complete ({method})", unit="image")
    try:
        for i in range(n):
            try:
                completed[i] = complete_one(partial[i], path[i], method)
            except InputError as exc:
                raise InputError(f"{source}: image {i}: {exc}") from None
            if truth is not None:
                errors.append(rmse(completed[i], truth[i]))
                if min(truth.shape[-2:]) >= 12:
                    sims.append(ssim(completed[i], truth[i]))
                bar.set_postfix(RMSE=f"{np.mean(errors):.4f}")
            bar.update(1)
    finally:
        bar.close()
    results = {"rmse": np.array(errors) if errors else None, "ssim": np.array(sims) if sims else None}
    write_completed(output, completed, method=method, config={"input": str(source), "method": method, "images": n},
                    results=results, overwrite=overwrite, inputs=[source])
    if not settings.quiet:
        extra = f", RMSE {np.mean(errors):.4f}" if errors else ""
        extra += f" SSIM {np.mean(sims):.3f}" if sims else ""
        extra += " against /scan/truth" if errors else ""
        click.echo(f"{output}: {n} completions ({method}){extra}")
