"""``fastem bench [NAME ...]``: run the registered benchmark cases side by side."""

from __future__ import annotations

import click


@click.command("bench")
@click.argument("names", nargs=-1)
@click.option("--quick", is_flag=True, help="Small sizes and few repeats (a smoke run, not for reporting).")
@click.option("--list", "list_only", is_flag=True, help="List the available cases and exit.")
@click.option("--out-dir", type=click.Path(file_okay=False), default=None,
              help="Where to write the JSON results, created if missing and checked before anything runs "
                   "(default: bench/results of a source checkout, else the current directory).")
@click.option("--no-write", is_flag=True, help="Print the tables only.")
def command(names, quick, list_only, out_dir, no_write):
    """Time fastem against its peers and floors; print tables with ratios; write JSON.

    The results folder is created and checked for writing before any case runs."""
    from pathlib import Path

    import fastem.bench
    from fastem.backend import resolve_device
    from fastem.benchmark import run_cases
    from fastem.config import settings

    cases = fastem.bench.discover_cases()
    if list_only:
        for name, mod in cases.items():
            click.echo(f"{name:<12} {getattr(mod, 'DESCRIPTION', '')}")
        return
    run_cases(list(names), device=resolve_device(), quick=quick, out_dir=Path(out_dir) if out_dir else None,
              echo=(lambda text: None) if settings.quiet else click.echo, write=not no_write, cases=cases)
