"""Reproduce the shape of the ALRC result (seed 000 appendix A, table 2) on a small supersampling task.

The paper trains a CIFAR-10 16x16 -> 32x32 supersampling network with squared and quartic errors
at batch sizes 1, 4, 16, 64, with and without ALRC, and finds: no effect on squared errors; lower
final quartic-error losses at batch sizes 1-16. CIFAR is not available offline, so here:

* data (default ``--data patches``): random greyscale 16x16 crops of the photographs bundled with
  scikit-image (11 training images, 3 other test images), each crop linearly transformed to zero
  mean and unit variance as in the paper's pipeline, randomly flipped left/right, 2x2
  average-pooled to 8x8 and bilinearly upsampled back to 16x16 as the network input.
  ``--data digits`` uses scikit-learn's 8x8 digits (4x4 -> 8x8) instead: its per-example losses
  have no outliers, so ALRC has nothing to clip there (kept as a control);
* network: 4 conv layers 3x3 (1 -> w -> w -> w -> 1, ``--width`` w = 16), ReLU after all but the
  last, residual over the upsampled input, Xavier weights, zero biases (the paper's recipe at toy
  size). The 2 x seeds networks of one (loss, batch) cell train together as grouped convolutions
  (ADAM is elementwise, so they stay independent); network s with and without ALRC share their
  initial weights and their batches (paired comparison);
* ADAM (recommended hyperparameters), constant learning rate ``--lr``, ``--steps`` iterations;
* loss: :class:`fastem.train.ALRCLoss` with ``clip=True`` (ALRC, n = 3) or ``clip=False`` (the same
  fused per-example loss without clipping), ``mu1 = 25``, ``mu2 = 900`` initial moments; ``beta``
  is shortened from 0.999 to ``--beta`` (0.95) because the runs are ~100x shorter than the paper's
  100000 iterations;
* metric: mean of the last 20 % of the (unclipped) training losses (the paper: last 5000 of
  100000) and the test error of the final network; mean and standard deviation over seeds, and
  in how many of the seed pairs ALRC ended lower.

Run: ``.venv/bin/python bench/reproduce_alrc.py`` (writes bench/results/alrc_reproduction.{json,md,png}).
"""

from __future__ import annotations

import os as _os

from fastem.config import use_passive_openmp as _use_passive_openmp  # noqa: E402
_use_passive_openmp()  # as the CLI does: PASSIVE with a short spin (bench/results/openmp_wait_policy.md)

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def load_digits_sr(seed: int = 0):
    """(train_hr, test_hr) as float32 (N, 1, 8, 8), each image zero mean, unit variance."""
    from sklearn.datasets import load_digits

    x = load_digits().images.astype(np.float64)
    x = (x - x.mean(axis=(1, 2), keepdims=True)) / (x.std(axis=(1, 2), keepdims=True) + 1e-6)
    idx = np.random.default_rng(seed).permutation(len(x))
    x = x[idx].astype(np.float32)[:, None]
    return x[:-300], x[-300:]


TRAIN_IMAGES = ("camera", "astronaut", "coffee", "chelsea", "rocket", "moon", "immunohistochemistry",
                "hubble_deep_field", "grass", "gravel", "brick")
TEST_IMAGES = ("coins", "cell", "cat")


def load_patches_sr(size: int = 16, n_train: int = 20000, n_test: int = 1000, seed: int = 0):
    """Random greyscale ``size`` x ``size`` crops of scikit-image's bundled photographs.

    Training crops come from 11 images, test crops from 3 others; each crop is linearly transformed
    to zero mean and unit variance (near-flat crops keep their amplified quantisation noise, the
    source of the outlier losses that ALRC is meant to tame).
    """
    import skimage.data as skd
    from skimage.color import rgb2gray

    rng = np.random.default_rng(seed)

    def crops(names, count):
        imgs = []
        for name in names:
            a = getattr(skd, name)()
            imgs.append(rgb2gray(a) if a.ndim == 3 else a / 255.0)
        out = np.empty((count, 1, size, size), dtype=np.float64)
        for i in range(count):
            im = imgs[rng.integers(len(imgs))]
            y, x = rng.integers(0, im.shape[0] - size), rng.integers(0, im.shape[1] - size)
            out[i, 0] = im[y:y + size, x:x + size]
        out -= out.mean(axis=(2, 3), keepdims=True)
        out /= out.std(axis=(2, 3), keepdims=True) + 1e-3
        return out.astype(np.float32)

    return crops(TRAIN_IMAGES, n_train), crops(TEST_IMAGES, n_test)


