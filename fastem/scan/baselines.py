"""Non-learned completion of partial scans: nearest, linear, cubic (SciPy), biharmonic (scikit-image).

Spec "Completion baselines". Every method sees what a completion network sees: the partial scan
and the path. Two choices make the baselines much better on the spec's noise model (measured
on synthetic micrographs at 1/20 dwell: linear RMSE 0.112 -> 0.074), both on by default:

* **dwell correction** -- a pixel with dwell ``m`` detects ``det = m (m img + 2 (1 - m) U blur)``
  (spec step 3), whose mean is about ``m img``: the samples are ``det / m`` (binary paths are
  unaffected), clipped to [-1, 1];
* **minimum dwell** -- pixels grazed by the anti-aliased path (``m < min_dwell``, default 0.5)
  carry mostly the uniform noise and are not used; every path step has at least one pixel
  with ``m >= 0.5``.

Then every other pixel is filled:

``nearest``
    value of the nearest sample (exact Euclidean, fastem's kernel);
``linear`` / ``cubic``
    what ``scipy.interpolate.griddata`` does -- ``LinearNDInterpolator`` (piecewise linear) and
    ``CloughTocher2DInterpolator`` (C1 cubic, curvature-minimising gradients) -- on one Delaunay
    triangulation of the samples shared by both. SciPy computes the triangles' barycentric
    transforms lazily with one LAPACK call per triangle (seconds for the ~50 000 triangles of
    a 512x512 scan); :func:`barycentric_transforms` computes the same array in closed form
    (agreeing to 1e-13, checked in the tests) and hands it to the triangulation first. Pixels
    outside the samples' convex hull take the nearest sample;
``biharmonic``
    ``skimage.restoration.inpaint_biharmonic`` (scikit-image, an optional dependency:
    ``pip install 'fastem[scan]'``). Slow: it solves sparse systems over the unsampled pixels
    (seconds per 512 x 512 image; timings in ``docs/scan.md``).

Outputs are float64 in [-1, 1] (clipped), the scale of the target.
"""

from __future__ import annotations

import numpy as np

from fastem import backend
from fastem.errors import InputError

__all__ = ["METHODS", "complete", "complete_methods", "complete_batch", "sample_values", "barycentric_transforms",
           "closed_form_delaunay"]

METHODS = ("nearest", "linear", "cubic", "biharmonic")


def _host(a) -> np.ndarray:
    return backend.to_host(a)


