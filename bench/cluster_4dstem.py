"""Clustering a synthetic 4D-STEM scan: fastem vs scikit-learn, in memory and streamed from HDF5.

Data: ``fastem.cluster.synthetic.stem4d_phases`` (S x S probe positions, 64 x 64 float32
patterns, 6 phases in contiguous domains, counting-like noise), so the ARI against the known
phase map is a real quality measure. For every scan size and K, in *interleaved rounds* (every
method once per round, in turn, so all see the same machine load; medians over rounds):

* scikit-learn ``MiniBatchKMeans`` (batch 1024, ``max_iter = E`` epochs, no early stop) and
  ``KMeans(algorithm="lloyd", max_iter=E, tol=0)``; fastem mini-batch and SBE (``E * N / 1024``
  mini-batches of 1024) and Lloyd (``max_iter=E, tol=0``), all from the same k-means++ start,
  with the same number of threads (``threadpoolctl`` for scikit-learn's OpenMP and BLAS,
  ``fastem.config.set_threads``);
* fastem mini-batch / SBE / Lloyd streamed from HDF5 files of the same data: chunked
  ``(4, 16, 64, 64)`` (64 patterns, 1 MiB per chunk), contiguous, and bitshuffle/LZ4-compressed
  with the same chunks (``hdf5plugin``); files in the page cache, plus one cold-cache figure per
  round (the chunked file's pages dropped with ``posix_fadvise(DONTNEED)`` first); and the
  uniform-row sampling of the old streaming path on the chunked file (timed on fewer steps and
  scaled to ``E`` epochs, marked as such);
* the floors of one assignment pass, measured in the same run: the ``sgemm`` time of
  ``X (N, 4096) @ C^T`` (scipy BLAS, same threads) and the memory time of reading ``X`` once
  (two threads copying halves of X into buffers: bytes / (2 x bytes / copy time)); fastem's
  assignment pass (labels + exact distances, no accumulation) against ``max`` of the two.

Quality: ARI against the true phases and the objective ``phi = 1/(2N) sum min ||x - c||^2`` of
every fit's centroids (recomputed by one fastem pass). Peak memory: ``tracemalloc`` peak of the
Python/NumPy allocations of one extra, untimed fit per method (the data excluded; BLAS and
OpenMP scratch are not seen by tracemalloc).

    nice -n 10 .venv/bin/python bench/cluster_4dstem.py             # -> bench/results/cluster_4dstem.{json,md}
    nice -n 10 .venv/bin/python bench/cluster_4dstem.py --points --out bench/results/cluster_4dstem_60000x784
    .venv/bin/python bench/cluster_4dstem.py --quick                  # seconds: tiny sizes
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

BATCH = 1024


def _drop_cache(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


_DECODE = """
import sys, time, numpy as np, h5py, hdf5plugin
{extra}
with h5py.File(sys.argv[1], "r") as f:
    ds = f["data"]
    out = np.empty(ds.shape, ds.dtype)
    ts = []
    for _ in range(4):
        t = time.perf_counter()
        ds.read_direct(out)
        ts.append(time.perf_counter() - t)
print(np.median(ts[1:]))
"""


def _decode_rates(path, rounds=3):
    """Seconds to read (decompress) the whole compressed file once, file in the page cache, in
    fresh processes, medians of ``rounds`` interleaved rounds: with hdf5plugin's bitshuffle
    filter alone, and as fastem reads it (``load_hdf5_filters``: the ``bitshuffle`` package's
    filter when installed). A streamed fit decompresses every chunk ``epochs + 2`` times (the
    finite/range check, the epochs, the final labels): that many reads are the LZ4 rows' floor."""
    import subprocess

    ts = {"hdf5plugin": [], "fastem": []}
    for _ in range(rounds):
        for name, extra in (("hdf5plugin", ""),
                            ("fastem", "from fastem.cluster.source import load_hdf5_filters; load_hdf5_filters()")):
            r = subprocess.run([sys.executable, "-c", _DECODE.format(extra=extra), str(path)], capture_output=True,
                               text=True, check=True)
            ts[name].append(float(r.stdout.strip().splitlines()[-1]))
    return {k: float(np.median(v)) for k, v in ts.items()}