def degrade(torch, hr):
    """2x2 average pooling then bilinear upsampling back to the full size (network input)."""
    lr = torch.nn.functional.avg_pool2d(hr, 2)
    return torch.nn.functional.interpolate(lr, scale_factor=2, mode="bilinear", align_corners=False)


def make_grouped_net(torch, groups: int, init_seeds, width: int = 32):
    """``groups`` independent copies of the net as grouped convolutions (input/output ``(B, groups, H, W)``).

    Group ``g`` is initialised from ``init_seeds[g]`` (Xavier-uniform weights, zero biases), so two
    groups with the same seed start identical (paired ALRC / no-ALRC runs). ADAM is elementwise, so
    the groups train independently inside one optimiser.
    """
    chans = [1, width, width, width, 1]
    layers = []
    for i in range(len(chans) - 1):
        cin, cout = chans[i], chans[i + 1]
        conv = torch.nn.Conv2d(groups * cin, groups * cout, 3, padding=1, groups=groups)
        with torch.no_grad():
            for g, seed in enumerate(init_seeds):
                gen = torch.Generator().manual_seed(10_000 * int(seed) + i)
                bound = float(np.sqrt(6.0 / (9 * cin + 9 * cout)))  # Xavier uniform, fan = 3*3*channels
                w = (torch.rand((cout, cin, 3, 3), generator=gen) * 2 - 1) * bound
                conv.weight[g * cout:(g + 1) * cout] = w
            conv.bias.zero_()
        layers.append(conv)
        if i < len(chans) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def train_pairs(loss: str, batch: int, seeds: int, steps: int, lr: float, beta: float, n: float,
                train_hr, test_hr, width: int = 32) -> list[dict]:
    """Train ``seeds`` networks without and ``seeds`` with ALRC (paired: same init and batches)."""
    import torch

    from fastem.train import ALRCLoss

    groups = 2 * seeds
    alrc_of = [g >= seeds for g in range(groups)]
    seed_of = [g % seeds for g in range(groups)]
    net = make_grouped_net(torch, groups, seed_of, width)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    crits = [ALRCLoss(loss, mu1=25.0, mu2=900.0, beta=beta, n=n, clip=alrc_of[g]) for g in range(groups)]
    rngs = [np.random.default_rng(1000 + s) for s in range(seeds)]
    data = torch.from_numpy(train_hr[:, 0])
    hist = np.empty((steps, groups))
    clipped_steps = np.zeros(groups, dtype=int)
    for step in range(steps):
        idx = np.stack([r.integers(0, len(data), batch) for r in rngs], axis=1)  # (batch, seeds)
        flip = np.stack([r.random(batch) < 0.5 for r in rngs], axis=1)
        idx, flip = np.concatenate([idx, idx], axis=1), np.concatenate([flip, flip], axis=1)
        hr = data[torch.from_numpy(idx)]  # (batch, groups, 8, 8)
        hr = torch.where(torch.from_numpy(flip)[:, :, None, None], hr.flip(-1), hr)
        inp = degrade(torch, hr)
        out = inp + net(inp)
        total = sum(crits[g](out[:, g], hr[:, g]) for g in range(groups))
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        for g, c in enumerate(crits):
            raw = c.last_losses
            hist[step, g] = float(raw.mean())
            clipped_steps[g] += int(bool((c.last_clipped < raw).any()))
    with torch.no_grad():
        thr = torch.from_numpy(np.repeat(test_hr, groups, axis=1))
        inp = degrade(torch, thr)
        err = (inp + net(inp)) - thr
        test = ((err ** 2) if loss == "mse" else (err ** 4)).mean(dim=(0, 2, 3)).numpy()
    runs = []
    for g in range(groups):
        tail = hist[int(0.8 * steps):, g]
        runs.append({"loss": loss, "batch": batch, "alrc": alrc_of[g], "seed": seed_of[g],
                     "final_train": float(tail.mean()), "test": float(test[g]), "clipped_steps": int(clipped_steps[g]),
                     "diverged": bool(not np.isfinite(tail).all()),
                     "curve": [float(v) for v in block_means(hist[:, g], 200)]})
    return runs


