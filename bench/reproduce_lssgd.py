"""Reproduction: LS-SGD vs SGD for multi-class logistic regression on 10 % of the training data
(thesis section 5.3.1, Figures 5.1 and 5.2; seed 004), with scikit-learn's digits instead of MNIST.

Protocol (the thesis's, scaled to digits):

* digits (1797 images of 8x8, pixel values / 16) split once into a training split (75 %, 1347
  images) and a test split (25 %, 450 images), stratified, ``random_state=0``;
* per seed: a random 10 % of the training split (135 images), a random initialisation
  ``W ~ N(0, 0.01^2)`` (10x64 weights, row-major as ``torch.nn.Linear``, plus 10 biases) and a
  random mini-batch order; the same seed gives SGD and LS-SGD the same subset, initialisation
  and batches (paired comparison);
* 200 epochs of mini-batch SGD on the mean cross-entropy, batch ``--batch`` (default 10, so an
  epoch is 13 steps, as the thesis's batch 100 on 6000 MNIST images is 60), learning rate 0.5
  divided by 10 after every 50 epochs (the thesis's schedule);
* LS-SGD: the gradient of ``W`` (640 entries, one periodic signal) and of ``b`` (10 entries) is
  replaced by ``(I + (-1)^n sigma L^n)^{-1} g`` (``fastem.optim.smooth_rows``), sigma = 1,
  orders 1 and 2;
* all ``--seeds`` runs of one method are one vectorised model (weights ``(S, 10, 64)``), so the
  smoothing of all seeds is a single batched transform per step.

Reported: mean and standard deviation over seeds of the test accuracy (thesis: LS-SGD lifts the
mean by more than 1 % and shrinks the spread markedly on MNIST) and, per iteration, the variance
across seeds of the training loss (on each seed's own 10 % subset; thesis Figure 5.2: smoothing
reduces it, order 2 more than order 1).

Writes ``bench/results/lssgd_reproduction.json``, ``.md`` and ``.png``.

    .venv/bin/python bench/reproduce_lssgd.py              # 100 seeds x 200 epochs, about a minute
    .venv/bin/python bench/reproduce_lssgd.py --quick      # 8 seeds x 20 epochs, seconds
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

METHODS = (("SGD", 0), ("LS-SGD order 1", 1), ("LS-SGD order 2", 2))


def load_digits_split(seed: int = 0):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = d.data.astype(np.float64) / 16.0
    return train_test_split(x, d.target, test_size=0.25, stratify=d.target, random_state=seed)


def _softmax_xent(logits, y_onehot):
    """Mean cross-entropy per seed and d(loss)/d(logits); logits (S, B, C)."""
    z = logits - logits.max(axis=2, keepdims=True)
    ez = np.exp(z)
    p = ez / ez.sum(axis=2, keepdims=True)
    loss = -(y_onehot * (z - np.log(ez.sum(axis=2, keepdims=True)))).sum(axis=2).mean(axis=1)
    return loss, (p - y_onehot) / logits.shape[1]


def train(method_order: int, xtr, ytr, xte, yte, seeds: int, epochs: int, batch: int, frac: float,
          sigma: float, lr0: float, decay_every: int, seed0: int = 0, eval_every: int = 10):
    """Train ``seeds`` models at once.

    Returns test accuracies (S,), the per-step loss on each seed's own training subset (T, S) and
    the loss on the whole training split every ``eval_every`` steps (T / eval_every, S).
    """
    from fastem.optim import smooth_rows

    n_classes, n_feat = 10, xtr.shape[1]
    n_sub = int(round(frac * len(xtr)))
    rngs = [np.random.default_rng(seed0 + s) for s in range(seeds)]
    subsets = np.stack([r.choice(len(xtr), n_sub, replace=False) for r in rngs])  # (S, n_sub)
    W = np.stack([r.normal(0.0, 0.01, (n_classes, n_feat)) for r in rngs])  # (S, C, F)
    b = np.zeros((seeds, n_classes))
    xs = xtr[subsets]  # (S, n, F)
    ys = np.eye(n_classes)[ytr[subsets]]  # (S, n, C)
    steps_per_epoch = n_sub // batch
    losses, common_losses = [], []
    ytr_1h = np.eye(n_classes)[ytr][None]
    sidx = np.arange(seeds)[:, None]
    for ep in range(epochs):
        lr = lr0 * 0.1 ** (ep // decay_every)
        perms = np.stack([r.permutation(n_sub) for r in rngs])
        for k in range(steps_per_epoch):
            idx = perms[:, k * batch:(k + 1) * batch]
            xb, yb = xs[sidx, idx], ys[sidx, idx]  # (S, B, F), (S, B, C)
            _, dlog = _softmax_xent(xb @ W.transpose(0, 2, 1) + b[:, None, :], yb)
            gW = dlog.transpose(0, 2, 1) @ xb  # (S, C, F)
            gb = dlog.sum(axis=1)
            if method_order > 0:
                gW = smooth_rows(np.ascontiguousarray(gW.reshape(seeds, -1)), sigma, method_order).reshape(gW.shape)
                gb = smooth_rows(np.ascontiguousarray(gb), sigma, method_order)
            W -= lr * gW
            b -= lr * gb
            own, _ = _softmax_xent(xs @ W.transpose(0, 2, 1) + b[:, None, :], ys)
            losses.append(own)
            if (len(losses) - 1) % eval_every == 0:
                common, _ = _softmax_xent(xtr[None] @ W.transpose(0, 2, 1) + b[:, None, :], ytr_1h)
                common_losses.append(common)
    pred = (xte[None] @ W.transpose(0, 2, 1) + b[:, None, :]).argmax(axis=2)
    acc = (pred == yte[None, :]).mean(axis=1)
    return acc, np.array(losses), np.array(common_losses)


def run(seeds: int = 100, epochs: int = 200, batch: int = 10, frac: float = 0.1, sigma: float = 1.0,
        lr0: float = 0.5, decay_every: int = 50, out_dir: Path | None = None, echo=print,
        eval_every: int = 10) -> dict:
    out_dir = Path(out_dir) if out_dir else Path(__file__).resolve().parent / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    xtr, xte, ytr, yte = load_digits_split()
    t0 = time.perf_counter()
    results, curves, ccurves = {}, {}, {}
    for name, order in METHODS:
        t = time.perf_counter()
        acc, losses, common = train(order, xtr, ytr, xte, yte, seeds, epochs, batch, frac, sigma, lr0, decay_every,
                                    eval_every=eval_every)
        var = losses.var(axis=1)
        cvar = common.var(axis=1)
        results[name] = {
            "order": order, "sigma": sigma if order else 0.0,
            "test_acc_mean": float(acc.mean()), "test_acc_std": float(acc.std(ddof=1)),
            "test_acc_min": float(acc.min()), "test_acc_max": float(acc.max()),
            "final_train_loss_mean": float(losses[-1].mean()),
            "loss_var_mean_over_iterations": float(var.mean()),
            "loss_var_median_over_iterations": float(np.median(var)),
            "loss_var_mean_first_epoch_block": float(var[: len(var) // 4].mean()),
            "full_split_loss_var_mean": float(cvar.mean()),
            "full_split_final_loss_mean": float(common[-1].mean()),
            "test_acc_all": acc.tolist(),
            "seconds": time.perf_counter() - t,
        }
        curves[name] = var
        ccurves[name] = cvar
        echo(f"{name:16s} test acc {100 * acc.mean():.2f} +- {100 * acc.std(ddof=1):.2f} %  "
             f"mean loss var {var.mean():.3e} (own subset), {cvar.mean():.3e} (full split)  "
             f"({time.perf_counter() - t:.1f} s)")
    sgd = results["SGD"]
    for name, _ in METHODS[1:]:
        r = results[name]
        r["acc_gain_vs_sgd_pct"] = 100 * (r["test_acc_mean"] - sgd["test_acc_mean"])
        r["std_ratio_vs_sgd"] = r["test_acc_std"] / sgd["test_acc_std"]
        r["loss_var_ratio_vs_sgd"] = r["loss_var_mean_over_iterations"] / sgd["loss_var_mean_over_iterations"]
        r["iterations_with_lower_loss_var_pct"] = float(100 * np.mean(curves[name] < curves["SGD"]))
        r["full_split_loss_var_ratio_vs_sgd"] = r["full_split_loss_var_mean"] / sgd["full_split_loss_var_mean"]
    payload = {
        "experiment": "thesis 5.3.1: multi-class logistic regression on 10% of the training data, SGD vs LS-SGD",
        "data": f"scikit-learn digits, train {len(xtr)} / test {len(xte)} (stratified 75/25, random_state=0); "
                f"{int(round(frac * len(xtr)))} training images per seed",
        "settings": dict(seeds=seeds, epochs=epochs, batch=batch, frac=frac, sigma=sigma, lr0=lr0,
                         decay_every=decay_every, steps=int(len(curves["SGD"]))),
        "results": results,
        "loss_var_per_iteration": {k: v.tolist() for k, v in curves.items()},
        "full_split_loss_var_every": eval_every,
        "full_split_loss_var": {k: v.tolist() for k, v in ccurves.items()},
        "machine": platform.platform(),
        "seconds": time.perf_counter() - t0,
        "command": "python bench/reproduce_lssgd.py " + " ".join(sys.argv[1:]),
    }
    stem = "lssgd_reproduction"
    (out_dir / f"{stem}.json").write_text(json.dumps(payload, indent=1))
    (out_dir / f"{stem}.md").write_text(_markdown(payload))
    _plot(payload, out_dir / f"{stem}.png")
    return payload


def _markdown(p: dict) -> str:
    s = p["settings"]
    lines = [f"# LS-SGD reproduction (thesis 5.3.1) on {p['data']}", "",
             f"{s['seeds']} seeds, {s['epochs']} epochs, batch {s['batch']}, lr {s['lr0']} / 10 every "
             f"{s['decay_every']} epochs, sigma {s['sigma']}, {s['steps']} steps. Command: `{p['command']}`", "",
             "| method | test acc mean (%) | std (%) | min / max (%) | gain vs SGD (pp) | std / SGD std | "
             "loss var across seeds (own subset) | / SGD | steps with lower var than SGD | "
             "loss var across seeds (full training split) | / SGD |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in p["results"].items():
        gain = f"{r['acc_gain_vs_sgd_pct']:+.2f}" if "acc_gain_vs_sgd_pct" in r else ""
        sr = f"{r['std_ratio_vs_sgd']:.2f}" if "std_ratio_vs_sgd" in r else ""
        vr = f"{r['loss_var_ratio_vs_sgd']:.2f}" if "loss_var_ratio_vs_sgd" in r else ""
        lo = f"{r['iterations_with_lower_loss_var_pct']:.0f} %" if "iterations_with_lower_loss_var_pct" in r else ""
        fr = f"{r['full_split_loss_var_ratio_vs_sgd']:.2f}" if "full_split_loss_var_ratio_vs_sgd" in r else ""
        lines.append(f"| {name} | {100 * r['test_acc_mean']:.2f} | {100 * r['test_acc_std']:.2f} | "
                     f"{100 * r['test_acc_min']:.1f} / {100 * r['test_acc_max']:.1f} | {gain} | {sr} | "
                     f"{r['loss_var_mean_over_iterations']:.3e} | {vr} | {lo} | "
                     f"{r['full_split_loss_var_mean']:.3e} | {fr} |")
    lines += ["", "Loss variances are means over all steps of the variance across seeds of the mean "
              "cross-entropy: on each seed's own 10 % subset (every step), and on the whole training split "
              f"(every {p['full_split_loss_var_every']} steps; the same data for all seeds).",
              "", f"Total time {p['seconds']:.1f} s on {p['machine']}.", ""]
    return "\n".join(lines)


def _plot(p: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(16, 4))
    names = list(p["results"])
    accs = [100 * np.array(p["results"][n]["test_acc_all"]) for n in names]
    bins = np.linspace(min(a.min() for a in accs), max(a.max() for a in accs), 25)
    for n, a in zip(names, accs):
        ax[0].hist(a, bins=bins, alpha=0.5, label=f"{n}: {a.mean():.2f} +- {a.std(ddof=1):.2f}")
    ax[0].set_xlabel("test accuracy (%)")
    ax[0].set_ylabel("seeds")
    ax[0].legend(fontsize=8)
    ax[0].set_title("test accuracy over seeds (thesis Fig. 5.1)")
    for n in names:
        v = np.array(p["loss_var_per_iteration"][n])
        ax[1].semilogy(v, label=n, lw=0.8)
    ax[1].set_xlabel("iteration")
    ax[1].set_ylabel("variance of training loss across seeds")
    ax[1].legend(fontsize=8)
    ax[1].set_title("loss variance, own 10% subsets (cf. thesis Fig. 5.2)")
    ev = p["full_split_loss_var_every"]
    for n in names:
        v = np.array(p["full_split_loss_var"][n])
        ax[2].semilogy(np.arange(len(v)) * ev, v, label=n, lw=0.8)
    ax[2].set_xlabel("iteration")
    ax[2].set_ylabel("variance across seeds")
    ax[2].legend(fontsize=8)
    ax[2].set_title("loss variance, whole training split")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--frac", type=float, default=0.1)
    ap.add_argument("--sigma", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=0.5)
    ap.add_argument("--decay-every", type=int, default=None, help="epochs between /10 decays (default epochs/4)")
    ap.add_argument("--eval-every", type=int, default=10, help="steps between whole-split loss evaluations")
    ap.add_argument("--out-dir", type=Path, default=None)
    ap.add_argument("--quick", action="store_true", help="8 seeds x 20 epochs (smoke run)")
    a = ap.parse_args(argv)
    if a.quick:
        a.seeds, a.epochs = 8, 20
    decay = a.decay_every or max(1, a.epochs // 4)
    run(a.seeds, a.epochs, a.batch, a.frac, a.sigma, a.lr, decay, a.out_dir, eval_every=a.eval_every)
    return 0


if __name__ == "__main__":
    sys.exit(main())