def _floors(X2, K, threads, reps=3):
    """(sgemm seconds, memory-read seconds, bandwidth GB/s) for one pass over X2 (N, d)."""
    from concurrent.futures import ThreadPoolExecutor

    from scipy.linalg.blas import sgemm
    from threadpoolctl import threadpool_limits

    C = np.random.default_rng(0).standard_normal((K, X2.shape[1])).astype(np.float32)
    ts = []
    with threadpool_limits(threads):
        # X2 @ C^T without copies: X2 (C order) is X2.T in Fortran order, C.T likewise
        sgemm(1.0, X2[:1024].T, C.T, trans_a=True)
        for _ in range(reps):
            t = time.perf_counter()
            sgemm(1.0, X2.T, C.T, trans_a=True)
            ts.append(time.perf_counter() - t)
    t_gemm = float(np.median(ts))
    n = X2.shape[0]
    parts = np.array_split(np.arange(n), threads)
    bufs = [np.empty((min(4096, p.size), X2.shape[1]), X2.dtype) for p in parts]

    def copy(i):
        p = parts[i]
        for a in range(p[0], p[-1] + 1, bufs[i].shape[0]):
            b = min(p[-1] + 1, a + bufs[i].shape[0])
            np.copyto(bufs[i][:b - a], X2[a:b])

    ts = []
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(copy, range(threads)))
        for _ in range(reps):
            t = time.perf_counter()
            list(pool.map(copy, range(threads)))
            ts.append(time.perf_counter() - t)
    t_copy = float(np.median(ts))
    bw = 2 * X2.nbytes / t_copy
    return t_gemm, X2.nbytes / bw, bw / 1e9


