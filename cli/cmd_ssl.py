"""``fastem ssl pretrain | finetune | apply``: self-supervised GAN pretraining for micrographs (issue 13).

Images, masks and targets are read with fastem's readers (HDF5 ``FILE:/dataset``, CXI, EMD,
MRC, TIFF; ``(N, rows, cols)`` stacks or single images). Runs on the global ``--device``
(CUDA when a GPU is there, with bfloat16 mixed precision unless ``--no-amp``).
"""

from __future__ import annotations

import click

from fastem.cli.cmd_scan import _command_line, _need_torch, _torch_device  # shared CLI helpers

GENERATOR_CHOICES = ("unet-2-44", "unet-2-84", "unet-2-116", "unet-3-96", "unet-3-176", "unet-3-240",
                     "unet-4-200", "unet-4-360", "unet-4-424", "hrnet")
TASK_CHOICES = ("segment", "denoise", "background", "superres")


@click.group("ssl")
def command():
    """Self-supervised GAN pretraining (Pix2Pix on unlabelled micrographs) and fine-tuning for
    segmentation, denoising, background removal and super-resolution."""


def _flags(message: str) -> str:
    from fastem.ssl.job import cli_message

    return cli_message(message)


def _progress(total: int, label: str, metric: str):
    """A progress bar driven by the trainer's events: loss, epoch and the last validation metric."""
    from fastem.progress import progress

    bar = progress(total, label, unit="step")
    last = {}

    def callback(event):
        kind = event.get("kind")
        if kind == "train":
            bar.n = int(event["step"])
            post = {k: f"{event[k]:.4f}" for k in ("loss", "loss_g", "loss_d") if k in event}
            if metric in last:
                post[f"val_{metric}"] = f"{last[metric]:.4f}"
            bar.set_postfix(post, refresh=False)
            bar.refresh()
        elif kind == "val" and metric in event:
            last[metric] = event[metric]
    return bar, callback


@command.command("pretrain")
@click.argument("images", required=False, metavar="[IMAGES]")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Pretrained model file to write (PRETRAINED.pt; its checkpoint is PRETRAINED.pt.ckpt).")
@click.option("--generator", type=click.Choice(GENERATOR_CHOICES), default="unet-2-44", show_default=True,
              help="Generator: U-Net_B_RF (B residual-block levels, receptive field RF px) or HRNet.")
@click.option("--width", type=click.IntRange(min=1), default=None,
              help="U-Net level-0 channels (default 16; 32 gave a small U-Net the paper's head start, "
                   "docs/ssl.md) or HRNet branch width (default 18).")
@click.option("--epochs", type=click.IntRange(min=1), default=1, show_default=True, help="Epochs over the pool.")
@click.option("--crop", type=click.IntRange(min=24), default=None,
              help="Training crop side (px; the PatchGAN needs >= 24; a multiple of the generator's total "
                   "downsampling, e.g. 48 for unet-4-424). Default: 64 rounded up to such a multiple.")
@click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True, help="Crops per step.")
@click.option("--synthetic", type=click.IntRange(min=1), default=None, metavar="N",
              help="Pretrain on N synthetic micrographs (default when IMAGES is not given: 256).")
@click.option("--synthetic-size", type=click.IntRange(min=16), default=None, metavar="PX",
              help="Side of the synthetic micrographs (default: --crop).")
@click.option("--mix", type=click.Choice(["paper", "noise", "blur", "noise+blur"]), default="paper",
              show_default=True, help="Pretext corruptions: the paper's mix or one kind.")
@click.option("--geometric", type=click.Choice(["both", "input"]), default="both", show_default=True,
              help="Flips/rotations on input and target alike (augmentation), or on the input only.")
@click.option("--disc-width", type=click.IntRange(min=1), default=64, show_default=True,
              help="PatchGAN first-layer channels (64 = Pix2Pix).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--val-fraction", type=click.FloatRange(min=0, max=0.9), default=0.1, show_default=True,
              help="Share of IMAGES held out for validation (the last ones).")
