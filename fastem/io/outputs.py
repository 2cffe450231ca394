"""Outputs chosen by extension or ``--format``: one helper for every command that writes images
or volumes.

======= ====================================== =================================================
format  extensions                              what is written
======= ====================================== =================================================
hdf5    .h5 .hdf5 .hdf .he5 .nxs .cxi .dxf     the command's own layout (every dataset, results,
                                                checkpoints); also any unknown extension
emd     .emd                                    Berkeley EMD v0.2 as HyperSpy reads it (every
                                                image/volume array of the layout, calibrated
                                                dims, provenance in ``/comments``)
mrc     .mrc .mrcs .st .ali .map .rec .preali  the primary array (real voxel size in angstrom
                                                when the calibration says, else "unknown")
tiff    .tif .tiff                              the primary array (calibration as Gatan tags,
                                                provenance in the description)
hspy    .hspy                                   the primary array as a HyperSpy signal (needs
                                                ``pip install fastem[formats]``), provenance in
                                                ``original_metadata.fastem``
======= ====================================== =================================================

A known extension that names another format than ``--format`` is an error naming both flags;
so is a format the command cannot write. The command runs as usual into a hidden HDF5 file
beside the output (:func:`staged_output`); on success the arrays named by the command's
*layout* (:data:`LAYOUTS`) are written in the chosen format, atomically, and the staging file is
removed. Resuming (checkpoints) needs the HDF5 format.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import numpy as np

from ..errors import InputError
from .mrc import MRC_SUFFIXES
from .tiff import TIFF_SUFFIXES

__all__ = ["FORMATS", "FORMAT_SUFFIXES", "LAYOUTS", "OutputArray", "format_of_suffix", "output_format",
           "staged_output", "export_hdf5", "Calibration", "to_angstrom"]

HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5", ".nxs", ".cxi", ".dxf")
FORMAT_SUFFIXES: dict[str, tuple[str, ...]] = {
    "hdf5": HDF5_SUFFIXES,
    "emd": (".emd",),
    "mrc": MRC_SUFFIXES,
    "tiff": TIFF_SUFFIXES,
    "hspy": (".hspy",),
}
FORMATS = tuple(FORMAT_SUFFIXES)

#: one axis calibration: (scale, units, offset)
Calibration = Mapping[str, tuple]

_TO_ANGSTROM = {"a": 1.0, "å": 1.0, "angstrom": 1.0, "angstroms": 1.0, "nm": 10.0, "pm": 0.01, "um": 1e4,
                "µm": 1e4, "μm": 1e4, "micron": 1e4, "mm": 1e7, "m": 1e10}


def to_angstrom(scale: float, units: str) -> float | None:
    """``scale`` in ``units`` as angstrom (``None`` for a non-length unit such as ``px``)."""
    factor = _TO_ANGSTROM.get(str(units or "").strip().lower())
    return None if factor is None else float(scale) * factor


def format_of_suffix(path) -> str | None:
    """The format an output name's extension stands for (``None`` for an unknown extension)."""
    suffix = Path(str(path)).suffix.lower()
    for name, suffixes in FORMAT_SUFFIXES.items():
        if suffix in suffixes:
            return name
    return None


def output_format(path, fmt: str | None = None, *, allowed: Iterable[str] = FORMATS, command: str = "this command",
                  output_flag: str = "-o", format_flag: str = "--format") -> str:
    """Resolve the output format from ``--format`` and the output's extension.

    Parameters
    ----------
    path : str or os.PathLike
        The output (``-o``).
    fmt : str, optional
        ``--format`` (``hdf5``, ``emd``, ``mrc``, ``tiff``, ``hspy``; ``h5``/``tif`` accepted).
    allowed : iterable of str
        The formats the command can write.

    Returns
    -------
    str
        The format. An unknown extension without ``--format`` is HDF5.

    Raises
    ------
    InputError
        A format the command cannot write, an unknown ``--format``, or an extension that names
        another format than ``--format`` (one line naming the flags).
    """
    allowed = tuple(allowed)
    aliases = {"h5": "hdf5", "tif": "tiff", "cxi": "hdf5"}
    by_suffix = format_of_suffix(path)
    if fmt is not None:
        fmt = aliases.get(str(fmt).lower(), str(fmt).lower())
        if fmt not in FORMATS:
            raise InputError(f"{format_flag} {fmt}: unknown format (choose from {', '.join(FORMATS)})")
        if by_suffix is not None and by_suffix != fmt:
            raise InputError(f"{output_flag} {path}: the extension {Path(str(path)).suffix} is {by_suffix}, but "
                             f"{format_flag} {fmt} was asked; use a {', '.join(FORMAT_SUFFIXES[fmt][:2])} name "
                             f"or drop {format_flag}")
    else:
        fmt = by_suffix or "hdf5"
    if fmt not in allowed:
        flag = format_flag if by_suffix is None else output_flag
        raise InputError(f"{flag} {path if flag == output_flag else fmt}: {command} does not write {fmt} "
                         f"(it writes {', '.join(allowed)})")
    if fmt == "hspy":   # refuse before the run, not after it
        try:
            import rsciio.hspy  # noqa: F401
        except ImportError:
            raise InputError(f"{output_flag} {path}: writing .hspy needs RosettaSciIO: "
                             f"pip install 'fastem[formats]'") from None
    return fmt


