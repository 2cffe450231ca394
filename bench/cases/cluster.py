"""k-means speed: fastem SBE / mini-batch vs scikit-learn MiniBatchKMeans, fastem Lloyd vs KMeans.

Rows (same data, K, d, batch size M = 1024, same initial centroids, float32 data):

* ``assignment pass``: one full-data pass of the fused kernel (cross term GEMM + argmin + per-
  centroid sums and counts); work = N*K*d point x centroid x dimension operations.
* ``mini-batch epoch``: N/M mini-batches + the final full-data assignment (labels, objective),
  i.e. ``fit`` of MiniBatchKMeans(max_iter=1, max_no_improvement=None) vs our mini-batch and SBE
  (n_outer*n_inner = N/M). work = (N/M*M + N)*K*d. Per-point time = time / (N/M*M).
* ``Lloyd iteration``: ``fit`` with max_iter=1 (one update pass + the final assignment pass) for
  our Lloyd and KMeans(algorithm="lloyd", n_init=1, init=C0). work = 2*N*K*d.

* ``time to objective``: at (60000, 784, 10) only (the 1e6-point set would take sklearn minutes per
  row), each mini-batch method is fitted from the same start for E = 1, 2, 4, 8 epochs (one timed
  fit each, the final assignment pass included); two targets, 1.01 x the lowest objective any of
  them reached and 1.01 x the lowest MiniBatchKMeans reached; the notes give, per method, the time
  of the shortest fit that reached each ("not reached" if none did).

* ``... interleaved``: the mini-batch epoch and Lloyd iteration rows again, in interleaved rounds
  (every implementation once per round, in turn, so all see the same load of a shared machine;
  min / median / max over the rounds). Ratios of minima from these rows are the ones to quote.
  (Was ``bench/cluster_ab.py``.)

CPU threading facts behind ``kernels/kmeans_assign.py`` (was ``bench/cluster_threads_check.py``):

* ``BLAS threads, mini-batch GEMM``: a float32 ``(1000, 784) @ (784, 8)`` cross term with 1 and
  with 2 BLAS threads (threadpoolctl);
* ``numba.get_num_threads()``: its cost per call (why the kernel reads ``kernels._threads``);
* ``Lloyd iteration, BLAS guard``: one Lloyd iteration at (60000, 784, 10) with the kernel's
  single-thread BLAS guard and without it (worker threads then call 2-thread BLAS).

Sizes (N, d, K): (60000, 784, 10) and (1000000, 64, 256) (``--quick``: tiny). The objective each
fit reaches is written as a note (equal work, different quality). On a GPU: CuPy arrays through
the cuBLAS + CUDA-kernel path (no scikit-learn peer).

    .venv/bin/fastem --device cpu bench cluster       # -> bench/results/cluster-cpu-<time>.json
"""

from __future__ import annotations

import numpy as np

NAME = "cluster"
DESCRIPTION = "k-means: SBE/mini-batch vs MiniBatchKMeans per epoch, Lloyd vs KMeans per iteration (pt*centroid*dim/s)"

BATCH = 1024
UNIT = "pt*c*d"
ROUNDS = 5  # interleaved rounds (2 with --quick)


def _sizes(quick):
    return [(2048, 16, 8)] if quick else [(60000, 784, 10), (1000000, 64, 256)]


