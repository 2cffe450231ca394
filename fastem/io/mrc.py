"""MRC volumes and tilt stacks (cryo-ET) via ``mrcfile``, and IMOD ``.tlt`` tilt-angle files.

* MRC arrays are read and written in the file's C order: a volume is ``(z, y, x)``, a tilt stack
  ``(n, rows, cols)``. Voxel sizes are in angstrom (the MRC convention) and returned in the
  array's axis order ``(z, y, x)``.
* ``.tlt``: one angle per line, degrees (IMOD); blank lines are ignored.
* :func:`read_tilt_series` reads a tilt series from Data Exchange or from an MRC stack plus
  its ``.tlt`` (found beside the stack by default: ``series.mrc`` -> ``series.tlt``, then
  ``series.rawtlt``), returning the same :class:`~fastem.io.TiltSeriesData` either way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import DatasetNotFoundError, InputError
from ..geometry import angles_from_tilts
from .atomic import atomic_output
from .hdf5 import is_hdf5, require_file
from .validate import check_finite, check_ndim

__all__ = ["read_mrc", "write_mrc", "read_tlt", "write_tlt", "read_tilt_series", "MRC_SUFFIXES"]

MRC_SUFFIXES = (".mrc", ".mrcs", ".st", ".ali", ".map", ".rec", ".preali")
_MRC_DTYPES = (np.int8, np.int16, np.uint16, np.float32, np.complex64, np.uint8, np.float16)


def read_mrc(path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Read an MRC file.

    Returns
    -------
    array : ndarray
        The data as stored (``(z, y, x)`` volume, ``(n, rows, cols)`` stack or ``(y, x)``
        image), a private copy in native byte order.
    voxel_size : (float, float, float)
        ``(z, y, x)`` in angstrom (0 where the header does not say).
    """
    import mrcfile

    p = require_file(path)
    try:
        with mrcfile.open(p, permissive=True) as mrc:
            if mrc.data is None:
                raise InputError(f"{p}: not a readable MRC file (no data block)")
            data = np.array(mrc.data, dtype=mrc.data.dtype.newbyteorder("="))
            vs = mrc.voxel_size
            voxel = (float(vs.z), float(vs.y), float(vs.x))
    except (ValueError, OSError) as exc:
        raise InputError(f"{p}: not a readable MRC file ({exc})") from None
    return data, voxel


def _voxel_xyz(voxel_size):
    if voxel_size is None:
        return None
    if np.ndim(voxel_size) == 0:
        v = float(voxel_size)
        return (v, v, v)
    vs = [float(v) for v in np.asarray(voxel_size).reshape(-1)]
    if len(vs) != 3:
        raise InputError(f"voxel_size must be a number or (z, y, x), got {voxel_size!r}")
    return (vs[2], vs[1], vs[0])


def write_mrc(path, array, voxel_size=None, *, stack: bool = False, overwrite: bool = False,
              inputs: Iterable = (), provenance: dict | None = None) -> Path:
    """Write an array as an MRC file (atomically).

    Parameters
    ----------
    array : array_like, 2D or 3D
        float64 is stored as float32 (mode 2); int8/int16/uint16/uint8/float16/float32/complex64
        are kept; anything else becomes float32.
    voxel_size : float or (z, y, x), optional
        Angstrom.
    stack : bool
        Mark a 3D array as an image stack (tilt series, ``ispg=0``) instead of a volume.
    provenance : dict, optional
        A one-line summary (program, version, date) goes into the header labels.
    """
    import mrcfile

    arr = np.asarray(array)
    check_ndim(arr, (2, 3), "MRC data")
    if arr.dtype.type not in _MRC_DTYPES:
        arr = arr.astype(np.float32)
    arr = np.ascontiguousarray(arr)
    vxyz = _voxel_xyz(voxel_size)
    with atomic_output(path, overwrite=overwrite, inputs=inputs) as tmp:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(arr)
            if stack and arr.ndim == 3:
                mrc.set_image_stack()
            if vxyz is not None:
                mrc.voxel_size = vxyz
            if provenance is None:
                from .provenance import provenance as _prov

                provenance = _prov()
            label = f"{provenance.get('program', 'fastem')} {provenance.get('version', '')} {provenance.get('date', '')}"
            mrc.add_label(label.strip()[:80])
            mrc.update_header_stats()
    return Path(path)


