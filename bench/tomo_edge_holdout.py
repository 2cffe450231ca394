"""What the outermost projections are worth to the default reconstruction (issue 20, a diagnostic).

The residual on the outermost projections of a tilt series, held out, is the one residual that
sees how the prior extrapolates towards the missing wedge (``bench/tomo_weight_sweep.py --held-out
edge``). Using it to choose the strength raises the question whether those projections can stay out
of the final solve. This script answers it: for each case of ``bench/tomo_regularised.py`` (tilt
step 3, or 3.5 for the thesis' 64^3 case) it runs the default reconstruction (``regularised()``:
isotropic TV, automatic strength by R-free, R-free stop) on the whole series and on the same
series with the ``--edge-projections`` projections at each end of the tilt range given weight 0
(unmeasured: neither fitted nor held out), and reports the relative error against the phantom
and the FSC (low half, overall and within 30 degrees of z, the missing wedge; as
``bench/tomo_regularised.py``), mean over ``--seeds``.

Usage: ``nice -n 10 .venv/bin/python bench/tomo_edge_holdout.py [--seeds 3] [--edge-projections 1]
[--cases issue48,...]`` -> ``bench/results/tomo_edge_holdout.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
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
#: name -> (phantom, n, noise, largest tilt, tilt step, final iterations, blocked fraction): the
#: ``bench/tomo_regularised.py`` cases with noise
CASES = {
    "issue48": ("vesicle", 48, 0.02, 60.0, 3.0, 150, 0.0),
    "shepp48": ("shepp-logan", 48, 0.02, 60.0, 3.0, 150, 0.0),
    "noise5-wedge70-48": ("vesicle", 48, 0.05, 70.0, 3.0, 150, 0.0),
    "blocked15-48": ("vesicle", 48, 0.02, 60.0, 3.0, 150, 0.15),
    "thesis64": ("vesicle", 64, 0.05, 70.0, 3.5, 400, 0.0),
    "cell48": ("cell", 48, 0.02, 60.0, 3.0, 150, 0.0),
    "cell48-noise5-wedge70": ("cell", 48, 0.05, 70.0, 3.0, 150, 0.0),
}


def without_edges(tilts, weights, shape, count: int):
    """``weights`` (or ones) with the ``count`` projections at each end of the tilt range set to 0."""
    import numpy as np

    from bench.tomo_weight_sweep import edge_projections

    out = np.ones(shape, np.float32) if weights is None else np.array(weights, np.float32)
    out[edge_projections(tilts, shape, count)] = 0.0
    return out


def run_case(name: str, seed: int, count: int) -> dict:
    from bench.tomo_regularised import block_projections, fsc_low_half, make_case
    from fastem.tomo import relative_error
    from fastem.tomo.regularised import regularised

    phantom, n, noise, max_tilt, step, iterations, blocked = CASES[name]
    truth, tilts, _, data, _ = make_case(n, seed, noise, step, max_tilt, phantom)
    weights = None
    if blocked:
        data, weights = block_projections(data, blocked, seed)
    row = {}
    for label, w in (("all", weights), ("without edges", without_edges(tilts, weights, data.shape, count))):
        t0 = time.perf_counter()
        r = regularised(data, tilts, iterations=iterations, weights=w, convention="thesis")
        row[label] = {"error": relative_error(r.volume, truth), "fsc_low": fsc_low_half(r.volume, truth),
                      "fsc_low_wedge": fsc_low_half(r.volume, truth, (0, 0, 1)),
                      "weight": r.config["prior_weight"], "seconds": time.perf_counter() - t0}
    return row


def summarise(report: dict) -> str:
    import numpy as np

    lines = ["# The default reconstruction with and without the outermost projections", "",
             f"Command: `{report['command']}`; {report['wall_s']:.0f} s. Default `regularised()` (isotropic TV, "
             "automatic strength by R-free, R-free stop) on the whole series, and with the "
             f"{report['edge_projections']} projection(s) at each end of the tilt range at weight 0; mean over seeds "
             f"{report['seeds']}. FSC: low half, overall / within 30 degrees of z (the missing wedge).", "",
             "| case | error, all | error, without edges | ratio | FSC all | FSC without edges "
             "| strength all / without |",
             "|---|---|---|---|---|---|---|"]
    for name, runs in report["cases"].items():
        m = {k: {q: float(np.mean([r[k][q] for r in runs])) for q in runs[0][k]} for k in runs[0]}
        a, b = m["all"], m["without edges"]
        lines.append(f"| {name} | {a['error']:.4f} | {b['error']:.4f} | {b['error'] / a['error']:.3f} | "
                     f"{a['fsc_low']:.3f} / {a['fsc_low_wedge']:.3f} | {b['fsc_low']:.3f} / {b['fsc_low_wedge']:.3f} | "
                     f"{a['weight']:.3g} / {b['weight']:.3g} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--edge-projections", type=int, default=1)
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
    ap.add_argument("--tag", default="")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    cases = chosen_cases(ap, args.cases, CASES)
    if args.seeds < 1:
        ap.error("--seeds must be >= 1")
    if args.edge_projections < 1:
        ap.error("--edge-projections must be >= 1")
    t0 = time.time()
    out = {}
    for c in cases:
        out[c] = [run_case(c, s, args.edge_projections) for s in range(args.seeds)]
        print(c, [(round(r["all"]["error"], 4), round(r["without edges"]["error"], 4)) for r in out[c]], flush=True)
    command = " ".join(["bench/tomo_edge_holdout.py", *(argv if argv is not None else sys.argv[1:])])
    report = {"command": command, "wall_s": round(time.time() - t0, 1), "seeds": args.seeds,
              "edge_projections": args.edge_projections, "cases": out}
    md = summarise(report)
    write_results(args.out, "tomo_edge_holdout" + (f"-{args.tag}" if args.tag else ""), report, md)
    print("\n" + md)
    return report


if __name__ == "__main__":
    main()
