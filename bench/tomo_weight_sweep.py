"""Where the automatic strength lands against fixed strengths run to convergence.

For each case (``bench/tomo_regularised.make_case``, tilt step 3, seed 0, 2 threads: the vesicle
and the Shepp-Logan at 2 % noise and +-60 degrees, the vesicle at 5 % and +-70; with ``--cases``
also the cell phantom, ``cell`` and ``cell-5pc-70``, and the vesicle at 5 % and +-60, ``vesicle-5pc-60``, the
``--n 128`` case of ``bench/tomo_regularised.py``) the
automatic run (``regularised(prior=--prior)``: R-free search + final solve with the R-free stop) is run
once; then fixed strengths ``lambda = auto x multiple`` are each solved from zero for
``--iterations`` FISTA iterations with the same 2 % of pixels held out, recording every 25
iterations the relative error against the phantom and the held-out residual (R-free, data units
squared), and the FSC with the phantom (low half, overall and within 30 degrees of z, the missing
wedge: as ``bench/tomo_regularised.py``). Reported per strength: the lowest R-free and the error
and FSC there (what an R-free stop at that strength would return), and the lowest error over the
run.

This is the measurement behind docs/tomo_regularised.md's "automatic strength" limits: the
search's 25-iteration warm-started trials rank strengths by partly converged solves, so on a
slowly converging object it can keep descending to ever weaker strengths.

``--held-out edge`` (a diagnostic for the missing wedge, session 2026-12-07): each strength is
also solved with the ``--edge-projections`` projections at each end of the tilt range held out
instead (all their measured pixels), and the table adds that solve's lowest held-out residual
("edge R-free") beside the random one. Random held-out pixels lie among measured ones, so their
residual cannot see how the prior extrapolates towards the missing wedge; the outermost
projections are the measured data nearest to it. ``--prior`` picks the prior (default ``tv``,
as the earlier records).

Usage: ``nice -n 10 .venv/bin/python bench/tomo_weight_sweep.py [--n 48] [--iterations 400]
[--cases vesicle,shepp-logan,vesicle-5pc-70] [--multiples 0.25,0.5,1,2,4] [--prior itv]
[--held-out edge --edge-projections 1]``
-> ``bench/results/tomo_weight_sweep.json`` and ``.md``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from fastem.config import use_passive_openmp as _use_passive_openmp  # noqa: E402
_use_passive_openmp()  # as the CLI does: PASSIVE with a short spin (bench/results/openmp_wait_policy.md)

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import chosen_cases, tomo_case_parser, write_results  # noqa: E402

RESULTS = ROOT / "bench" / "results"
#: name -> (phantom, noise, largest tilt in degrees)
CASES = {"vesicle": ("vesicle", 0.02, 60.0), "shepp-logan": ("shepp-logan", 0.02, 60.0),
         "vesicle-5pc-70": ("vesicle", 0.05, 70.0), "cell": ("cell", 0.02, 60.0), "cell-5pc-70": ("cell", 0.05, 70.0),
         "vesicle-5pc-60": ("vesicle", 0.05, 60.0)}
#: the cases run without --cases (the cell phantom's only when asked for)
DEFAULT_CASES = ("vesicle", "shepp-logan", "vesicle-5pc-70")
MULTIPLES = (1.0, 0.25, 0.5, 2.0, 4.0, 30.0, 100.0, 300.0, 1000.0, 3000.0)


def edge_projections(tilts, shape, count: int):
    """bool ``shape`` (n, rows, cols): every pixel of the ``count`` projections at each end of the
    tilt range (the largest negative and positive tilts)."""
    import numpy as np

    order = np.argsort(np.asarray(tilts, dtype=np.float64))
    held = np.zeros(shape, bool)
    held[order[:count]] = True
    held[order[-count:]] = True
    return held


def fixed_strength(truth, tilts, data, weight: float, iterations: int, every: int = 25, prior: str = "tv",
                   held=None) -> list:
    """[iteration, error, R-free, FSC low half, FSC low half in the wedge] every ``every``
    iterations of a solve at a fixed ``weight``; ``held`` (bool, the data's shape): the held-out
    pixels, default the search's 2 % at random (:func:`fastem.tomo.regularised.held_out_pixels`)."""
    from bench.tomo_regularised import fsc_low_half
    from fastem.tomo import TomoProblem, relative_error
    from fastem.tomo.regularised import RegularisedReconstruction, prepare_regularised

    problem = TomoProblem(data, tilts, convention="thesis")
    if held is None:
        solver, _ = prepare_regularised(problem, prior=prior, prior_weight=weight, rfree_stop=True)
    else:
        solver = RegularisedReconstruction(problem, prior=prior, weight=weight, held_out=held)
    rows = []
    for it in range(1, iterations + 1):
        solver.iterate()
        if it % every == 0:
            vol = solver.host_volume()
            rows.append([it, float(relative_error(vol, truth)), float(solver.rfree()), fsc_low_half(vol, truth),
                         fsc_low_half(vol, truth, (0, 0, 1))])
    return rows


def main(argv=None) -> dict:
    ap = tomo_case_parser(__doc__.split("\n\n")[0], 400, "iterations of each fixed-strength solve", RESULTS)
    ap.add_argument("--cases", default=",".join(DEFAULT_CASES),
                    help=f"comma-separated, from {', '.join(CASES)}")
    ap.add_argument("--multiples", default=",".join(f"{m:g}" for m in MULTIPLES),
                    help="fixed strengths, as multiples of the automatic one")
    ap.add_argument("--prior", choices=("tv", "itv"), default="tv")
    ap.add_argument("--held-out", dest="held_out", choices=("random", "edge"), default="random",
                    help="edge: also solve each strength with the outermost projections held out")
    ap.add_argument("--edge-projections", dest="edge_count", type=int, default=1,
                    help="with --held-out edge: projections held out at each end of the tilt range")
    args = ap.parse_args(argv)
    if args.edge_count < 1:
        ap.error("--edge-projections: must be >= 1")
    cases = chosen_cases(ap, args.cases, CASES)
    try:
        multiples = [float(m) for m in args.multiples.split(",")]
    except ValueError:
        ap.error(f"--multiples: {args.multiples!r} is not a comma-separated list of numbers")
    if not multiples or any(not m > 0 for m in multiples):
        ap.error("--multiples: every multiple must be > 0")

    import fastem
    from fastem.tomo import relative_error
    from fastem.tomo.regularised import regularised
    from bench.tomo_regularised import fsc_low_half, make_case

    fastem.set_threads(args.threads)
    report = {"n": args.n, "iterations": args.iterations, "threads": args.threads, "multiples": multiples,
              "prior": args.prior, "held_out": args.held_out, "edge_projections": args.edge_count, "cases": {}}
    edge = args.held_out == "edge"
    lines = [f"# The automatic strength against fixed strengths run to convergence ({args.n}^3, tilt step 3, "
             f"seed 0, {args.prior.upper()}, {args.threads} threads)", "",
             "Command: `" + " ".join(["nice -n 10 .venv/bin/python bench/tomo_weight_sweep.py",
                                      *(sys.argv[1:] if argv is None else argv)]) + "`", "",
             "FSC: low half, overall / within 30 degrees of z (the missing wedge), as `bench/tomo_regularised.py`.", ""]
    for case in cases:
        phantom, noise, max_tilt = CASES[case]
        truth, tilts, _, data, _ = make_case(args.n, 0, noise, 3.0, max_tilt, phantom)
        r = regularised(data, tilts, prior=args.prior, iterations=150, convention="thesis")
        auto = {"weight": float(r.config["prior_weight"]), "error": float(relative_error(r.volume, truth)),
                "fsc": fsc_low_half(r.volume, truth), "fsc_wedge": fsc_low_half(r.volume, truth, (0, 0, 1)),
                "bracketed": bool(r.config["auto"]["bracketed"]), "trials": r.config["auto"]["trials"],
                "final_iterations": int(r.iterations)}
        sweep, edge_sweep = {}, {}
        held = edge_projections(tilts, data.shape, args.edge_count) if edge else None
        for m in multiples:
            rows = fixed_strength(truth, tilts, data, auto["weight"] * m, args.iterations, prior=args.prior)
            sweep[m] = rows
            best_r = min(rows, key=lambda row: row[2])
            print(case, m, "min R-free", best_r, "min error", min(row[1] for row in rows), flush=True)
            if edge:
                edge_sweep[m] = fixed_strength(truth, tilts, data, auto["weight"] * m, args.iterations,
                                               prior=args.prior, held=held)
                print(case, m, "min edge R-free", min(edge_sweep[m], key=lambda row: row[2]), flush=True)
        report["cases"][case] = {"phantom": phantom, "noise": noise, "max_tilt": max_tilt, "auto": auto,
                                 "sweep": {str(m): rows for m, rows in sweep.items()}}
        if edge:
            report["cases"][case]["edge_sweep"] = {str(m): rows for m, rows in edge_sweep.items()}
        lines += [f"## {case} ({phantom}, {noise:g} noise, tilts -{max_tilt:g}..{max_tilt:g})", "",
                  f"Default run: weight {auto['weight']:.4g} (search bracketed: {auto['bracketed']}), "
                  f"{auto['final_iterations']} final iterations, error **{auto['error']:.4f}**, FSC "
                  f"{auto['fsc']:.3f} / {auto['fsc_wedge']:.3f}. Search trials "
                  "(weight, R-free): " + ", ".join(f"({w:.3g}, {v:.1f})" for w, v in auto["trials"]), "",
                  "| weight (x auto) | weight | lowest R-free (iteration) | error there | FSC there | "
                  f"lowest error (iteration) | error at {args.iterations} |", "|---|---|---|---|---|---|---|"]
        if edge:
            lines[-2] += " edge R-free, lowest (iteration) |"
            lines[-1] += "---|"
        for m in sorted(multiples):
            rows = sweep[m]
            br = min(rows, key=lambda row: row[2])
            be = min(rows, key=lambda row: row[1])
            lines.append(f"| {m:g} | {auto['weight'] * m:.4g} | {br[2]:.2f} ({br[0]}) | {br[1]:.4f} | "
                         f"{br[3]:.3f} / {br[4]:.3f} | {be[1]:.4f} ({be[0]}) | {rows[-1][1]:.4f} |")
            if edge:
                bz = min(edge_sweep[m], key=lambda row: row[2])
                lines[-1] += f" {bz[2]:.2f} ({bz[0]}) |"
        if edge:
            def at_rfree(m):   # the error an R-free stop at strength m returns
                return min(sweep[m], key=lambda row: row[2])[1]
            lowest = {name: min(multiples, key=lambda m: min(row[k] for row in table[m]))
                      for name, table, k in (("R-free", sweep, 2), ("edge R-free", edge_sweep, 2),
                                             ("error, any iteration", sweep, 1))}
            lowest["error at the R-free stop"] = min(multiples, key=at_rfree)
            lines += ["", "Lowest over the strengths (x auto): " + ", ".join(f"{k} {v:g}" for k, v in lowest.items())
                      + " (errors: of the random-held-out solves, at any recorded iteration or at the "
                      "iteration of lowest R-free)."]
            report["cases"][case]["lowest"] = lowest
        lines.append("")
    tag = f"-{args.tag}" if args.tag else ""
    write_results(args.out, f"tomo_weight_sweep{tag}", report, "\n".join(lines))
    print("\n".join(lines))
    return report


if __name__ == "__main__":
    main()
