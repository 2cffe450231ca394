"""``fastem tomo IN -o OUT``: RESIRE / SIRT / FBP tomography from Data Exchange, FILE.h5:/dataset or MRC + .tlt.

The run itself is :func:`fastem.tomo.job.tomo_file`.
"""

from __future__ import annotations

import click

from fastem.cli.formats import format_option, resolve_format
from fastem.cli.options import scheduler_option


class _FirstUpdateBar:
    """A progress bar (``make(**kw)``, :func:`fastem.progress.progress`) created at the first
    ``update``, so that nothing is drawn while the run still prints its preparation lines."""

    def __init__(self, make, **kw):
        self._make, self._kw, self._bar = make, kw, None

    def update(self, n=1):
        if self._bar is None:
            self._bar = self._make(**self._kw)
        self._bar.update(n)

    def set_postfix(self, **kw):
        if self._bar is not None:
            self._bar.set_postfix(**kw)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.close()
        return False


_WEIGHTS_HELP = ("--algorithm resire: per-pixel weights of the data term, (n, rows, cols) like the projections (0 = "
                 "unmeasured: those pixels influence nothing; otherwise inverse variances), or poisson (1 / counts). "
                 "Solved by the weighted least-squares FISTA solver with --prior (may be none).")


def _resumed_choice(output_path, projector):
    """``(prior, projector)`` of the run stored in ``output_path`` (a checkpoint or a finished
    output), so that ``--resume`` without ``--prior`` continues that run; ``(None, projector)``
    when it cannot be read (the job then reports what is wrong with it)."""
    try:
        from fastem import io

        cfg = io.read_dxchange_volume(output_path).provenance.get("configuration") or {}
    except Exception:  # noqa: BLE001 - any unreadable output: the job's own checks report it
        return None, projector
    prior = cfg.get("prior", "none") if cfg.get("algorithm") in ("resire", "regularised") else None
    if projector is None and prior is not None:
        projector = cfg.get("projector")
    return prior, projector


@click.command("tomo")
@click.argument("input_path", metavar="IN")
@click.option("-o", "--output", "output_path", required=True, type=click.Path(dir_okay=False),
              help="Output: Data Exchange .h5 (the volume (z, y, x) in /exchange/data), or .emd, .mrc, .tif, "
                   ".hspy (the volume with its voxel size).")
@format_option("hdf5", "emd", "mrc", "tiff", "hspy")
@click.option("--angles", "angles", default=None, metavar="FILE.tlt|FILE.h5:/ds",
              help="Tilt angles (degrees) for IN given as FILE.h5:/dataset or an MRC stack: a .tlt file, or an "
                   "HDF5 dataset of (n,) tilts or (n, 3) Euler ZYX angles.")
@click.option("--algorithm", type=click.Choice(["resire", "sirt", "fbp"]), default="resire", show_default=True)
@click.option("--iterations", type=click.IntRange(min=1), default=100, show_default=True,
              help="Total iterations (RESIRE, SIRT; with a prior, the most after the automatic strength search, "
                   "R-free may stop earlier); a resumed run continues up to this count.")
@click.option("--step", type=click.FloatRange(min=0.0, min_open=True, max=1e6), default=2.0, show_default=True,
              help="RESIRE normalised step t; the update uses t / (n_projections * N_z).")
@click.option("--step-normalisation", "step_normalisation", type=click.Choice(["auto", "global", "voxel"]),
              default="auto", show_default=True,
              help="RESIRE: global = the thesis' scalar step t / (n * N_z); voxel = that step divided by the fraction "
                   "of the voxel's rays that are measured, so voxels behind blocked pixels converge as fast as the "
                   "rest; auto = voxel when the mask blocks pixels and --positivity is on, else global.")
@click.option("--projector", type=click.Choice(["fst", "linear"]), default=None,
              help="Forward projection: Fourier slice (the thesis' RESIRE) or linear sub-point splatting (the "
                   "exact adjoint of the back projection). Default: linear with a --prior, fst without.")
