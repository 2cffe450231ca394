"""k-means clustering: stochastic backward Euler (SBE), mini-batch k-means and Lloyd's algorithm.

All three run on one fused kernel (:func:`fastem.kernels.assign_accumulate`: BLAS/cuBLAS cross
term, then argmin + per-centroid sums and counts) over a :class:`DataSource` (NumPy, CuPy, or an
HDF5 dataset streamed from disk). Objective ``phi = 1/(2N) sum_i min_j ||c_j - p_i||^2`` (thesis
eq. 4.4); ``inertia = 2 N phi`` is scikit-learn's convention. See ``docs/cluster.md``.
"""

from .core import RunResult, assign_full, init_centroids, lloyd, minibatch, sbe
from .estimator import ALGORITHMS, SBEKMeans
from .source import DataSource

__all__ = ["SBEKMeans", "ALGORITHMS", "DataSource", "RunResult", "assign_full", "init_centroids", "lloyd",
           "minibatch", "sbe"]
