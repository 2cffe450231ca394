"""EMD files (electron microscopy images): Berkeley EMD v0.2 (read / write) and EMD 1.0 (read).

Berkeley EMD v0.2 (https://emdatasets.com), as RosettaSciIO / HyperSpy read and write it::

    /  attrs version_major=0, version_minor=2
    /data/<name>/            attr emd_group_type=1 (HyperSpy writes /signals/<title>/)
        data                 the array, axes REVERSED: a NumPy (N, h, w) stack is stored (w, h, N)
        dim1 .. dimN         dimension vectors of the stored axes (dim1 = w, the fastest NumPy
                             axis), attrs name, units; a vector is either one value per pixel or
                             ``[offset, offset + scale]`` (what RosettaSciIO writes)
    /comments                attrs program, version, command, date, device, configuration
                             (fastem's provenance; HyperSpy shows it in original_metadata.comments)
    /comments/fastem/        the same provenance as a process group

This is the convention of RosettaSciIO's ``emd`` plugin: it transposes ``data`` on reading and
on writing, so a file written here opens in HyperSpy with the NumPy shape fastem wrote and with
the right axis names, units and scales, and a file HyperSpy wrote opens here the same way.
(fastem before this layout stored C order with ``dim1`` = NumPy axis 0: such a file has a
``/comments/fastem`` group and no ``fastem_layout`` attribute, and is still read correctly.)

EMD 1.0 (py4DSTEM / emdfile)::

    /  attrs emd_group_type="file", version_major=1
    /<root>/                 attr emd_group_type="root"
        .../<name>/          attr emd_group_type="array": data in C order, dim0 .. dim(N-1)
                             (attrs name, units), each ``[offset, offset + step]`` or full

The reader collects every array group (``emd_group_type`` 1 or ``"array"``) anywhere in the
file; ``name`` picks one by its group name or full path. Dimension vectors always come back in
NumPy axis order with one value per pixel (``EMDDim.values`` has the axis length).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import json
import re

import numpy as np

from ..errors import DatasetNotFoundError, InputError
from .atomic import atomic_output
from .hdf5 import _path_arg, open_h5
from .process import write_process_group
from .provenance import provenance as _provenance, to_jsonable

__all__ = ["EMDData", "EMDDim", "read_emd", "list_emd_arrays", "write_emd", "write_emd1", "emd_version", "is_emd"]


#: group attribute marking fastem's HyperSpy-compatible (reversed-axes) v0.2 layout
LAYOUT_ATTR = "fastem_layout"
LAYOUT_REVERSED = "reversed axes (RosettaSciIO/HyperSpy): dim1 is the last NumPy axis"


@dataclass
class EMDDim:
    """One dimension vector: ``values`` (one per pixel of that axis), ``name``, ``units``."""

    values: np.ndarray
    name: str = ""
    units: str = ""

    @property
    def offset(self) -> float:
        """The first value (0 for a non-numeric vector)."""
        v = np.asarray(self.values)
        return float(v.reshape(-1)[0]) if v.size and v.dtype.kind in "biuf" else 0.0

    @property
    def scale(self) -> float:
        """The mean step between values (1 for a single value or a non-numeric vector)."""
        v = np.asarray(self.values)
        if v.size < 2 or v.dtype.kind not in "biuf":
            return 1.0
        return float(np.diff(v.astype(np.float64)).mean())


@dataclass
class EMDData:
    """An array read from an EMD file.

    Attributes
    ----------
    data : ndarray
        In NumPy axis order (a v0.2 file's reversed storage undone; dtype kept).
    dims : list of EMDDim
        One per NumPy axis, one value per pixel. Missing vectors are filled with pixel indices.
    name : str
        The array group's name; ``group`` is its full HDF5 path.
    version : str
        ``"0.2"`` or ``"1.0"``.
    """

    data: np.ndarray
    dims: list = field(default_factory=list)
    name: str = ""
    group: str = ""
    version: str = ""
    path: Path | None = None


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.size == 1:
        return _text(value.reshape(-1)[0])
    return str(value)


def emd_version(f) -> str | None:
    """``"0.2"``, ``"1.0"`` (or another ``major.minor``) for an open EMD file, ``None`` if not EMD."""
    attrs = f.attrs
    if "version_major" not in attrs:
        return None
    major = int(np.asarray(attrs["version_major"]).reshape(-1)[0])
    minor = int(np.asarray(attrs.get("version_minor", 0)).reshape(-1)[0])
    return f"{major}.{minor}"


def _is_array_group(obj) -> bool:
    import h5py

    if not isinstance(obj, h5py.Group) or "emd_group_type" not in obj.attrs:
        return False
    kind = obj.attrs["emd_group_type"]
    kind = _text(kind) if isinstance(kind, (bytes, str)) else int(np.asarray(kind).reshape(-1)[0])
    return (kind == 1 or kind == "array") and isinstance(obj.get("data"), h5py.Dataset)


def _array_groups(f) -> list[str]:
    found: list[str] = []

    def visit(name, obj):
        if _is_array_group(obj):
            found.append("/" + name)

    f.visititems(visit)
    return found


def is_emd(f) -> bool:
    """Whether an open HDF5 file is EMD (a version attribute or EMD array groups)."""
    return emd_version(f) is not None or bool(_array_groups(f))


def list_emd_arrays(path, *, allow_external_links: bool | None = None) -> list[str]:
    """Full HDF5 paths of the array groups in an EMD file."""
    with open_h5(path, allow_external_links=allow_external_links) as f:
        return _array_groups(f)


def _units(value) -> str:
    """Units text; RosettaSciIO's ``[n_m]`` / ``[1_/_n_m]`` spelling becomes ``nm`` / ``1/nm``."""
    text = _text(value)
    parts = re.findall(r"\[(.+?)\]", text)
    if parts:
        text = " * ".join(p.replace("_", "") for p in parts)
    return text


def _dim_values(ds, n: int) -> np.ndarray:
    """The dimension vector of an axis of length ``n``: stored per pixel, or ``[offset,
    offset + step]`` (RosettaSciIO, emdfile) expanded to ``n`` values."""
    v = np.asarray(ds[()]).reshape(-1)
    if v.size == n:
        return v
    if v.dtype.kind in "biuf" and v.size >= 1:
        start = float(v[0])
        step = float(v[1] - v[0]) if v.size >= 2 else 1.0
        return start + step * np.arange(n, dtype=np.float64)
    return np.arange(n, dtype=np.float64)  # strings or other: pixel indices


def _layout(f, grp, version: str | None) -> tuple[bool, int]:
    """``(reversed, first dim index)`` of an array group.

    EMD 1.0 / emdfile (``dim0`` present, or version >= 1): C order. Berkeley v0.2: reversed
    (RosettaSciIO's convention), except a file of an earlier fastem (``/comments/fastem``
    group, no ``fastem_layout`` mark), which stored C order.
    """
    import h5py

    first = 0 if "dim0" in grp else 1
    if first == 0 or (version is not None and int(version.split(".")[0]) >= 1):
        return False, first
    legacy = isinstance(f.get("/comments/fastem"), h5py.Group) and LAYOUT_ATTR not in grp.attrs
    return (not legacy), first


def _read_dims(group, shape, *, reversed_axes: bool = False, first: int = 1) -> list[EMDDim]:
    """Dimension vectors in NumPy axis order for an array of (NumPy) ``shape``."""
    import h5py

    dims = []
    ndim = len(shape)
    for axis, n in enumerate(shape):
        index = (ndim - 1 - axis if reversed_axes else axis) + first
        ds = group.get(f"dim{index}")
        if isinstance(ds, h5py.Dataset):
            dims.append(EMDDim(_dim_values(ds, n), _text(ds.attrs.get("name", "")), _units(ds.attrs.get("units", ""))))
        else:
            dims.append(EMDDim(np.arange(n, dtype=np.float64), f"dim{axis + 1}", "px"))
    return dims


def read_emd(path, name: str | None = None, *, allow_external_links: bool | None = None) -> EMDData:
    """Read one array from a Berkeley EMD v0.2 or EMD 1.0 file.

    Parameters
    ----------
    path : str or os.PathLike
    name : str, optional
        The array group's name (``"image"``) or full path (``"/data/image"``). Default: the
        file's only array (an error lists them when there are several).
    allow_external_links : bool, optional
        Accept a file with HDF5 external links / virtual datasets mapping other files (default
        ``fastem.config.settings.allow_external_links``, i.e. refused).

    Raises
    ------
    DatasetNotFoundError
        Missing file or array (the message lists the arrays present).
    InputError
        Not HDF5 / not EMD, several arrays and no ``name``, links to other files, bad arguments.
    """
    path = Path(_path_arg(path, "path"))
    if name is not None and not isinstance(name, str):
        raise InputError(f"name must be an array group name such as 'image', got {type(name).__name__}")
    with open_h5(path, allow_external_links=allow_external_links) as f:
        version = emd_version(f)
        groups = _array_groups(f)
        if version is None and not groups:
            raise InputError(f"{path}: not an EMD file (no version_major attribute and no EMD array groups)")
        if not groups:
            raise DatasetNotFoundError(f"{path}: EMD {version} file without array groups")
        if name is None:
            if len(groups) > 1:
                raise InputError(f"{path}: {len(groups)} EMD arrays, name one ({', '.join(groups)})")
            chosen = groups[0]
        else:
            key = "/" + name.strip("/")
            matches = [g for g in groups if g == key or g.rsplit("/", 1)[-1] == name.strip("/")]
            if not matches:
                raise DatasetNotFoundError(f"{path}: no EMD array '{name}' (arrays: {', '.join(groups)})")
            if len(matches) > 1:
                raise InputError(f"{path}: '{name}' matches {len(matches)} arrays ({', '.join(matches)}); give the full path")
            chosen = matches[0]
        grp = f[chosen]
        reversed_axes, first = _layout(f, grp, version)
        data = np.asarray(grp["data"][()])
        if reversed_axes:
            data = np.ascontiguousarray(data.T)
        dims = _read_dims(grp, data.shape, reversed_axes=reversed_axes, first=first)
    return EMDData(data=data, dims=dims, name=chosen.rsplit("/", 1)[-1], group=chosen,
                   version=version or "", path=path)


def _default_dims(shape) -> list[EMDDim]:
    names = {1: ["x"], 2: ["y", "x"], 3: ["z", "y", "x"]}.get(len(shape), [f"dim{i + 1}" for i in range(len(shape))])
    return [EMDDim(np.arange(n, dtype=np.float64), names[i], "px") for i, n in enumerate(shape)]


def _as_dims(spec, shape, name) -> list[EMDDim]:
    if spec is None:
        return _default_dims(shape)
    dims = []
    if len(spec) != len(shape):
        raise InputError(f"EMD array '{name}': {len(spec)} dimension vectors for a {len(shape)}D array")
    for axis, (item, n) in enumerate(zip(spec, shape)):
        if isinstance(item, EMDDim):
            d = item
        elif isinstance(item, Mapping):
            d = EMDDim(np.asarray(item.get("values", np.arange(n))), str(item.get("name", "")), str(item.get("units", "")))
        else:
            values, dname, units = (list(item) + ["", ""])[:3]
            d = EMDDim(np.asarray(values), str(dname), str(units))
        if d.values.size != n:
            raise InputError(f"EMD array '{name}': dim{axis + 1} has {d.values.size} values for an axis of length {n}")
        dims.append(d)
    return dims


def write_emd(path, arrays: Mapping[str, np.ndarray], dims: Mapping[str, Sequence] | None = None, *,
              overwrite: bool = False, inputs: Iterable = (), provenance: dict | None = None) -> Path:
    """Write arrays as a Berkeley EMD v0.2 file (atomically) that HyperSpy opens as written.

    Parameters
    ----------
    arrays : mapping name -> array
        Each becomes ``/data/<name>`` (``emd_group_type=1``) holding ``data``, stored with the
        axes reversed (RosettaSciIO's convention, see the module notes): HyperSpy's
        ``hs.load`` gives back the NumPy shape written here, with the dims as its axes.
    dims : mapping name -> sequence, optional
        Per array, one entry per axis: an :class:`EMDDim`, a dict (``values``, ``name``,
        ``units``) or a tuple ``(values, name, units)``. Default pixel indices named
        ``z``/``y``/``x`` with units ``px``.
    provenance : dict, optional
        Written to ``/comments/fastem`` and as attributes of ``/comments`` (HyperSpy's
        ``original_metadata.comments``); default a fresh record.
    """
    import h5py

    path = _path_arg(path, "path")
    if not isinstance(arrays, Mapping):
        raise InputError(f"arrays must be a mapping name -> array, got {type(arrays).__name__}")
    if not arrays:
        raise InputError("write_emd: no arrays given")
    if dims is not None and not isinstance(dims, Mapping):
        raise InputError(f"dims must be a mapping name -> dimension vectors, got {type(dims).__name__}")
    if provenance is not None and not isinstance(provenance, dict):
        raise InputError(f"provenance must be a dict (see fastem.io.provenance()), got {type(provenance).__name__}")
    checked = {}
    for name, arr in arrays.items():
        if not isinstance(name, str) or not name or "/" in name:
            raise InputError(f"write_emd: invalid array name {name!r} (a non-empty string without '/')")
        if arr is None or isinstance(arr, (str, bytes)):
            raise InputError(f"arrays[{name!r}] must be a numeric array, got {type(arr).__name__}")
        a = np.asarray(arr)
        if a.dtype.kind not in "biufc":
            raise InputError(f"arrays[{name!r}] must be a numeric array, got dtype {a.dtype}")
        checked[name] = a
    arrays = checked
    dims = dims or {}
    with atomic_output(path, overwrite=overwrite, inputs=inputs) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["version_major"] = 0
            f.attrs["version_minor"] = 2
            data = f.create_group("data")
            for name, arr in arrays.items():
                if not name or "/" in name:
                    raise InputError(f"write_emd: invalid array name {name!r}")
                arr = np.asarray(arr)
                grp = data.create_group(name)
                grp.attrs["emd_group_type"] = 1
                grp.attrs[LAYOUT_ATTR] = LAYOUT_REVERSED
                grp.create_dataset("data", data=np.ascontiguousarray(arr.T))
                ndim = arr.ndim
                for axis, d in enumerate(_as_dims(dims.get(name), arr.shape, name)):
                    ds = grp.create_dataset(f"dim{ndim - axis}", data=d.values)
                    ds.attrs["name"] = d.name
                    ds.attrs["units"] = d.units
            for group in ("microscope", "sample", "user"):
                f.create_group(group)
            comments = f.create_group("comments")
            prov = provenance if provenance is not None else _provenance()
            for key, value in prov.items():
                text = value if isinstance(value, str) else json.dumps(to_jsonable(value), sort_keys=True)
                comments.attrs[key] = text
            write_process_group(comments.create_group("fastem"), prov)
    return Path(path)


def write_emd1(path, arrays: Mapping[str, np.ndarray], dims: Mapping[str, Sequence] | None = None, *,
               overwrite: bool = False, inputs: Iterable = (), provenance: dict | None = None) -> Path:
    """Write arrays as an EMD 1.0 file (py4DSTEM / emdfile), atomically, through ``emdfile``.

    ``arrays``, ``dims`` as :func:`write_emd`; each array becomes an ``emdfile.Array`` (C order,
    ``dim0`` = axis 0, with its dims' values, names and units) under one root named ``fastem``;
    the provenance record goes to the root's metadata (``fastem``). ``emdfile`` is an optional
    dependency (``pip install emdfile``, in fastem's ``formats`` and ``test`` extras).
    """
    try:
        import emdfile
    except ImportError:
        raise InputError("writing EMD 1.0 needs emdfile: pip install 'fastem[formats]' (or emdfile)") from None
    path = _path_arg(path, "path")
    if not isinstance(arrays, Mapping) or not arrays:
        raise InputError("arrays must be a non-empty mapping name -> array")
    dims = dims or {}
    root = emdfile.Root(name="fastem")
    for name, arr in arrays.items():
        if not isinstance(name, str) or not name or "/" in name:
            raise InputError(f"write_emd1: invalid array name {name!r} (a non-empty string without '/')")
        if arr is None or isinstance(arr, (str, bytes)) or np.asarray(arr).dtype.kind not in "biufc":
            raise InputError(f"arrays[{name!r}] must be a numeric array")
        a = np.asarray(arr)
        ds = _as_dims(dims.get(name), a.shape, name)
        root.tree(emdfile.Array(data=a, name=name, dims=[d.values for d in ds],
                                dim_names=[d.name for d in ds], dim_units=[d.units for d in ds]))
    prov = provenance if provenance is not None else _provenance()
    root.metadata = emdfile.Metadata(name="fastem", data={
        k: (v if isinstance(v, (str, int, float)) else json.dumps(to_jsonable(v), sort_keys=True))
        for k, v in prov.items()})
    with atomic_output(path, overwrite=overwrite, inputs=inputs) as tmp:
        emdfile.save(str(tmp), root, mode="o")
    return Path(path)
