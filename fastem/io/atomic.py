"""Safe output files: temporary file + rename, no silent overwrite, never into an input.

Every fastem writer goes through :func:`atomic_output`::

    with atomic_output("out.h5", overwrite=False, inputs=["in.h5"]) as tmp:
        with h5py.File(tmp, "w") as f:
            ...                       # write everything into the temporary file
    # here out.h5 exists, complete; on an exception it is untouched (or still absent)

The temporary file lives in the destination folder (``.out.h5.XXXX.tmp``), so the final
``os.replace`` is an atomic rename on the same file system: a crash or an exception never
leaves a half-written output behind, and an existing output is replaced only when the new one
is complete. :func:`atomic_update` rewrites an existing HDF5 file the same way (copy, modify,
rename), which is how checkpoints are added to an output during a long run.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import InputError, OutputBusyError, OutputExistsError, OutputWriteError

__all__ = ["atomic_output", "atomic_update", "check_output", "same_file", "output_lock",
           "clean_stale_temporaries", "write_error"]

#: errno values that mean "the disk (or the file size limit) is full"
_SPACE_ERRNOS = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}
_SPACE_WORDS = ("no space left", "file too large", "disk quota", "errno = 28", "errno = 27", "errno = 122")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def same_file(a, b) -> bool:
    """True when the paths ``a`` and ``b`` name the same file (hard links and symlinks included)."""
    pa, pb = Path(a), Path(b)
    try:
        if pa.exists() and pb.exists():
            return os.path.samefile(pa, pb)
    except OSError:
        pass
    return pa.resolve() == pb.resolve()


def check_output(path, *, overwrite: bool = False, inputs: Iterable = ()) -> Path:
    """Validate an output path before any work is done; returns it as a ``Path``.

    Raises
    ------
    InputError
        The output is one of ``inputs`` (even with ``overwrite``) or is a folder.
    OutputExistsError
        The output exists and ``overwrite`` is false.
    """
    from .hdf5 import parse_ref

    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise InputError(f"output path must be a non-empty str or os.PathLike, got {path!r:.80}")
    final = Path(path)
    for inp in inputs or ():
        if inp is None:
            continue
        inp_path = parse_ref(inp)[0] if isinstance(inp, str) else Path(inp)
        if same_file(final, inp_path):
            raise InputError(f"{final}: the output would overwrite the input {inp_path}; choose another output name")
    if final.is_dir():
        raise InputError(f"{final}: the output is a folder; give a file name")
    for ancestor in final.parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise InputError(f"{final}: cannot create the output: {ancestor} is a file, not a folder")
            break
    if final.exists() and not overwrite:
        raise OutputExistsError(f"{final}: output exists (pass --overwrite / overwrite=True to replace it)")
    return final


def _is_space_error(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in _SPACE_ERRNOS:
        return True
    text = str(exc).lower()
    return isinstance(exc, (OSError, RuntimeError)) and any(w in text for w in _SPACE_WORDS)


def write_error(final, exc: BaseException) -> OutputWriteError:
    """The one-line :class:`~fastem.errors.OutputWriteError` for a failed write of ``final``."""
    if _is_space_error(exc):
        return OutputWriteError(f"{final}: no space left writing the output (disk full or file size limit); "
                                f"nothing was written and any existing output is intact")
    reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0][:200] or type(exc).__name__
    return OutputWriteError(f"{final}: writing the output failed ({reason}); nothing was written and any "
                            f"existing output is intact")


def _temp_name(final: Path) -> Path:
    """``.NAME.PID-RANDOM.tmp`` beside ``final``: the PID lets a later run tell a stale one."""
    return final.with_name(f".{final.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temporaries(path) -> list[Path]:
    """Remove temporaries of ``path`` (``.NAME.PID-XXXX.tmp``) left by processes that no longer run.

    Temporaries of the old naming (``.NAME.XXXXXXXX.tmp``, no PID) are removed when they are
    older than one hour. Returns the removed paths. Called when a run takes the output's lock,
    so a killed run's leftovers disappear on the next run of the same output.
    """
    import time

    final = Path(path)
    parent = final.parent if str(final.parent) else Path(".")
    removed = []
    pattern = re.compile(r"^\." + re.escape(final.name) + r"\.(?:(\d+)-[0-9a-f]+|[A-Za-z0-9_]{8})\.tmp$")
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        m = pattern.match(entry.name)
        if not m or not entry.is_file(follow_symlinks=False):
            continue
        pid = m.group(1)
        try:
            if pid is not None:
                if int(pid) == os.getpid() or _pid_alive(int(pid)):
                    continue
            elif time.time() - entry.stat().st_mtime < 3600:
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            pass
    return removed


class _OutputLock:
    """An exclusive ``flock`` on ``.NAME.lock`` beside the output, held by one process at a time."""

    def __init__(self, final: Path):
        self.final = final
        self.lock_path = final.with_name(f".{final.name}.lock")
        self.fd: int | None = None

    def acquire(self) -> None:
        import fcntl

        parent = self.final.parent if str(self.final.parent) else Path(".")
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"{self.final}: cannot create the output folder {parent} ({exc.strerror})") from None
        for _ in range(20):
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise InputError(f"{self.final}: cannot write in {parent} ({exc.strerror})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                try:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                finally:
                    os.close(fd)
                raise OutputBusyError(
                    f"{self.final}: another fastem process (pid {holder}) is writing this output; wait for it "
                    f"to finish or choose another output name") from None
            # the holder before us may have removed the lock file after we opened it: retry then
            try:
                same = os.fstat(fd).st_ino == os.stat(self.lock_path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            self.fd = fd
            clean_stale_temporaries(self.final)
            return
        raise OutputBusyError(f"{self.final}: could not lock the output (lock file keeps changing)")

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.lock_path)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


_held_locks: dict[Path, int] = {}


@contextmanager
def output_lock(path) -> Iterator[Path]:
    """Hold an exclusive lock on the output ``path`` for a whole run.

    A second process asking for the same output fails at once with
    :class:`~fastem.errors.OutputBusyError` (one line, naming the holder's PID), so two runs
    never write (checkpoints included) into one file. On entry, temporaries of ``path`` left by
    killed processes are removed (:func:`clean_stale_temporaries`). Re-entrant within a process.

    Usage::

        with output_lock(out):
            ...   # the whole run: checkpoint writes, the final write
    """
    final = Path(os.path.abspath(path))
    if final in _held_locks:
        _held_locks[final] += 1
        try:
            yield final
        finally:
            _held_locks[final] -= 1
        return
    lock = _OutputLock(final)
    lock.acquire()
    _held_locks[final] = 1
    try:
        yield final
    finally:
        del _held_locks[final]
        lock.release()


@contextmanager
def atomic_output(path, *, overwrite: bool = False, inputs: Iterable = ()) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    Parameters
    ----------
    path : str or os.PathLike
        The final output file. Missing parent folders are created.
    overwrite : bool
        Replace an existing output (otherwise :class:`~fastem.errors.OutputExistsError`).
    inputs : iterable of paths or ``FILE:/dataset`` strings
        Every file the job reads (data, supports, masks, models, angle files); writing onto one
        of them is refused even with ``overwrite``.

    Yields
    ------
    pathlib.Path
        A temporary file ``.NAME.PID-XXXX.tmp`` in the destination folder. It already exists
        (empty, created to reserve the name): open it in a truncating write mode
        (``h5py.File(tmp, "w")``, ``mrcfile.new(tmp, overwrite=True)``, ``open(tmp, "w")``).

    Raises
    ------
    OutputExistsError
        ``path`` exists and ``overwrite`` is false -- also when another process created it
        while this one was writing: without ``overwrite`` the final step is a no-replace link,
        so a concurrent writer is never clobbered.
    OutputWriteError
        Disk full, file size limit or another I/O error while writing: one line, the temporary
        file is removed and an existing output is left as it was.

    Notes
    -----
    On success the file gets the usual permissions (``0o666 & ~umask``) and is renamed with
    ``os.replace`` (with ``overwrite``) or hard-linked into place (without); on any exception
    the temporary file is removed and the exception propagates.
    """
    final = check_output(path, overwrite=overwrite, inputs=inputs)
    parent = final.parent if str(final.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{final}: cannot create the output folder {parent} ({exc.strerror})") from None
    tmp = _temp_name(final)
    try:
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise InputError(f"{final}: cannot write in {parent} ({exc.strerror})") from None
    os.close(fd)
    try:
        try:
            yield tmp
        except (OSError, RuntimeError) as exc:
            if isinstance(exc, (OutputExistsError, OutputBusyError, OutputWriteError, InputError)):
                raise
            if _is_space_error(exc) or (isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError)
                                        and _writing_failed(exc)):
                raise write_error(final, exc) from exc
            raise
        os.chmod(tmp, 0o666 & ~_umask())
        if overwrite:
            os.replace(tmp, final)
        else:
            _link_no_replace(tmp, final)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise


def _writing_failed(exc: OSError) -> bool:
    text = str(exc).lower()
    return exc.errno in (errno.EIO, errno.EROFS) or "write failed" in text or "can't write" in text


def _link_no_replace(tmp: Path, final: Path) -> None:
    """Move ``tmp`` onto ``final`` only if ``final`` does not exist (atomically, where links work)."""
    try:
        os.link(tmp, final)
    except FileExistsError:
        raise OutputExistsError(f"{final}: output exists (another process created it meanwhile; pass "
                                f"--overwrite / overwrite=True to replace it)") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise write_error(final, exc) from exc
        # no hard links on this file system: best effort
        if final.exists():
            raise OutputExistsError(f"{final}: output exists (pass --overwrite / overwrite=True to replace it)") \
                from None
        os.replace(tmp, final)
        return
    os.unlink(tmp)


@contextmanager
def atomic_update(path, *, inputs: Iterable = (), create: bool = True) -> Iterator["h5py.File"]:
    """Modify an HDF5 file as a whole: copy it, open the copy, rename it back on success.

    Yields an ``h5py.File`` opened read/write on a temporary copy of ``path`` (a new empty
    file when ``path`` does not exist and ``create``). On success the copy replaces ``path``
    atomically; on an exception ``path`` is left exactly as it was. Used to add checkpoints to
    an output during a run (:func:`fastem.io.save_checkpoint_file`).
    """
    import h5py

    final = Path(path)
    if not final.exists() and not create:
        from ..errors import DatasetNotFoundError

        raise DatasetNotFoundError(f"{final}: no such file")
    with atomic_output(final, overwrite=True, inputs=inputs) as tmp:
        if final.exists():
            shutil.copyfile(final, tmp)
            f = h5py.File(tmp, "r+")
        else:
            f = h5py.File(tmp, "w")
        try:
            yield f
        finally:
            f.close()
