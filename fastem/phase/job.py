"""Phase retrieval from a CXI file into a CXI file: what ``fastem phase`` and the demo run.

Input: ``/entry_1/data_1/data`` (intensities, zero frequency at the centre) and the detector
mask (``known = mask == 0``), read by :func:`fastem.io.read_cxi`; the support from
``--support FILE:/dataset`` or, without it, estimated from the autocorrelation
(:func:`fastem.phase.autocorrelation_support`).

Output (:func:`fastem.io.write_cxi_reconstruction`, atomic, never over an input, refuses to
overwrite without ``overwrite``)::

    /entry_1/data_1/data, detector_1/{data, mask}   the input data, so the output is a full CXI file
    /entry_1/image_1/data          mean of the K kept runs (aligned to the best), object centred
    /entry_1/image_1/support       the support used (uint8)
    /entry_1/image_1/process_1/    program, version, command, date, device, configuration (JSON)
        rf_history (E, R), rf_history_iterations (E,), final_rf (R,), kept_runs (K,), kept_rf (K,),
        kept_rf_mean, kept_rf_variance, kept_variance, best_image, best_rf,
        r_real (only when the input holds a ground truth at /entry_1/sample_1/object)
        checkpoint/                state for --resume (while the run is in progress)

Checkpoints: every ``checkpoint_every`` iterations the output is rewritten (atomically) with
the best image so far and the full solver state under ``process_1/checkpoint``; ``resume=True``
reads it back and continues; the resumed run gives what the uninterrupted run would have.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fastem.errors import DatasetNotFoundError, InputError

from .engine import PhaseConfig
from .metrics import r_real
from .multistart import PhaseResult, checkpoint_best, retrieve
from .problem import prepare_problem

__all__ = ["phase_file", "TRUTH_DATASET"]

TRUTH_DATASET = "/entry_1/sample_1/object"


def _read_truth(path: Path, shape) -> np.ndarray | None:
    import h5py

    with h5py.File(path, "r") as f:
        ds = f.get(TRUTH_DATASET)
        if isinstance(ds, h5py.Dataset) and tuple(ds.shape) == tuple(shape):
            return np.asarray(ds[()], np.float64)
    return None


def phase_file(in_path, out_path, *, algorithm: str = "gps-f", iterations: int = 1000, runs: int = 1,
               keep: int = 5, seed: int = 0, support: str | None = None, sigma_schedule: Any = None,
               checkpoint_every: int = 0, resume: bool = False, overwrite: bool = False,
               device: Any = None, progress: Any = None, command: str | None = None,
               dtype=np.complex64, shrink_wrap: bool = False, shrink_wrap_every: int = 20,
               shrink_wrap_threshold: float = 0.2, shrink_wrap_sigma=(3.0, 1.5),
               max_batch_bytes: int | None = None, scheduler: str | None = None) -> tuple[PhaseResult, dict]:
    """Run multi-start phase retrieval on a CXI file and write the CXI reconstruction.

    Parameters
    ----------
    in_path, out_path : path
        Input CXI (diffraction data) and output CXI (reconstruction).
    algorithm, iterations, runs, keep, seed, sigma_schedule :
        See :class:`fastem.phase.PhaseConfig` and :func:`fastem.phase.retrieve`.
    support : str, optional
        ``FILE:/dataset`` of a 0/1 support (object centred); default: autocorrelation estimate.
    checkpoint_every : int
        Rewrite the output with a checkpoint every this many iterations (0: never).
    resume : bool
        Continue from the checkpoint in ``out_path`` (same input and parameters).
    shrink_wrap, shrink_wrap_every, shrink_wrap_threshold, shrink_wrap_sigma :
        Shrink-wrap support updates (:class:`fastem.phase.PhaseConfig`); the output's support is
        then the best run's final support (the initial one is kept in ``process_1/initial_support``).
    max_batch_bytes : int, optional
        Memory budget of one batch of runs (:func:`fastem.phase.retrieve`).
    scheduler : str, optional
        ``"local"`` or a Dask scheduler address: spread the chunks of runs over Dask workers
        (:func:`fastem.executor.make_executor`); default: in this process.
    overwrite : bool
        Replace an existing output (a resumed run always rewrites its own output).
    device : Device or str, optional
    progress : tqdm-like, optional
    command : str, optional
        The command line for the provenance record.

    Returns
    -------
    (PhaseResult, dict)
        The result and the ``results`` written to the process group.
    """
    from fastem.backend import resolve_device
    from fastem.io import (CXI_CHECKPOINT, check_output, load_checkpoint_file, provenance, read_cxi,
                           read_dataset, write_cxi_reconstruction)

    in_path, out_path = Path(in_path), Path(out_path)
    dev = resolve_device(device)
    data = read_cxi(in_path)
    if not resume:
        check_output(out_path, overwrite=overwrite, inputs=[in_path])
    if support is not None:
        supp = read_dataset(support)
        where_supp = str(support)
    else:
        supp, where_supp = None, "autocorrelation estimate"
    if keep > runs:
        raise InputError(f"--keep {keep} is larger than --runs {runs}")
    cfg_kw = {"algorithm": algorithm, "iterations": iterations}
    if sigma_schedule is not None:
        cfg_kw["sigma_schedule"] = sigma_schedule
    if shrink_wrap:
        cfg_kw.update(shrink_wrap=True, shrink_wrap_every=shrink_wrap_every, shrink_wrap_threshold=shrink_wrap_threshold,
                      shrink_wrap_sigma=shrink_wrap_sigma)
    config = PhaseConfig(**cfg_kw)
    problem = prepare_problem(data.intensities, data.known, supp, dtype=dtype, device=dev,
                              where=f"{in_path}:/entry_1/data_1/data")
    resolved = {**config.as_dict(), "runs": int(runs), "keep": int(keep), "seed": int(seed),
                "support": where_supp, "dtype": np.dtype(dtype).name, "input": str(in_path)}
    resume_state = None
    if resume:
        if not out_path.exists():
            raise DatasetNotFoundError(f"{out_path}: no such file, so no checkpoint to --resume from")
        check_output(out_path, overwrite=True, inputs=[in_path])
        resume_state = load_checkpoint_file(out_path, CXI_CHECKPOINT)
        saved = resume_state.get("configuration")
        if saved is not None and dict(saved) != resolved:
            diff = sorted(k for k in set(saved) | set(resolved) if saved.get(k) != resolved.get(k))
            raise InputError(f"{out_path}: --resume with different parameters ({', '.join(diff)}) than the "
                             "checkpointed run")
        if progress is not None:
            progress.update(int(resume_state["iteration"]))

    def write(image, results, checkpoint=None, support_used=None):
        write_cxi_reconstruction(out_path, image, support=problem.support if support_used is None else support_used,
                                 provenance=provenance(command=command, config=resolved, device=dev),
                                 results=results, intensities=data.intensities, mask=data.mask,
                                 checkpoint=checkpoint, overwrite=True, inputs=[in_path])

    def on_checkpoint(state):
        state["configuration"] = resolved
        image, best_rf = checkpoint_best(state)
        write(image, {"rf_history": state["history_rf"], "rf_history_iterations": state["history_iterations"],
                      "best_rf": best_rf, "in_progress_iteration": int(state["iteration"]),
                      "in_progress_chunk": int(state.get("chunk", 0))},
              checkpoint=state)

    from fastem.executor import make_executor

    with make_executor(scheduler) as executor:
        result = retrieve(problem=problem, config=config, runs=runs, keep=keep, seed=seed, progress=progress,
                          checkpoint_every=checkpoint_every, on_checkpoint=on_checkpoint if checkpoint_every else None,
                          resume_state=resume_state, max_batch_bytes=max_batch_bytes, executor=executor)
    results = result.results_dict()
    results["chunks"] = np.asarray(result.extra["chunks"], np.int64)
    final_support = result.extra.get("best_support")
    if final_support is not None:
        results["initial_support"] = problem.support.astype(np.uint8)
    results["best_image"] = result.best
    truth = _read_truth(in_path, problem.shape)
    if truth is not None:
        results["r_real"] = r_real(result.image, truth)
        results["r_real_best"] = r_real(result.best, truth)
    write(result.image, results, support_used=final_support)
    return result, results
