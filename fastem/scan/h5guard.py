"""HDF5 writes that survive a full disk: the file I/O goes through Python, never fails inside HDF5.

HDF5 2.0 (h5py 3.16) crashes the process (SIGSEGV, exit 139) when it closes a file after one of
its writes failed -- with ``ulimit -f`` or a full disk, ``fastem scan simulate`` and
``scan complete`` died that way and left their temporaries behind, and ``cluster`` crashed at
exit after printing its error. :func:`guarded_h5` opens the HDF5 file on a Python file object
(h5py's ``fileobj`` driver) whose ``write`` never reports a failure to HDF5: the first
``OSError`` (ENOSPC, EFBIG, EIO, ...) is recorded and later writes are skipped, so HDF5 never
enters its failure path. Writers call :meth:`GuardedFile.check` between blocks (to stop early)
and the context manager raises the recorded error, as a one-line
:class:`~fastem.errors.OutputWriteError`, once HDF5 has closed the file. The output is then
garbage, but it is the temporary of :func:`fastem.io.atomic_output`, which removes it.
"""

from __future__ import annotations

import io
import os
from contextlib import contextmanager
from typing import Iterator

__all__ = ["GuardedFile", "guarded_h5"]


class GuardedFile(io.RawIOBase):
    """A read/write file object for h5py that records write failures instead of raising them.

    Parameters
    ----------
    path : str or os.PathLike
        An existing file (the atomic temporary), opened read/write and truncated.
    final : str or os.PathLike, optional
        The output's real name, for messages.
    """

    def __init__(self, path, final=None):
        super().__init__()
        self.final = final if final is not None else path
        self._fd = os.open(path, os.O_RDWR | os.O_TRUNC)
        self._pos = 0
        self._size = 0          # the size HDF5 believes the file has
        self.error: OSError | None = None

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 0:
            self._pos = int(offset)
        elif whence == 1:
            self._pos += int(offset)
        else:
            self._pos = self._size + int(offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer) -> int:
        n = os.preadv(self._fd, [buffer], self._pos)
        self._pos += n
        return n

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        n = len(view)
        if self.error is None:
            done = 0
            try:
                while done < n:
                    done += os.pwrite(self._fd, view[done:], self._pos + done)
            except OSError as exc:
                self.error = exc
        self._pos += n
        self._size = max(self._size, self._pos)
        return n

    def truncate(self, size=None) -> int:
        size = self._pos if size is None else int(size)
        if self.error is None:
            try:
                os.ftruncate(self._fd, size)
            except OSError as exc:
                self.error = exc
        self._size = size
        return size

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        super().close()

    def check(self) -> None:
        """Raise the recorded write failure (one-line :class:`~fastem.errors.OutputWriteError`)."""
        if self.error is not None:
            from fastem.io.atomic import write_error

            raise write_error(self.final, self.error)


@contextmanager
def guarded_h5(tmp, final=None) -> Iterator["h5py.File"]:
    """``h5py.File`` opened for writing on ``tmp`` through a :class:`GuardedFile`.

    Use inside :func:`fastem.io.atomic_output`::

        with atomic_output(out, ...) as tmp, guarded_h5(tmp, out) as f:
            ...                      # f.guard.check() between blocks stops early on a full disk

    On exit the file is closed and any recorded write failure raised as
    :class:`~fastem.errors.OutputWriteError` (``"OUT: no space left writing the output ..."``).
    """
    import h5py

    guard = GuardedFile(tmp, final)
    try:
        f = h5py.File(guard, "w")
        f.guard = guard
        try:
            yield f
        finally:
            f.close()
        guard.check()
    finally:
        guard.close()
