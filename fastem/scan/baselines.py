"""Non-learned completion of partial scans: nearest, linear, cubic (SciPy ``griddata``), biharmonic.

Spec "Completion baselines". Every method sees what a completion network sees: the partial scan
on the sampled pixels (``path > 0``) and the path. The detected signal of a partially dwelt
pixel is attenuated, ``E[det] ~ m img`` (spec step 3: ``det = m (m img + 2 (1 - m) U blur)``),
so by default the samples are divided by their dwell first (``dwell_correct=True``; binary paths
are unaffected), then the method fills every other pixel:

``nearest``
    value of the nearest sampled pixel (exact Euclidean, fastem's kernel);
``linear`` / ``cubic``
    ``scipy.interpolate.griddata`` on the Delaunay triangulation of the samples
    (piecewise linear / Clough-Tocher C1 cubic); pixels outside the samples' convex hull take
    the nearest sample;
``biharmonic``
    ``skimage.restoration.inpaint_biharmonic`` (scikit-image, an optional dependency:
    ``pip install 'fastem[scan]'``). Slow: it solves one sparse system per connected unsampled
    region (see ``docs/scan.md`` for timings).

Outputs are float64 in [-1, 1] (clipped), the scale of the target.
"""

from __future__ import annotations

import numpy as np

from fastem.errors import InputError

__all__ = ["METHODS", "complete", "complete_batch", "sample_values"]

METHODS = ("nearest", "linear", "cubic", "biharmonic")


def _host(a) -> np.ndarray:
    return a.get() if hasattr(a, "get") else np.asarray(a)


def sample_values(partial, path, dwell_correct: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(sampled mask, values)`` of one (H, W) partial scan: values = det (/ m), NaN elsewhere."""
    partial = np.asarray(_host(partial), dtype=np.float64)
    m = np.asarray(_host(path), dtype=np.float64)
    if partial.shape != m.shape or partial.ndim != 2:
        raise InputError(f"partial scan {partial.shape} and path {m.shape} must be equal 2D shapes")
    sampled = m > 0
    if not sampled.any():
        raise InputError("the path samples no pixel: nothing to complete from")
    values = np.full(partial.shape, np.nan)
    values[sampled] = partial[sampled] / m[sampled] if dwell_correct else partial[sampled]
    np.clip(values, -1.0, 1.0, out=values)
    return sampled, values


def complete(partial, path, method: str = "linear", *, dwell_correct: bool = True) -> np.ndarray:
    """Complete one (H, W) partial scan from its sampled pixels with ``method`` (see module docs)."""
    if method not in METHODS:
        raise InputError(f"completion method must be one of {', '.join(METHODS)}, got {method!r}")
    sampled, values = sample_values(partial, path, dwell_correct)
    h, w = sampled.shape
    if method == "nearest" or sampled.sum() < 4:
        return _nearest(values, sampled)
    if method == "biharmonic":
        try:
            from skimage.restoration import inpaint_biharmonic
        except ImportError:  # pragma: no cover - depends on the environment
            raise InputError("method 'biharmonic' needs scikit-image: pip install 'fastem[scan]'") from None
        filled = np.where(sampled, values, 0.0)
        out = inpaint_biharmonic(filled, ~sampled)
        return np.clip(out, -1.0, 1.0)
    from scipy.interpolate import griddata

    rows, cols = np.nonzero(sampled)
    rr, cc = np.mgrid[0:h, 0:w]
    out = griddata((rows, cols), values[sampled], (rr, cc), method=method)
    hole = ~np.isfinite(out)
    if hole.any():
        out[hole] = _nearest(values, sampled)[hole]
    return np.clip(out, -1.0, 1.0)


def _nearest(values: np.ndarray, sampled: np.ndarray) -> np.ndarray:
    from fastem.kernels.partial_scan import nearest_sampled

    idx = nearest_sampled(np.ascontiguousarray(sampled[None], dtype=np.float32))[0]
    return values.reshape(-1)[idx]


def complete_batch(partial, path, method: str = "linear", *, dwell_correct: bool = True, progress=None) -> np.ndarray:
    """:func:`complete` over a (B, H, W) batch (a (B, H, W) float64 array on the host)."""
    partial, path = _host(partial), _host(path)
    if partial.ndim == 2:
        return complete(partial, path, method, dwell_correct=dwell_correct)
    out = np.empty(partial.shape, np.float64)
    for b in range(partial.shape[0]):
        out[b] = complete(partial[b], path[b], method, dwell_correct=dwell_correct)
        if progress is not None:
            progress.update(1)
    return out