@click.option("--oversampling", type=click.FloatRange(min=1.0, max=8.0), default=2.0, show_default=True,
              help="Zero-padding ratio of the fst projector (thesis: 2-4).")
@click.option("--positivity/--no-positivity", default=True, show_default=True,
              help="Clamp the volume at 0 after every update (RESIRE, SIRT) or at the end (FBP).")
@click.option("--thickness", type=click.IntRange(min=1), default=None,
              help="Thin film / slab thickness in voxels: the volume then covers the lateral field of view "
                   "of every tilt. Default: a volume as deep as the detector is wide.")
@click.option("--center", "center", default=None, metavar="COL|auto",
              help="Detector column (pixels, may be fractional) through which the rotation axis projects, like "
                   "TomoPy's center; default the detector middle (cols-1)/2 (ASTRA, IMOD). 'auto' estimates it "
                   "(single tilt axis) and prints the estimate and its quality.")
@click.option("--angles-convention", "angles_convention", type=click.Choice(["thesis", "fastem"]), default="thesis",
              show_default=True,
              help="thesis: RESIRE/GENFIRE Euler angles (a voxel at r lands at R^T r, thesis eq. 3.4); for one "
                   "tilt axis this is ASTRA's and TomoPy's theta. fastem: R r (theta negated).")
@click.option("--noise-level", "noise_level", type=float, default=None, metavar="SIGMA",
              help="Noise standard deviation in the data's units: RESIRE/SIRT stop when the mean absolute "
                   "residual reaches that of the noise (discrepancy principle), at most --iterations.")
@click.option("--refine-angles", "refine_angles", type=click.IntRange(min=0), default=0, show_default=True,
              metavar="ROUNDS",
              help="Before the final reconstruction, ROUNDS rounds of: RESIRE (linear) reconstruction, then a "
                   "per-projection search of the 3 Euler angles and the 2D detector shift minimising that "
                   "projection's residual (thesis 3.4). Refined angles, shifts and each round's R_F are "
                   "written to OUT.")
@click.option("--refine-iterations", "refine_iterations", type=click.IntRange(min=1), default=100,
              show_default=True, help="RESIRE iterations of every --refine-angles round.")
@click.option("--checkpoint-every", type=click.IntRange(min=0), default=0, show_default=True,
              help="Write OUT with a resumable checkpoint every N iterations (0: never).")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint stored in OUT (same inputs and "
                                             "parameters; --iterations and --checkpoint-every may change).")
@click.option("--prior", type=click.Choice(["none", "tv", "itv", "huber", "qggmrf"]), default=None,
              help="--algorithm resire: add an edge-preserving prior (anisotropic/isotropic TV, Huber, MBIR's "
                   "qGGMRF) solved by FISTA, stopped by R-free (docs/tomo_regularised.md); none = the thesis' "
                   "plain RESIRE. Default: itv for --algorithm resire (lower error than plain RESIRE, and than "
                   "tv on the noisy vesicle and cell benchmark cases up to 128^3), none with --scheduler, "
                   "--slabs, --step, --step-normalisation or --noise-level (plain RESIRE's options) and for "
                   "sirt/fbp.")
@click.option("--prior-weight", "prior_weight", default="auto", show_default=True, metavar="W|auto",
              help="Strength of --prior (>= 0), or auto: noise estimated from the measured pixels, weight chosen "
                   "by R-free on held-out pixels (both printed and recorded).")
