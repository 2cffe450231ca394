"""``fastem phase IN.cxi -o OUT.cxi``: multi-start phase retrieval (GPS-F, GPS-R, OSS, HIO, ER)."""

from __future__ import annotations

import click
import numpy as np

from fastem.cli.formats import format_option
from fastem.errors import InputError, NonFiniteResultError
from fastem.phase.solver import ALGORITHMS

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """``"2G"``, ``"512M"``, ``"1.5G"``, ``"1000000"`` -> bytes (binary units, optional trailing B)."""
    t = str(text).strip().upper().removesuffix("B").removesuffix("I")
    unit = t[-1:] if t[-1:] in _UNITS and not t[-1:].isdigit() else ""
    try:
        value = float(t[: len(t) - len(unit)])
    except ValueError:
        raise InputError(f"--batch-memory {text!r}: expected a size such as 2G, 512M or 1000000") from None
    if not value > 0 or value == float("inf"):
        raise InputError(f"--batch-memory {text!r} must be a finite size > 0")
    size = int(value * _UNITS[unit])
    if size < 1:
        raise InputError(f"--batch-memory {text!r} is less than one byte")
    return size


def _pair(text: str, option: str) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in str(text).split(":"))
    except ValueError:
        raise InputError(f"{option} {text!r}: expected START:END such as 3:1.5") from None
    if not (np.isfinite(a) and np.isfinite(b) and a >= b > 0):
        raise InputError(f"{option} {text!r}: expected START:END with START >= END > 0, such as 3:1.5")
    return a, b


def _phase_range(text: str) -> tuple[float, float]:
    """``LO:HI`` -> ``(lo, hi)``, checked by the kernel's own rule (:func:`check_phase_range`)."""
    from fastem.kernels.phase_complex import check_phase_range

    try:
        lo, hi = (float(v) for v in str(text).split(":"))
    except ValueError:
        raise InputError(f"--phase-range {text!r}: expected LO:HI in radians such as -1.57:1.57") from None
    return check_phase_range((lo, hi), "--phase-range")


@click.command("phase")
@click.argument("input_path", metavar="IN.cxi|FILE.h5:/ds", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "output_path", required=True, metavar="OUT.cxi", type=click.Path(dir_okay=False),
              help="Output CXI file (/entry_1/image_1/data), or .emd / .mrc / .hspy (the object and support).")
@format_option("hdf5", "emd", "mrc", "hspy")
@click.option("--algorithm", type=click.Choice(ALGORITHMS, case_sensitive=False), default="gps-r", show_default=True)
@click.option("--iterations", type=click.IntRange(min=1), default=1000, show_default=True, metavar="N")
@click.option("--runs", type=click.IntRange(min=1), default=1, show_default=True, metavar="R",
              help="Independent random starts, batched on one device.")
@click.option("--keep", type=click.IntRange(min=1), default=1, show_default=True, metavar="K",
              help="Runs with the lowest R_F to average (aligned to the best one).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, metavar="S",
              help="Seed of the random starts (>= 0).")
@click.option("--support", "support", default=None, metavar="FILE:/ds",
              help="0/1 support (object centred); default: estimated from the autocorrelation. An input: never "
                   "overwritten.")
@click.option("--sigma-schedule", default=None, metavar="F:V,...",
              help="GPS sigma over the run as fraction:value pairs [default: gps-r 0:0.01,0.4:0.1,0.7:0.3; "
                   "gps-f 0:0.01,0.4:0.1,0.7:1].")
@click.option("--gamma-scale", type=float, default=None, metavar="G",
              help="GPS smoothing strength: multiplies gamma of every stage, >= 0 [default: 1].")
@click.option("--checkpoint-every", type=click.IntRange(min=0), default=0, show_default=True, metavar="N",
              help="Write the output with a checkpoint every N iterations (0: never).")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint in OUT.cxi.")
@click.option("--overwrite", is_flag=True, help="Replace an existing OUT.cxi.")
@click.option("--shrink-wrap/--no-shrink-wrap", default=None,
              help="Refine each run's support by shrink-wrap (Marchesini 2003): every N iterations, the image "
                   "smoothed by a Gaussian of SIGMA px and thresholded at T x its maximum, within the initial support. "
                   "Default: on without --support (the autocorrelation estimate is loose), off with it.")
@click.option("--shrink-wrap-every", type=click.IntRange(min=1), default=20, show_default=True, metavar="N")
@click.option("--shrink-wrap-threshold", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.2,
              show_default=True, metavar="T")
@click.option("--shrink-wrap-sigma", default="3:1.5", show_default=True, metavar="START:END",
              help="Gaussian width (px) at the first update and its floor; 1 % smaller per update.")
@click.option("--shrink-wrap-start", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True,
              metavar="F", help="Fraction of the iterations before shrink-wrap starts.")
@click.option("--shrink-wrap-guard", type=click.FloatRange(min=0), default=0.25, show_default=True, metavar="G",
              help="Undo a support update after which a run's best R_F grew by more than this fraction (0: off).")
@click.option("--gps-schedule", type=click.Choice(["oss", "relax"]), default="oss", show_default=True,
              help="GPS smoothing per stage: 'oss' (gamma tied to the OSS filter widths) or 'relax' (strong smoothing "
                   "early, relaxing: filter value at the array edge / Nyquist from 0.01 to 0.9).")
@click.option("--stage-restart", type=click.Choice(["stage", "global"]), default="stage", show_default=True,
              help="GPS/OSS stages restart from the previous stage's best iterate or from the best of all stages "
                   "(thesis algorithms 1-2).")
@click.option("--complex", "complex_object", is_flag=True,
              help="Reconstruct a complex-valued object (Bragg CDI, phase objects): no positivity, complex "
                   "iterates; the output image is complex. Give --phase-range when the phases are bounded: without "
                   "it only the support constrains the object (docs/phase.md).")
