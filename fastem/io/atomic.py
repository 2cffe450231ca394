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

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import InputError, OutputExistsError

__all__ = ["atomic_output", "atomic_update", "check_output", "same_file"]


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

    final = Path(path)
    for inp in inputs or ():
        if inp is None:
            continue
        inp_path = parse_ref(inp)[0] if isinstance(inp, str) else Path(inp)
        if same_file(final, inp_path):
            raise InputError(f"{final}: the output would overwrite the input {inp_path}; choose another output name")
    if final.is_dir():
        raise InputError(f"{final}: the output is a folder; give a file name")
    if final.exists() and not overwrite:
        raise OutputExistsError(f"{final}: output exists (pass --overwrite / overwrite=True to replace it)")
    return final


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
        The job's inputs; writing onto one of them is refused even with ``overwrite``.

    Yields
    ------
    pathlib.Path
        A temporary file in the destination folder. It already exists (empty, created to
        reserve the name): open it in a truncating write mode (``h5py.File(tmp, "w")``,
        ``mrcfile.new(tmp, overwrite=True)``, ``open(tmp, "w")``).

    Notes
    -----
    On success the file gets the usual permissions (``0o666 & ~umask``) and is renamed with
    ``os.replace``; on any exception the temporary file is removed, the exception propagates
    and an existing output stays as it was.
    """
    final = check_output(path, overwrite=overwrite, inputs=inputs)
    parent = final.parent if str(final.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{final}: cannot create the output folder {parent} ({exc.strerror})") from None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise InputError(f"{final}: cannot write in {parent} ({exc.strerror})") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # re-check: another process may have created the output meanwhile
        if final.exists() and not overwrite:
            raise OutputExistsError(f"{final}: output exists (pass --overwrite / overwrite=True to replace it)")
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, final)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise


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
