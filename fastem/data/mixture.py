"""Gaussian-mixture point clouds for clustering tests and benchmarks."""

from __future__ import annotations

import numpy as np

from ..errors import InputError

__all__ = ["gaussian_mixture"]


def gaussian_mixture(n_points: int, n_features: int, n_clusters: int, *, spread: float = 1.0,
                     centre_scale: float = 10.0, seed=0, dtype=np.float64):
    """Isotropic Gaussian clusters around random centres.

    Parameters
    ----------
    n_points, n_features, n_clusters : int
        ``n_points >= n_clusters``; every cluster gets ``n_points // n_clusters`` or one more
        points (balanced, in random order).
    spread : float
        Standard deviation of every cluster along every feature.
    centre_scale : float
        Centres are uniform in ``[-centre_scale, centre_scale]^n_features``.
    seed : int or None
        ``numpy.random.default_rng`` seed.
    dtype : numpy dtype
        Of ``X`` and ``centres``.

    Returns
    -------
    X : ndarray, (n_points, n_features), ``dtype``
    labels : ndarray, int64, (n_points,)
        The cluster each point was drawn from, in ``0..n_clusters-1``.
    centres : ndarray, (n_clusters, n_features), ``dtype``
    """
    n_points, n_features, n_clusters = int(n_points), int(n_features), int(n_clusters)
    if n_features < 1 or n_clusters < 1 or n_points < n_clusters:
        raise InputError(f"gaussian_mixture: need n_features >= 1 and n_points >= n_clusters >= 1, got "
                         f"n_points={n_points}, n_features={n_features}, n_clusters={n_clusters}")
    if spread < 0 or centre_scale <= 0:
        raise InputError(f"gaussian_mixture: need spread >= 0 and centre_scale > 0, got {spread}, {centre_scale}")
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-centre_scale, centre_scale, size=(n_clusters, n_features))
    labels = rng.permutation(np.arange(n_points) % n_clusters).astype(np.int64)
    X = centres[labels] + spread * rng.standard_normal((n_points, n_features))
    return X.astype(dtype, copy=False), labels, centres.astype(dtype, copy=False)
