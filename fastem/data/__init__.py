"""Deterministic synthetic data for tests, demos and benchmarks (no downloads).

Phantoms
    :func:`vesicle_2d`, :func:`vesicle_3d`, :func:`shepp_logan_3d`, :func:`cell_3d` (a cell
    section with voxel-sized detail, for tomography), :func:`complex_particle` (complex-valued,
    for Bragg / phase-object CDI).
Coherent diffraction
    :func:`cdi_intensities` -> :class:`CDIData` (Poisson + Gaussian noise at a target R_noise,
    beamstop).
Tomography
    :func:`tilt_series` (independent ray-sum projector, ``fastem.geometry`` conventions),
    :func:`tilt_angles`, :func:`dual_axis_angles`.
Clustering
    :func:`gaussian_mixture`.
Writers
    :func:`save_cdi`, :func:`save_tilt_series`, :func:`save_volume`, :func:`save_mixture`.

Every generator takes ``seed`` (``numpy.random.default_rng(seed)``): same seed, same data.
"""

from .cdi import CDIData, cdi_intensities, centred_fft_power, embed_centred, r_noise_of
from .mixture import gaussian_mixture
from .phantoms import SHEPP_LOGAN_3D_MODIFIED, cell_3d, complex_particle, shepp_logan_3d, vesicle_2d, vesicle_3d
from .tilt import dual_axis_angles, tilt_angles, tilt_series
from .stem import STRUCTURES, StemGenerator, StemOptions, generate_stem
from .writers import CDI_TRUTH_OBJECT, CDI_TRUTH_SUPPORT, save_cdi, save_mixture, save_tilt_series, save_volume

__all__ = [
    "CDIData", "cdi_intensities", "centred_fft_power", "embed_centred", "r_noise_of",
    "gaussian_mixture",
    "SHEPP_LOGAN_3D_MODIFIED", "cell_3d", "complex_particle", "shepp_logan_3d", "vesicle_2d", "vesicle_3d",
    "dual_axis_angles", "tilt_angles", "tilt_series",
    "STRUCTURES", "StemGenerator", "StemOptions", "generate_stem",
    "CDI_TRUTH_OBJECT", "CDI_TRUTH_SUPPORT", "save_cdi", "save_mixture", "save_tilt_series", "save_volume",
]
