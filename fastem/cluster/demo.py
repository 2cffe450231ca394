"""``fastem demo`` job: SBE, mini-batch and Lloyd k-means on a synthetic Gaussian mixture.

Writes ``cluster/mixture.h5`` (``fastem.data.writers.save_mixture`` layout), ``cluster/sbe.h5``
(the ``fastem cluster`` layout, best SBE run) and ``cluster/objectives.png`` (histogram of the
per-run objective ``phi`` for each algorithm, every run from a random data-point start).
"""

from __future__ import annotations

import pathlib

import numpy as np

ORDER = 40
SEED = 2018


def run(out_dir: pathlib.Path, *, overwrite: bool = True, quick: bool = False) -> list[dict]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fastem.data.mixture import gaussian_mixture
    from fastem.data.writers import save_mixture

    from .estimator import SBEKMeans
    from .job import write_clusters

    out = pathlib.Path(out_dir) / "cluster"
    out.mkdir(parents=True, exist_ok=True)
    n, d, k = (3000, 8, 8) if quick else (30000, 16, 16)
    runs = 6 if quick else 30
    # overlapping clusters (spread comparable to the centre spacing): k-means has many local minima
    X, labels, centres = gaussian_mixture(n, d, k, spread=2.5, centre_scale=6.0, seed=SEED, dtype=np.float32)
    save_mixture(out / "mixture.h5", X, labels, centres, overwrite=overwrite,
                 config={"n_points": n, "n_features": d, "n_clusters": k, "spread": 2.5, "centre_scale": 6.0,
                         "seed": SEED})
    common = dict(n_init=runs, batch_size=500, n_outer=20 if quick else 60, n_inner=5, random_state=SEED)
    models = {alg: SBEKMeans(k, algorithm=alg, **common).fit(X) for alg in ("lloyd", "minibatch", "sbe")}
    write_clusters(out / "sbe.h5", models["sbe"], overwrite=overwrite,
                   config={"input": "cluster/mixture.h5:/data", "k": k, "algorithm": "sbe", **common})
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), sharex=True)
    lo = min(m.objectives_.min() for m in models.values())
    hi = max(m.objectives_.max() for m in models.values())
    bins = np.linspace(lo, hi + 1e-9 * max(1.0, abs(hi)), 25)
    for ax, (alg, m) in zip(axes, models.items()):
        ax.hist(m.objectives_, bins=bins, color={"lloyd": "0.4", "minibatch": "tab:blue", "sbe": "tab:red"}[alg])
        ax.set_title(f"{alg}: min {m.objectives_.min():.4g}, mean {m.objectives_.mean():.4g}", fontsize=9)
        ax.set_xlabel("objective phi")
    axes[0].set_ylabel(f"runs (of {runs})")
    fig.suptitle(f"k-means on a Gaussian mixture (N={n}, d={d}, K={k}), {runs} random starts each", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "objectives.png", dpi=60 if quick else 90)
    plt.close(fig)
    summary = ", ".join(f"{a} mean {m.objectives_.mean():.4g} (min {m.objectives_.min():.4g})"
                        for a, m in models.items())
    return [
        {"job": "cluster", "output": "cluster/mixture.h5", "result": f"{n} points, d={d}, K={k}"},
        {"job": "cluster", "output": "cluster/sbe.h5", "result": f"SBE best phi {models['sbe'].objective_:.5g}"},
        {"job": "cluster", "output": "cluster/objectives.png", "result": summary},
    ]
