"""What OpenMP's spin-waiting costs an FFT-based solver embedded in a library user's process.

``import fastem`` changes nothing process-wide (issue 18); the CLI and the bench harness set
``OMP_WAIT_POLICY=PASSIVE``. A library user who does not gets Numba's OpenMP workers spinning
between parallel regions while FFTW's threads need the cores. This script runs one cell of the
phase-retrieval grid (``bench/phase_grid.py``: the pair object, 6 % noise, beamstop + gaps, the
4x loose support with shrink-wrap; GPS-F, 16 starts x 600 iterations, 64x64) in fresh
processes with the policy unset, ``PASSIVE`` and ``ACTIVE``, ``--repeat`` times each
(interleaved), and reports the median wall time of the solver call.

Usage: ``.venv/bin/python bench/openmp_wait_policy.py [--repeat 3] [--threads 2]`` -> writes
``bench/results/openmp_wait_policy.json`` and ``.md``.
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

CELL = """
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


def run(policy: str | None, threads: int) -> tuple[float, float]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    out = subprocess.run([sys.executable, "-c", CELL.format(root=str(ROOT), threads=threads)], env=env,
                         capture_output=True, text=True, timeout=900, check=True).stdout.split()
    return float(out[0]), float(out[1])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    policies = {"unset": None, "PASSIVE": "PASSIVE", "ACTIVE": "ACTIVE"}
    times = {k: [] for k in policies}
    rreal = {}
    for _ in range(args.repeat):
        for name, policy in policies.items():
            t, r = run(policy, args.threads)
            times[name].append(t)
            rreal[name] = r
            print(f"{name:8s} {t:7.2f} s  R_real {100 * r:.2f} %", flush=True)
    med = {k: float(np.median(v)) for k, v in times.items()}
    command = " ".join(["bench/openmp_wait_policy.py", *(argv if argv is not None else sys.argv[1:])])
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    report = {"command": command, "threads": args.threads, "repeat": args.repeat, "times": times, "median": med,
              "rreal": rreal, "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
              "load_end": load}

    lines = ["# OpenMP wait policy and an FFT-based solver (phase retrieval, one grid cell)", "",
             f"Command: `{command}`; GPS-F, 16 starts x 600 iterations, 64x64, fastem on {args.threads} threads, "
             f"{os.cpu_count()} CPUs; median of {args.repeat} fresh processes per policy (interleaved); "
             f"load average at the end {load}.", "",
             "| OMP_WAIT_POLICY | median s | runs (s) | x PASSIVE | R_real of the kept mean |", "| --- | --- | --- | --- | --- |"]
    for name in policies:
        lines.append(f"| {name} | {med[name]:.2f} | {', '.join(f'{t:.2f}' for t in times[name])} | "
                     f"{med[name] / med['PASSIVE']:.1f}x | {100 * rreal[name]:.2f} % |")
    md = "\n".join(lines) + "\n"
    sys.path.insert(0, str(ROOT))
    from bench import write_results

    write_results(args.out, "openmp_wait_policy", report, md)
    print("\n" + md)
    return report


if __name__ == "__main__":
    main()
