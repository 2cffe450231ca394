"""Single-axis tomography split into slabs along the rotation axis, on Dask workers (issue 17).

For a tilt series about the y axis, detector row ``r`` sees only the volume plane ``y = r``:
with the ``linear`` projector (sub-points in the x-z plane, no spread along y) SIRT, RESIRE and
FBP of a slab of rows ``[r0, r1)`` are *exactly* the rows ``[r0, r1)`` of the whole
reconstruction (tested bitwise: every per-ray and per-voxel normalisation lives inside a row).
Each task reads its rows from the HDF5 input itself, reconstructs its slab and returns it; the
client writes it by region (no gathering of the whole volume on one host is needed when
``out`` is an ``h5py.Dataset``). No data moves between workers during the iterations.

Not split, with the reason in the error: multi-axis (Euler) series (a ray crosses many y planes),
the Fourier-slice projector ``fst`` (its 3D FFT and gridding couple every row: slabs differ from
the whole by several percent), and the global stopping rules (``rtol``, ``noise_level``: a
slab would stop at its own iteration). See docs/distributed.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fastem.errors import InputError
from fastem.executor import Executor

__all__ = ["SlabJob", "InProcessSlabs", "SLAB_BYTES", "SLAB_MIN_ROWS", "default_slabs", "reconstruct_slab", "reconstruct_slabs", "slab_ranges"]

_METHODS = ("sirt", "resire", "fbp")

#: Default cap on a slab's volume (bytes): thicker slabs are cut into more tasks. The CPU tilt
#: projectors vectorise along the rotation axis, so thin slabs cost more per row, but a slab
#: whose volume outgrows the caches costs more too, and more again while other workers of the
#: machine share them. 256^3 series, 41 tilts, SIRT (bench/results/tomo_slab_thickness-n256.md):
#: per row, 32-row slabs (8 MiB) cost 1.03x what 64-row ones (16 MiB) do alone but 1.01x rather
#: than 1.10x more with two processes side by side, and 128-row ones (32 MiB) 1.16x; from 1 to 2
#: Dask workers the job scaled 1.60x with 16 MiB slabs and 1.78x with 8 MiB ones
#: (bench/results/distributed_scaling_n256_slab16/, ..._n256_slab8_tomo/).
SLAB_BYTES = 8 * 2**20
#: ... but no thinner than this many rows by default (the SIMD loop's length: 32-row slabs of a
#: 128^3 series cost 1.31x per row what 64-row ones do, bench/results/tomo_slab_thickness-bordered.md)
SLAB_MIN_ROWS = 32


@dataclass(frozen=True)
class SlabJob:
    """What every slab task needs (picklable): the input dataset, angles, method and its options.

    ``source``: ``"file.h5:/exchange/data"`` (projections (n, rows, cols), the same path on every
    worker); ``angles``: (n,) tilts about y in degrees; ``method``: ``sirt``, ``resire`` (with
    ``projector="linear"``) or ``fbp``; ``options``: further keywords of that function
    (``iterations``, ``step``, ``positivity``, ``center``, ``convention``, ``thickness`` ...).
    """

    source: str
    angles: np.ndarray
    method: str = "sirt"
    options: dict = field(default_factory=dict)


class InProcessSlabs(Executor):
    """The executor of ``fastem tomo --slabs``: the slabs one after the other in this process.

    The volume is never whole in memory: each slab is reconstructed from its own rows (read from
    the HDF5 input) and written into the output by region, so a single-axis series larger than
    the memory fits; SIRT and RESIRE (``linear``) slabs equal the whole volume bit for bit. Slabs
    of :func:`default_slabs`' size also suit the caches (256^3: 11.77 s for 8 slabs on one Dask
    worker against 13.22 s for the whole volume in one process,
    ``bench/results/distributed_scaling_final256/``).
    """

    slots = 1      # the base class runs imap_unordered in order, here, with no task memory limit

    def map(self, fn, items) -> list:
        return [fn(item) for item in items]

    def describe(self) -> str:
        return "slabs in this process"


def slab_ranges(rows: int, slabs: int) -> list[tuple[int, int]]:
    """``slabs`` contiguous row ranges covering ``[0, rows)`` (sizes differ by at most one)."""
    slabs = max(1, min(int(slabs), int(rows)))
    cuts = [rows * i // slabs for i in range(slabs + 1)]
    return list(zip(cuts[:-1], cuts[1:]))


def _check(job: SlabJob, rows: int) -> None:
    if job.method not in _METHODS:
        raise InputError(f"method must be one of {', '.join(_METHODS)} for slabs, got {job.method!r}")
    opts = job.options
    if job.method == "resire" and opts.get("projector", "fst") != "linear":
        raise InputError("projector 'fst' does not split into slabs (its 3D FFT couples every row): use "
                         "projector='linear' with slabs, or run on one worker")
    for name in ("rtol", "noise_level"):
        if opts.get(name) is not None:
            raise InputError(f"{name} is a global stopping rule (each slab would stop at its own iteration): "
                             f"use a fixed iteration count with slabs")
    for name in ("mask", "support", "initial", "volume_shape", "state", "shifts"):
        if opts.get(name) is not None:
            raise InputError(f"{name} is not supported with slabs yet (run on one worker)")
    angles = np.asarray(job.angles, np.float64)
    if angles.ndim != 1:
        raise InputError("slabs need a single tilt axis: angles must be (n,) tilts about y (an Euler series "
                         "is not separable along y; run it on one worker)")


def reconstruct_slab(task: dict) -> dict:
    """One task: rows ``[r0, r1)`` of the projections -> the volume slab ``[:, r0:r1, :]``."""
    from fastem.io.hdf5 import open_h5, parse_ref

    from .baselines import fbp, sirt
    from .resire import resire

    job: SlabJob = task["job"]
    r0, r1 = task["r0"], task["r1"]
    path, dataset = parse_ref(job.source)
    with open_h5(path) as f:
        proj = np.asarray(f[dataset][:, r0:r1, :], dtype=np.float32)
    opts = dict(job.options)
    opts.setdefault("progress", False)
    nz = opts.pop("nz", None)
    if nz is not None:
        opts["volume_shape"] = (int(nz), r1 - r0, proj.shape[2])
    if not np.any(proj):       # empty rows (outside the object): the whole reconstruction keeps them 0
        shape = opts.get("volume_shape") or (proj.shape[2], r1 - r0, proj.shape[2])
        return {"r0": r0, "r1": r1, "volume": np.zeros(shape, np.float32), "r_factor": float("nan"),
                "iterations": int(opts.get("iterations", 0))}
    fn = {"sirt": sirt, "fbp": fbp, "resire": resire}[job.method]
    if job.method == "fbp":
        opts.pop("iterations", None)
        opts.pop("progress", None)
    result = fn(proj, np.asarray(job.angles, np.float64), **opts)
    return {"r0": r0, "r1": r1, "volume": np.asarray(result.volume), "r_factor": float(result.r_factor),
            "iterations": int(result.iterations)}


def default_slabs(rows: int, nz: int, cols: int, slots: int, slab_bytes: int = SLAB_BYTES,
                  min_rows: int = SLAB_MIN_ROWS) -> int:
    """Slabs for ``rows`` detector rows of an (nz, rows, cols) float32 volume on ``slots`` workers:
    the fewest whose volume fits ``slab_bytes`` (but slabs of at least ``min_rows`` rows), at
    least one per slot, rounded up to a multiple of ``slots`` so that every worker gets as many
    equal slabs (at most one per row)."""
    slots = max(1, int(slots))
    per_row = 4 * max(1, int(nz)) * max(1, int(cols))
    thickness = max(int(min_rows), int(slab_bytes) // per_row, 1)
    need = -(-int(rows) // thickness)
    return max(1, min(int(rows), slots * -(-max(need, 1) // slots)))


def reconstruct_slabs(executor, job: SlabJob, *, slabs: int | None = None, out=None, progress=None) -> dict:
    """Reconstruct ``job`` as slabs along the rotation axis on ``executor``'s workers.

    Parameters
    ----------
    executor : fastem.executor.Executor
    job : SlabJob
    slabs : int, optional
        Number of slabs (default :func:`default_slabs`: one per executor slot, more when a slab's
        volume would exceed :data:`SLAB_BYTES`, a multiple of the slots; at most one per detector
        row; more when a slab would not fit in half a worker thread's Dask ``memory_limit``, with
        a warning). The CPU tilt projectors vectorise along the rotation axis, so a slab's rows
        are their SIMD loop and thin slabs cost more per row, while slabs larger than the caches
        cost more too (docs/distributed.md, "Scaling on this machine").
    out : array or h5py.Dataset (nz, rows, cols), optional
        Where each slab is written by region as it arrives (default: a new float32 array).
    progress : object with ``update(k)``, optional
        Called with the rows finished per slab.

    Returns
    -------
    dict
        ``volume`` (``out``), ``slabs`` (the row ranges) and ``r_factor`` per slab (R_F of each
        slab's rows, thesis eq. 3.9 restricted to them; NaN for a slab whose projections are all
        zero, which is returned as zeros, as the whole reconstruction leaves such rows).
    """
    from fastem.io.hdf5 import open_h5, parse_ref

    if not isinstance(job, SlabJob):
        raise InputError(f"job must be a SlabJob, got {type(job).__name__}")
    path, dataset = parse_ref(job.source)
    with open_h5(path) as f:
        if dataset is None or dataset not in f:
            raise InputError(f"{job.source}: no such dataset")
        n, rows, cols = (tuple(f[dataset].shape) + (0, 0, 0))[:3] if f[dataset].ndim == 3 else (0, 0, 0)
        if f[dataset].ndim != 3:
            raise InputError(f"{job.source}: projections must be (n, rows, cols), got shape {f[dataset].shape}")
    if len(np.asarray(job.angles)) != n:
        raise InputError(f"angles has {len(np.asarray(job.angles))} entries for {n} projections")
    _check(job, rows)
    nz = int(job.options.get("nz") or cols)
    slabs = slabs if slabs is not None else default_slabs(rows, nz, cols, executor.slots, SLAB_BYTES, SLAB_MIN_ROWS)
    from fastem.executor import items_per_task

    # a slab's memory per detector row: the volume slab and ~4 volume-sized work arrays (gradient,
    # step, SIRT's weights, the result) plus its projection rows and ~3 projection-sized ones
    per_row = 4 * (5 * nz * cols + 4 * n * cols)
    most_rows = items_per_task(executor, -(-rows // max(1, int(slabs))), per_row, what="tomo slabs",
                               item="detector row")
    ranges = slab_ranges(rows, max(int(slabs), -(-rows // most_rows)))
    if out is None:
        out = np.zeros((nz, rows, cols), np.float32)
    elif tuple(out.shape) != (nz, rows, cols):
        raise InputError(f"out must have shape {(nz, rows, cols)}, got {tuple(out.shape)}")
    opts = dict(job.options)
    opts["nz"] = nz
    job = SlabJob(job.source, np.asarray(job.angles, np.float64), job.method, opts)
    r_f = {}
    tasks = ({"job": job, "r0": a, "r1": b} for a, b in ranges)
    for _, res in executor.imap_unordered(reconstruct_slab, tasks):
        out[:, res["r0"]:res["r1"], :] = res["volume"]
        r_f[(res["r0"], res["r1"])] = res["r_factor"]
        if progress is not None:
            progress.update(res["r1"] - res["r0"])
    return {"volume": out, "slabs": ranges, "r_factor": [r_f[r] for r in ranges]}
