"""File formats and safe output: CXI, Data Exchange, EMD, MRC / .tlt, TIFF, plain HDF5.

Reading
    :func:`parse_ref` / :func:`read_dataset` (``FILE.h5:/path/to/dataset``), :func:`read_cxi`,
    :func:`read_dxchange`, :func:`read_tilt_series` (Data Exchange or MRC + .tlt),
    :func:`read_emd`, :func:`read_mrc`, :func:`read_tlt`, :func:`read_tiff`,
    :func:`read_images` (any of them, ``(N, h, w)`` or ``(h, w)``), :func:`read_image_data` (the
    same with calibration and tilt angles; DM3/DM4, Velox EMD, SER, MRCZ, HSPY through
    RosettaSciIO), :func:`describe`.
Outputs by extension / ``--format``: :mod:`fastem.io.outputs`.
Writing (atomic, no silent overwrite, never into an input, provenance recorded)
    :func:`atomic_output`, :func:`provenance`, :func:`write_provenance`, :func:`write_cxi`,
    :func:`write_cxi_reconstruction`, :func:`write_dxchange`, :func:`write_dxchange_volume`,
    :func:`write_emd` (v0.2), :func:`write_emd1` (EMD 1.0), :func:`write_mrc`, :func:`write_tlt`, :func:`write_tiff`;
    :func:`output_lock` (one writer per output for a whole run).
Validation
    :func:`check_finite`, :func:`check_ndim`, :func:`check_same_shape`, :func:`angles_to_degrees`.
Checkpoints
    :func:`write_checkpoint`, :func:`read_checkpoint`, :func:`save_checkpoint_file`,
    :func:`load_checkpoint_file`, :func:`run_fingerprint` / :func:`check_fingerprint` (see :mod:`fastem.io.checkpoint` for the pattern).
"""

from __future__ import annotations

import importlib

# a name that is also a submodule must be bound eagerly: importing the submodule later would
# otherwise replace the package attribute with the module
from .provenance import provenance  # noqa: E402

#: public name -> the submodule that defines it (loaded on first use: ``import fastem.io`` stays cheap)
_WHERE = {
    **dict.fromkeys(['atomic_output', 'atomic_update', 'check_output', 'clean_stale_temporaries', 'output_lock'], 'atomic'),
    **dict.fromkeys(['array_digest', 'file_digest', 'check_fingerprint', 'generator_from_state', 'run_fingerprint', 'load_checkpoint_file', 'read_checkpoint', 'save_checkpoint_file', 'write_checkpoint'], 'checkpoint'),
    **dict.fromkeys(['CXI_CHECKPOINT', 'CXI_DATA', 'CXI_DETECTOR', 'CXI_IMAGE', 'CXI_PROCESS', 'MASK_DEAD', 'MASK_HOT', 'MASK_INVALID', 'MASK_SATURATED', 'MASK_SHADOWED', 'CXIData', 'CXIReconstruction', 'mask_from_known', 'read_cxi', 'read_cxi_reconstruction', 'write_cxi', 'write_cxi_detector', 'write_cxi_reconstruction'], 'cxi'),
    **dict.fromkeys(['DX_CHECKPOINT', 'DX_PROCESS', 'DXVolume', 'TiltSeriesData', 'flat_dark_correct', 'minus_log', 'read_dxchange', 'read_dxchange_volume', 'write_dxchange', 'write_dxchange_volume', 'dxchange_volume_writer', 'VolumeWriter', 'VolumeOnDisk'], 'dxchange'),
    **dict.fromkeys(['EMDData', 'EMDDim', 'list_emd_arrays', 'read_emd', 'write_emd', 'write_emd1'], 'emd'),
    **dict.fromkeys(['format_ref', 'open_h5', 'parse_ref', 'read_dataset'], 'hdf5'),
    **dict.fromkeys(['read_array', 'read_images'], 'images'),
    **dict.fromkeys(['ImageAxis', 'ImageData', 'read_calibration', 'read_image_data'], 'inputs'),
    **dict.fromkeys(['describe', 'detect_format'], 'info'),
    **dict.fromkeys(['find_tlt', 'read_mrc', 'read_tilt_series', 'read_tlt', 'write_mrc', 'write_tlt'], 'mrc'),
    **dict.fromkeys(['PROCESS_GROUP', 'read_process_group', 'write_process_group'], 'process'),
    **dict.fromkeys(['provenance', 'read_provenance', 'to_jsonable', 'write_provenance'], 'provenance'),
    **dict.fromkeys(['read_tiff', 'write_tiff'], 'tiff'),
    **dict.fromkeys(['DataWarning', 'angles_to_degrees', 'check_finite', 'check_ndim', 'check_same_shape', 'require_finite_result'], 'validate'),
}
_SUBMODULES = ("atomic", "checkpoint", "cxi", "dxchange", "emd", "hdf5", "images", "inputs", "info", "mrc",
               "process", "provenance", "tiff", "validate", "outputs", "show")


__all__ = [
    "atomic_output", "atomic_update", "check_output", "clean_stale_temporaries", "output_lock",
    "array_digest", "file_digest", "check_fingerprint", "run_fingerprint", "require_finite_result",
    "generator_from_state", "load_checkpoint_file", "read_checkpoint", "save_checkpoint_file", "write_checkpoint",
    "CXI_CHECKPOINT", "CXI_DATA", "CXI_DETECTOR", "CXI_IMAGE", "CXI_PROCESS", "MASK_DEAD", "MASK_HOT",
    "MASK_INVALID", "MASK_SATURATED", "MASK_SHADOWED", "CXIData", "CXIReconstruction", "mask_from_known",
    "read_cxi", "read_cxi_reconstruction", "write_cxi", "write_cxi_detector", "write_cxi_reconstruction",
    "DX_CHECKPOINT", "DX_PROCESS", "DXVolume", "TiltSeriesData", "flat_dark_correct", "minus_log",
    "read_dxchange", "read_dxchange_volume", "write_dxchange", "write_dxchange_volume", "dxchange_volume_writer",
    "VolumeWriter", "VolumeOnDisk",
    "EMDData", "EMDDim", "list_emd_arrays", "read_emd", "write_emd", "write_emd1",
    "format_ref", "open_h5", "parse_ref", "read_dataset",
    "read_array", "read_images", "ImageAxis", "ImageData", "read_calibration", "read_image_data",
    "describe", "detect_format",
    "find_tlt", "read_mrc", "read_tilt_series", "read_tlt", "write_mrc", "write_tlt",
    "PROCESS_GROUP", "read_process_group", "write_process_group",
    "provenance", "read_provenance", "to_jsonable", "write_provenance",
    "read_tiff", "write_tiff",
    "DataWarning", "angles_to_degrees", "check_finite", "check_ndim", "check_same_shape",
]


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
