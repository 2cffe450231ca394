"""fastem's projector pair and SIRT iteration against ASTRA's 2D CPU at equal threads.

ASTRA's 2D CPU projectors are single-threaded; comparing fastem on 2 threads with them (what
the README's earlier "2.02x faster than ASTRA" did) credits fastem with a second core. This
script times, in one run and interleaved (each repeat runs every contender once, so that load
from other jobs hits all of them alike):

* 1 thread each: fastem (``fastem.config.set_threads(1)``) ``linear`` pair (forward + back, 4
  object-space sub-points), bilinear pair, SIRT iteration, against ASTRA's Joseph ``linear``
  FP + BP and SIRT iteration slice by slice in this process;
* 2 cores each (``--two``): fastem on 2 threads against ASTRA over the slices in 2 worker
  processes (half the slices each).

ASTRA's SIRT time per iteration is ``(t(1 + k iterations) - t(1 iteration)) / k`` (a run
recomputes the row and column sums first). Ratios are ASTRA time / fastem time (> 1: fastem
faster). Results: ``bench/results/tomo_astra_threads.json`` and ``.md``.

Usage: ``nice -n 10 .venv/bin/python bench/tomo_astra_threads.py [--size 128] [--proj 60] [--repeat 3] [--two]``
"""

from __future__ import annotations

import os as _os