@click.option("--curves", type=click.Path(dir_okay=False), default=None, help="Write loss/validation curves PNG.")
@click.option("--no-amp", is_flag=True, help="No mixed precision on the GPU.")
@click.option("--resume", is_flag=True, help="Continue from PRETRAINED.pt.ckpt (same data and settings only).")
@click.option("--overwrite", is_flag=True, help="Replace PRETRAINED.pt if it exists.")
def pretrain(images, output, generator, width, epochs, crop, batch, synthetic, synthetic_size, mix, geometric,
             disc_width, seed, val_fraction, curves, no_amp, resume, overwrite):
    """Pretrain a generator as a Pix2Pix GAN restoring corrupted micrographs (noise, blur, flips,
    rotations; LSGAN + 100 L1, Adam 2e-4, betas 0.5/0.999) on IMAGES or a synthetic pool.

    Example: fastem ssl pretrain --synthetic 512 -o pretrained.pt --generator unet-2-44 --epochs 5 --crop 64
    """
    from fastem.config import settings
    from fastem.errors import InputError

    _need_torch("ssl pretrain")
    from fastem.nn.ssl_corrupt import CorruptionConfig
    from fastem.ssl import load_images_and_targets, pretrain as run_pretrain

    if images is not None and synthetic is not None:
        raise InputError("give IMAGES or --synthetic N, not both")
    arr = None
    if images is not None:
        arr, _ = load_images_and_targets(images)
        if crop is not None and min(arr.shape[1:]) < crop:
            raise InputError(f"IMAGES {images}: images of {arr.shape[1]}x{arr.shape[2]} are smaller than --crop {crop}")
    if synthetic_size is not None and crop is not None and synthetic_size < crop:
        raise click.BadParameter(f"must be at least --crop {crop}", param_hint="--synthetic-size")
    device = _torch_device()
    from fastem.nn.ssl_train import EpochSampler

    n_train = arr.shape[0] if arr is not None else (synthetic or 256)
    total = epochs * EpochSampler(max(1, n_train), batch, seed).steps_per_epoch
    bar, callback = _progress(total, "ssl pretrain", "l1")
    try:
        _, _, record = run_pretrain(
            output, images=arr, synthetic=None if arr is not None else (synthetic or 256),
            synthetic_size=synthetic_size,
            generator=generator, width=width, epochs=epochs, crop=crop, batch=batch, seed=seed,
            corruption=CorruptionConfig(mix=mix, geometric=geometric), disc_features=disc_width, device=device,
            amp=not no_amp, resume=resume, overwrite=overwrite, val_fraction=val_fraction, callback=callback,
            command=_command_line(), curves=curves, inputs=[images] if images is not None else [])
    except InputError as exc:   # the job names parameters; the CLI names flags
        raise InputError(_flags(str(exc))) from None
    finally:
        bar.close()
    if not settings.quiet:
        val = record.get("val_l1")
        extra = f", validation L1 {val:.4f} (corrupted input {record['val_l1_input']:.4f})" if val is not None else ""
        click.echo(f"{output}: pretrained {record['generator']} after {record['epochs']} epochs "
                   f"({record['steps']} steps) "
                   f"in {record['train_seconds']:.0f} s{extra}")


@command.command("finetune")
@click.argument("images", required=False, metavar="[IMAGES]")
@click.option("--task", type=click.Choice(TASK_CHOICES), required=True, help="Downstream task.")
@click.option("--targets", default=None, metavar="TARGETS",
              help="Masks (segment; nonzero = particle) or clean / background-free / high-resolution images, "
                   "one per image of IMAGES.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Model file to write (MODEL.pt).")
@click.option("--init", "init", type=click.Path(dir_okay=False), default=None,
              help="Start from this pretrained model (from `fastem ssl pretrain`).")
@click.option("--from-scratch", is_flag=True, help="Start from random weights (the comparison baseline).")
@click.option("--generator", type=click.Choice(GENERATOR_CHOICES), default=None,
              help="Architecture with --from-scratch (default unet-2-44); with --init it must match the file.")
@click.option("--width", type=click.IntRange(min=1), default=None, help="Generator width (see `ssl pretrain`).")
@click.option("--epochs", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--crop", type=click.IntRange(min=16), default=None,
              help="Training crop side (px; a multiple of the generator's total downsampling, e.g. 48 for "
                   "unet-4-424). Default: 64 rounded up to such a multiple.")
@click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--head", type=click.Choice(["auto", "keep", "new"]), default="auto", show_default=True,
              help="Keep the pretrained output layer or start a new one; auto: new for segment, kept for the "
                   "restoration tasks.")
@click.option("--freeze", type=click.Choice(["none", "encoder", "all-but-head"]), default="none",
              show_default=True, help="Parts kept fixed (until --unfreeze-epoch).")
