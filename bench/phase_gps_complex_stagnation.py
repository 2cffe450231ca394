"""Why GPS fails on complex objects (issue 15): is its final iterate infeasible, or stuck?

GPS relaxes the support constraint through its smoothed dual, so one explanation of its poor
R_real on complex objects would be density left outside the support by ``F^{-1} z``. This
measures, for GPS-F on the grid's noise-free 64^2 cell with the tight support (real vesicle and
the complex particle, 8 starts x 600 iterations, complex128), the fraction of the energy of
``F^{-1} z`` outside the support at the end, the R_F of ``z`` itself and of the projected image,
and R_real, next to HIO on the same starts.

Usage::

    nice -n 10 .venv/bin/python bench/phase_gps_complex_stagnation.py

Writes ``bench/results/phase_gps_complex_stagnation.md``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from fastem.config import use_passive_openmp as _use_passive_openmp  # noqa: E402
_use_passive_openmp()  # as the CLI does: PASSIVE with a short spin (bench/results/openmp_wait_policy.md)

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.phase_grid import make_data, make_object, make_support  # noqa: E402
from bench import write_result_text  # noqa: E402


def main() -> int:
    from fastem.phase import PhaseConfig, initial_phases, make_solver, prepare_problem, r_real

    lines = ["# GPS-F on a complex object: infeasible or stuck? (issue 15)", "",
             "Command: `bench/phase_gps_complex_stagnation.py`; 64x64, noise-free, no missing data, tight "
             "support (object + 2 px), 8 starts x 600 iterations, complex128, seed 0. Complex object reconstructed "
             "with the phase range (-pi/2, pi/2); `gps-f`: GPS's polar dual step (`gps_dual='polar'`, the default until "
             "2026-12-06), `gps-f feedback`: the feedback step (the default for complex objects since).", "",
             "| object | algorithm | off-support energy of F^-1 z (max over starts) | R_F of z (%) | R_F of the image (%) "
             "| R_real (%) |", "|---|---|---|---|---|---|"]
    t0 = time.perf_counter()
    for name, cx in (("vesicle", False), ("complex", True)):
        cdi = make_data(make_object(name, 64), 0.0, "none", 0)
        supp = make_support("tight", cdi)
        prob = prepare_problem(cdi.intensities, cdi.known, supp, dtype=np.complex128)
        # the polar dual step stagnated; the feedback step (the default since) is the row below it
        kw = dict(complex_object=True, phase_range=(-np.pi / 2, np.pi / 2)) if cx else {}
        b = np.fft.ifftshift(np.sqrt(cdi.intensities))
        inside = np.fft.ifftshift(supp)
        for alg in (("gps-f", "gps-f feedback", "hio") if cx else ("gps-f", "hio")):
            extra = {"gps_dual": "feedback" if alg.endswith("feedback") else "polar"} if cx else {}
            sol = make_solver(prob, 8, PhaseConfig(algorithm=alg.split()[0], iterations=600, **kw, **extra))
            sol.initialise(initial_phases(0, range(8), prob.shape)).run()
            rr = np.array([r_real(im, cdi.object) for im in sol.best_images_centred()])
            rf = sol.final_rf()
            if alg.startswith("gps"):
                x = np.fft.ifftn(sol.z, axes=(1, 2))
                off = (np.abs(x[:, ~inside]) ** 2).sum(axis=1) / (np.abs(x) ** 2).sum(axis=(1, 2))
                rf_z = np.abs(np.abs(sol.z) - b).sum(axis=(1, 2)) / b.sum()
                off_txt, rfz_txt = f"{off.max():.1e}", f"{100 * rf_z.min():.2f}-{100 * rf_z.max():.2f}"
            else:
                off_txt = rfz_txt = "-"
            lines.append(f"| {name} | {alg} | {off_txt} | {rfz_txt} | {100 * rf.min():.2f}-{100 * rf.max():.2f} | "
                         f"{100 * rr.min():.1f}-{100 * rr.max():.1f} |")
            print(lines[-1], flush=True)
    lines += ["", f"Wall {time.perf_counter() - t0:.0f} s."]
    out = ROOT / "bench" / "results" / "phase_gps_complex_stagnation.md"
    write_result_text(out, "\n".join(lines) + "\n")   # atomic, as every bench record
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