from fastem.config import use_passive_openmp as _use_passive_openmp  # noqa: E402
_use_passive_openmp()  # as the CLI does: PASSIVE with a short spin (bench/results/openmp_wait_policy.md)

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _timeit(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _astra_half(args):
    """Worker: ASTRA FP + BP (and SIRT) on the y-slices ``ys`` (run in a separate process)."""
    shape, n, tilts, ys, vol, sino, what = args
    from bench.astra_peer import AstraSlices

    peer = AstraSlices((shape[0], len(ys), shape[2]), n, tilts)
    v = np.ascontiguousarray(vol[:, ys, :])
    s = np.ascontiguousarray(sino[:, ys, :])
    t0 = time.perf_counter()
    if what == "pair":
        peer.forward(v)
        peer.back(s)
    else:
        peer.sirt(s, 1)
    dt = time.perf_counter() - t0
    peer.close()
    return dt


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--proj", type=int, default=60)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--sirt-extra", type=int, default=3, help="k: ASTRA SIRT iterations beyond the first")
    p.add_argument("--two", action="store_true", help="also 2 threads vs ASTRA in 2 processes")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "tomo_astra_threads")
    a = p.parse_args(argv)

    from fastem.config import set_threads
    from fastem.io import atomic_output
    from fastem.kernels import back_project, forward_project
    from fastem.kernels.back_project import BORDER
    from fastem.tomo import ProjectionGeometry, Sirt, TomoProblem
    from bench.astra_peer import AstraSlices, available

    if not available():
        print("astra-toolbox is not importable: pip install astra-toolbox", file=sys.stderr)
        return 2
    import astra

    n, nproj = a.size, a.proj
    tilts = np.linspace(-70.0, 70.0, nproj)
    rng = np.random.default_rng(0)
    vol = (0.5 + rng.random((n, n, n))).astype(np.float32)
    geo = ProjectionGeometry((n, n, n), (n, n), tilts, convention="fastem")
    coeffs = geo.coefficients
    bordered = np.zeros((nproj, n + 2 * BORDER, n + 2 * BORDER), np.float32)
    out = np.empty_like(vol)
    peer = AstraSlices(vol.shape, n, tilts, projector="linear")
    sino = peer.forward(vol)
    data = np.ascontiguousarray(sino)
    problem = TomoProblem(data, tilts, convention="fastem")

    def pair(sub):
        def run():
            forward_project(vol, coeffs, bordered, subpoints=sub, border=BORDER)
            back_project(bordered, coeffs, out, subpoints=sub, border=BORDER)
        return run

    def astra_sirt_iter():
        t1 = _timeit(lambda: peer.sirt(data, 1))
        tk = _timeit(lambda: peer.sirt(data, 1 + a.sirt_extra))
        return max(tk - t1, 0.0) / a.sirt_extra

    results = {"size": n, "projections": nproj, "repeat": a.repeat, "astra": astra.__version__, "rows": []}
    for threads in ([1, 2] if a.two else [1]):
        set_threads(threads)
        sirt = Sirt(problem)
        contenders = {
            "fastem linear pair": pair(4),
            "fastem bilinear pair": pair(1),
            "fastem SIRT iteration": sirt.iterate,
        }
        for fn in contenders.values():  # compile / warm up
            fn()
        times = {k: [] for k in contenders}
        astra_key_pair = "ASTRA FP + BP" if threads == 1 else "ASTRA FP + BP, 2 processes"
        astra_key_sirt = "ASTRA SIRT iteration" if threads == 1 else "ASTRA SIRT iteration, 2 processes"
        times[astra_key_pair] = []
        times[astra_key_sirt] = []
        if threads == 2:
            from concurrent.futures import ProcessPoolExecutor

            halves = [np.arange(0, n // 2), np.arange(n // 2, n)]
            pool = ProcessPoolExecutor(2)

            def astra_two(what):
                t0 = time.perf_counter()
                list(pool.map(_astra_half, [((n, n, n), n, tilts, ys, vol, sino, what) for ys in halves]))
                return time.perf_counter() - t0
            astra_two("pair")
        for r in range(a.repeat):
            for k, fn in contenders.items():
                times[k].append(_timeit(fn))
            if threads == 1:
                times[astra_key_pair].append(_timeit(lambda: (peer.forward(vol), peer.back(sino))))
                times[astra_key_sirt].append(astra_sirt_iter())
            else:
                times[astra_key_pair].append(astra_two("pair"))
                # SIRT over 2 processes: whole run per process (setup + 1 iteration), as the pair
                times[astra_key_sirt].append(astra_two("sirt"))
            print(f"threads {threads} repeat {r + 1}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times.items()),
                  flush=True)
        if threads == 2:
            pool.shutdown()
        med = {k: float(np.median(v)) for k, v in times.items()}
        for fk, ak in (("fastem linear pair", astra_key_pair), ("fastem bilinear pair", astra_key_pair),
                       ("fastem SIRT iteration", astra_key_sirt)):
            results["rows"].append({"threads": threads, "fastem": fk, "fastem_s": round(med[fk], 4),
                                    "peer": ak, "peer_s": round(med[ak], 4),
                                    "ratio_peer_over_fastem": round(med[ak] / med[fk], 3),
                                    "all_fastem_s": [round(x, 4) for x in times[fk]],
                                    "all_peer_s": [round(x, 4) for x in times[ak]]})
        del sirt
    peer.close()

    lines = [f"# fastem vs ASTRA 2D CPU at equal threads ({n}^3, {nproj} tilts about y, median of {a.repeat})", "",
             f"Command: `nice -n 10 .venv/bin/python bench/tomo_astra_threads.py --size {n} --proj {nproj} "
             f"--repeat {a.repeat}{' --two' if a.two else ''}`; ASTRA {astra.__version__}.", "",
             "| threads | fastem | s | peer | s | peer / fastem |", "| --- | --- | --- | --- | --- | --- |"]
    for row in results["rows"]:
        lines.append(f"| {row['threads']} | {row['fastem']} | {row['fastem_s']:.3f} | {row['peer']} | "
                     f"{row['peer_s']:.3f} | **{row['ratio_peer_over_fastem']:.2f}x** |")
    text = "\n".join(lines) + "\n"
    print(text)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(a.out.with_suffix(".json"), overwrite=True) as tmp:
        Path(tmp).write_text(json.dumps(results, indent=1))
    with atomic_output(a.out.with_suffix(".md"), overwrite=True) as tmp:
        Path(tmp).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