def _real_array(a, name: str) -> np.ndarray:
    """``a`` as a float64 host array, or an :class:`InputError` naming ``name``."""
    if a is None or isinstance(a, (str, bytes)):
        raise InputError(f"{name} must be a real (rows, cols) array, got {a!r}")
    arr = np.asarray(_host(a))
    if arr.dtype.kind not in "fiub":
        raise InputError(f"{name} must be a real (rows, cols) array, got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


def sample_values(partial, path, dwell_correct: bool = True, min_dwell: float = 0.5):
    """``(sample mask, values)`` of one (H, W) partial scan: ``det`` (``/ m``) where ``m >= min_dwell``.

    ``min_dwell`` <= 0 uses every pixel with ``m > 0``. Values are NaN off the samples. Pixels where
    the partial scan or the path is NaN or infinite are not samples.
    """
    partial = _real_array(partial, "partial")
    m = _real_array(path, "path")
    if isinstance(min_dwell, bool) or not isinstance(min_dwell, (int, float, np.integer, np.floating)) \
            or not np.isfinite(min_dwell):
        raise InputError(f"min_dwell must be a finite number, got {min_dwell!r}")
    if partial.shape != m.shape or partial.ndim != 2:
        raise InputError(f"partial scan {partial.shape} and path {m.shape} must be equal 2D shapes")
    usable = np.isfinite(partial) & np.isfinite(m)   # NaN / inf pixels count as not sampled
    sampled = (m >= min_dwell) & (m > 0) & usable
    if not sampled.any():
        sampled = (m > 0) & usable
    if not sampled.any():
        raise InputError("the path samples no pixel: nothing to complete from")
    values = np.full(partial.shape, np.nan)
    values[sampled] = partial[sampled] / m[sampled] if dwell_correct else partial[sampled]
    np.clip(values, -1.0, 1.0, out=values)
    return sampled, values


def complete(partial, path, method: str = "linear", *, dwell_correct: bool = True, min_dwell: float = 0.5) -> np.ndarray:
    """Complete one (H, W) partial scan with ``method`` (see the module docs); (H, W) float64."""
    return complete_methods(partial, path, (method,), dwell_correct=dwell_correct, min_dwell=min_dwell)[method]


def complete_methods(partial, path, methods=METHODS, *, dwell_correct: bool = True,
                     min_dwell: float = 0.5) -> dict[str, np.ndarray]:
    """``{method: completion}`` for several methods, sharing the samples and the triangulation."""
    methods = (methods,) if isinstance(methods, str) else tuple(methods)
    bad = [m for m in methods if not isinstance(m, str) or m not in METHODS]
    if bad:
        raise InputError(f"completion method must be one of {', '.join(METHODS)}, got {', '.join(map(repr, bad))}")
    sampled, values = sample_values(partial, path, dwell_correct, min_dwell)
    h, w = sampled.shape
    out: dict[str, np.ndarray] = {}
    nearest = _nearest(values, sampled)
    if "nearest" in methods:
        out["nearest"] = nearest
    interp = [m for m in methods if m in ("linear", "cubic")]
    if interp:
        rows, cols = np.nonzero(sampled)
        if rows.size < 4:
            for m in interp:
                out[m] = nearest
        else:
            from scipy.interpolate import CloughTocher2DInterpolator, LinearNDInterpolator

            tri = closed_form_delaunay(np.stack([rows, cols], axis=1).astype(np.float64))
            xi = np.stack(np.mgrid[0:h, 0:w], axis=-1).reshape(-1, 2).astype(np.float64)
            for m in interp:
                cls = LinearNDInterpolator if m == "linear" else CloughTocher2DInterpolator
                val = cls(tri, values[sampled])(xi).reshape(h, w)
                hole = ~np.isfinite(val)
                val[hole] = nearest[hole]
                out[m] = np.clip(val, -1.0, 1.0)
    if "biharmonic" in methods:
        try:
            from skimage.restoration import inpaint_biharmonic
        except ImportError:  # pragma: no cover - depends on the environment
            raise InputError("method 'biharmonic' needs scikit-image: pip install 'fastem[scan]'") from None
        out["biharmonic"] = np.clip(inpaint_biharmonic(np.where(sampled, values, 0.0), ~sampled), -1.0, 1.0)
    return out


def barycentric_transforms(tri) -> np.ndarray:
    """``Delaunay.transform`` of a 2D triangulation in closed form, (n_simplices, 3, 2) float64.

    ``T[:2]`` is the inverse of ``[v0 - v2, v1 - v2]`` and ``T[2]`` is ``v2``, so the barycentric
    coordinates of ``x`` are ``T[:2] @ (x - T[2])`` (and one minus their sum). Degenerate
    (zero-area) triangles get NaN, as in SciPy.
    """
    p = tri.points[tri.simplices]
    a = np.stack([p[:, 0] - p[:, 2], p[:, 1] - p[:, 2]], axis=2)
    det = a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0]
    inv = np.empty_like(a)
    inv[:, 0, 0], inv[:, 1, 1] = a[:, 1, 1], a[:, 0, 0]
    inv[:, 0, 1], inv[:, 1, 0] = -a[:, 0, 1], -a[:, 1, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        inv /= det[:, None, None]
    inv[det == 0] = np.nan
    return np.concatenate([inv, p[:, 2][:, None, :]], axis=1)


def closed_form_delaunay(points: np.ndarray):
    """A 2D SciPy ``Delaunay`` whose ``transform`` is computed in closed form (same values).

    SciPy computes the barycentric transforms with a general N-D solve per simplex, about 3 s
    for the ~26000 triangles of a 1/20 scan of 512x512 (more than the interpolation itself);
    :func:`barycentric_transforms` gives the same (n, 3, 2) array in milliseconds. The subclass
    overrides the public ``transform`` property, which ``find_simplex`` and the
    ``LinearNDInterpolator``/``CloughTocher2DInterpolator`` read; nothing private is touched.
    """
    from scipy.spatial import Delaunay

    class _ClosedFormDelaunay(Delaunay):
        _closed_form = None

        @property
        def transform(self):
            if self.ndim != 2:
                return Delaunay.transform.fget(self)
            if self._closed_form is None:
                self._closed_form = barycentric_transforms(self)
            return self._closed_form

    return _ClosedFormDelaunay(points)


def _nearest(values: np.ndarray, sampled: np.ndarray) -> np.ndarray:
    from fastem.kernels.partial_scan import nearest_sampled

    idx = nearest_sampled(np.ascontiguousarray(sampled[None], dtype=np.float32))[0]
    return values.reshape(-1)[idx]


def complete_batch(partial, path, method: str = "linear", *, dwell_correct: bool = True, min_dwell: float = 0.5,
                   progress=None) -> np.ndarray:
    """:func:`complete` over a (B, H, W) batch (a (B, H, W) float64 array on the host)."""
    partial, path = _host(partial), _host(path)
    if partial.ndim == 2:
        return complete(partial, path, method, dwell_correct=dwell_correct, min_dwell=min_dwell)
    out = np.empty(partial.shape, np.float64)
    for b in range(partial.shape[0]):
        out[b] = complete(partial[b], path[b], method, dwell_correct=dwell_correct, min_dwell=min_dwell)
        if progress is not None:
            progress.update(1)
    return out
