"""Tomography from a file into a Data Exchange volume: what ``fastem tomo`` runs.

Input (:func:`read_series`)
    ``FILE.h5`` (Data Exchange: ``/exchange/data``, ``/exchange/theta`` or ``/exchange/angles``,
    optional mask, flat and dark fields), ``FILE.h5:/dataset`` (projections (n, rows, cols) from
    any dataset; angles from ``angles=`` or, when the file is Data Exchange, from its own angle
    dataset), or an MRC stack (``.mrc``/``.st``/``.mrcs``/``.ali``) with ``<stem>.tlt`` beside it
    (or ``angles=``). Complex, non-numeric and float32-overflowing values are refused with a
    message naming the file and dataset.

Output (:func:`fastem.io.write_dxchange_volume`, atomic)
    ``/exchange/data`` the volume (z, y, x) float32, ``/process/fastem`` provenance, results and,
    while the run is in progress, the checkpoint.

Safety
    The whole run holds :func:`fastem.io.output_lock` on the output: a second run to the same
    output fails at once. The first write never replaces a file someone else created meanwhile
    (no-replace link) unless ``overwrite``/``resume``. Every file read (data, angle file) is an
    input that is never overwritten. Every checkpoint stores a fingerprint of the inputs
    (content digests of projections, angles, mask) and of every parameter that affects the result;
    ``resume=True`` refuses any mismatch by name (the iteration count and the checkpoint cadence
    may change); a finished output keeps that fingerprint, so ``--resume --iterations M``
    extends a finished run exactly (and with the same count rewrites the same volume). Nothing non-finite is written: a diverged run fails with what to try. Before
    anything large is allocated, the run's memory (volume, data, padded spectra, plans, solver
    buffers) is estimated and a run that cannot fit is refused with the estimate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetNotFoundError, InputError

__all__ = ["read_series", "read_angles", "tomo_file", "SeriesInput", "RESUME_FLAGS"]

#: CLI names of the fingerprinted parameters and inputs (messages of a refused resume)
#: tomo_file's parameters -> the ``fastem tomo`` flags (for :func:`cli_message`)
FLAGS = {"algorithm": "--algorithm", "iterations": "--iterations", "step": "--step", "projector": "--projector",
         "oversampling": "--oversampling", "positivity": "--positivity/--no-positivity", "thickness": "--thickness",
         "angles_convention": "--angles-convention", "center": "--center", "noise_level": "--noise-level",
         "refine_angles": "--refine-angles", "refine_iterations": "--refine-iterations",
         "checkpoint_every": "--checkpoint-every", "resume": "--resume", "overwrite": "--overwrite",
         "prior_weight": "--prior-weight", "prior": "--prior", "executor": "--scheduler", "in_process_slabs": "--slabs",
         "weights": "--weights",
         "step_normalisation": "--step-normalisation"}


def _read_weights(weights, series, where):
    """The per-pixel weights ``(n, rows, cols)`` float64 and how they were given (for the record)."""
    from .. import io

    shape = tuple(np.shape(series.projections))
    if isinstance(weights, str) and weights == "poisson":
        data = np.asarray(series.projections, dtype=np.float64)
        if series.mask is not None:
            data = np.where(np.asarray(series.mask, bool), data, 0.0)
        if (data < 0).any():
            raise InputError(f"tomo_file: weights 'poisson' needs counts >= 0, but {where} has negative values "
                             f"(min {float(data.min()):.4g}): give weights from a file instead")
        return 1.0 / np.maximum(data, 1.0), "poisson: 1 / max(counts, 1)"
    if isinstance(weights, str):
        try:
            w = io.read_dataset(weights, dtype=np.float64, ndim=3)
        except InputError as exc:
            raise type(exc)(f"tomo_file: weights {weights}: {exc}") from None
        source = str(weights)
    else:
        w = np.asarray(weights, dtype=np.float64)
        source = "array"
    if w.shape != shape:
        raise InputError(f"tomo_file: weights {source}: shape {w.shape} but the projections of {where} are {shape}")
    if not np.all(np.isfinite(w)) or (w < 0).any():
        raise InputError(f"tomo_file: weights {source}: must be finite and >= 0 (0 = unmeasured)")
    if not (w > 0).any():
        raise InputError(f"tomo_file: weights {source}: every pixel has weight 0; nothing to reconstruct")
    return w, source


def cli_message(message: str) -> str:
    """A :func:`tomo_file` error with its parameter names replaced by the ``fastem tomo`` flags."""
    from ..errors import name_flags

    translated = name_flags(message, "tomo_file", FLAGS)
    return message if translated is None else translated


RESUME_FLAGS = {"algorithm": "--algorithm", "step": "--step", "projector": "--projector",
                "oversampling": "--oversampling", "positivity": "--positivity/--no-positivity",
                "thickness": "--thickness", "volume_shape": "volume shape", "projections": "IN (projections)",
                "angles": "angles", "mask": "mask", "center": "--center", "angles_convention": "--angles-convention",
                "step_normalisation": "--step-normalisation"}


@dataclass
class SeriesInput:
    """A tilt series read for reconstruction, with where it came from."""

    series: Any  # fastem.io.TiltSeriesData
    where: str
    files: list = field(default_factory=list)


def _mrc_suffixes():
    from ..io.mrc import MRC_SUFFIXES

    return MRC_SUFFIXES


def read_angles(spec, n_projections: int, *, what: str = "--angles") -> tuple[np.ndarray, Path]:
    """Euler ZYX angles (n, 3) in degrees from ``FILE.tlt`` or ``FILE.h5[:/dataset]`` ((n,) tilts or (n, 3)).

    Returns the angles and the file read.
    """
    from .. import io
    from ..geometry import angles_from_tilts
    from ..io.hdf5 import is_hdf5, require_file

    path, dataset = io.parse_ref(str(spec))
    require_file(path, "angle file")
    if dataset is None and not is_hdf5(path):
        theta = io.read_tlt(path)
        angles, where = angles_from_tilts(theta), str(path)
    else:
        raw = io.read_dataset(str(spec), ndim=(1, 2))
        where = str(spec)
        if raw.dtype.kind not in "biuf":
            raise InputError(f"{what} {where}: angles must be real numbers in degrees, got dtype {raw.dtype}")
        raw = io.angles_to_degrees(raw, _attrs(path, dataset), what=where)
        if raw.ndim == 2 and raw.shape[1] != 3:
            raise InputError(f"{what} {where}: expected (n,) tilts or (n, 3) Euler ZYX angles, got shape {raw.shape}")
        if raw.size == 0:
            raise InputError(f"{what} {where}: empty angle set")
        angles = angles_from_tilts(raw) if raw.ndim == 1 else np.asarray(raw, dtype=np.float64)
    if angles.shape[0] != n_projections:
        raise InputError(f"{what} {where}: {angles.shape[0]} angle(s) but {n_projections} projection(s)")
    return angles, path


def _attrs(path: Path, dataset) -> dict:
    """The attributes (``units``) of ``dataset`` in ``path`` (empty when not found)."""
    import h5py

    from ..io.hdf5 import open_h5

    if dataset is None:
        return {}
    with open_h5(path) as f:
        obj = f.get(dataset)
        return dict(obj.attrs) if isinstance(obj, h5py.Dataset) else {}


def _dx_angles(path: Path, n: int):
    """The Data Exchange angles of ``path`` if it has any, else ``None``."""
    import h5py

    from ..io.dxchange import read_dxchange_angles
    from ..io.hdf5 import open_h5

    with open_h5(path) as f:
        ex = f.get("exchange")
        if not isinstance(ex, h5py.Group) or not any(isinstance(ex.get(k), h5py.Dataset) for k in ("angles", "theta")):
            return None
        return read_dxchange_angles(f, path, n)


def read_series(spec, *, angles=None) -> SeriesInput:
    """Read the tilt series named by ``spec`` (``FILE``, ``FILE.h5:/dataset`` or an MRC stack).

    Parameters
    ----------
    spec : str or path
    angles : str or path, optional
        ``FILE.tlt`` or ``FILE.h5:/dataset`` with the tilt angles (degrees): required for a
        dataset of a file without Data Exchange angles, optional for an MRC stack (default
        ``<stem>.tlt`` beside it), refused for a Data Exchange file (it carries its own).
    """
    from .. import io
    from ..io.dxchange import TiltSeriesData, check_real_values
    from ..io.hdf5 import is_hdf5, require_file

    if spec is None:
        raise InputError("input is required: FILE, FILE.h5:/dataset or an MRC stack, got None")
    path, dataset = io.parse_ref(str(spec))
    p = require_file(path, "input file")
    files = [p]
    if dataset is not None:
        if not is_hdf5(p):
            raise InputError(f"{p}: not an HDF5 file, so '{dataset}' cannot be read from it")
        where = f"{p}:{dataset}"
        proj = io.read_dataset(str(spec), ndim=3)
        check_real_values(proj, where)
        if proj.shape[0] == 0:
            raise InputError(f"{where}: no projections (shape {proj.shape})")
        theta = None
        if angles is not None:
            ang, angle_file = read_angles(angles, proj.shape[0])
            files.append(angle_file)
        else:
            found = _dx_angles(p, proj.shape[0])
            if found is None:
                raise InputError(f"{where}: angles are needed: pass --angles FILE.tlt or --angles FILE.h5:/dataset "
                                 "(tilts in degrees, or (n, 3) Euler ZYX angles)")
            ang, theta = found
        return SeriesInput(TiltSeriesData(projections=proj, angles=ang, theta=theta, path=p), where, files)
    from ..io.inputs import RSCIIO_SUFFIXES

    if p.suffix.lower() in (*RSCIIO_SUFFIXES, ".emd", ".tif", ".tiff"):  # DM, Velox/NCEM EMD, SER, MRCZ, HSPY, TIFF
        return _image_series(p, angles, files)
    if is_hdf5(p):
        if angles is not None:
            raise InputError(f"--angles: {p} is a Data Exchange file that carries its own angles; to use other "
                             f"angles, give the projections as {p}:/exchange/data")
        return SeriesInput(io.read_dxchange(p), f"{p}:/exchange/data", files)
    if p.suffix.lower() in _mrc_suffixes():
        data, _ = io.read_mrc(p)
        check_real_values(data, str(p))
        if data.ndim == 2:
            data = data[None]
        io.check_ndim(data, 3, str(p))
        if angles is not None:
            ang, angle_file = read_angles(angles, data.shape[0])
        else:
            from ..io.mrc import find_tlt

            angle_file = find_tlt(p)
            ang, _ = read_angles(angle_file, data.shape[0], what="tilt file")
        files.append(angle_file)
        proj = data.astype(np.float32)
        if not np.all(np.isfinite(proj)):
            io.check_finite(proj, str(p), policy="error", frame_label="projection")
        return SeriesInput(TiltSeriesData(projections=proj, angles=ang, theta=ang[:, 1].copy(), path=p), str(p),
                           files)
    raise InputError(f"{p}: unknown tilt-series format (expected Data Exchange HDF5, FILE.h5:/dataset or an MRC "
                     f"stack {'/'.join(_mrc_suffixes())})")


def _image_series(p, angles, files) -> SeriesInput:
    """A tilt series from any image-stack format of :func:`fastem.io.read_image_data`; angles from
    ``--angles``, else ``<stem>.tlt`` / ``.rawtlt`` beside it, else the file's metadata (a tilt
    navigation axis in degrees, FEI extended headers)."""
    from .. import io
    from ..geometry import angles_from_tilts
    from ..io.dxchange import TiltSeriesData, check_real_values

    img = io.read_image_data(p)
    data = img.data[None] if img.data.ndim == 2 else img.data
    check_real_values(data, str(p))
    io.check_ndim(data, 3, str(p))
    n = data.shape[0]
    if angles is not None:
        ang, angle_file = read_angles(angles, n)
        files.append(angle_file)
    elif any(p.with_suffix(s).exists() for s in (".tlt", ".rawtlt")):
        angle_file = io.find_tlt(p)
        ang, _ = read_angles(angle_file, n, what="tilt file")
        files.append(angle_file)
    elif img.tilt_angles is not None and img.tilt_angles.size == n and np.all(np.isfinite(img.tilt_angles)):
        ang = angles_from_tilts(np.asarray(img.tilt_angles, np.float64))
    else:
        raise InputError(f"{p}: no tilt angles in the file's metadata and no {p.with_suffix('.tlt').name} beside it; "
                         f"pass --angles FILE.tlt")
    proj = data.astype(np.float32)
    if not np.all(np.isfinite(proj)):
        io.check_finite(proj, str(p), policy="error", frame_label="projection")
    return SeriesInput(TiltSeriesData(projections=proj, angles=ang, theta=ang[:, 1].copy(), path=p), str(p), files)


def _volume_shape(series, thickness, center=None, convention="fastem"):
    from .problem import default_volume_shape
    from .projection_geometry import thin_film_shape

    detector = series.projections.shape[1:]
    return thin_film_shape(detector, series.angles, thickness, center=center, convention=convention) \
        if thickness is not None else default_volume_shape(detector)


def check_memory(series, *, algorithm: str, projector: str, oversampling, thickness, device, where: str,
                 center=None, convention: str = "fastem", step_normalisation: str = "auto",
                 positivity: bool = True, prior: str = "none", prior_weight="auto", weights: bool = False) -> dict:
    """Refuse (one line, estimate vs available) a run that cannot fit; returns the estimate."""
    from .memory import check_run_memory, estimate_run_bytes
    from .operators import FourierSliceProjector
    from .projection_geometry import ProjectionGeometry

    vshape = _volume_shape(series, thickness, center, convention)
    geometry = ProjectionGeometry(vshape, series.projections.shape[1:], series.angles, center=center,
                                  convention=convention)
    use_fst = algorithm == "resire" and projector == "fst"
    hint = ("; reconstruct a thinner slab (--thickness)"
            + (", use --projector linear or a smaller --oversampling" if use_fst else "")
            + " or bin the projections")
    what = f"{where}: {algorithm} of a {vshape[0]}x{vshape[1]}x{vshape[2]} volume from " \
           f"{series.projections.shape[0]} projections"
    fst = 0
    if use_fst:
        try:
            fst = FourierSliceProjector.estimate_bytes(geometry, oversampling, device)
        except InputError as exc:
            raise InputError(f"{what}: {exc}{hint}") from None
    held = series.projections.nbytes + (0 if series.mask is None else series.mask.nbytes)
    from .resire import step_normalisation_for

    blocked = series.mask is not None and not np.all(series.mask)
    voxel = step_normalisation_for(step_normalisation, blocked, positivity) == "voxel"
    regularised = algorithm == "resire" and (prior != "none" or bool(weights))
    search = regularised and prior != "none" and isinstance(prior_weight, str)
    est = estimate_run_bytes(vshape, series.projections.shape, algorithm=algorithm, projector=projector,
                             fst_bytes=fst, device=device, input_bytes=held, voxel_steps=voxel and not regularised,
                             regularised=regularised, rfree=search, search=search)
    check_run_memory(est, device, what=what, hint=hint)
    return est


def tomo_file(in_spec, out_path, *, algorithm: str = "resire", iterations: int = 100, step: float = 2.0,
              projector: str = "fst", oversampling=2.0, positivity: bool = True, thickness: int | None = None,
              angles=None, checkpoint_every: int = 0, resume: bool = False, overwrite: bool = False,
              device: Any = None, command: str | None = None, progress: Any = None, center=None,
              angles_convention: str = "thesis", noise_level: float | None = None, on_center=None,
              refine_angles: int = 0, refine_iterations: int = 100, on_refine=None, prior: str = "none",
              prior_weight="auto", on_prior=None, executor=None, weights=None, step_normalisation: str = "auto",
              in_process_slabs: bool = False):
    """Reconstruct the tilt series ``in_spec`` into the Data Exchange volume ``out_path``.

    Parameters
    ----------
    in_spec : str or path
        ``FILE``, ``FILE.h5:/dataset`` or an MRC stack (:func:`read_series`).
    out_path : path
    algorithm : {"resire", "sirt", "fbp"}
    iterations, step, projector, oversampling, positivity, thickness :
        See :class:`fastem.tomo.Resire`, :class:`fastem.tomo.Sirt`, :func:`fastem.tomo.fbp`.
    step_normalisation : {"auto", "global", "voxel"}
        RESIRE's step: the thesis' scalar one or per voxel (:class:`fastem.tomo.Resire`; ``auto``:
        per voxel when the mask blocks pixels and positivity is on). Recorded in the output.
    angles : str, optional
        Angle file for a dataset or an MRC stack (:func:`read_series`).
    center : float or "auto", optional
        Detector column of the rotation axis (pixels; default the detector middle ``(cols-1)/2``);
        ``"auto"`` estimates it (:func:`fastem.tomo.find_center`, single-axis series) and calls
        ``on_center(estimate)`` with the :class:`~fastem.tomo.CenterEstimate`.
    angles_convention : {"thesis", "fastem"}
        How the file's angles map the volume to the detector (:class:`~fastem.tomo.ProjectionGeometry`):
        ``"thesis"`` (default: RESIRE/GENFIRE Euler angles, seed 004 eq. 3.4; for a single axis
        ASTRA's and TomoPy's theta) or ``"fastem"`` (``R`` instead of ``R^T``: theta negated).
    noise_level : float, optional
        Noise sigma in the data's units: stop RESIRE/SIRT by the discrepancy principle.
    refine_angles : int
        Rounds of angle and shift refinement before the final reconstruction
        (:func:`fastem.tomo.refine_alignment`, RESIRE ``linear`` with ``refine_iterations``
        iterations per round); the refined angles (``refined_angles``, the file's convention),
        shifts (``refined_shifts``, (du, dv) pixels) and the R-factor of every round followed by
        the final one (``refine_r_factors``) are written to the output's results. 0: none.
        ``on_refine(round, AlignmentResult)`` is called after every round.
    prior : {"none", "tv", "itv", "huber", "qggmrf"}
        ``resire`` only: minimise RESIRE's data term plus ``prior_weight`` times an edge-preserving
        prior (:mod:`fastem.tomo.regularised`, FISTA, docs/tomo_regularised.md); "none": plain RESIRE.
    prior_weight : float >= 0 or "auto"
        The prior's strength; ``"auto"`` picks it from the data (noise estimated from the measured
        pixels, weight by R-free on held-out pixels); ``on_prior(info)`` is called with the noise
        estimate and the chosen weight. Not combinable with resume/checkpoints yet.
    weights : "FILE.h5:/dataset", "poisson" or array (n, rows, cols), optional
        Per-pixel weights of the data term (0 = unmeasured, otherwise relative inverse variances;
        ``"poisson"``: ``1 / max(counts, 1)`` from the projections, which must then be counts >= 0).
        Zero-weight pixels influence nothing (not the gradient, the noise estimate, the automatic
        strength or the R-factor). Reconstructs with the weighted least-squares solver of
        :mod:`fastem.tomo.regularised` (``prior`` may be "none"); ``resire`` only, not with
        ``resume``/``checkpoint_every`` or an executor. A weights file is never overwritten.
    executor : fastem.executor.Executor, optional
        Reconstruct in slabs along the rotation axis on its workers
        (:func:`fastem.tomo.distributed.reconstruct_slabs`): single-axis series in an HDF5 dataset
        without flat/dark fields or mask, ``sirt``, ``fbp`` or ``resire`` with the ``linear``
        projector, a fixed iteration count; same volume as in one process.
    in_process_slabs : bool
        The same slabs one after the other in this process
        (:class:`fastem.tomo.distributed.InProcessSlabs`): the volume written by region, never
        whole in memory (one slab's work arrays at a time; the projections are read once for
        validation); the same conditions as ``executor``.
    checkpoint_every : int
        Rewrite the output with a resumable checkpoint every this many iterations (0: never).
    resume : bool
        Continue from the checkpoint in ``out_path`` (same inputs and parameters).
    overwrite : bool
        Replace an existing output.
    device, command :
        Device, command line for the provenance.
    progress : object with ``update(n)``, optional
        Told of every RESIRE/SIRT iteration (a resumed run first reports the iterations already
        done), e.g. the tqdm bar ``fastem tomo`` draws; the library draws none itself
        (:func:`fastem.tomo.solver.as_progress`).

    Returns
    -------
    (ReconstructionResult, dict)
        The result and the configuration written to the provenance.
    """
    from .. import io
    from ..backend import resolve_device
    from ._validate import as_bool, as_float, as_int
    from .solver import as_progress

    progress = as_progress(progress)
    if algorithm not in ("resire", "sirt", "fbp"):
        raise InputError(f"algorithm must be one of resire, sirt, fbp, got {algorithm!r}")
    if projector not in ("fst", "linear"):
        raise InputError(f"projector must be one of fst, linear, got {projector!r}")
    iterations = as_int(iterations, "iterations", minimum=1)
    checkpoint_every = as_int(checkpoint_every, "checkpoint_every", minimum=0)
    step = as_float(step, "step", positive=True)
    positivity = as_bool(positivity, "positivity")
    resume, overwrite = as_bool(resume, "resume"), as_bool(overwrite, "overwrite")
    if thickness is not None:
        thickness = as_int(thickness, "thickness", minimum=1)
    try:
        os3 = np.broadcast_to(np.asarray(oversampling, dtype=np.float64), (3,))
    except (TypeError, ValueError):
        os3 = np.full(3, np.nan)
    if not np.all(np.isfinite(os3)) or np.any(os3 < 1) or np.any(os3 > 8):
        raise InputError(f"oversampling must be a number (or 3 numbers) in [1, 8], got {oversampling!r}")
    if resume and algorithm == "fbp":
        raise InputError("tomo_file: resume: FBP is a single step; there is nothing to resume")
    from .projection_geometry import ANGLE_CONVENTIONS

    if angles_convention not in ANGLE_CONVENTIONS:
        raise InputError(f"tomo_file: angles_convention must be one of {', '.join(ANGLE_CONVENTIONS)}, "
                         f"got {angles_convention!r}")
    if center is not None and not (isinstance(center, str) and center == "auto"):
        try:
            center = float(center)
        except (TypeError, ValueError):
            raise InputError(f"tomo_file: center must be a detector column in pixels or 'auto', got {center!r}") from None
        if not np.isfinite(center):
            raise InputError(f"tomo_file: center must be a finite detector column, got {center!r}")
    if noise_level is not None:
        noise_level = as_float(noise_level, "noise_level", minimum=0.0)
    from .resire import STEP_NORMALISATIONS

    if step_normalisation not in STEP_NORMALISATIONS:
        raise InputError(f"tomo_file: step_normalisation must be one of {', '.join(STEP_NORMALISATIONS)}, "
                         f"got {step_normalisation!r}")
    refine_angles = as_int(refine_angles, "refine_angles", minimum=0)
    refine_iterations = as_int(refine_iterations, "refine_iterations", minimum=1)
    if refine_angles and algorithm == "fbp":
        raise InputError("tomo_file: refine_angles needs an iterative algorithm (resire or sirt), not fbp")
    if refine_angles and resume:
        raise InputError("tomo_file: refine_angles cannot be combined with resume (the refinement would be redone); "
                         "run without --resume")
    from .regularised import PRIORS

    if prior not in ("none", *PRIORS):
        raise InputError(f"prior must be one of none, {', '.join(PRIORS)}, got {prior!r}")
    if weights is not None:
        if algorithm != "resire":
            raise InputError(f"tomo_file: weights weight RESIRE's data term: use algorithm resire, not {algorithm}")
        if isinstance(weights, str) and weights != "poisson" and ":" not in weights:
            raise InputError(f"tomo_file: weights must be FILE.h5:/dataset or 'poisson', got {weights!r}")
    if prior != "none":
        if algorithm != "resire":
            raise InputError(f"tomo_file: prior {prior!r} regularises RESIRE: use algorithm resire, not {algorithm}")
        if not (isinstance(prior_weight, str) and prior_weight == "auto"):
            prior_weight = as_float(prior_weight, "prior_weight", minimum=0.0)
    from fastem.executor import InlineExecutor

    if executor is not None and isinstance(executor, InlineExecutor):
        executor = None
    if as_bool(in_process_slabs, "in_process_slabs"):
        from .distributed import InProcessSlabs

        if executor is not None:
            raise InputError("tomo_file: in_process_slabs runs the slabs in this process and executor on workers: "
                             "pass one of them")
        executor = InProcessSlabs()
    who = "in_process_slabs" if in_process_slabs else "executor"
    if executor is not None:
        bad = [name for name, on in (("resume", resume), ("checkpoint_every", checkpoint_every),
                                     ("refine_angles", refine_angles), ("prior", prior != "none"),
                                     ("noise_level", noise_level is not None), ("center='auto'", center == "auto"))
               if on]
        if weights is not None:
            bad.append("weights")
        if bad:
            raise InputError(f"tomo_file: {who} (slabs) cannot be combined with {', '.join(bad)}")
    if in_spec is None or out_path is None:
        raise InputError("an input and an output are required")
    out = Path(out_path)
    in_file = io.parse_ref(str(in_spec))[0]
    guard = [in_file] + ([io.parse_ref(str(angles))[0]] if angles is not None else [])
    if isinstance(weights, str) and weights != "poisson":
        guard.append(io.parse_ref(weights)[0])
    io.check_output(out, overwrite=overwrite or resume, inputs=guard)
    with io.output_lock(out):
        return _run_locked(in_spec, out, algorithm=algorithm, iterations=iterations, step=step, projector=projector,
                           oversampling=oversampling, positivity=positivity, thickness=thickness, angles=angles,
                           checkpoint_every=checkpoint_every, resume=resume, overwrite=overwrite,
                           device=resolve_device(device), command=command, progress=progress, guard=guard,
                           center=center, convention=angles_convention, noise_level=noise_level,
                           on_center=on_center, refine_angles=refine_angles, refine_iterations=refine_iterations,
                           on_refine=on_refine, prior=prior, prior_weight=prior_weight, on_prior=on_prior,
                           weights=weights, step_normalisation=step_normalisation,
                           executor=executor)


def _fingerprint(series, *, algorithm, step, projector, oversampling, positivity, thickness, volume_shape,
                 center, convention, refine=(0, 0), regularised=None, weights=None, step_normalisation="global"):
    from .. import io

    params = {"algorithm": algorithm, "positivity": bool(positivity), "thickness": thickness,
              "volume_shape": list(volume_shape), "center": float(center), "angles_convention": convention}
    if regularised is not None:      # prior, the requested strength, its parameters, the weights' source
        params["regularised"] = regularised
    if refine[0]:
        params["refine_angles"] = [int(refine[0]), int(refine[1])]
    if algorithm == "resire":
        params.update(step=float(step), projector=projector)
        if step_normalisation != "global":  # absent for the thesis' scalar step (as before it existed)
            params["step_normalisation"] = step_normalisation
        if projector == "fst":
            params["oversampling"] = [float(o) for o in np.broadcast_to(np.asarray(oversampling, float), (3,))]
    arrays = {"projections": series.projections, "angles": series.angles, "mask": series.mask}
    if weights is not None:
        arrays["weights"] = weights
    return io.run_fingerprint(arrays, params)


def _resume_state(out: Path) -> dict:
    """The state to continue from: the checkpoint of a run in progress, or a finished run's output.

    A finished output keeps its volume (``/exchange/data``), R-factor history, iteration count and
    the run's fingerprint (``results["resume"]``), which is all a resume needs: ``--resume`` with
    a larger ``--iterations`` extends a finished run exactly as if it had run longer.
    """
    from .. import io

    if not out.exists():
        raise DatasetNotFoundError(f"tomo_file: resume: {out} does not exist (run with checkpoint_every first)")
    saved = io.read_dxchange_volume(out)
    if saved.checkpoint is not None:
        return saved.checkpoint
    finished = saved.results.get("resume")
    if not isinstance(finished, dict) or "r_factor_history" not in saved.results or "iterations" not in saved.results:
        return io.load_checkpoint_file(out, io.DX_CHECKPOINT)  # raises: no checkpoint
    state = {"algorithm": finished.get("algorithm"), "iteration": int(saved.results["iterations"]),
             "volume": saved.volume, "r_factor_history": np.asarray(saved.results["r_factor_history"]),
             "fingerprint": finished.get("fingerprint")}
    if finished.get("prior_weight") is not None:
        state["config"] = {"prior_weight": float(finished["prior_weight"])}
    return state


def _run_slabs(in_spec, src, series, where, inputs, write, *, algorithm, iterations, step, projector, positivity,
               thickness, center, convention, executor, progress, step_normalisation="auto"):
    """:func:`tomo_file` with the volume reconstructed in slabs on ``executor``'s workers (or one
    after the other here, :class:`~fastem.tomo.distributed.InProcessSlabs`)."""
    import h5py

    from .. import io
    from .distributed import InProcessSlabs, SlabJob, reconstruct_slabs

    who = "in_process_slabs" if isinstance(executor, InProcessSlabs) else "executor"

    path, dataset = io.parse_ref(str(in_spec))
    if not io.hdf5.is_hdf5(path):
        raise InputError(f"tomo_file: {where}: {who} needs an HDF5 input the slab tasks can read (got {path})")
    with h5py.File(path, "r") as f:
        dataset = dataset or ("/exchange/data" if "exchange/data" in f else None)
        if dataset is None:
            raise InputError(f"tomo_file: {where}: {who} needs FILE.h5:/dataset or a Data Exchange file")
        if any(k in f for k in ("exchange/data_white", "exchange/data_dark")):
            raise InputError(f"tomo_file: {where}: {who}: the slab tasks read raw rows: flat/dark-field correction "
                             f"is not applied there; correct the data first or run without {who}")
    if series.mask is not None and not np.all(series.mask):
        raise InputError(f"tomo_file: {where}: {who}: masked projections are not split into slabs yet")
    from .projection_geometry import effective_rotations

    R = effective_rotations(np.asarray(series.angles, np.float64), convention)
    if not np.allclose(R[:, 1, :], [0.0, 1.0, 0.0], atol=1e-9):
        raise InputError(f"tomo_file: {where}: {who}: slabs need a single tilt axis (rotations about y); this series "
                         f"is not separable along y: run it without {who}")
    angles = np.rad2deg(np.arctan2(R[:, 0, 2], R[:, 0, 0]))    # tilts in the fastem sign (as single_axis_tilts)
    options = {"positivity": positivity, "center": center, "convention": "fastem", "thickness": thickness}
    if algorithm != "fbp":
        options["iterations"] = iterations
    if algorithm == "resire":
        options.update(projector=projector, step=step, step_normalisation=step_normalisation)
    job = SlabJob(f"{path}:{dataset}", angles, algorithm, {k: v for k, v in options.items() if v is not None})
    open_writer, provenance, out_path = write
    n, rows, cols = series.projections.shape
    nz = cols                                     # as reconstruct_slabs (each slab's volume is (cols, r, cols))
    with open_writer((nz, rows, cols)) as writer:
        try:
            res = reconstruct_slabs(executor, job, out=writer,
                                    progress=_RowsToIterations(progress, rows, iterations))
        except InputError as exc:
            raise InputError(f"tomo_file: {where}: {who}: {exc}") from None
        from .projection_geometry import grid_centre

        cfg = {"algorithm": algorithm, "input": where, "iterations_requested": iterations, "slabs": res["slabs"],
               "r_factor": "mean of the slabs' R_F (results/slab_r_factors), not the whole series' eq. 3.9",
               "scheduler": executor.describe(), **{k: v for k, v in options.items() if v is not None}}
        cfg["center"] = float(grid_centre(cols) if center is None else center)    # the axis column used
        results = {"slab_r_factors": np.asarray(res["r_factor"], np.float64), "iterations": iterations}
        writer.finish(provenance(cfg), results)
    from .solver import ReconstructionResult

    finite = [r for r in res["r_factor"] if np.isfinite(r)]
    volume = io.VolumeOnDisk(out_path, "/exchange/data", (nz, rows, cols))
    return ReconstructionResult(volume, np.zeros(0), float(np.mean(finite)) if finite else float("nan"),
                                iterations if algorithm != "fbp" else 0, algorithm, cfg), cfg


class _RowsToIterations:
    """Turn slab completions (rows) into the iteration units of the caller's progress object."""

    def __init__(self, progress, rows: int, iterations: int):
        self.progress, self.rows, self.iterations, self.done = progress, max(1, rows), iterations, 0

    def update(self, k: int) -> None:
        if self.progress is None:
            return
        before = self.done * self.iterations // self.rows
        self.done += k
        self.progress.update(self.done * self.iterations // self.rows - before)


def _run_locked(in_spec, out: Path, *, algorithm, iterations, step, projector, oversampling, positivity, thickness,
                angles, checkpoint_every, resume, overwrite, device, command, progress, guard, center, convention,
                noise_level, on_center, refine_angles=0, refine_iterations=100, on_refine=None, prior="none",
                prior_weight="auto", on_prior=None, executor=None, weights=None, step_normalisation="auto"):
    from .. import io
    from . import Resire, Sirt, TomoProblem, fbp

    io.check_output(out, overwrite=overwrite or resume, inputs=guard)
    state = _resume_state(out) if resume else None
    src = read_series(in_spec, angles=angles)
    series, where, inputs = src.series, src.where, src.files
    weights_arr, weights_source = None, None
    if weights is not None:
        weights_arr, weights_source = _read_weights(weights, series, where)
        if isinstance(weights, str) and weights != "poisson":
            inputs = [*inputs, io.parse_ref(weights)[0]]
        zero = weights_arr == 0                  # unmeasured: masked, so their values are never read
        series.mask = ~zero if series.mask is None else (np.asarray(series.mask, bool) & ~zero)
    estimate = None
    if center == "auto":
        from .centre import find_center

        method = "com" if series.mask is None or np.all(series.mask) else "reprojection"
        try:
            estimate = find_center(series.projections, series.angles, method=method, convention=convention,
                                   mask=series.mask, device=device)
        except InputError as exc:
            raise InputError(f"tomo_file: {where}: center auto: {exc}") from None
        center = estimate.center
        if on_center is not None:
            on_center(estimate)
    if executor is None:      # with workers the volume never sits here: slabs are sized to their memory
        check_memory(series, algorithm=algorithm, projector=projector, oversampling=oversampling,
                     thickness=thickness, device=device, where=where, center=center, convention=convention,
                     step_normalisation=step_normalisation, positivity=positivity, prior=prior,
                     prior_weight=prior_weight, weights=weights_arr is not None)
    hint = "try a smaller --step" if algorithm == "resire" else "check the data and the angles"
    written = [False]

    def write(volume, cfg, results, checkpoint=None):
        io.require_finite_result(volume, f"the {algorithm} volume", hint=hint)
        prov = io.provenance(command=command, config=cfg, device=device)
        io.write_dxchange_volume(out, volume, provenance=prov, results=results, checkpoint=checkpoint,
                                 overwrite=overwrite or resume or written[0], inputs=inputs)
        written[0] = True

    def open_writer(shape):
        """The output written slab by slab as the workers finish (the volume is never gathered)."""
        return io.dxchange_volume_writer(out, shape, overwrite=overwrite or resume, inputs=inputs,
                                         what=f"the {algorithm} volume", hint=hint)

    def provenance(cfg):
        return io.provenance(command=command, config=cfg, device=device)

    if executor is not None:
        return _run_slabs(in_spec, src, series, where, inputs, (open_writer, provenance, out), algorithm=algorithm,
                          iterations=iterations,
                          step=step, projector=projector, positivity=positivity, thickness=thickness,
                          center=center, convention=convention, executor=executor, progress=progress,
                          step_normalisation=step_normalisation)
    alignment = None
    try:
        if refine_angles:
            from .refine import refine_alignment

            alignment = refine_alignment(series.projections, series.angles, rounds=refine_angles,
                                         iterations=refine_iterations, projector="linear", step=step,
                                         positivity=positivity, mask=series.mask, thickness=thickness,
                                         center=center, convention=convention, device=device, callback=on_refine)
        if algorithm == "fbp":
            result = fbp(series.projections, series.angles, mask=series.mask, thickness=thickness,
                         positivity=positivity, device=device, center=center, convention=convention)
        else:
            problem = TomoProblem(series.projections, series.angles if alignment is None else alignment.angles,
                                  thickness=thickness, mask=series.mask, device=device, center=center,
                                  convention=convention, shifts=None if alignment is None else alignment.shifts)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    if algorithm != "fbp":
        prior_info = None
        if prior != "none" or weights_arr is not None:
            from .regularised import prepare_regularised

            requested_weight = prior_weight
            resolved = None if state is None else (state.get("config") or {}).get("prior_weight")
            if state is not None and resolved is not None and prior != "none":
                prior_weight = float(resolved)       # the checkpoint's weight (an automatic one is not searched again)
            try:
                # an automatic run stops by R-free; resumed, it keeps doing so with its resolved weight
                solver, prior_info = prepare_regularised(problem, prior=prior, prior_weight=prior_weight,
                                                         noise_level=noise_level, projector=projector,
                                                         oversampling=oversampling, positivity=positivity,
                                                         weights=weights_arr,
                                                         rfree_stop=prior != "none" and requested_weight == "auto")
            except InputError as exc:
                raise InputError(f"{where}: {exc}") from None
            prior_info = dict(prior_info, weight=float(solver.weight))
            if weights_source is not None:
                prior_info["weights"] = weights_source
            if on_prior is not None and prior != "none":
                on_prior(prior_info)
            noise_level = None          # used for the weight; the discrepancy stop is for plain RESIRE
        elif algorithm == "resire":
            solver = Resire(problem, projector=projector, oversampling=oversampling, step=step, positivity=positivity,
                            step_normalisation=step_normalisation)
        else:
            solver = Sirt(problem, positivity=positivity)
        # the oversampling in use (fst lowers it when memory is short): a resume must use the same
        used = getattr(solver.op, "oversampling", oversampling)
        regularised_params = None
        if prior_info is not None:
            regularised_params = {"prior": prior, "prior_weight": requested_weight if isinstance(requested_weight, str)
                                  else float(requested_weight), "weights": weights_source,
                                  "prior_params": {k: float(v) for k, v in sorted(solver.prior_params.items())}}
        fingerprint = _fingerprint(series, algorithm=algorithm, step=step, projector=projector,
                                   oversampling=used, positivity=positivity, thickness=thickness,
                                   volume_shape=problem.geometry.volume_shape, center=problem.geometry.center,
                                   convention=convention, refine=(refine_angles, refine_iterations),
                                   regularised=regularised_params, weights=weights_arr,
                                   step_normalisation=getattr(solver, "step_normalisation", "global"))
        if state is not None:
            io.check_fingerprint(state.get("fingerprint"), fingerprint, where=str(out), names=RESUME_FLAGS)
            solver.restore(state)
            if progress is not None and solver.iteration:
                progress.update(min(solver.iteration, iterations))

        def checkpoint(s):
            st = s.state()
            st["fingerprint"] = fingerprint
            write(st["volume"], dict(s.config(), input=where),
                  {"r_factor_history": st["r_factor_history"], "iterations": s.iteration}, checkpoint=st)

        result = solver.run(iterations, progress=progress, callback=checkpoint if checkpoint_every else None,
                            callback_every=checkpoint_every, noise_level=noise_level)
        if getattr(solver, "stopped", None):
            result.config["stopped"] = solver.stopped
        if prior_info is not None:
            result.config.update({k: v for k, v in prior_info.items() if k != "auto"},
                                 prior_auto=prior_info.get("auto"))
    cfg = dict(result.config, input=where, iterations_requested=iterations)
    if noise_level is not None:
        cfg["noise_level"] = noise_level
    if estimate is not None:
        cfg["center_estimate"] = {"center": estimate.center, "offset": estimate.offset, "method": estimate.method,
                                  "quality": estimate.quality, "fit_rms": estimate.fit_rms}
    if len(inputs) > 1:
        cfg["angles_file"] = str(inputs[1])
    results = {"r_factor_history": result.r_factor_history, "r_factor": result.r_factor,
               "iterations": result.iterations, "seconds": result.seconds}
    if alignment is not None:
        cfg["refine_angles"] = {"rounds": refine_angles, "iterations_per_round": refine_iterations,
                                "projector": "linear"}
        results.update(refined_angles=alignment.angles, refined_shifts=alignment.shifts,
                       refine_r_factors=np.asarray(alignment.r_factors + [result.r_factor]))
    final_state = None
    if algorithm != "fbp":  # what --resume needs to extend the finished run
        results["resume"] = {"algorithm": solver.algorithm, "fingerprint": fingerprint}
        if prior_info is not None:
            results["resume"]["prior_weight"] = float(solver.weight)
            if checkpoint_every:   # FISTA's momentum too, so --resume extends the run exactly
                final_state = dict(solver.state(), fingerprint=fingerprint)
    write(result.volume, cfg, results, checkpoint=final_state)
    return result, cfg
