"""How the pretrained head start depends on the labelled-set size (issue 13, a diagnostic).

Seed 002's claim is for small labelled sets: a pretrained generator fine-tunes much faster. Its
epoch-5 figure mixes two things, the amount of labelled data and the number of optimiser steps
an epoch has (the paper does not give its segmentation batch size). This script pretrains the
small generator (U-Net_2_44, width 16 or ``--width``; ``--generator unet-4-424`` for the large
one, 96 px crops) once on the main synthetic pool (as
``bench/reproduce_ssl.py`` does: 256 images of 96 px, 10 epochs, batch 16), then fine-tunes it and
the same architecture from random weights on the synthetic HRTEM nanoparticles with
``--sizes`` labelled images (batch 8, the same 16 validation images), 3 seeds each, and reports
the validation Dice after every epoch, the pretrained / random ratio at epoch 5, and the ratio
at equal optimiser steps (the epochs at which both have taken the same number of steps).

Usage: ``nice -n 10 .venv/bin/python bench/ssl_label_sweep.py [--sizes 16 32 64] [--epochs 10]``
-> ``bench/results/ssl_label_sweep.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import write_results  # noqa: E402
from bench.reproduce_ssl import finetune_curve, pretrain_all  # noqa: E402

RESULTS = ROOT / "bench" / "results"
#: the fine-tuning learning rate of seed 002 (Adam) and fastem.nn.ssl_train.FinetuneTask's default
FINETUNE_LR = 2e-4


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--generator", default="unet-2-44", help="unet-2-44 (small, default) or unet-4-424 (large)")
    ap.add_argument("--width", type=int, default=16,
                    help="generator width (U-Net level-0 channels / HRNet branch width; default 16)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--pool", type=int, default=256)
    ap.add_argument("--pretrain-epochs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--head", choices=("auto", "keep", "new"), default="auto",
                    help="fine-tuning: keep the pretrained 1x1 output convolution or start a new one (auto, the "
                         "library's default: new for segmentation)")
    ap.add_argument("--freeze", choices=("none", "encoder", "all-but-head"), default="none",
                    help="fine-tuning policy (fastem ssl finetune --freeze): parts kept fixed until --unfreeze-epoch")
    ap.add_argument("--unfreeze-epoch", type=int, default=None,
                    help="epoch (0-based) from which the --freeze parts train too (default: frozen throughout)")
    ap.add_argument("--freeze-pretrained-only", action="store_true",
                    help="apply --freeze to the pretrained start only (random weights then train whole)")
    ap.add_argument("--lr", type=float, default=FINETUNE_LR,
                    help=f"fine-tuning Adam learning rate (default {FINETUNE_LR:g}, the paper's)")
    ap.add_argument("--pretrained-cache", type=Path, default=None,
                    help="load the pretrained generator from this file when it exists (same generator, pool and "
                         "epochs, checked), else pretrain and save it there")
    ap.add_argument("--contrast", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                    help="amplitude contrast range of the synthetic nanoparticles, in background-speckle stds "
                         "(default: hrtem_nanoparticles' own, 0.2 0.6; lower is harder to learn from scratch)")
    ap.add_argument("--geometric", choices=("both", "input"), default="both",
                    help="pretext flips / rotations: of the input and the target (default, augmentation) or of the "
                         "input only (the paper's literal wording: the generator restores the unrotated original)")
    ap.add_argument("--quick", action="store_true", help="tiny smoke run (numbers meaningless)")
    ap.add_argument("--resummarise", type=Path, default=None, metavar="RECORD.json",
                    help="no training: add the all-particle Dice of the record's validation set and the "
                         "generator's parameter count to a record made before they were reported, and rewrite "
                         "its .json and .md")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.resummarise is not None:
        return resummarise(args.resummarise)
    import torch

    from fastem.data.ssl_synthetic import task_data
    from fastem.nn.ssl_models import generator_config

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.sizes, args.epochs, args.seeds, args.pool, args.pretrain_epochs = [8], 2, 1, 16, 1
    a = SimpleNamespace(crop=64, pool_size=96, batch=16, disc_width=32, ft_batch=8, device="cpu", data_seed=0,
                        pretrain_epochs=args.pretrain_epochs, pool_main=args.pool, normalisation="auto", head=args.head,
                        geometric=args.geometric)
    t0 = time.time()
    cfg = generator_config(args.generator, width=args.width)
    pre = _pretrained(cfg, args, a)
    state = pre["states"]["small", args.pool]
    data_options = {} if args.contrast is None else {"amplitude_contrast": tuple(args.contrast)}
    vx, vy = task_data("segment", 16, 96, seed=a.data_seed + 1, index_base=10_000,
                       **data_options)  # the same validation set
    all_particle = all_particle_dice(vy)
    curves = {}
    for n in args.sizes:
        x, y = task_data("segment", n, 96, seed=a.data_seed + 1, **data_options)
        for init_name, init in (("pretrained", state), ("random", None)):
            policy = "none" if (init is None and args.freeze_pretrained_only) else args.freeze
            ft = SimpleNamespace(**{**vars(a), "freeze": policy, "unfreeze_epoch": args.unfreeze_epoch, "lr": args.lr})
            runs = [finetune_curve(cfg, "segment", (x, y, vx, vy), init, s, args.epochs, ft)
                    for s in range(args.seeds)]
            curves[f"{n}/{init_name}"] = runs
            print(f"{n} labelled, {init_name}: Dice per epoch "
                  + ", ".join(f"{np.mean([r[e] for r in runs]):.3f}" for e in range(args.epochs)), flush=True)
    command = " ".join(["bench/ssl_label_sweep.py", *(argv if argv is not None else sys.argv[1:])])
    report = {"command": command, "generator": args.generator, "head": args.head, "torch": torch.__version__, "threads": torch.get_num_threads(),
              "wall_s": round(time.time() - t0, 1), "pretraining": pre["meta"], "sizes": args.sizes,
              "amplitude_contrast": args.contrast, "all_particle_dice": all_particle,
              "epochs": args.epochs, "seeds": args.seeds, "batch": a.ft_batch, "curves": curves,
              "freeze": args.freeze, "unfreeze_epoch": args.unfreeze_epoch,
              "freeze_pretrained_only": args.freeze_pretrained_only, "lr": args.lr, "geometric": args.geometric,
              "width": args.width,
              "parameters": parameter_count(args.generator, args.width)}
    stem = "ssl_label_sweep" + ("" if args.generator == "unet-2-44" else f"_{args.generator}") + \
        ("" if args.width == 16 else f"_w{args.width}") + \
        ("" if args.head == "auto" else f"_head-{args.head}") + \
        ("" if args.contrast is None else "_contrast{:g}-{:g}".format(*args.contrast)) + \
        ("" if args.freeze == "none" else f"_freeze-{args.freeze}"
         + ("" if args.unfreeze_epoch is None else f"-until{args.unfreeze_epoch}")
         + ("-pretrained-only" if args.freeze_pretrained_only else "")) + \
        ("" if args.lr == FINETUNE_LR else f"_lr{args.lr:g}") + \
        ("" if args.geometric == "both" else f"_geometric-{args.geometric}") + \
        ("-quick" if args.quick else "")
    md = summarise(report)
    write_results(args.out, stem, report, md)
    print("\n" + md)
    return report


def all_particle_dice(masks) -> float:
    """Mean Dice of the trivial segmenter that calls every pixel a particle: a fine-tuned model
    below it has learned nothing yet."""
    from fastem.nn.ssl_train import dice_scores

    return float(dice_scores(np.ones(np.shape(masks), np.float32), masks).mean())


def parameter_count(generator: str, width: int = 16) -> int:
    """Trainable parameters of ``generator`` at ``width`` (the sweep's default 16), as built for fine-tuning."""
    from fastem.nn.ssl_models import build_generator, generator_config

    return sum(p.numel() for p in build_generator(generator_config(generator, width=width)).parameters())


def resummarise(path: Path) -> dict:
    """Add ``all_particle_dice`` (the same validation set: 16 images of 96 px, data seed 1, index
    base 10000, the record's contrast) and the generator's ``parameters`` to a record made before
    they were reported; rewrite it."""
    import json

    from fastem.data.ssl_synthetic import task_data

    report = json.loads(Path(path).read_text())
    contrast = report.get("amplitude_contrast")
    options = {} if not contrast else {"amplitude_contrast": tuple(contrast)}
    _, vy = task_data("segment", 16, 96, seed=1, index_base=10_000, **options)
    report["all_particle_dice"] = all_particle_dice(vy)
    report["parameters"] = parameter_count(report.get("generator", "unet-2-44"), report.get("width", 16))
    md = summarise(report)
    write_results(Path(path).parent, Path(path).stem, report, md)
    print(md)
    return report


def _pretrained(cfg, args, a) -> dict:
    """:func:`pretrain_all` for this generator and pool, or its result cached in ``--pretrained-cache``
    (refused when it was made with another generator, pool, number of epochs or pretext geometry)."""
    import torch

    from fastem.errors import InputError

    key = {"generator": args.generator, "pool": args.pool, "pretrain_epochs": args.pretrain_epochs}
    if args.width != 16:               # caches made before the option hold width 16 without saying so
        key["width"] = args.width
    if args.geometric != "both":       # caches made before the option hold "both" without saying so
        key["geometric"] = args.geometric
    path = args.pretrained_cache
    if path is not None and path.exists():
        saved = torch.load(path, map_location="cpu", weights_only=False)
        if saved["key"] != key:
            raise InputError(f"--pretrained-cache {path} holds {saved['key']}, not {key}")
        return {"states": {("small", args.pool): saved["state"]}, "meta": saved["meta"]}
    pre = pretrain_all({"small": cfg}, [args.pool], a, log=lambda m: print(m, flush=True))
    if path is not None:
        from fastem.io import atomic_output

        with atomic_output(path) as tmp:
            torch.save({"key": key, "state": pre["states"]["small", args.pool], "meta": pre["meta"]}, tmp)
    return pre


def summarise(r: dict) -> str:
    e = r["epochs"]
    lines = [f"# Pretrained head start vs labelled-set size (segmentation, {r.get('generator', 'unet-2-44')})", "",
             f"Command: `{r['command']}`; torch {r['torch']}, {r['threads']} threads, {r['wall_s']:.0f} s; "
             f"pretraining {r['pretraining']}; fine-tuning batch {r['batch']}, head {r.get('head', 'keep (before the option)')}, "
             f"{r['seeds']} seeds, "
             + (f"nanoparticle amplitude contrast {r['amplitude_contrast']} speckle stds, "
                if r.get("amplitude_contrast") else "")
             + (f"freeze {r['freeze']}"
                + (" throughout" if r.get("unfreeze_epoch") is None else f" until epoch {r['unfreeze_epoch']}")
                + (" (pretrained start only; random weights train whole)" if r.get("freeze_pretrained_only")
                   else " (both starts)") + ", "
                if r.get("freeze", "none") != "none" else "")
             + (f"learning rate {r['lr']:g}, " if r.get("lr", FINETUNE_LR) != FINETUNE_LR else "")
             + ("pretext flips / rotations of the input only, " if r.get("geometric", "both") == "input" else "")
             + "16 validation images; Dice (%) mean over seeds.", "",
             "| labelled images | steps / epoch | init | " + " | ".join(f"ep {i + 1}" for i in range(e)) + " |",
             "|" + " --- |" * (e + 3)]
    ratios = []
    for n in r["sizes"]:
        spe = math.ceil(n / r["batch"])
        means = {}
        for init in ("pretrained", "random"):
            runs = np.array(r["curves"][f"{n}/{init}"])
            means[init] = runs.mean(axis=0)
            lines.append(f"| {n} | {spe} | {init} | " + " | ".join(f"{100 * v:.1f}" for v in means[init]) + " |")
        ep5 = min(5, e) - 1
        ratio5 = means["pretrained"][ep5] / max(means["random"][ep5], 1e-9)
        ratios.append(f"- {n} labelled images ({spe} steps per epoch): pretrained / random at epoch {ep5 + 1} = "
                      f"{ratio5:.2f}x ({100 * means['pretrained'][ep5]:.1f} vs {100 * means['random'][ep5]:.1f}); "
                      f"best ratio over the epochs {max(means['pretrained'] / np.maximum(means['random'], 1e-9)):.2f}x")
    if r.get("parameters") is not None:
        ratios.append(f"- {r.get('generator', 'unet-2-44')} (width {r.get('width', 16)}) has {r['parameters']:,} "
                      "trainable parameters")
    if r.get("all_particle_dice") is not None:
        ratios.append("- the trivial segmenter that calls every pixel a particle scores "
                      f"{100 * r['all_particle_dice']:.1f} on these validation images")
    return "\n".join(lines + ["", *ratios]) + "\n"


if __name__ == "__main__":
    main()
