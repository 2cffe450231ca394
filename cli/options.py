"""Click options shared by several commands."""

from __future__ import annotations

import click


def scheduler_option(what: str):
    """``--scheduler ADDRESS|local`` (env ``FASTEM_SCHEDULER``): where ``what`` runs (``fastem.executor``)."""
    return click.option("--scheduler", default=None, envvar="FASTEM_SCHEDULER", show_envvar=True,
                        metavar="ADDRESS|local",
                        help=f"Spread {what} over Dask workers: a trusted scheduler address (tcp://host:8786) or "
                             f"'local' (a LocalCluster on this machine). Same output as without. Needs "
                             f"pip install 'fastem[distributed]'. See docs/distributed.md.")
