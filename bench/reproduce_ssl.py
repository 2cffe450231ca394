"""Reproduce the shape of seed 002's results (self-supervised GAN pretraining) at CPU scale.

Seed 002 (Kazimi, Ruzaeva, Sandfeld) pretrains Pix2Pix generators on 50K-200K CEM500K images
and finds that fine-tuning them converges much faster than training the same networks from
random weights: Au5nmV1 nanoparticle segmentation Dice after 5 epochs 86-88 (pretrained HRNet)
vs 41 (random), 53-66 vs 0 for the small U-Net_2_44; small pretrained models match larger
random ones; the denoising / background removal / super-resolution validation L1 is lower and
smoother. Here, on fastem's synthetic stand-ins (:mod:`fastem.data.ssl_synthetic`):

1. **pretraining**: each generator (``--small``, default U-Net_2_44; ``--large``, default
   U-Net_4_424; both at ``--width``) is pretrained with the pretext task
   (:class:`fastem.nn.ssl_train.PretextTask`: the paper's corruptions, LSGAN + 100 L1, Adam 2e-4,
   betas 0.5/0.999) on unlabelled synthetic pools of ``--pools`` sizes (the paper's 50K / 100K /
   200K scaled down), ``--pretrain-epochs`` epochs of ``--crop`` px crops;
2. **segmentation** (HRTEM nanoparticles with exact masks, ``--seg-train`` training and
   ``--seg-val`` validation images of ``--seg-size`` px): every generator, pretrained on the
   middle pool and from random weights, fine-tuned with BCE (Adam 2e-4, batch ``--ft-batch``)
   for ``max(--epochs-at)`` epochs, ``--seeds`` seeds (fine-tuning seed: initialisation of random weights, batch order,
   crops, augmentation); validation Dice after each epoch of ``--epochs-at`` (paper: 5, 30, 60;
   the issue: 1, 5, 20);
3. **denoising and super-resolution** (ADF-STEM lattices): the small generator, pretrained vs
   random, validation L1 per epoch (the paper's figure 11 uses HRNet; ``--restore-generator``);
4. **pool size**: segmentation Dice of the small generator pretrained on each pool size.

Targets (issue 13): pretrained Dice after 5 epochs >= 1.5 x random's, for both generators; the
small pretrained generator at 5 epochs >= the large random one. The JSON records them as
booleans with the numbers. Everything is seeded; the runs are independent of the machine load
but not of the torch version / CPU kind (float reductions).

Crops: each generator trains on the smallest multiple of its total downsampling that is >=
``--crop`` (U-Net_2_44: 64 px; U-Net_4_424, 48 px downsampling: 96 px), the pool images are
``--pool-size`` px; see :func:`fastem.nn.ssl_train.check_crop`.

Run: ``.venv/bin/python bench/reproduce_ssl.py --threads 1`` writes
bench/results/ssl_reproduction.{json,md,png} (and, while running, ssl_reproduction.partial.json
with the finished cells). The committed result used ``--pretrain-epochs 10 --pools 128 256 512
--seg-train 64 --restore-train 64 --restore-epochs 20 --seeds 3 --threads 1``: 3012 s niced on a
loaded 2-core CPU; the defaults (pools to 1024, 128 segmentation images) take about twice as
long (estimated, not run).
``--only restore`` runs the restoration part alone (the restoration generator pretrained on the
main pool as above, then ``--restore-tasks``), written as bench/results/ssl_restoration.*; the
committed one: ``--only restore --pretrain-epochs 10 --pools 128 256 512 --restore-train 64
--restore-epochs 20 --seeds 3 --threads 1 --restore-tasks superres background denoise`` (with
``--out`` a scratch folder, then copied), 491 s.
``--quick`` is a minutes-long smoke run with tiny sizes, written as ssl_reproduction_quick.*
(its numbers mean nothing). ``--device cuda`` on a GPU (bfloat16 autocast).
"""

from __future__ import annotations

import os as _os

from fastem.config import use_passive_openmp as _use_passive_openmp  # noqa: E402
_use_passive_openmp()  # as the CLI does: PASSIVE with a short spin (bench/results/openmp_wait_policy.md)

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def _train(task, validate_every: int):
    from fastem.nn.training import Trainer

    t = Trainer(task, validate_every=validate_every)
    history = t.run()
    return history, t.elapsed


