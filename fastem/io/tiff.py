"""TIFF images and stacks via ``tifffile``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import InputError
from .atomic import atomic_output
from .hdf5 import _path_arg, require_file

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


def write_tiff(path, array, *, overwrite: bool = False, inputs: Iterable = (),
               provenance: dict | None = None) -> Path:
    """Write an image ``(h, w)`` or a stack ``(N, h, w)`` as TIFF (atomically).

    The provenance record goes into the ImageDescription tag as JSON and the Software tag.
    """
    import tifffile

    from .provenance import provenance as _prov

    path = _path_arg(path, "path")
    if array is None or isinstance(array, (str, bytes)):
        raise InputError(f"array must be a 2D or 3D numeric array, got {type(array).__name__}")
    try:
        arr = np.asarray(array)
    except (TypeError, ValueError) as exc:
        raise InputError(f"array must be a 2D or 3D numeric array ({exc})") from None
    if arr.dtype.kind not in "biufc":
        raise InputError(f"array must be a 2D or 3D numeric array, got dtype {arr.dtype}")
    if arr.ndim not in (2, 3):
        raise InputError(f"array (TIFF data): expected a 2D or 3D array, got shape {arr.shape}")
    prov = provenance if provenance is not None else _prov()
    with atomic_output(path, overwrite=overwrite, inputs=inputs) as tmp:
        tifffile.imwrite(tmp, arr, photometric="minisblack", description=json.dumps(prov, default=str),
                         software=f"fastem {prov.get('version', '')}", metadata=None)
    return Path(path)
