"""The threading facts behind ``kernels/kmeans_assign.py``'s CPU design, measured here and now.

1. a small float32 GEMM (1000 x 784 by 784 x 8, a mini-batch cross term) with 1 and with 2
   OpenBLAS threads;
2. the cost of ``numba.get_num_threads()`` (why the kernel reads fastem's settings instead);
3. one Lloyd iteration at (60000, 784, 10) with the kernel's single-thread BLAS guard and with
   the guard disabled (worker threads then call multi-threaded BLAS).

    .venv/bin/python bench/cluster_threads_check.py      # prints; nothing written
Results depend on the machine's load; the command and its output are quoted in docs/cluster.md.
"""

from __future__ import annotations

import time

import numpy as np


def _t(fn, n):
    fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n


def main():
    import numba
    from threadpoolctl import threadpool_limits

    import fastem.kernels.kmeans_assign as ka
    from fastem.cluster import DataSource, init_centroids, lloyd
    from fastem.data.mixture import gaussian_mixture

    rng = np.random.default_rng(0)
    X = rng.standard_normal((1000, 784)).astype(np.float32)
    C = rng.standard_normal((8, 784)).astype(np.float32)
    for n in (1, 2):
        with threadpool_limits(n, "blas"):
            print(f"GEMM 1000x784x8 float32, {n} BLAS thread(s): {_t(lambda: X @ C.T, 50) * 1e3:.2f} ms")
    print(f"numba.get_num_threads(): {_t(numba.get_num_threads, 200) * 1e6:.1f} us per call")

    Xl, _, _ = gaussian_mixture(60000, 784, 10, spread=3.0, centre_scale=5.0, seed=1, dtype=np.float32)
    src = DataSource(Xl)
    C0 = init_centroids(src, 10, "random", np.random.default_rng(0))
    print(f"Lloyd iteration (60000, 784, 10), guard on : {_t(lambda: lloyd(src, C0, max_iter=1), 3):.3f} s")

    class _off:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    saved = ka._single_thread_blas
    ka._single_thread_blas = _off
    try:
        with threadpool_limits(2, "blas"):
            print(f"Lloyd iteration (60000, 784, 10), guard off: {_t(lambda: lloyd(src, C0, max_iter=1), 3):.3f} s")
    finally:
        ka._single_thread_blas = saved


if __name__ == "__main__":
    main()
