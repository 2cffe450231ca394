"""``fastem info``: describe any supported file as text.

HDF5 files (CXI, Data Exchange, EMD v0.2 / 1.0, plain HDF5) print as a tree of groups and
datasets with shapes, dtypes and key attributes; soft links show where they point, external
links and virtual datasets that map other files are shown (never followed unless
``allow_external_links``). MRC files show their header essentials (validated: garbage or a
truncated file is an error), TIFF files their pages, ``.tlt`` files their angles.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import InputError
from .hdf5 import _LINK_HINT, _is_own_file, _links_allowed, _path_arg, is_hdf5, open_h5, parse_ref, require_file

__all__ = ["describe", "detect_format"]

_MAX_CHILDREN = 40
_MAX_ATTRS = 8
_VALUE_WIDTH = 60


def _h5_format(f) -> str:
    from .emd import emd_version

    if "cxi_version" in f:
        try:
            return f"CXI (cxi_version {int(np.asarray(f['cxi_version'][()]))})"
        except (TypeError, ValueError):
            return "CXI"
    if "implements" in f or "exchange" in f:
        return "Data Exchange"
    version = emd_version(f)
    if version is not None:
        return f"EMD {'v0.2' if version == '0.2' else version}"
    if "Version" in f and "Data" in f:
        return "Velox EMD"
    if "file_format" in f.attrs and "Experiments" in f:
        return "HyperSpy HSPY"
    return "HDF5"


def detect_format(path) -> str:
    """``"CXI (cxi_version 160)"``, ``"Data Exchange"``, ``"EMD v0.2"``, ``"EMD 1.0"``, ``"HDF5"``,
    ``"MRC"``, ``"TIFF"`` or ``"IMOD tilt angles"``; :class:`~fastem.errors.InputError` otherwise."""
    from .mrc import MRC_SUFFIXES
    from .tiff import TIFF_SUFFIXES

    p = require_file(path)
    if is_hdf5(p):
        with open_h5(p, allow_external_links=True) as f:  # only the root's members and attributes are read
            return _h5_format(f)
    suffix = p.suffix.lower()
    if suffix in MRC_SUFFIXES:
        return "MRC"
    if suffix in TIFF_SUFFIXES:
        return "TIFF"
    if suffix in (".tlt", ".rawtlt"):
        return "IMOD tilt angles"
    from .inputs import RSCIIO_SUFFIXES

    if suffix in RSCIIO_SUFFIXES:
        return {".dm3": "DM3", ".dm4": "DM4", ".ser": "TIA SER", ".emi": "TIA EMI", ".mrcz": "MRCZ"}.get(suffix, suffix)
    raise InputError(f"{p}: unknown format (fastem reads HDF5/CXI/Data Exchange/EMD, MRC, TIFF and .tlt files; "
                     f"with 'pip install fastem[formats]' also {', '.join(sorted(RSCIIO_SUFFIXES))}, Velox .emd)")


def _short(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        if value.size > 6:
            return f"array{value.shape} {value.dtype}"
        value = value.tolist()
    if isinstance(value, np.generic):
        value = value.item()
    text = repr(value) if isinstance(value, str) else str(value)
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            text = f"<JSON, {len(json.loads(value))} keys>"
        except ValueError:
            pass
    text = text.replace("\n", " ")
    return text if len(text) <= _VALUE_WIDTH else text[: _VALUE_WIDTH - 3] + "..."


def _attrs_text(obj) -> str:
    items = list(obj.attrs.items())
    if not items:
        return ""
    parts = [f"{k}={_short(v)}" for k, v in items[:_MAX_ATTRS]]
    if len(items) > _MAX_ATTRS:
        parts.append(f"... {len(items) - _MAX_ATTRS} more")
    return "  {" + ", ".join(parts) + "}"


def _foreign_sources(ds) -> list[str]:
    """Files other than its own that the virtual dataset ``ds`` maps (empty for a plain dataset)."""
    try:
        if not ds.is_virtual:
            return []
        return sorted({src.file_name for src in ds.virtual_sources() if not _is_own_file(ds.file, src.file_name)})
    except Exception:  # pragma: no cover - HDF5 without VDS support
        return []


def _dataset_line(ds) -> str:
    foreign = _foreign_sources(ds)
    if foreign:
        shape = "(" + ", ".join(str(n) for n in ds.shape) + ("," if ds.ndim == 1 else "") + ")"
        return f"{shape} {ds.dtype}  (virtual dataset mapping {', '.join(foreign)})"
    if ds.shape == () or (ds.size == 1 and ds.ndim <= 1):
        try:
            value = ds[()]
            return f"= {_short(value)}  ({ds.dtype if ds.dtype.kind not in 'SOU' else 'string'})"
        except Exception:  # pragma: no cover - unreadable scalar (e.g. missing filter)
            pass
    shape = "(" + ", ".join(str(n) for n in ds.shape) + ("," if ds.ndim == 1 else "") + ")"
    return f"{shape} {ds.dtype}"


def _tree(group, lines: list[str], indent: str) -> None:
    import h5py

    keys = list(group.keys())
    for i, key in enumerate(keys[:_MAX_CHILDREN]):
        last = i == len(keys) - 1  # with more than _MAX_CHILDREN keys the '... more' line is last
        branch, child_indent = ("└── ", "    ") if last else ("├── ", "│   ")
        link = group.get(key, getlink=True)
        if isinstance(link, h5py.SoftLink):
            target = group.get(key)
            what = "dangling" if target is None else (_dataset_line(target) if isinstance(target, h5py.Dataset) else "group")
            lines.append(f"{indent}{branch}{key} -> {link.path}  (soft link; {what})")
            continue
        if isinstance(link, h5py.ExternalLink):
            lines.append(f"{indent}{branch}{key} -> {link.filename}:{link.path}  (external link)")
            continue
        obj = group[key]
        if isinstance(obj, h5py.Group):
            lines.append(f"{indent}{branch}{key}/{_attrs_text(obj)}")
            _tree(obj, lines, indent + child_indent)
        else:
            lines.append(f"{indent}{branch}{key}  {_dataset_line(obj)}{_attrs_text(obj)}")
    if len(keys) > _MAX_CHILDREN:
        lines.append(f"{indent}└── ... {len(keys) - _MAX_CHILDREN} more")


def _refuse_links_on_path(f, dataset: str, label: str) -> None:
    """An external link among the components of ``dataset`` is refused (it would be followed)."""
    import h5py

    group = f["/"]
    parts = [p for p in dataset.split("/") if p]
    for i, part in enumerate(parts):
        link = group.get(part, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            raise InputError(f"{label}: '{dataset}' goes through an external link to '{link.filename}:{link.path}'; "
                             f"refused, since a link can point at any file; {_LINK_HINT}")
        obj = group.get(part) if link is not None else None
        if not isinstance(obj, h5py.Group):
            return
        group = obj


def _describe_h5(path: Path, dataset: str | None, allow_external_links: bool | None = None) -> str:
    import h5py

    from .hdf5 import find_dataset

    # the tree shows links without following them, so a file holding them can be described
    with open_h5(path, allow_external_links=True) as f:
        lines = [f"{path}: {_h5_format(f)}"]
        if dataset is not None and dataset != "/":
            if not _links_allowed(allow_external_links):
                _refuse_links_on_path(f, dataset, str(path))
            obj = f.get(dataset)
            if obj is None:
                find_dataset(f, dataset, file_label=str(path))  # raises the one-line error
            if isinstance(obj, h5py.Dataset):
                lines.append(f"{obj.name}  {_dataset_line(obj)}{_attrs_text(obj)}")
                return "\n".join(lines)
            lines.append(f"{obj.name}/{_attrs_text(obj)}")
            _tree(obj, lines, "")
            return "\n".join(lines)
        root_attrs = _attrs_text(f)
        lines.append("/" + root_attrs)
        _tree(f, lines, "")
    return "\n".join(lines)


def _describe_mrc(path: Path) -> str:
    from .mrc import read_mrc_header

    h, voxel = read_mrc_header(path, warn=False)  # validated: signature, mode, dimensions, file size
    nx, ny, nz = int(h.nx), int(h.ny), int(h.nz)
    mode = int(h.mode)
    kind = "image stack" if int(h.ispg) == 0 and nz > 1 else ("image" if nz == 1 else "volume")
    from .mrc import _labels

    labels = _labels(h)
    stats = (float(h.dmin), float(h.dmax), float(h.dmean))
    from mrcfile.utils import dtype_from_mode

    try:
        dtype = np.dtype(dtype_from_mode(mode)).name
    except ValueError:
        dtype = "unknown"
    shape = (ny, nx) if nz == 1 else (nz, ny, nx)
    lines = [
        f"{path}: MRC {kind}",
        f"  shape      {shape} ({'(n, rows, cols)' if kind == 'image stack' else '(z, y, x)' if nz > 1 else '(y, x)'} in memory)",
        f"  mode       {mode} ({dtype})",
        (f"  voxel size z {voxel[0]:.4g}, y {voxel[1]:.4g}, x {voxel[2]:.4g} (angstrom)" if voxel is not None
         else "  voxel size unknown"),
        f"  min/max/mean {stats[0]:.4g} / {stats[1]:.4g} / {stats[2]:.4g} (header)",
    ]
    lines += [f"  label      {lab}" for lab in labels if lab]
    return "\n".join(lines)


def _describe_tiff(path: Path) -> str:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            pages = len(tif.pages)
            page = tif.pages[0]
            shape = tuple(tif.series[0].shape) if tif.series else tuple(page.shape)
            dtype = np.dtype(page.dtype).name if page.dtype is not None else "unknown"
            desc = page.description or ""
    except (ValueError, OSError, tifffile.TiffFileError) as exc:
        raise InputError(f"{path}: not a readable TIFF file ({exc})") from None
    lines = [f"{path}: TIFF", f"  pages      {pages}", f"  shape      {shape}", f"  dtype      {dtype}"]
    if desc:
        lines.append(f"  description {_short(desc)}")
    return "\n".join(lines)


def _describe_tlt(path: Path) -> str:
    from .mrc import read_tlt

    a = read_tlt(path)
    steps = np.diff(a)
    step = f", step {float(np.median(steps)):.4g}" if steps.size else ""
    return f"{path}: IMOD tilt angles\n  {a.size} angles from {a.min():.4g} to {a.max():.4g} degrees{step}"


def describe(path, *, allow_external_links: bool | None = None) -> str:
    """A text description of a file (tree for HDF5, header for MRC, pages for TIFF, angles for .tlt).

    ``path`` may be ``FILE:/group_or_dataset`` to show only that part of an HDF5 file. External
    links and virtual datasets mapping other files are listed, not followed; naming a part of
    the file reached through one is refused unless ``allow_external_links`` (default
    ``fastem.config.settings.allow_external_links``).

    Raises
    ------
    DatasetNotFoundError
        Missing file or dataset.
    InputError
        Unknown format, unreadable file (permission denied), an invalid or truncated MRC file,
        or ``path`` not a file name.
    """
    p, dataset = parse_ref(_path_arg(path, "path"))
    fmt = detect_format(p)
    if dataset is not None and fmt in ("MRC", "TIFF", "IMOD tilt angles"):
        raise InputError(f"{p}: not an HDF5 file, so '{dataset}' cannot be shown")
    if fmt == "MRC":
        return _describe_mrc(p)
    if fmt == "TIFF":
        return _describe_tiff(p)
    if fmt == "IMOD tilt angles":
        return _describe_tlt(p)
    if fmt in ("DM3", "DM4", "TIA SER", "TIA EMI", "MRCZ"):
        if dataset is not None:
            raise InputError(f"{p}: not an HDF5 file, so '{dataset}' cannot be shown")
        return _describe_image(p, fmt)
    text = _describe_h5(p, dataset, allow_external_links)
    if fmt in ("Velox EMD", "HyperSpy HSPY") and dataset is None:
        text += "\n" + _describe_image(p, fmt).split("\n", 1)[1]
    return text


def _describe_image(path: Path, fmt: str) -> str:
    """Shape, dtype, calibrated axes and tilt angles of a file read through RosettaSciIO."""
    from .inputs import read_image_data

    img = read_image_data(path)
    lines = [f"{path}: {fmt} ({img.reader})", f"  shape      {img.data.shape} {img.data.dtype}"]
    for i, ax in enumerate(img.axes):
        units = ax.units or "px"
        lines.append(f"  axis {i}     {ax.name or '-'}: {img.data.shape[i]} x {ax.scale:.6g} {units}"
                     f" (offset {ax.offset + 0.0:.6g}){' navigation' if ax.navigate else ''}")
    if img.tilt_angles is not None:
        a = img.tilt_angles
        lines.append(f"  tilt angles {a.size} from {a.min():.4g} to {a.max():.4g} degrees (metadata)")
    if img.title:
        lines.append(f"  title      {img.title}")
    return "\n".join(lines)