@dataclass(frozen=True)
class OutputArray:
    """One array of a command's HDF5 layout that other formats carry.

    ``name`` is its name in EMD / HSPY, ``dataset`` its HDF5 path, ``axes`` the axis names
    (NumPy order, matched from the end for arrays of fewer dimensions), ``optional`` whether
    it may be absent.
    """

    name: str
    dataset: str
    axes: tuple = ("z", "y", "x")
    optional: bool = False


#: the arrays each command's output carries into EMD / MRC / TIFF / HSPY (the first is primary)
LAYOUTS: dict[str, tuple[OutputArray, ...]] = {
    "tomo": (OutputArray("volume", "/exchange/data", ("z", "y", "x")),),
    "scan-simulate": (OutputArray("partial", "/scan/partial", ("image", "y", "x")),
                      OutputArray("path", "/scan/path", ("image", "y", "x")),
                      OutputArray("truth", "/scan/truth", ("image", "y", "x"), optional=True)),
    "scan-complete": (OutputArray("completed", "/scan/completed", ("image", "y", "x")),
                      OutputArray("completed_intensity", "/scan/completed_intensity", ("image", "y", "x"),
                                  optional=True)),
    "cluster": (OutputArray("centroids", "/cluster/centroids", ("cluster", "y", "x")),
                OutputArray("label_map", "/cluster/label_map", ("y", "x"), optional=True),
                OutputArray("labels", "/cluster/labels", ("sample",))),
    "phase": (OutputArray("object", "/entry_1/image_1/data", ("z", "y", "x")),
              OutputArray("support", "/entry_1/image_1/support", ("z", "y", "x"), optional=True)),
}


def _find_provenance(f) -> dict:
    """The provenance record of a fastem HDF5 output (the first group holding ``program`` and
    ``command``), or ``{}``."""
    import h5py

    from .provenance import read_provenance

    found: list = []

    def visit(name, obj):
        if not found and isinstance(obj, h5py.Group) and "program" in obj and "command" in obj:
            found.append(obj)

    f.visititems(visit)
    return read_provenance(found[0]) if found else {}


def _read_arrays(src, layout: str) -> tuple[dict, dict]:
    import h5py

    spec = LAYOUTS[layout]
    arrays: dict[str, tuple[np.ndarray, tuple]] = {}
    with h5py.File(src, "r") as f:
        for item in spec:
            ds = f.get(item.dataset)
            if not isinstance(ds, h5py.Dataset):
                if item.optional:
                    continue
                raise InputError(f"{src}: {item.dataset} missing (the {layout} output layout)")
            arr = np.asarray(ds[()])
            shape = ds.attrs.get("image_shape")
            if shape is not None and arr.ndim == 2:  # (K, h*w) centroids of image input
                arr = arr.reshape((arr.shape[0], *np.asarray(shape, np.int64).tolist()))
            arrays[item.name] = (arr, item.axes[-arr.ndim:] if arr.ndim <= len(item.axes)
                                 else tuple(f"dim{i}" for i in range(arr.ndim)))
        prov = _find_provenance(f)
    return arrays, prov


def _dims(arr: np.ndarray, axes: tuple, calibration: Calibration | None) -> list:
    from .emd import EMDDim

    cal = dict(calibration or {})
    if "z" in axes and "z" not in cal and "x" in cal:
        cal["z"] = (cal["x"][0], cal["x"][1], 0.0)   # volume voxels are cubic (the detector pixel size)
    dims = []
    for name, n in zip(axes, arr.shape):
        scale, units, offset = (tuple(cal[name]) + (0.0,))[:3] if name in cal else (1.0, "px" if name in
                                                                                     ("x", "y", "z") else "", 0.0)
        dims.append(EMDDim(float(offset) + float(scale) * np.arange(n, dtype=np.float64), name, str(units)))
    return dims


def _voxel_size(axes: tuple, calibration: Calibration | None):
    """``(z, y, x)`` angstrom from the calibration of the primary array's axes, or ``None``."""
    cal = dict(calibration or {})
    sizes = {}
    for name in ("z", "y", "x"):
        if name in cal:
            a = to_angstrom(cal[name][0], cal[name][1])
            if a is not None and np.isfinite(a) and a > 0:
                sizes[name] = a
    if "x" not in sizes or "y" not in sizes:
        return None
    return (sizes.get("z", sizes["x"]), sizes["y"], sizes["x"])


