"""Which random starts of a phase-retrieval multi-start converge, on this CPU?

Iterative phase retrieval amplifies round-off, so which seeded starts reach the object depends on
the CPU's floating-point paths (SIMD width, FFT codelets), not only on the seed. This bench prints,
per start, what two tests rely on:

* ``tests/test_phase_complex.py::test_complex_objects_are_reconstructed_and_the_real_engine_cannot``:
  the 24 px complex particle (noise-free, 48x48), 16 starts x 1000 iterations of HIO, OSS and GPS-F
  with ``complex_object=True, phase_range=(-1.2, 1.2)``: R_real and R_F of every start, and the
  R_real of the lowest-R_F start (what the test asserts).
* ``tests/test_faults_phase.py::test_a_same_looking_run_with_a_far_worse_fit_is_not_averaged_into_the_kept_mean``:
  the robustness grid's pair / noise-free / beamstop / loose2 / seed-1 cell (GPS-R, 16 starts):
  the ``keep_consistent(..., 5)`` report and the R_real of the kept mean against the mean of the
  five lowest-R_F runs without the checks.

Usage::

    .venv/bin/python bench/phase_start_spread.py      # ~1 min on 2 cores

Writes ``bench/results/phase_start_spread_<cpu>.txt`` (the CPU model in the name).
"""

from __future__ import annotations

import importlib.util
import os
import platform
import re
from pathlib import Path

os.environ.setdefault("FASTEM_FFT_PLANNER", "FFTW_ESTIMATE")  # as the test suite (tests/conftest.py)

import numpy as np  # noqa: E402

from fastem.config import use_passive_openmp  # noqa: E402
from fastem.data import cdi_intensities, complex_particle, embed_centred  # noqa: E402
from fastem.phase import (PhaseConfig, initial_phases, keep_consistent, make_solver,  # noqa: E402
                          prepare_problem, r_real)

HERE = Path(__file__).resolve().parent


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _solve(cdi, support, algorithm, iterations, runs, seed, **options):
    dtype = {"dtype": options.pop("dtype")} if "dtype" in options else {}
    prob = prepare_problem(cdi.intensities, cdi.known, support, **dtype)
    cfg = PhaseConfig(algorithm=algorithm, iterations=iterations, **options)
    return make_solver(prob, runs, cfg).initialise(initial_phases(seed, range(runs), prob.shape)).run()


def complex_particle_starts(lines: list[str]) -> None:
    obj = embed_centred(complex_particle(24, seed=3, phase_range=(-1.0, 1.0)), (48, 48))
    cdi = cdi_intensities(obj, flux=1e12, read_noise=0.0, beamstop_radius=0, support_dilation=1, seed=0)
    lines.append("complex 24 px particle, 16 starts x 1000 iterations (R_real / R_F per start)")
    for algorithm in ("hio", "oss", "gps-f"):
        sol = _solve(cdi, cdi.support, algorithm, 1000, 16, 0, dtype=np.complex128, complex_object=True,
                     phase_range=(-1.2, 1.2))
        imgs, rf = sol.best_images_centred(), sol.final_rf()
        err = np.array([r_real(imgs[i], cdi.object) for i in range(len(rf))])
        ok = (err < 0.05) & (rf < 0.005)
        best = int(np.argmin(rf))
        lines.append(f"  {algorithm:6s} " + " ".join(f"{e:.3f}/{r:.4f}" for e, r in zip(err, rf)))
        lines.append(f"  {algorithm:6s} starts with R_real < 5 % and R_F < 0.5 %: {int(ok.sum())} of 16 "
                     f"(first 4: {int(ok[:4].sum())}); lowest-R_F start {best}: R_real {100 * err[best]:.2f} %")


def kept_mean_cell(lines: list[str]) -> None:
    spec = importlib.util.spec_from_file_location("phase_grid", HERE / "phase_grid.py")
    grid = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(grid)
    cdi = grid.make_data(grid.make_object("pair", 128), 0.0, "beamstop", 1)
    sol = _solve(cdi, grid.make_support("loose2", cdi), "gps-r", 1000, 16, 1, shrink_wrap=True,
                 **grid.VARIANTS["g2-sigma0.3"])
    images, rf = sol.best_images_centred(), sol.final_rf()
    sel = keep_consistent(images, rf, 5)
    lines.append("robustness-grid cell pair / noise-free / beamstop / loose2 / seed 1, GPS-R, keep_consistent(5):")
    for e in sel.report[:6]:
        lines.append(f"  start {e['index']:2d}  R_F {100 * e['rf']:.4f} %  difference {e['difference']:.3f}  "
                     f"{'kept' if e['kept'] else 'set aside'}: {e['reason']}")
    unchecked = keep_consistent(images, rf, 5, tolerance=None)
    lines.append(f"  kept {len(sel.indices)}; R_real of the kept mean {100 * r_real(sel.mean, cdi.object):.4f} %, "
                 f"of the unchecked mean of the 5 lowest R_F {100 * r_real(unchecked.mean, cdi.object):.3f} %")


def main() -> None:
    use_passive_openmp()
    cpu = _cpu_model()
    lines = [f"$ .venv/bin/python bench/phase_start_spread.py   # CPU: {cpu}"]
    complex_particle_starts(lines)
    kept_mean_cell(lines)
    text = "\n".join(lines) + "\n"
    print(text, end="")
    out = HERE / "results" / f"phase_start_spread_{re.sub(r'[^A-Za-z0-9]+', '_', cpu).strip('_').lower()}.txt"
    out.write_text(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
