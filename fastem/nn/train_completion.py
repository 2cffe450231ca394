"""``train_completion``: train a completion GAN end to end and write its model file.

This is what ``fastem scan train`` calls: data source + fixed validation set + task + trainer,
an exclusive lock on the output for the whole run, checkpoints beside the output
(``MODEL.pt.ckpt``) for ``--resume``, the linear-interpolation baseline on the validation set,
the model file with its record, and optionally the loss/RMSE curve PNG.
"""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from fastem.errors import InputError
from fastem.io import check_output, output_lock

from .completion import MODEL_KIND, CompletionConfig
from .completion_data import PartialScanSource, baseline_rmse, make_validation_set
from .completion_train import CompletionTask, schedule
from .model import save_model
from fastem.io.checkpoint import default_checkpoint

from .training import Trainer, write_curves

__all__ = ["train_completion", "default_checkpoint", "export_checkpoint"]


def train_completion(output, *, images=None, val_images=None, synthetic: int = 256, path: str = "spiral",
                     coverage: float = 1 / 20, steps: int = 2000, crop: int = 64, batch: int = 4, seed: int = 0,
                     config: CompletionConfig | None = None, device="cpu", resume: bool = False,
                     checkpoint=None, checkpoint_every: int = 200, validate_every: int = 100, val_count: int = 32,
                     overwrite: bool = False, callback=None, command: str | None = None, curves=None,
                     inputs=(), init=None, **pipeline_options):
    """Train the completion GAN and write the model file ``output``.

    Parameters
    ----------
    output : path
        The model file (``.pt``); refused if it exists unless ``overwrite``.
    images, val_images : (N, H, W) arrays, optional
        User micrographs for training / validation (default: synthetic pools).
    synthetic : int
        Size of the synthetic training pool.
    path, coverage : scan path kind and coverage the model is trained for.
    steps, crop, batch, seed : training length, crop side, batch size, data/initialisation seed.
    config : CompletionConfig, optional
    device : "cpu", "cuda"
    resume : bool
        Continue from the checkpoint (refused when any setting or the data differ).
    checkpoint : path, optional
        Default :func:`default_checkpoint`; written every ``checkpoint_every`` steps and kept after
        the run (a killed run resumes from it with the same settings).
    callback : callable, optional
        Progress events (see :class:`~fastem.nn.training.Trainer`).
    command : str, optional
        The command line, recorded in the model file.
    curves : path, optional
        Write the loss / validation-RMSE curves PNG here.
    inputs : paths
        Input files (never overwritten).
    init : path, optional
        A completion model file to start from (fine-tuning, e.g. the packaged default on the
        user's own images, or continuing a finished run with more steps): its generator weights
        replace the random initialisation and its architecture is used; the training settings of
        ``config`` (stages, ALRC, replay, auxiliary, generator learning rates) still apply. The
        file's digest is part of the resume fingerprint and of the record; the file is never written.

    Returns
    -------
    (generator, history, record)
    """
    cfg = config or CompletionConfig()
    init_state, init_record = None, None
    if init is not None:
        cfg, init_state, init_record = _initial_weights(init, cfg)
        inputs = (*inputs, init)
    out = check_output(output, overwrite=overwrite or resume, inputs=inputs)
    ckpt = Path(checkpoint) if checkpoint is not None else default_checkpoint(out)
    if resume and not ckpt.is_file():
        raise InputError(f"{ckpt}: no checkpoint to resume from (train without resume / --resume first)")
    dev = torch.device(device)
    with output_lock(out):
        source = PartialScanSource(images, synthetic=synthetic, crop=crop, batch_size=batch, kind=path,
                                   coverage=coverage, seed=seed, device="cuda" if dev.type == "cuda" else "cpu",
                                   **pipeline_options)
        valset = make_validation_set(val_images, count=val_count, synthetic=max(4, val_count // 2), crop=crop,
                                     kind=path, coverage=coverage, seed=seed, **pipeline_options)
        task = CompletionTask(cfg, source, total_steps=steps, valset=valset, seed=seed, device=dev,
                              record={"init": init_record} if init_record else None)
        if init_state is not None:
            task.generator.load_state_dict(init_state)
        trainer = Trainer(task, checkpoint=ckpt, checkpoint_every=checkpoint_every, validate_every=validate_every,
                          callback=callback)
        if resume:
            trainer.resume(ckpt)
        history = trainer.run()
        linear = baseline_rmse(valset, "linear")
        val = history.last("val")
        record = {"path": path, "coverage": float(coverage), "crop": int(crop), "batch": int(batch),
                  "steps": int(steps), "data_seed": int(seed), "data": source.describe(), "device": str(dev),
                  "device_name": (torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor()
                                  or platform.machine()),
                  "train_seconds": round(trainer.elapsed, 1), "command": command,
                  "val_rmse": val.get("rmse"), "val_rmse_linear": linear, "val_count": len(valset),
                  "torch": torch.__version__, "scaled_down": _scaled_down(cfg)}
        if init_record:
            record["init"] = init_record
        save_model(out, task.generator, kind=MODEL_KIND, config=cfg.to_dict(), record=record,
                   overwrite=overwrite or resume, inputs=inputs)
        if curves is not None:
            write_curves(history, curves, baselines={"linear interpolation": linear},
                         title=f"completion GAN, {path} 1/{1 / coverage:.0f}, {steps} steps")
    return task.generator, history, record


#: settings of this run that an ``init=`` model does not override (its architecture is kept)
_TRAINING_SWITCHES = ("adversarial", "alrc", "replay", "auxiliary", "lr_stage1", "lr_stage2")


def _initial_weights(init, cfg: CompletionConfig):
    """``(config, generator state, record)`` for ``init=``: the model's architecture with ``cfg``'s
    training switches, its float32 generator weights and what the record says about them."""
    from fastem.io.checkpoint import file_digest

    from .model import load_model

    p = Path(init)
    if not p.is_file():
        raise InputError(f"init: {p}: no such model file")
    module, info = load_model(p, kind=MODEL_KIND)
    stored = CompletionConfig.from_dict(info["config"])
    merged = CompletionConfig.from_dict({**stored.to_dict(),
                                         **{k: getattr(cfg, k) for k in _TRAINING_SWITCHES}})
    state = {k: v.detach().to(torch.float32) if v.is_floating_point() else v.detach()
             for k, v in module.state_dict().items()}
    rec = info.get("record") or {}
    record = {"file": p.name, "sha256": file_digest(p), "steps": rec.get("steps"), "path": rec.get("path"),
              "coverage": rec.get("coverage"), "val_rmse": rec.get("val_rmse")}
    return merged, state, record


def _scaled_down(cfg: CompletionConfig) -> str:
    """What differs from the paper's network, for the model card."""
    paper = CompletionConfig.paper()
    diffs = []
    if cfg.width != paper.width:
        diffs.append(f"channel widths x{cfg.width:g}")
    if cfg.inner_blocks != paper.inner_blocks:
        diffs.append(f"{cfg.inner_blocks} inner residual blocks (paper {paper.inner_blocks})")
    if cfg.disc_input != paper.disc_input:
        diffs.append(f"discriminator input {cfg.disc_input} px (paper {paper.disc_input})")
    for flag in ("adversarial", "alrc", "replay", "auxiliary"):
        if not getattr(cfg, flag):
            diffs.append(f"no {flag}")
    return "; ".join(diffs) or "none"


def export_checkpoint(checkpoint, output, *, overwrite: bool = False, note: str | None = None) -> dict:
    """Write the generator of a training checkpoint as a model file (e.g. a stage's end).

    The seed-000 schedule trains without the adversarial term for its first half; exporting the
    checkpoint at that step gives the non-adversarial generator the paper's 2.6 % refers to,
    while the run goes on. The record says which step of how many, and is otherwise the run's.

    Parameters
    ----------
    checkpoint : path
        A ``MODEL.pt.ckpt`` written by :func:`train_completion` (read only).
    output : path
        The model file to write (refused if it exists unless ``overwrite``; never the checkpoint).
    note : str, optional
        Free text for the record (e.g. "end of the non-adversarial stages").

    Returns
    -------
    dict
        The record written.
    """
    import json

    from .completion import CompletionGenerator
    from .training import load_checkpoint

    ckpt_path = Path(checkpoint)
    out = check_output(output, overwrite=overwrite, inputs=[ckpt_path])
    ckpt = load_checkpoint(ckpt_path)
    params = (ckpt.get("fingerprint") or {}).get("params") or {}
    try:
        cfg = CompletionConfig.from_dict(json.loads(params["config"]))
        data = json.loads(params["data"])
        total = int(json.loads(params["total_steps"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{ckpt_path}: not a completion-GAN training checkpoint (no {exc} in its fingerprint)") from None
    generator = CompletionGenerator(cfg)
    try:
        generator.load_state_dict(ckpt["modules"]["generator"])
    except (KeyError, RuntimeError) as exc:
        raise InputError(f"{ckpt_path}: generator weights do not fit the recorded architecture ({exc})") from None
    history = ckpt.get("history") or {}
    vals = [v for v in history.get("val", []) if v.get("step") == ckpt["step"]]
    step = int(ckpt["step"])
    sch = schedule(max(step - 1, 0), total, cfg)   # the stage of the last step trained
    record = {"path": data.get("path"), "coverage": data.get("coverage"), "crop": data.get("crop"),
              "batch": data.get("batch"), "steps": step, "of_steps": total, "data_seed": data.get("data_seed"),
              "data": data, "exported_from": ckpt_path.name, "train_seconds": round(float(ckpt.get("elapsed", 0.0)), 1),
              "stage": "adversarial" if sch["adversarial"] else "non-adversarial",
              "val_rmse": vals[0]["rmse"] if vals else None, "note": note, "torch": torch.__version__,
              "scaled_down": _scaled_down(cfg)}
    save_model(out, generator, kind=MODEL_KIND, config=cfg.to_dict(), record=record, overwrite=overwrite,
               inputs=[ckpt_path])
    return record

