"""One input reader for images, stacks and tilt series in every format fastem accepts, with
their calibration: :func:`read_image_data`.

======================= ============================================ ==========================
format                  read by                                      calibration
======================= ============================================ ==========================
HDF5 / CXI / DXchange   fastem (``FILE.h5:/dataset``)                 none
EMD v0.2 / 1.0 (NCEM)   fastem (:mod:`fastem.io.emd`)                 dims (name, units, scale)
MRC (.mrc .st .ali ...) fastem (``mrcfile``)                          voxel size (angstrom)
TIFF                    ``tifffile``; calibration by RosettaSciIO     DM / ImageJ / FEI tags
Velox EMD               RosettaSciIO                                  yes
DM3 / DM4               RosettaSciIO                                  yes
SER / EMI (TIA)         RosettaSciIO                                  yes
MRCZ                    RosettaSciIO                                  yes
HSPY                    RosettaSciIO                                  yes
======================= ============================================ ==========================

RosettaSciIO is the optional extra ``formats`` (``pip install 'fastem[formats]'``); without it,
a DM3/DM4/SER/Velox/MRCZ/HSPY input is a one-line :class:`~fastem.errors.InputError` saying
so (TIFF is still read, without calibration).

Tilt angles (:attr:`ImageData.tilt_angles`, degrees) come from the metadata where the file has
them: a navigation axis in angle units (deg, °, rad: ``offset + scale * index``, or the values
of a non-uniform axis), or the per-image ``a_tilt`` of an FEI MRC extended header.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["ImageAxis", "ImageData", "read_image_data", "read_calibration", "RSCIIO_SUFFIXES", "IMAGE_SUFFIXES",
           "require_rsciio", "is_emd_array", "open_dataset"]

#: suffixes read only through RosettaSciIO, with their plugin (module of ``rsciio``)
RSCIIO_SUFFIXES = {".dm3": "digitalmicrograph", ".dm4": "digitalmicrograph", ".ser": "tia", ".emi": "tia",
                   ".mrcz": "mrcz", ".hspy": "hspy"}
_ANGLE_UNITS = {"deg": 1.0, "degree": 1.0, "degrees": 1.0, "°": 1.0, "rad": 180.0 / math.pi,
                "radian": 180.0 / math.pi, "radians": 180.0 / math.pi, "mrad": 0.18 / math.pi}


@dataclass
class ImageAxis:
    """One axis in NumPy order: ``name``, ``scale`` and ``offset`` in ``units`` (``values`` for
    a non-uniform axis), ``navigate`` (a stack / series axis rather than an image axis)."""

    name: str = ""
    scale: float = 1.0
    units: str = ""
    offset: float = 0.0
    navigate: bool = False
    values: np.ndarray | None = None


@dataclass
class ImageData:
    """An image ``(h, w)``, a stack ``(N, h, w)`` or a volume with its axes and metadata.

    Attributes
    ----------
    data : ndarray
        As stored (dtype kept), NumPy axis order.
    axes : list of ImageAxis
        One per axis of ``data``.
    tilt_angles : ndarray or None
        ``(N,)`` degrees, from the metadata where present.
    original_metadata : dict
        The reader's metadata tree (RosettaSciIO ``original_metadata``; EMD dims; MRC header).
    reader : str
        ``"fastem"`` or ``"rosettasciio:<plugin>"``.
    """

    data: np.ndarray
    axes: list = field(default_factory=list)
    path: Path | None = None
    reader: str = "fastem"
    tilt_angles: np.ndarray | None = None
    original_metadata: dict = field(default_factory=dict)
    title: str = ""

    def calibration(self) -> dict | None:
        """``{"x": (scale, units, offset), "y": ..., ["z": ...]}`` of the image axes (the last two,
        and a third-last axis in length units), ``None`` when uncalibrated (pixels)."""
        return _calibration_of(self.axes)


_LENGTH_UNITS = {"a", "å", "angstrom", "nm", "pm", "um", "µm", "μm", "micron", "mm", "m", "1/nm", "1/å", "1/a",
                 "nm^-1", "å^-1", "a^-1", "1 / nm", "1 / å"}


def _calibration_of(axes) -> dict | None:
    if len(axes) < 2:
        return None
    out = {}
    for key, ax in zip(("y", "x"), axes[-2:]):
        units = str(ax.units or "")
        if units.strip().lower() in ("", "px", "pixel", "pixels", "<undefined>") or not np.isfinite(ax.scale) \
                or ax.scale <= 0:
            continue
        out[key] = (float(ax.scale), units, float(ax.offset))
    if len(axes) >= 3 and str(axes[-3].units or "").strip().lower() in _LENGTH_UNITS and axes[-3].scale > 0:
        out["z"] = (float(axes[-3].scale), str(axes[-3].units), float(axes[-3].offset))
    return out or None


def require_rsciio(path, plugin: str):
    """Import ``rsciio.<plugin>``; a one-line error naming the extra to install otherwise."""
    import importlib

    try:
        return importlib.import_module(f"rsciio.{plugin}")
    except ImportError:
        raise InputError(f"{path}: reading {Path(str(path)).suffix or 'this'} files needs RosettaSciIO: "
                         f"pip install 'fastem[formats]'") from None


def _axes_from_rsciio(axes_dicts, ndim: int) -> list[ImageAxis]:
    ordered = sorted(axes_dicts, key=lambda a: a.get("index_in_array", 0))
    out = []
    for a in ordered[:ndim]:
        values = a.get("axis")
        values = None if values is None else np.asarray(values, np.float64)
        scale = a.get("scale", 1.0)
        offset = a.get("offset", 0.0)
        if values is not None and values.size >= 2 and "scale" not in a:
            scale, offset = float(np.diff(values).mean()), float(values[0])
        units = a.get("units")
        out.append(ImageAxis(name=str(a.get("name") or ""), scale=float(scale if scale is not None else 1.0),
                             units="" if units is None or str(units) == "<undefined>" else str(units),
                             offset=float(offset if offset is not None else 0.0),
                             navigate=bool(a.get("navigate", False)), values=values))
    return out


def _angles_from_axis(ax: ImageAxis, n: int):
    factor = _ANGLE_UNITS.get(str(ax.units or "").strip().lower())
    if factor is None:
        return None
    if ax.values is not None and ax.values.size == n:
        return np.asarray(ax.values, np.float64) * factor
    return (ax.offset + ax.scale * np.arange(n, dtype=np.float64)) * factor


def _tilt_angles(axes, om: dict, n: int):
    """Tilt angles (degrees) of a stack of ``n`` images from its metadata, or ``None``."""
    if axes:
        found = _angles_from_axis(axes[0], n)
        if found is not None:
            return found
    fei = om.get("fei_header") if isinstance(om, dict) else None
    if isinstance(fei, dict) and "a_tilt" in fei:
        a = np.asarray(fei["a_tilt"], np.float64).reshape(-1)
        if a.size >= n and np.all(np.isfinite(a[:n])):
            return a[:n].copy()
    return None


def _pick_image_signal(dicts, path):
    """The first 2D-or-more image signal of a RosettaSciIO result (Velox files also hold spectra)."""
    if not dicts:
        raise InputError(f"{path}: no data in the file")
    for d in dicts:
        data = d.get("data")
        if data is not None and np.ndim(data) >= 2:
            return d
    return dicts[0]


def _read_rsciio(path: Path, plugin: str, **kwargs) -> ImageData:
    mod = require_rsciio(path, plugin)
    try:
        dicts = mod.file_reader(str(path), **kwargs)
    except (OSError, ValueError, KeyError, TypeError, IndexError, EOFError) as exc:
        raise InputError(f"{path}: not a readable {plugin} file ({' '.join(str(exc).split())[:200]})") from None
    d = _pick_image_signal(dicts, path)
    data = np.asarray(d["data"])
    if data.dtype.names:  # RGB(A) structured arrays
        raise InputError(f"{path}: colour (RGB) images are not supported; convert to grey levels first")
    axes = _axes_from_rsciio(d.get("axes", []), data.ndim)
    om = dict(d.get("original_metadata") or {})
    title = str(((d.get("metadata") or {}).get("General") or {}).get("title", ""))
    angles = _tilt_angles(axes, om, data.shape[0]) if data.ndim == 3 else None
    return ImageData(data=data, axes=axes, path=path, reader=f"rosettasciio:{plugin}", tilt_angles=angles,
                     original_metadata=om, title=title)


def _is_velox(path: Path) -> bool:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return "Version" in f and "Data" in f and "version_major" not in f.attrs
    except OSError:
        return False


def read_image_data(spec, *, allow_external_links: bool | None = None) -> ImageData:
    """Read an image, stack or volume with its calibration from any format fastem reads.

    Parameters
    ----------
    spec : str or os.PathLike
        ``FILE``, or ``FILE.h5:/dataset`` (HDF5 / EMD array group).
    allow_external_links : bool, optional
        As in :func:`fastem.io.read_images`.

    Returns
    -------
    ImageData
        ``data`` in NumPy order with one :class:`ImageAxis` per axis (see the module table).

    Raises
    ------
    DatasetNotFoundError, InputError
        Missing file or dataset, unknown or unreadable format, RosettaSciIO missing for a
        format that needs it (naming ``pip install 'fastem[formats]'``).
    """
    from .hdf5 import _path_arg, is_hdf5, open_h5, parse_ref, require_file
    from .images import read_array
    from .mrc import MRC_SUFFIXES, read_mrc
    from .tiff import TIFF_SUFFIXES

    path, dataset = parse_ref(_path_arg(spec, "spec"))
    p = require_file(path)
    suffix = p.suffix.lower()
    if suffix in RSCIIO_SUFFIXES and not (suffix == ".hspy" and dataset is not None):
        return _read_rsciio(p, RSCIIO_SUFFIXES[suffix])
    if is_hdf5(p):
        if dataset is None and suffix == ".emd" and _is_velox(p):
            return _read_rsciio(p, "emd", select_type="images")
        with open_h5(p, allow_external_links=allow_external_links) as f:
            from .emd import _array_groups, is_emd

            emd = is_emd(f)
            groups = _array_groups(f) if emd else []
        key = None if dataset is None else "/" + dataset.strip("/")
        if key is not None and key.endswith("/data") and key[:-5] in groups:
            key = key[:-5]
        if emd and ((key is None and len(groups) == 1 and not _is_other_h5(p)) or key in groups):
            from .emd import read_emd

            e = read_emd(p, key, allow_external_links=allow_external_links)
            axes = [ImageAxis(d.name, d.scale, d.units, d.offset, navigate=False) for d in e.dims]
            if e.data.ndim == 3:
                axes[0].navigate = True
            angles = _tilt_angles(axes, {}, e.data.shape[0]) if e.data.ndim == 3 else None
            return ImageData(data=e.data, axes=axes, path=p, reader="fastem", tilt_angles=angles,
                             original_metadata={"emd_version": e.version, "group": e.group}, title=e.name)
        data = read_array(spec, allow_external_links=allow_external_links)
        return ImageData(data=data, axes=[ImageAxis(n, 1.0, "px") for n in _default_names(data.ndim)], path=p)
    if dataset is not None:
        raise InputError(f"{p}: not an HDF5 file, so '{dataset}' cannot be read from it")
    if suffix in MRC_SUFFIXES:
        from .mrc import read_mrc_header

        data, voxel = read_mrc(p)
        names = _default_names(data.ndim)
        stack = data.ndim == 3 and int(read_mrc_header(p, warn=False)[0].ispg) == 0
        if voxel is None:
            axes = [ImageAxis(n, 1.0, "px") for n in names]
        else:
            sizes = dict(zip(("z", "y", "x"), voxel))
            axes = [ImageAxis(n, sizes.get(n, 1.0), "Å" if n in sizes else "") for n in names]
        if stack:  # an image stack / tilt series: the first axis counts images, it is no length
            axes[0] = ImageAxis("image", 1.0, "", navigate=True)
        return ImageData(data=data, axes=axes, path=p, original_metadata={"voxel_size_angstrom": voxel})
    if suffix in TIFF_SUFFIXES:
        from .tiff import read_tiff

        data = read_tiff(p)
        axes = [ImageAxis(n, 1.0, "px") for n in _default_names(data.ndim)]
        try:
            import rsciio.tiff  # noqa: F401  (calibration only; the data come from tifffile)
        except ImportError:
            return ImageData(data=data, axes=axes, path=p)
        try:
            meta = _read_rsciio(p, "tiff", lazy=True)
        except InputError:
            return ImageData(data=data, axes=axes, path=p)
        if len(meta.axes) == data.ndim:
            axes = meta.axes
        angles = _tilt_angles(axes, {}, data.shape[0]) if data.ndim == 3 else None
        return ImageData(data=data, axes=axes, path=p, tilt_angles=angles, original_metadata=meta.original_metadata,
                         reader="fastem (tifffile + rosettasciio calibration)")
    raise InputError(f"{p}: unknown image format (expected HDF5/CXI/EMD, MRC, TIFF, or with "
                     f"'pip install fastem[formats]': {', '.join(sorted(RSCIIO_SUFFIXES))}, Velox .emd)")


def _is_other_h5(p: Path) -> bool:
    """CXI / Data Exchange files keep their own default dataset (see :func:`fastem.io.read_array`)."""
    from .hdf5 import open_h5

    with open_h5(p, allow_external_links=True) as f:
        return "cxi_version" in f or "entry_1" in f or ("exchange" in f and "data" in f["exchange"])


def _default_names(ndim: int) -> list[str]:
    return {2: ["y", "x"], 3: ["z", "y", "x"]}.get(ndim, [f"dim{i}" for i in range(ndim)])


def read_calibration(spec) -> dict | None:
    """The calibration of an image input's image axes, ``{"x": (scale, units, offset), ...}``,
    or ``None`` (pixels, or the file cannot tell). Never raises for a readable input without
    calibration; a missing file or an unknown format raises as :func:`read_image_data`."""
    from .hdf5 import _path_arg, is_hdf5, open_h5, parse_ref, require_file

    path, _ = parse_ref(_path_arg(spec, "spec"))
    p = require_file(path)
    if is_hdf5(p) and p.suffix.lower() not in (".emd", ".hspy"):
        from .emd import is_emd

        with open_h5(p, allow_external_links=True) as f:
            if not is_emd(f):
                return None   # plain HDF5 / CXI / Data Exchange carry no image calibration here
    return read_image_data(spec).calibration()


@contextlib.contextmanager
def open_dataset(spec, *, allow_external_links: bool | None = None):
    """Yield ``(dataset, where)``: an h5py Dataset for ``spec`` that a command can slice or stream.

    An HDF5 dataset (``FILE.h5:/ds``, or the file's only dataset) is the file's own, read
    lazily; any other input (EMD arrays, MRC, TIFF, DM, Velox, ...) is read whole with
    :func:`read_image_data` and held in an in-memory HDF5 dataset (its attributes carry the
    calibration: ``axes``, ``scales``, ``units``).
    """
    import io as _io

    import h5py

    from .hdf5 import _path_arg, find_dataset, is_hdf5, open_h5, parse_ref, require_file

    path, dataset = parse_ref(_path_arg(spec, "spec"))
    p = require_file(path)
    if is_hdf5(p) and not is_emd_array(spec) and p.suffix.lower() not in (".emd", ".hspy"):
        with open_h5(p, allow_external_links=allow_external_links) as f:
            ds = find_dataset(f, dataset, file_label=str(p), allow_external_links=allow_external_links)
            yield ds, f"{p}:{ds.name}"
        return
    img = read_image_data(spec, allow_external_links=allow_external_links)
    with h5py.File(_io.BytesIO(), "w") as f:
        ds = f.create_dataset("data", data=img.data)
        ds.attrs["axes"] = ":".join(a.name or f"dim{i}" for i, a in enumerate(img.axes))
        ds.attrs["scales"] = np.asarray([a.scale for a in img.axes], np.float64)
        ds.attrs["units"] = ":".join(a.units for a in img.axes)
        yield ds, str(spec)


def is_emd_array(spec) -> bool:
    """Whether ``FILE:/path`` names an EMD array group (or its ``data``): such arrays must be
    read through :func:`fastem.io.read_emd` (v0.2 stores them with the axes reversed)."""
    from .hdf5 import _path_arg, is_hdf5, open_h5, parse_ref

    path, dataset = parse_ref(_path_arg(spec, "spec"))
    if dataset is None or not path.exists() or not is_hdf5(path):
        return False
    from .emd import _array_groups

    key = "/" + dataset.strip("/")
    with open_h5(path, allow_external_links=True) as f:
        groups = _array_groups(f)
    return key in groups or (key.endswith("/data") and key[:-5] in groups)