def _write_hspy(path: Path, arr: np.ndarray, axes: tuple, dims: list, prov: dict, title: str, final=None) -> None:
    try:
        from rsciio.hspy import file_writer
    except ImportError:
        raise InputError(f"{final or path}: writing .hspy needs RosettaSciIO: pip install 'fastem[formats]'") from None
    navigate = [a in ("image", "cluster") for a in axes]
    if not any(not n for n in navigate):
        navigate = [False] * len(axes)
    signal = {
        "data": arr,
        "axes": [{"name": d.name, "units": d.units or None, "scale": d.scale, "offset": d.offset,
                  "size": int(n), "navigate": nav, "index_in_array": i}
                 for i, (d, n, nav) in enumerate(zip(dims, arr.shape, navigate))],
        "metadata": {"General": {"title": title},
                     "Signal": {"signal_type": "", "record_by": ""}},
        "original_metadata": {"fastem": {k: (v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str))
                                         for k, v in prov.items()}},
        "attributes": {"_lazy": False},
        "tmp_parameters": {},
        "package_info": {"name": "fastem", "version": str(prov.get("version", ""))},
        "learning_results": {},
        "models": {},
    }
    file_writer(str(path), signal, show_progressbar=False)


def export_hdf5(src, path, fmt: str, layout: str, *, calibration: Calibration | None = None,
                overwrite: bool = False, inputs: Iterable = ()) -> Path:
    """Write the arrays of the HDF5 output ``src`` (a command's ``layout``) to ``path`` as
    ``fmt`` (``emd``, ``mrc``, ``tiff``, ``hspy``), atomically.

    ``calibration`` maps axis names (``"x"``, ``"y"``, ``"z"``) to ``(scale, units[, offset])``
    (e.g. the input's pixel size); other axes are pixel indices.
    """
    from .atomic import atomic_output
    from .emd import write_emd
    from .mrc import write_mrc
    from .tiff import write_tiff

    if layout not in LAYOUTS:
        raise InputError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    arrays, prov = _read_arrays(src, layout)
    primary = LAYOUTS[layout][0].name
    arr, axes = arrays[primary]
    path = Path(path)
    if fmt == "emd":
        write_emd(path, {k: a for k, (a, _) in arrays.items()},
                  {k: _dims(a, ax, calibration) for k, (a, ax) in arrays.items()},
                  overwrite=overwrite, inputs=inputs, provenance=prov or None)
        return path
    if fmt in ("mrc", "tiff") and arr.ndim not in (2, 3):
        raise InputError(f"{path}: the {primary} array has shape {arr.shape}; {fmt} holds 2D or 3D arrays "
                         f"(write .emd or .h5)")
    if fmt == "mrc":
        stack = axes[0] in ("image", "cluster") and arr.ndim == 3
        write_mrc(path, arr, _voxel_size(axes, calibration), stack=stack, overwrite=overwrite, inputs=inputs,
                  provenance=prov or None)
        return path
    if fmt == "tiff":
        if np.iscomplexobj(arr):
            raise InputError(f"{path}: the {primary} array is complex; TIFF cannot hold it (write .emd, .mrc or .h5)")
        cal = dict(calibration or {})
        tiff_cal = None
        if "x" in cal and "y" in cal and axes[-2:] == ("y", "x"):
            tiff_cal = (tuple(cal["y"]), tuple(cal["x"]))
        write_tiff(path, arr, overwrite=overwrite, inputs=inputs, provenance=prov or None, calibration=tiff_cal)
        return path
    if fmt == "hspy":
        dims = _dims(arr, axes, calibration)
        with atomic_output(path, overwrite=overwrite, inputs=inputs) as tmp:
            _write_hspy(tmp, arr, axes, dims, prov, primary, final=path)
        return path
    raise InputError(f"format must be one of emd, mrc, tiff, hspy for an export, got {fmt!r}")


@contextlib.contextmanager
def staged_output(path, fmt: str, layout: str, *, overwrite: bool = False, inputs: Iterable = (),
                  calibration=None) -> Iterator[Path]:
    """Yield the path a command writes its HDF5 output to; convert it to ``fmt`` on success.

    For ``fmt == "hdf5"`` this is ``path`` itself. Otherwise a hidden staging file beside
    ``path`` (``.NAME.PID-XXXX.tmp``, removed afterwards, also by the next run if this one is
    killed); ``calibration`` may be a mapping or a callable returning one (called after the run).
    """
    from .atomic import _temp_name, check_output, output_lock

    if fmt == "hdf5":
        yield Path(path)
        return
    final = check_output(path, overwrite=overwrite, inputs=inputs)
    with output_lock(final):
        stage = _temp_name(Path(final))
        try:
            yield stage
            if stage.exists():
                cal = calibration() if callable(calibration) else calibration
                export_hdf5(stage, final, fmt, layout, calibration=cal, overwrite=overwrite,
                            inputs=[*inputs, stage])
        finally:
            with contextlib.suppress(OSError):
                stage.unlink()
