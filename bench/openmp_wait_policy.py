"""What OpenMP's idle-worker policy costs fastem's solvers: FFT-based and kernel-only, side by side.

``import fastem`` changes nothing process-wide (issue 18); the CLI and the bench harness call
``fastem.config.use_passive_openmp`` (``OMP_WAIT_POLICY=PASSIVE`` with ``GOMP_SPINCOUNT=1000``: a
short spin, then sleep). This script runs, in fresh processes, interleaved, ``--repeat`` times
each, under every setting (policy unset, ``PASSIVE`` alone, ``PASSIVE`` with each
``GOMP_SPINCOUNT`` of ``--spins``, ``ACTIVE``):

* ``phase``: one cell of the phase-retrieval grid (``bench/phase_grid.py``: the pair object, 6 %
  noise, beamstop + gaps, the 4x loose support with shrink-wrap; GPS-F, 16 starts x 600
  iterations, 64x64): FFTW's threads and Numba's kernels alternate;
* ``tomo``: the regularised tomography of issue 20 (``bench/tomo_regularised.py``'s case: 48^3
  vesicle, tilts -60..+60 step 3, 2 % noise, TV with the automatic strength, 150 iterations,
  seeds 0-2; mean wall time per reconstruction): Numba kernels only, about eight short parallel
  regions per iteration;
* ``region``: the wall time of one empty Numba parallel region over 2 items (median of 2000),
  i.e. what waking the workers costs.

Usage: ``.venv/bin/python bench/openmp_wait_policy.py [--repeat 3] [--threads 2] [--spins 300 1000 5000]``
-> writes ``bench/results/openmp_wait_policy.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

PHASE = """
import sys, time, warnings
sys.path.insert(0, {root!r})
warnings.simplefilter("ignore")
from fastem import config
config.set_threads({threads})
from bench.phase_grid import make_data, make_object, make_support, run_cell
obj = make_object("pair", 64)
cdi = make_data(obj, 0.06, "gaps", 0)
support = make_support("loose4", cdi)
run_cell(cdi, support, "gps-f", 2, 20, 2, 0, True)          # compile / plan outside the timing
t0 = time.perf_counter()
res = run_cell(cdi, support, "gps-f", 16, 600, 5, 0, True)
print(time.perf_counter() - t0, res["rreal_mean"])
"""

TOMO = """
import sys, time, warnings
sys.path.insert(0, {root!r})
warnings.simplefilter("ignore")
from fastem import config
# start OpenMP now, under the setting given: bench.tomo_regularised calls use_passive_openmp() on
# import, whose defaults would otherwise fill in the variables this run leaves unset
config.set_threads({threads})
import numba
numba.set_num_threads({threads})
from bench.tomo_regularised import make_case, warm_up
from fastem.tomo import relative_error
from fastem.tomo.regularised import regularised
warm_up(0.0)                                                  # compile outside the timing
seconds, errors = [], []
for seed in range(3):
    truth, tilts, clean, data, sigma = make_case(48, seed, 0.02, 3.0, 60.0, "vesicle")
    t0 = time.perf_counter()
    r = regularised(data, tilts, prior="tv", prior_weight="auto", iterations=150, convention="thesis")
    seconds.append(time.perf_counter() - t0)
    errors.append(relative_error(r.volume, truth))
print(sum(seconds) / 3, sum(errors) / 3)
"""

REGION = """
import time
import numpy as np
from numba import njit, prange, set_num_threads
set_num_threads({threads})

@njit(parallel=True)
def touch(a):
    for i in prange(a.shape[0]):
        a[i] += 1.0

a = np.zeros({threads})
touch(a)
ts = []
for _ in range(2000):
    t0 = time.perf_counter()
    touch(a)
    ts.append(time.perf_counter() - t0)
print(float(np.median(ts)), 0.0)
"""

CASES = {"phase": PHASE, "tomo": TOMO, "region": REGION}


def run(case: str, env_extra: dict, threads: int) -> tuple[float, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(env_extra)
    env["NUMBA_NUM_THREADS"] = str(threads)
    out = subprocess.run([sys.executable, "-c", CASES[case].format(root=str(ROOT), threads=threads)], env=env,
                         capture_output=True, text=True, timeout=1800, check=True).stdout.split()
    return float(out[0]), float(out[1])


def settings(spins) -> dict:
    out = {"unset": {}, "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"}}
    for n in spins:
        out[f"PASSIVE, GOMP_SPINCOUNT={n}"] = {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": str(n)}
    out["ACTIVE"] = {"OMP_WAIT_POLICY": "ACTIVE"}
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--spins", type=int, nargs="+", default=[300, 1000, 5000],
                    help="GOMP_SPINCOUNT values tried with PASSIVE (fastem's default: 1000)")
    ap.add_argument("--cases", nargs="+", choices=sorted(CASES), default=["region", "phase", "tomo"])
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    sets = settings(args.spins)
    times = {c: {k: [] for k in sets} for c in args.cases}
    quality = {c: {} for c in args.cases}
    for _ in range(args.repeat):
        for name, extra in sets.items():
            for case in args.cases:
                t, q = run(case, extra, args.threads)
                times[case][name].append(t)
                quality[case][name] = q
                print(f"{case:6s} {name:28s} {t:10.6f} s  {q:.4f}", flush=True)
    med = {c: {k: float(np.median(v)) for k, v in times[c].items()} for c in args.cases}
    command = " ".join([".venv/bin/python bench/openmp_wait_policy.py", *(argv if argv is not None else sys.argv[1:])])
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    report = {"command": command, "threads": args.threads, "repeat": args.repeat, "settings": sets, "times": times,
              "median": med, "quality": quality, "machine": platform.processor() or platform.machine(),
              "cpus": os.cpu_count(), "load_end": load}
    what = {"region": ("one empty parallel region", "us", 1e6, "-"),
            "phase": ("phase retrieval, GPS-F 16 x 600 at 64x64 (FFTW + Numba)", "s", 1.0, "R_real of the kept mean"),
            "tomo": ("regularised tomography, 48^3 TV auto, mean of 3 seeds (Numba only)", "s", 1.0,
                     "mean rel. L2 error")}
    lines = ["# OpenMP idle-worker policy: fastem's solvers under each setting", "",
             f"Command: `{command}`; fastem on {args.threads} threads, {os.cpu_count()} CPUs; median of "
             f"{args.repeat} fresh processes per setting (all settings and cases interleaved); load average at "
             f"the end {load}. fastem's CLI and bench harness use `PASSIVE, GOMP_SPINCOUNT=1000` "
             "(`fastem.config.use_passive_openmp`).", ""]
    for case in args.cases:
        title, unit, scale, qname = what[case]
        lines += [f"## {title}", "", f"| setting | median {unit} | runs ({unit}) | x PASSIVE | {qname} |",
                  "| --- | --- | --- | --- | --- |"]
        for name in sets:
            q = "-" if case == "region" else (f"{100 * quality[case][name]:.2f} %" if case == "phase"
                                               else f"{quality[case][name]:.4f}")
            lines.append(f"| {name} | {scale * med[case][name]:.3g} | "
                         f"{', '.join(f'{scale * t:.3g}' for t in times[case][name])} | "
                         f"{med[case][name] / med[case]['PASSIVE']:.2f}x | {q} |")
        lines.append("")
    md = "\n".join(lines)
    sys.path.insert(0, str(ROOT))
    from bench import write_results

    write_results(args.out, "openmp_wait_policy", report, md)
    print("\n" + md)
    return report


if __name__ == "__main__":
    main()
