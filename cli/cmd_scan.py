"""``fastem scan simulate`` and ``fastem scan complete``: partial-scan STEM from the command line.

File layout: :mod:`fastem.scan.job` (``/scan/partial``, ``/scan/path``, ``/scan/truth``,
attributes ``coverage``, ``measured_coverage``, ``dwell_fraction``; ``/scan/completed``, with
``--path-mask`` also ``/scan/completed_intensity``; provenance in ``/process/fastem``).
"""

from __future__ import annotations

from pathlib import Path

import click

from fastem.cli.formats import format_option, resolve_format
from fastem.cli.options import scheduler_option


@click.group("scan")
def command():
    """Partial-scan STEM: simulate partial scans, train the completion GAN, complete scans (baselines or model)."""


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
    from fastem.scan.job import simulate_output_bytes

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
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Output: HDF5 (.h5, every dataset) or .emd / .hspy (partial, path, truth) or .mrc / .tif "
                   "(the partial scans).")
@format_option("hdf5", "emd", "mrc", "tiff", "hspy")
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
              help="Images simulated and written per block (memory is bounded by it; with --scheduler, one task).")
@scheduler_option("the blocks of images")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
def simulate(source, output, out_format, kind, coverage, measure, antialias, scan_unblurred, seed, dose, synthetic,
             chunk, scheduler, overwrite):
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
    from fastem.scan.job import ImageStack, SyntheticStack, simulate_to_file

    if (source is None) == (synthetic is None):
        raise InputError("give either IN (an image file or FILE:/dataset) or --synthetic N")
    inputs = [source] if source else []
    fmt = resolve_format(output, out_format, ("hdf5", "emd", "mrc", "tiff", "hspy"), "fastem scan simulate")
    check_output(output, overwrite=overwrite, inputs=inputs)
    with output_lock(output):
        device = resolve_device()
        stack = SyntheticStack(synthetic, 512, seed=seed) if synthetic is not None else ImageStack(source)
        with stack:
            n = stack.n
            _check_room(output, n, stack.shape)
            options = {"measure": "coverage" if measure == "pixels" else "dwell", "antialias": antialias,
                       "scan_blurred": not scan_unblurred}
            config = {"input": stack.where if synthetic is not None else str(source), "path": kind, "scheduler": scheduler,
                      "coverage": coverage, "coverage_measure": measure, "antialias": antialias,
                      "scan_blurred": not scan_unblurred, "seed": seed, "dose": dose, "synthetic": synthetic,
                      "images": n, "shape": list(stack.shape)}
            bar = progress(n, "scan simulate", unit="image")
            from fastem.io.outputs import staged_output

            try:
                from fastem.executor import make_executor

                with staged_output(output, fmt, "scan-simulate", overwrite=overwrite, inputs=inputs,
                                   calibration=lambda: _calibration(source)) as target, \
                        make_executor(scheduler) as executor:
                    stats = simulate_to_file(target, stack, kind, coverage, seed=seed, dose=dose, device=device,
                                             chunk=chunk, bar=bar, config=config, overwrite=overwrite,
                                             inputs=inputs, options=options, executor=executor)
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
@click.argument("source", metavar="IN")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Output: HDF5 (.h5) or .emd / .hspy / .mrc / .tif (the completed scans).")
@format_option("hdf5", "emd", "mrc", "tiff", "hspy")
@click.option("--method", type=click.Choice(["nearest", "linear", "cubic", "biharmonic", "model"]), default="linear",
              show_default=True,
              help="Completion method: a non-learned baseline, or model = the completion GAN (--model, default the "
                   "packaged spiral 1/20 model; needs PyTorch).")
@click.option("--model", "model_path", type=click.Path(dir_okay=False), default=None,
              help="Completion model file from `fastem scan train` (for --method model; default: the packaged one).")
@click.option("--path-mask", "path_mask", default=None, metavar="MASK",
              help="IN is your own partial scan (image or stack, any format fastem reads) and MASK its dwell/path "
                   "mask of the same shape (FILE.h5:/ds, TIFF, MRC, ...; non-zero = sampled, values in [0, 1] = "
                   "dwell). Adds /scan/completed_intensity in IN's intensity scale.")
@click.option("--tile", type=click.IntRange(min=64), default=None,
              help="--method model: tile side in px for large images (overlapping tiles, blended)  [default: 512]")
@click.option("--batch", type=click.IntRange(min=1), default=None,
              help="--method model: tiles (or small images) per forward pass  [default: 4]")
@click.option("--ensemble", type=click.Choice(["1", "2", "4", "8"]), default=None,
              help="--method model: average the completion over this many flips / rotations of the scan and "
                   "its path (self-ensemble; 8 = all eight, 8x the time)  [default: 1]")
