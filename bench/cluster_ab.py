"""Interleaved A/B timing of fastem vs scikit-learn k-means (robust to a shared, loaded machine).

``fastem bench cluster`` times each implementation in its own block, so load from other users
between blocks skews the ratios. Here every round runs every implementation once, in turn, so
both see the same load; the table reports per-implementation min and median over the rounds and
the ratio of mins. Same work definitions as ``bench/cases/cluster.py``.

    .venv/bin/python bench/cluster_ab.py --rounds 5          # -> bench/results/cluster_ab.{json,md}
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent / "results")
    a = p.parse_args(argv)
    from sklearn.cluster import KMeans, MiniBatchKMeans

    from fastem.benchmark import machine_info
    from fastem.cluster import DataSource, init_centroids, lloyd, minibatch, sbe, assign_full
    from fastem.data.mixture import gaussian_mixture

    B = 1024
    sizes = [(3000, 64, 10)] if a.quick else [(60000, 784, 10), (1000000, 64, 256)]
    rows = []
    for N, d, K in sizes:
        X, _, _ = gaussian_mixture(N, d, K, spread=3.0, centre_scale=5.0, seed=1, dtype=np.float32)
        src = DataSource(X)
        C0 = init_centroids(src, K, "random", np.random.default_rng(0))
        C0f = np.asarray(C0, np.float32)
        steps = max(1, N // B)
        n_inner = min(10, steps)
        impls = {
            ("Lloyd iteration", "fastem Lloyd"): lambda: lloyd(src, C0, max_iter=1),
            ("Lloyd iteration", "sklearn KMeans"): lambda: KMeans(K, init=C0f, n_init=1, max_iter=1,
                                                                  algorithm="lloyd").fit(X),
            ("mini-batch epoch", "fastem mini-batch"): lambda: assign_full(
                src, minibatch(src, C0, np.random.default_rng(1), batch_size=B, n_steps=steps).centers),
            ("mini-batch epoch", "fastem SBE"): lambda: assign_full(
                src, sbe(src, C0, np.random.default_rng(1), batch_size=B, n_outer=max(1, steps // n_inner),
                         n_inner=n_inner).centers),
            ("mini-batch epoch", "sklearn MiniBatchKMeans"): lambda: MiniBatchKMeans(
                K, init=C0f, n_init=1, batch_size=B, max_iter=1, max_no_improvement=None, tol=0.0,
                random_state=1).fit(X),
        }
        work = {"Lloyd iteration": 2 * N * K * d, "mini-batch epoch": (steps * B + N) * K * d}
        times = {k: [] for k in impls}
        for f in impls.values():  # warm-up (JIT, caches)
            f()
        for _ in range(a.rounds):
            for k, f in impls.items():
                t = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t)
        for (case, impl), ts in times.items():
            rows.append({"size": f"{N}x{d} K={K}", "case": case, "impl": impl, "min_s": min(ts),
                         "median_s": float(np.median(ts)), "times": ts,
                         "ops_per_s_at_min": work[case] / min(ts)})
            print(f"{N}x{d} K={K} {case:18s} {impl:26s} min {min(ts):.3f} s median {np.median(ts):.3f} s")
    out = {"rows": rows, "rounds": a.rounds, "command": " ".join(sys.argv), "machine": machine_info()}
    lines = ["| size | case | impl | min (s) | median (s) | pt*c*d/s at min | sklearn min / this min |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        peer = next(x for x in rows if x["size"] == r["size"] and x["case"] == r["case"] and x["impl"].startswith("sklearn"))
        lines.append(f"| {r['size']} | {r['case']} | {r['impl']} | {r['min_s']:.3f} | {r['median_s']:.3f} | "
                     f"{r['ops_per_s_at_min']:.3g} | {peer['min_s'] / r['min_s']:.2f} |")
    a.out_dir.mkdir(parents=True, exist_ok=True)
    name = "cluster_ab_quick" if a.quick else "cluster_ab"
    (a.out_dir / f"{name}.json").write_text(json.dumps(out, indent=1))
    (a.out_dir / f"{name}.md").write_text("\n".join(lines) + f"\n\n{a.rounds} interleaved rounds; command: `{out['command']}`\n")


if __name__ == "__main__":
    main()