def _methods(X, files, K, C0, E, N, threads, quick):
    """name -> (kind, callable(seed) -> fitted object with cluster centres and labels)."""
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from threadpoolctl import threadpool_limits

    from fastem.cluster import SBEKMeans

    steps = max(1, E * N // BATCH)
    inner = 8 if steps >= 8 else 1
    outer = max(1, steps // inner)
    chunks = (4, 16) + X.shape[2:]
    C0f = np.asarray(C0, np.float32)

    def sk(cls, **kw):
        def fit(seed):
            with threadpool_limits(threads):
                return cls(K, init=C0f, n_init=1, random_state=seed, **kw).fit(X.reshape(N, -1))
        return fit

    def fe(data, **kw):
        def fit(seed):
            return SBEKMeans(K, init=C0, random_state=seed, batch_size=BATCH, **kw).fit(data)
        return fit

    mb = dict(algorithm="minibatch", n_steps=steps)
    sb = dict(algorithm="sbe", n_outer=outer, n_inner=inner)
    ll = dict(algorithm="lloyd", max_iter=E, tol=0.0)
    m = {
        "sklearn MiniBatchKMeans": ("mini-batch", sk(MiniBatchKMeans, batch_size=BATCH, max_iter=E,
                                                     max_no_improvement=None, tol=0.0)),
        "fastem mini-batch, memory": ("mini-batch", fe(X, sampling="uniform", **mb)),
        "fastem mini-batch, memory, chunk plan": ("mini-batch", fe(X, sampling="chunks", sampling_chunks=chunks, **mb)),
        "fastem mini-batch, HDF5 chunked": ("mini-batch", fe(files["chunked"], **mb)),
        "fastem mini-batch, HDF5 chunked, cold cache": ("mini-batch", fe(files["chunked"], **mb)),
        "fastem mini-batch, HDF5 contiguous": ("mini-batch", fe(files["contiguous"], sampling="chunks",
                                                                sampling_chunks=chunks, **mb)),
        "fastem mini-batch, HDF5 bitshuffle-LZ4": ("mini-batch", fe(files["lz4"], **mb)),
        "fastem SBE, memory": ("mini-batch", fe(X, sampling="uniform", **sb)),
        "fastem SBE, HDF5 chunked": ("mini-batch", fe(files["chunked"], **sb)),
        "sklearn KMeans (Lloyd)": ("Lloyd", sk(KMeans, max_iter=E, tol=0.0, algorithm="lloyd")),
        "fastem Lloyd, memory": ("Lloyd", fe(X, **ll)),
        "fastem Lloyd, HDF5 chunked": ("Lloyd", fe(files["chunked"], **ll)),
    }
    return m


def run(a):
    import h5py
    import hdf5plugin
    from sklearn.metrics import adjusted_rand_score
    from threadpoolctl import threadpool_limits

    from fastem.benchmark import machine_info
    from fastem.cluster import DataSource, SBEKMeans, assign_full, init_centroids
    from fastem.cluster.synthetic import stem4d_phases
    from fastem.config import set_threads
    from fastem.io import DataWarning

    warnings.simplefilter("ignore", DataWarning)
    set_threads(a.threads)
    E = a.epochs
    kk = 16 if a.quick else 64
    sizes = [16] if a.quick else a.sizes
    results = {"machine": machine_info(), "threads": a.threads, "epochs": E, "batch": BATCH, "repeats": a.repeats,
               "pattern": [kk, kk], "n_phases": 6, "command": " ".join(sys.argv), "cases": [],
               "load_average_start": os.getloadavg(), "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY")}
    tmpdir = Path(tempfile.mkdtemp(prefix="cluster4d-", dir=a.tmp))
    t_start = time.time()
    for S in sizes:
        N = S * S
        X, phase_map, _ = stem4d_phases(S, S, kk, kk, 6, seed=1)
        truth = phase_map.ravel()
        files = {}
        for name, kw in (("chunked", dict(chunks=(4, 16, kk, kk))), ("contiguous", {}),
                         ("lz4", dict(chunks=(4, 16, kk, kk), **hdf5plugin.Bitshuffle(cname="lz4")))):
            p = tmpdir / f"scan{S}_{name}.h5"
            with h5py.File(p, "w") as f:
                f.create_dataset("data", data=X, **kw)
            files[name] = f"{p}:/data"
        sizes_mb = {k: os.path.getsize(v.split(":")[0]) / 2 ** 20 for k, v in files.items()}
        decode = _decode_rates(files["lz4"].split(":")[0])
        src = DataSource(X)
        X2 = X.reshape(N, -1)
        for K in a.ks:
            C0 = init_centroids(src, K, "k-means++", np.random.default_rng(0))
            t_gemm, t_mem, bw = _floors(X2, K, a.threads)
            Cf = np.asarray(C0)
            assign_ts = []
            for _ in range(3):
                t = time.perf_counter()
                assign_full(src, Cf, labels=True)
                assign_ts.append(time.perf_counter() - t)
            t_assign = float(np.median(assign_ts))
            methods = _methods(X, files, K, C0, E, N, a.threads, a.quick)
            times = {name: [] for name in methods}
            quality = {name: [] for name in methods}
            for r in range(a.repeats):
                for name, (kind, fit) in methods.items():
                    if "cold cache" in name:
                        _drop_cache(files["chunked"].split(":")[0])
                    t = time.perf_counter()
                    model = fit(r)
                    times[name].append(time.perf_counter() - t)
                    centers = np.asarray(model.cluster_centers_, np.float64)
                    labels, phi, _, _ = assign_full(src, centers)
                    quality[name].append((adjusted_rand_score(truth, labels), phi))
                print(f"[{time.time() - t_start:6.0f} s] S={S} K={K} round {r + 1}/{a.repeats} done", flush=True)
            # uniform rows from the chunked file (few steps, scaled): once a chunk read per row, now
            # gathered in place from the memory-mapped file since it is uncompressed
            steps_all = max(1, E * N // BATCH)
            few = min(steps_all, 8)
            t = time.perf_counter()
            SBEKMeans(K, init=C0, algorithm="minibatch", n_steps=few, batch_size=BATCH, sampling="uniform",
                      random_state=0).fit(files["chunked"])
            t_few = time.perf_counter() - t
            t0 = time.perf_counter()
            SBEKMeans(K, init=C0, algorithm="minibatch", n_steps=1, batch_size=BATCH, sampling="uniform",
                      random_state=0).fit(files["chunked"])
            t_one = time.perf_counter() - t0
            per_step = max(t_few - t_one, 0.0) / max(few - 1, 1)
            uniform_scaled = t_one + per_step * (steps_all - 1)
            # peak memory (one untimed fit each)
            peaks = {}
            for name, (kind, fit) in methods.items():
                if a.no_peak or "cold" in name or "plan" in name:
                    continue
                tracemalloc.start()
                fit(0)
                peaks[name] = tracemalloc.get_traced_memory()[1] / 2 ** 20
                tracemalloc.stop()
            case = {"scan": [S, S], "N": N, "d": kk * kk, "K": K, "data_MiB": X.nbytes / 2 ** 20, "file_MiB": sizes_mb,
                    "floor": {"sgemm_s": t_gemm, "memory_s": t_mem, "bandwidth_GBps": bw,
                              "assign_pass_s": t_assign, "assign_over_floor": t_assign / max(t_gemm, t_mem)},
                    "lz4_decode_s": decode, "uniform_rows_from_chunked_scaled_s": uniform_scaled, "uniform_rows_steps_timed": few,
                    "methods": {}}
            for name, (kind, _) in methods.items():
                q = np.array(quality[name])
                case["methods"][name] = {"kind": kind, "times_s": times[name], "median_s": float(np.median(times[name])),
                                         "ari_median": float(np.median(q[:, 0])), "ari_min": float(q[:, 0].min()),
                                         "objective_median": float(np.median(q[:, 1])),
                                         "peak_MiB": peaks.get(name)}
            results["cases"].append(case)
        for v in files.values():
            os.remove(v.split(":")[0])
    results["wall_s"] = time.time() - t_start
    results["load_average_end"] = os.getloadavg()
    return results


def run_points(a):
    """The issue's second size: (60000, 784) float32 Gaussian-mixture points, K = 10, in memory
    (mini-batch, SBE, Lloyd vs scikit-learn; same start, same threads, interleaved rounds)."""
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from sklearn.metrics import adjusted_rand_score
    from threadpoolctl import threadpool_limits

    from fastem.benchmark import machine_info
    from fastem.cluster import DataSource, SBEKMeans, assign_full, init_centroids
    from fastem.config import set_threads
    from fastem.data.mixture import gaussian_mixture

    set_threads(a.threads)
    E = a.epochs
    N, d, K = (3000, 64, 10) if a.quick else (60000, 784, 10)
    X, truth, _ = gaussian_mixture(N, d, K, spread=3.0, centre_scale=5.0, seed=1, dtype=np.float32)
    src = DataSource(X)
    C0 = init_centroids(src, K, "k-means++", np.random.default_rng(0))
    C0f = np.asarray(C0, np.float32)
    steps = max(1, E * N // BATCH)
    inner = 8 if steps >= 8 else 1

    def sk(cls, **kw):
        def fit(seed):
            with threadpool_limits(a.threads):
                return cls(K, init=C0f, n_init=1, random_state=seed, **kw).fit(X)
        return fit

    def fe(**kw):
        return lambda seed: SBEKMeans(K, init=C0, random_state=seed, batch_size=BATCH, **kw).fit(X)

    methods = {
        "sklearn MiniBatchKMeans": ("mini-batch", sk(MiniBatchKMeans, batch_size=BATCH, max_iter=E,
                                                     max_no_improvement=None, tol=0.0)),
        "fastem mini-batch, memory": ("mini-batch", fe(algorithm="minibatch", n_steps=steps, sampling="uniform")),
        "fastem SBE, memory": ("mini-batch", fe(algorithm="sbe", n_outer=max(1, steps // inner), n_inner=inner,
                                                sampling="uniform")),
        "sklearn KMeans (Lloyd)": ("Lloyd", sk(KMeans, max_iter=E, tol=0.0, algorithm="lloyd")),
        "fastem Lloyd, memory": ("Lloyd", fe(algorithm="lloyd", max_iter=E, tol=0.0)),
    }
    t_start = time.time()
    res = {"machine": machine_info(), "threads": a.threads, "epochs": E, "batch": BATCH, "repeats": a.repeats,
           "command": " ".join(sys.argv), "load_average_start": os.getloadavg(), "points": [N, d, K], "cases": [],
           "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY")}
    times = {n: [] for n in methods}
    quality = {n: [] for n in methods}
    for r in range(a.repeats):
        for name, (_, fit) in methods.items():
            t = time.perf_counter()
            model = fit(r)
            times[name].append(time.perf_counter() - t)
            labels, phi, _, _ = assign_full(src, np.asarray(model.cluster_centers_, np.float64))
            quality[name].append((adjusted_rand_score(truth, labels), phi))
        print(f"[{time.time() - t_start:6.0f} s] points round {r + 1}/{a.repeats} done", flush=True)
    case = {"N": N, "d": d, "K": K, "methods": {}}
    for name, (kind, _) in methods.items():
        q = np.array(quality[name])
        case["methods"][name] = {"kind": kind, "times_s": times[name], "median_s": float(np.median(times[name])),
                                 "ari_median": float(np.median(q[:, 0])), "ari_min": float(q[:, 0].min()),
                                 "objective_median": float(np.median(q[:, 1])), "peak_MiB": None}
    res["cases"].append(case)
    res["wall_s"] = time.time() - t_start
    res["load_average_end"] = os.getloadavg()
    return res


def _md_points(res) -> str:
    E = res["epochs"]
    N, d, K = res["points"]
    m = res["cases"][0]["methods"]
    lines = ["# k-means on (60000, 784) points (bench/cluster_4dstem.py --points)", "",
             f"Command: `{res['command']}`; {res['threads']} threads for everyone; {E} epochs; batch {res['batch']}; "
             f"{res['repeats']} interleaved rounds, medians; OMP_WAIT_POLICY={res['OMP_WAIT_POLICY']}; "
             f"float32 Gaussian mixture N = {N}, d = {d}, K = {K}; "
             f"load average at start {', '.join(f'{x:.1f}' for x in res['load_average_start'])}, at end "
             f"{', '.join(f'{x:.1f}' for x in res['load_average_end'])}. Wall time {res['wall_s']:.0f} s.", "",
             "| method | time (s) | vs sklearn peer | ARI (median, min) | objective |", "|---|---|---|---|---|"]
    for name, r in m.items():
        peer = m["sklearn KMeans (Lloyd)" if r["kind"] == "Lloyd" else "sklearn MiniBatchKMeans"]["median_s"]
        lines.append(f"| {name} | {r['median_s']:.3f} | {r['median_s'] / peer:.2f}x | {r['ari_median']:.3f}, "
                     f"{r['ari_min']:.3f} | {r['objective_median']:.6g} |")
    return "\n".join(lines) + "\n"


def _md(res) -> str:
    E = res["epochs"]
    lines = ["# Clustering a synthetic 4D-STEM scan (bench/cluster_4dstem.py)", "",
             f"Command: `{res['command']}`; {res['threads']} threads for everyone; {E} epochs; batch {res['batch']}; "
             f"{res['repeats']} interleaved rounds, medians; OMP_WAIT_POLICY={res['OMP_WAIT_POLICY']}; "
             f"patterns {res['pattern'][0]}x{res['pattern'][1]} float32, "
             f"{res['n_phases']} phases; machine: {res['machine'].get('cpu_model', '')}, "
             f"{res['machine'].get('cores_available', '?')} cores, shared (1/5/15-min load average at start "
             f"{', '.join(f'{x:.1f}' for x in res['load_average_start'])}, at end "
             f"{', '.join(f'{x:.1f}' for x in res['load_average_end'])}). Wall time {res['wall_s']:.0f} s.", ""]
    for c in res["cases"]:
        m = c["methods"]
        mbk = m["sklearn MiniBatchKMeans"]["median_s"]
        km = m["sklearn KMeans (Lloyd)"]["median_s"]
        mem = m["fastem mini-batch, memory"]["median_s"]
        lines += [f"## {c['scan'][0]}x{c['scan'][1]} scan x {c['d']} (N = {c['N']}, {c['data_MiB']:.0f} MiB), K = {c['K']}",
                  "", "| method | time (s) | vs sklearn peer | vs fastem in memory | ARI (median, min) | objective | "
                      "peak MiB |", "|---|---|---|---|---|---|---|"]
        for name, r in m.items():
            peer = km if r["kind"] == "Lloyd" else mbk
            base = m["fastem Lloyd, memory"]["median_s"] if r["kind"] == "Lloyd" else (
                m["fastem SBE, memory"]["median_s"] if "SBE" in name else mem)
            pk = "" if r["peak_MiB"] is None else f"{r['peak_MiB']:.0f}"
            lines.append(f"| {name} | {r['median_s']:.3f} | {r['median_s'] / peer:.2f}x | {r['median_s'] / base:.2f}x | "
                         f"{r['ari_median']:.3f}, {r['ari_min']:.3f} | {r['objective_median']:.6g} | {pk} |")
        f = c["floor"]
        lines += ["", f"Uniform rows from the chunked file (`--sampling uniform`; an uncompressed file is gathered "
                      f"in place from its memory map, no longer one chunk read per row), scaled from "
                      f"{c['uniform_rows_steps_timed']} timed steps to {E} epochs: {c['uniform_rows_from_chunked_scaled_s']:.2f} s "
                      f"({c['uniform_rows_from_chunked_scaled_s'] / mem:.1f}x fastem in memory).",
                  f"Assignment pass: {f['assign_pass_s'] * 1e3:.1f} ms; floors measured in the same run: sgemm "
                  f"{f['sgemm_s'] * 1e3:.1f} ms, memory read {f['memory_s'] * 1e3:.1f} ms ({f['bandwidth_GBps']:.1f} GB/s); "
                  f"pass / max(floors) = {f['assign_over_floor']:.2f}. Files: "
                  + ", ".join(f"{k} {v:.0f} MiB" for k, v in c["file_MiB"].items()) + "."]
        if c.get("lz4_decode_s"):
            dec = c["lz4_decode_s"]
            lz4 = m["fastem mini-batch, HDF5 bitshuffle-LZ4"]["median_s"]
            floor = (E + 2) * dec["fastem"]
            lines.append(f"Decompressing the whole LZ4 file once (page cache, fresh processes, medians of 3 interleaved "
                         f"rounds): {dec['fastem']:.4g} s as fastem reads it ({c['data_MiB'] / 1024 / dec['fastem']:.2f} "
                         f"GiB/s), {dec['hdf5plugin']:.4g} s with hdf5plugin's filter alone "
                         f"({c['data_MiB'] / 1024 / dec['hdf5plugin']:.2f} GiB/s). A streamed fit decompresses every "
                         f"chunk {E + 2} times (the finite/range check, {E} epochs, the final labels): {floor:.2f} s, "
                         f"the floor of the LZ4 rows; the LZ4 mini-batch run is {lz4 / floor:.2f}x that floor.")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256], help="scan sizes S (S x S probe positions)")
    p.add_argument("--ks", type=int, nargs="+", default=[6, 16])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="a 16x16 scan of 16x16 patterns (smoke test)")
    p.add_argument("--no-peak", action="store_true", help="skip the untimed peak-memory fits")
    p.add_argument("--tmp", default=None, help="folder for the HDF5 files (default: the system's)")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "cluster_4dstem")
    p.add_argument("--points", action="store_true", help="the (60000, 784) Gaussian-mixture case instead of 4D-STEM")
    p.add_argument("--omp-active", action="store_true",
                   help="leave OMP_WAIT_POLICY alone (default: PASSIVE, set before scikit-learn's OpenMP loads)")
    a = p.parse_args(argv)
    if not a.omp_active:
        # On a shared, loaded machine libgomp's default spin-waiting makes scikit-learn's OpenMP
        # loops collapse (MiniBatchKMeans at 60000 x 784: 18.8 s with the default, 1.5 s passive,
        # same run conditions); passive waiting is the fair setting there. Only effective when
        # libgomp is not loaded yet (a fresh process).
        from fastem.config import use_passive_openmp as _use_passive_openmp  # noqa: E402
        _use_passive_openmp()  # as the CLI does: PASSIVE with a short spin (bench/results/openmp_wait_policy.md)
    res = run_points(a) if a.points else run(a)
    md = _md_points(res) if a.points else _md(res)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    from fastem.io import atomic_output

    with atomic_output(a.out.with_suffix(".json"), overwrite=True) as tmp:
        Path(tmp).write_text(json.dumps(res, indent=1, default=str))
    with atomic_output(a.out.with_suffix(".md"), overwrite=True) as tmp:
        Path(tmp).write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