@scheduler_option("the completion of blocks of images (baselines)")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
def complete(source, output, out_format, method, model_path, path_mask, tile, batch, ensemble, scheduler,
             overwrite):
    """Complete the partial scans in IN and write /scan/completed (in [-1, 1]) to OUT.h5.

    IN is a `fastem scan simulate` output (/scan/partial, /scan/path; RMSE and SSIM against
    /scan/truth when present) or, with --path-mask, your own acquisition: each image is
    normalised as the model was trained (its sampled pixels' [min, max] -> [-1, 1], nearest
    infill) and the completion is also written in IN's intensity scale. --method model runs
    on --device (CPU or CUDA), any image size. Streamed: memory holds a few images.

    \b
    Examples:
      fastem scan complete scans.h5 -o completed.h5 --method model
      fastem scan complete frames.tif --path-mask mask.tif -o completed.h5 --method model
    """
    import numpy as np

    from fastem.backend import cpu_device, resolve_device
    from fastem.config import settings
    from fastem.errors import InputError
    from fastem.io import check_output, output_lock
    from fastem.progress import progress
    from fastem.scan.job import complete_file, open_scans

    if method != "model":
        for flag, value in (("--model", model_path), ("--tile", tile), ("--batch", batch), ("--ensemble", ensemble)):
            if value is not None:
                raise InputError(f"{flag} is only used with --method model")
    if scheduler is not None and method == "model":
        raise InputError("--scheduler spreads the non-learned baselines; --method model runs the network in this "
                         "process on --device (use one GPU per process for several)")
    inputs = [source] + ([path_mask] if path_mask is not None else [])
    fmt = resolve_format(output, out_format, ("hdf5", "emd", "mrc", "tiff", "hspy"), "fastem scan complete")
    check_output(output, overwrite=overwrite, inputs=inputs)
    with output_lock(output):
        with open_scans(source, path_mask) as sf:
            n, shape = sf.n, sf.shape
            if method == "model":
                from fastem.scan.job import scan_conditions

                conditions = scan_conditions(sf)
        config = {"input": str(source), "path_mask": path_mask, "method": method, "images": n}
        completer, chunk, attrs, device = None, 1, None, cpu_device
        if method == "model":
            completer, chunk, attrs, model_config = _model_completer(model_path, conditions, shape, tile or 512,
                                                                     batch or 4, int(ensemble or 1))
            config.update(model_config)
            device = resolve_device()
        bar = progress(n, f"scan complete ({method})", unit="image")
        from fastem.io.outputs import staged_output

        from fastem.executor import make_executor

        if scheduler is not None:
            chunk = max(chunk, 4)      # a task of a few images amortises the worker's reading
            config["scheduler"] = scheduler
        try:
            with staged_output(output, fmt, "scan-complete", overwrite=overwrite, inputs=inputs,
                               calibration=lambda: _calibration(source)) as target, \
                    make_executor(scheduler) as executor:
                results = complete_file(source, target, method, completer=completer, chunk=chunk,
                                        path_mask=path_mask, bar=bar, config=config, attrs=attrs, device=device,
                                        overwrite=overwrite, inputs=inputs, executor=executor)
        finally:
            bar.close()
    if not settings.quiet:
        errors, sims = results["rmse"], results["ssim"]
        extra = f", RMSE {np.mean(errors):.4f}" if errors is not None else ""
        extra += f" SSIM {np.mean(sims):.3f}" if sims is not None else ""
        extra += " against /scan/truth" if errors is not None else ""
        if path_mask is not None:
            extra += (f" (dose fraction {np.mean(results['dwell_fraction']):.4f}; /scan/completed_intensity in "
                      f"IN's scale)")
        click.echo(f"{output}: {n} completions ({method}){extra}")


def _calibration(source):
    """The pixel size of IN's image axes for the output (``None`` when IN has none)."""
    if source is None:
        return None
    from fastem.io.inputs import read_calibration

    return read_calibration(source)


