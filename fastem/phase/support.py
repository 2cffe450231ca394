"""Support: validation of a user-given support and an estimate from the autocorrelation.

Autocorrelation estimate (:func:`autocorrelation_support`). The inverse Fourier transform of the
intensities is the autocorrelation ``A = u * u(-x)`` of the object; its support is the
difference set ``S - S``, which for a convex, centro-symmetric support is ``2 S`` about the
centre. So:

1. ``A = Re ifftn(I)`` with unknown pixels set to 0 (the missing centre removes a smooth
   low-frequency part of ``A``, which the relative threshold tolerates), centred;
2. ``S_auto = {A > threshold * max A}`` (default threshold 0.04, as in shrink-wrap's usual
   start, Marchesini et al. 2003);
3. ``S(x) = S_auto(2x)`` (half-scaled about the array centre, nearest pixel), dilated by
   ``margin`` pixels, and clipped to the central box of half the array side.

For an object that is not centro-symmetric the half-scaled autocorrelation support is a loose
(but usually sufficient) estimate; give ``--support`` when a tighter one is known.

:func:`check_support` enforces the oversampling condition: the support must be non-empty and
cover at most half of the pixels (oversampling ratio >= 2, else :class:`~fastem.errors.InputError`);
a support wider than half the array along an axis (its autocorrelation wraps around) only gets a
:class:`~fastem.io.DataWarning`, since slightly dilated supports of objects that fill half the
array are common.
"""

from __future__ import annotations

import numpy as np

import warnings

from fastem.errors import InputError
from fastem.io.validate import DataWarning

__all__ = ["check_support", "autocorrelation_support", "support_extent"]


def support_extent(support: np.ndarray) -> tuple[int, ...]:
    """Bounding-box side lengths (pixels) of the True pixels of ``support`` along each axis."""
    idx = np.nonzero(support)
    if not idx or idx[0].size == 0:
        return tuple(0 for _ in support.shape)
    return tuple(int(i.max() - i.min() + 1) for i in idx)


def check_support(support, shape, where: str = "support") -> np.ndarray:
    """Validate a support mask for data of ``shape``; return it as a C-contiguous bool array.

    Raises
    ------
    InputError
        shape mismatch, non-finite or non-binary values, empty support, or more than half of
        the pixels in the support.
    """
    s = np.asarray(support)
    shape = tuple(int(n) for n in shape)
    if s.shape != shape:
        raise InputError(f"{where}: shape {s.shape} does not match the diffraction data {shape}")
    if s.dtype != bool:
        if not np.all(np.isfinite(s)):
            raise InputError(f"{where}: {int(np.sum(~np.isfinite(s)))} non-finite value(s); a support is a 0/1 mask")
        if not np.all((s == 0) | (s == 1)):
            raise InputError(f"{where}: values other than 0 and 1 (min {s.min():g}, max {s.max():g}); "
                             "a support is a 0/1 mask")
        s = s != 0
    n_in = int(s.sum())
    if n_in == 0:
        raise InputError(f"{where}: empty support (no pixel set)")
    if 2 * n_in > s.size:
        raise InputError(f"{where}: support larger than half the array ({n_in} of {s.size} pixels): oversampling "
                         "ratio below 2, the phases are not determined")
    ext = support_extent(s)
    too_wide = [f"axis {a}: {e} > {n // 2}" for a, (e, n) in enumerate(zip(ext, shape)) if e > n // 2]
    if too_wide:
        warnings.warn(f"{where}: support wider than half the array ({'; '.join(too_wide)} pixels); its "
                      "autocorrelation wraps around (fine for a slightly dilated support)", DataWarning, stacklevel=3)
    return np.ascontiguousarray(s)


def autocorrelation_support(intensities, known=None, threshold: float = 0.04, margin: int = 2) -> np.ndarray:
    """Support estimate from the thresholded autocorrelation (see the module docstring).

    Parameters
    ----------
    intensities : ndarray (2D or 3D), zero frequency at the centre (fftshift layout)
    known : bool ndarray, same shape, optional
        False on unknown pixels (set to 0 before the transform).
    threshold : float
        Relative threshold on the autocorrelation (0 < threshold < 1).
    margin : int
        Dilation (pixels) of the half-scaled support.

    Returns
    -------
    bool ndarray, same shape, centred (the object centred in the array)
    """
    if not 0 < threshold < 1:
        raise InputError(f"support threshold must be in (0, 1), got {threshold}")
    inten = np.array(intensities, dtype=np.float64)
    if known is not None:
        inten[~np.asarray(known, bool)] = 0.0
    auto = np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(inten)).real)
    peak = auto.max()
    if not peak > 0:
        raise InputError("support estimate: the autocorrelation has no positive peak (all intensities zero?)")
    s_auto = auto > threshold * peak
    shape = inten.shape
    # S(x) = S_auto(2x), x centred: sample S_auto at index c + 2 (i - c)
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    src = []
    inside = np.ones(shape, bool)
    for g, n in zip(grids, shape):
        c = n // 2
        j = c + 2 * (g - c)
        inside &= (j >= 0) & (j < n)
        src.append(np.clip(j, 0, n - 1))
    est = inside & s_auto[tuple(src)]
    if margin > 0:
        from scipy.ndimage import binary_dilation

        est = binary_dilation(est, iterations=int(margin))
    # clip to the central box of half the side
    box = np.ones(shape, bool)
    for ax, n in enumerate(shape):
        c, half = n // 2, n // 4
        sl = np.zeros(n, bool)
        sl[c - half: c - half + n // 2] = True
        sh = [1] * len(shape)
        sh[ax] = n
        box &= sl.reshape(sh)
    est &= box
    if not est.any():
        raise InputError("support estimate from the autocorrelation is empty; lower the threshold or pass --support")
    return est