def read_tlt(path) -> np.ndarray:
    """Read an IMOD ``.tlt`` / ``.rawtlt`` file: float64 (n,) tilt angles in degrees.

    Raises :class:`~fastem.errors.InputError` naming the line of a value that is not a number,
    or when the file holds no angles.
    """
    p = require_file(path)
    values = []
    try:
        lines = p.read_text().splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{p}: not a text file of tilt angles") from None
    for lineno, line in enumerate(lines, 1):
        text = line.strip()
        if not text:
            continue
        try:
            values.append(float(text.split()[0]))
        except ValueError:
            raise InputError(f"{p}: line {lineno}: {text[:40]!r} is not an angle in degrees") from None
    if not values:
        raise InputError(f"{p}: empty angle set (no tilt angles in the file)")
    a = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise InputError(f"{p}: {int((~np.isfinite(a)).sum())} non-finite angle(s)")
    return a


def write_tlt(path, angles, *, overwrite: bool = False, inputs: Iterable = ()) -> Path:
    """Write tilt angles (degrees) one per line, IMOD style (atomically)."""
    a = np.asarray(angles, dtype=np.float64).reshape(-1)
    if a.size == 0:
        raise InputError("write_tlt: empty angle set")
    with atomic_output(path, overwrite=overwrite, inputs=inputs) as tmp:
        tmp.write_text("".join(f"{v:10.4f}\n" for v in a))
    return Path(path)


def _find_tlt(stack: Path) -> Path:
    for suffix in (".tlt", ".rawtlt"):
        cand = stack.with_suffix(suffix)
        if cand.exists():
            return cand
    raise DatasetNotFoundError(f"{stack}: no tilt angles: neither {stack.with_suffix('.tlt').name} nor "
                               f"{stack.with_suffix('.rawtlt').name} beside it (give tlt=FILE)")


def read_tilt_series(path, tlt=None, *, flat_dark: bool = True, log: bool = False, nonfinite: str = "error"):
    """Read a tilt series from Data Exchange (HDF5) or from an MRC stack plus ``.tlt``.

    Parameters
    ----------
    path : str or os.PathLike
        ``.h5``/``.hdf5``/``.dxf`` (any HDF5 file) -> :func:`fastem.io.read_dxchange`;
        ``.mrc``/``.st``/``.mrcs``/``.ali`` -> MRC stack ``(n, rows, cols)``.
    tlt : path, optional
        The angle file for an MRC stack; default ``<stem>.tlt`` (then ``.rawtlt``) beside it.
    flat_dark, log, nonfinite
        As in :func:`fastem.io.read_dxchange` (``flat_dark`` only applies to Data Exchange;
        ``log`` and ``nonfinite`` to both).

    Returns
    -------
    TiltSeriesData
    """
    from .dxchange import TiltSeriesData, minus_log, read_dxchange

    p = require_file(path)
    if is_hdf5(p):
        if tlt is not None:
            raise InputError(f"{p}: a Data Exchange file carries its own angles; do not pass a .tlt file")
        return read_dxchange(p, flat_dark=flat_dark, log=log, nonfinite=nonfinite)
    if p.suffix.lower() not in MRC_SUFFIXES:
        raise InputError(f"{p}: unknown tilt-series format (expected Data Exchange HDF5 or an MRC stack "
                         f"{'/'.join(MRC_SUFFIXES)})")
    data, _ = read_mrc(p)
    if data.ndim == 2:
        data = data[None]
    check_ndim(data, 3, str(p))
    tlt_path = Path(tlt) if tlt is not None else _find_tlt(p)
    theta = read_tlt(tlt_path)
    if theta.size != data.shape[0]:
        raise InputError(f"{p}: {data.shape[0]} projections in the stack but {theta.size} angles in {tlt_path}")
    proj = data.astype(np.float32)
    mask = None
    finite = np.isfinite(proj)
    if not finite.all():
        proj = check_finite(proj, str(p), policy=nonfinite, frame_label="projection")
        mask = finite
    if log:
        proj = minus_log(proj, str(p))
    return TiltSeriesData(projections=proj, angles=angles_from_tilts(theta), theta=theta, mask=mask, path=p)
