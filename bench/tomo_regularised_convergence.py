"""Convergence of the regularised solver's options on one noisy missing-wedge case (issue 20).

Run::

    nice -n 10 .venv/bin/python bench/tomo_regularised_convergence.py

Same case as ``bench/tomo_regularised.py`` (24^3 vesicle, tilts -60..60 step 3, 5 % noise, seed
0), ``tv`` prior at a fixed weight (the R-free choice of ``regularised(..., prior_weight="auto")``
on this case), from zeros: the objective ``F(x)`` and the relative error after every 10
iterations for projected gradient (ISTA, ``momentum="none"``), plain FISTA and FISTA with gradient
restart (the default), same step ``1/L``. Writes ``bench/results/tomo_regularised_convergence.{json,md,png}``
(the PNG: the relative objective gap and the error against the iteration, log scale).
``--plot-only`` redraws the PNG from the existing JSON without running anything.
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


LABELS = {"none": "projected gradient", "fista": "FISTA", "restart": "FISTA + gradient restart (default)"}


def plot(record: dict, path: Path) -> None:
    """The convergence curves of ``record`` (this script's JSON) as a PNG at ``path`` (atomic)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fastem.io import atomic_output

    curves = record["curves"]
    best = min(r[1] for c in curves.values() for r in c)
    fig, (ax_gap, ax_err) = plt.subplots(1, 2, figsize=(10, 3.8))
    for m, rows in curves.items():
        k = [r[0] for r in rows]
        gap = [max((r[1] - best) / best, 1e-8) for r in rows]     # 0 (the best run's last point) drawn at 1e-8
        ax_gap.semilogy(k, gap, marker="o", ms=3, label=LABELS.get(m, m))
        ax_err.plot(k, [r[2] for r in rows], marker="o", ms=3, label=LABELS.get(m, m))
    ax_gap.set(xlabel="iteration", ylabel="(F - F_best) / F_best", title="objective gap")
    ax_err.set(xlabel="iteration", ylabel="relative L2 error", title="error against the phantom")
    ax_gap.legend(fontsize=8)
    fig.suptitle(f"regularised solver, 24^3 vesicle, -60..60 step 3, 5 % noise, tv, weight {record['weight']:.4g}",
                 fontsize=9)
    fig.tight_layout()
    with atomic_output(path, overwrite=True) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--plot-only", action="store_true", help="redraw the PNG from the existing JSON")
    args = ap.parse_args(argv)
    if args.plot_only:
        plot(json.loads((RESULTS / "tomo_regularised_convergence.json").read_text()),
             RESULTS / "tomo_regularised_convergence.png")
        return 0
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
    plot({"weight": lam, "checkpoints": checkpoints, "curves": curves}, RESULTS / "tomo_regularised_convergence.png")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
