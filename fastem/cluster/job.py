"""The cluster domain's job module (as ``fastem.phase.job``): what ``fastem cluster`` reads and writes.

:func:`cluster_file` is the whole command without the command line: read and validate the
dataset (HDF5 streamed or loaded; EMD, MRC, TIFF, DM, ... read whole), fit
:class:`~fastem.cluster.SBEKMeans`, check the result and write the output atomically
(:func:`write_clusters`; another format through an HDF5 staging file). Its errors name the
API parameters; :func:`cli_message` turns them into the ``fastem cluster`` flags (:data:`FLAGS`).

The output file (HDF5), written atomically with provenance.

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

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from fastem import backend
from fastem.errors import InputError

__all__ = ["write_clusters", "cluster_file", "cli_message", "FLAGS", "STREAM_ABOVE_BYTES"]

#: datasets larger than this are streamed from disk by default (``stream=None``)
STREAM_ABOVE_BYTES = 2 ** 31

#: API parameter (of :func:`cluster_file` and :class:`~fastem.cluster.SBEKMeans`) -> ``fastem cluster`` flag
FLAGS = {
    "in_ref": "IN", "out_path": "-o/--output", "out_format": "--format", "n_clusters": "-k/--clusters",
    "algorithm": "--algorithm", "batch_size": "--batch", "n_init": "--runs", "random_state": "--seed",
    "init": "--init", "n_outer": "--outer", "n_inner": "--inner", "gamma0": "--gamma0", "n_steps": "--steps",
    "max_iter": "--max-iter", "dtype": "--dtype", "stream": "--stream/--load", "transform": "--transform",
    "detector_mask": "--detector-mask", "binning": "--bin", "normalize": "--normalize", "sampling": "--sampling",
    "overwrite": "--overwrite", "executor": "--scheduler",
}
_FORMATS = ("hdf5", "emd", "mrc", "tiff", "hspy")


def write_clusters(path, model, *, config: dict, image_shape=None, overwrite: bool = False, inputs=(),
                   input_info: dict | None = None) -> Path:
    """Write a fitted :class:`~fastem.cluster.SBEKMeans` to ``path`` (see the module docstring)."""
    from fastem.io import PROCESS_GROUP, atomic_output, provenance, require_finite_result, write_process_group
    from fastem.scan.h5guard import guarded_h5

    centers = model.cluster_centers_
    centers = backend.to_host(centers)
    hint = "lower gamma0 (SBE's initial step) or rescale the data"
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
                patterns = backend.to_host(patterns)
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


def cli_message(message: str) -> str:
    """An error message of :func:`cluster_file` or :class:`~fastem.cluster.SBEKMeans` with the
    API parameter names replaced by the ``fastem cluster`` flags (:data:`FLAGS`).

    Messages of :func:`cluster_file` itself (``"cluster_file: ..."``) are translated word by word
    (never inside a path); any other message only where it starts with a parameter name, after
    an optional ``"FILE:/dataset: "`` prefix (e.g. ``n_clusters = 9 is larger than ...``), so data
    words such as "dtype" in "got dtype complex64" stay as they are.
    """
    from fastem.errors import name_flags

    translated = name_flags(message, "cluster_file", FLAGS)
    if translated is not None:
        return translated
    message = message.replace("lower gamma0 (SBE's initial step)", "lower --gamma0 (SBE's initial step)")
    m = re.match(r"^((?:\S+:/\S*: )?)(\w+)(?=[ =:])", message)
    if m and m.group(2) in FLAGS and m.group(2) not in ("in_ref", "init", "dtype"):
        return m.group(1) + FLAGS[m.group(2)] + message[m.end():]
    return message


def _load_mask(detector_mask):
    """``detector_mask``: None, a (ky, kx) array, or ``"FILE:/dataset"`` (read here)."""
    if detector_mask is None or not isinstance(detector_mask, (str, bytes, os.PathLike)):
        return detector_mask
    from .preprocess import load_mask

    ref = os.fsdecode(detector_mask)
    try:
        return load_mask(ref)
    except InputError as exc:
        raise InputError(f"cluster_file: detector_mask {exc}") from None


def _check_arguments(out_format, stream, binning, overwrite) -> None:
    if out_format not in _FORMATS:
        raise InputError(f"cluster_file: out_format must be one of {', '.join(_FORMATS)}, got {out_format!r}")
    if stream is not None and not isinstance(stream, (bool, np.bool_)):
        raise InputError(f"cluster_file: stream must be True, False or None, got {stream!r}")
    if isinstance(binning, (bool, np.bool_)) or not isinstance(binning, (int, np.integer, str)) \
            or str(binning) not in ("1", "2", "4"):
        raise InputError(f"cluster_file: binning must be 1, 2 or 4, got {binning!r}")
    if not isinstance(overwrite, (bool, np.bool_)):
        raise InputError(f"cluster_file: overwrite must be True or False, got {overwrite!r}")


def cluster_file(in_ref, out_path, *, n_clusters: int, algorithm: str = "sbe", batch_size: int = 1000,
                 n_init: int = 1, random_state: int = 0, init: str = "random", n_outer: int = 100,
                 n_inner: int = 10, gamma0: float | None = None, n_steps: int | None = None, max_iter: int = 300,
                 dtype=None, stream: bool | None = None, transform: str = "none", detector_mask=None,
                 binning: int = 1, normalize: str = "none", sampling: str = "auto", out_format: str = "hdf5",
                 overwrite: bool = False, device: Any = None, progress: Any = None, config: dict | None = None,
                 executor: Any = None):
    """k-means of the rows of a dataset, written to ``out_path`` (the ``fastem cluster`` command).

    Parameters
    ----------
    in_ref : str or path
        ``FILE.h5:/dataset`` (or any format :func:`fastem.io.inputs.open_dataset` reads) holding
        (N, d) points, (N, ky, kx) patterns or a (Ny, Nx, ky, kx) 4D-STEM scan, real numbers.
    out_path : str or path
        The output (layout: the module docstring); never an input, replaced only with ``overwrite``.
    n_clusters, algorithm, batch_size, n_init, random_state, init, n_outer, n_inner, gamma0, n_steps, max_iter, dtype, transform, normalize, sampling :
        As :class:`~fastem.cluster.SBEKMeans` (``dtype=None``: float32 data stays float32, else float64).
    stream : bool or None
        Read mini-batches from disk (an HDF5 dataset only) or load the dataset first; ``None``:
        stream when it is over :data:`STREAM_ABOVE_BYTES`.
    detector_mask : None, ndarray (ky, kx) or ``"FILE:/dataset"``
        Nonzero = detector pixel hidden.
    binning : {1, 2, 4}
        Detector binning of both pattern axes.
    out_format : {"hdf5", "emd", "mrc", "tiff", "hspy"}
        Other formats than HDF5 hold the centroids as images (through an HDF5 staging file).
    device : Device or str, optional
        Where to compute a loaded dataset (:func:`fastem.backend.resolve_device`); a streamed one
        is computed on the CPU.
    progress : tqdm-like object or callable, optional
        Steps reported as :class:`~fastem.cluster.SBEKMeans` does; an object whose ``total`` is
        ``None`` gets :meth:`~fastem.cluster.SBEKMeans.progress_total` first.
    config : dict, optional
        The configuration recorded in the provenance (default: these arguments, with the
        command's keys ``k``, ``batch``, ``runs``, ``seed``, ``outer``, ``inner``, ``steps``, ``bin``).
    executor : fastem.executor.Executor, optional
        An HDF5 dataset only: Lloyd's full-data passes, and every SBE / mini-batch step (batches
        drawn uniformly across the partitions), run on its workers
        (:mod:`fastem.cluster.distributed`); the data is streamed (``stream`` must not be False).

    Returns
    -------
    SBEKMeans
        The fitted model (what was written).

    Raises
    ------
    InputError
        A bad argument (the message names the parameter; :func:`cli_message` names the flag), a
        missing file or dataset, data of the wrong shape or type, NaN / inf in the data.
    OutputExistsError, OutputBusyError, OutputWriteError
        An existing output without ``overwrite``, another process writing it, a full disk.
    NonFiniteResultError
        The fit diverged (nothing is written).
    """
    import h5py

    from fastem.backend import resolve_device
    from fastem.io import check_output, output_lock
    from fastem.io.inputs import open_dataset
    from fastem.io.outputs import staged_output

    from .estimator import SBEKMeans
    from .source import check_readable, load_hdf5_filters

    _check_arguments(out_format, stream, binning, overwrite)
    b = int(binning)
    mask_ref = detector_mask if isinstance(detector_mask, (str, bytes, os.PathLike)) else None
    if config is None:
        config = {"input": str(in_ref), "k": n_clusters, "algorithm": algorithm, "batch": batch_size,
                  "runs": n_init, "seed": random_state, "init": init, "outer": n_outer, "inner": n_inner,
                  "gamma0": gamma0, "steps": n_steps, "max_iter": max_iter,
                  "dtype": "auto" if dtype is None else str(np.dtype(dtype)) if not isinstance(dtype, str) else dtype,
                  "transform": transform, "detector_mask": None if mask_ref is None else os.fsdecode(mask_ref),
                  "bin": b, "normalize": normalize, "sampling": sampling}
    check_output(out_path, overwrite=overwrite, inputs=[in_ref])
    mask = _load_mask(detector_mask)
    mask_label = os.fsdecode(mask_ref) if mask_ref is not None else "array"
    model = SBEKMeans(n_clusters, algorithm=algorithm, init=init, n_init=n_init, batch_size=batch_size,
                      n_outer=n_outer, n_inner=n_inner, gamma0=gamma0, n_steps=n_steps, max_iter=max_iter,
                      random_state=random_state, dtype=dtype, progress=progress, transform=transform,
                      detector_mask=mask, binning=b, normalize=normalize, sampling=sampling)
    model._check_params()   # a bad parameter is refused before any file is opened
    with output_lock(out_path):
        device = resolve_device(device)
        with open_dataset(in_ref) as (ds, where):  # HDF5 streamed; EMD, MRC, TIFF, DM, ... read whole
            if isinstance(ds, h5py.Dataset):
                load_hdf5_filters()
                check_readable(ds, where)
            if not isinstance(ds, h5py.Dataset) or ds.ndim not in (2, 3, 4):
                raise InputError(f"{where}: expected (N, d) points, (N, ky, kx) patterns or a (Ny, Nx, ky, kx) "
                                 f"4D-STEM scan, got shape {getattr(ds, 'shape', None)}")
            if (mask is not None or b != 1) and ds.ndim == 2:
                raise InputError(f"cluster_file: {where}: detector_mask and binning need patterns ((N, ky, kx) or "
                                 f"(Ny, Nx, ky, kx)), not (N, d) points")
            if mask is not None and np.shape(mask) != tuple(ds.shape[-2:]):
                raise InputError(f"cluster_file: detector_mask {mask_label}: shape {np.shape(mask)} but the patterns "
                                 f"of {where} are {tuple(ds.shape[-2:])}")
            if ds.ndim >= 3 and (ds.shape[-1] % b or ds.shape[-2] % b):
                raise InputError(f"cluster_file: binning {b} does not divide the pattern shape "
                                 f"{tuple(ds.shape[-2:])} of {where}")
            image_shape = tuple(s // b for s in ds.shape[-2:]) if ds.ndim >= 3 else None
            input_info = {"attrs": dict(ds.attrs), "shape": ds.shape, "dtype": ds.dtype, "source": where}
            from fastem.executor import InlineExecutor

            if executor is not None and not isinstance(executor, InlineExecutor):
                if not isinstance(ds, h5py.Dataset) or stream is False:
                    raise InputError(f"executor: {where} must be an HDF5 dataset read from disk by the workers "
                                     f"(stream must not be False)")
                stream = True
            if stream is None:
                stream = ds.size * ds.dtype.itemsize > STREAM_ABOVE_BYTES
            if ds.dtype.kind not in "fiub":
                raise InputError(f"{where}: expected real numbers, got dtype {ds.dtype}")
            data = ds if stream else ds[()]
            config["stream"] = bool(stream)
            model.set_params(device=None if stream else device)
            if progress is not None and getattr(progress, "total", 0) is None:
                progress.total = model.progress_total()
                if callable(getattr(progress, "refresh", None)):
                    progress.refresh()
            try:
                model.fit(data if stream or not device.is_gpu else device.xp.asarray(data), name=where,
                          executor=executor)
            except InputError as exc:
                text = str(exc)
                raise InputError(text if where in text else f"{where}: {text}") from None
        with staged_output(out_path, out_format, "cluster", overwrite=overwrite, inputs=[in_ref]) as target:
            write_clusters(target, model, config=config, image_shape=image_shape, overwrite=overwrite,
                           inputs=[in_ref], input_info=input_info)
    return model
