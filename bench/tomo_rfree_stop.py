"""The R-free design choices of the default regularised reconstruction, measured.

``fastem tomo``'s default (automatic strength by R-free, R-free early stop; measured here with TV,
the default prior until session 2026-12-07, isotropic TV since) rests on three
choices; this script measures each on the bench's 48^3 cases (``bench/tomo_regularised.make_case``,
tilts -60..+60 step 3, 2 % noise, seed 0, 2 threads), side by side in one run:

1. **Why stop by R-free**: after the automatic search, the final solve is continued for
   ``--iterations`` with the R-free pixels held out; every 10 iterations the relative error
   against the phantom and the held-out residual are recorded (vesicle and Shepp-Logan). Where
   the strength picked by the partly converged trials is too weak, the error rises as the solve
   converges, and the held-out residual turns at the same place.
2. **How many pixels to hold out**: the whole default run (search + final solve with the stop)
   with 5 % (GENFIRE's R-free) and 2 % (the default) held out.
3. **How long each trial of the search runs**: 25 (the default) and 15 FISTA iterations per trial.

Usage: ``nice -n 10 .venv/bin/python bench/tomo_rfree_stop.py [--n 48] [--iterations 200]`` ->
``bench/results/tomo_rfree_stop.json`` and ``.md``.
"""

from __future__ import annotations

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

from bench import tomo_case_parser, write_results  # noqa: E402

RESULTS = ROOT / "bench" / "results"
CASES = (("vesicle", 0.02), ("shepp-logan", 0.02))


def trajectory(truth, tilts, data, iterations: int) -> list:
    """(iteration, error, held-out residual) every 10 iterations of the final solve, no stop."""
    from fastem.tomo import TomoProblem, relative_error
    from fastem.tomo.regularised import prepare_regularised

    solver, _ = prepare_regularised(TomoProblem(data, tilts, convention="thesis"), prior="tv", rfree_stop=True)
    out = []
    for it in range(iterations + 1):
        if it % 10 == 0:
            out.append([it, float(relative_error(solver.host_volume(), truth)), solver.rfree()])
        if it < iterations:
            solver.iterate()
    return out


def default_run(truth, tilts, data, iterations: int, **kw) -> dict:
    from fastem.tomo import relative_error
    from fastem.tomo.regularised import regularised

    t0 = time.perf_counter()
    r = regularised(data, tilts, prior="tv", iterations=iterations, convention="thesis", **kw)
    return {"error": float(relative_error(r.volume, truth)), "seconds": time.perf_counter() - t0,
            "iterations": int(r.iterations), "stopped": r.config.get("stopped"),
            "best_iteration": (r.config.get("rfree_stop") or {}).get("best_iteration"),
            "weight": float(r.config["prior_weight"])}


def main(argv=None) -> dict:
    args = tomo_case_parser(__doc__.split("\n\n")[0], 200, "final iterations (trajectory and runs)", RESULTS).parse_args(argv)

    import fastem
    from bench.tomo_regularised import make_case, warm_up
    import fastem.tomo.regularised as reg

    fastem.set_threads(args.threads)
    warm_up(0.0)
    report = {"n": args.n, "iterations": args.iterations, "threads": args.threads, "cases": {}}
    for phantom, noise in CASES:
        truth, tilts, _, data, _ = make_case(args.n, 0, noise, 3.0, 60.0, phantom)
        case = {"trajectory": trajectory(truth, tilts, data, args.iterations)}
        case["stop"] = default_run(truth, tilts, data, args.iterations)
        case["no_stop"] = default_run(truth, tilts, data, args.iterations, rfree_stop=False)
        saved = reg.RFREE_FRACTION, reg.RFREE_MIN_PIXELS
        try:
            reg.RFREE_FRACTION, reg.RFREE_MIN_PIXELS = 0.05, 0
            case["held_out_5pc"] = default_run(truth, tilts, data, args.iterations)
        finally:
            reg.RFREE_FRACTION, reg.RFREE_MIN_PIXELS = saved
        case["inner_15"] = default_run(truth, tilts, data, args.iterations, auto_inner=15)
        report["cases"][phantom] = case
        print(phantom, {k: v for k, v in case.items() if k != "trajectory"}, flush=True)

    lines = [f"# The R-free choices of the default regularised reconstruction ({args.n}^3, 2 % noise, tilts "
             f"-60..60 step 3, seed 0, {args.threads} threads)", "",
             f"Command: `nice -n 10 .venv/bin/python bench/tomo_rfree_stop.py --n {args.n} --iterations "
             f"{args.iterations}`", "",
             "## 1. The final solve after the automatic search, without a stop (every 10 iterations)", "",
             "| iteration | " + " | ".join(f"{p} error | {p} held-out residual" for p, _ in CASES) + " |",
             "|---|" + "---|---|" * len(CASES)]
    trajs = [report["cases"][p]["trajectory"] for p, _ in CASES]
    for rows in zip(*trajs):
        lines.append(f"| {rows[0][0]} | " + " | ".join(f"{e:.4f} | {r:.2f}" for _, e, r in rows) + " |")
    lines += ["", "## 2-3. Whole default runs (search + final solve), error against the phantom", "",
              "| run | " + " | ".join(f"{p} error | s | final iterations (stopped, best)" for p, _ in CASES) + " |",
              "|---|" + "---|---|---|" * len(CASES)]
    for key, label in (("stop", "default: 2 % held out, R-free stop, 25 per trial"),
                       ("no_stop", "no R-free stop (all pixels in the final solve)"),
                       ("held_out_5pc", "5 % held out, R-free stop"),
                       ("inner_15", "15 iterations per trial")):
        cells = []
        for p, _ in CASES:
            r = report["cases"][p][key]
            cells.append(f"{r['error']:.4f} | {r['seconds']:.2f} | {r['iterations']} ({r['stopped'] or '-'}, "
                         f"{r['best_iteration'] if r['best_iteration'] is not None else '-'})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    tag = f"-{args.tag}" if args.tag else ""
    write_results(args.out, f"tomo_rfree_stop{tag}", report, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return report


if __name__ == "__main__":
    main()
