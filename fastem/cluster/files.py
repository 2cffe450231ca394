"""The ``fastem cluster`` output file (HDF5), written atomically with provenance.

Nothing non-finite is written (a diverged fit is a :class:`~fastem.errors.NonFiniteResultError`),
and the file I/O goes through :func:`fastem.scan.h5guard.guarded_h5`: a full disk is a one-line
:class:`~fastem.errors.OutputWriteError`, the temporary removed, an existing output intact.

``/cluster/centroids`` (K, d) [attribute ``image_shape`` for image input], ``/cluster/labels``
(N,) int64, ``/cluster/objective`` (``phi = 1/(2N) sum_i min_j ||x_i - c_j||^2``),
``/cluster/inertia`` (``2 N phi``, scikit-learn's convention), ``/cluster/objectives`` (per-run
``phi``), ``/cluster/counts`` (K,) int64 points per cluster, ``/cluster/mean_distance`` (K,)
float64 mean Euclidean distance of a cluster's points to its centroid (data units after
preprocessing), attributes ``algorithm``, ``n_iter`` and the preprocessing (``transform``,
``binning``, ``normalize``; ``/cluster/detector_mask`` (ky, kx) uint8 when one was used);
provenance under ``/process/fastem``.

Pattern input ((N, ky, kx) or a 4D-STEM scan (Ny, Nx, ky, kx)) adds ``/cluster/patterns``
(K, ky/b, kx/b): the centroids as diffraction patterns; a scan adds ``/cluster/label_map``
(Ny, Nx) int64 (``labels`` in scan order). The input dataset's attributes (calibration, as the
acquisition wrote them) are copied onto ``/cluster/input`` with its shape and dtype.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["write_clusters"]


def write_clusters(path, model, *, config: dict, image_shape=None, overwrite: bool = False, inputs=(),
                   input_info: dict | None = None) -> Path:
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
            counts = getattr(model, "counts_", None)
            if counts is not None:
                g.create_dataset("counts", data=np.asarray(counts, np.int64))
                md = g.create_dataset("mean_distance", data=np.asarray(model.mean_distance_, np.float64))
                md.attrs["definition"] = "mean over a cluster's points of ||x_i - c_j|| (NaN: empty cluster)"
            patterns = getattr(model, "cluster_patterns_", None)
            if patterns is not None:
                patterns = patterns.get() if hasattr(patterns, "get") else np.asarray(patterns)
                p = g.create_dataset("patterns", data=patterns)
                p.attrs["axes"] = "cluster:ky:kx"
            label_map = getattr(model, "label_map_", None)
            if label_map is not None:
                lm = g.create_dataset("label_map", data=np.asarray(label_map, np.int64))
                lm.attrs["axes"] = "y:x (scan position)"
            pre = getattr(model, "preprocess_", None)
            if pre is not None:
                g.attrs["transform"] = pre.transform
                g.attrs["binning"] = pre.binning
                g.attrs["normalize"] = pre.normalize
                if pre.mask is not None:
                    m = g.create_dataset("detector_mask", data=pre.mask.astype(np.uint8))
                    m.attrs["definition"] = "1 = detector pixel hidden (set to 0 before binning)"
            if input_info is not None:
                gi = g.create_group("input")
                for key, value in input_info.get("attrs", {}).items():
                    try:
                        gi.attrs[key] = value
                    except (TypeError, ValueError):
                        gi.attrs[key] = str(value)
                gi.attrs["shape"] = np.asarray(input_info.get("shape", ()), np.int64)
                gi.attrs["dtype"] = str(input_info.get("dtype", ""))
                gi.attrs["source"] = str(input_info.get("source", ""))
            write_process_group(f.require_group(PROCESS_GROUP), provenance(config=config))
    return Path(path)