def run(ctx) -> None:
    from fastem.cluster import DataSource, assign_full, init_centroids, lloyd, minibatch, sbe
    from fastem.data.mixture import gaussian_mixture

    if not ctx.device.is_gpu:
        _threading_facts(ctx)
    for N, d, K in _sizes(ctx.quick):
        X, _, _ = gaussian_mixture(N, d, K, spread=3.0, centre_scale=5.0, seed=1, dtype=np.float32)
        label = f"{N}x{d} K={K}"
        steps = max(1, N // BATCH)
        src = DataSource(ctx.xp.asarray(X) if ctx.device.is_gpu else X)
        C0 = init_centroids(src, K, "random", np.random.default_rng(0))
        rep = dict(repeat=3, warmup=1, min_time=0.0)
        ctx.measure("assignment pass", label, "fastem assign_full (fused)",
                    lambda: assign_full(src, C0, labels=True, accumulate=True), work=N * K * d, work_unit=UNIT, **rep)
        epoch_work = (steps * BATCH + N) * K * d
        objs = {}

        def ours_mb():
            C = minibatch(src, C0, np.random.default_rng(1), batch_size=BATCH, n_steps=steps).centers
            objs["fastem mini-batch"] = assign_full(src, C)[1]

        def ours_sbe():
            n_inner = min(10, steps)
            C = sbe(src, C0, np.random.default_rng(1), batch_size=BATCH, n_outer=max(1, steps // n_inner),
                    n_inner=n_inner).centers
            objs["fastem SBE"] = assign_full(src, C)[1]

        ctx.measure("mini-batch epoch", label, "fastem mini-batch", ours_mb, work=epoch_work, work_unit=UNIT, **rep)
        ctx.measure("mini-batch epoch", label, "fastem SBE", ours_sbe, work=epoch_work, work_unit=UNIT, **rep)

        def ours_lloyd():
            objs["fastem Lloyd (1 it)"] = lloyd(src, C0, max_iter=1).objective

        ctx.measure("Lloyd iteration", label, "fastem Lloyd", ours_lloyd, work=2 * N * K * d, work_unit=UNIT, **rep)
        if ctx.device.is_gpu:
            ctx.note(f"{label}: objectives " + ", ".join(f"{k} {v:.5g}" for k, v in objs.items()))
            continue
        try:
            from sklearn.cluster import KMeans, MiniBatchKMeans
        except ImportError:
            ctx.note("scikit-learn not installed: peers skipped")
            continue
        C0f = np.asarray(C0, np.float32)

        def sk_mb():
            m = MiniBatchKMeans(K, init=C0f, n_init=1, batch_size=BATCH, max_iter=1, max_no_improvement=None,
                                tol=0.0, random_state=1).fit(X)
            objs["sklearn MiniBatchKMeans"] = m.inertia_ / (2 * N)

        def sk_lloyd():
            m = KMeans(K, init=C0f, n_init=1, max_iter=1, algorithm="lloyd").fit(X)
            objs["sklearn KMeans (1 it)"] = m.inertia_ / (2 * N)

        ctx.measure("mini-batch epoch", label, "sklearn MiniBatchKMeans", sk_mb, role="peer", work=epoch_work,
                    work_unit=UNIT, **rep)
        ctx.measure("Lloyd iteration", label, "sklearn KMeans", sk_lloyd, role="peer", work=2 * N * K * d,
                    work_unit=UNIT, **rep)
        ctx.note(f"{label}: objective phi after the timed fit: " + ", ".join(f"{k} {v:.5g}" for k, v in objs.items()))
        _interleaved(ctx, label, {
            ("mini-batch epoch", "fastem mini-batch", "fastem", epoch_work): ours_mb,
            ("mini-batch epoch", "fastem SBE", "fastem", epoch_work): ours_sbe,
            ("mini-batch epoch", "sklearn MiniBatchKMeans", "peer", epoch_work): sk_mb,
            ("Lloyd iteration", "fastem Lloyd", "fastem", 2 * N * K * d): ours_lloyd,
            ("Lloyd iteration", "sklearn KMeans", "peer", 2 * N * K * d): sk_lloyd,
        })
        if (N, d, K) == _sizes(ctx.quick)[0]:
            _time_to_objective(ctx, src, X, C0, C0f, N, K, d, steps, label, MiniBatchKMeans)


def _time_to_objective(ctx, src, X, C0, C0f, N, K, d, steps, label, MiniBatchKMeans) -> None:
    """Fit each mini-batch method for E epochs (E = 1, 2, 4, 8), time it, and report the time each
    needs to come within 1 % of the best objective any of them reached."""
    from fastem.cluster import assign_full, minibatch, sbe

    epochs = (1, 2) if ctx.quick else (1, 2, 4, 8)
    n_inner = min(10, steps)
    found: dict[str, dict[int, tuple[float, float]]] = {}

    def ours_mb(e):
        C = minibatch(src, C0, np.random.default_rng(1), batch_size=BATCH, n_steps=e * steps).centers
        return assign_full(src, C)[1]

    def ours_sbe(e):
        C = sbe(src, C0, np.random.default_rng(1), batch_size=BATCH, n_outer=max(1, e * steps // n_inner),
                n_inner=n_inner).centers
        return assign_full(src, C)[1]

    def sk_mb(e):
        m = MiniBatchKMeans(K, init=C0f, n_init=1, batch_size=BATCH, max_iter=e, max_no_improvement=None,
                            tol=0.0, random_state=1).fit(X)
        return m.inertia_ / (2 * N)

    methods = [("fastem mini-batch", ours_mb, "fastem"), ("fastem SBE", ours_sbe, "fastem"),
               ("sklearn MiniBatchKMeans", sk_mb, "peer")]
    for name, fit, role in methods:
        found[name] = {}
        for e in epochs:
            box = {}
            m = ctx.measure("time to objective", label, f"{name}, {e} epoch(s)", lambda: box.__setitem__("phi", fit(e)),
                            role=role, repeat=1, warmup=0, min_time=0.0)
            found[name][e] = (m.median_s, box["phi"])
    best_all = min(phi for runs in found.values() for _, phi in runs.values())
    best_peer = min(phi for _, phi in found["sklearn MiniBatchKMeans"].values())
    for what, best in (("the best of all fits", best_all), ("the best MiniBatchKMeans fit", best_peer)):
        target = 1.01 * best
        parts = []
        for name, runs in found.items():
            hit = [(t, e, phi) for e, (t, phi) in sorted(runs.items()) if phi <= target]
            parts.append(f"{name} {hit[0][0]:.3g} s ({hit[0][1]} epoch(s), phi {hit[0][2]:.5g})" if hit
                         else f"{name} not reached in {epochs[-1]} epochs (best phi {min(p for _, p in runs.values()):.5g})")
        ctx.note(f"{label}: time to objective <= {target:.5g} (1.01 x {what}): " + "; ".join(parts))


def _interleaved(ctx, label, impls) -> None:
    """Rows ``<case> interleaved``: every implementation once per round, in turn (one warm-up
    round first), so all of them see the same load; min / median / max over the rounds."""
    import statistics
    import time

    from fastem.benchmark import Measurement

    rounds = 2 if ctx.quick else ROUNDS
    for fn in impls.values():
        fn()
    times = {key: [] for key in impls}
    for _ in range(rounds):
        for key, fn in impls.items():
            t0 = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)
    for (case, impl, role, work), ts in times.items():
        ctx.measurements.append(Measurement(f"{case} interleaved", label, impl, role, statistics.median(ts), min(ts),
                                            max(ts), len(ts), work, UNIT, note=f"{rounds} interleaved rounds"))
    for case in dict.fromkeys(k[0] for k in impls):
        peer = min(min(ts) for k, ts in times.items() if k[0] == case and k[2] == "peer")
        ctx.note(f"{label} {case} interleaved ({rounds} rounds), ratio of minima scikit-learn / ours: " + ", ".join(
            f"{k[1]} {peer / min(ts):.2f}" for k, ts in times.items() if k[0] == case and k[2] == "fastem"))


def _threading_facts(ctx) -> None:
    """The CPU design of ``kernels/kmeans_assign.py`` measured: BLAS threads on a mini-batch
    GEMM, the cost of ``numba.get_num_threads()``, one Lloyd iteration with and without the
    kernel's single-thread BLAS guard (the guard replaced by a no-op, BLAS at 2 threads)."""
    from contextlib import nullcontext

    import numba
    from threadpoolctl import threadpool_limits

    from fastem.cluster import DataSource, init_centroids, lloyd
    from fastem.data.mixture import gaussian_mixture
    from fastem.kernels import kmeans_assign as ka

    rng = np.random.default_rng(0)
    X = rng.standard_normal((1000, 784)).astype(np.float32)
    CT = np.ascontiguousarray(rng.standard_normal((8, 784)).astype(np.float32).T)
    for n in (1, 2):
        with threadpool_limits(n, "blas"):
            ctx.measure("BLAS threads, mini-batch GEMM", "1000x784x8 f32", f"{n} BLAS thread(s)", lambda: X @ CT,
                        role="fastem" if n == 1 else "reference", work=1000 * 784 * 8, work_unit="mul-add",
                        repeat=50, warmup=3, min_time=0.0)
    ctx.measure("numba.get_num_threads()", "1 call", "numba.get_num_threads", numba.get_num_threads,
                role="reference", repeat=200, warmup=3, min_time=0.0)
    N, d, K = (4000, 64, 8) if ctx.quick else (60000, 784, 10)
    Xl, _, _ = gaussian_mixture(N, d, K, spread=3.0, centre_scale=5.0, seed=1, dtype=np.float32)
    src = DataSource(Xl)
    C0 = init_centroids(src, K, "random", np.random.default_rng(0))
    rep = dict(repeat=3, warmup=1, min_time=0.0)
    label = f"{N}x{d} K={K}"
    ctx.measure("Lloyd iteration, BLAS guard", label, "guard on (1 BLAS thread per worker)",
                lambda: lloyd(src, C0, max_iter=1), work=2 * N * K * d, work_unit=UNIT, **rep)
    saved = ka.single_thread_blas
    ka.single_thread_blas = nullcontext
    try:
        with threadpool_limits(2, "blas"):
            ctx.measure("Lloyd iteration, BLAS guard", label, "guard off (2 BLAS threads per worker)",
                        lambda: lloyd(src, C0, max_iter=1), role="reference", work=2 * N * K * d, work_unit=UNIT,
                        **rep)
    finally:
        ka.single_thread_blas = saved


def run_threading_facts() -> None:
    """Only the threading rows, as a case of their own (``cluster-threads``; a few seconds)::

        nice -n 10 .venv/bin/python -m fastem.bench.cases.cluster threads

    writes ``bench/results/cluster-threads-cpu-<time>.json``.
    """
    from types import SimpleNamespace

    from fastem.benchmark import run_cases

    part = SimpleNamespace(DESCRIPTION="k-means CPU threading facts (the threading rows of the cluster case)",
                           run=_threading_facts)
    run_cases(["cluster-threads"], cases={"cluster-threads": part})


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["threads"]:
        sys.exit("usage: python -m fastem.bench.cases.cluster threads   (the whole case: fastem bench cluster)")
    run_threading_facts()