def block_means(h, blocks: int):
    """``h`` averaged over ``blocks`` consecutive blocks (the learning curve stored with each run)."""
    size = max(1, len(h) // blocks)
    m = (len(h) // size) * size
    return h[:m].reshape(-1, size).mean(axis=1)


def summarise(runs: list[dict]) -> list[dict]:
    rows = []
    keys = sorted({(r["loss"], r["batch"], r["alrc"]) for r in runs}, key=lambda k: (k[0] != "mse", k[1], k[2]))
    for loss, batch, alrc in keys:
        sel = [r for r in runs if (r["loss"], r["batch"], r["alrc"]) == (loss, batch, alrc)]
        tr = np.array([r["final_train"] for r in sel])
        te = np.array([r["test"] for r in sel])
        rows.append({"loss": loss, "batch": batch, "alrc": alrc, "seeds": len(sel),
                     "final_train_mean": float(tr.mean()), "final_train_std": float(tr.std(ddof=1)) if len(sel) > 1 else 0.0,
                     "test_mean": float(te.mean()), "test_std": float(te.std(ddof=1)) if len(sel) > 1 else 0.0,
                     "clipped_steps_mean": float(np.mean([r["clipped_steps"] for r in sel]))})
    return rows


def compare(rows: list[dict], runs: list[dict]) -> list[dict]:
    """ALRC / no-ALRC ratio of the final training loss and test error per (loss, batch)."""
    out = []
    for loss in ("mse", "quartic"):
        for batch in sorted({r["batch"] for r in rows}):
            on = [r for r in rows if (r["loss"], r["batch"], r["alrc"]) == (loss, batch, True)]
            off = [r for r in rows if (r["loss"], r["batch"], r["alrc"]) == (loss, batch, False)]
            if on and off:
                pairs = {(r["seed"]): r for r in runs if (r["loss"], r["batch"], r["alrc"]) == (loss, batch, False)}
                lower = sum(r["final_train"] < pairs[r["seed"]]["final_train"] for r in runs
                            if (r["loss"], r["batch"], r["alrc"]) == (loss, batch, True))
                lower_test = sum(r["test"] < pairs[r["seed"]]["test"] for r in runs
                                 if (r["loss"], r["batch"], r["alrc"]) == (loss, batch, True))
                out.append({"loss": loss, "batch": batch, "pairs": len(pairs), "alrc_lower_train": int(lower),
                            "alrc_lower_test": int(lower_test),
                            "train_ratio": on[0]["final_train_mean"] / off[0]["final_train_mean"],
                            "test_ratio": on[0]["test_mean"] / off[0]["test_mean"]})
    return out


def write_md(path: Path, meta: dict, rows: list[dict], ratios: list[dict]) -> None:
    lines = [f"# ALRC reproduction ({meta['data']} supersampling)", "",
             f"Command: `{meta['command']}`  ", f"Steps {meta['steps']}, lr {meta['lr']}, ALRC n = {meta['n']}, "
             f"beta = {meta['beta']}, mu1 = 25, mu2 = 900, {meta['seeds']} seeds; {meta['wall_s']:.0f} s on "
             f"{meta['machine']}.", "",
             "Final loss = mean of the last 20 % of the (unclipped) training losses; test = error of the final "
             f"network on {'1000 crops of 3 held-out photographs' if meta['data'] == 'patches' else '300 held-out digits'} "
             "(squared or quartic, matching the training loss). Mean +- std over seeds; ALRC and no-ALRC runs of "
             "the same seed share initial weights and batches.",
             "", "| loss | batch | ALRC | final training loss | test error | steps with a clipped example |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['loss']} | {r['batch']} | {'n=3' if r['alrc'] else 'none'} | "
                     f"{r['final_train_mean']:.4g} +- {r['final_train_std']:.2g} | {r['test_mean']:.4g} +- "
                     f"{r['test_std']:.2g} | {r['clipped_steps_mean']:.1f} |")
    lines += ["", "ALRC / none (below 1: ALRC lower):", "", "| loss | batch | final training loss ratio | test error ratio | "
              "pairs with ALRC lower (train / test) |", "|---|---|---|---|---|"]
    for c in ratios:
        lines.append(f"| {c['loss']} | {c['batch']} | {c['train_ratio']:.3f} | {c['test_ratio']:.3f} | "
                     f"{c['alrc_lower_train']}/{c['pairs']} / {c['alrc_lower_test']}/{c['pairs']} |")
    path.write_text("\n".join(lines) + "\n")


def plot(path: Path, runs: list[dict], batches) -> None:
    """Learning curves (mean over seeds of the moving-mean training loss) and paired final-loss ratios."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncol = len(batches) + 1
    fig, axes = plt.subplots(2, ncol, figsize=(3.6 * ncol, 6), squeeze=False)
    for i, loss in enumerate(("mse", "quartic")):
        for j, batch in enumerate(batches):
            ax = axes[i, j]
            for alrc, colour in ((False, "tab:red"), (True, "tab:blue")):
                sel = [r["curve"] for r in runs if (r["loss"], r["batch"], r["alrc"]) == (loss, batch, alrc)]
                if not sel:
                    continue
                c = np.array(sel)
                k = max(1, c.shape[1] // 10)
                smooth = np.array([np.convolve(v, np.ones(k) / k, mode="valid") for v in c])
                x = np.linspace(k / c.shape[1], 1.0, smooth.shape[1])
                ax.plot(x, smooth.mean(0), color=colour, label="ALRC n=3" if alrc else "no ALRC")
            ax.set_yscale("log")
            ax.set_title(f"{loss}, batch {batch}", fontsize=9)
            ax.set_xlabel("fraction of training", fontsize=8)
            if j == 0:
                ax.set_ylabel("training loss (moving mean,\nmean over seeds)", fontsize=8)
            ax.legend(fontsize=7)
        ax = axes[i, -1]
        for j, batch in enumerate(batches):
            off = {r["seed"]: r["final_train"] for r in runs if (r["loss"], r["batch"], r["alrc"]) == (loss, batch, False)}
            ratios = [r["final_train"] / off[r["seed"]] for r in runs
                      if (r["loss"], r["batch"], r["alrc"]) == (loss, batch, True) and r["seed"] in off]
            if ratios:
                ax.scatter(np.full(len(ratios), j) + np.linspace(-0.15, 0.15, len(ratios)), ratios, s=14,
                           color="tab:blue")
                ax.plot([j - 0.25, j + 0.25], [np.mean(ratios)] * 2, color="k")
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_xticks(range(len(batches)), [str(b) for b in batches])
        ax.set_xlabel("batch size", fontsize=8)
        ax.set_title(f"{loss}: final loss ALRC / none\n(per seed pair, bar = mean)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run(steps: int = 800, seeds: int = 5, batches=(1, 4, 16), lr: float = 2e-3, beta: float = 0.95, n: float = 3.0,
        out_dir: Path | None = RESULTS, command: str = "", threads: int = 1, losses=("mse", "quartic"),
        data: str = "patches", width: int = 16) -> dict:
    import torch

    torch.set_num_threads(threads)
    train_hr, test_hr = load_patches_sr() if data == "patches" else load_digits_sr()
    t0 = time.perf_counter()
    runs = []
    for loss in losses:
        for batch in batches:
            runs += train_pairs(loss, batch, seeds, steps, lr, beta, n, train_hr, test_hr, width)
    wall = time.perf_counter() - t0
    rows = summarise(runs)
    ratios = compare(rows, runs)
    meta = {"data": data, "width": width, "steps": steps, "seeds": seeds, "batches": list(batches), "lr": lr, "beta": beta, "n": n,
            "wall_s": wall, "machine": f"{platform.machine()} cpu, torch {torch.__version__}, {threads} thread(s)",
            "command": command or "bench/reproduce_alrc.py"}
    result = {"meta": meta, "summary": rows, "ratios": ratios,
              "runs": [{k: (np.round(v, 5).tolist() if k == "curve" else v) for k, v in r.items()} for r in runs]}
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "alrc_reproduction.json").write_text(json.dumps(result, indent=1))
        write_md(out_dir / "alrc_reproduction.md", meta, rows, ratios)
        plot(out_dir / "alrc_reproduction.png", runs, list(batches))
    return result


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--beta", type=float, default=0.95)
    ap.add_argument("--n", type=float, default=3.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", choices=["digits", "patches"], default="patches")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--losses", nargs="+", default=["mse", "quartic"], choices=["mse", "quartic"])
    ap.add_argument("--out", type=Path, default=RESULTS)
    a = ap.parse_args(argv)
    import sys

    cmd = "python bench/reproduce_alrc.py " + " ".join(sys.argv[1:] if argv is None else argv)
    res = run(a.steps, a.seeds, tuple(a.batches), a.lr, a.beta, a.n, a.out, cmd.strip(), a.threads, tuple(a.losses), a.data,
              a.width)
    print((a.out / "alrc_reproduction.md").read_text())
    print(f"wall {res['meta']['wall_s']:.1f} s")


if __name__ == "__main__":
    main()
