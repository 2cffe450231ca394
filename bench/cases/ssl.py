"""Self-supervised GAN pretraining (issue 13): pretext and fine-tuning steps per second, inference per 512x512.

Rows per generator (U-Net_2_44, U-Net_4_424, HRNet at their default widths):

* ``pretext step``: one Pix2Pix step (corruption of the batch, generator forward, PatchGAN
  update, generator update with LSGAN + 100 L1), ``work`` = crops;
* ``finetune step``: one segmentation fine-tuning step (BCE), ``work`` = crops;
* ``inference``: :func:`fastem.nn.ssl_train.predict` on one 512 x 512 image (one tile), ``work`` =
  images.

CPU: 128 px crops, batch 8 (the paper: batch 128 for pretraining, 256 px / batch 64 for the
restoration tasks, 448 px crops for segmentation); GPU: 256 px crops, batch 32, with bfloat16
autocast (``amp``) and, as ``reference`` rows, the same steps in float32. ``--quick`` (the test
suite's smoke run): tiny widths, 32 px crops, batch 2, a 64 px image. Each generator's crop is
raised to a multiple of its total downsampling (U-Net_4_424: 48 px, so 144 / 288 / 48 px; see
:func:`fastem.nn.ssl_train.check_crop`).
"""

from __future__ import annotations

NAME = "ssl"
DESCRIPTION = ("self-supervised GAN (seed 002): pretext / fine-tuning steps per second and inference per "
               "512x512 image, U-Net_2_44 / U-Net_4_424 / HRNet")


def run(ctx) -> None:
    from fastem import backend

    torch = backend.optional_module("torch")
    if torch is None:   # torch is an optional extra: time what runs without it
        ctx.note("torch not installed: no network rows; the synthetic data generators (NumPy) are timed alone")
        _data_only(ctx)
        return

    from fastem.data.ssl_synthetic import hrtem_nanoparticles, unlabelled_pool
    from fastem.nn.ssl_models import build_generator, generator_config
    from fastem.nn.ssl_train import FinetuneTask, PretextTask, fitting_crop, predict

    gpu = ctx.device.is_gpu
    dev = torch.device(f"cuda:{max(ctx.device.id, 0)}" if gpu else "cpu")
    if ctx.quick:
        crop, batch, image, widths, disc = 32, 2, 64, {"unet-2-44": 4, "unet-4-424": 4, "hrnet": 4}, 8
    else:
        crop, batch, image, widths, disc = (256, 32, 512, {}, 64) if gpu else (128, 8, 512, {}, 64)
        ctx.note("GPU: bfloat16 autocast rows (fastem) and float32 rows (reference)" if gpu else
                 "CPU only: no GPU was available for this run; the CUDA path (bfloat16 autocast) is not timed here")
    big = unlabelled_pool(1, image, seed=1)[0]
    sync = torch.cuda.synchronize if gpu else (lambda: None)
    modes = [(True, "fastem"), (False, "reference")] if gpu else [(False, "fastem")]
    base_crop, crops = crop, {}
    for name in ("unet-2-44", "unet-4-424", "hrnet"):
        cfg = generator_config(name, width=widths.get(name))
        # training crops must be a multiple of the generator's downsampling (U-Net_4_424: 48 px)
        crop = crops[name] = fitting_crop(base_crop, build_generator(cfg).multiple)
        pool = unlabelled_pool(max(batch, 4), crop, seed=0)
        seg_x, seg_m = hrtem_nanoparticles(max(batch, 4), crop, seed=0)
        label = f"{batch}x{crop}x{crop}"
        for amp, role in modes:
            suffix = " (bf16 autocast)" if amp else (" (fp32)" if gpu else "")
            pre = PretextTask(cfg, pool, epochs=1000, crop=crop, batch=batch, seed=0, disc_features=disc,
                              device=dev, amp=amp)
            step = {"k": 0}

            def pretext_step(pre=pre, step=step):
                pre.train_step(step["k"])
                step["k"] += 1
                sync()

            ctx.measure(f"ssl pretext step {name}", label, f"fastem PretextTask{suffix}", pretext_step, role=role,
                        work=batch, work_unit="crop", repeat=5, warmup=1)
            ft = FinetuneTask(cfg, "segment", seg_x, seg_m, epochs=1000, crop=crop, batch=batch, seed=0, device=dev,
                              amp=amp)
            fstep = {"k": 0}

            def finetune_step(ft=ft, fstep=fstep):
                ft.train_step(fstep["k"])
                fstep["k"] += 1
                sync()

            ctx.measure(f"ssl finetune step {name}", label, f"fastem FinetuneTask segment{suffix}", finetune_step,
                        role=role, work=batch, work_unit="crop", repeat=5, warmup=1)
            gen = pre.generator

            def infer(gen=gen, amp=amp):
                predict(gen, big, "pretext", tile=image, batch=1, device=dev, amp=amp)
                sync()

            ctx.measure(f"ssl inference {name}", f"1x{image}x{image}", f"fastem predict{suffix}", infer, role=role,
                        work=1, work_unit="image", repeat=5, warmup=1)
            del pre, ft, gen
    ctx.note(f"sizes: crops {', '.join(f'{k} {v}' for k, v in crops.items())} px (the smallest multiple of each "
             f"generator's downsampling >= {base_crop}), batch {batch}, inference image {image} px (one tile)")


def _data_only(ctx) -> None:
    """The seeded synthetic data the pretext and fine-tuning steps consume (NumPy/SciPy only)."""
    from fastem.data.ssl_synthetic import hrtem_nanoparticles, unlabelled_pool

    n, size = (2, 32) if ctx.quick else (8, 128)
    ctx.measure("data: unlabelled pool", f"{n}x{size}x{size}", "unlabelled_pool",
                lambda: unlabelled_pool(n, size, seed=0), work=n, work_unit="image")
    ctx.measure("data: HRTEM nanoparticles + masks", f"{n}x{size}x{size}", "hrtem_nanoparticles",
                lambda: hrtem_nanoparticles(n, size, seed=0), work=n, work_unit="image")

