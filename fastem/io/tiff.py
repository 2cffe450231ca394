"""TIFF images and stacks via ``tifffile``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import InputError
from .atomic import atomic_output
from .hdf5 import _path_arg, require_file
from .validate import as_numeric_array

__all__ = ["read_tiff", "write_tiff", "TIFF_SUFFIXES"]

TIFF_SUFFIXES = (".tif", ".tiff")


def read_tiff(path) -> np.ndarray:
    """Read a TIFF image ``(h, w)`` or a multi-page stack ``(N, h, w)`` (dtype as stored)."""
    import tifffile

    p = require_file(path)
    try:
        return np.asarray(tifffile.imread(p))
    except (ValueError, OSError, tifffile.TiffFileError) as exc:
        raise InputError(f"{p}: not a readable TIFF file ({exc})") from None


def _calibration_tags(calibration) -> list:
    """Gatan DigitalMicrograph TIFF tags (65003/65004 units, 65006/65007 origins, 65009/65010
    scales of the last and second-last axis), as RosettaSciIO writes and reads them."""
    if calibration is None:
        return []
    try:
        (ys, yu, yo), (xs, xu, xo) = [(float(c[0]), str(c[1]), float(c[2]) if len(c) > 2 else 0.0)
                                      for c in calibration]
    except (TypeError, ValueError, IndexError):
        raise InputError("calibration must be ((y_scale, y_units[, y_offset]), (x_scale, x_units[, x_offset])), "
                         f"got {calibration!r}") from None
    if not all(np.isfinite(v) for v in (ys, xs, yo, xo)) or ys <= 0 or xs <= 0:
        raise InputError(f"calibration: scales must be finite and > 0, got y {ys}, x {xs}")
    return [(65003, "s", 0, xu, False), (65004, "s", 0, yu, False), (65006, "d", 1, xo, False),
            (65007, "d", 1, yo, False), (65009, "d", 1, xs, False), (65010, "d", 1, ys, False)]


def _description(prov: dict) -> str:
    """The ImageDescription text: ``{"fastem_provenance": {...}}`` with every non-string value as
    a JSON string. Nested JSON objects would otherwise be taken by tifffile for its own "shaped"
    description as soon as a configuration holds a ``"shape"`` key, and the file became
    unreadable."""
    record = {str(k): (v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str))
              for k, v in prov.items()}
    return json.dumps({"fastem_provenance": record})


def write_tiff(path, array, *, overwrite: bool = False, inputs: Iterable = (),
               provenance: dict | None = None, calibration=None) -> Path:
    """Write an image ``(h, w)`` or a stack ``(N, h, w)`` as TIFF (atomically).

    The provenance record goes into the ImageDescription tag as JSON (see :func:`_description`)
    and the Software tag.

    Parameters
    ----------
    calibration : ((scale, units[, offset]), (scale, units[, offset])), optional
        Pixel size of the image axes ``(y, x)``, e.g. ``((0.2, "nm"), (0.2, "nm"))``: written as
        Gatan DigitalMicrograph tags, which HyperSpy / RosettaSciIO read as the axes' scale, units
        and offset.
    """
    import tifffile

    from .provenance import provenance as _prov

    path = _path_arg(path, "path")
    arr = as_numeric_array(array, "array", expected="a 2D or 3D numeric array")
    if arr.ndim not in (2, 3):
        raise InputError(f"array (TIFF data): expected a 2D or 3D array, got shape {arr.shape}")
    prov = provenance if provenance is not None else _prov()
    tags = _calibration_tags(calibration)
    with atomic_output(path, overwrite=overwrite, inputs=inputs) as tmp:
        tifffile.imwrite(tmp, arr, photometric="minisblack", description=_description(prov),
                         software=f"fastem {prov.get('version', '')}", metadata=None, extratags=tags)
    return Path(path)