@click.option("--unfreeze-epoch", type=click.IntRange(min=1), default=None,
              help="Frozen parts train too after this many epochs (default: frozen throughout).")
@click.option("--seg-loss", type=click.Choice(["bce", "bce+dice"]), default="bce", show_default=True)
@click.option("--normalise", "normalisation", type=click.Choice(["auto", "standardise", "scale"]), default="auto",
              show_default=True, help="Per-image normalisation of restoration targets with their input's statistics (inputs "
              "are always standardised): standardise (input mean and std) or scale (input std only, zero kept); "
              "auto: scale for background and superres, whose targets are background-free, standardise otherwise.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True, max=1.0), default=2e-4, show_default=True)
@click.option("--val-images", default=None, help="Validation images (default: hold out --val-fraction of IMAGES).")
@click.option("--val-targets", default=None, help="Targets of --val-images.")
@click.option("--val-fraction", type=click.FloatRange(min=0, max=0.9), default=0.2, show_default=True)
@click.option("--synthetic", type=click.IntRange(min=1), default=None, metavar="N",
              help="Train on N synthetic examples of the task instead of IMAGES/--targets.")
@click.option("--synthetic-size", type=click.IntRange(min=16), default=128, show_default=True, metavar="PX")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--no-augment", is_flag=True, help="No random flips / rotations / noise.")
@click.option("--curves", type=click.Path(dir_okay=False), default=None, help="Write loss/validation curves PNG.")
@click.option("--no-amp", is_flag=True, help="No mixed precision on the GPU.")
@click.option("--resume", is_flag=True, help="Continue from MODEL.pt.ckpt (same data and settings only).")
@click.option("--overwrite", is_flag=True, help="Replace MODEL.pt if it exists.")
def finetune(images, task, targets, output, init, from_scratch, generator, width, epochs, crop, batch, head, freeze,
             unfreeze_epoch, seg_loss, normalisation, lr, val_images, val_targets, val_fraction, synthetic, synthetic_size, seed,
             no_augment, curves, no_amp, resume, overwrite):
    """Fine-tune a pretrained generator (--init) on a downstream task, or train the same
    architecture from random weights (--from-scratch). Validation Dice (segment) or L1 after
    every epoch; checkpoints beside MODEL.pt.

    Example: fastem ssl finetune imgs.h5:/images --targets masks.h5:/masks --task segment --init pretrained.pt -o seg.pt
    """
    from fastem.config import settings
    from fastem.errors import InputError

    _need_torch("ssl finetune")
    from fastem.nn.ssl_train import EpochSampler
    from fastem.ssl import finetune as run_finetune
    from fastem.ssl import load_images_and_targets, split_validation

    if (init is None) == (not from_scratch):
        raise InputError("give --init PRETRAINED.pt or --from-scratch (one of them)")
    if images is not None and synthetic is not None:
        raise InputError("give IMAGES with --targets, or --synthetic N, not both")
    if images is None and synthetic is None:
        raise InputError("give IMAGES with --targets (or --synthetic N)")
    if images is not None and targets is None:
        raise InputError(f"IMAGES need --targets ({'masks' if task == 'segment' else 'target images'})")
    if images is None and targets is not None:
        raise InputError("--targets needs IMAGES")
    if (val_images is None) != (val_targets is None):
        raise InputError("--val-images and --val-targets go together")
    x = y = vx = vy = None
    inputs = [p for p in (images, targets, val_images, val_targets) if p is not None]
    if images is not None:
        x, y = load_images_and_targets(images, targets)
        if crop is not None and min(x.shape[1:]) < crop:
            raise InputError(f"IMAGES {images}: images of {x.shape[1]}x{x.shape[2]} are smaller than --crop {crop}")
        if val_images is not None:
            vx, vy = load_images_and_targets(val_images, val_targets, images_flag="--val-images",
                                             targets_flag="--val-targets")
    elif crop is not None and synthetic_size < crop:
        raise click.BadParameter(f"must be at least --crop {crop}", param_hint="--synthetic-size")
    device = _torch_device()
    n_train = synthetic if x is None else (x.shape[0] - (0 if vx is not None else split_validation(x.shape[0],
                                                                                                     val_fraction)))
    total = epochs * EpochSampler(max(1, n_train), batch, seed).steps_per_epoch
    metric = "dice" if task == "segment" else "l1"
    bar, callback = _progress(total, f"ssl finetune {task}", metric)
    try:
        _, _, record = run_finetune(
            output, task=task, images=x, targets=y, synthetic=synthetic, synthetic_size=synthetic_size,
            val_images=vx, val_targets=vy, val_fraction=val_fraction, init=init, generator=generator, width=width,
            epochs=epochs, crop=crop, batch=batch, seed=seed, head=head, freeze=freeze,
            unfreeze_epoch=unfreeze_epoch, seg_loss=seg_loss, normalisation=normalisation, lr=lr,
            augment=not no_augment, device=device, amp=not no_amp, resume=resume, overwrite=overwrite, callback=callback, command=_command_line(),
            curves=curves, inputs=inputs)
    except InputError as exc:   # the job names parameters; the CLI names flags
        raise InputError(_flags(str(exc))) from None
    finally:
        bar.close()
    if not settings.quiet:
        val = record.get(f"val_{metric}")
        how = "pretrained" if init is not None else "random init"
        extra = f", validation {metric} {val:.4f}" if val is not None else ""
        click.echo(f"{output}: {task} {record['generator']} ({how}) after {epochs} epochs in "
                   f"{record['train_seconds']:.0f} s{extra}")


@command.command("apply")
@click.argument("model", type=click.Path(dir_okay=False), metavar="MODEL.pt")
@click.argument("source", metavar="IN")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="HDF5 file to write (OUT.h5).")
@click.option("--targets", default=None, help="Masks / clean images of IN: report Dice or L1.")
@click.option("--task", type=click.Choice(("pretext",) + TASK_CHOICES), default=None,
              help="Refuse a model trained for another task.")
