"""Do separate processes plan the same FFTs, and does adopting one process's wisdom make them?

``FFTW_MEASURE`` chooses among algorithms by timing them, so two processes that plan the same
transform from an empty wisdom cache can choose differently and round differently; an iterative
solver then amplifies the difference. This bench runs one job -- a GPS-F multi-start (``--runs``
random starts x ``--iterations`` on the ``--size``^2 vesicle, the phase job of
``bench/distributed_scaling.py``) -- in ``--processes`` fresh processes, each planning for itself
from an empty cache, and in as many fresh processes that first adopt the wisdom exported by the
first one (:func:`fastem.fft.adopt_wisdom`, what a Dask client's phase tasks now do). It counts
the distinct results (bitwise) in each group. One FFTW thread per process.

Usage::

    nice -n 10 .venv/bin/python bench/fftw_plan_determinism.py

Writes ``bench/results/fftw_plan_determinism.{json,md}``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

_JOB = r"""
import sys, numpy as np
from fastem import fft
from fastem.config import set_threads
set_threads(1)
size, runs, iterations, out, adopt = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
if adopt != "-":
    fft.adopt_wisdom(open(adopt, "rb").read())
from fastem.data import cdi_intensities, vesicle_2d
from fastem.phase import PhaseConfig, retrieve
cdi = cdi_intensities(vesicle_2d(size, seed=0), seed=0)
res = retrieve(cdi.intensities, cdi.known, cdi.support, config=PhaseConfig(algorithm="gps-f", iterations=iterations),
               runs=runs, keep=runs, seed=0)
np.save(out + ".npy", np.concatenate([np.asarray(res.image).ravel(), np.asarray(res.final_rf).ravel()]))
open(out + ".wisdom", "wb").write(fft.export_wisdom())
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--processes", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--planner", default="FFTW_MEASURE")
    ap.add_argument("--out", type=Path, default=RESULTS)
    a = ap.parse_args(argv)
    import numpy as np

    from fastem.benchmark import machine_info

    env = dict(os.environ, FASTEM_FFT_PLANNER=a.planner, FASTEM_THREADS="1", NUMBA_NUM_THREADS="1",
               OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    groups = {"own plans": [], "adopted wisdom": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)

        def run(name: str, adopt: str) -> str:
            e = dict(env, FASTEM_CACHE_DIR=str(tmp / f"cache-{name}"))     # an empty wisdom cache each
            subprocess.run([sys.executable, "-c", _JOB, str(a.size), str(a.runs), str(a.iterations),
                            str(tmp / name), adopt], check=True, env=e)
            return hashlib.sha256(np.load(tmp / f"{name}.npy").tobytes()).hexdigest()[:16]

        for k in range(a.processes):
            groups["own plans"].append(run(f"own{k}", "-"))
        source = str(tmp / "own0.wisdom")
        for k in range(a.processes):
            groups["adopted wisdom"].append(run(f"adopt{k}", source))
    first = groups["own plans"][0]
    rows = [{"group": g, "results": h, "distinct": len(set(h)),
             "equal_to_the_first_process": sum(x == first for x in h)} for g, h in groups.items()]
    record = {"command": "python bench/fftw_plan_determinism.py " + " ".join(argv or sys.argv[1:]),
              "machine": machine_info(), "planner": a.planner,
              "job": f"GPS-F multi-start, {a.runs} runs x {a.iterations} it, {a.size}^2 vesicle, 1 thread",
              "rows": rows}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "fftw_plan_determinism.json").write_text(json.dumps(record, indent=1))
    md = ["# FFT plans across processes", "",
          f"`{record['command']}`: {record['job']}, planner {a.planner}, {a.processes} fresh processes per group, each "
          "from an empty wisdom cache; results compared bit for bit (SHA-256 of the mean image and the final R_F).", "",
          "| group | distinct results | equal to the first own-plans process | result digests |", "|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['group']} | {r['distinct']} | {r['equal_to_the_first_process']} of {len(r['results'])} | "
                  f"{' '.join(r['results'])} |")
    md += ["", "*adopted wisdom*: each process first adopts the wisdom the first own-plans process exported "
           "(`fastem.fft.adopt_wisdom`), as a Dask worker does with the client's for a phase task."]
    (a.out / "fftw_plan_determinism.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
