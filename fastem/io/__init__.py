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
    :func:`write_emd`, :func:`write_mrc`, :func:`write_tlt`, :func:`write_tiff`;
    :func:`output_lock` (one writer per output for a whole run).
Validation
    :func:`check_finite`, :func:`check_ndim`, :func:`check_same_shape`, :func:`angles_to_degrees`.
Checkpoints
    :func:`write_checkpoint`, :func:`read_checkpoint`, :func:`save_checkpoint_file`,
    :func:`load_checkpoint_file`, :func:`run_fingerprint` / :func:`check_fingerprint` (see :mod:`fastem.io.checkpoint` for the pattern).
"""

from .atomic import atomic_output, atomic_update, check_output, clean_stale_temporaries, output_lock
from .checkpoint import (array_digest, file_digest, check_fingerprint, generator_from_state, run_fingerprint, load_checkpoint_file, read_checkpoint, save_checkpoint_file,
                         write_checkpoint)
from .cxi import (CXI_CHECKPOINT, CXI_DATA, CXI_DETECTOR, CXI_IMAGE, CXI_PROCESS, MASK_DEAD, MASK_HOT,
                  MASK_INVALID, MASK_SATURATED, MASK_SHADOWED, CXIData, CXIReconstruction, mask_from_known,
                  read_cxi, read_cxi_reconstruction, write_cxi, write_cxi_detector, write_cxi_reconstruction)
from .dxchange import (DX_CHECKPOINT, DX_PROCESS, DXVolume, TiltSeriesData, flat_dark_correct, minus_log,
                       read_dxchange, read_dxchange_volume, write_dxchange, write_dxchange_volume)
from .emd import EMDData, EMDDim, list_emd_arrays, read_emd, write_emd
from .hdf5 import format_ref, open_h5, parse_ref, read_dataset
from .images import read_array, read_images
from .inputs import ImageAxis, ImageData, read_calibration, read_image_data
from .info import describe, detect_format
from .mrc import find_tlt, read_mrc, read_tilt_series, read_tlt, write_mrc, write_tlt
from .process import PROCESS_GROUP, read_process_group, write_process_group
from .provenance import provenance, read_provenance, to_jsonable, write_provenance
from .tiff import read_tiff, write_tiff
from .validate import (DataWarning, angles_to_degrees, check_finite, check_ndim, check_same_shape,
                       require_finite_result)

__all__ = [
    "atomic_output", "atomic_update", "check_output", "clean_stale_temporaries", "output_lock",
    "array_digest", "file_digest", "check_fingerprint", "run_fingerprint", "require_finite_result",
    "generator_from_state", "load_checkpoint_file", "read_checkpoint", "save_checkpoint_file", "write_checkpoint",
    "CXI_CHECKPOINT", "CXI_DATA", "CXI_DETECTOR", "CXI_IMAGE", "CXI_PROCESS", "MASK_DEAD", "MASK_HOT",
    "MASK_INVALID", "MASK_SATURATED", "MASK_SHADOWED", "CXIData", "CXIReconstruction", "mask_from_known",
    "read_cxi", "read_cxi_reconstruction", "write_cxi", "write_cxi_detector", "write_cxi_reconstruction",
    "DX_CHECKPOINT", "DX_PROCESS", "DXVolume", "TiltSeriesData", "flat_dark_correct", "minus_log",
    "read_dxchange", "read_dxchange_volume", "write_dxchange", "write_dxchange_volume",
    "EMDData", "EMDDim", "list_emd_arrays", "read_emd", "write_emd",
    "format_ref", "open_h5", "parse_ref", "read_dataset",
    "read_array", "read_images", "ImageAxis", "ImageData", "read_calibration", "read_image_data",
    "describe", "detect_format",
    "find_tlt", "read_mrc", "read_tilt_series", "read_tlt", "write_mrc", "write_tlt",
    "PROCESS_GROUP", "read_process_group", "write_process_group",
    "provenance", "read_provenance", "to_jsonable", "write_provenance",
    "read_tiff", "write_tiff",
    "DataWarning", "angles_to_degrees", "check_finite", "check_ndim", "check_same_shape",
]
