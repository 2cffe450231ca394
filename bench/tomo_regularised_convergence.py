"""Convergence of the regularised solver's options on one noisy missing-wedge case (issue 20).

Run::

    nice -n 10 .venv/bin/python bench/tomo_regularised_convergence.py

Same case as ``bench/tomo_regularised.py`` (24^3 vesicle, tilts -60..60 step 3, 5 % noise, seed
0), ``tv`` prior at a fixed weight (the R-free choice of ``regularised(..., prior_weight="auto")``
on this case), from zeros: the objective ``F(x)`` and the relative error after every 10
iterations for projected gradient (ISTA, ``momentum="none"``), plain FISTA and FISTA with gradient
restart (the default), same step ``1/L``. Writes ``bench/results/tomo_regularised_convergence.{json,md}``.
"""

from __future__ import annotations

import os as _os

from fastem.config import use_passive_openmp as _use_passive_openmp  # noqa: E402
_use_passive_openmp()  # as the CLI does: PASSIVE with a short spin (bench/results/openmp_wait_policy.md)

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tomo_regularised import make_case  # noqa: E402

from fastem.tomo import TomoProblem, relative_error  # noqa: E402
from fastem.tomo.regularised import RegularisedReconstruction, regularised  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None) -> int:
    import argparse

    argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0]).parse_args(argv)   # --help, no options
    truth, tilts, _, data, _ = make_case(24, 0, 0.05, 3.0)
    lam = regularised(data, tilts, prior="tv", iterations=1, convention="thesis").config["prior_weight"]
    curves = {}
    checkpoints = list(range(0, 201, 10))
    for momentum in ("none", "fista", "restart"):
        s = RegularisedReconstruction(TomoProblem(data, tilts, convention="thesis"), prior="tv", weight=lam,
                                      momentum=momentum)
        rows = []
        for k in range(checkpoints[-1] + 1):
            if k in checkpoints:
                rows.append((k, s.objective(), relative_error(s.host_volume(), truth)))
            if k < checkpoints[-1]:
                s.iterate()
        curves[momentum] = rows
        print(momentum, rows[-1], flush=True)
    best = min(r[1] for c in curves.values() for r in c)
    lines = ["# Regularised solver convergence (24^3 vesicle, -60..60 step 3, 5 % noise, tv, weight "
             f"{lam:.4g})", "", "Command: `nice -n 10 .venv/bin/python bench/tomo_regularised_convergence.py`", "",
             "(F - F_best) / F_best, F_best the lowest objective any run reached; rel. error in brackets", "",
             "| iteration | projected gradient | FISTA | FISTA + gradient restart |", "|---|---|---|---|"]
    for i, k in enumerate(checkpoints):
        cells = [f"{(curves[m][i][1] - best) / best:.2e} ({curves[m][i][2]:.3f})" for m in ("none", "fista", "restart")]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    RESULTS.mkdir(exist_ok=True)
    for ext, text in (("json", json.dumps({"weight": lam, "checkpoints": checkpoints, "curves": curves}, indent=1)),
                      ("md", "\n".join(lines) + "\n")):
        from fastem.bench import write_result_text

        write_result_text(RESULTS / f"tomo_regularised_convergence.{ext}", text)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
