"""The ``--format`` option and output-format resolution shared by every command that writes
images or volumes (see :mod:`fastem.io.outputs`). Not a command module (no ``cmd_`` prefix)."""

from __future__ import annotations

import click

FORMAT_CHOICES = ("hdf5", "h5", "emd", "mrc", "tiff", "tif", "hspy")


def format_option(*formats: str):
    """``--format`` restricted to ``formats`` (default: taken from the ``-o`` extension)."""
    shown = "|".join(formats)
    return click.option("--format", "out_format", default=None, metavar=shown,
                        type=click.Choice([c for c in FORMAT_CHOICES
                                           if {"h5": "hdf5", "tif": "tiff"}.get(c, c) in formats],
                                          case_sensitive=False),
                        help=f"Output format ({shown}); default from the -o extension (.h5/.hdf5, .emd, .mrc, "
                             f".tif, .hspy; others: hdf5). A mismatching extension is an error.")


def resolve_format(output, out_format, formats, command: str, *, hdf5_only: dict | None = None) -> str:
    """The output format for ``-o output`` and ``--format``; a usage error naming the flag when
    they disagree or the command cannot write it. ``hdf5_only`` maps flags that need the HDF5
    output (``--resume``) to whether they were given."""
    from fastem.errors import InputError
    from fastem.io.outputs import output_format

    try:
        fmt = output_format(output, out_format, allowed=formats, command=command)
    except InputError as exc:
        text = str(exc)
        flag = "--format" if text.startswith("--format ") else "-o"
        text = text[len(flag) + 1:] if text.startswith(flag + " ") else text
        raise click.BadParameter(text, param_hint=flag) from None
    for flag, given in (hdf5_only or {}).items():
        if given and fmt != "hdf5":
            raise click.BadParameter(f"needs an HDF5 output (-o NAME.h5), not {fmt}", param_hint=flag)
    return fmt