def _model_completer(model_path, conditions, shape, tile: int, batch: int, ensemble: int = 1):
    """Load the completion model (``--model`` or the packaged one), warn when IN's path type or
    dose fraction differs from its record, and return ``(completer, chunk, attrs, config)`` for
    :func:`fastem.scan.job.complete_file`: batched, tiled inference on the global --device."""
    from pathlib import Path

    _need_torch("scan complete --method model")
    from fastem.errors import InputError
    from fastem.nn.completion import MODEL_KIND
    from fastem.nn.default_model import require_default_model
    from fastem.nn.inference import complete_partial_scans
    from fastem.nn.model import check_model_use, load_model

    path = Path(model_path) if model_path is not None else require_default_model()
    device = _torch_device()
    model, info = load_model(path, kind=MODEL_KIND, device=device)
    kind, coverage = conditions
    check_model_use(info, path=kind, coverage=coverage, where=f"model {path.name}")
    from fastem.io import file_digest

    digest = file_digest(path)
    # small images: `batch` whole images per forward pass; large ones: one image, `batch` tiles per pass
    chunk = batch if max(shape) <= tile else 1

    def completer(partial, dwell):
        import torch

        try:
            return complete_partial_scans(model, partial, dwell, tile=tile, batch=batch, device=device,
                                          ensemble=ensemble)
        except (torch.cuda.OutOfMemoryError, MemoryError, RuntimeError) as exc:
            text = str(exc)
            if not isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)) \
                    and "out of memory" not in text and "can't allocate memory" not in text:
                raise   # not a memory failure: a bug, shown as such
            raise InputError(f"model {path.name}: out of memory on {device} with {batch} tile(s) of up to {tile} px "
                             f"per pass; lower --batch or --tile") from None

    attrs = {"model": path.name, "model_sha256": digest, "ensemble": ensemble}
    config = {"model": {"file": path.name, "path": str(path.resolve()), "sha256": digest,
                        "packaged": model_path is None, "record": info.get("record") or {}},
              "tile": tile, "batch": batch, "ensemble": ensemble, "torch_device": device}
    return completer, chunk, attrs, config


def _torch_device() -> str:
    """The global --device as a torch device string ("cuda" when fastem runs on a GPU)."""
    from fastem.backend import resolve_device

    dev = resolve_device()
    return f"cuda:{dev.id}" if dev.id >= 0 else "cpu"


def _need_torch(command: str):
    try:
        import torch  # noqa: F401
    except ImportError:
        from fastem.errors import InputError

        raise InputError(f"{command} needs PyTorch: pip install 'fastem[torch]'") from None


def _command_line() -> str:
    """The running command with every option spelled out (defaults included): what a model card
    needs to rerun it, independent of how it was invoked."""
    import shlex

    ctx = click.get_current_context()
    words = ["fastem", *ctx.command_path.split()[1:]]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if isinstance(param, click.Argument):
            if value is not None:
                words.append(str(value))
            continue
        flag = max(param.opts, key=len)
        if getattr(param, "is_flag", False):
            if value:
                words.append(flag)
        elif value is not None:
            words += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return shlex.join(words)


def _train_progress(total: int, start: int = 0):
    """A progress bar driven by the trainer's events (only the CLI draws bars)."""
    from fastem.progress import progress

    bar = progress(total, "scan train", unit="step", initial=start)
    last = {"rmse": None}

    def callback(event):
        kind = event.get("kind")
        if kind == "train":
            bar.n = int(event["step"])
            post = {"loss_g": f"{event.get('loss_g', float('nan')):.4f}"}
            if "loss_d" in event:
                post["loss_d"] = f"{event['loss_d']:.3f}"
            if last["rmse"] is not None:
                post["val_rmse"] = f"{last['rmse']:.4f}"
            bar.set_postfix(post, refresh=False)
            bar.refresh()
        elif kind == "val":
            last["rmse"] = event.get("rmse")
    return bar, callback


@command.command("train")
@click.argument("source", required=False, metavar="[IN]")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Model file to write (MODEL.pt; its checkpoint is MODEL.pt.ckpt).")
@click.option("--path", "kind", type=click.Choice(["spiral", "grid"]), default="spiral", show_default=True,
              help="Scan path the model completes.")
@click.option("--coverage", type=float, default=1 / 20, show_default=True, callback=_coverage,
              help="Dose fraction (mean dwell) of the training scans, in (0, 1).")
@click.option("--steps", type=click.IntRange(min=1), default=2000, show_default=True, help="Training steps.")
@click.option("--crop", type=click.IntRange(min=32), default=128, show_default=True,
              help="Side of the square training crops (px, a multiple of 32).")
@click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True, help="Examples per step.")
@click.option("--synthetic", type=click.IntRange(min=1), default=None, metavar="N",
              help="Train on a pool of N synthetic micrographs (default when IN is not given: 256).")
@click.option("--width", type=click.FloatRange(min=0.05, max=1.0), default=None,
              help="Channel-width multiplier of the paper's network (1 = the paper's widths).  [default: 0.25]")
@click.option("--init", "init", type=click.Path(dir_okay=False), default=None, metavar="MODEL.pt",
              help="Start from this completion model's generator (fine-tune it, e.g. the packaged default on "
                   "your own images, or continue a finished run); its architecture is used (not with --width).")
