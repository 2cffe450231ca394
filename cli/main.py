"""The ``fastem`` command line (click).

Global options: ``--device``, ``--threads``, ``--quiet``, ``--debug``, ``--allow-external-links``,
``--version``. Subcommands are discovered from the modules ``fastem.cli.cmd_*``: each defines a
click command (or group) named ``command``. Adding a command therefore means adding one file.

Errors: a :class:`fastem.errors.FastemError` (bad input, missing file or dataset, existing
output, a failed write, GPU unavailable) prints one line ``fastem: error: ...`` and exits with
status 1; so does an OS error (a disk full or a file size limit reads "no space left writing
OUT", a refused file "FILE: permission denied"). ``--debug`` shows the traceback instead.
Usage errors exit with status 2 (click's convention). Warnings print as one line
``fastem: warning: ...`` (``--debug``: Python's full format with the source line).

``SIGXFSZ`` is ignored, so a write past the file size limit (``ulimit -f``) fails with EFBIG,
which is reported like a full disk, instead of killing the process with a core dump.

After a failure (exit status other than 0) the process ends with ``os._exit`` once Python's own
exit handlers ran and the output streams are flushed: the HDF5 library's C-level exit handler
would otherwise try again to flush a file whose write failed (disk full) and crash the process
(SIGSEGV / SIGBUS, exit 139); for the same reason a reported error (and the frames it holds)
is kept alive until the process ends. HDF5's complaints about such a file while it is garbage-collected
("Exception ignored in ... file write failed", printed through ``sys.unraisablehook`` and
``sys.excepthook``) are dropped unless ``--debug``.
"""

from __future__ import annotations

import errno
import importlib
import logging
import pkgutil
import signal
import sys
import warnings

import click

from fastem import __version__
from fastem.config import set_threads, settings, use_passive_openmp
from fastem.errors import FastemError

#: errors reported by this process, kept alive until it exits: freeing the frames of a failed
#: HDF5 write would make h5py close the file again, and HDF5 can crash doing so (see the notes)
_REPORTED: list[BaseException] = []

#: the options through which commands name their output (used to name it in a disk-full message)
_OUTPUT_FLAGS = ("-o", "--output", "--out", "--out-dir")


def ignore_sigxfsz() -> None:
    """Ignore ``SIGXFSZ`` so that writing past ``ulimit -f`` raises EFBIG instead of killing us."""
    if hasattr(signal, "SIGXFSZ"):
        try:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        except (ValueError, OSError):  # pragma: no cover - not the main thread
            pass


def _quiet_unraisable(unraisable) -> None:
    """``sys.unraisablehook`` of the CLI: drop h5py's repeated close failures of a file whose write
    already failed for lack of space (reported once, as one line); anything else as usual."""
    from fastem.io.atomic import _is_space_error

    if not settings.debug and unraisable.exc_value is not None and _is_space_error(unraisable.exc_value):
        return
    sys.__unraisablehook__(unraisable)


def _quiet_excepthook(exc_type, exc, tb) -> None:
    """``sys.excepthook`` of the CLI: h5py's deallocator prints the same close failures through
    it (Cython's unraisable path); drop those, show anything else as usual."""
    from fastem.io.atomic import _is_space_error

    if not settings.debug and exc is not None and _is_space_error(exc):
        return
    sys.__excepthook__(exc_type, exc, tb)


