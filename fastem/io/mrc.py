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
from .hdf5 import _path_arg, is_hdf5, require_file
from .validate import as_numeric_array, check_finite, check_ndim

__all__ = ["read_mrc", "write_mrc", "read_tlt", "write_tlt", "read_tilt_series", "read_mrc_header",
           "voxel_size_from_header", "MRC_SUFFIXES", "UNKNOWN_VOXEL_LABEL"]

MRC_SUFFIXES = (".mrc", ".mrcs", ".st", ".ali", ".map", ".rec", ".preali")
_MRC_DTYPES = (np.int8, np.int16, np.uint16, np.float32, np.complex64, np.uint8, np.float16)
#: bytes per voxel of each MRC map mode (101: 4-bit, two voxels per byte along x)
_MODE_BYTES = {0: 1, 1: 2, 2: 4, 3: 4, 4: 8, 6: 2, 12: 2, 101: 0.5}
_HEADER_BYTES = 1024
#: largest accepted axis length: beyond it a header is garbage, not data
_MAX_AXIS = 1 << 20


def _data_bytes(mode: int, nx: int, ny: int, nz: int) -> int:
    if mode == 101:
        return ((nx + 1) // 2) * ny * nz
    return int(_MODE_BYTES[mode] * nx * ny * nz)


def check_mrc_header(path, header, file_size: int) -> None:
    """Refuse an MRC header that does not describe the file: wrong signature, unknown mode,
    implausible dimensions, or fewer bytes in the file than the header announces (truncated).

    Old (pre-2014) files without the ``MAP`` signature are accepted when everything else is
    consistent. Raises :class:`~fastem.errors.InputError` naming the file and the problem.
    """
    p = Path(path)
    if file_size < _HEADER_BYTES:
        raise InputError(f"{p}: not an MRC file (only {file_size} bytes; an MRC header alone has {_HEADER_BYTES})")
    signed = bytes(np.asarray(header.map).tobytes()) == b"MAP "
    mode = int(header.mode)
    nx, ny, nz, nsymbt = int(header.nx), int(header.ny), int(header.nz), int(header.nsymbt)
    mode_ok = mode in _MODE_BYTES
    dims_ok = all(0 < n <= _MAX_AXIS for n in (nx, ny, nz)) and 0 <= nsymbt <= file_size
    if not signed and not (mode_ok and dims_ok):
        raise InputError(f"{p}: not an MRC file (no 'MAP ' signature and an inconsistent header)")
    if not mode_ok:
        raise InputError(f"{p}: not a valid MRC file (unknown map mode {mode}; known: "
                         f"{', '.join(str(m) for m in _MODE_BYTES)})")
    if not dims_ok:
        raise InputError(f"{p}: not a valid MRC file (implausible header: nx={nx}, ny={ny}, nz={nz}, "
                         f"extended header {nsymbt} bytes)")
    expected = _HEADER_BYTES + nsymbt + _data_bytes(mode, nx, ny, nz)
    if file_size < expected:
        raise InputError(f"{p}: truncated MRC file: the header describes {nz} x {ny} x {nx} voxels of mode {mode} "
                         f"({expected} bytes with the header) but the file has {file_size} bytes")
    if not signed and file_size != expected:
        raise InputError(f"{p}: not an MRC file (no 'MAP ' signature and the size does not match the header)")


def _raw_header(p: Path):
    """The 1024-byte header as a NumPy record in the byte order that makes sense of it (``None``
    when the file is shorter than a header)."""
    from mrcfile.dtypes import HEADER_DTYPE

    with open(p, "rb") as fh:
        raw = fh.read(_HEADER_BYTES)
    if len(raw) < _HEADER_BYTES:
        return None
    candidates = [np.frombuffer(raw, dtype=HEADER_DTYPE.newbyteorder(order)).view(np.recarray)[0]
                  for order in ("<", ">")]
    for h in candidates:
        if int(h.mode) in _MODE_BYTES and all(0 < int(n) <= _MAX_AXIS for n in (h.nx, h.ny, h.nz)):
            return h
    return candidates[0]


#: header label fastem writes when the voxel size is not known (the cell then holds 1 A per
#: voxel, IMOD's "pixel spacing 1", so that no reader divides by zero or shows scale 0)
UNKNOWN_VOXEL_LABEL = "fastem: voxel size unknown (cell = 1 A per voxel)"


def _labels(header) -> list[str]:
    n = min(max(int(header.nlabl), 0), len(header.label))
    return [bytes(lab).decode("ascii", "replace").strip() for lab in header.label[:n]]


def voxel_size_from_header(header, path=None, *, warn: bool = True):
    """The voxel size ``(z, y, x)`` in angstrom from an MRC header, or ``None`` when unknown.

    Unknown: the cell or the sampling (``mx, my, mz``) is zero, negative or not finite (MRCZ and
    many programs write a zero cell), or fastem's own :data:`UNKNOWN_VOXEL_LABEL` is present. A
    zero or invalid cell gives one :class:`~fastem.io.DataWarning` (when ``warn``); no NumPy
    division warnings.
    """
    if any(UNKNOWN_VOXEL_LABEL in lab for lab in _labels(header)):
        return None
    cell = np.array([float(header.cella.z), float(header.cella.y), float(header.cella.x)], dtype=np.float64)
    samp = np.array([float(header.mz), float(header.my), float(header.mx)], dtype=np.float64)
    nz = int(header.nz)
    # a 2D image (nz == 1) or a stack may have no z sampling: only y and x must be valid
    need = [1, 2] if nz == 1 or int(header.ispg) == 0 else [0, 1, 2]
    ok = np.isfinite(cell) & np.isfinite(samp) & (cell > 0) & (samp > 0)
    if not ok[need].all():
        if warn:
            from .validate import DataWarning

            import warnings

            where = f"{path}: " if path is not None else ""
            warnings.warn(f"{where}unknown voxel size (the MRC header's cell is {cell[2]:g} x {cell[1]:g} x "
                          f"{cell[0]:g} A over {samp[2]:g} x {samp[1]:g} x {samp[0]:g} voxels)", DataWarning,
                          stacklevel=3)
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        vs = np.where(ok, cell / np.where(samp > 0, samp, 1.0), 1.0)
    return (float(vs[0]), float(vs[1]), float(vs[2]))


def read_mrc_header(path, *, warn: bool = True):
    """Validate the header of ``path`` (:func:`check_mrc_header`) before anything trusts it, then
    return the header (a NumPy record) and the voxel size ``(z, y, x)`` in angstrom, ``None``
    when unknown (see :func:`voxel_size_from_header`)."""
    import warnings

    import mrcfile

    p = require_file(path)
    size = p.stat().st_size
    raw = _raw_header(p)
    if raw is None:
        raise InputError(f"{p}: not an MRC file (only {size} bytes; an MRC header alone has {_HEADER_BYTES})")
    check_mrc_header(p, raw, size)  # before mrcfile reads an extended header of any announced size
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # validated above, with a clearer message
            with mrcfile.open(p, permissive=True, header_only=True) as mrc:
                header = mrc.header.copy()
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{p}: not a readable MRC file ({' '.join(str(exc).split())})") from None
    return header, voxel_size_from_header(header, p, warn=warn)


def read_mrc(path) -> tuple[np.ndarray, tuple[float, float, float] | None]:
    """Read an MRC file.

    Returns
    -------
    array : ndarray
        The data as stored (``(z, y, x)`` volume, ``(n, rows, cols)`` stack or ``(y, x)``
        image), a private copy in native byte order.
    voxel_size : (float, float, float) or None
        ``(z, y, x)`` in angstrom; ``None`` when the header does not say (zero or invalid cell,
        one :class:`~fastem.io.DataWarning`; or a fastem file written without a voxel size).

    Raises
    ------
    DatasetNotFoundError
        No such file.
    InputError
        Unreadable, not an MRC file (bad signature, unknown mode, implausible dimensions) or
        truncated (fewer bytes than the header announces).
    """
    import warnings

    import mrcfile

    p = require_file(path)
    _, voxel = read_mrc_header(p)  # refuses garbage and truncated files before mrcfile guesses
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            with mrcfile.open(p, permissive=True) as mrc:
                if mrc.data is None:
                    raise InputError(f"{p}: not a readable MRC file (no data block)")
                data = np.array(mrc.data, dtype=mrc.data.dtype.newbyteorder("="))
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{p}: not a readable MRC file ({' '.join(str(exc).split())})") from None
    return data, voxel


def _voxel_xyz(voxel_size):
    if voxel_size is None:
        return None
    try:
        vs = [float(v) for v in np.asarray(voxel_size, dtype=np.float64).reshape(-1)]
    except (TypeError, ValueError):
        raise InputError(f"voxel_size must be a number or (z, y, x) in angstrom, got {voxel_size!r}") from None
    if len(vs) == 1:
        vs = vs * 3
    if len(vs) != 3 or not all(np.isfinite(v) and v > 0 for v in vs):
        raise InputError(f"voxel_size must be a number or (z, y, x) > 0 in angstrom, got {voxel_size!r}")
    return (vs[2], vs[1], vs[0])


def write_mrc(path, array, voxel_size=None, *, stack: bool = False, overwrite: bool = False,
              inputs: Iterable = (), provenance: dict | None = None) -> Path:
    """Write an array as an MRC file (atomically).

    Parameters
    ----------
    array : array_like, 2D or 3D
        float64 is stored as float32 (mode 2), complex128 as complex64 (mode 4: never its real
        part alone); int8/int16/uint16/uint8/float16/float32/complex64 are kept; anything else
        becomes float32.
    voxel_size : float or (z, y, x), optional
        Angstrom, > 0. Without it the voxel size is unknown: the cell holds 1 A per voxel (never
        0, which readers show as scale 0 or divide by) and the label
        :data:`UNKNOWN_VOXEL_LABEL` says so; :func:`read_mrc` gives ``None`` back.
    stack : bool
        Mark a 3D array as an image stack (tilt series, ``ispg=0``) instead of a volume.
    provenance : dict, optional
        A one-line summary (program, version, date) goes into the header labels.
    """
    import mrcfile

    path = _path_arg(path, "path")
    arr = as_numeric_array(array, "array", expected="a 2D or 3D numeric array")
    check_ndim(arr, (2, 3), "array (MRC data)")
    if arr.dtype.type not in _MRC_DTYPES:
        arr = arr.astype(np.complex64 if arr.dtype.kind == "c" else np.float32)
    arr = np.ascontiguousarray(arr)
    vxyz = _voxel_xyz(voxel_size)
    with atomic_output(path, overwrite=overwrite, inputs=inputs) as tmp:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(arr)
            if stack and arr.ndim == 3:
                mrc.set_image_stack()
            mrc.voxel_size = vxyz if vxyz is not None else (1.0, 1.0, 1.0)
            if vxyz is None:
                mrc.add_label(UNKNOWN_VOXEL_LABEL)
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
    path = _path_arg(path, "path")
    try:
        a = np.asarray(angles, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InputError(f"angles must be a sequence of numbers (degrees), got {type(angles).__name__}") from None
    if a.size == 0:
        raise InputError("write_tlt: empty angle set")
    if not np.all(np.isfinite(a)):
        raise InputError(f"angles: {int((~np.isfinite(a)).sum())} non-finite angle(s); nothing was written")
    with atomic_output(path, overwrite=overwrite, inputs=inputs) as tmp:
        tmp.write_text("".join(f"{v:10.4f}\n" for v in a))
    return Path(path)


def find_tlt(stack) -> Path:
    """The angle file of an MRC stack: ``<stem>.tlt``, else ``<stem>.rawtlt`` beside it (one-line
    :class:`~fastem.errors.DatasetNotFoundError` when neither exists)."""
    stack = Path(stack)
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
    if tlt is not None:
        tlt = _path_arg(tlt, "tlt")
    if is_hdf5(p):
        if tlt is not None:
            raise InputError(f"{p}: a Data Exchange file carries its own angles; do not pass a .tlt file")
        return read_dxchange(p, flat_dark=flat_dark, log=log, nonfinite=nonfinite)
    if p.suffix.lower() not in MRC_SUFFIXES:
        raise InputError(f"{p}: unknown tilt-series format (expected Data Exchange HDF5 or an MRC stack "
                         f"{'/'.join(MRC_SUFFIXES)})")
    from .dxchange import check_real_values

    data, _ = read_mrc(p)
    check_real_values(data, str(p))
    if data.ndim == 2:
        data = data[None]
    check_ndim(data, 3, str(p))
    tlt_path = Path(tlt) if tlt is not None else find_tlt(p)
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