@click.option("--lr", type=float, default=None, metavar="RATE",
              help="Generator learning rate of the first stage (the adversarial stage uses half, as the "
                   "paper's 2e-4 / 1e-4); lower it to fine-tune an --init model gently.  [default: 2e-4]")
@click.option("--adversarial/--no-adversarial", default=True, show_default=True,
              help="Run the paper's adversarial stages (the second half); --no-adversarial trains the "
                   "generator with the non-adversarial losses throughout.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the data stream, validation set and initialisation.")
@click.option("--val-count", type=click.IntRange(min=1), default=32, show_default=True,
              help="Fixed validation examples (held-out micrographs).")
@click.option("--validate-every", type=click.IntRange(min=1), default=250, show_default=True)
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=250, show_default=True)
@click.option("--curves", type=click.Path(dir_okay=False), default=None,
              help="Write the loss / validation-RMSE curves PNG here.")
@click.option("--resume", is_flag=True, help="Continue from MODEL.pt.ckpt (same IN and settings only).")
@click.option("--overwrite", is_flag=True, help="Replace MODEL.pt if it exists.")
def train(source, output, kind, coverage, steps, crop, batch, synthetic, width, init, lr, adversarial, seed,
          val_count, validate_every, checkpoint_every, curves, resume, overwrite):
    """Train the partial-scan completion GAN (seed 000) on fresh simulated partial scans of IN
    (an (N, h, w) image stack: HDF5 FILE:/ds, CXI, EMD, MRC, TIFF; the last 10 % are held out
    for validation) or of synthetic micrographs. Checkpoints beside MODEL.pt; a killed run
    continues with --resume. Runs on --device (cuda when a GPU is there).

    Example: fastem scan train --synthetic 256 -o completion.pt --path spiral --coverage 0.05 --steps 2000
    """
    import numpy as np

    from fastem.config import settings
    from fastem.errors import InputError

    _need_torch("scan train")
    from fastem.nn.completion import CompletionConfig
    from fastem.nn.train_completion import train_completion
    from fastem.scan.job import ImageStack

    if coverage >= 1.0:
        raise click.BadParameter("a full scan (1) has nothing to complete; use a value below 1", param_hint="--coverage")
    if crop % 32:
        raise click.BadParameter(f"must be a multiple of 32 (the generator halves the image 5 times), got {crop}",
                                 param_hint="--crop")
    if source is not None and synthetic is not None:
        raise InputError("give IN or --synthetic N, not both")
    if lr is not None and not (np.isfinite(lr) and 0 < lr <= 1):
        raise click.BadParameter(f"must be a finite learning rate in (0, 1], got {lr}", param_hint="--lr")
    if init is not None and width is not None:
        raise click.BadParameter("the architecture comes from the --init model; leave --width out",
                                 param_hint="--width")
    if init is not None and not Path(init).is_file():
        raise click.BadParameter(f"{init}: no such model file", param_hint="--init")
    images = val_images = None
    inputs = []
    if source is not None:
        inputs = [source]
        with ImageStack(source) as stack:
            stack_all = stack.read(0, stack.n)
            where = stack.where
        stack_all = np.nan_to_num(np.asarray(stack_all, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        if stack_all.shape[-1] < crop or stack_all.shape[-2] < crop:
            raise InputError(f"{where}: images of {stack_all.shape[-2]}x{stack_all.shape[-1]} are smaller than "
                             f"--crop {crop}")
        if stack_all.shape[0] < 2:
            raise InputError(f"{where}: needs at least 2 images (one is held out for validation)")
        n_val = max(1, stack_all.shape[0] // 10)
        images, val_images = stack_all[:-n_val], stack_all[-n_val:]
    device = _torch_device()
    bar, callback = _train_progress(steps)
    try:
        _, history, record = train_completion(
            output, images=images, val_images=val_images, synthetic=synthetic or 256, path=kind, coverage=coverage,
            steps=steps, crop=crop, batch=batch, seed=seed, device=device, init=init,
            config=CompletionConfig(width=0.25 if width is None else width, adversarial=adversarial,
                                    **({} if lr is None else {"lr_stage1": lr, "lr_stage2": lr / 2})),
            resume=resume, overwrite=overwrite, callback=callback, command=_command_line(),
            curves=curves, inputs=inputs, val_count=val_count, validate_every=validate_every,
            checkpoint_every=checkpoint_every)
    finally:
        bar.close()
    if not settings.quiet:
        lin = record.get("val_rmse_linear")
        val = record.get("val_rmse")
        extra = f", validation RMSE {val:.4f} (linear interpolation {lin:.4f})" if val is not None and lin else ""
        click.echo(f"{output}: completion model ({kind} 1/{1 / coverage:.0f}) after {steps} steps in "
                   f"{record['train_seconds']:.0f} s{extra}")