@click.option("--tile", type=click.IntRange(min=32), default=512, show_default=True, help="Tile side (px).")
@click.option("--overlap", type=click.IntRange(min=0), default=None,
              help="Tile overlap (px; default min(32, --tile / 4)).")
@click.option("--batch", type=click.IntRange(min=1), default=4, show_default=True, help="Tiles per forward pass.")
@click.option("--threshold", type=click.FloatRange(min=0, max=1, min_open=True, max_open=True), default=0.5,
              show_default=True, help="Segmentation threshold on the probability.")
@click.option("--ensemble", type=click.Choice(["1", "2", "4", "8"]), default="1", show_default=True,
              help="Average each output over this many flips / rotations of the input (self-ensemble: "
                   "8 = all eight, 8x the time).")
@click.option("--no-amp", is_flag=True, help="No mixed precision on the GPU.")
@click.option("--overwrite", is_flag=True, help="Replace OUT.h5 if it exists.")
def apply(model, source, output, targets, task, tile, overlap, batch, threshold, ensemble, no_amp, overwrite):
    """Apply a pretrained or fine-tuned model to IN (images of any size, by tiles): /ssl/output holds
    the masks (segment; /ssl/probability too) or the restored images.

    Example: fastem ssl apply seg.pt test.h5:/images --targets test.h5:/masks -o seg_out.h5
    """
    from fastem.config import settings

    _need_torch("ssl apply")
    from fastem.progress import progress
    from fastem.errors import InputError
    from fastem.ssl import apply as run_apply
    from fastem.ssl import load_images_and_targets

    if overlap is None:
        overlap = min(32, tile // 4)
    if overlap >= tile:
        raise click.BadParameter(f"must be smaller than --tile {tile}", param_hint="--overlap")
    x, t = load_images_and_targets(source, targets, images_flag="IN")
    bar = progress(x.shape[0], "ssl apply", unit="image")

    def callback(event):
        bar.n = int(event["done"])
        bar.refresh()

    try:
        results = run_apply(model, x, output, targets=t, task=task, tile=tile, overlap=overlap, batch=batch,
                            threshold=threshold, device=_torch_device(), amp=not no_amp, overwrite=overwrite,
                            inputs=[source] + ([targets] if targets else []), command=_command_line(),
                            callback=callback, ensemble=int(ensemble))
    except InputError as exc:   # the job names parameters; the CLI names flags
        raise InputError(_flags(str(exc))) from None
    finally:
        bar.close()
    if not settings.quiet:
        extra = ""
        if "dice" in results:
            extra = f", Dice {results['dice']:.4f}"
        elif "l1" in results:
            extra = f", L1 {results['l1']:.4g} (input {results['l1_input']:.4g})"
        click.echo(f"{output}: {results['n']} {results['task']} outputs{extra}")
