"""What one iteration of the regularised tomography solver costs, kernel by kernel, on the CPU.

For a single-axis tilt series (tilts about y, the common case) the ``linear`` projector pair runs
the tilt kernels (transposed layouts, SIMD along y, taps from a per-geometry table) and the
anisotropic priors (``tv``, ``huber``) their vectorised pass. This script times, side by side in
one run on the same data and threads:

* forward projection: the tilt kernel (``forward_project``, what the solver calls) against the
  general splatting kernel (``forward_project_numba``, what any geometry takes);
* back projection: the tilt kernel against the general gather kernel (``back_project_numba``);
* the TV prior: the vectorised anisotropic pass against the generic per-voxel routine
  (``volume_prior_numba``, the GPU engines' routine compiled for the CPU);
* isotropic TV: its vectorised gather pass (``face_prior_numba``, mode ``FACE_ITV``; what ``volume_prior``
  runs since 2026-12-07) against the same generic routine (what it ran before);
* the qGGMRF prior: the pair pass (``qggmrf_prior_numba``: each of the 13 pairs of a voxel once,
  what ``volume_prior`` runs) against the generic per-voxel routine (each of the 26 twice);
* one FISTA iteration of :class:`fastem.tomo.regularised.RegularisedReconstruction`: TV, isotropic
  TV and qGGMRF.

The data: ``fastem.data.vesicle_3d(n)``, tilts -60..+60 in 3 degree steps (41), random volumes
and residual images for the kernels. Medians of ``--repeats`` calls after one warm-up call.

Usage: ``.venv/bin/python bench/tomo_iteration.py [--n 48 128] [--threads 2]`` ->
``bench/results/tomo_iteration.json`` and ``.md``. Needs an idle machine.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from fastem.config import use_passive_openmp as _use_passive_openmp  # noqa: E402
_use_passive_openmp()  # as the CLI does: PASSIVE with a short spin (bench/results/openmp_wait_policy.md)

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import median_seconds, write_results  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def _time(fn, repeats: int) -> float:
    return median_seconds(fn, repeats) * 1e3


def _fista_vectors(vecs, engine: str) -> None:
    """One iteration's vector work of the FISTA solver (extrapolation, projected step, restart
    sum), fused (``numba``) or as the NumPy sequence (``numpy``, what the solver ran before)."""
    from fastem.kernels import fista_extrapolate, fista_update

    x, x_prev, y, g = vecs
    fista_extrapolate(x, x_prev, y, 0.5, engine=engine)
    fista_update(y, g, x, x_prev, 1e-3, positivity=True, engine=engine)


def measure(n: int, repeats: int) -> dict:
    from fastem.data import tilt_angles, tilt_series, vesicle_3d
    from fastem.kernels import back_project, forward_project
    from fastem.kernels._back_project_numba import back_project_numba
    from fastem.kernels._forward_project_numba import forward_project_numba
    from fastem.kernels._volume_prior_numba import volume_prior_numba
    from fastem.kernels.back_project import BORDER, cpu_tap_plan, with_border
    from fastem.kernels.volume_prior import prior_parameters, volume_prior
    from fastem.tomo import TomoProblem
    from fastem.tomo.regularised import RegularisedReconstruction

    truth = vesicle_3d(n, seed=0).astype(np.float64)
    tilts = tilt_angles(-60.0, 60.0, 3.0)
    data = tilt_series(truth, -tilts, centring="middle").astype(np.float32)
    problem = TomoProblem(data, tilts, convention="thesis")
    coeffs = np.ascontiguousarray(problem.geometry.coefficients)
    shifts, tilt = cpu_tap_plan(coeffs, 4)
    assert tilt, "the series should take the tilt kernels"
    rng = np.random.default_rng(0)
    vol = rng.random(problem.geometry.volume_shape, dtype=np.float32)
    nk, rows, cols = problem.geometry.projections_shape
    proj = np.zeros((nk, rows + 2 * BORDER, cols + 2 * BORDER), np.float32)
    images = with_border(rng.random((nk, rows, cols), dtype=np.float32))
    out = np.empty_like(vol)
    dummy = np.zeros((1, 1, 1), np.float32)
    grad = np.empty_like(vol)
    kind, a, p, q, t, sigma = prior_parameters("tv", eps=0.01)
    qg = prior_parameters("qggmrf", sigma=0.2)
    itv = prior_parameters("itv", eps=0.01)
    solver = RegularisedReconstruction(problem, prior="tv", weight=0.2)
    solver_qg = RegularisedReconstruction(problem, prior="qggmrf", weight=0.2)
    solver_itv = RegularisedReconstruction(problem, prior="itv", weight=0.2)
    vecs = [rng.random(vol.shape, dtype=np.float32) for _ in range(4)]
    row = {
        "forward tilt kernel": _time(lambda: forward_project(vol, coeffs, proj, subpoints=4, border=BORDER), repeats),
        "forward general kernel": _time(lambda: forward_project_numba(vol, coeffs, shifts, proj, BORDER, 1, True),
                                        repeats),
        "back tilt kernel": _time(lambda: back_project(images, coeffs, out, subpoints=4, border=BORDER), repeats),
        "back general kernel": _time(lambda: back_project_numba(images, BORDER, coeffs, shifts, out, 1.0, 0.0, dummy,
                                                                False, False), repeats),
        "tv prior vectorised": _time(lambda: volume_prior(vol, grad, "tv", eps=0.01), repeats),
        "tv prior generic routine": _time(lambda: volume_prior_numba(vol, grad, kind, a, p, q, t, sigma, 1.0, 0.0),
                                          repeats),
        "itv prior vectorised": _time(lambda: volume_prior(vol, grad, "itv", eps=0.01), repeats),
        "itv prior generic routine": _time(lambda: volume_prior_numba(vol, grad, *itv, 1.0, 0.0), repeats),
        "qggmrf prior pairs": _time(lambda: volume_prior(vol, grad, "qggmrf", sigma=0.2), repeats),
        "qggmrf prior generic routine": _time(lambda: volume_prior_numba(vol, grad, *qg, 1.0, 0.0), repeats),
        "fista iteration (tv)": _time(solver.iterate, repeats),
        "fista iteration (itv)": _time(solver_itv.iterate, repeats),
        "fista iteration (qggmrf)": _time(solver_qg.iterate, repeats),
        "fista vector updates fused": _time(lambda: _fista_vectors(vecs, "numba"), repeats),
        "fista vector updates numpy sequence": _time(lambda: _fista_vectors(vecs, "numpy"), repeats),
    }
    return {"n": n, "projections": int(nk), "ms": row}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[48, 128])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    import fastem

    fastem.set_threads(args.threads)
    runs = [measure(n, args.repeats if n <= 64 else max(3, args.repeats // 3)) for n in args.n]
    names = list(runs[0]["ms"])
    lines = ["# One iteration of regularised tomography, kernel by kernel (CPU)", "",
             f"Command: `.venv/bin/python bench/tomo_iteration.py --n {' '.join(map(str, args.n))} "
             f"--threads {args.threads}`; {args.threads} threads, tilts -60..+60 step 3 (41), medians.", "",
             "| kernel | " + " | ".join(f"{r['n']}^3 ms" for r in runs) + " |",
             "|---|" + "---|" * len(runs)]
    lines += [f"| {name} | " + " | ".join(f"{r['ms'][name]:.2f}" for r in runs) + " |" for name in names]
    lines += ["", "Ratios (general / tilt kernel, generic / vectorised or pair prior pass, NumPy sequence / fused "
              "FISTA updates, qGGMRF and isotropic TV / TV iteration):", ""]
    for r in runs:
        ms = r["ms"]
        lines.append(f"* {r['n']}^3: forward {ms['forward general kernel'] / ms['forward tilt kernel']:.1f}x, back "
                     f"{ms['back general kernel'] / ms['back tilt kernel']:.1f}x, TV prior "
                     f"{ms['tv prior generic routine'] / ms['tv prior vectorised']:.1f}x, isotropic TV prior "
                     f"{ms['itv prior generic routine'] / ms['itv prior vectorised']:.1f}x, qGGMRF prior "
                     f"{ms['qggmrf prior generic routine'] / ms['qggmrf prior pairs']:.1f}x, FISTA vector updates "
                     f"{ms['fista vector updates numpy sequence'] / ms['fista vector updates fused']:.1f}x; a qGGMRF "
                     f"iteration costs {ms['fista iteration (qggmrf)'] / ms['fista iteration (tv)']:.1f}x a TV one, an "
                     f"isotropic TV one {ms['fista iteration (itv)'] / ms['fista iteration (tv)']:.2f}x")
    report = {"threads": args.threads, "runs": runs}
    write_results(args.out, "tomo_iteration", report, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return report


if __name__ == "__main__":
    main()
