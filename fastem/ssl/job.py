"""The ``fastem ssl`` jobs: pretrain, finetune, apply (issue 13).

Each job checks its output before any work (never an input, no silent overwrite), holds an
exclusive lock on it for the whole run (:func:`fastem.io.output_lock`), writes it atomically
(temporary file + rename) and writes no non-finite result. Training jobs keep a checkpoint
beside the model file (``MODEL.pt.ckpt``, rewritten atomically every epoch); ``resume=True``
continues from it only when the data (content digests) and every setting match the run that
wrote it (:func:`fastem.io.check_fingerprint`), and the result equals an uninterrupted run's.
Progress goes to ``callback`` (the trainer's events, plus ``{"kind": "apply", "done", "total"}``
from :func:`apply`); only the CLI draws bars.
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

from fastem.errors import InputError
from fastem.io.checkpoint import default_checkpoint
from fastem.io.checkpoint import file_digest as _sha256

__all__ = ["pretrain", "finetune", "apply", "load_images_and_targets", "split_validation", "default_checkpoint",
           "OUTPUT_GROUP", "PAPER"]

#: HDF5 group of :func:`apply`'s output
OUTPUT_GROUP = "/ssl"
#: the paper's settings (seed 002 sections 4.1-4.2), for the model cards' "scaled down" notes
PAPER = {"pretrain_images": "50K-200K (CEM500K)", "pretrain_epochs": 60, "pretrain_batch": 128,
         "finetune_epochs": 60, "segment_crop": 448, "restore_crop": 256, "restore_batch": 64}


#: training crop (px) when none is given, raised to a multiple of the generator's downsampling
DEFAULT_CROP = 64


def _training_crop(crop, cfg: dict, side) -> int:
    """``crop`` checked against generator ``cfg``'s total downsampling (one-line error naming
    ``--crop``), or, when ``None``, :data:`DEFAULT_CROP` rounded up to a multiple of it (down
    where the images, of smallest side ``side``, are smaller); see
    :func:`fastem.nn.ssl_train.check_crop`."""
    from fastem.nn.ssl_models import build_generator
    from fastem.nn.ssl_train import check_crop, fitting_crop

    gen = build_generator(cfg)
    if crop is None:
        return fitting_crop(DEFAULT_CROP, gen.multiple, side)
    try:
        check_crop(int(crop), gen, cfg["arch"])
    except InputError as exc:
        raise InputError(f"crop: {exc}") from None
    return int(crop)


def _device_name(dev) -> str:
    import torch

    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return platform.processor() or platform.machine()


def _float_images(arr, where: str) -> np.ndarray:
    a = np.asarray(arr)
    if a.dtype.kind == "c":
        raise InputError(f"{where}: complex data ({a.dtype}); store the magnitude or the real part")
    if a.dtype.kind not in "fiub":
        raise InputError(f"{where}: expected real numbers, got dtype {a.dtype}")
    a = a.astype(np.float32, copy=False)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or 0 in a.shape:
        raise InputError(f"{where}: expected an (N, rows, cols) or (rows, cols) image array, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise InputError(f"{where}: contains NaN or infinite values")
    return a


def load_images_and_targets(images, targets=None, *, images_flag: str = "IMAGES", targets_flag: str = "--targets"):
    """Read an image stack (and its targets) with fastem's readers; one-line errors naming the flags.

    ``images`` / ``targets``: ``FILE``, ``FILE:/dataset`` (HDF5, CXI, EMD), MRC or TIFF, or
    arrays. Returns ``(images, targets or None)`` as float32 (N, H, W); refuses unequal counts or
    shapes.
    """
    from fastem.io import read_images

    def read(spec, flag):
        if isinstance(spec, np.ndarray):
            return _float_images(spec, flag)
        return _float_images(read_images(spec), f"{flag} {spec}")

    x = read(images, images_flag)
    if targets is None:
        return x, None
    t = read(targets, targets_flag)
    if t.shape[0] != x.shape[0]:
        raise InputError(f"{targets_flag} holds {t.shape[0]} images but {images_flag} holds {x.shape[0]}; "
                         f"give one target per image")
    if t.shape[1:] != x.shape[1:]:
        raise InputError(f"{targets_flag} images are {t.shape[1]}x{t.shape[2]} but {images_flag} images are "
                         f"{x.shape[1]}x{x.shape[2]}; targets must match their images pixel for pixel")
    return x, t


def split_validation(n: int, fraction: float) -> int:
    """How many of ``n`` images to hold out (the last ones): ``round(n * fraction)``, at least 1
    when ``n >= 2`` and ``fraction > 0``, never all."""
    if not 0 <= fraction < 1:
        raise InputError(f"validation fraction must be in [0, 1), got {fraction}")
    if n < 2 or fraction == 0:
        return 0
    return int(min(n - 1, max(1, round(n * fraction))))


def _scaled(pairs) -> str:
    return "; ".join(f"{name} {ours} (paper {paper})" for name, ours, paper in pairs if str(ours) != str(paper)) \
        or "none"


# ------------------------------------------------------------------------------------------
# pretrain
# ------------------------------------------------------------------------------------------
def pretrain(output, *, images=None, synthetic: int | None = None, synthetic_size: int | None = None,
             generator: str = "unet-2-44", width: int | None = None, epochs: int = 1, crop: int | None = None,
             batch: int = 8, seed: int = 0, corruption=None, disc_features: int = 64, device="cpu", amp: bool = True,
             resume: bool = False, overwrite: bool = False, checkpoint=None, val_fraction: float = 0.1,
             callback=None, command: str | None = None, curves=None, inputs=()):
    """Pretrain a generator with the Pix2Pix pretext task and write its model file.

    Parameters
    ----------
    output : path
        The model file (``.pt``), kind ``"ssl-generator"``, record ``task = "pretext"``.
    images : (N, H, W) array, optional
        Unlabelled micrographs; the last ``val_fraction`` (at least 1) are held out.
    synthetic : int, optional
        Otherwise a synthetic pool of this many images (:func:`fastem.data.ssl_synthetic.unlabelled_pool`,
        ``synthetic_size`` px, default ``crop``) and ``max(2, synthetic // 10)`` validation images
        drawn after them.
    generator, width
        Generator name (``unet-2-44`` ... ``unet-4-424``, ``hrnet``) and width.
    epochs, crop, batch, seed
        Epochs over the pool, crop side (px; a multiple of the generator's total downsampling,
        default :data:`DEFAULT_CROP` rounded up to one), batch, seed of everything.
    corruption : CorruptionConfig, optional
    disc_features : int
        PatchGAN width (64 = Pix2Pix).
    device, amp
        Torch device; bfloat16 mixed precision on CUDA.
    resume, overwrite, checkpoint
        See the module docstring; ``checkpoint`` defaults to :func:`default_checkpoint`.
    callback, command, curves, inputs
        Progress events; the command line for the record; a curves PNG path; input files
        (never overwritten).

    Returns
    -------
    (generator module, History, record dict)
    """
    import torch

    from fastem.io import check_output, output_lock
    from fastem.nn.model import save_model
    from fastem.nn.ssl_corrupt import CorruptionConfig
    from fastem.nn.ssl_models import MODEL_KIND, generator_config
    from fastem.nn.ssl_train import PretextTask
    from fastem.nn.training import Trainer, write_curves

    out = check_output(output, overwrite=overwrite or resume, inputs=inputs)
    ckpt = Path(checkpoint) if checkpoint is not None else default_checkpoint(out)
    if resume and not ckpt.is_file():
        raise InputError(f"{ckpt}: no checkpoint to resume from (run without resume first)")
    if images is not None and synthetic is not None:
        raise InputError("give images or a synthetic pool size, not both")
    cfg = generator_config(generator, width=width)
    corruption = corruption or CorruptionConfig()
    dev = torch.device(device)
    with output_lock(out):
        if images is None:
            from fastem.data.ssl_synthetic import unlabelled_pool

            n = int(synthetic or 256)
            crop = _training_crop(crop, cfg, synthetic_size)
            size = int(synthetic_size or crop)
            if n < 1 or size < crop:
                raise InputError(f"the synthetic pool needs >= 1 image of at least the crop {crop} px")
            train = unlabelled_pool(n, size, seed=seed)
            val = unlabelled_pool(max(2, n // 10), size, seed=seed, index_base=n)
            data = {"source": "synthetic", "pool": n, "size": size, "val": int(val.shape[0])}
        else:
            all_images = _float_images(images, "images")
            crop = _training_crop(crop, cfg, min(all_images.shape[1:]))
            k = split_validation(all_images.shape[0], val_fraction)
            train, val = (all_images[:-k], all_images[-k:]) if k else (all_images, None)
            data = {"source": "images", "pool": int(train.shape[0]), "size": list(train.shape[1:]),
                    "val": 0 if val is None else int(val.shape[0])}
        task = PretextTask(cfg, train, val_images=val, epochs=epochs, crop=crop, batch=batch, seed=seed,
                           corruption=corruption, disc_features=disc_features, device=dev, amp=amp)
        trainer = Trainer(task, checkpoint=ckpt, checkpoint_every=task.steps_per_epoch,
                          validate_every=task.steps_per_epoch, callback=callback)
        if resume:
            trainer.resume(ckpt)
        history = trainer.run()
        val_last = history.last("val")
        width_used = cfg["net"].get("features", cfg["net"].get("width"))
        record = {"task": "pretext", "generator": cfg["arch"], "width": width_used,
                  "epochs": int(epochs), "steps": int(task.total_steps), "steps_per_epoch": task.steps_per_epoch,
                  "crop": int(crop), "batch": int(batch), "seed": int(seed), "data": data,
                  "corruption": corruption.to_dict(), "lambda_l1": task.lambda_l1, "lr": task.lr,
                  "betas": list(task.betas), "discriminator": task.disc_config,
                  "val_l1": val_last.get("l1"), "val_l1_input": val_last.get("l1_input"),
                  "val_curve": [{"epoch": r["step"] // task.steps_per_epoch, "l1": r.get("l1")} for r in history.val],
                  "device": str(dev), "device_name": _device_name(dev),
                  "amp": bool(amp and dev.type == "cuda"), "train_seconds": round(trainer.elapsed, 1),
                  "command": command, "torch": torch.__version__,
                  "scaled_down": _scaled([("pool", data["pool"], PAPER["pretrain_images"]),
                                          ("epochs", epochs, PAPER["pretrain_epochs"]),
                                          ("batch", batch, PAPER["pretrain_batch"])])}
        save_model(out, task.generator, kind=MODEL_KIND, config=cfg, record=record, overwrite=overwrite or resume,
                   inputs=inputs)
        if curves is not None:
            base = {"corrupted input": val_last["l1_input"]} if val_last.get("l1_input") is not None else None
            write_curves(history, curves, train=("loss_g", "l1"), val=("l1",), baselines=base,
                         title=f"pretext {cfg['arch']}, {epochs} epochs")
    return task.generator, history, record


# ------------------------------------------------------------------------------------------
# finetune
# ------------------------------------------------------------------------------------------
def _init_from(init, generator, width, task):
    """Architecture config, weights and a description of the ``init`` model file."""
    from fastem.nn.model import load_model
    from fastem.nn.ssl_models import MODEL_KIND, canonical_generator, describe_generator

    model, info = load_model(init, kind=MODEL_KIND)
    cfg, rec = info["config"], info.get("record") or {}
    got = rec.get("task")
    if got not in ("pretext", task):
        raise InputError(f"{init}: a {got!r} model; init needs a pretrained (pretext) model "
                         f"or a {task!r} model to continue from")
    if generator is not None and canonical_generator(generator) != cfg.get("arch"):
        raise InputError(f"{init}: a {describe_generator(cfg)} generator, not generator {generator}; "
                         f"leave generator out to use the file's architecture")
    have = cfg["net"].get("features", cfg["net"].get("width"))
    if width is not None and int(width) != int(have):
        raise InputError(f"{init}: generator width {have}, not width {width}")
    state = {k: v for k, v in model.state_dict().items()}
    return cfg, state, {"file": Path(init).name, "sha256": _sha256(init), "task": got,
                        "pretrain_data": rec.get("data"), "pretrain_epochs": rec.get("epochs")}


def finetune(output, *, task: str, images=None, targets=None, synthetic: int | None = None,
             synthetic_size: int = 128, val_images=None, val_targets=None, val_fraction: float = 0.2, init=None,
             generator: str | None = None, width: int | None = None, epochs: int = 1, crop: int | None = None,
             batch: int = 8,
             seed: int = 0, head: str = "keep", freeze: str = "none", unfreeze_epoch: int | None = None,
             seg_loss: str = "bce", lr: float = 2e-4, augment: bool = True, device="cpu", amp: bool = True,
             resume: bool = False, overwrite: bool = False, checkpoint=None, callback=None, command: str | None = None,
             curves=None, inputs=(), normalisation: str = "auto"):
    """Fine-tune a pretrained generator (``init``) or train one from random initialisation.

    Parameters
    ----------
    output : path
        The model file; record ``task`` = ``task``.
    task : "segment", "denoise", "background", "superres"
    images, targets : (N, H, W) arrays, optional
        Training images and masks / targets; the last ``val_fraction`` (at least 1) are held
        out unless ``val_images`` / ``val_targets`` are given.
    synthetic, synthetic_size
        Otherwise ``synthetic`` synthetic examples of ``synthetic_size`` px
        (:func:`fastem.data.ssl_synthetic.task_data`) and ``max(2, synthetic // 4)`` validation
        examples drawn after them.
    init : path, optional
        A pretrained model file (or one of the same task, to continue); ``None``: random
        initialisation of ``generator`` (default ``unet-2-44``) at ``width``.
    epochs, crop, batch, seed, head, freeze, unfreeze_epoch, seg_loss, lr, augment, normalisation
        See :class:`fastem.nn.ssl_train.FinetuneTask` (the resolved ``normalisation`` is recorded
        in the model file, and :func:`apply` uses it); ``crop=None``: :data:`DEFAULT_CROP` rounded
        up to a multiple of the generator's downsampling (as :func:`pretrain`).
    device, amp, resume, overwrite, checkpoint, callback, command, curves, inputs
        As :func:`pretrain`.

    Returns
    -------
    (generator module, History, record dict)
    """
    import torch

    from fastem.io import check_output, output_lock
    from fastem.nn.model import save_model
    from fastem.nn.ssl_models import MODEL_KIND, generator_config
    from fastem.nn.ssl_train import FINETUNE_TASKS, FinetuneTask
    from fastem.nn.training import Trainer, write_curves

    if task not in FINETUNE_TASKS:
        raise InputError(f"unknown task {task!r}; known: {', '.join(FINETUNE_TASKS)}")
    out = check_output(output, overwrite=overwrite or resume, inputs=[*inputs, init])
    ckpt = Path(checkpoint) if checkpoint is not None else default_checkpoint(out)
    if resume and not ckpt.is_file():
        raise InputError(f"{ckpt}: no checkpoint to resume from (run without resume first)")
    if (images is None) == (synthetic is None):
        raise InputError("give images with their targets, or a synthetic set size (not both)")
    if images is not None and targets is None:
        raise InputError("images need their targets (masks for segment, clean images otherwise)")
    if init is not None:
        cfg, state, init_info = _init_from(init, generator, width, task)
        digest = init_info["sha256"]
    else:
        cfg, state, init_info, digest = generator_config(generator or "unet-2-44", width=width), None, "random", None
    dev = torch.device(device)
    with output_lock(out):
        if images is None:
            from fastem.data.ssl_synthetic import task_data

            n = int(synthetic)
            if n < 1:
                raise InputError(f"synthetic set size must be >= 1, got {synthetic}")
            crop = _training_crop(crop, cfg, int(synthetic_size))
            x, y = task_data(task, n, int(synthetic_size), seed=seed)
            vx, vy = task_data(task, max(2, n // 4), int(synthetic_size), seed=seed, index_base=n)
            data = {"source": "synthetic", "train": n, "size": int(synthetic_size), "val": int(vx.shape[0])}
        else:
            x, y = load_images_and_targets(images, targets, images_flag="images", targets_flag="targets")
            crop = _training_crop(crop, cfg, min(x.shape[1:]))
            if val_images is not None:
                vx, vy = load_images_and_targets(val_images, val_targets, images_flag="validation images",
                                                 targets_flag="validation targets")
            else:
                k = split_validation(x.shape[0], val_fraction)
                (x, vx), (y, vy) = ((x[:-k], x[-k:]), (y[:-k], y[-k:])) if k else ((x, None), (y, None))
            data = {"source": "images", "train": int(x.shape[0]), "size": list(x.shape[1:]),
                    "val": 0 if vx is None else int(vx.shape[0])}
        ft = FinetuneTask(cfg, task, x, y, val_inputs=vx, val_targets=vy, init_state=state, init_digest=digest,
                          epochs=epochs, crop=crop, batch=batch, seed=seed, head=head, freeze=freeze,
                          unfreeze_epoch=unfreeze_epoch, seg_loss=seg_loss, normalisation=normalisation, lr=lr,
                          augment=augment, device=dev, amp=amp)
        trainer = Trainer(ft, checkpoint=ckpt, checkpoint_every=ft.steps_per_epoch,
                          validate_every=ft.steps_per_epoch, callback=callback)
        if resume:
            trainer.resume(ckpt)
        history = trainer.run()
        metric = "dice" if task == "segment" else "l1"
        val_last = history.last("val")
        paper_crop = PAPER["segment_crop"] if task == "segment" else PAPER["restore_crop"]
        width_used = cfg["net"].get("features", cfg["net"].get("width"))
        record = {"task": task, "generator": cfg["arch"], "width": width_used,
                  "init": init_info, "epochs": int(epochs), "steps": int(ft.total_steps),
                  "steps_per_epoch": ft.steps_per_epoch, "crop": int(crop), "batch": int(batch), "seed": int(seed),
                  "head": head, "freeze": freeze, "unfreeze_epoch": unfreeze_epoch,
                  "loss": seg_loss if task == "segment" else "l1+l2", "normalisation": ft.normalisation, "lr": float(lr), "augment": bool(augment),
                  "data": data, "metric": metric, f"val_{metric}": val_last.get(metric),
                  "val_curve": [{"epoch": r["step"] // ft.steps_per_epoch, metric: r.get(metric)} for r in history.val],
                  "device": str(dev), "device_name": _device_name(dev), "amp": bool(amp and dev.type == "cuda"),
                  "train_seconds": round(trainer.elapsed, 1), "command": command, "torch": torch.__version__,
                  "scaled_down": _scaled([("epochs", epochs, PAPER["finetune_epochs"]), ("crop", crop, paper_crop)])}
        save_model(out, ft.generator, kind=MODEL_KIND, config=cfg, record=record, overwrite=overwrite or resume,
                   inputs=[*inputs, init] if init is not None else inputs)
        if curves is not None:
            write_curves(history, curves, train=("loss",), val=(metric,),
                         title=f"{task} {cfg['arch']} ({'pretrained' if init is not None else 'random init'})")
    return ft.generator, history, record


# ------------------------------------------------------------------------------------------
# apply
# ------------------------------------------------------------------------------------------
def apply(model_path, images, output, *, targets=None, task: str | None = None, tile: int = 512,
          overlap: int = 32, batch: int = 4, threshold: float = 0.5, device="cpu", amp: bool = True,
          overwrite: bool = False, inputs=(), command: str | None = None, callback=None, ensemble: int = 1) -> dict:
    """Apply an ``ssl-generator`` model to images of any size and write ``output`` (HDF5).

    Parameters
    ----------
    model_path : path
        A model file from :func:`pretrain` or :func:`finetune`.
    images : (N, H, W) or (H, W) array
    output : path
        HDF5 file: ``/ssl/output`` (segment: the uint8 mask ``probability > threshold``;
        otherwise the restored images, float32, in the input's intensity units), for
        segmentation also ``/ssl/probability``; provenance and results in ``/process/fastem``.
    targets : array, optional
        Masks / clean images of the same shape: metrics are computed (segment: Dice per image
        and mean; otherwise L1 and RMSE in intensity units, and the input's own L1 as a baseline).
    task : str, optional
        The task the model must have been trained for (refused otherwise).
    tile, overlap, batch, device, amp
        Tiled inference (:func:`fastem.nn.inference.tiled_apply`).
    threshold : float
        Segmentation threshold on the probability.
    ensemble : {1, 2, 4, 8}
        Average each output over this many dihedral transforms of the input (self-ensemble;
        :func:`fastem.nn.inference.tiled_apply`): ``ensemble`` times the inference work.

    Returns
    -------
    dict of results (``task``, ``n``, metrics).
    """
    import torch

    from fastem.io import PROCESS_GROUP, atomic_output, check_output, output_lock, provenance, require_finite_result
    from fastem.io import write_process_group
    from fastem.nn.inference import check_ensemble
    from fastem.nn.model import load_model
    from fastem.nn.ssl_models import MODEL_KIND, describe_generator
    from fastem.nn.ssl_train import dice_scores, predict
    from fastem.scan.h5guard import guarded_h5

    out = check_output(output, overwrite=overwrite, inputs=[*inputs, model_path])
    if not 0 < threshold < 1:
        raise InputError(f"threshold must be in (0, 1), got {threshold}")
    ensemble = check_ensemble(ensemble)
    x = _float_images(images, "images")
    t = None
    if targets is not None:
        t = _float_images(targets, "targets")
        if t.shape != x.shape:
            raise InputError(f"targets {t.shape} and images {x.shape} differ in count or shape")
    model, info = load_model(model_path, kind=MODEL_KIND, device=device)
    rec = info.get("record") or {}
    mtask = rec.get("task")
    if task is not None and mtask != task:
        raise InputError(f"{model_path}: a {mtask!r} model, not a {task!r} model")
    # models written before the "normalisation" record were all trained on standardised inputs
    norm = rec.get("normalisation", "standardise")
    if norm not in ("standardise", "scale"):
        raise InputError(f"{model_path}: unknown normalisation {norm!r} in the model record")
    dev = torch.device(device)
    with output_lock(out):
        chunk = max(1, int(batch))
        pieces = []
        for i in range(0, x.shape[0], chunk):
            try:
                pieces.append(predict(model, x[i:i + chunk], mtask, tile=tile, overlap=overlap, batch=batch,
                                      device=dev, amp=amp, normalisation=norm, ensemble=ensemble))
            except (torch.cuda.OutOfMemoryError, MemoryError) as exc:
                raise InputError(f"{Path(model_path).name}: out of memory on {dev} ({type(exc).__name__}); "
                                 f"lower --batch or --tile") from None
            if callback is not None:
                callback({"kind": "apply", "done": min(i + chunk, x.shape[0]), "total": x.shape[0]})
        y = np.concatenate(pieces)
        require_finite_result(y, f"{out}: {OUTPUT_GROUP}/output", hint="the model file may be damaged")
        results = {"task": mtask, "n": int(x.shape[0]), "model": Path(model_path).name,
                   "generator": describe_generator(info["config"])}
        if t is not None:
            if mtask == "segment":
                d = dice_scores(y, t, threshold)
                results.update(dice=float(d.mean()), dice_per_image=d.tolist())
            else:
                err = y.astype(np.float64) - t
                results.update(l1=float(np.mean(np.abs(err))), rmse=float(np.sqrt(np.mean(err ** 2))),
                               l1_input=float(np.mean(np.abs(x.astype(np.float64) - t))))
        config = {"model": {"file": Path(model_path).name, "sha256": _sha256(model_path), "record": rec},
                  "tile": tile, "overlap": overlap, "batch": batch, "threshold": threshold, "device": str(dev),
                  "ensemble": ensemble}
        with atomic_output(out, overwrite=overwrite, inputs=[*inputs, model_path]) as tmp, guarded_h5(tmp, out) as f:
            g = f.create_group(OUTPUT_GROUP)
            if mtask == "segment":
                g.create_dataset("output", data=(y > threshold).astype(np.uint8), compression="gzip")
                g["output"].attrs["description"] = f"particle mask (probability > {threshold})"
                g.create_dataset("probability", data=y, compression="gzip")
                g["probability"].attrs["description"] = "particle probability"
            else:
                g.create_dataset("output", data=y, compression="gzip")
                g["output"].attrs["description"] = f"{mtask} output, in the input's intensity units"
            g.attrs["task"] = str(mtask)
            g.attrs["model"] = Path(model_path).name
            write_process_group(f.require_group(PROCESS_GROUP), provenance(command=command, config=config,
                                                                           device=str(dev)),
                                {k: v for k, v in results.items() if k not in ("task", "model", "generator")})
    return results


#: API phrases of this module -> the ``fastem ssl`` flags (for :func:`cli_message`)
_CLI_PHRASES = {"crop: ": "--crop: ", "; init needs ": "; --init needs ", ", not generator ": ", not --generator ",
                "; leave generator out": "; leave --generator out", ", not width ": ", not --width ",
                "(run without resume first)": "(run without --resume first)"}


def cli_message(message: str) -> str:
    """A job error with its parameter names replaced by the ``fastem ssl`` flags (the CLI calls this)."""
    if message.startswith("crop: "):
        return "--crop: " + message[len("crop: "):]
    for api, cli in _CLI_PHRASES.items():
        if api != "crop: ":
            message = message.replace(api, cli)
    return message
