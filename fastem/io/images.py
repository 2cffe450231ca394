"""One entry point for image data in any supported container: :func:`read_images`."""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .hdf5 import _path_arg, as_dtype, find_dataset, is_hdf5, open_h5, parse_ref, require_file
from .validate import check_ndim

__all__ = ["read_images", "read_array"]


def read_array(spec, *, allow_external_links: bool | None = None) -> np.ndarray:
    """Read the array named by ``spec`` from any supported file, rank unchecked.

    * ``FILE:/dataset`` -> that HDF5 dataset (a group holding ``data`` stands for it);
    * HDF5 without a dataset: CXI -> the intensities, Data Exchange -> ``/exchange/data``,
      EMD (v0.2 / 1.0) -> its only array, otherwise the file's only dataset;
    * ``.mrc`` / ``.st`` / ... -> MRC data; ``.tif`` / ``.tiff`` -> TIFF pages;
    * DM3/DM4, SER/EMI, MRCZ, HSPY and Velox EMD through RosettaSciIO (the ``formats`` extra;
      :func:`fastem.io.read_image_data` also gives their calibration).

    HDF5 external links and virtual datasets mapping other files are refused unless
    ``allow_external_links`` (default ``fastem.config.settings.allow_external_links``).
    """
    from .mrc import MRC_SUFFIXES, read_mrc
    from .tiff import TIFF_SUFFIXES, read_tiff

    from .inputs import RSCIIO_SUFFIXES, _is_velox, read_image_data

    path, dataset = parse_ref(_path_arg(spec, "spec"))
    require_file(path)
    suffix = path.suffix.lower()
    if (suffix in RSCIIO_SUFFIXES and not (suffix == ".hspy" and dataset is not None)) or \
            (dataset is None and suffix == ".emd" and is_hdf5(path) and _is_velox(path)):
        return read_image_data(spec, allow_external_links=allow_external_links).data  # RosettaSciIO
    if is_hdf5(path):
        with open_h5(path, allow_external_links=allow_external_links) as f:
            from .emd import _array_groups, emd_version

            emd_groups = _array_groups(f) if (emd_version(f) is not None or dataset is None) else []
            if dataset is None:
                if "cxi_version" in f or "entry_1" in f:
                    from .cxi import _find_data

                    dataset = _find_data(f, path).name
                elif "exchange" in f and "data" in f["exchange"]:
                    dataset = "/exchange/data"
                elif emd_version(f) is not None or emd_groups:
                    if len(emd_groups) > 1:
                        raise InputError(f"{path}: {len(emd_groups)} EMD arrays, name one as {path}:<group> "
                                         f"({', '.join(emd_groups)})")
                    dataset = emd_groups[0] if emd_groups else None
            key = None if dataset is None else "/" + dataset.strip("/")
            if key is not None and key.endswith("/data") and key[:-5] in emd_groups:
                key = key[:-5]
            emd_array = key in emd_groups
        if emd_array:  # EMD axis order (v0.2 is stored reversed, see fastem.io.emd)
            from .emd import read_emd

            return read_emd(path, key, allow_external_links=allow_external_links).data
        with open_h5(path, allow_external_links=allow_external_links) as f:
            ds = find_dataset(f, dataset, file_label=str(path), allow_external_links=allow_external_links)
            return np.asarray(ds[()])
    if dataset is not None:
        raise InputError(f"{path}: not an HDF5 file, so '{dataset}' cannot be read from it")
    if suffix in TIFF_SUFFIXES:
        return read_tiff(path)
    if suffix in MRC_SUFFIXES:
        return read_mrc(path)[0]
    raise InputError(f"{path}: unknown image format (expected HDF5/CXI/EMD, MRC {'/'.join(MRC_SUFFIXES)}, "
                     f"TIFF {'/'.join(TIFF_SUFFIXES)}, or with 'pip install fastem[formats]' "
                     f"{'/'.join(sorted(RSCIIO_SUFFIXES))}/Velox .emd)")


def read_images(spec, *, dtype=None, allow_external_links: bool | None = None) -> np.ndarray:
    """Read an image ``(h, w)`` or an image stack ``(N, h, w)`` from HDF5 / CXI / EMD / MRC / TIFF.

    Parameters
    ----------
    spec : str or os.PathLike
        ``FILE``, or ``FILE:/dataset`` for HDF5 (see :func:`read_array` for what a plain HDF5
        file resolves to).
    dtype : numpy dtype, optional
        Convert to this dtype (e.g. ``np.float32``); default as stored.
    allow_external_links : bool, optional
        Follow HDF5 external links / virtual datasets mapping other files (default
        ``fastem.config.settings.allow_external_links``, i.e. refused).

    Raises
    ------
    DatasetNotFoundError, InputError
        Missing or unreadable file / dataset, unknown format, rank other than 2 or 3, links
        to other files, a bad argument (named).
    """
    if dtype is not None:
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise InputError(f"dtype must be a NumPy dtype, got {dtype!r}") from None
    arr = read_array(spec, allow_external_links=allow_external_links)
    check_ndim(arr, (2, 3), str(spec))
    return as_dtype(arr, dtype, str(spec))
