"""The ``FILE.h5:/path/to/dataset`` addressing form and checked HDF5 dataset reads.

Every fastem command that takes an array accepts either a plain file name or
``FILE:/path/inside/the/file``. :func:`parse_ref` splits the two; :func:`read_dataset` opens
the file, finds the dataset and checks its rank, with one-line errors that name the file and
the dataset and list what *is* there when something is missing.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import DatasetNotFoundError, InputError

__all__ = [
    "parse_ref",
    "format_ref",
    "read_dataset",
    "open_h5",
    "require_file",
    "is_hdf5",
    "list_members",
    "find_dataset",
    "rank_text",
]


def parse_ref(spec) -> tuple[Path, str | None]:
    """Split ``"FILE.h5:/path/to/dataset"`` into ``(Path("FILE.h5"), "/path/to/dataset")``.

    The split is at the last ``:`` that is followed by ``/``; a plain path gives
    ``(Path(spec), None)``. On Windows a drive letter (``C:/data/x.h5``) is not taken as a
    file name.

    Parameters
    ----------
    spec : str or os.PathLike
        ``FILE`` or ``FILE:/dataset``.

    Returns
    -------
    (pathlib.Path, str or None)
        The file and the absolute dataset path inside it (``None`` when not given).
    """
    text = os.fspath(spec)
    if isinstance(text, bytes):
        text = text.decode()
    cut = text.rfind(":/")
    if cut <= 0 or (cut == 1 and os.name == "nt"):
        return Path(text), None
    name, dataset = text[:cut], text[cut + 1:]
    dataset = "/" + dataset.strip("/") if dataset.strip("/") else "/"
    return Path(name), dataset


def format_ref(path, dataset: str | None = None) -> str:
    """The inverse of :func:`parse_ref`: ``"FILE:/dataset"`` (or just ``"FILE"``)."""
    return f"{os.fspath(path)}:{dataset}" if dataset else os.fspath(path)


def require_file(path, what: str = "file") -> Path:
    """``Path(path)`` if it is an existing regular file, else a one-line
    :class:`~fastem.errors.DatasetNotFoundError` naming it."""
    p = Path(path)
    if not p.exists():
        raise DatasetNotFoundError(f"{p}: no such {what}")
    if p.is_dir():
        raise InputError(f"{p}: is a folder, not a {what}")
    return p


def is_hdf5(path) -> bool:
    """True when ``path`` is an HDF5 file (by signature, not by suffix)."""
    import h5py

    try:
        return bool(h5py.is_hdf5(os.fspath(path)))
    except OSError:
        return False


@contextmanager
def open_h5(path, mode: str = "r") -> Iterator["h5py.File"]:
    """Open an existing HDF5 file for reading with one-line errors (missing, not HDF5)."""
    import h5py

    p = require_file(path)
    if not is_hdf5(p):
        raise InputError(f"{p}: not an HDF5 file")
    try:
        f = h5py.File(p, mode)
    except OSError as exc:
        raise InputError(f"{p}: cannot open as HDF5 ({exc})") from None
    try:
        yield f
    finally:
        f.close()


def list_members(group, limit: int = 12) -> str:
    """``"a, b, c (group), ... and 5 more"``: the members of an HDF5 group, for error messages."""
    import h5py

    names = []
    for key in group.keys():
        obj = group.get(key)
        if obj is None:
            names.append(f"{key} (dangling link)")
            continue
        names.append(f"{key}/" if isinstance(obj, h5py.Group) else key)
    if not names:
        return "nothing"
    shown = ", ".join(names[:limit])
    return shown + (f" ... and {len(names) - limit} more" if len(names) > limit else "")


def _all_datasets(f) -> list[str]:
    import h5py

    found: list[str] = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            found.append("/" + name)

    f.visititems(visit)
    return found


def find_dataset(f, dataset: str | None, *, file_label: str | None = None):
    """Return the h5py Dataset at ``dataset`` in the open file ``f``, with one-line errors.

    * ``dataset`` names a group holding a dataset called ``data`` (an EMD array group, a CXI
      ``data_1``): that dataset is used.
    * ``dataset`` is ``None``: the file's only dataset, else an error listing them.
    * missing: the error names the file and the dataset and lists the members of the deepest
      group that does exist.
    """
    import h5py

    label = file_label or f.filename
    if dataset is None or dataset == "/":
        names = _all_datasets(f)
        if len(names) == 1:
            return f[names[0]]
        if not names:
            raise DatasetNotFoundError(f"{label}: the file holds no datasets")
        listing = ", ".join(names[:10]) + (f" ... and {len(names) - 10} more" if len(names) > 10 else "")
        raise InputError(f"{label}: {len(names)} datasets, name one as {label}:/path ({listing})")
    path = "/" + dataset.strip("/")
    parts = [p for p in path.split("/") if p]
    group = f["/"]
    for i, part in enumerate(parts):
        here = "/" + "/".join(parts[:i]) if i else "/"
        obj = group.get(part)  # None for a missing name and for a dangling link
        if obj is None:
            link = group.get(part, getlink=True)
            if isinstance(link, h5py.SoftLink):
                raise DatasetNotFoundError(
                    f"{label}: '{path}' is a dangling soft link to '{link.path}' (in '{here}': {list_members(group)})")
            if isinstance(link, h5py.ExternalLink):
                raise DatasetNotFoundError(
                    f"{label}: '{path}' links to '{link.filename}:{link.path}', which cannot be opened")
            raise DatasetNotFoundError(f"{label}: no dataset '{path}' (in '{here}': {list_members(group)})")
        if isinstance(obj, h5py.Dataset):
            if i != len(parts) - 1:
                raise DatasetNotFoundError(
                    f"{label}: no dataset '{path}' ('{obj.name}' is a dataset, not a group)")
            return obj
        group = obj
    if isinstance(group.get("data"), h5py.Dataset):
        return group["data"]
    raise InputError(f"{label}: '{path}' is a group, not a dataset (it holds: {list_members(group)})")


def rank_text(ndim) -> str:
    """``3`` -> ``"3D"``; ``(2, 3)`` -> ``"2D or 3D"``."""
    if isinstance(ndim, (tuple, list, set)):
        return " or ".join(f"{int(n)}D" for n in sorted(ndim))
    return f"{int(ndim)}D"


def read_dataset(spec_or_path, dataset: str | None = None, *, dtype=None, ndim=None) -> np.ndarray:
    """Read a whole HDF5 dataset into a NumPy array, checked.

    Parameters
    ----------
    spec_or_path : str or os.PathLike
        ``FILE`` or ``FILE:/path/to/dataset`` (see :func:`parse_ref`).
    dataset : str, optional
        The dataset path when ``spec_or_path`` has none. A group holding a dataset named
        ``data`` stands for that dataset. When neither names one, the file's only dataset is
        read (an error lists them if there are several).
    dtype : numpy dtype, optional
        Convert to this dtype (no copy when it already matches).
    ndim : int or tuple of int, optional
        Accepted rank(s); anything else is an :class:`~fastem.errors.InputError`.

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    DatasetNotFoundError
        Missing file or dataset (the message names both and lists the alternatives).
    InputError
        Not HDF5, a group instead of a dataset, wrong rank, both forms of dataset given.
    """
    path, ref_ds = parse_ref(spec_or_path)
    if ref_ds is not None and dataset is not None and "/" + dataset.strip("/") != ref_ds:
        raise InputError(f"{path}: two datasets given ('{ref_ds}' in the reference and '{dataset}')")
    dataset = ref_ds if ref_ds is not None else dataset
    with open_h5(path) as f:
        ds = find_dataset(f, dataset, file_label=str(path))
        where = f"{path}:{ds.name}"
        if ndim is not None:
            allowed = tuple(ndim) if isinstance(ndim, (tuple, list, set)) else (int(ndim),)
            if ds.ndim not in allowed:
                raise InputError(f"{where}: expected a {rank_text(allowed)} array, got shape {ds.shape}")
        arr = ds[()]
    if isinstance(arr, bytes):
        arr = np.asarray(arr.decode())
    arr = np.asarray(arr)
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    return arr
