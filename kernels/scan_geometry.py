"""Constants and small geometry helpers of the partial-scan spec, shared by every engine.

The production code (``fastem.scan``), the kernels (NumPy, Numba, CUDA) and the float64 oracle
(``_scan_reference``) all take these from here, so the oracle is imported only where the
``engine="numpy"`` path or a test wants it. Spec: ``docs/scan.md`` (sections "Simulation" and
"Paths"); seed 000 (Ede & Beanland 2020), section 2.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["MIN_DWELL", "BLUR_SIGMA", "BLUR_RADIUS", "NEAR_CONSTANT", "blur_weights", "dihedral",
           "grid_channel_width"]

MIN_DWELL = 1e-3      #: accumulated dwell below this is treated as "not visited" (set to 0)
BLUR_SIGMA = 2.5      #: px, the spec's 5x5 Gaussian
BLUR_RADIUS = 2       #: 5 taps
NEAR_CONSTANT = 1e-6  #: max - min below this: the crop becomes all zeros


def blur_weights(dtype=np.float64) -> np.ndarray:
    """The normalised 5-tap Gaussian ``exp(-k^2 / (2 * 2.5^2)) / sum``, ``k = -2..2``."""
    k = np.arange(-BLUR_RADIUS, BLUR_RADIUS + 1, dtype=np.float64)
    w = np.exp(-0.5 * (k / BLUR_SIGMA) ** 2)
    return (w / w.sum()).astype(dtype)


def dihedral(x: np.ndarray, t: int) -> np.ndarray:
    """Dihedral transform ``t`` (0..7) of the last two axes (a view).

    Bit 4 transposes, then bit 1 flips the rows (up-down), then bit 2 flips the columns:
    ``0`` is the identity, ``3`` a rotation by 180 degrees, ``5`` and ``6`` the rotations by
    90 degrees; the 8 values are the 8 elements of the symmetry group of the square.
    """
    t = int(t)
    if not 0 <= t < 8:
        raise ValueError(f"dihedral transform index must be 0..7, got {t}")
    if t & 4:
        x = np.swapaxes(x, -1, -2)
    if t & 1:
        x = x[..., ::-1, :]
    if t & 2:
        x = x[..., :, ::-1]
    return x


def grid_channel_width(u: float) -> float:
    """Channel spacing ``w = (2 + sqrt(4 - 16 u)) / (2 u)`` px for a fraction ``u`` per direction."""
    return (2.0 + math.sqrt(4.0 - 16.0 * u)) / (2.0 * u)
