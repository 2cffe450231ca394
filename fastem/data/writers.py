"""Save synthetic data in the project's file formats (thin wrappers over :mod:`fastem.io`).

========================  =====================================================================
``save_cdi``              CXI: intensities, beamstop mask (0x10), plus the ground truth
                          ``/entry_1/sample_1/object`` and ``/entry_1/sample_1/support`` (uint8)
``save_tilt_series``      Data Exchange (theta for single-axis, angles (n, 3) for Euler series),
                          optionally also an MRC stack + IMOD .tlt
``save_volume``           MRC (``.mrc``) or Data Exchange volume (``.h5``)
``save_mixture``          HDF5 ``/data`` (N, d), ``/labels`` (N,), ``/centres`` (k, d)
========================  =====================================================================

Each records provenance including the generator parameters (``config``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import (PROCESS_GROUP, atomic_output, provenance, write_dxchange, write_dxchange_volume, write_mrc,
                  write_process_group, write_tlt)
from ..io.cxi import CXI_DATA_PROCESS, write_cxi_detector

__all__ = ["save_cdi", "save_tilt_series", "save_volume", "save_mixture", "CDI_TRUTH_OBJECT", "CDI_TRUTH_SUPPORT"]

CDI_TRUTH_OBJECT = "/entry_1/sample_1/object"
CDI_TRUTH_SUPPORT = "/entry_1/sample_1/support"


def save_cdi(path, cdi, *, energy=None, distance=None, pixel_size=None, overwrite: bool = False,
             config: dict | None = None) -> Path:
    """Write a :class:`~fastem.data.CDIData` as CXI with its ground truth (atomically).

    The configuration records ``r_noise``, ``flux``, ``read_noise`` and ``seed`` (plus ``config``).
    """
    import h5py

    cfg = {"generator": "fastem.data.cdi_intensities", "r_noise": cdi.r_noise, "flux": cdi.flux,
           "read_noise": cdi.read_noise, "seed": cdi.seed, "beamstop_pixels": int((~cdi.known).sum())}
    cfg.update(config or {})
    with atomic_output(path, overwrite=overwrite) as tmp:
        with h5py.File(tmp, "w") as f:
            write_cxi_detector(f, cdi.intensities, mask=cdi.mask, energy=energy, distance=distance, pixel_size=pixel_size)
            f.create_dataset(CDI_TRUTH_OBJECT, data=cdi.object)
            f[CDI_TRUTH_SUPPORT] = cdi.support.astype(np.uint8)
            f[CDI_TRUTH_SUPPORT].attrs["meaning"] = "1 = inside the (dilated) true support"
            write_process_group(f.require_group(CXI_DATA_PROCESS), provenance(config=cfg))
    return Path(path)


def save_tilt_series(path, projections, angles, *, mask=None, mrc_path=None, overwrite: bool = False,
                     config: dict | None = None) -> Path:
    """Write a tilt series as Data Exchange (and optionally an MRC stack + .tlt).

    Parameters
    ----------
    projections : array_like, (n, rows, cols)
    angles : array_like, (n,) tilts about y or (n, 3) Euler ZYX, degrees
        Euler triples that are all ``(0, theta, 0)`` are stored as ``theta``.
    mask : array_like of bool, optional
    mrc_path : path, optional
        Also write the stack there (``.mrc``) with ``<stem>.tlt`` beside it (single-axis only).
    """
    a = np.asarray(angles, dtype=np.float64)
    theta = euler = None
    if a.ndim == 1:
        theta = a
    elif a.ndim == 2 and a.shape[1] == 3 and not np.any(a[:, [0, 2]]):
        theta = a[:, 1]
    else:
        euler = a
    prov = provenance(config={"generator": "fastem.data.tilt_series", **(config or {})})
    write_dxchange(path, projections, theta=theta, angles=euler, mask=mask, overwrite=overwrite, provenance=prov)
    if mrc_path is not None:
        if theta is None:
            raise InputError("save_tilt_series: an MRC stack + .tlt can only hold single-axis tilts")
        mrc_path = Path(mrc_path)
        write_mrc(mrc_path, np.asarray(projections, dtype=np.float32), stack=True, overwrite=overwrite, provenance=prov)
        write_tlt(mrc_path.with_suffix(".tlt"), theta, overwrite=overwrite)
    return Path(path)


def save_volume(path, volume, *, voxel_size=None, overwrite: bool = False, config: dict | None = None) -> Path:
    """Write a phantom volume: MRC for ``.mrc`` (float32), else a Data Exchange volume."""
    prov = provenance(config=config or {})
    if Path(path).suffix.lower() in (".mrc", ".map", ".rec"):
        return write_mrc(path, np.asarray(volume, dtype=np.float32), voxel_size, overwrite=overwrite, provenance=prov)
    return write_dxchange_volume(path, volume, provenance=prov, overwrite=overwrite, voxel_size=voxel_size)


def save_mixture(path, X, labels, centres, *, overwrite: bool = False, config: dict | None = None) -> Path:
    """Write a point cloud as HDF5: ``/data`` (N, d), ``/labels`` (N,) int64, ``/centres`` (k, d),
    provenance under ``/process/fastem``."""
    import h5py

    X, labels, centres = np.asarray(X), np.asarray(labels), np.asarray(centres)
    if X.ndim != 2 or labels.shape != (X.shape[0],) or centres.ndim != 2 or centres.shape[1] != X.shape[1]:
        raise InputError(f"save_mixture: inconsistent shapes X {X.shape}, labels {labels.shape}, centres {centres.shape}")
    with atomic_output(path, overwrite=overwrite) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("data", data=X).attrs["axes"] = "point:feature"
            f.create_dataset("labels", data=labels.astype(np.int64))
            f.create_dataset("centres", data=centres)
            write_process_group(f.require_group(PROCESS_GROUP),
                                provenance(config={"generator": "fastem.data.gaussian_mixture", **(config or {})}))
    return Path(path)
