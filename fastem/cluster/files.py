"""The ``fastem cluster`` output file (HDF5), written atomically with provenance.

Nothing non-finite is written (a diverged fit is a :class:`~fastem.errors.NonFiniteResultError`),
and the file I/O goes through :func:`fastem.scan.h5guard.guarded_h5`: a full disk is a one-line
:class:`~fastem.errors.OutputWriteError`, the temporary removed, an existing output intact.

``/cluster/centroids`` (K, d) [attribute ``image_shape`` for image input], ``/cluster/labels``
(N,) int64, ``/cluster/objective`` (``phi = 1/(2N) sum_i min_j ||x_i - c_j||^2``),
``/cluster/inertia`` (``2 N phi``, scikit-learn's convention), ``/cluster/objectives`` (per-run
``phi``), attributes ``algorithm`` and ``n_iter``; provenance under ``/process/fastem``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["write_clusters"]


def write_clusters(path, model, *, config: dict, image_shape=None, overwrite: bool = False, inputs=()) -> Path:
    """Write a fitted :class:`~fastem.cluster.SBEKMeans` to ``path`` (see the module docstring)."""
    from fastem.io import PROCESS_GROUP, atomic_output, provenance, require_finite_result, write_process_group
    from fastem.scan.h5guard import guarded_h5

    centers = model.cluster_centers_
    centers = centers.get() if hasattr(centers, "get") else np.asarray(centers)
    hint = "lower --gamma0 or rescale the data"
    require_finite_result(centers, f"{path}: /cluster/centroids", hint=hint)
    require_finite_result(np.asarray([model.objective_, model.inertia_], np.float64), f"{path}: /cluster/objective",
                          hint=hint)
    require_finite_result(np.asarray(model.objectives_, np.float64), f"{path}: /cluster/objectives", hint=hint)
    with atomic_output(path, overwrite=overwrite, inputs=inputs) as tmp:
        with guarded_h5(tmp, path) as f:
            g = f.create_group("cluster")
            c = g.create_dataset("centroids", data=centers)
            c.attrs["axes"] = "cluster:feature"
            if image_shape is not None:
                c.attrs["image_shape"] = np.asarray(image_shape, np.int64)
            g.create_dataset("labels", data=np.asarray(model.labels_, np.int64))
            g["objective"] = model.objective_
            g["objective"].attrs["definition"] = "phi = 1/(2N) sum_i min_j ||x_i - c_j||^2 (thesis eq. 4.4)"
            g["inertia"] = model.inertia_
            g["inertia"].attrs["definition"] = "sum_i min_j ||x_i - c_j||^2 = 2 N phi (scikit-learn inertia_)"
            g["objectives"] = model.objectives_
            g["objectives"].attrs["definition"] = "phi of every run, in run order"
            g.attrs["n_iter"] = model.n_iter_
            g.attrs["algorithm"] = model.algorithm
            write_process_group(f.require_group(PROCESS_GROUP), provenance(config=config))
    return Path(path)
