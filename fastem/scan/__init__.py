"""Partial-scan STEM: scan paths, partial-scan formation, completion baselines and metrics.

Spec: docs/scan.md (seed 000: Ede & Beanland, Sci. Rep. 2020). Synthetic
micrographs come from :mod:`fastem.data.stem`; the kernels behind the pipeline are
``fastem.kernels.scan_path`` and ``fastem.kernels.partial_scan``.
"""

from .baselines import METHODS, complete, complete_batch, complete_methods
from .metrics import distance_to_path, error_vs_distance, psnr, rmse, squared_error_map, ssim
from .partial import (PartialScanPipeline, PartialScans, dihedral, dihedral_index, form_partial_scans,
                      make_partial_scans)
from .paths import (PAPER_GRID_SETTINGS, PATH_KINDS, dwell_fraction, grid_path, measured_coverage, scan_path,
                    solve_coverage, spiral_path)

__all__ = [
    "METHODS", "complete", "complete_batch", "complete_methods",
    "distance_to_path", "error_vs_distance", "psnr", "rmse", "squared_error_map", "ssim",
    "PartialScanPipeline", "PartialScans", "dihedral", "dihedral_index", "form_partial_scans", "make_partial_scans",
    "PAPER_GRID_SETTINGS", "PATH_KINDS", "dwell_fraction", "grid_path", "measured_coverage", "scan_path",
    "solve_coverage", "spiral_path",
    "PartialScanDataset",
]


def __getattr__(name):  # the torch-facing dataset is imported on first use (torch is optional)
    if name == "PartialScanDataset":
        from .dataset import PartialScanDataset

        return PartialScanDataset
    raise AttributeError(f"module 'fastem.scan' has no attribute {name!r}")
