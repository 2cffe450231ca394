"""Data Exchange files (tomography): tilt series in, volumes out.

Layout read and written (docs/io.md "Data Exchange"; APS Data Exchange plus fastem extensions)::

    /implements                 "exchange:process"
    /exchange/data              projections (n_proj, rows, cols), attr axes="theta:y:x"
    /exchange/data_white        flat fields (k, rows, cols) or (rows, cols), optional
    /exchange/data_dark         dark fields (k, rows, cols) or (rows, cols), optional
    /exchange/theta             (n_proj,) tilt angles about y, degrees (attr units honoured)
    /exchange/angles            (n_proj, 3) Euler angles ZYX in degrees, attr convention="ZYX"
                                (fastem extension, multi-axis series; preferred over theta)
    /exchange/mask              (n_proj, rows, cols) uint8, 1 = measured (fastem extension)
    /process/fastem/            provenance (+ results, checkpoint/)

Reconstructions: ``/exchange/data`` holds the volume (z, y, x) float32, attr ``axes="z:y:x"``,
provenance and results (R-factor history ...) under ``/process/fastem/``.

Angles follow :mod:`fastem.geometry`: a tilt ``theta`` is the Euler triple ``(0, theta, 0)``.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import DatasetNotFoundError, InputError
from ..geometry import angles_from_tilts
from .atomic import atomic_output
from .hdf5 import list_members, open_h5
from .process import PROCESS_GROUP, read_process_group, write_process_group
from .validate import DataWarning, angles_to_degrees, check_finite, check_ndim, check_same_shape

__all__ = [
    "TiltSeriesData",
    "DXVolume",
    "read_dxchange",
    "write_dxchange",
    "write_dxchange_volume",
    "dxchange_volume_writer",
    "VolumeWriter",
    "VolumeOnDisk",
    "read_dxchange_volume",
    "flat_dark_correct",
    "minus_log",
    "DX_PROCESS",
    "DX_CHECKPOINT",
    "check_real_values",
    "read_dxchange_angles",
]

DX_PROCESS = PROCESS_GROUP
DX_CHECKPOINT = DX_PROCESS + "/checkpoint"
_IMPLEMENTS = "exchange:process"


@dataclass
class TiltSeriesData:
    """A tilt series ready for reconstruction.

    Attributes
    ----------
    projections : ndarray, float32, (n, rows, cols)
        Flat/dark corrected (and ``-log``-ed) when asked; non-finite values never remain.
    angles : ndarray, float64, (n, 3)
        Euler angles ZYX in degrees (``fastem.geometry``), ``(0, theta, 0)`` for a tilt series.
    theta : ndarray, float64, (n,) or None
        The single-axis tilts when the file gave ``theta`` (or a .tlt file), else None.
    mask : ndarray, bool, (n, rows, cols) or None
        True = measured (use), from ``/exchange/mask``; also False where values were not usable.
    path : pathlib.Path or None
    """

    projections: np.ndarray
    angles: np.ndarray
    theta: np.ndarray | None = None
    mask: np.ndarray | None = None
    path: Path | None = None

    @property
    def n_projections(self) -> int:
        return int(self.projections.shape[0])


@dataclass
class DXVolume:
    """A reconstructed volume read back by :func:`read_dxchange_volume`."""

    volume: np.ndarray
    provenance: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict)
    checkpoint: dict | None = None
    path: Path | None = None


_F32_MAX = float(np.finfo(np.float32).max)


def check_real_values(arr, where: str) -> None:
    """Refuse complex, non-numeric and float32-overflowing values in a tilt series (one line naming ``where``).

    Complex projections would silently lose their imaginary part; values beyond the float32
    range (about 3.4e38) would become inf when converted.
    """
    kind = np.dtype(arr.dtype).kind
    if kind == "c":
        raise InputError(f"{where}: complex values (dtype {arr.dtype}); tomography needs real projections: store "
                         "the real part, modulus or phase instead")
    if kind not in "biuf":
        raise InputError(f"{where}: values of dtype {arr.dtype} are not numbers")
    if isinstance(arr, np.ndarray) and kind == "f" and arr.dtype.itemsize > 4 and arr.size:
        with np.errstate(invalid="ignore"):
            top = float(np.nanmax(np.abs(np.where(np.isfinite(arr), arr, 0))))
        if top > _F32_MAX:
            raise InputError(f"{where}: values up to {top:.3g} exceed the float32 range (3.4e38) of the "
                             "reconstruction; rescale the data")


def _mean_field(arr, shape, what) -> np.ndarray:
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 3:
        arr = arr.mean(axis=0)
    if arr.shape != tuple(shape):
        raise InputError(f"{what} has frames of shape {arr.shape} but the projections are {tuple(shape)}")
    return arr


def flat_dark_correct(data, white=None, dark=None, *, what: str = "projections"):
    """``(data - dark) / (white - dark)``, averaging several flats / darks over their first axis.

    Returns ``(corrected float32, usable bool)``: pixels where ``white - dark <= 0`` cannot be
    normalised; they are set to 0 and marked unusable (a :class:`DataWarning` says how many).
    """
    data = np.asarray(data, dtype=np.float64)
    frame = data.shape[-2:]
    dark_img = np.zeros(frame) if dark is None else _mean_field(dark, frame, f"{what}: dark field")
    if white is None:
        return (data - dark_img).astype(np.float32), np.ones(frame, dtype=bool)
    white_img = _mean_field(white, frame, f"{what}: white field")
    denom = white_img - dark_img
    usable = denom > 0
    if not usable.all():
        warnings.warn(f"{what}: {int((~usable).sum())} detector pixel(s) have white <= dark; they are set to 0 "
                      "and treated as not measured", DataWarning, stacklevel=2)
    out = np.where(usable, (data - dark_img) / np.where(usable, denom, 1.0), 0.0)
    return out.astype(np.float32), usable


def minus_log(proj, what: str = "projections") -> np.ndarray:
    """``-log(proj)`` as float32 for absorption data.

    Values at or below ``1e-6 * max`` (zero, negative) are clipped there first; a
    :class:`DataWarning` says how many.
    """
    proj = np.asarray(proj, dtype=np.float32)
    top = float(proj.max()) if proj.size else 1.0
    floor = 1e-6 * top if top > 0 else 1e-6
    low = proj <= floor
    if low.any():
        warnings.warn(f"{what}: {int(low.sum())} value(s) <= {floor:.3g} before -log; clipped to {floor:.3g}",
                      DataWarning, stacklevel=2)
    return (-np.log(np.maximum(proj, floor))).astype(np.float32)


def read_dxchange_angles(f, path, n_proj: int):
    """The angles of an open Data Exchange file: ``/exchange/angles`` (Euler ZYX) or ``/exchange/theta``.

    Parameters
    ----------
    f : h5py.File or h5py.Group
        The open file (its ``/exchange`` group is read).
    path : str or os.PathLike
        The file's name, for messages only.
    n_proj : int
        Number of projections in ``/exchange/data``; the angle count must match it.

    Returns
    -------
    (angles, theta)
        ``angles`` float64 (n, 3) Euler ZYX in degrees (attribute ``units`` honoured);
        ``theta`` float64 (n,) tilts about y in degrees when read from ``/exchange/theta``,
        else ``None``. ``/exchange/angles`` is preferred when both exist.

    Raises
    ------
    DatasetNotFoundError
        Neither dataset exists.
    InputError
        Non-ZYX convention, non-real or empty angles, a wrong shape, a count other than ``n_proj``.
    """
    import h5py

    path = Path(path)
    ex = f["exchange"]
    angles = theta = None
    if isinstance(ex.get("angles"), h5py.Dataset):
        ds = ex["angles"]
        where = f"{path}:{ds.name}"
        conv = ds.attrs.get("convention", "ZYX")
        conv = conv.decode() if isinstance(conv, bytes) else str(conv)
        if conv.upper() != "ZYX":
            raise InputError(f"{where}: Euler convention {conv!r} is not supported (expected 'ZYX')")
        if ds.dtype.kind not in "biuf":
            raise InputError(f"{where}: angles must be real numbers, got dtype {ds.dtype}")
        raw = np.asarray(ds[()], dtype=np.float64)
        if raw.size == 0:
            raise InputError(f"{where}: empty angle set")
        if raw.ndim != 2 or raw.shape[1] != 3:
            raise InputError(f"{where}: expected Euler angles of shape (n, 3), got {raw.shape}")
        angles = angles_to_degrees(raw, ds.attrs, what=where)
        src = where
    elif isinstance(ex.get("theta"), h5py.Dataset):
        ds = ex["theta"]
        where = f"{path}:{ds.name}"
        if ds.dtype.kind not in "biuf":
            raise InputError(f"{where}: angles must be real numbers, got dtype {ds.dtype}")
        raw = np.asarray(ds[()], dtype=np.float64).reshape(-1)
        if raw.size == 0:
            raise InputError(f"{where}: empty angle set")
        theta = angles_to_degrees(raw, ds.attrs, what=where)
        angles = angles_from_tilts(theta)
        src = where
    else:
        raise DatasetNotFoundError(f"{path}: no angles: neither '/exchange/theta' nor '/exchange/angles' "
                                   f"(in '/exchange': {list_members(ex)})")
    if angles.shape[0] != n_proj:
        raise InputError(f"{path}: {n_proj} projections in /exchange/data but {angles.shape[0]} angles in {src}")
    return angles, theta


_read_angles = read_dxchange_angles  # the former private name (fastem.tomo.job used it)


def read_dxchange(path, *, flat_dark: bool = True, log: bool = False, nonfinite: str = "error") -> TiltSeriesData:
    """Read a tilt series from a Data Exchange file.

    Parameters
    ----------
    path : str or os.PathLike
    flat_dark : bool
        Apply ``(data - dark) / (white - dark)`` when ``data_white`` (and ``data_dark``) exist.
    log : bool
        Then take ``-log`` (absorption data). Values <= 0 are clipped to 1e-6 of the largest
        value first (a warning says how many).
    nonfinite : {"error", "zero"}
        Non-finite projection values: raise (default; the message says how many and in which
        projections), or set them to 0 and mark them unmeasured in ``mask``.

    Raises
    ------
    DatasetNotFoundError
        Missing file, ``/exchange/data`` or angles.
    InputError
        Wrong rank, angle / projection count mismatch, empty angle set, mask of another shape,
        non-finite values (``nonfinite="error"``), unknown angle units.
    """
    import h5py

    if nonfinite not in ("error", "zero"):
        raise ValueError(f"nonfinite must be 'error' or 'zero', got {nonfinite!r}")
    path = Path(path)
    with open_h5(path) as f:
        ex = f.get("exchange")
        if not isinstance(ex, h5py.Group) or not isinstance(ex.get("data"), h5py.Dataset):
            where = "/exchange" if isinstance(ex, h5py.Group) else "/"
            raise DatasetNotFoundError(f"{path}: no projections at '/exchange/data' "
                                       f"(in '{where}': {list_members(f[where])})")
        ds = ex["data"]
        where = f"{path}:{ds.name}"
        check_ndim(ds, 3, where)
        if ds.shape[0] == 0:
            raise InputError(f"{where}: no projections (shape {ds.shape})")
        check_real_values(ds, where)
        data = np.asarray(ds[()])
        check_real_values(data, where)
        angles, theta = read_dxchange_angles(f, path, data.shape[0])
        white = dark = None
        for name in ("data_white", "data_dark"):
            if flat_dark and isinstance(ex.get(name), h5py.Dataset):
                field_ds = ex[name]
                check_real_values(field_ds, f"{path}:{field_ds.name}")
                value = np.asarray(field_ds[()])
                check_real_values(value, f"{path}:{field_ds.name}")
                if name == "data_white":
                    white = value
                else:
                    dark = value
        mask = None
        if isinstance(ex.get("mask"), h5py.Dataset):
            mask = np.asarray(ex["mask"][()]) != 0
            if mask.shape != data.shape:
                raise InputError(f"{path}:/exchange/mask has shape {mask.shape} but /exchange/data has shape {data.shape}")
    finite = np.isfinite(data) if data.dtype.kind in "fc" else None
    if finite is not None and not finite.all():
        # non-finite values in blocked pixels (mask 0) are expected and harmless; only those in
        # measured pixels are an error (or zeroed and unmasked with nonfinite="zero")
        measured = data if mask is None else np.where(mask, data, 0)
        check_finite(measured, where + (" (measured pixels)" if mask is not None else ""), policy=nonfinite,
                     frame_label="projection")
        data = np.where(finite, data, 0)
        mask = finite if mask is None else (mask & finite)
    if flat_dark and (white is not None or dark is not None):
        proj, usable = flat_dark_correct(data, white, dark, what=where)
        if not usable.all():
            mask = np.broadcast_to(usable, proj.shape).copy() if mask is None else (mask & usable)
    else:
        proj = data.astype(np.float32, copy=False)
    if log:
        proj = minus_log(proj, where)
    return TiltSeriesData(projections=np.ascontiguousarray(proj, dtype=np.float32), angles=angles,
                          theta=theta, mask=mask, path=path)


def write_dxchange(path, projections, *, theta=None, angles=None, mask=None, white=None, dark=None,
                   overwrite: bool = False, inputs: Iterable = (), provenance: dict | None = None) -> Path:
    """Write a tilt series as a Data Exchange file (atomically).

    Parameters
    ----------
    projections : array_like, (n, rows, cols)
        Stored with its dtype (float32 recommended), ``axes="theta:y:x"``.
    theta : array_like, (n,), optional
        Tilt angles about y in degrees (``/exchange/theta``, ``units="degrees"``).
    angles : array_like, (n, 3), optional
        Euler ZYX angles in degrees (``/exchange/angles``, ``convention="ZYX"``). At least one
        of ``theta`` / ``angles`` is required.
    mask : array_like of bool, (n, rows, cols), optional
        True = measured; stored as uint8 ``/exchange/mask``.
    white, dark : array_like, optional
        Flat and dark fields, (k, rows, cols) or (rows, cols).
    provenance : dict, optional
        Written to ``/process/fastem`` (default a fresh record).
    """
    import h5py

    proj = np.asarray(projections)
    check_ndim(proj, 3, "projections")
    n = proj.shape[0]
    if theta is None and angles is None:
        raise InputError("write_dxchange: give theta (n,) or angles (n, 3)")
    if theta is not None:
        theta = np.asarray(theta, dtype=np.float64).reshape(-1)
        if theta.size != n:
            raise InputError(f"{n} projections but {theta.size} theta values")
    if angles is not None:
        angles = np.asarray(angles, dtype=np.float64)
        if angles.ndim != 2 or angles.shape[1] != 3:
            raise InputError(f"angles must have shape (n, 3), got {angles.shape}")
        if angles.shape[0] != n:
            raise InputError(f"{n} projections but {angles.shape[0]} Euler angle triples")
    if mask is not None:
        mask = np.asarray(mask)
        check_same_shape(mask, proj, ("mask", "projections"))
    with atomic_output(path, overwrite=overwrite, inputs=inputs) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("implements", data=_IMPLEMENTS)
            ex = f.create_group("exchange")
            ds = ex.create_dataset("data", data=proj, chunks=(1, *proj.shape[1:]) if proj.size else None)
            ds.attrs["axes"] = "theta:y:x"
            if theta is not None:
                ex.create_dataset("theta", data=theta).attrs["units"] = "degrees"
            if angles is not None:
                a = ex.create_dataset("angles", data=angles)
                a.attrs["convention"] = "ZYX"
                a.attrs["units"] = "degrees"
            if mask is not None:
                ex.create_dataset("mask", data=mask.astype(np.uint8), compression="gzip").attrs["meaning"] = "1 = measured"
            if white is not None:
                ex.create_dataset("data_white", data=np.asarray(white))
            if dark is not None:
                ex.create_dataset("data_dark", data=np.asarray(dark))
            write_process_group(f.require_group(DX_PROCESS), provenance)
    return Path(path)


def write_dxchange_volume(path, volume, *, provenance: dict | None = None, results: dict | None = None,
                          checkpoint: dict | None = None, overwrite: bool = False,
                          inputs: Iterable = (), voxel_size=None) -> Path:
    """Write a reconstructed volume as a Data Exchange file (atomically).

    Parameters
    ----------
    volume : array_like, (z, y, x)
        Stored as float32 ``/exchange/data``, ``axes="z:y:x"``.
    provenance : dict
        :func:`fastem.io.provenance` record, under ``/process/fastem`` (default a fresh one).
    results : dict, optional
        E.g. ``{"r_factor_history": (n_iter,) array, "fsc": ...}``, under ``/process/fastem``.
    checkpoint : dict, optional
        Run state for ``--resume`` (``/process/fastem/checkpoint``).
    voxel_size : float, optional
        Stored as attribute ``voxel_size`` of the data (same units as the caller's).
    """
    import h5py

    vol = np.asarray(volume)
    check_ndim(vol, 3, "volume")
    with atomic_output(path, overwrite=overwrite, inputs=inputs) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("implements", data=_IMPLEMENTS)
            ds = f.create_group("exchange").create_dataset("data", data=vol.astype(np.float32, copy=False))
            ds.attrs["axes"] = "z:y:x"
            if voxel_size is not None:
                ds.attrs["voxel_size"] = float(voxel_size)
            write_process_group(f.require_group(DX_PROCESS), provenance, results, checkpoint)
    return Path(path)


def _region_text(region) -> str:
    """``(slice(None), slice(0, 6), slice(None))`` -> ``[:, 0:6, :]``."""
    parts = []
    for r in region if isinstance(region, tuple) else (region,):
        if isinstance(r, slice):
            parts.append(f"{'' if r.start is None else r.start}:{'' if r.stop is None else r.stop}")
        else:
            parts.append(str(r))
    return "[" + ", ".join(parts) + "]"


class VolumeWriter:
    """The open output of :func:`dxchange_volume_writer`: write ``data[...]`` by region, then
    :meth:`finish` with the provenance and results. Every region written is checked for NaN / inf
    first (:class:`~fastem.errors.NonFiniteResultError`, and the file is not kept)."""

    def __init__(self, dataset, process_group, what: str, hint: str):
        self.data, self._process, self.what, self.hint, self.finished = dataset, process_group, what, hint, False

    @property
    def shape(self):
        return self.data.shape

    def __setitem__(self, region, values) -> None:
        from .validate import require_finite_result

        values = np.asarray(values, np.float32)
        require_finite_result(values, f"{self.what} (region {_region_text(region)})", hint=self.hint)
        self.data[region] = values

    def finish(self, provenance: dict | None = None, results: dict | None = None) -> None:
        write_process_group(self._process, provenance, results, None)
        self.finished = True


class VolumeOnDisk:
    """A float32 volume in an HDF5 file, read when asked for (``np.asarray(v)``, :meth:`read`).

    Returned where a job wrote a volume region by region and never held it in memory (slabs
    from Dask workers); ``shape``, ``dtype`` and ``ndim`` answer without reading.
    """

    def __init__(self, path, dataset: str, shape):
        self.path, self.dataset, self.shape = Path(path), str(dataset), tuple(int(s) for s in shape)
        self.dtype, self.ndim = np.dtype(np.float32), len(self.shape)

    def read(self) -> np.ndarray:
        with open_h5(self.path) as f:
            return np.asarray(f[self.dataset][()])

    def __array__(self, dtype=None, copy=None):
        a = self.read()
        return a if dtype is None else a.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"VolumeOnDisk({str(self.path)!r}, {self.dataset!r}, shape={self.shape})"


@contextmanager
def dxchange_volume_writer(path, shape, *, overwrite: bool = False, inputs: Iterable = (), voxel_size=None,
                           what: str = "the volume", hint: str = ""):
    """A Data Exchange volume file written region by region (atomically), for volumes assembled
    from pieces that never sit in memory together (tomography slabs from Dask workers).

    Yields a :class:`VolumeWriter`; the file is renamed onto ``path`` only when the block ends
    without an exception **and** :meth:`VolumeWriter.finish` was called (otherwise the temporary
    file is removed, as with :func:`write_dxchange_volume`). The layout equals
    :func:`write_dxchange_volume`'s: float32 ``/exchange/data`` ``(z, y, x)``, ``axes="z:y:x"``.
    """
    import h5py

    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise InputError(f"shape must be (z, y, x) with positive sizes, got {shape}")
    with atomic_output(path, overwrite=overwrite, inputs=inputs) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("implements", data=_IMPLEMENTS)
            ds = f.create_group("exchange").create_dataset("data", shape=shape, dtype=np.float32)
            ds.attrs["axes"] = "z:y:x"
            if voxel_size is not None:
                ds.attrs["voxel_size"] = float(voxel_size)
            writer = VolumeWriter(ds, f.require_group(DX_PROCESS), what, hint)
            yield writer
            if not writer.finished:
                raise RuntimeError(f"{path}: the volume writer was closed before finish(); the file is not kept")


def read_dxchange_volume(path) -> DXVolume:
    """Read a volume written by :func:`write_dxchange_volume` (volume, provenance, results, checkpoint)."""
    import h5py

    path = Path(path)
    with open_h5(path) as f:
        ds = f.get("/exchange/data")
        if not isinstance(ds, h5py.Dataset):
            raise DatasetNotFoundError(f"{path}: no volume at '/exchange/data' (in '/': {list_members(f['/'])})")
        check_ndim(ds, 3, f"{path}:/exchange/data")
        vol = np.asarray(ds[()])
        proc = f.get(DX_PROCESS)
        prov, results, checkpoint = read_process_group(proc) if isinstance(proc, h5py.Group) else ({}, {}, None)
    return DXVolume(volume=vol, provenance=prov, results=results, checkpoint=checkpoint, path=path)
