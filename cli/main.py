"""The ``fastem`` command line (click).

Global options: ``--device``, ``--threads``, ``--quiet``, ``--debug``, ``--version``.
Subcommands are discovered from the modules ``fastem.cli.cmd_*``: each defines a click command
(or group) named ``command``. Adding a command therefore means adding one file.

Errors: a :class:`fastem.errors.FastemError` (bad input, missing file or dataset, existing
output, GPU unavailable) prints one line ``fastem: error: ...`` and exits with status 1;
``--debug`` shows the traceback instead. Usage errors exit with status 2 (click's convention).
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sys

import click

from fastem import __version__
from fastem.config import set_threads, settings
from fastem.errors import FastemError


class _FastemGroup(click.Group):
    """Discovers ``cmd_*`` modules and turns FastemErrors into one-line messages."""

    def _discover(self) -> None:
        if getattr(self, "_discovered", False):
            return
        self._discovered = True
        import fastem.cli as pkg

        for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
            if info.name.startswith("cmd_"):
                module = importlib.import_module(f"fastem.cli.{info.name}")
                self.add_command(module.command)

    def list_commands(self, ctx):
        self._discover()
        return super().list_commands(ctx)

    def get_command(self, ctx, name):
        self._discover()
        return super().get_command(ctx, name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except FastemError as exc:
            if settings.debug:
                raise
            click.echo(f"fastem: error: {exc}", err=True)
            ctx.exit(1)
        except (OSError, MemoryError) as exc:
            if settings.debug:
                raise
            click.echo(f"fastem: error: {type(exc).__name__}: {exc}", err=True)
            ctx.exit(1)


@click.group(cls=_FastemGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="fastem")
@click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda[:N]",
              help="Where to compute: auto = GPU when CuPy sees one, else CPU.")
@click.option("--threads", type=click.IntRange(min=0), default=0, metavar="N",
              help="CPU threads for FFTW and Numba (0 = all available cores).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or summaries.")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logging.")
def app(device: str, threads: int, quiet: bool, debug: bool) -> None:
    """fastem: fast computational electron microscopy (phase retrieval, tomography,
    clustering, training kernels, partial-scan STEM)."""
    from fastem.backend import Device

    settings.debug = debug
    settings.quiet = quiet
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(name)s: %(message)s")
    set_threads(threads or None)
    try:
        Device(device)  # validate now: one clear error instead of a failure deep inside a job
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from None
    settings.device = device


def command_line() -> str:
    """The command line of this process, for provenance records."""
    return " ".join(["fastem", *sys.argv[1:]])


def main() -> None:  # console-script entry point
    app(prog_name="fastem")


if __name__ == "__main__":  # pragma: no cover
    main()
