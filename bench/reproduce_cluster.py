"""Reproduction: objective distributions of Lloyd, mini-batch and SBE k-means over random starts
(issue 6; seed 004, chapter 4, table 4.1 and the Iris experiment).

Every start draws ``K`` distinct data points as initial centroids (the thesis' setting) and gives
the *same* centroids to every method of that start:

* ``lloyd`` (ours) and ``sklearn-kmeans`` = ``KMeans(algorithm="lloyd", n_init=1, init=C0)``;
* ``minibatch`` (ours, Sculley) and ``sklearn-minibatch`` = ``MiniBatchKMeans(init=C0, n_init=1,
  batch_size=M)`` with as many mini-batches as SBE processes (``max_no_improvement=None``);
* ``sbe`` (spec ``sbe.md``: gamma0 = K, alpha = 0.75, beta = 1/1.01).

The objective of every final set of centroids is ``phi = 1/(2N) sum_i min_j ||p_i - c_j||^2``
(thesis eq. 4.4), computed by the same float64 full-data pass for every method.

Data: Iris (K = 3) and scikit-learn digits (K = 10) as shipped with scikit-learn; the table 4.1
design: 60 000 points around 8 digit images plus Gaussian noise (std 0.2 per pixel, images in
[0, 1]). MNIST is not available offline, so the 8 centres are the first images of the classes
0..7 of scikit-learn's 8x8 digits, scaled to [0, 1] and bilinearly upsampled to 28x28 (d = 784).

Writes ``bench/results/cluster_reproduction.{json,md}`` (+ ``.png`` histograms).

    .venv/bin/python bench/reproduce_cluster.py                         # 100 starts (Iris, digits), --big-starts on 60k
    .venv/bin/python bench/reproduce_cluster.py --quick                 # seconds
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

METHODS = ("lloyd", "sklearn-kmeans", "minibatch", "sklearn-minibatch", "sbe")
COLORS = {"lloyd": "0.3", "sklearn-kmeans": "tab:orange", "minibatch": "tab:blue", "sklearn-minibatch": "tab:cyan",
          "sbe": "tab:red"}
THESIS_TABLE_4_1 = {  # K: {method: (min, max, mean, variance)}  (MNIST centres; ours are digits centres)
    8: {"EM (50 it)": (15.6800, 27.2828, 20.0203, 6.0030), "SBE M=1000 (150,10)": (15.6808, 15.6808, 15.6808, 1.49e-10),
        "mb-EM M=500": (15.9193, 18.5820, 16.4009, 0.7646), "SBE M=500 (100,5)": (15.6816, 15.6821, 15.6820, 1.18e-9)},
    6: {"mb-EM M=500": (20.44, 23.4721, 21.8393, 0.67), "SBE M=500 (100,5)": (20.2989, 21.2047, 20.4939, 0.0439)},
    10: {"mb-EM M=500": (15.9148, 18.1848, 16.1727, 0.4332), "SBE M=500 (100,5)": (15.6823, 15.6825, 15.6824, 1.5e-9)},
}


def digit_mixture(n: int = 60000, noise: float = 0.2, seed: int = 4, size: int = 28):
    """``n`` points around 8 digit images (classes 0..7 of sklearn digits, upsampled) + N(0, noise^2)."""
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    digits = load_digits()
    centres = []
    for c in range(8):
        img = digits.images[np.flatnonzero(digits.target == c)[0]] / 16.0
        centres.append(np.clip(zoom(img, size / 8, order=1), 0, 1).reshape(-1))
    centres = np.array(centres)
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 8)
    X = centres[labels] + noise * rng.standard_normal((n, centres.shape[1]))
    return X.astype(np.float32), labels, centres


def _settings(name):
    """Per data set: list of (K, batch, n_outer, n_inner, lloyd max_iter)."""
    return {
        "iris": [(3, 60, 10, 40, 300)],             # thesis section 4.3.2: M = 60, (omaxit, imaxit) = (10, 40)
        "digits": [(10, 500, 100, 5, 300)],
        "digits-mixture": [(8, 1000, 150, 10, 50), (6, 500, 100, 5, 50), (8, 500, 100, 5, 50), (10, 500, 100, 5, 50)],
    }[name]


def run_setting(X, K, batch, n_outer, n_inner, max_iter, starts, seed, methods=METHODS, echo=print):
    from sklearn.cluster import KMeans, MiniBatchKMeans

    from fastem.cluster import DataSource, assign_full, init_centroids, lloyd, minibatch, sbe

    src = DataSource(X)
    n = src.n
    tol_scale = src.mean_variance()
    steps = n_outer * n_inner
    res = {m: [] for m in methods}
    secs = {m: 0.0 for m in methods}
    lloyd_agree = []
    seqs = np.random.SeedSequence([seed, K, batch]).spawn(starts)
    for r, ss in enumerate(seqs):
        rng = np.random.default_rng(ss)
        C0 = init_centroids(src, K, "random", rng)
        C0w = C0.astype(X.dtype)
        mseed = int(rng.integers(2 ** 31))
        for m in methods:
            t = time.perf_counter()
            if m == "lloyd":
                C = lloyd(src, C0, max_iter=max_iter, tol=1e-4, tol_scale=tol_scale).centers
            elif m == "sklearn-kmeans":
                C = KMeans(K, init=C0w, n_init=1, max_iter=max_iter, algorithm="lloyd").fit(X).cluster_centers_
            elif m == "minibatch":
                C = minibatch(src, C0, np.random.default_rng(mseed), batch_size=batch, n_steps=steps).centers
            elif m == "sklearn-minibatch":
                epochs = max(1, int(np.ceil(steps * batch / n)))
                C = MiniBatchKMeans(K, init=C0w, n_init=1, batch_size=batch, max_iter=epochs, max_no_improvement=None,
                                    random_state=mseed).fit(X).cluster_centers_
            else:
                C = sbe(src, C0, np.random.default_rng(mseed), batch_size=batch, n_outer=n_outer, n_inner=n_inner).centers
            secs[m] += time.perf_counter() - t
            res[m].append(assign_full(src, np.asarray(C, np.float64), labels=False)[1])
        if "lloyd" in methods and "sklearn-kmeans" in methods:
            lloyd_agree.append(abs(res["lloyd"][-1] - res["sklearn-kmeans"][-1]) <= 1e-6 * res["lloyd"][-1])
        if (r + 1) % max(1, starts // 5) == 0:
            echo(f"    start {r + 1}/{starts}: " + ", ".join(f"{m} {res[m][-1]:.5g}" for m in methods))
    stats = {}
    for m in methods:
        v = np.array(res[m])
        stats[m] = {"min": float(v.min()), "max": float(v.max()), "mean": float(v.mean()), "variance": float(v.var()),
                    "seconds_per_start": secs[m] / starts, "objectives": v.tolist()}
    return {"K": K, "batch": batch, "n_outer": n_outer, "n_inner": n_inner, "lloyd_max_iter": max_iter,
            "starts": starts, "stats": stats,
            "lloyd_matches_sklearn_fraction": float(np.mean(lloyd_agree)) if lloyd_agree else None}


def run(starts: int = 100, big_starts: int = 20, big_n: int = 60000, seed: int = 2018, datasets=None,
        out_dir: Path | None = None, name: str = "cluster_reproduction", big_settings=None, echo=print) -> dict:
    from sklearn.datasets import load_digits, load_iris

    out_dir = Path(out_dir) if out_dir else Path(__file__).resolve().parent / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = {"iris": lambda: load_iris().data, "digits": lambda: load_digits().data.astype(np.float64),
            "digits-mixture": lambda: digit_mixture(big_n)[0]}
    datasets = datasets or list(data)
    rows = []
    for name_ds in datasets:
        X = data[name_ds]()
        settings = _settings(name_ds) if name_ds != "digits-mixture" or big_settings is None else big_settings
        n_starts = big_starts if name_ds == "digits-mixture" else starts
        for K, batch, n_outer, n_inner, max_iter in settings:
            batch = min(batch, X.shape[0])
            echo(f"{name_ds} (N={X.shape[0]}, d={X.shape[1]}, {X.dtype}) K={K} M={batch} SBE ({n_outer},{n_inner}), "
                 f"{n_starts} starts")
            # the (150,10)/M=1000 setting is the thesis' EM-vs-SBE comparison: Lloyd and SBE only
            methods = ("lloyd", "sklearn-kmeans", "sbe") if (name_ds == "digits-mixture" and batch == 1000) else (
                ("minibatch", "sklearn-minibatch", "sbe") if name_ds == "digits-mixture" else METHODS)
            row = run_setting(X, K, batch, n_outer, n_inner, max_iter, n_starts, seed, methods, echo=echo)
            row.update({"dataset": name_ds, "N": int(X.shape[0]), "d": int(X.shape[1]), "dtype": str(X.dtype)})
            rows.append(row)
    import os

    env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS")
           if k in os.environ}
    result = {"rows": rows, "seed": seed, "seconds": time.perf_counter() - t0, "command": " ".join(sys.argv),
              "machine": platform.processor() or platform.machine(), "thesis_table_4_1": THESIS_TABLE_4_1,
              "environment": env}
    (out_dir / f"{name}.json").write_text(json.dumps(result, indent=1))
    (out_dir / f"{name}.md").write_text(to_markdown(result))
    _plot(result, out_dir / f"{name}.png")
    return result


def merge(paths, out_dir=None, name="cluster_reproduction") -> dict:
    """Concatenate the rows of several result files (commands and seconds are kept per part)."""
    out_dir = Path(out_dir) if out_dir else Path(__file__).resolve().parent / "results"
    parts = [json.loads(Path(p).read_text()) for p in paths]
    result = {"rows": [r for p in parts for r in p["rows"]], "seed": parts[0]["seed"],
              "seconds": sum(p["seconds"] for p in parts),
              "command": " ; ".join(p["command"] for p in parts) + " ; " + " ".join(sys.argv),
              "machine": parts[0]["machine"], "thesis_table_4_1": THESIS_TABLE_4_1,
              "environment": parts[0].get("environment")}
    (out_dir / f"{name}.json").write_text(json.dumps(result, indent=1))
    (out_dir / f"{name}.md").write_text(to_markdown(result))
    _plot(result, out_dir / f"{name}.png")
    return result


def to_markdown(result) -> str:
    lines = ["| data | N x d | K | M | SBE (omaxit, imaxit) | method | starts | min | max | mean | variance | s/start |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        for m, s in row["stats"].items():
            lines.append(f"| {row['dataset']} | {row['N']} x {row['d']} | {row['K']} | {row['batch']} | "
                         f"({row['n_outer']}, {row['n_inner']}) | {m} | {row['starts']} | {s['min']:.6g} | "
                         f"{s['max']:.6g} | {s['mean']:.6g} | {s['variance']:.3g} | {s['seconds_per_start']:.3g} |")
    lines.append("")
    agree = [(r["dataset"], r["K"], r["lloyd_matches_sklearn_fraction"]) for r in result["rows"]
             if r["lloyd_matches_sklearn_fraction"] is not None]
    if agree:
        lines.append("Our Lloyd equals scikit-learn's KMeans(n_init=1) from the same start (|d phi| <= 1e-6 phi) in: "
                     + ", ".join(f"{d} K={k}: {100 * f:.0f} %" for d, k, f in agree) + " of starts.")
    lines.append(f"\nTotal {result['seconds']:.0f} s; command: `{result['command']}`")
    return "\n".join(lines) + "\n"


def _plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    fig, axes = plt.subplots(len(rows), 1, figsize=(8, 2.2 * len(rows)), squeeze=False)
    for ax, row in zip(axes[:, 0], rows):
        vals = [v for s in row["stats"].values() for v in s["objectives"]]
        bins = np.linspace(min(vals), max(vals) + 1e-9 * abs(max(vals)), 40)
        for m, s in row["stats"].items():
            ax.hist(s["objectives"], bins=bins, histtype="step", lw=1.5, label=m, color=COLORS[m])
        ax.set_title(f"{row['dataset']} K={row['K']} M={row['batch']}", fontsize=9)
        ax.legend(fontsize=7)
    axes[-1, 0].set_xlabel("objective phi")
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--starts", type=int, default=100, help="starts for Iris and digits")
    p.add_argument("--big-starts", type=int, default=20, help="starts for the 60 000-point set")
    p.add_argument("--big-n", type=int, default=60000)
    p.add_argument("--datasets", nargs="*", default=None, choices=["iris", "digits", "digits-mixture"])
    p.add_argument("--big-settings", nargs="+", default=None, metavar="K,M,OUTER,INNER,MAXIT",
                   help="settings of the 60 000-point set (default: the four of table 4.1)")
    p.add_argument("--quick", action="store_true", help="5 starts, 3000 points in the big set")
    p.add_argument("--out-dir", type=Path, default=None)
    p.add_argument("--name", default="cluster_reproduction")
    p.add_argument("--merge", nargs="+", type=Path, default=None, metavar="JSON",
                   help="only merge earlier result files (e.g. runs split over processes) into --name")
    a = p.parse_args(argv)
    if a.merge:
        merge(a.merge, a.out_dir, a.name)
        return
    if a.quick:
        a.starts, a.big_starts, a.big_n = 5, 2, 3000
    big = [tuple(int(v) for v in t.split(",")) for t in a.big_settings] if a.big_settings else None
    run(a.starts, a.big_starts, a.big_n, datasets=a.datasets, out_dir=a.out_dir, name=a.name, big_settings=big)


if __name__ == "__main__":
    main()
