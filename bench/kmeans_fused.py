"""Where the fused one-pass k-means assignment beats gather + GEMM (sets ``FUSED_MAX_K``).

:func:`fastem.kernels.assign_accumulate` (``numba`` engine) assigns points either with BLAS's
GEMM for the cross term ``X C^T`` (mini-batch rows first gathered into a cache-sized buffer) or,
for at most ``fastem.kernels.kmeans_assign.FUSED_MAX_K`` centroids, with
``assign_rows_fused``, which reads every point once and forms the cross term itself. This script
times both paths side by side in one run, for a mini-batch of 1024 random rows and for a
contiguous pass over all rows, at 2 threads, over a range of K, and reports fused / GEMM.

Usage: ``.venv/bin/python bench/kmeans_fused.py [--d 4096 784] [--ks 2 4 6 8 12 16 24 32 48 64 96 128]``
-> ``bench/results/kmeans_fused.json`` and ``.md``. Needs an idle machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from fastem.config import use_passive_openmp as _use_passive_openmp  # noqa: E402
_use_passive_openmp()  # as the CLI does: PASSIVE with a short spin (bench/results/openmp_wait_policy.md)

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import median_seconds, write_results  # noqa: E402

RESULTS = ROOT / "bench" / "results"
BATCH = 1024


def _time(fn, repeats: int) -> float:
    return median_seconds(fn, repeats)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--d", type=int, nargs="+", default=[4096, 784])
    ap.add_argument("--ks", type=int, nargs="+", default=[2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128])
    ap.add_argument("--n", type=int, default=16384, help="rows of the data (default 16384)")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    import fastem
    from fastem.kernels import assign_accumulate, kmeans_assign

    fastem.set_threads(args.threads)
    rng = np.random.default_rng(0)
    rows_all = []
    t0 = time.perf_counter()
    load0 = os.getloadavg()
    default_max_k = kmeans_assign.FUSED_MAX_K
    for d in args.d:
        X = rng.standard_normal((args.n, d)).astype(np.float32)
        batches = [np.sort(rng.choice(args.n, min(BATCH, args.n), replace=False)).astype(np.int64) for _ in range(32)]
        for K in args.ks:
            C = np.ascontiguousarray(X[rng.choice(args.n, K, replace=False)])
            sums = np.zeros((K, d))
            counts = np.zeros(K, np.int64)
            it = iter(range(10 ** 9))

            def step():
                sums.fill(0)
                counts.fill(0)
                assign_accumulate(X, C, rows=batches[next(it) % len(batches)], sums=sums, counts=counts,
                                  distances=False)

            def full():
                assign_accumulate(X, C, sums=sums, counts=counts)

            res = {}
            for r in range(3):                     # interleaved rounds, medians of their medians
                for path, max_k in (("fused", 10 ** 9), ("gemm", 0)):
                    kmeans_assign.FUSED_MAX_K = max_k
                    try:
                        res.setdefault((path, "step"), []).append(_time(step, args.repeats))
                        res.setdefault((path, "full"), []).append(_time(full, max(3, args.repeats // 5)))
                    finally:
                        kmeans_assign.FUSED_MAX_K = default_max_k
            row = {"d": d, "K": K}
            for (path, what), ts in res.items():
                row[f"{path}_{what}_ms"] = 1e3 * float(np.median(ts))
            row["step_ratio"] = row["fused_step_ms"] / row["gemm_step_ms"]
            row["full_ratio"] = row["fused_full_ms"] / row["gemm_full_ms"]
            rows_all.append(row)
            print(f"d={d} K={K}: step fused {row['fused_step_ms']:.2f} ms / gemm {row['gemm_step_ms']:.2f} ms "
                  f"= {row['step_ratio']:.2f}; full pass {row['full_ratio']:.2f}", flush=True)
    wall = time.perf_counter() - t0
    cmd = "bench/kmeans_fused.py " + " ".join(argv if argv is not None else sys.argv[1:])
    md = [f"# Fused one-pass k-means assignment vs gather + GEMM (bench/kmeans_fused.py)", "",
          f"Command: `{cmd.strip()}`; {args.threads} threads; N = {args.n} float32 rows; mini-batch "
          f"{BATCH} random sorted rows (`distances=False`, as a mini-batch step) and a full contiguous pass "
          f"(with exact distances, as Lloyd's); medians of 3 interleaved rounds of {args.repeats} (full: "
          f"{max(3, args.repeats // 5)}) calls; OMP_WAIT_POLICY=PASSIVE; load average at start "
          f"{load0[0]:.1f}, at end {os.getloadavg()[0]:.1f}; wall {wall:.0f} s. `FUSED_MAX_K` in the code: "
          f"{default_max_k} (fused / GEMM below 1 = the fused kernel is faster).", "",
          "| d | K | step fused (ms) | step GEMM (ms) | fused / GEMM | full pass fused (ms) | full pass GEMM (ms) | fused / GEMM |",
          "|---|---|---|---|---|---|---|---|"]
    for r in rows_all:
        md.append(f"| {r['d']} | {r['K']} | {r['fused_step_ms']:.2f} | {r['gemm_step_ms']:.2f} | {r['step_ratio']:.2f} "
                  f"| {r['fused_full_ms']:.1f} | {r['gemm_full_ms']:.1f} | {r['full_ratio']:.2f} |")
    report = {"command": cmd.strip(), "threads": args.threads, "n": args.n, "batch": BATCH, "rows": rows_all,
              "fused_max_k": default_max_k, "wall_s": wall, "load_start": load0, "load_end": os.getloadavg()}
    write_results(args.out, "kmeans_fused", report, "\n".join(md) + "\n")
    return report


if __name__ == "__main__":
    main()
