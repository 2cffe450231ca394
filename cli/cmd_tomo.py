"""``fastem tomo IN -o OUT``: RESIRE / SIRT / FBP tomography from Data Exchange or MRC + .tlt."""

from __future__ import annotations

import click


@click.command("tomo")
@click.argument("input_path", metavar="IN", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "output_path", required=True, type=click.Path(dir_okay=False),
              help="Output Data Exchange file: the volume (z, y, x) in /exchange/data.")
@click.option("--algorithm", type=click.Choice(["resire", "sirt", "fbp"]), default="resire", show_default=True)
@click.option("--iterations", type=click.IntRange(min=1), default=100, show_default=True,
              help="Total iterations (RESIRE, SIRT); a resumed run continues up to this count.")
@click.option("--step", type=click.FloatRange(min=0.0, min_open=True), default=2.0, show_default=True,
              help="RESIRE normalised step t; the update uses t / (n_projections * N_z).")
@click.option("--projector", type=click.Choice(["fst", "linear"]), default="fst", show_default=True,
              help="RESIRE forward projection: Fourier slice (thesis) or linear sub-point splatting.")
@click.option("--oversampling", type=click.FloatRange(min=1.0, max=8.0), default=2.0, show_default=True,
              help="Zero-padding ratio of the fst projector (thesis: 2-4).")
@click.option("--positivity/--no-positivity", default=True, show_default=True,
              help="Clamp the volume at 0 after every update (RESIRE, SIRT) or at the end (FBP).")
@click.option("--thickness", type=click.IntRange(min=1), default=None,
              help="Thin film / slab thickness in voxels: the volume then covers the lateral field of view "
                   "of every tilt. Default: a volume as deep as the detector is wide.")
@click.option("--checkpoint-every", type=click.IntRange(min=0), default=0, show_default=True,
              help="Write OUT with a resumable checkpoint every N iterations (0: never).")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint stored in OUT.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
def command(input_path, output_path, algorithm, iterations, step, projector, oversampling, positivity, thickness,
            checkpoint_every, resume, overwrite):
    """Reconstruct a volume from a tilt series.

    IN is a Data Exchange file (/exchange/data, /exchange/theta in degrees or /exchange/angles
    Euler ZYX, optional /exchange/mask, flat/dark fields applied) or an MRC stack with its .tlt
    file beside it. Masked (0) pixels are left out of the fit and of the R-factor.
    """
    from pathlib import Path

    from fastem import io
    from fastem.backend import resolve_device
    from fastem.cli.main import command_line
    from fastem.config import settings
    from fastem.errors import InputError
    from fastem.tomo import Resire, Sirt, TomoProblem, fbp

    inp, out = Path(input_path), Path(output_path)
    if resume and algorithm == "fbp":
        raise InputError("--resume: FBP is a single step; there is nothing to resume")
    io.check_output(out, overwrite=overwrite or resume, inputs=[inp])
    state = None
    if resume:
        if not out.exists():
            raise InputError(f"--resume: {out} does not exist (run with --checkpoint-every first)")
        state = io.load_checkpoint_file(out, io.DX_CHECKPOINT)
    series = io.read_tilt_series(inp)
    device = resolve_device()
    command = command_line()

    def write(result_volume, cfg, results, checkpoint=None):
        prov = io.provenance(command=command, config=cfg, device=device)
        io.write_dxchange_volume(out, result_volume, provenance=prov, results=results, checkpoint=checkpoint,
                                 overwrite=True, inputs=[inp])

    if algorithm == "fbp":
        result = fbp(series.projections, series.angles, mask=series.mask, thickness=thickness,
                     positivity=positivity, device=device)
    else:
        problem = TomoProblem(series.projections, series.angles, thickness=thickness, mask=series.mask, device=device)
        if algorithm == "resire":
            solver = Resire(problem, projector=projector, oversampling=oversampling, step=step, positivity=positivity)
        else:
            solver = Sirt(problem, positivity=positivity)
        if state is not None:
            solver.restore(state)

        def checkpoint(s):
            st = s.state()
            write(st["volume"], s.config(), {"r_factor_history": st["r_factor_history"], "iterations": s.iteration},
                  checkpoint=st)

        result = solver.run(iterations, callback=checkpoint if checkpoint_every else None,
                            callback_every=checkpoint_every)
    cfg = dict(result.config, input=str(inp), iterations_requested=iterations)
    write(result.volume, cfg, {"r_factor_history": result.r_factor_history, "r_factor": result.r_factor,
                               "iterations": result.iterations, "seconds": result.seconds})
    if not settings.quiet:
        click.echo(f"{algorithm}: {result.iterations} iteration(s), volume {tuple(result.volume.shape)} (z, y, x), "
                   f"R_F {100 * result.r_factor:.2f} % -> {out}")
