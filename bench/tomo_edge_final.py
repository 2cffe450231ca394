"""The final solve after the R-free search's edge check, iteration by iteration (issue 20).

Why the final solve after an edge check counts its R-free checks from iteration 60 (90 when the
edge check took the weaker strength) and stops at the first that does not improve
(``fastem.tomo.regularised.EDGE_SETTLE_ITERATIONS``, ``EDGE_PATIENCE``): for each case of
``bench/tomo_regularised.py`` (48^3 vesicle and cell phantom, tilt step 3, ``--seed`` (default 0),
isotropic TV; ``blocked15-48``: 15 % of every projection's columns blocked, as
``bench/tomo_regularised.py --blocked 0.15``; ``thesis64``: the thesis' 64^3 case, 5 % noise, -70..+70 in
3.5 degree steps)
the search is run with the edge check forced each way (``EDGE_MIN_Z`` -inf: the weaker strength
taken; +inf: the search's strength kept), and the final solve (outermost projections back in the
fit) is followed for ``--iterations`` iterations without any stop, recording every 10 iterations the
relative error against the phantom, the FSC (low half, overall and within 30 degrees of z, the
missing wedge; as ``bench/tomo_regularised.py``) and the R-free (the random held-out pixels' residual,
data units squared).

Usage: ``nice -n 10 .venv/bin/python bench/tomo_edge_final.py [--iterations 150] [--cases ...] [--seed S]
[--tag T]`` -> ``bench/results/tomo_edge_final[-T].json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from fastem.config import use_passive_openmp as _use_passive_openmp  # noqa: E402
_use_passive_openmp()  # as the CLI does

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import chosen_cases, write_results  # noqa: E402

RESULTS = ROOT / "bench" / "results"
#: name -> (phantom, noise, largest tilt, fraction of each projection's columns blocked, size, tilt step)
CASES = {"issue48": ("vesicle", 0.02, 60.0, 0.0, 48, 3.0), "noise5-wedge70-48": ("vesicle", 0.05, 70.0, 0.0, 48, 3.0),
         "cell48-noise5-wedge70": ("cell", 0.05, 70.0, 0.0, 48, 3.0),
         "blocked15-48": ("vesicle", 0.02, 60.0, 0.15, 48, 3.0), "thesis64": ("vesicle", 0.05, 70.0, 0.0, 64, 3.5)}
DEFAULT_CASES = ("issue48", "noise5-wedge70-48", "cell48-noise5-wedge70")


def trajectory(case: str, branch: str, iterations: int, every: int = 10, seed: int = 0) -> dict:
    """The final solve after a search whose edge check is forced to ``branch`` ("weaker"/"kept")."""
    import fastem.tomo.regularised as reg
    from bench.tomo_regularised import block_projections, fsc_low_half, make_case
    from fastem.tomo import TomoProblem, relative_error

    phantom, noise, max_tilt, blocked, n, step = CASES[case]
    truth, tilts, _, data, _ = make_case(n, seed, noise, step, max_tilt, phantom)
    weights = None
    if blocked > 0:
        data, weights = block_projections(data, blocked, seed)
    saved = reg.EDGE_MIN_Z
    reg.EDGE_MIN_Z = -math.inf if branch == "weaker" else math.inf
    try:
        solver, info = reg.prepare_regularised(TomoProblem(data, tilts, convention="thesis"), prior="itv",
                                               weights=weights)
    finally:
        reg.EDGE_MIN_Z = saved
    rows = []
    for k in range(iterations + 1):
        if k % every == 0:
            v = solver.host_volume()
            rows.append([k, relative_error(v, truth), fsc_low_half(v, truth), fsc_low_half(v, truth, (0, 0, 1)),
                         solver.rfree()])
        if k < iterations:
            solver.iterate()
    edge = info["auto"]["edge"]
    return {"weight": float(solver.weight), "edge": edge, "rows": rows}


def summarise(report: dict) -> str:
    lines = [f"# The final solve after the edge check (seed {report.get('seed', 0)}, isotropic TV)", "",
             f"Command: `{report['command']}`; {report['wall_s']:.0f} s. Each search's edge check forced "
             "(weaker: half the search's strength taken; kept: the search's strength), then the final solve "
             "without a stop. FSC: low half, overall / within 30 degrees of z. R-free: the random held-out "
             "pixels' residual (data units squared).", ""]
    for case, branches in report["cases"].items():
        size = CASES[case][4:] if case in CASES else (48, 3.0)
        lines += [f"## {case} ({size[0]}^3, tilt step {size[1]:g})", "", "| iteration | " + " | ".join(
            f"{b}: error | {b}: FSC | {b}: R-free" for b in branches) + " |",
                  "|---|" + "---|---|---|" * len(branches)]
        n = len(next(iter(branches.values()))["rows"])
        for i in range(n):
            cells = []
            for b in branches.values():
                k, err, fsc, fscw, rfree = b["rows"][i]
                cells += [f"{err:.4f}", f"{fsc:.4f} / {fscw:.3f}", f"{rfree:.1f}"]
            lines.append(f"| {branches[next(iter(branches))]['rows'][i][0]} | " + " | ".join(cells) + " |")
        z = next(iter(branches.values()))["edge"].get("z")
        lines += ["", "Strengths: " + ", ".join(f"{b} {v['weight']:.4g}" for b, v in branches.items())
                  + ("" if z is None else f"; the edge check's z: {z:.2f} (the weaker strength is taken above "
                     f"{report.get('edge_min_z', 1.0):g})"), ""]
    return "\n".join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=150)
    ap.add_argument("--cases", default=",".join(DEFAULT_CASES), help=f"comma-separated, from {', '.join(CASES)}")
    ap.add_argument("--seed", type=int, default=0, help="noise (and blocking) seed, as bench/tomo_regularised.py's")
    ap.add_argument("--tag", default="")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    cases = chosen_cases(ap, args.cases, CASES)
    if args.iterations < 10:
        ap.error("--iterations must be >= 10")
    if args.seed < 0:
        ap.error(f"--seed must be >= 0, got {args.seed}")
    import fastem.tomo.regularised as reg

    t0 = time.time()
    out = {c: {b: trajectory(c, b, args.iterations, seed=args.seed) for b in ("weaker", "kept")} for c in cases}
    command = " ".join(["bench/tomo_edge_final.py", *(argv if argv is not None else sys.argv[1:])])
    report = {"command": command, "wall_s": round(time.time() - t0, 1), "iterations": args.iterations,
              "seed": args.seed, "edge_min_z": reg.EDGE_MIN_Z, "cases": out}
    md = summarise(report)
    write_results(args.out, "tomo_edge_final" + (f"-{args.tag}" if args.tag else ""), report, md)
    print(md)
    return report


if __name__ == "__main__":
    main()
