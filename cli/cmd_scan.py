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


def _finite_dose(ctx, param, value):
    """--dose: a finite number > 0 (usage error naming the flag otherwise)."""
    if value is None:
        return None
    from fastem.errors import InputError
    from fastem.scan.partial import check_dose

    try:
        return check_dose(value, "--dose")
    except InputError as exc:
        raise click.BadParameter(str(exc), param_hint="--dose") from None


def _coverage(ctx, param, value):
    from fastem.errors import InputError
    from fastem.scan.paths import check_coverage

    try:
        return check_coverage(value, "--coverage")
    except InputError as exc:
        raise click.BadParameter(str(exc), param_hint="--coverage") from None


#: check the free space and the file size limit above this many bytes of (uncompressed) output
CHECK_ROOM_ABOVE_BYTES = 64 << 20
#: print the size estimate above this many bytes of (uncompressed) output
ESTIMATE_ABOVE_BYTES = 1 << 30


def _size(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if nbytes < 1024 or unit == "GiB":
            return f"{nbytes:.1f} {unit}" if unit != "B" else f"{int(nbytes)} B"
        nbytes /= 1024
    return f"{nbytes:.1f} TiB"  # pragma: no cover
#: the simulate datasets compress to about this fraction of their raw size (0.35 measured on
#: synthetic micrographs: truth and partial barely compress, the path maps do); a request whose
#: estimate exceeds the free space (or ``ulimit -f``) is refused before any work
MIN_COMPRESSED_FRACTION = 0.35


def _check_room(output, n: int, shape) -> None:
    """Print an estimate for huge requests; refuse when the output cannot fit (free space, ulimit -f)."""
    import os
    import resource
    import shutil
    from pathlib import Path

    from fastem.config import settings
    from fastem.errors import InputError
    from fastem.scan.files import simulate_output_bytes

    raw = simulate_output_bytes(n, shape)
    if raw < CHECK_ROOM_ABOVE_BYTES:
        return   # small: a full disk is caught by the guarded write
    least = int(raw * MIN_COMPRESSED_FRACTION)
    folder = Path(os.path.abspath(output)).parent
    while not folder.exists():
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    what = f"{n} partial scans of {shape[0]}x{shape[1]}"
    if least > free:
        raise InputError(f"{output}: {what} need about {_size(least)} (up to {_size(raw)} uncompressed) but "
                         f"{folder} has {_size(free)} free; simulate fewer images or write elsewhere")
    if limit != resource.RLIM_INFINITY and least > limit:
        raise InputError(f"{output}: {what} need about {_size(least)} (up to {_size(raw)} uncompressed) but "
                         f"the file size limit (ulimit -f) is {_size(limit)}")
    if raw > ESTIMATE_ABOVE_BYTES and not settings.quiet:
        click.echo(f"scan simulate: {what}: output about {_size(least)} to {_size(raw)} ({_size(free)} free in "
                   f"{folder}); streamed in chunks, memory stays bounded", err=True)


@command.command("simulate")
@click.argument("source", required=False, metavar="IN")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Output HDF5 file.")
@click.option("--path", "kind", type=click.Choice(["spiral", "grid"]), default="spiral", show_default=True,
              help="Scan path.")
@click.option("--coverage", type=float, default=1 / 20, show_default=True, callback=_coverage,
              help="Beam dose (mean dwell) relative to a full scan, in (0, 1]: 0.05 cuts dose and scan time "
                   "20x, as the paper's 1/20 (solved for; 1 = full scan). See --coverage-measure.")
@click.option("--coverage-measure", "measure", type=click.Choice(["dwell", "pixels"]), default="dwell",
              show_default=True,
              help="What --coverage counts: the dose fraction (mean dwell) or the fraction of visited pixels. "
                   "Equal for the default 1-px path; they differ with --antialias.")
@click.option("--antialias", is_flag=True,
              help="Anti-aliased path: share the line between the two pixels it passes (fractional dwell) "
                   "instead of the paper's 1-px line with dwell 1.")
@click.option("--scan-unblurred", is_flag=True,
              help="Scan the unblurred image (the authors' code) instead of the blurred one the target is "
                   "(the paper's text, default: on-path samples equal the truth).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of paths, noise (and synthetic images), >= 0.")
@click.option("--dose", type=float, default=None, callback=_finite_dose,
              help="Poisson shot noise, electrons per full-dwell pixel (finite, > 0).")
@click.option("--synthetic", type=click.IntRange(min=1), default=None, metavar="N",
              help="Use N synthetic 512x512 HAADF-STEM micrographs instead of IN.")
@click.option("--chunk", type=click.IntRange(min=1), default=16, show_default=True,
              help="Images simulated and written per block (memory is bounded by it).")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
def simulate(source, output, kind, coverage, measure, antialias, scan_unblurred, seed, dose, synthetic, chunk,
             overwrite):
    """Simulate partial scans of the images in IN (an (N, h, w) or (h, w) dataset: HDF5 FILE:/ds,
    CXI, EMD, MRC or TIFF) or of --synthetic N generated micrographs. Large jobs are streamed:
    CHUNK images are generated (or read), simulated and written at a time.

    Example: fastem scan simulate --synthetic 8 -o scans.h5 --path spiral --coverage 0.05
    """
    import numpy as np

    from fastem.backend import resolve_device
    from fastem.config import settings
    from fastem.errors import InputError
    from fastem.io import check_output, output_lock
    from fastem.progress import progress
    from fastem.scan.files import ImageStack, SyntheticStack, simulate_to_file

    if (source is None) == (synthetic is None):
        raise InputError("give either IN (an image file or FILE:/dataset) or --synthetic N")
    inputs = [source] if source else []
    check_output(output, overwrite=overwrite, inputs=inputs)
    with output_lock(output):
        device = resolve_device()
        stack = SyntheticStack(synthetic, 512, seed=seed) if synthetic is not None else ImageStack(source)
        with stack:
            n = stack.n
            _check_room(output, n, stack.shape)
            options = {"measure": "coverage" if measure == "pixels" else "dwell", "antialias": antialias,
                       "scan_blurred": not scan_unblurred}
            config = {"input": stack.where if synthetic is not None else str(source), "path": kind,
                      "coverage": coverage, "coverage_measure": measure, "antialias": antialias,
                      "scan_blurred": not scan_unblurred, "seed": seed, "dose": dose, "synthetic": synthetic,
                      "images": n, "shape": list(stack.shape)}
            bar = progress(n, "scan simulate", unit="image")
            try:
                stats = simulate_to_file(output, stack, kind, coverage, seed=seed, dose=dose, device=device,
                                         chunk=chunk, bar=bar, config=config, overwrite=overwrite, inputs=inputs,
                                         options=options)
            except InputError as exc:
                text = str(exc)
                raise InputError(text if text.startswith(stack.where) else f"{stack.where}: {text}") from None
            finally:
                bar.close()
    if not settings.quiet:
        click.echo(f"{output}: {n} partial scans ({kind}{', anti-aliased' if antialias else ''}), dose fraction "
                   f"(mean dwell) {float(np.mean(stats['dwell_fraction'])):.4f}, pixels visited "
                   f"{float(np.mean(stats['measured_coverage'])):.4f} (target {measure} {coverage:.4f})")


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
    /scan/truth when IN.h5 has it). Streamed: one image at a time.

    Example: fastem scan complete scans.h5 -o completed.h5 --method linear
    """
    import numpy as np

    from fastem.config import settings
    from fastem.errors import InputError
    from fastem.io import check_output, output_lock
    from fastem.progress import progress
    from fastem.scan.files import ScanFile, complete_file

    if method == "model":
        raise InputError("--method model needs the completion GAN, which is not part of this version of fastem")
    if model_path is not None:
        raise InputError("--model is only used with --method model")
    inputs = [source]
    check_output(output, overwrite=overwrite, inputs=inputs)
    with output_lock(output):
        with ScanFile(source) as sf:
            n = sf.n
        bar = progress(n, f"scan complete ({method})", unit="image")
        try:
            results = complete_file(source, output, method, bar=bar, overwrite=overwrite, inputs=inputs,
                                    config={"input": str(source), "method": method, "images": n})
        finally:
            bar.close()
    if not settings.quiet:
        errors, sims = results["rmse"], results["ssim"]
        extra = f", RMSE {np.mean(errors):.4f}" if errors is not None else ""
        extra += f" SSIM {np.mean(sims):.3f}" if sims is not None else ""
        extra += " against /scan/truth" if errors is not None else ""
        click.echo(f"{output}: {n} completions ({method}){extra}")
