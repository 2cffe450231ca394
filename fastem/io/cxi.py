"""CXI files (coherent X-ray / electron diffraction): diffraction data in, reconstructions out.

Layout read and written (CXI 1.6; docs/io.md "CXI")::

    /cxi_version                                   160
    /entry_1/instrument_1/source_1/energy          photon / electron energy (J), optional
    /entry_1/instrument_1/detector_1/data          intensities (photon counts), 2D or 3D,
                                                   zero frequency at the array centre
    /entry_1/instrument_1/detector_1/mask          uint32 bit field, non-zero = do not use
    /entry_1/instrument_1/detector_1/distance      (m), x_pixel_size, y_pixel_size (m)
    /entry_1/data_1/data                           soft link -> detector_1/data
    /entry_1/process_1/                            provenance of the data file (fastem writes it)
    /entry_1/image_1/data                          reconstruction (the object)
    /entry_1/image_1/support                       uint8, 1 = inside the support
    /entry_1/image_1/process_1/                    provenance + results (+ checkpoint/)

Mask bits: :data:`MASK_INVALID` 0x1, :data:`MASK_SATURATED` 0x2, :data:`MASK_HOT` 0x4,
:data:`MASK_DEAD` 0x8, :data:`MASK_SHADOWED` 0x10 (beamstop).

``known`` (what the algorithms use) is ``mask == 0`` and a finite intensity. Negative counts
(read noise after background subtraction) stay known: they are measurements; use
``CXIData.magnitudes`` (``sqrt(max(I, 0))``) as the Fourier magnitudes. Non-finite intensities
are marked unknown, set to 0 and reported with a warning. Complex or non-numeric data are refused
(one line naming the file and dataset): intensities are real counts, never silently truncated.
:func:`read_cxi` also reads ``FILE.h5:/path/to/dataset`` (any HDF5 dataset of intensities).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import DatasetNotFoundError, InputError
from .atomic import atomic_output
from .hdf5 import list_members, open_h5
from .process import read_process_group, write_process_group
from .validate import check_finite, check_ndim, check_same_shape

__all__ = [
    "CXIData",
    "CXIReconstruction",
    "read_cxi",
    "write_cxi",
    "write_cxi_detector",
    "write_cxi_reconstruction",
    "read_cxi_reconstruction",
    "mask_from_known",
    "CXI_VERSION",
    "CXI_DATA",
    "CXI_DETECTOR",
    "CXI_IMAGE",
    "CXI_PROCESS",
    "CXI_CHECKPOINT",
    "MASK_INVALID",
    "MASK_SATURATED",
    "MASK_HOT",
    "MASK_DEAD",
    "MASK_SHADOWED",
]

CXI_VERSION = 160
CXI_DATA = "/entry_1/data_1/data"
CXI_DETECTOR = "/entry_1/instrument_1/detector_1"
CXI_SOURCE = "/entry_1/instrument_1/source_1"
CXI_IMAGE = "/entry_1/image_1"
CXI_PROCESS = "/entry_1/image_1/process_1"
CXI_CHECKPOINT = CXI_PROCESS + "/checkpoint"
CXI_DATA_PROCESS = "/entry_1/process_1"

MASK_INVALID = 0x1
MASK_SATURATED = 0x2
MASK_HOT = 0x4
MASK_DEAD = 0x8
MASK_SHADOWED = 0x10


@dataclass
class CXIData:
    """Diffraction data read from a CXI file.

    Attributes
    ----------
    intensities : ndarray, float64, (ny, nx) or (nz, ny, nx)
        Photon counts, zero frequency at the array centre (as on disk). Non-finite values are
        replaced by 0 (and unknown).
    mask : ndarray, uint32, same shape, or None
        The CXI bit field (non-zero = do not use), ``None`` when the file has none.
    known : ndarray, bool, same shape
        Pixels to use: ``mask == 0`` and finite intensity.
    energy : float or None
        Source energy (J).
    distance : float or None
        Sample-detector distance (m).
    x_pixel_size, y_pixel_size : float or None
        Detector pixel size (m).
    path : pathlib.Path
    dataset : str or None
        The HDF5 path of the dataset actually read (e.g. ``/entry_1/instrument_1/detector_1/data``
        when the file has no ``/entry_1/data_1/data``).
    """

    intensities: np.ndarray
    mask: np.ndarray | None
    known: np.ndarray
    energy: float | None = None
    distance: float | None = None
    x_pixel_size: float | None = None
    y_pixel_size: float | None = None
    path: Path | None = None
    dataset: str | None = None

    @property
    def magnitudes(self) -> np.ndarray:
        """Measured Fourier magnitudes ``b = sqrt(max(I, 0))`` (float64, centred)."""
        return np.sqrt(np.maximum(self.intensities, 0.0))


@dataclass
class CXIReconstruction:
    """A reconstruction read back from ``/entry_1/image_1`` (see :func:`read_cxi_reconstruction`)."""

    image: np.ndarray
    support: np.ndarray | None
    provenance: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict)
    checkpoint: dict | None = None
    path: Path | None = None


def mask_from_known(known, bits: int = MASK_INVALID) -> np.ndarray:
    """CXI uint32 mask from a boolean ``known`` array: ``bits`` where not known, else 0."""
    known = np.asarray(known, dtype=bool)
    return np.where(known, np.uint32(0), np.uint32(bits)).astype(np.uint32)


def _scalar(group, name) -> float | None:
    import h5py

    obj = group.get(name) if group is not None else None
    if not isinstance(obj, h5py.Dataset):
        return None
    value = np.asarray(obj[()])
    if value.size != 1 or value.dtype.kind not in "iuf":
        return None
    return float(value.reshape(-1)[0])


def _find_data(f, path: Path):
    import h5py

    for candidate in (CXI_DATA, CXI_DETECTOR + "/data"):
        obj = f.get(candidate)
        if isinstance(obj, h5py.Dataset):
            return obj
    for entry in sorted(k for k in f.keys() if k.startswith("entry_")):
        for sub in sorted(k for k in f[entry].keys() if k.startswith("data_")):
            obj = f[entry].get(sub + "/data")
            if isinstance(obj, h5py.Dataset):
                return obj
    link = f.get(CXI_DATA, getlink=True) if "entry_1/data_1" in f else None
    if isinstance(link, h5py.SoftLink):
        raise DatasetNotFoundError(f"{path}: '{CXI_DATA}' is a dangling soft link to '{link.path}'")
    where = "/entry_1" if "entry_1" in f else "/"
    raise DatasetNotFoundError(f"{path}: no diffraction data at '{CXI_DATA}' or '{CXI_DETECTOR}/data' "
                               f"(in '{where}': {list_members(f[where])})")


def _check_real_numeric(ds, where: str) -> None:
    """Refuse a dataset that is not real numbers (complex values, strings, compound records)."""
    kind = ds.dtype.kind
    if kind == "c":
        raise InputError(f"{where}: complex values (dtype {ds.dtype}); diffraction intensities are real photon "
                         f"counts: store |F|^2 (or the real part if that is what was measured), not the complex field")
    if kind not in "biuf":
        raise InputError(f"{where}: dtype {ds.dtype} is not numeric; expected real intensities")


def read_cxi(path, dataset: str | None = None) -> CXIData:
    """Read diffraction intensities, mask and geometry from a CXI file (or any HDF5 dataset, or a
    pattern in an image format: MRC, TIFF, EMD, DM3/DM4, SER, MRCZ, HSPY through
    :func:`fastem.io.read_image_data`, without mask or geometry).

    Follows the ``/entry_1/data_1/data`` soft link (falls back to ``detector_1/data`` and to
    the first ``/entry_*/data_*/data``). See the module docstring for the layout and the
    meaning of ``known``.

    Parameters
    ----------
    path : str or os.PathLike
        A CXI file, or ``FILE:/path/to/dataset`` (any HDF5 file: a plain dataset of
        intensities, zero frequency at the centre).
    dataset : str, optional
        The dataset, when ``path`` names none. With a dataset, the mask is the CXI detector
        mask when the dataset is the CXI data, else a ``mask`` dataset beside it (if any).

    Raises
    ------
    DatasetNotFoundError
        Missing file or no intensity data (the message lists what the file holds).
    InputError
        Not HDF5, data not 2D/3D, complex or non-numeric data, mask of another shape.
    """
    import h5py

    from .hdf5 import find_dataset, parse_ref

    path, ref_ds = parse_ref(path)
    if ref_ds is not None and dataset is not None and "/" + str(dataset).strip("/") != ref_ds:
        raise InputError(f"{path}: two datasets given ('{ref_ds}' in the reference and '{dataset}')")
    dataset = ref_ds if ref_ds is not None else dataset
    if _image_file(path, dataset):
        return _read_image_pattern(path, dataset)
    with open_h5(path) as f:
        ds = _find_data(f, path) if dataset is None else find_dataset(f, dataset, file_label=str(path))
        ds_name = ds.name
        where = f"{path}:{ds_name}"
        check_ndim(ds, (2, 3), where)
        _check_real_numeric(ds, where)
        intensities = np.asarray(ds[()], dtype=np.float64)
        det = f.get(CXI_DETECTOR)
        det = det if isinstance(det, h5py.Group) else None
        cxi_data = f.get(CXI_DATA) if det is not None else None
        is_cxi_data = det is not None and (ds.parent.name == det.name or (
            isinstance(cxi_data, h5py.Dataset) and cxi_data.id == ds.id))
        mask = None
        mask_ds = det.get("mask") if is_cxi_data else None
        if not isinstance(mask_ds, h5py.Dataset):
            mask_ds = ds.parent.get("mask")  # some writers keep it beside the data (data_1/mask)
        if isinstance(mask_ds, h5py.Dataset) and mask_ds.id != ds.id:
            mask_where = f"{path}:{mask_ds.name}"
            if mask_ds.dtype.kind not in "biuf":
                raise InputError(f"{mask_where}: dtype {mask_ds.dtype}; CXI masks are uint32 bit fields "
                                 "(non-zero = do not use)")
            mask = np.asarray(mask_ds[()])
            if mask.shape != intensities.shape:
                if mask.shape == intensities.shape[-2:]:
                    mask = np.broadcast_to(mask, intensities.shape).copy()
                else:
                    raise InputError(f"{mask_where} has shape {mask.shape} but the data "
                                     f"{where} has shape {intensities.shape}")
            if mask.dtype.kind == "b":
                raise InputError(f"{mask_where} is boolean; CXI masks are uint32 bit fields "
                                 "(non-zero = do not use)")
            mask = mask.astype(np.uint32)
        src = f.get(CXI_SOURCE)
        energy = _scalar(src if isinstance(src, h5py.Group) else None, "energy")
        distance = _scalar(det, "distance")
        xps = _scalar(det, "x_pixel_size")
        yps = _scalar(det, "y_pixel_size")
    finite = np.isfinite(intensities)
    if not finite.all():
        intensities = check_finite(intensities, where, policy="zero", frame_label="pattern")
        # check_finite warned with counts and positions; those pixels are unknown from now on
    known = finite if mask is None else (mask == 0) & finite
    return CXIData(intensities=intensities, mask=mask, known=known, energy=energy, distance=distance,
                   x_pixel_size=xps, y_pixel_size=yps, path=path, dataset=ds_name)


def _image_file(path, dataset) -> bool:
    """A pattern stored in an image format rather than CXI/HDF5: MRC, TIFF, DM3/DM4, SER, MRCZ,
    HSPY, Velox or NCEM EMD (EMD arrays are stored with reversed axes; see fastem.io.emd)."""
    from .emd import _array_groups, is_emd
    from .hdf5 import is_hdf5, require_file

    p = require_file(path)
    if not is_hdf5(p):
        return True
    with open_h5(p) as f:
        if "cxi_version" in f or "entry_1" in f:
            return False
        if dataset is None:
            return is_emd(f) or ("Version" in f and "Data" in f) or "Experiments" in f
        key = "/" + str(dataset).strip("/")
        groups = _array_groups(f)
        return key in groups or (key.endswith("/data") and key[:-5] in groups)


def _read_image_pattern(path, dataset) -> CXIData:
    """Diffraction intensities from an image format through :func:`fastem.io.read_image_data`
    (no mask, no geometry; ``dataset`` is ``"/"`` for a whole file)."""
    from .inputs import read_image_data

    spec = f"{path}:{dataset}" if dataset is not None else str(path)
    img = read_image_data(spec)
    where = spec
    check_ndim(img.data, (2, 3), where)
    _check_real_numeric(img.data, where)
    intensities = np.asarray(img.data, dtype=np.float64)
    finite = np.isfinite(intensities)
    if not finite.all():
        intensities = check_finite(intensities, where, policy="zero", frame_label="pattern")
    return CXIData(intensities=intensities, mask=None, known=finite, energy=None, distance=None,
                   x_pixel_size=None, y_pixel_size=None, path=Path(path),
                   dataset=str(dataset) if dataset is not None else "/")


def _pixel_sizes(pixel_size):
    if pixel_size is None:
        return None, None
    if np.ndim(pixel_size) == 0:
        return float(pixel_size), float(pixel_size)
    ps = np.asarray(pixel_size, dtype=np.float64).reshape(-1)
    if ps.size != 2:
        raise InputError(f"pixel_size must be a number or (x, y), got {pixel_size!r}")
    return float(ps[0]), float(ps[1])


def write_cxi_detector(f, intensities, *, mask=None, energy=None, distance=None, pixel_size=None) -> None:
    """Write the detector part of a CXI file (``/entry_1/instrument_1/detector_1``: data, mask,
    distance, pixel sizes, energy) into the open, writable h5py file ``f``.

    For writers that add their own groups to the same file (e.g. :func:`fastem.data.save_cdi`,
    which adds the ground truth); :func:`write_cxi` writes a whole file. ``intensities``: (ny, nx)
    or (nz, ny, nx) counts; ``mask``: uint32 CXI bit field of the same shape; ``energy`` in J,
    ``distance`` in m, ``pixel_size`` in m (a number or (x, y)).
    """
    import h5py

    intensities = np.asarray(intensities)
    check_ndim(intensities, (2, 3), "intensities")
    if "cxi_version" not in f:
        f.create_dataset("cxi_version", data=np.int64(CXI_VERSION))
    det = f.require_group(CXI_DETECTOR)
    ds = det.create_dataset("data", data=intensities, compression="gzip", compression_opts=4, shuffle=True)
    ds.attrs["units"] = "counts"
    ds.attrs["axes"] = "y:x" if intensities.ndim == 2 else "z:y:x"
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype.kind == "b":
            raise InputError("mask is boolean; pass a uint32 CXI bit field (fastem.io.mask_from_known(known))")
        check_same_shape(mask, intensities, ("mask", "intensities"))
        det.create_dataset("mask", data=mask.astype(np.uint32), compression="gzip", shuffle=True)
    if distance is not None:
        det.create_dataset("distance", data=float(distance)).attrs["units"] = "m"
    xps, yps = _pixel_sizes(pixel_size)
    if xps is not None:
        det.create_dataset("x_pixel_size", data=xps).attrs["units"] = "m"
        det.create_dataset("y_pixel_size", data=yps).attrs["units"] = "m"
    if energy is not None:
        f.require_group(CXI_SOURCE).create_dataset("energy", data=float(energy)).attrs["units"] = "J"
    data_1 = f.require_group("/entry_1/data_1")
    data_1["data"] = h5py.SoftLink(CXI_DETECTOR + "/data")


def write_cxi(path, intensities, *, mask=None, energy=None, distance=None, pixel_size=None,
              overwrite: bool = False, inputs: Iterable = (), provenance: dict | None = None) -> Path:
    """Write diffraction data as a CXI file (atomically).

    Parameters
    ----------
    path : str or os.PathLike
    intensities : array_like, (ny, nx) or (nz, ny, nx)
        Photon counts, zero frequency at the centre. Stored with its dtype (gzip).
    mask : array_like of uint32, optional
        CXI bit field, same shape (see :func:`mask_from_known`).
    energy : float, optional
        Source energy (J).
    distance : float, optional
        Sample-detector distance (m).
    pixel_size : float or (x, y), optional
        Detector pixel size (m).
    overwrite, inputs
        See :func:`fastem.io.atomic_output`.
    provenance : dict, optional
        Written to ``/entry_1/process_1`` (default: :func:`fastem.io.provenance`).

    Returns
    -------
    pathlib.Path
    """
    import h5py

    with atomic_output(path, overwrite=overwrite, inputs=inputs) as tmp:
        with h5py.File(tmp, "w") as f:
            write_cxi_detector(f, intensities, mask=mask, energy=energy, distance=distance, pixel_size=pixel_size)
            write_process_group(f.require_group(CXI_DATA_PROCESS), provenance)
    return Path(path)


def write_cxi_reconstruction(path, image, *, support=None, provenance: dict | None = None,
                             results: dict | None = None, intensities=None, mask=None,
                             checkpoint: dict | None = None, overwrite: bool = False,
                             inputs: Iterable = (), energy=None, distance=None, pixel_size=None) -> Path:
    """Write a phase-retrieval result as a CXI file (atomically).

    Parameters
    ----------
    path : str or os.PathLike
    image : array_like, 2D or 3D
        The reconstructed object (real or complex), stored at ``/entry_1/image_1/data``.
    support : array_like of bool, optional
        Same shape; stored as uint8 at ``/entry_1/image_1/support``.
    provenance : dict
        :func:`fastem.io.provenance` record (program, version, command, date, device,
        configuration); default a fresh one.
    results : dict, optional
        Written into ``/entry_1/image_1/process_1``: e.g. ``{"r_factor_history": (n,) array,
        "r_factors": (runs,) array, "r_real": 0.012, "best_run": 3}``; nested dicts become
        subgroups.
    intensities, mask : array_like, optional
        The data the reconstruction came from; stored as in :func:`write_cxi` so the output
        is a complete CXI file.
    checkpoint : dict, optional
        Run state for ``--resume`` (``/entry_1/image_1/process_1/checkpoint``, see
        :mod:`fastem.io.checkpoint`). Long runs call this every N iterations with
        ``overwrite=True``.
    overwrite, inputs
        See :func:`fastem.io.atomic_output`.
    """
    import h5py

    image = np.asarray(image)
    check_ndim(image, (2, 3), "image")
    if support is not None:
        support = np.asarray(support)
        check_same_shape(support, image, ("support", "image"))
    with atomic_output(path, overwrite=overwrite, inputs=inputs) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("cxi_version", data=np.int64(CXI_VERSION))
            if intensities is not None:
                write_cxi_detector(f, intensities, mask=mask, energy=energy, distance=distance, pixel_size=pixel_size)
            img = f.require_group(CXI_IMAGE)
            ds = img.create_dataset("data", data=image)
            ds.attrs["axes"] = "y:x" if image.ndim == 2 else "z:y:x"
            if support is not None:
                img.create_dataset("support", data=support.astype(np.uint8)).attrs["meaning"] = "1 = inside the support"
            write_process_group(img.require_group("process_1"), provenance, results, checkpoint)
    return Path(path)


def read_cxi_reconstruction(path) -> CXIReconstruction:
    """Read ``/entry_1/image_1`` (image, support, provenance, results, checkpoint) from a CXI file."""
    import h5py

    path = Path(path)
    with open_h5(path) as f:
        img = f.get(CXI_IMAGE)
        if not isinstance(img, h5py.Group) or not isinstance(img.get("data"), h5py.Dataset):
            where = "/entry_1" if "entry_1" in f else "/"
            raise DatasetNotFoundError(f"{path}: no reconstruction at '{CXI_IMAGE}/data' "
                                       f"(in '{where}': {list_members(f[where])})")
        image = np.asarray(img["data"][()])
        sup = img.get("support")
        if not isinstance(sup, h5py.Dataset):
            sup = img.get("mask")
        support = np.asarray(sup[()]).astype(bool) if isinstance(sup, h5py.Dataset) else None
        proc = img.get("process_1")
        prov, results, checkpoint = read_process_group(proc) if isinstance(proc, h5py.Group) else ({}, {}, None)
    return CXIReconstruction(image=image, support=support, provenance=prov, results=results,
                             checkpoint=checkpoint, path=path)