@click.option("--weights", default=None, metavar="FILE:/ds|poisson", help=_WEIGHTS_HELP)
@scheduler_option("slabs along the rotation axis (single-axis series in HDF5; sirt, fbp, resire --projector linear)")
@click.option("--slabs", "in_process_slabs", is_flag=True,
              help="Reconstruct slab by slab along the rotation axis in this process (the same conditions as "
                   "--scheduler): the volume is never whole in memory (one slab of at most 8 MiB, at least 32 "
                   "rows, at a time; the projections are read once for validation) and is written into OUT by "
                   "region, SIRT and RESIRE equal to the whole volume bit for bit; "
                   "for series larger than the memory. See docs/distributed.md.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
def command(input_path, output_path, out_format, angles, algorithm, iterations, step, projector, oversampling,
            positivity, thickness, center, angles_convention, noise_level, refine_angles, refine_iterations,
            checkpoint_every, resume, prior, prior_weight, weights, scheduler, in_process_slabs, overwrite,
            step_normalisation):
    """Reconstruct a volume from a tilt series.

    IN is a Data Exchange file (/exchange/data, /exchange/theta in degrees or /exchange/angles
    Euler ZYX, optional /exchange/mask, flat/dark fields applied), FILE.h5:/dataset (projections
    (n, rows, cols); angles from --angles, or the file's Data Exchange angles), or an MRC stack
    with its .tlt file beside it (or --angles). Masked (0) pixels are left out of the fit and of
    the R-factor. One run at a time writes OUT; --resume refuses changed inputs or parameters.
    """
    import math

    from fastem.cli.main import command_line
    from fastem.config import settings
    from fastem.tomo.job import tomo_file

    prior_is_default = prior is None
    if prior is None and resume:
        prior, projector = _resumed_choice(output_path, projector)   # --resume continues the run as it was
    if prior is None:
        from click.core import ParameterSource

        ctx = click.get_current_context()
        plain = [flag for name, flag in (("step", "--step"), ("step_normalisation", "--step-normalisation"))
                 if ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)]
        if noise_level is not None:
            plain.append("--noise-level")
        if scheduler is not None and str(scheduler).strip().lower() not in ("", "inline"):
            plain.append("--scheduler")     # slabs on workers: the prior would couple them
        if in_process_slabs:
            plain.append("--slabs")
        prior = "itv" if algorithm == "resire" and not plain else "none"
    if projector is None:
        projector = "linear" if prior != "none" else "fst"

    for value, flag in ((step, "--step"), (oversampling, "--oversampling"), (noise_level, "--noise-level")):
        if value is not None and not math.isfinite(value):
            raise click.BadParameter(f"must be a finite number, got {value}", param_hint=flag)
    if noise_level is not None and noise_level < 0:
        raise click.BadParameter(f"must be >= 0, got {noise_level}", param_hint="--noise-level")
    if center is not None and center != "auto":
        try:
            center = float(center)
        except ValueError:
            raise click.BadParameter(f"must be a detector column in pixels or 'auto', got {center!r}",
                                     param_hint="--center") from None
        if not math.isfinite(center):
            raise click.BadParameter(f"must be a finite detector column, got {center}", param_hint="--center")

    def report_center(est):
        if not settings.quiet:
            extra = f", fit RMS {est.fit_rms:.3f} px" if est.method == "com" else f", R_F {100 * est.r_factor:.2f} %"
            click.echo(f"center: column {est.center:.2f} ({est.offset:+.2f} px from the middle; {est.method}, "
                       f"quality {est.quality:.3f}{extra})")
    if prior_weight != "auto":
        try:
            prior_weight = float(prior_weight)
        except ValueError:
            raise click.BadParameter(f"must be a number >= 0 or 'auto', got {prior_weight!r}",
                                     param_hint="--prior-weight") from None
        if not (math.isfinite(prior_weight) and prior_weight >= 0):
            raise click.BadParameter(f"must be a finite number >= 0, got {prior_weight}", param_hint="--prior-weight")

    def report_prior(info):
        if not settings.quiet:
            noise = info.get("noise_estimate")
            extra = f"noise estimate {noise:.4g} (data units), " if noise is not None else ""
            default = " (the default; --prior none runs the thesis' plain RESIRE)" if prior_is_default else ""
            click.echo(f"prior {prior}{default}: {extra}weight {info['weight']:.4g}"
                       f"{' (auto, R-free)' if prior_weight == 'auto' else ''}")
            edge = (info.get("auto") or {}).get("edge")
            if edge and edge.get("weights"):
                kept = "the weaker" if info["weight"] == edge["weights"][1] else "the stronger"
                z = "noise-free" if edge["z"] is None else f"z = {edge['z']:.2f}"
                click.echo(f"edge check (outermost {edge['projections']} projections held out in the search): "
                           f"weights {edge['weights'][0]:.4g} / {edge['weights'][1]:.4g}, edge residuals "
                           f"{edge['residuals'][0]:.6g} / {edge['residuals'][1]:.6g} ({z}); {kept} kept")

    def report_refine(r, res):
        if not settings.quiet:
            import numpy as np

            click.echo(f"refine round {r + 1}/{refine_angles}: R_F {100 * res.r_factors[-1]:.2f} %, median residual "
                       f"{float(np.median(res.residuals[-1])):.4g}, largest shift "
                       f"{float(np.abs(res.shifts).max()):.2f} px")
    fmt = resolve_format(output_path, out_format, ("hdf5", "emd", "mrc", "tiff", "hspy"), "fastem tomo",
                         hdf5_only={"--resume": resume, "--checkpoint-every": checkpoint_every > 0})
    import contextlib

    from fastem.io.inputs import read_calibration
    from fastem.io.outputs import staged_output
    from fastem.progress import progress

    # the one progress bar of a tomo run (RESIRE/SIRT iterations; FBP is one step): drawn here,
    # the library only reports to it; it appears with the first iteration, after the lines the
    # axis search and the refinement rounds print
    bar_context = (contextlib.nullcontext() if algorithm == "fbp"
                   else _FirstUpdateBar(progress, total=iterations, desc=f"tomo {algorithm}", unit="it"))
    from fastem.errors import DatasetNotFoundError, InputError, NonFiniteResultError
    from fastem.executor import make_executor
    from fastem.tomo.job import cli_message

    try:
        with bar_context as bar, staged_output(output_path, fmt, "tomo", overwrite=overwrite,
                                                inputs=[input_path] + ([weights] if weights not in (None, "poisson")
                                                                       else []),
                                                calibration=lambda: read_calibration(input_path)) as target, \
                make_executor(scheduler) as executor:
            result, _cfg = tomo_file(input_path, target, algorithm=algorithm, iterations=iterations, step=step,
                                     projector=projector, oversampling=oversampling, positivity=positivity,
                                     thickness=thickness, angles=angles, checkpoint_every=checkpoint_every,
                                     resume=resume, overwrite=overwrite, command=command_line(), center=center,
                                     angles_convention=angles_convention, noise_level=noise_level,
                                     on_center=report_center, refine_angles=refine_angles,
                                     refine_iterations=refine_iterations, on_refine=report_refine,
                                     progress=bar, prior=prior, prior_weight=prior_weight, on_prior=report_prior,
                                     executor=executor, weights=weights, step_normalisation=step_normalisation,
                                     in_process_slabs=in_process_slabs)
    except (DatasetNotFoundError, InputError, NonFiniteResultError) as exc:   # the CLI names flags
        raise type(exc)(cli_message(str(exc))) from None
    if not settings.quiet:
        stop = {"discrepancy": " (stopped: noise level reached)",
                "rfree": " (stopped: R-free stopped improving)"}.get(result.config.get("stopped"), "")
        rf = result.config.get("rfree_stop")
        if rf and rf.get("best_iteration", -1) >= 0:
            stop += f" (volume of iteration {rf['best_iteration']}, the lowest R-free)"
        click.echo(f"{algorithm}: {result.iterations} iteration(s){stop}, volume {tuple(result.volume.shape)} "
                   f"(z, y, x), axis at column {result.config.get('center', float('nan')):.2f}, "
                   f"R_F {100 * result.r_factor:.2f} % -> {output_path}")
