"""Where the regularised reconstruction's memory goes, phase by phase (issue 20's memory at scale).

Runs the default method (``regularised(..., prior="tv", prior_weight="auto")``, stopped by R-free)
on the vesicle, single-axis tilts -60..+60 with ``--projections`` angles, 2 % noise, and records
with :mod:`tracemalloc` (every NumPy allocation; Numba's own small allocations are not NumPy's and
are not seen) the memory held and the peak reached in each phase, in volumes (``n^3`` float32):

* ``full solver``: building the solver on all pixels (its power iteration included);
* ``noise estimate and strength search set-up``: up to the search (the full solver is freed there);
* ``held-out solver``: building the search's solver;
* ``search``: the R-free trials;
* ``final solve`` and ``result``.

Peaks are reset at each phase boundary, so each row's peak is that phase's own. The whole process
peak (``bench/tomo_regularised_scale.py``, Linux ``VmHWM``) also counts the interpreter, Numba and
the input.

Usage: ``.venv/bin/python bench/tomo_memory_phases.py [--n 96] [--projections 60] [--tag T]`` ->
``bench/results/tomo_memory_phases[-T].json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import write_results  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def measure(n: int, projections: int, iterations: int) -> list[dict]:
    import fastem.tomo.regularised as reg
    from fastem.data import tilt_series, vesicle_3d

    tilts = np.linspace(-60.0, 60.0, projections)
    clean = tilt_series(vesicle_3d(n).astype(np.float64), -tilts, centring="middle")
    data = (clean + np.random.default_rng(0).normal(0.0, 0.02 * float(np.abs(clean).max()), clean.shape))
    data = data.astype(np.float32)
    del clean
    reg.regularised(data[:, :16, :16], tilts, prior="tv", iterations=2, auto_inner=2, convention="thesis")
    volume = n ** 3 * 4
    rows: list[dict] = []
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    phase = {"name": "problem and set-up"}

    def mark(next_name: str) -> None:
        current, peak = tracemalloc.get_traced_memory()
        rows.append({"phase": phase["name"], "held_after": round((current - base) / volume, 2),
                     "peak": round((peak - base) / volume, 2)})
        tracemalloc.reset_peak()
        phase["name"] = next_name

    originals = {}

    def wrap(module, name, before, after):
        fn = getattr(module, name)
        originals[(module, name)] = fn

        def wrapped(*a, **k):
            if before:
                mark(before)
            out = fn(*a, **k)
            if after:
                mark(after)
            return out
        setattr(module, name, wrapped)

    solver_cls = reg.RegularisedReconstruction
    first = {"done": False}
    init = solver_cls.__init__

    def counted_init(self, *a, **k):
        if not first["done"]:
            first["done"] = True
            mark("full solver")
            init(self, *a, **k)
            mark("noise estimate and strength search set-up")
        else:
            init(self, *a, **k)
    solver_cls.__init__ = counted_init
    wrap(reg, "held_out_solver", "held-out solver", "search")
    wrap(reg, "choose_weight_rfree", None, "final solve set-up")
    try:
        res = reg.regularised(data, tilts, prior="tv", iterations=iterations, convention="thesis",
                              callback=lambda s: mark("final solve") if s.iteration == 1 else None,
                              callback_every=1)
        mark("end")
        rows[-1]["phase"] = "final solve and result"
    finally:
        tracemalloc.stop()
        solver_cls.__init__ = init
        for (module, name), fn in originals.items():
            setattr(module, name, fn)
    rows.append({"phase": "input projections", "held_after": round(data.nbytes / volume, 2), "peak": None,
                 "weight": res.config["prior_weight"]})
    return rows


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=96)
    ap.add_argument("--projections", type=int, default=60)
    ap.add_argument("--iterations", type=int, default=60)
    ap.add_argument("--tag", default="")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    rows = measure(args.n, args.projections, args.iterations)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    peak = max(r["peak"] for r in rows if r["peak"] is not None)
    lines = [f"# Regularised reconstruction: memory by phase ({args.n}^3, {args.projections} projections)", "",
             f"Command: `.venv/bin/python bench/tomo_memory_phases.py --n {args.n} --projections "
             f"{args.projections} --iterations {args.iterations}" + (f" --tag {args.tag}" if args.tag else "")
             + f"`; code at commit {commit}; NumPy allocations (tracemalloc), in volumes ({args.n}^3 float32).", "",
             "| phase | held at its end | peak within it |", "|---|---|---|"]
    lines += [f"| {r['phase']} | {r['held_after']:.2f} | " + ("-" if r["peak"] is None else f"{r['peak']:.2f}") + " |"
              for r in rows]
    lines += ["", f"Peak over the run: **{peak:.2f} volumes** (input projections: {rows[-1]['held_after']:.2f})."]
    report = {"n": args.n, "projections": args.projections, "iterations": args.iterations, "commit": commit,
              "rows": rows, "peak_volumes": peak}
    write_results(args.out, "tomo_memory_phases" + (f"-{args.tag}" if args.tag else ""), report,
                  "\n".join(lines) + "\n")
    print("\n".join(lines))
    return report


if __name__ == "__main__":
    main()
