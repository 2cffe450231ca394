"""Completion metrics on [0, 1] intensities (spec "Completion baselines": RMSE, PSNR, SSIM, error maps).

Images in the partial-scan pipeline live in [-1, 1]; every metric here first maps them to
[0, 1] by ``(x + 1) / 2`` (``unit=False`` skips that for data already in [0, 1]). The paper's
headline figure (2.6 % at 1/20 coverage) is an RMSE on this [0, 1] scale.

SSIM follows Wang et al. (IEEE TIP 13, 600, 2004) as scikit-image implements it with
``gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1``: Gaussian
window (truncated at 3.5 sigma, ``reflect`` padding), ``K1 = 0.01``, ``K2 = 0.03``, the mean
taken over the image less a 5-pixel border. The tests check it against scikit-image.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from fastem import backend
from fastem.errors import InputError

__all__ = ["to_unit", "rmse", "psnr", "ssim", "distance_to_path", "error_vs_distance", "squared_error_map"]

_SSIM_SIGMA = 1.5
_SSIM_TRUNCATE = 3.5


def to_unit(x) -> np.ndarray:
    """[-1, 1] -> [0, 1] as float64 (a host copy of NumPy/CuPy input)."""
    from fastem.interop import as_array

    x = as_array(x)
    x = backend.to_host(x)
    return 0.5 * (x.astype(np.float64) + 1.0)


def _pair(pred, target, unit: bool):
    p = to_unit(pred) if unit else np.asarray(pred, dtype=np.float64)
    t = to_unit(target) if unit else np.asarray(target, dtype=np.float64)
    if p.shape != t.shape:
        raise InputError(f"prediction has shape {p.shape} but the target has {t.shape}")
    if not np.isfinite(p).all():
        raise InputError(f"prediction has {int((~np.isfinite(p)).sum())} non-finite values")
    return p, t


def rmse(pred, target, *, unit: bool = True) -> float | np.ndarray:
    """Root-mean-square error on [0, 1] intensities; per image for (B, H, W) input."""
    p, t = _pair(pred, target, unit)
    err = np.sqrt(np.mean((p - t) ** 2, axis=(-2, -1)))
    return float(err) if err.ndim == 0 else err


def psnr(pred, target, *, unit: bool = True) -> float | np.ndarray:
    """Peak signal-to-noise ratio in dB with a data range of 1: ``-20 log10(RMSE)``."""
    err = np.asarray(rmse(pred, target, unit=unit))
    with np.errstate(divide="ignore"):
        out = -20.0 * np.log10(err)
    return float(out) if out.ndim == 0 else out


def _ssim_2d(p: np.ndarray, t: np.ndarray) -> float:
    filt = lambda a: ndimage.gaussian_filter(a, _SSIM_SIGMA, mode="reflect", truncate=_SSIM_TRUNCATE)  # noqa: E731
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mp, mt = filt(p), filt(t)
    vp = filt(p * p) - mp * mp
    vt = filt(t * t) - mt * mt
    cov = filt(p * t) - mp * mt
    s = ((2 * mp * mt + c1) * (2 * cov + c2)) / ((mp * mp + mt * mt + c1) * (vp + vt + c2))
    pad = int(_SSIM_TRUNCATE * _SSIM_SIGMA + 0.5)
    return float(s[pad:-pad, pad:-pad].mean())


def ssim(pred, target, *, unit: bool = True) -> float | np.ndarray:
    """Structural similarity (Gaussian window, sigma 1.5); per image for (B, H, W) input."""
    p, t = _pair(pred, target, unit)
    if min(p.shape[-2:]) < 12:
        raise InputError(f"SSIM needs images of at least 12x12 pixels, got {p.shape[-2:]}")
    if p.ndim == 2:
        return _ssim_2d(p, t)
    return np.array([_ssim_2d(a, b) for a, b in zip(p.reshape(-1, *p.shape[-2:]), t.reshape(-1, *t.shape[-2:]))]
                    ).reshape(p.shape[:-2])


def distance_to_path(path) -> np.ndarray:
    """Euclidean distance (px) from each pixel to the nearest sampled (``path > 0``) pixel.

    (H, W) or (B, H, W), computed with the fastem nearest-pixel kernel; ``inf`` without samples.
    """
    from fastem.kernels.partial_scan import nearest_sampled

    p = backend.to_host(path, np.float32)
    single = p.ndim == 2
    p = np.ascontiguousarray(p[None] if single else p)
    idx = nearest_sampled(p).astype(np.int64)
    h, w = p.shape[-2:]
    rr, cc = np.divmod(np.maximum(idx, 0), w)
    r0, c0 = np.mgrid[0:h, 0:w]
    d = np.sqrt((rr - r0) ** 2 + (cc - c0) ** 2)
    d[idx < 0] = np.inf
    return d[0] if single else d


def squared_error_map(preds, targets, *, unit: bool = True) -> np.ndarray:
    """Per-pixel mean squared error over a batch (the paper's fig. 5 error maps), (H, W)."""
    p, t = _pair(preds, targets, unit)
    return np.mean((p - t) ** 2, axis=tuple(range(p.ndim - 2)) or None) if p.ndim > 2 else (p - t) ** 2


def error_vs_distance(preds, targets, path, *, bins=None, unit: bool = True):
    """RMS error as a function of the distance to the scan path.

    Parameters
    ----------
    preds, targets : (H, W) or (B, H, W)
    path : dwell maps of the same shape
    bins : bin edges in px (default: integers 0, 1, 2, ... up to the largest distance + 1)

    Returns
    -------
    edges : (K + 1,) float64
    rms : (K,) float64 RMS error of the pixels whose distance falls in ``[edges[k], edges[k+1])``
        (NaN for an empty bin)
    counts : (K,) int64
    """
    p, t = _pair(preds, targets, unit)
    d = distance_to_path(path)
    if d.shape != p.shape:
        raise InputError(f"path has shape {d.shape} but the predictions have {p.shape}")
    finite = np.isfinite(d)
    if bins is None:
        top = float(d[finite].max()) if finite.any() else 0.0
        bins = np.arange(0.0, np.floor(top) + 2.0)
    edges = np.asarray(bins, dtype=np.float64)
    k = np.digitize(d[finite], edges) - 1
    sq = ((p - t) ** 2)[finite]
    ok = (k >= 0) & (k < edges.size - 1)
    counts = np.bincount(k[ok], minlength=edges.size - 1).astype(np.int64)
    sums = np.bincount(k[ok], weights=sq[ok], minlength=edges.size - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rms = np.sqrt(sums / counts)
    return edges, rms, counts
