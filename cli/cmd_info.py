"""``fastem info FILE [FILE ...]``: print the structure of HDF5/CXI/Data Exchange/EMD/MRC/TIFF files."""

from __future__ import annotations

import click


@click.command("info")
@click.argument("files", nargs=-1, required=True, metavar="FILE[:/DATASET] ...")
def command(files):
    """Show what a file holds: the tree of groups and datasets with shapes, dtypes and key
    attributes (HDF5, CXI, Data Exchange, EMD), or the header essentials (MRC, TIFF, .tlt).

    Example: fastem info data/vesicle_cdi.cxi
    """
    from fastem.io import describe

    for i, name in enumerate(files):
        if i:
            click.echo("")
        click.echo(describe(name))