def _exit_now(code) -> None:
    """End a failed run: Python's exit handlers, flushed streams, then ``os._exit`` (no C-level
    handlers, see the module notes)."""
    import atexit
    import os

    if isinstance(code, int):
        status = code
    else:  # SystemExit("message"): Python prints it and exits 1
        if code is not None:
            print(code, file=sys.stderr)
        status = 1
    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(status)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` of the CLI: ``fastem: warning: <message>`` on one line."""
    text = " ".join(str(message).split())
    stream = file if file is not None else sys.stderr
    try:
        stream.write(f"fastem: warning: {text}\n")
    except (OSError, ValueError):  # pragma: no cover - stderr closed
        pass


def _output_named_in(args) -> str | None:
    """The value of ``-o/--output/--out/--out-dir`` in ``args`` (``--out=X`` too), if any."""
    args = list(args or ())
    for i, arg in enumerate(args):
        if arg in _OUTPUT_FLAGS and i + 1 < len(args):
            return args[i + 1]
        for flag in _OUTPUT_FLAGS[1:]:
            if arg.startswith(flag + "="):
                return arg.split("=", 1)[1]
    return None


def _final_name(path: str) -> str:
    """``.out.h5.123-abcd.tmp`` -> ``out.h5`` (a temporary names the output it stands for)."""
    import os
    import re

    head, name = os.path.split(path)
    m = re.match(r"^\.(.+)\.(?:\d+-[0-9a-f]+|[A-Za-z0-9_]{8})\.tmp$", name)
    return os.path.join(head, m.group(1)) if m else path


def os_error_message(exc: BaseException, argv=None) -> str | None:
    """The one-line message for an OS-level failure that escaped a command, or ``None`` when
    ``exc`` is not one (then it is a bug and keeps its traceback).

    Disk full, file size limit and quota (ENOSPC / EFBIG / EDQUOT, also HDF5's wrapped
    ``errno = 28`` texts) read ``OUT: no space left writing the output ...``, naming the output
    given on the command line (or the file in the error); other OS errors read
    ``FILE: <reason>``.
    """
    from fastem.io.atomic import _is_space_error, write_error

    if isinstance(exc, MemoryError):
        return ("out of memory: the job needs more memory than this machine has "
                "(use smaller data, fewer runs or a smaller --batch-memory)")
    if not isinstance(exc, (OSError, RuntimeError)):
        return None
    filename = getattr(exc, "filename", None)
    if _is_space_error(exc):
        target = _output_named_in(argv) or (_final_name(str(filename)) if filename else "the output")
        return str(write_error(target, exc))
    if not isinstance(exc, OSError):
        return None
    reason = exc.strerror or (str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    if exc.errno in (errno.EACCES, errno.EPERM):
        reason = "permission denied"
    return f"{filename}: {reason}" if filename else f"{type(exc).__name__}: {reason}"


class _FastemGroup(click.Group):
    """Discovers ``cmd_*`` modules and turns FastemErrors and OS errors into one-line messages."""

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
        argv = list(ctx.args)
        allow_links = settings.allow_external_links
        try:
            with warnings.catch_warnings():  # the one-line warning format stays within the command
                return super().invoke(ctx)
        except FastemError as exc:
            if settings.debug:
                raise
            _REPORTED.append(exc)
            click.echo(f"fastem: error: {' '.join(str(exc).split())}", err=True)
            ctx.exit(1)
        except (OSError, MemoryError, RuntimeError) as exc:
            message = os_error_message(exc, argv)
            if settings.debug or message is None:
                raise
            _REPORTED.append(exc)
            click.echo(f"fastem: error: {message}", err=True)
            ctx.exit(1)
        finally:
            settings.allow_external_links = allow_links


@click.group(cls=_FastemGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="fastem")
@click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda[:N]",
              help="Where to compute: auto = GPU when CuPy sees one, else CPU.")
@click.option("--threads", type=click.IntRange(min=0), default=0, metavar="N",
              help="CPU threads for FFTW and Numba (0 = all available cores).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or summaries.")
@click.option("--debug", is_flag=True, help="Show tracebacks, debug logging and full warnings.")
@click.option("--allow-external-links", is_flag=True,
              help="Follow HDF5 external links and virtual datasets that map other files in inputs "
                   "(refused by default: a link can point at any file).")
def app(device: str, threads: int, quiet: bool, debug: bool, allow_external_links: bool) -> None:
    """fastem: fast computational electron microscopy (phase retrieval, tomography,
    clustering, training kernels, partial-scan STEM)."""
    from fastem.backend import Device

    ignore_sigxfsz()
    use_passive_openmp()   # the CLI owns its process: idle OpenMP workers sleep (see fastem.config)
    settings.debug = debug
    settings.quiet = quiet
    settings.allow_external_links = allow_external_links
    if not debug:
        warnings.showwarning = _one_line_warning
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
    ignore_sigxfsz()
    sys.unraisablehook = _quiet_unraisable
    sys.excepthook = _quiet_excepthook
    try:
        app(prog_name="fastem")
    except SystemExit as exc:
        if exc.code not in (0, None):
            _exit_now(exc.code)
        raise


if __name__ == "__main__":  # pragma: no cover
    main()
