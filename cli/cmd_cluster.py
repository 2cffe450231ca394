"""``fastem cluster``: k-means (SBE, mini-batch, Lloyd) on an HDF5 dataset of points, patterns or a 4D-STEM scan.

Output layout (HDF5): ``/cluster/centroids`` (K, d) [attribute ``image_shape`` for image input],
``/cluster/labels`` (N,) int64, ``/cluster/objective`` (scalar, ``phi = 1/(2N) sum min ||x - c||^2``),
``/cluster/inertia`` (scalar, ``2 N phi``, scikit-learn's convention), ``/cluster/objectives``
(R,) per-run ``phi``, provenance in ``/process/fastem``; for patterns also ``/cluster/patterns``
(K, ky/b, kx/b), for a scan ``/cluster/label_map`` (Ny, Nx), per-cluster ``counts`` and
``mean_distance`` (see :mod:`fastem.cluster.job`).

Parses the flags, draws the progress bar and calls :func:`fastem.cluster.job.cluster_file`; its
errors name the API parameters, translated here to the flags (:func:`fastem.cluster.job.cli_message`).
"""

from __future__ import annotations

import click

from fastem.cli.formats import format_option, resolve_format
from fastem.cli.options import scheduler_option

STREAM_ABOVE_BYTES = 2 ** 31  # the default of --stream/--load (the same value as fastem.cluster.job.STREAM_ABOVE_BYTES)


def _gamma0(ctx, param, value):
    """--gamma0: a finite number > 0 (usage error naming the flag otherwise)."""
    import math

    if value is not None and not (value > 0 and math.isfinite(value)):
        raise click.BadParameter(f"must be a finite number > 0 (SBE's initial step), got {value}",
                                 param_hint="--gamma0")
    return value


@click.command("cluster")
@click.argument("source", metavar="IN.h5:/ds|IMAGES")
@click.option("-k", "--clusters", "k", type=click.IntRange(min=1), required=True, help="Number of clusters K.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Output: HDF5 (.h5, every result) or .emd / .hspy / .mrc / .tif (the centroids as images).")
@format_option("hdf5", "emd", "mrc", "tiff", "hspy")
@click.option("--algorithm", type=click.Choice(["sbe", "lloyd", "minibatch"]), default="sbe", show_default=True)
@click.option("--batch", "batch", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Mini-batch size M (sbe, minibatch).")
@click.option("--runs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Independent starts; the lowest objective is kept.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed (>= 0).")
@click.option("--init", type=click.Choice(["random", "k-means++"]), default="random", show_default=True)
@click.option("--outer", type=click.IntRange(min=1), default=100, show_default=True, help="SBE outer steps (omaxit).")
@click.option("--inner", type=click.IntRange(min=1), default=10, show_default=True,
              help="SBE inner fixed-point steps (imaxit).")
@click.option("--gamma0", type=float, default=None, callback=_gamma0,
              help="SBE initial step, finite and > 0 (default K).")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Mini-batches for --algorithm minibatch (default outer x inner).")
@click.option("--max-iter", type=click.IntRange(min=1), default=300, show_default=True, help="Lloyd iterations.")
@click.option("--dtype", type=click.Choice(["auto", "float32", "float64"]), default="auto", show_default=True,
              help="Working precision (auto: float32 data stays float32, else float64).")
@click.option("--stream/--load", "stream", default=None,
              help="Read mini-batches from disk (default when the dataset is over 2 GiB) or load it first.")
@click.option("--transform", type=click.Choice(["none", "sqrt", "log1p"]), default="none", show_default=True,
              help="Intensity transform of every pattern (of max(x, 0)).")
@click.option("--detector-mask", "detector_mask", metavar="FILE:/ds", default=None,
              help="(ky, kx) mask, nonzero = detector pixel hidden (e.g. the central beam, dead pixels).")
@click.option("--bin", "binning", type=click.Choice(["1", "2", "4"]), default="1", show_default=True,
              help="Detector binning on (ky, kx).")
@click.option("--normalize", type=click.Choice(["none", "sum", "l2"]), default="none", show_default=True,
              help="Per-pattern normalisation (after the transform).")
@click.option("--sampling", type=click.Choice(["auto", "uniform", "chunks"]), default="auto", show_default=True,
              help="Mini-batches from uniform random rows or whole HDF5 chunks (auto: chunks when streaming a "
                   "chunked dataset).")
@scheduler_option("Lloyd's full-data passes and every SBE / mini-batch step (an HDF5 dataset; batches drawn "
                  "uniformly across the partitions)")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
def command(source, k, output, out_format, algorithm, batch, runs, seed, init, outer, inner, gamma0, steps, max_iter,
            dtype, stream, transform, detector_mask, binning, normalize, sampling, scheduler, overwrite):
    """k-means of the rows of IN.h5:/ds: (N, d) points, (N, ky, kx) patterns or a (Ny, Nx, ky, kx)
    4D-STEM scan (one pattern per probe position; the labels are also written as an (Ny, Nx) map),
    by stochastic backward Euler (sbe), mini-batch k-means or Lloyd's algorithm.

    Example: fastem cluster points.h5:/data -k 8 -o clusters.h5 --algorithm sbe --batch 1000 --runs 10

    Example: fastem cluster scan.h5:/data -k 6 -o phases.h5 --transform sqrt --bin 2 --detector-mask mask.h5:/m
    """
    from fastem.backend import resolve_device
    from fastem.cluster.job import cli_message, cluster_file
    from fastem.config import settings
    from fastem.errors import InputError, NonFiniteResultError
    from fastem.progress import progress

    from fastem.executor import make_executor

    fmt = resolve_format(output, out_format, ("hdf5", "emd", "mrc", "tiff", "hspy"), "fastem cluster")
    if scheduler is not None and algorithm != "lloyd" and sampling == "chunks":
        raise click.UsageError("--scheduler draws SBE / mini-batch batches uniformly across the workers' "
                               "partitions: use --sampling auto or uniform with it")
    try:
        with progress(total=None, desc=f"cluster {algorithm} K={k}", unit="step") as bar, \
                make_executor(scheduler) as executor:
            model = cluster_file(source, output, n_clusters=k, algorithm=algorithm, batch_size=batch, n_init=runs,
                                 random_state=seed, init=init, n_outer=outer, n_inner=inner, gamma0=gamma0,
                                 n_steps=steps, max_iter=max_iter, dtype=None if dtype == "auto" else dtype,
                                 stream=stream, transform=transform, detector_mask=detector_mask,
                                 binning=int(binning), normalize=normalize, sampling=sampling, out_format=fmt,
                                 overwrite=overwrite, device=resolve_device(), progress=bar, executor=executor)
    except (InputError, NonFiniteResultError) as exc:  # name the flags, not the API parameters
        raise type(exc)(cli_message(str(exc))) from None
    if not settings.quiet:
        o = model.objectives_
        click.echo(f"{output}: K={k} {algorithm}, {runs} run(s): objective {model.objective_:.6g} "
                   f"(runs min {o.min():.6g} mean {o.mean():.6g} max {o.max():.6g}), inertia {model.inertia_:.6g}")