def crop_for(cfg: dict, a, side: int) -> int:
    """Training crop of generator ``cfg``: the smallest multiple of its total downsampling that is
    >= ``--crop`` (U-Net_2_44: 64; U-Net_4_424, 48 px downsampling: 96), or the largest that fits
    ``side`` (see :func:`fastem.nn.ssl_train.check_crop`)."""
    from fastem.nn.ssl_models import build_generator
    from fastem.nn.ssl_train import fitting_crop

    return fitting_crop(a.crop, build_generator(cfg).multiple, side)


def pretrain_all(gens: dict, pools: list[int], a, log, only_main: bool = False) -> dict:
    """{(generator name, pool size): state_dict} and timings; ``only_main``: every generator on
    the main pool only (the same pool images, validation crops and weights as the full run's)."""
    from fastem.data.ssl_synthetic import unlabelled_pool
    from fastem.nn.ssl_corrupt import CorruptionConfig
    from fastem.nn.ssl_train import PretextTask

    corruption = CorruptionConfig(geometric=getattr(a, "geometric", "both"))
    states, meta = {}, {}
    biggest = unlabelled_pool(max(pools), a.pool_size, seed=a.data_seed)
    val = unlabelled_pool(max(4, max(pools) // 20), a.pool_size, seed=a.data_seed, index_base=max(pools))
    for name, cfg in gens.items():
        crop = crop_for(cfg, a, a.pool_size)
        for n in pools:
            if (only_main or name != "small") and n != a.pool_main:
                continue            # the large generator is pretrained on the main pool only
            task = PretextTask(cfg, biggest[:n], val_images=val, epochs=a.pretrain_epochs, crop=crop,
                               batch=a.batch, seed=0, disc_features=a.disc_width, device=a.device,
                               corruption=corruption)
            hist, secs = _train(task, task.steps_per_epoch)
            states[name, n] = {k: v.detach().cpu().clone() for k, v in task.generator.state_dict().items()}
            meta[f"{name}@{n}"] = {"steps": task.total_steps, "seconds": round(secs, 1), "crop": crop,
                                   "val_l1": [round(r["l1"], 4) for r in hist.val],
                                   "val_l1_input": round(hist.val[-1]["l1_input"], 4)}
            log(f"pretrained {cfg['arch']} on {n} ({crop} px crops): {task.total_steps} steps, {secs:.0f} s, "
                f"val L1 {hist.val[-1]['l1']:.4f} (input {hist.val[-1]['l1_input']:.4f})")
    return {"states": states, "meta": meta}


def finetune_curve(cfg, task: str, data, init, seed: int, epochs: int, a) -> list[float]:
    """Validation metric after each epoch (Dice for segment, L1 otherwise)."""
    from fastem.nn.ssl_train import FinetuneTask

    x, y, vx, vy = data
    crop = crop_for(cfg, a, min(x.shape[1:]))
    ft = FinetuneTask(cfg, task, x, y, val_inputs=vx, val_targets=vy, init_state=init, epochs=epochs, crop=crop,
                      batch=a.ft_batch, seed=seed, device=a.device, normalisation=getattr(a, "normalisation", "auto"),
                      head=getattr(a, "head", "auto"), freeze=getattr(a, "freeze", "none"),
                      unfreeze_epoch=getattr(a, "unfreeze_epoch", None),
                      **({"lr": a.lr} if hasattr(a, "lr") else {}))   # else FinetuneTask's own default
    hist, _ = _train(ft, ft.steps_per_epoch)
    key = "dice" if task == "segment" else "l1"
    return [float(r[key]) for r in hist.val]


def run(a, log=print) -> dict:
    import torch

    from fastem.data.ssl_synthetic import task_data
    from fastem.nn.ssl_models import generator_config

    if a.threads:
        torch.set_num_threads(a.threads)
    t0 = time.time()
    gens = {"small": generator_config(a.small, width=a.width), "large": generator_config(a.large, width=a.width)}
    pools = sorted(a.pools)
    a.pool_main = pools[len(pools) // 2]
    pre = pretrain_all(gens, pools, a, log)
    epochs = max(a.epochs_at)
    seeds = list(range(a.seeds))

    def split(task, n_train, n_val, size):
        x, y = task_data(task, n_train, size, seed=a.data_seed + 1)
        vx, vy = task_data(task, n_val, size, seed=a.data_seed + 1, index_base=n_train)
        return x, y, vx, vy

    seg = split("segment", a.seg_train, a.seg_val, a.seg_size)
    curves = {}
    partial = a.out / ("ssl_reproduction_quick.partial.json" if a.quick else "ssl_reproduction.partial.json")

    def save_partial():
        """Curves so far (a long run that is cut short still leaves its finished cells)."""
        from fastem.io import atomic_output

        a.out.mkdir(parents=True, exist_ok=True)
        with atomic_output(partial, overwrite=True) as tmp:
            Path(tmp).write_text(json.dumps({"command": a.command, "elapsed_s": round(time.time() - t0, 1),
                                             "pretraining": pre["meta"], "curves": curves}, indent=1))
    save_partial()
    for name, cfg in gens.items():
        for init_name in ("pretrained", "random"):
            init = pre["states"][name, a.pool_main] if init_name == "pretrained" else None
            runs = [finetune_curve(cfg, "segment", seg, init, s, epochs, a) for s in seeds]
            curves[f"segment/{name}/{init_name}"] = runs
            save_partial()
            log(f"segment {cfg['arch']} {init_name}: Dice at epochs {a.epochs_at}: "
                + ", ".join(f"{np.mean([r[e - 1] for r in runs]):.3f}" for e in a.epochs_at))
    for n in pools:
        if n == a.pool_main:
            continue
        runs = [finetune_curve(gens["small"], "segment", seg, pre["states"]["small", n], s, epochs, a) for s in seeds]
        curves[f"segment/small/pretrained@{n}"] = runs
        save_partial()
    restore_cfg = gens["small"] if a.restore_generator == "small" else gens["large"]
    restore_key = "small" if a.restore_generator == "small" else "large"
    baselines = {}
    for task in a.restore_tasks:
        data = split(task, a.restore_train, a.restore_val, a.restore_size)
        baselines[task] = restoration_baselines(data[2], data[3])
        for init_name in ("pretrained", "random"):
            init = pre["states"][restore_key, a.pool_main] if init_name == "pretrained" else None
            curves[f"{task}/{restore_key}/{init_name}"] = [finetune_curve(restore_cfg, task, data, init, s,
                                                                          a.restore_epochs, a) for s in seeds]
        save_partial()
        log(f"{task}: final L1 pretrained {np.mean([r[-1] for r in curves[f'{task}/{restore_key}/pretrained']]):.4f}"
            f" vs random {np.mean([r[-1] for r in curves[f'{task}/{restore_key}/random']]):.4f}")

    def at(key, e):
        vals = [r[e - 1] for r in curves[key]]
        return {"mean": float(np.mean(vals)), "std": float(np.std(vals)), "runs": [float(v) for v in vals]}

    table = {key: {str(e): at(key, e) for e in a.epochs_at} for key in curves if key.startswith("segment/")}
    e5 = 5 if 5 in a.epochs_at else sorted(a.epochs_at)[len(a.epochs_at) // 2]
    targets = {
        f"pretrained_ge_1.5x_random_at_{e5}_{g}": bool(table[f"segment/{g}/pretrained"][str(e5)]["mean"]
                                                       >= 1.5 * table[f"segment/{g}/random"][str(e5)]["mean"])
        for g in gens}
    targets[f"small_pretrained_ge_large_random_at_{e5}"] = bool(
        table["segment/small/pretrained"][str(e5)]["mean"] >= table["segment/large/random"][str(e5)]["mean"])
    result = {
        "meta": {"command": a.command, "quick": a.quick, "wall_s": round(time.time() - t0, 1),
                 "machine": platform.processor() or platform.machine(), "python": platform.python_version(),
                 "torch": torch.__version__, "device": a.device, "threads": torch.get_num_threads(),
                 "settings": {k: v for k, v in vars(a).items() if k not in ("command",)},
                 "generators": {k: v["arch"] for k, v in gens.items()}, "pretraining": pre["meta"],
                 "crops": {k: crop_for(v, a, a.seg_size) for k, v in gens.items()}},
        "segment_dice": table, "curves": curves, "targets": targets, "restoration_baselines": baselines,
    }
    return result


def run_restore(a, log=print) -> dict:
    """``--only restore``: the restoration part alone (issue 13 follow-up): the restoration
    generator pretrained on the main pool exactly as in :func:`run` (same images, settings and
    seed, so the same weights on the same torch / CPU), then ``--restore-tasks`` fine-tuned
    from it and from random weights, ``--seeds`` seeds each, validation L1 per epoch."""
    import torch

    from fastem.data.ssl_synthetic import task_data
    from fastem.nn.ssl_models import generator_config
    from fastem.nn.ssl_train import resolve_normalisation

    if a.threads:
        torch.set_num_threads(a.threads)
    t0 = time.time()
    key = a.restore_generator
    cfg = generator_config(a.small if key == "small" else a.large, width=a.width)
    pools = sorted(a.pools)
    a.pool_main = pools[len(pools) // 2]
    pre = pretrain_all({key: cfg}, pools, a, log, only_main=True)
    init_state = pre["states"][key, a.pool_main]
    curves, baselines, norms = {}, {}, {}
    for task in a.restore_tasks:
        x, y = task_data(task, a.restore_train, a.restore_size, seed=a.data_seed + 1)
        vx, vy = task_data(task, a.restore_val, a.restore_size, seed=a.data_seed + 1, index_base=a.restore_train)
        baselines[task] = restoration_baselines(vx, vy)
        norms[task] = resolve_normalisation(a.normalisation, task)
        for init_name in ("pretrained", "random"):
            init = init_state if init_name == "pretrained" else None
            curves[f"{task}/{key}/{init_name}"] = [finetune_curve(cfg, task, (x, y, vx, vy), init, s,
                                                                  a.restore_epochs, a) for s in range(a.seeds)]
            runs = curves[f"{task}/{key}/{init_name}"]
            log(f"{task} {init_name} ({norms[task]}): final val L1 {np.mean([r[-1] for r in runs]):.4f} "
                f"(best constant {baselines[task]['constant']:.4f}), {time.time() - t0:.0f} s")
    return {"meta": {"command": a.command, "quick": a.quick, "only": "restore", "wall_s": round(time.time() - t0, 1),
                     "machine": platform.processor() or platform.machine(), "python": platform.python_version(),
                     "torch": torch.__version__, "device": a.device, "threads": torch.get_num_threads(),
                     "settings": {k: v for k, v in vars(a).items() if k not in ("command",)},
                     "generators": {key: cfg["arch"]}, "pretraining": pre["meta"],
                     "normalisation": norms, "crop": crop_for(cfg, a, a.restore_size)},
            "curves": curves, "restoration_baselines": baselines}


def markdown_restore(result: dict) -> str:
    m, s = result["meta"], result["meta"]["settings"]
    (key, arch), = m["generators"].items()
    lines = [f"# Restoration fine-tuning (seed 002, issue 13 follow-up) at CPU scale"
             f"{' -- QUICK smoke run' if m['quick'] else ''}", "",
             f"`{m['command']}` -- {m['wall_s']:.0f} s on {m['machine']} ({m['device']}, {m['threads']} threads), "
             f"torch {m['torch']}", "",
             f"{arch} (width {s['width']}) pretrained on {s['pool_main']} synthetic images of {s['pool_size']} px, "
             f"{s['pretrain_epochs']} epochs, batch {s['batch']} (as in ssl_reproduction), pretext flips / rotations "
             f"of {'the input only' if s.get('geometric', 'both') == 'input' else 'the input and the target'}; "
             f"fine-tuned on "
             f"{s['restore_train']} ADF-STEM images of {s['restore_size']} px ({s['restore_val']} validation), crops "
             f"{m['crop']} px, batch {s['ft_batch']}, {s['restore_epochs']} epochs, {s['seeds']} seeds.", "",
             "Validation L1 in the input's standardised units (|output - target| / input std; the same number "
             "under either normalisation). Normalisation of inputs and targets: "
             + ", ".join(f"{t} `{n}`" for t, n in m["normalisation"].items()) + ".", "",
             "| task | init | epoch 1 | epoch 5 | final | epoch-to-epoch abs change | input as output | "
             "best constant per image |", "|---|---|---|---|---|---|---|---|"]
    for k, runs in result["curves"].items():
        task, _, init = k.split("/")
        r = np.array(runs)
        b = result["restoration_baselines"][task]

        def cell(col):
            return f"{r[:, col].mean():.4f} +- {r[:, col].std():.4f}"
        lines.append(f"| {task} | {init} | {cell(0)} | {cell(min(4, r.shape[1] - 1))} | {cell(-1)} | "
                     f"{np.mean(np.abs(np.diff(r, axis=1))):.4f} | {b['identity']:.4f} | {b['constant']:.4f} |")
    for k, p in m["pretraining"].items():
        lines += ["", f"Pretraining {k}: {p['steps']} steps, {p['seconds']:.0f} s, pretext val L1 "
                  f"{p['val_l1'][-1]:.4f} (corrupted input {p['val_l1_input']:.4f})."]
    lines.append("")
    return "\n".join(lines)


def plot_restore(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from fastem.io import atomic_output

    tasks = list(result["restoration_baselines"])
    fig = Figure(figsize=(5 * len(tasks), 3.8))
    for i, task in enumerate(tasks):
        ax = fig.add_subplot(1, len(tasks), i + 1)
        for j, key in enumerate(k for k in result["curves"] if k.startswith(task + "/")):
            runs = np.array(result["curves"][key])
            x = np.arange(1, runs.shape[1] + 1)
            mean, std = runs.mean(0), runs.std(0)
            ax.plot(x, mean, color=f"C{j}", label=key.split("/", 1)[1], ls="-" if "pretrained" in key else "--")
            ax.fill_between(x, mean - std, mean + std, color=f"C{j}", alpha=0.15)
        ax.axhline(result["restoration_baselines"][task]["constant"], color="0.5", ls=":", label="best constant")
        ax.set_title(f"{task} ({result['meta']['normalisation'][task]})")
        ax.set_xlabel("fine-tuning epoch")
        ax.set_ylabel("val L1")
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_output(path, overwrite=True) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def restoration_baselines(vx, vy) -> dict:
    """Validation L1 (standardised units, as the fine-tuning metric) of two trivial predictors:
    the input itself and each image's best constant (the target's median)."""
    from fastem.nn.ssl_train import standardise

    z, mean, std = standardise(vx)
    t = (np.asarray(vy, np.float64) - mean[:, None, None]) / std[:, None, None]
    return {"identity": float(np.mean(np.abs(t - z))),
            "constant": float(np.mean(np.abs(t - np.median(t, axis=(1, 2), keepdims=True))))}


def write_outputs(result: dict, out_dir: Path, stem: str) -> None:
    from fastem.io import atomic_output

    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_output(out_dir / f"{stem}.json", overwrite=True) as tmp:
        Path(tmp).write_text(json.dumps(result, indent=1, default=str))
    with atomic_output(out_dir / f"{stem}.md", overwrite=True) as tmp:
        Path(tmp).write_text(markdown(result))
    plot(result, out_dir / f"{stem}.png")


def markdown(result: dict) -> str:
    m = result["meta"]
    s = m["settings"]
    lines = [f"# Self-supervised GAN pretraining (seed 002) at CPU scale{' -- QUICK smoke run' if m['quick'] else ''}",
             "", f"`{m['command']}` -- {m['wall_s']:.0f} s on {m['machine']} ({m['device']}, {m['threads']} threads), "
             f"torch {m['torch']}", "",
             f"Generators: small {m['generators']['small']}, large {m['generators']['large']} (width {s['width']}); "
             f"pretraining pools {s['pools']} synthetic images of {s.get('pool_size', s['crop'])} px, "
             f"{s['pretrain_epochs']} epochs, "
             f"batch {s['batch']} (paper: 50K-200K CEM500K images, 60 epochs, batch 128).", "",
             "## Segmentation Dice (%) on synthetic HRTEM nanoparticles, mean +- std over seeds", "",
             "| model | init | " + " | ".join(f"epoch {e}" for e in s["epochs_at"]) + " |",
             "|---|---|" + "---|" * len(s["epochs_at"])]
    for key, row in result["segment_dice"].items():
        _, gen, init = key.split("/")
        cells = " | ".join(f"{100 * row[str(e)]['mean']:.1f} +- {100 * row[str(e)]['std']:.1f}" for e in s["epochs_at"])
        lines.append(f"| {m['generators'][gen]} | {init} | {cells} |")
    crops = m.get("crops") or _crops_of(m, s)
    lines += ["", "Training crops (px; a multiple of each generator's total downsampling, see "
              "`fastem.nn.ssl_train.check_crop`): " + ", ".join(f"{m['generators'][g]} {c}" for g, c in crops.items())
              + f"; segmentation images {s['seg_size']} px ({s['seg_train']} training, {s['seg_val']} validation), "
              f"fine-tuning batch {s['ft_batch']}."]
    lines += ["", "Pretrained / random Dice ratio:", ""]
    for g in m["generators"]:
        dice = result["segment_dice"]
        pre, ran = dice.get(f"segment/{g}/pretrained"), dice.get(f"segment/{g}/random")
        if pre and ran:
            lines.append(f"- {m['generators'][g]}: " + ", ".join(
                f"epoch {e}: {pre[str(e)]['mean'] / max(ran[str(e)]['mean'], 1e-9):.2f}x" for e in s["epochs_at"]))
    lines += ["", "## Targets", ""] + [f"- {k}: **{'met' if v else 'NOT met'}**" for k, v in result["targets"].items()]
    lines += ["", "## Pretraining (pretext): validation L1 of the restored crops (standardised units)", ""]
    for key, p in m["pretraining"].items():
        gen, n = key.split("@")
        lines.append(f"- {m['generators'][gen]} on {n} images ({p.get('crop', s['crop'])} px crops): "
                     f"{p['steps']} steps, "
                     f"{p['seconds']:.0f} s, L1 {p['val_l1'][-1]:.4f} (corrupted input {p['val_l1_input']:.4f})")
    lines += ["", "## Restoration: final validation L1 (standardised units)", ""]
    for task, b in result.get("restoration_baselines", {}).items():
        lines.append(f"- {task} baselines: input as output {b['identity']:.4f}, best constant per image "
                     f"{b['constant']:.4f}")
    for key, runs in result["curves"].items():
        if key.startswith(("denoise", "superres")):
            finals = [r[-1] for r in runs]
            lines.append(f"- {key}: {np.mean(finals):.4f} +- {np.std(finals):.4f} "
                         f"(epoch-to-epoch |change| {np.mean([np.mean(np.abs(np.diff(r))) for r in runs]):.4f})")
    lines.append("")
    return "\n".join(lines)


def _crops_of(meta: dict, s: dict) -> dict:
    """Fine-tuning crop per generator (for results written before ``meta["crops"]`` existed)."""
    from types import SimpleNamespace

    from fastem.nn.ssl_models import generator_config

    a = SimpleNamespace(crop=s["crop"])
    return {g: crop_for(generator_config(arch, width=s["width"]), a, s["seg_size"])
            for g, arch in meta["generators"].items()}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from fastem.io import atomic_output

    curves = result["curves"]
    fig = Figure(figsize=(16, 3.8))
    panels = [("segment", "Dice", lambda k: k.startswith("segment/") and "@" not in k),
              ("denoise", "val L1", lambda k: k.startswith("denoise/")),
              ("superres", "val L1", lambda k: k.startswith("superres/")),
              ("pool size (small, pretrained)", "Dice", lambda k: k.startswith("segment/small/pretrained"))]
    for i, (title, ylabel, sel) in enumerate(panels):
        ax = fig.add_subplot(1, 4, i + 1)
        for j, key in enumerate(k for k in curves if sel(k)):
            runs = np.array(curves[key])
            x = np.arange(1, runs.shape[1] + 1)
            mean, std = runs.mean(0), runs.std(0)
            label = key.split("/", 1)[1]
            if i == 3 and "@" not in label:
                label += f"@{result['meta']['settings']['pool_main']}"
            ax.plot(x, mean, color=f"C{j}", label=label, ls="-" if "pretrained" in key else "--")
            ax.fill_between(x, mean - std, mean + std, color=f"C{j}", alpha=0.15)
        base = result.get("restoration_baselines", {}).get(title)
        if base:
            ax.axhline(base["constant"], color="0.5", ls=":", label="best constant")
        ax.set_title(title)
        ax.set_xlabel("fine-tuning epoch")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_output(path, overwrite=True) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny smoke run (numbers meaningless)")
    ap.add_argument("--small", default="unet-2-44")
    ap.add_argument("--large", default="unet-4-424")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--pools", type=int, nargs=3, default=[256, 512, 1024])
    ap.add_argument("--pretrain-epochs", type=int, default=10)
    ap.add_argument("--crop", type=int, default=64,
                    help="training crop (px), raised per generator to a multiple of its downsampling")
    ap.add_argument("--pool-size", type=int, default=96, help="side (px) of the synthetic pretraining images")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--disc-width", type=int, default=32)
    ap.add_argument("--ft-batch", type=int, default=8)
    ap.add_argument("--seg-train", type=int, default=128)
    ap.add_argument("--seg-val", type=int, default=16)
    ap.add_argument("--seg-size", type=int, default=96)
    ap.add_argument("--epochs-at", type=int, nargs="+", default=[1, 5, 20])
    ap.add_argument("--restore-generator", choices=["small", "large"], default="small")
    ap.add_argument("--restore-train", type=int, default=64)
    ap.add_argument("--restore-val", type=int, default=16)
    ap.add_argument("--restore-size", type=int, default=96)
    ap.add_argument("--restore-epochs", type=int, default=20)
    ap.add_argument("--restore-tasks", nargs="+", choices=["denoise", "background", "superres"],
                    default=["denoise", "superres"], help="restoration tasks (--only restore: all of them run)")
    ap.add_argument("--normalisation", choices=["auto", "standardise", "scale"], default="auto",
                    help="restoration inputs / targets (FinetuneTask normalisation)")
    ap.add_argument("--only", choices=["restore"], default=None,
                    help="restore: only the restoration part (pretraining of the restoration generator on the "
                         "main pool, then --restore-tasks), written as ssl_restoration.*")
    ap.add_argument("--geometric", choices=["both", "input"], default="both",
                    help="pretext flips / rotations: of the input and the target (augmentation) or of the input "
                         "only (the paper's wording: the generator restores the unrotated original)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    a = ap.parse_args(argv)
    if a.quick:
        a.width, a.pools, a.pretrain_epochs, a.crop, a.batch, a.disc_width = 4, [8, 12, 16], 1, 32, 4, 4
        a.pool_size = 48
        a.ft_batch = 2
        a.seg_train, a.seg_val, a.seg_size, a.epochs_at = 4, 2, 48, [1, 2]
        a.restore_train, a.restore_val, a.restore_size, a.restore_epochs, a.seeds = 4, 2, 48, 2, 2
    if a.seeds < 1 or min(a.epochs_at) < 1 or len(set(a.pools)) != 3:
        ap.error("need --seeds >= 1, --epochs-at >= 1 and three different --pools")
    a.command = "python bench/reproduce_ssl.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if a.only == "restore":
        result = run_restore(a)
        stem = "ssl_restoration_quick" if a.quick else "ssl_restoration"
        a.out.mkdir(parents=True, exist_ok=True)
        from fastem.io import atomic_output

        with atomic_output(a.out / f"{stem}.json", overwrite=True) as tmp:
            Path(tmp).write_text(json.dumps(result, indent=1, default=str))
        with atomic_output(a.out / f"{stem}.md", overwrite=True) as tmp:
            Path(tmp).write_text(markdown_restore(result))
        plot_restore(result, a.out / f"{stem}.png")
        print((a.out / f"{stem}.md").read_text())
        return
    result = run(a)
    stem = "ssl_reproduction_quick" if a.quick else "ssl_reproduction"
    write_outputs(result, a.out, stem)
    (a.out / f"{stem}.partial.json").unlink(missing_ok=True)      # superseded by the full result
    print((a.out / f"{stem}.md").read_text())


if __name__ == "__main__":
    main()
