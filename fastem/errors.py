"""Exceptions raised at fastem's boundaries.

Every error a user can provoke with bad input is a :class:`FastemError`; its message is one
line that names the file, dataset or argument and the problem. The CLI prints it and exits
with status 1 (tracebacks only with ``--debug``).
"""

from __future__ import annotations


class FastemError(Exception):
    """Base class of every error fastem raises on purpose."""


class InputError(FastemError, ValueError):
    """Bad input data or arguments: wrong shape, dtype, non-finite values, units."""


class DatasetNotFoundError(InputError, KeyError):
    """A file or a dataset inside it does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class OutputExistsError(FastemError, FileExistsError):
    """An output would overwrite an existing file (pass ``overwrite=True`` / ``--overwrite``)."""


class DeviceUnavailableError(FastemError, RuntimeError):
    """A GPU was requested but no usable CUDA device / CuPy installation was found."""


class OutputBusyError(FastemError, RuntimeError):
    """Another process is writing the same output (its exclusive lock is held)."""


class OutputWriteError(FastemError, OSError):
    """Writing an output failed (disk full, file size limit, I/O error); the temporary file was
    removed and any existing output is intact."""


class NonFiniteResultError(FastemError, ArithmeticError):
    """A computation diverged: its result holds NaN or inf and is not written."""


class PerformanceWarning(UserWarning):
    """A setting of the host process makes fastem much slower than it can be (the message says
    what to change); the results are unaffected."""


def name_flags(message: str, prefix: str, flags: dict) -> str | None:
    """A job's API message with its parameter names replaced by the command's flags.

    For messages the job writes as ``"<prefix>: ..."`` (e.g. ``"tomo_file: center must be ..."``):
    returns the text after the prefix with every parameter name of ``flags`` (as a whole word, never
    inside a path) replaced by its flag (``center`` -> ``--center``); ``None`` when ``message``
    does not start with the prefix. The library names parameters; only the CLI calls this.
    """
    import re

    head = f"{prefix}: "
    if not message.startswith(head):
        return None
    names = "|".join(re.escape(n) for n in sorted(flags, key=len, reverse=True))
    return re.sub(r"(?<![\w/.\-])(" + names + r")(?![\w/.\-])", lambda m: flags[m.group(1)], message[len(head):])
