"""``fastem phase IN.cxi -o OUT.cxi``: multi-start phase retrieval (GPS-F, GPS-R, OSS, HIO, ER)."""

from __future__ import annotations

import click

from fastem.phase.engine import ALGORITHMS


@click.command("phase")
@click.argument("input_path", metavar="IN.cxi", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "output_path", required=True, metavar="OUT.cxi", type=click.Path(dir_okay=False),
              help="Output CXI file (/entry_1/image_1/data).")
@click.option("--algorithm", type=click.Choice(ALGORITHMS, case_sensitive=False), default="gps-f", show_default=True)
@click.option("--iterations", type=click.IntRange(min=1), default=1000, show_default=True, metavar="N")
@click.option("--runs", type=click.IntRange(min=1), default=1, show_default=True, metavar="R",
              help="Independent random starts, batched on one device.")
@click.option("--keep", type=click.IntRange(min=1), default=1, show_default=True, metavar="K",
              help="Runs with the lowest R_F to average (aligned to the best one).")
@click.option("--seed", type=int, default=0, show_default=True, metavar="S", help="Seed of the random starts.")
@click.option("--support", "support", default=None, metavar="FILE:/ds",
              help="0/1 support (object centred); default: estimated from the autocorrelation.")
@click.option("--sigma-schedule", default=None, metavar="F:V,...",
              help="GPS sigma over the run as fraction:value pairs [default: 0:0.01,0.4:0.1,0.7:1].")
@click.option("--checkpoint-every", type=click.IntRange(min=0), default=0, show_default=True, metavar="N",
              help="Write the output with a checkpoint every N iterations (0: never).")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint in OUT.cxi.")
@click.option("--overwrite", is_flag=True, help="Replace an existing OUT.cxi.")
def command(input_path, output_path, algorithm, iterations, runs, keep, seed, support, sigma_schedule,
            checkpoint_every, resume, overwrite):
    """Phase retrieval of the CXI diffraction pattern IN.cxi into OUT.cxi, with a progress bar
    (iteration, best R_F), provenance and results (R_F history, per-run final R_F, mean and
    variance of the kept runs)."""
    import numpy as np

    from fastem.backend import resolve_device
    from fastem.cli.main import command_line
    from fastem.config import settings
    from fastem.phase.job import phase_file
    from fastem.progress import progress

    device = resolve_device()
    with progress(total=iterations, desc=f"phase {algorithm}", unit="it") as bar:
        result, results = phase_file(input_path, output_path, algorithm=algorithm.lower(), iterations=iterations,
                                     runs=runs, keep=keep, seed=seed, support=support,
                                     sigma_schedule=sigma_schedule, checkpoint_every=checkpoint_every,
                                     resume=resume, overwrite=overwrite, device=device, progress=bar,
                                     command=command_line())
    if not settings.quiet:
        kept = result.kept_rf
        line = (f"{output_path}: {algorithm}, {runs} run(s), kept {len(kept)}: best R_F {100 * kept[0]:.2f} %, "
                f"kept R_F {100 * np.mean(kept):.2f} +- {100 * np.std(kept):.2f} %")
        if "r_real" in results:
            line += f", R_real {100 * results['r_real']:.2f} %"
        click.echo(line)