@click.option("--phase-range", default=None, metavar="LO:HI",
              help="With --complex: keep the phase inside the support in [LO, HI] radians (HI - LO <= pi), "
                   "e.g. -1.57:1.57 for a weak phase object.")
@click.option("--gps-dual", type=click.Choice(["feedback", "polar"]), default=None,
              help="With --complex and a GPS algorithm: the dual step at pixels whose phase is out of --phase-range: "
                   "'feedback' keeps the whole value (Fienup's HIO rule; the default for complex objects) or 'polar' "
                   "(projection onto the polar cone, the thesis' rule for real objects).")
@click.option("--generations", type=click.IntRange(min=1), default=1, show_default=True, metavar="G",
              help="Guided multi-start (cohere's generations): split each run's iterations into G generations and "
                   "breed every run with the best one between them (needs --runs >= 2; one batch in this process: "
                   "not with --scheduler; --checkpoint-every counts each generation's iterations, --resume continues "
                   "exactly). 1: plain multi-start.")
@click.option("--batch-memory", default=None, metavar="SIZE",
              help="Memory budget of one batch of runs, e.g. 2G or 512M (default: half the free GPU memory, "
                   "a quarter of the available host memory; at most the available memory); more runs are split "
                   "into chunks, same results.")
@click.option("--scheduler", default=None, metavar="ADDRESS|local",
              help="Spread the chunks of runs over Dask workers: a scheduler address (tcp://host:8786) or 'local' "
                   "(a LocalCluster on this machine). Needs dask[distributed].")
def command(input_path, output_path, out_format, algorithm, iterations, runs, keep, seed, support, sigma_schedule,
            gamma_scale, checkpoint_every, resume, overwrite, shrink_wrap, shrink_wrap_every, shrink_wrap_threshold,
            shrink_wrap_sigma, shrink_wrap_start, shrink_wrap_guard, gps_schedule, stage_restart, complex_object,
            phase_range, gps_dual, generations, batch_memory, scheduler):
    """Phase retrieval of the CXI diffraction pattern IN.cxi (or the intensities at FILE.h5:/ds)
    into OUT.cxi, with a progress bar (iteration, best R_F), provenance and results (R_F history,
    per-run final R_F, mean and variance of the kept runs). Big requests print an estimate
    (memory per run, chunks, rough time) first."""
    import numpy as np

    from fastem.backend import resolve_device
    from fastem.cli.main import command_line
    from fastem.config import settings
    from fastem.phase.job import cli_message, phase_file
    from fastem.progress import progress

    def report(line: str) -> None:
        if not settings.quiet:
            click.echo(f"fastem phase: {line}", err=True)

    max_batch_bytes = None if batch_memory is None else parse_size(batch_memory)
    sw_sigma = _pair(shrink_wrap_sigma, "--shrink-wrap-sigma")
    p_range = None if phase_range is None else _phase_range(phase_range)
    if gps_dual is not None and not complex_object:
        raise click.UsageError("--gps-dual applies to complex-valued objects: add --complex (a real object's GPS dual "
                               "step is the polar projection)")
    if p_range is not None and not complex_object:
        raise click.UsageError("--phase-range constrains a complex-valued object: add --complex (a real object is "
                               "already non-negative)")
    from fastem.cli.formats import resolve_format
    from fastem.io.outputs import staged_output

    fmt = resolve_format(output_path, out_format, ("hdf5", "emd", "mrc", "hspy"), "fastem phase",
                         hdf5_only={"--resume": resume, "--checkpoint-every": checkpoint_every > 0})
    device = resolve_device()
    try:
        with progress(total=iterations, desc=f"phase {algorithm}", unit="it") as bar, \
                staged_output(output_path, fmt, "phase", overwrite=overwrite, inputs=[input_path]) as target:
            result, results = phase_file(input_path, target, algorithm=algorithm.lower(), iterations=iterations,
                                         runs=runs, keep=keep, seed=seed, support=support,
                                         sigma_schedule=sigma_schedule, gamma_scale=gamma_scale,
                                         checkpoint_every=checkpoint_every,
                                         resume=resume, overwrite=overwrite, device=device, progress=bar,
                                         command=command_line(), shrink_wrap=shrink_wrap,
                                         shrink_wrap_every=shrink_wrap_every,
                                         shrink_wrap_threshold=shrink_wrap_threshold, shrink_wrap_sigma=sw_sigma,
                                         shrink_wrap_start=shrink_wrap_start, shrink_wrap_guard=shrink_wrap_guard,
                                         gamma_schedule=gps_schedule, stage_restart=stage_restart,
                                         max_batch_bytes=max_batch_bytes, scheduler=scheduler, report=report,
                                         complex_object=complex_object, phase_range=p_range,
                                         gps_dual=gps_dual, generations=generations)
    except (InputError, NonFiniteResultError) as exc:  # name the flags, not the API parameters
        raise type(exc)(cli_message(str(exc))) from None
    if not settings.quiet:
        kept = result.kept_rf
        line = (f"{output_path}: {algorithm}, {runs} run(s), kept {len(kept)}: best R_F {100 * kept[0]:.2f} %, "
                f"kept R_F {100 * np.mean(kept):.2f} +- {100 * np.std(kept):.2f} %")
        if "mean_rf" in results:
            line += f", R_F of the mean {100 * results['mean_rf']:.2f} %"
        if len(results.get("rejected_runs", ())):
            line += f"; outlier run(s) not averaged: {', '.join(str(int(r)) for r in results['rejected_runs'])}"
        if "r_real" in results:
            line += f", R_real {100 * results['r_real']:.2f} %"
        click.echo(line)
