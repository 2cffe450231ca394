"""The ``FILE.h5:/path/to/dataset`` addressing form and checked HDF5 dataset reads.

Every fastem command that takes an array accepts either a plain file name or
``FILE:/path/inside/the/file``. :func:`parse_ref` splits the two; :func:`read_dataset` opens
the file, finds the dataset and checks its rank, with one-line errors that name the file and
the dataset and list what *is* there when something is missing.

Link safety: an input file that holds HDF5 external links or virtual datasets mapping other
files is refused by :func:`open_h5` (so by every reader), naming the link and the file it points
to, unless ``allow_external_links=True`` or ``fastem --allow-external-links``
(:attr:`fastem.config.Settings.allow_external_links`): a link can make an innocent-looking
input read any file on the machine.
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
    "foreign_links",
    "check_links",
]

_LINK_HINT = "to follow it, pass --allow-external-links or allow_external_links=True"


def _path_arg(value, name: str = "path"):
    """``os.fspath(value)`` as text, or a one-line :class:`~fastem.errors.InputError` naming ``name``."""
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value)
        if isinstance(text, bytes):
            text = os.fsdecode(text)
        if not text:
            raise InputError(f"{name} must be a file name, got an empty string")
        return text
    if isinstance(value, bytes):
        return os.fsdecode(value)
    raise InputError(f"{name} must be a file name (str or path), got {type(value).__name__}")


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
    text = _path_arg(spec, "spec")
    cut = text.rfind(":/")
    if cut <= 0 or (cut == 1 and os.name == "nt"):
        return Path(text), None
    name, dataset = text[:cut], text[cut + 1:]
    dataset = "/" + dataset.strip("/") if dataset.strip("/") else "/"
    return Path(name), dataset


def format_ref(path, dataset: str | None = None) -> str:
    """The inverse of :func:`parse_ref`: ``"FILE:/dataset"`` (or just ``"FILE"``)."""
    text = _path_arg(path, "path")
    if dataset is not None and not isinstance(dataset, str):
        raise InputError(f"dataset must be a path inside the file such as '/entry/data', got {type(dataset).__name__}")
    return f"{text}:{dataset}" if dataset else text


def require_file(path, what: str = "file") -> Path:
    """``Path(path)`` if it is an existing, readable regular file, else a one-line error naming it.

    Raises
    ------
    DatasetNotFoundError
        No such file.
    InputError
        A folder, or a file that cannot be read ("permission denied" or the OS's reason).
    """
    p = Path(_path_arg(path, "path"))
    if not p.exists():
        raise DatasetNotFoundError(f"{p}: no such {what}")
    if p.is_dir():
        raise InputError(f"{p}: is a folder, not a {what}")
    try:
        with open(p, "rb") as fh:
            fh.read(1)
    except PermissionError:
        raise InputError(f"{p}: permission denied (cannot read the {what})") from None
    except OSError as exc:
        raise InputError(f"{p}: cannot read the {what} ({exc.strerror or exc})") from None
    return p


def is_hdf5(path) -> bool:
    """True when ``path`` is an HDF5 file (by signature, not by suffix)."""
    import h5py

    try:
        return bool(h5py.is_hdf5(os.fspath(path)))
    except OSError:
        return False


def _links_allowed(allow_external_links) -> bool:
    if allow_external_links is None:
        from ..config import settings

        return bool(settings.allow_external_links)
    return bool(allow_external_links)


def _is_own_file(f, name: str) -> bool:
    if name in (".", ""):
        return True
    here = Path(f.filename)
    other = Path(name) if os.path.isabs(name) else here.parent / name
    try:
        return other.exists() and os.path.samefile(other, here)
    except OSError:
        return False


def foreign_links(f, limit: int = 10) -> list[tuple[str, str, str]]:
    """External links and virtual datasets of the open file ``f`` that reach other files.

    Returns up to ``limit`` tuples ``(path in f, kind, target)``: kind ``"external link"``
    (target ``FILE:/path``) or ``"virtual dataset"`` (target the first source file). Nothing
    is followed while looking: only the link records and dataset layouts are read.
    """
    import h5py

    found: list[tuple[str, str, str]] = []
    groups = [f["/"]]

    def visit(name, obj):
        if isinstance(obj, h5py.Group):
            groups.append(obj)
        elif isinstance(obj, h5py.Dataset) and len(found) < limit:
            try:
                virtual = obj.is_virtual
            except Exception:  # pragma: no cover - old HDF5 without VDS support
                virtual = False
            if virtual:
                others = [src.file_name for src in obj.virtual_sources() if not _is_own_file(f, src.file_name)]
                if others:
                    extra = f" and {len(set(others)) - 1} more file(s)" if len(set(others)) > 1 else ""
                    found.append(("/" + name, "virtual dataset", f"{others[0]}{extra}"))

    f.visititems(visit)  # hard links only: external links are not followed
    for group in groups:
        for key in group.keys():
            if len(found) >= limit:
                return found
            link = group.get(key, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                where = f"{group.name.rstrip('/')}/{key}"
                found.append((where, "external link", f"{link.filename}:{link.path}"))
    return found


def check_links(f, *, allow_external_links: bool | None = None, label: str | None = None) -> None:
    """Refuse an open input file that reaches other files through links (see :func:`foreign_links`).

    Raises
    ------
    InputError
        ``"FILE: '/entry/data' is an external link to 'other.h5:/x'; refused (pass
        --allow-external-links ...)"``, unless ``allow_external_links`` (default:
        ``fastem.config.settings.allow_external_links``).
    """
    if _links_allowed(allow_external_links):
        return
    found = foreign_links(f)
    if not found:
        return
    where, kind, target = found[0]
    more = f" (and {len(found) - 1} more such link(s))" if len(found) > 1 else ""
    verb = "is an external link to" if kind == "external link" else "is a virtual dataset mapping data from"
    raise InputError(f"{label or f.filename}: '{where}' {verb} '{target}'{more}; refused, since a link can point at "
                     f"any file; {_LINK_HINT}")


@contextmanager
def open_h5(path, mode: str = "r", *, allow_external_links: bool | None = None) -> Iterator["h5py.File"]:
    """Open an existing HDF5 file for reading with one-line errors.

    Parameters
    ----------
    path : str or os.PathLike
    mode : str
        h5py mode (``"r"``).
    allow_external_links : bool, optional
        Accept a file holding external links or virtual datasets that map other files
        (default ``fastem.config.settings.allow_external_links``, set by
        ``fastem --allow-external-links``); otherwise it is refused (:func:`check_links`).

    Raises
    ------
    DatasetNotFoundError
        No such file.
    InputError
        A folder, unreadable (permission denied), not HDF5, or links to other files.
    """
    import h5py

    p = require_file(path)
    if not is_hdf5(p):
        raise InputError(f"{p}: not an HDF5 file")
    try:
        f = h5py.File(p, mode)
    except PermissionError:
        raise InputError(f"{p}: permission denied (cannot open the file)") from None
    except OSError as exc:
        raise InputError(f"{p}: cannot open as HDF5 ({' '.join(str(exc).split())})") from None
    try:
        check_links(f, allow_external_links=allow_external_links, label=str(p))
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


def find_dataset(f, dataset: str | None, *, file_label: str | None = None,
                 allow_external_links: bool | None = None):
    """Return the h5py Dataset at ``dataset`` in the open file ``f``, with one-line errors.

    * ``dataset`` names a group holding a dataset called ``data`` (an EMD array group, a CXI
      ``data_1``): that dataset is used.
    * ``dataset`` is ``None``: the file's only dataset, else an error listing them.
    * missing: the error names the file and the dataset and lists the members of the deepest
      group that does exist.
    * an external link on the way, or a virtual dataset mapping other files, is refused
      unless ``allow_external_links`` (default ``fastem.config.settings.allow_external_links``).
    """
    import h5py

    label = file_label or f.filename
    if dataset is not None and not isinstance(dataset, str):
        raise InputError(f"dataset must be a path inside the file such as '/entry/data', got {type(dataset).__name__}")
    allowed = _links_allowed(allow_external_links)
    if dataset is None or dataset == "/":
        names = _all_datasets(f)
        if len(names) == 1:
            return _checked_dataset(f, f[names[0]], label, allowed)
        if not names:
            raise DatasetNotFoundError(f"{label}: the file holds no datasets")
        listing = ", ".join(names[:10]) + (f" ... and {len(names) - 10} more" if len(names) > 10 else "")
        raise InputError(f"{label}: {len(names)} datasets, name one as {label}:/path ({listing})")
    path = "/" + dataset.strip("/")
    parts = [p for p in path.split("/") if p]
    group = f["/"]
    for i, part in enumerate(parts):
        here = "/" + "/".join(parts[:i]) if i else "/"
        link = group.get(part, getlink=True)
        if isinstance(link, h5py.ExternalLink) and not allowed:
            raise InputError(f"{label}: '{path}' goes through an external link to '{link.filename}:{link.path}'; "
                             f"refused, since a link can point at any file; {_LINK_HINT}")
        obj = group.get(part)  # None for a missing name and for a dangling link
        if obj is None:
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
            return _checked_dataset(f, obj, label, allowed)
        group = obj
    if isinstance(group.get("data"), h5py.Dataset):
        return _checked_dataset(f, group["data"], label, allowed)
    raise InputError(f"{label}: '{path}' is a group, not a dataset (it holds: {list_members(group)})")


def _checked_dataset(f, ds, label: str, allowed: bool):
    """``ds``, unless it is a virtual dataset mapping other files and links are not allowed."""
    if not allowed and getattr(ds, "is_virtual", False):
        others = [src.file_name for src in ds.virtual_sources() if not _is_own_file(f, src.file_name)]
        if others:
            raise InputError(f"{label}: '{ds.name}' is a virtual dataset mapping data from '{others[0]}'; refused, "
                             f"since a link can point at any file; {_LINK_HINT}")
    return ds


def rank_text(ndim) -> str:
    """``3`` -> ``"3D"``; ``(2, 3)`` -> ``"2D or 3D"``."""
    if isinstance(ndim, (tuple, list, set)):
        return " or ".join(f"{int(n)}D" for n in sorted(ndim))
    return f"{int(ndim)}D"


def read_dataset(spec_or_path, dataset: str | None = None, *, dtype=None, ndim=None,
                 allow_external_links: bool | None = None) -> np.ndarray:
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
    allow_external_links : bool, optional
        Follow external links / virtual datasets mapping other files (default
        ``fastem.config.settings.allow_external_links``, i.e. refused).

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    DatasetNotFoundError
        Missing file or dataset (the message names both and lists the alternatives).
    InputError
        Not HDF5, unreadable, a group instead of a dataset, wrong rank, both forms of dataset
        given, links to other files, or a bad argument (the message names it).
    """
    path, ref_ds = parse_ref(_path_arg(spec_or_path, "spec_or_path"))
    if dataset is not None and not isinstance(dataset, str):
        raise InputError(f"dataset must be a path inside the file such as '/entry/data', got {type(dataset).__name__}")
    if ndim is not None:
        try:
            allowed_ndim = tuple(int(n) for n in ndim) if isinstance(ndim, (tuple, list, set)) else (int(ndim),)
        except (TypeError, ValueError):
            raise InputError(f"ndim must be an int or a tuple of ints, got {ndim!r}") from None
    if dtype is not None:
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise InputError(f"dtype must be a NumPy dtype, got {dtype!r}") from None
    if ref_ds is not None and dataset is not None and "/" + dataset.strip("/") != ref_ds:
        raise InputError(f"{path}: two datasets given ('{ref_ds}' in the reference and '{dataset}')")
    dataset = ref_ds if ref_ds is not None else dataset
    with open_h5(path, allow_external_links=allow_external_links) as f:
        ds = find_dataset(f, dataset, file_label=str(path), allow_external_links=allow_external_links)
        where = f"{path}:{ds.name}"
        if ndim is not None and ds.ndim not in allowed_ndim:
            raise InputError(f"{where}: expected a {rank_text(allowed_ndim)} array, got shape {ds.shape}")
        arr = ds[()]
    if isinstance(arr, bytes):
        arr = np.asarray(arr.decode())
    return as_dtype(np.asarray(arr), dtype, where)


def as_dtype(arr: np.ndarray, dtype, where: str) -> np.ndarray:
    """``arr`` in ``dtype`` (no copy when it already is; ``None``: unchanged), or a one-line
    :class:`InputError` naming ``where`` when the values cannot be converted."""
    if dtype is None:
        return arr
    try:
        return arr.astype(dtype, copy=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: cannot convert {arr.dtype} to {dtype} ({exc})") from None
