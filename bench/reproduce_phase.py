"""Reproduce the GPS consistency experiment (thesis 2.4.1, Fig. 2.3/2.4; spec ``gps.md``).

    .venv/bin/python bench/reproduce_phase.py [--runs 50] [--iterations 1000] [--objects vesicle,pair]
    .venv/bin/python bench/reproduce_phase.py --grid [--grid-size 128 --grid-runs 16 ...]   # issue 15's grid

For each object: simulated diffraction (Poisson + Gaussian read noise at R_noise 6 %, beamstop
radius 2 px, 128 x 128), the dilated true support, and HIO, OSS, GPS-R, GPS-F from the SAME
``--runs`` random starts (seed 0; default 50), 1000 iterations each with the default schedules.
Per algorithm: R_F and R_real (after removing translation, twin and scale) of the best run, the
mean of the best 5 runs (by R_F), their variance, the R_real of the mean of the best 5 (aligned)
and the mean per-pixel variance of those 5 images relative to the object's mean square.

Objects:

``vesicle``
    ``fastem.data.vesicle_2d(128, seed=0)`` -- the spec's synthetic vesicle (irregular outline
    without a centre of symmetry, multi-scale interior).
``pair``
    two different vesicles side by side (``vesicle_2d(48, seed=1)`` and ``vesicle_2d(28, seed=2)``).

Besides R_F and R_real: the frequency analysis of the error of the mean of the best 5
(``bench/phase_sweep.py``: error energy per ring of |q|, relative error per ring, fit of |F u|
to the noisy and the noise-free magnitudes at high q) and the "oracle" R_real (the noisy
magnitudes with the true phases, projected onto support and positivity: the floor that perfect
phasing of these data reaches).

Writes ``bench/results/phase_reproduction.{md,json}`` (the tables) and
``bench/results/phase_reproduction_rf.png`` (R_F versus iteration: median over runs, best run,
10-90 % band, per algorithm and object).
"""

from __future__ import annotations

import os as _os

from fastem.config import use_passive_openmp as _use_passive_openmp  # noqa: E402
_use_passive_openmp()  # as the CLI does: PASSIVE with a short spin (bench/results/openmp_wait_policy.md)

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ALGORITHMS = ("hio", "oss", "gps-r", "gps-f")
RESULTS = Path(__file__).resolve().parent / "results"


def gps_settings(results: list) -> dict:
    """``{algorithm: {"gamma_scale", "sigma_schedule"}}`` of the GPS algorithms that ran, read from
    their recorded configurations (the defaults differ per algorithm, so one pair would mislabel one)."""
    out = {}
    for res in results:
        for alg, rec in res["algorithms"].items():
            if alg.startswith("gps"):
                out[alg] = {"gamma_scale": rec["config"]["gamma_scale"],
                            "sigma_schedule": rec["config"]["sigma_schedule"]}
    return out


def settings_text(settings: dict) -> str:
    return "; ".join(f"{a.upper()} gamma_scale {v['gamma_scale']:g}, sigma {v['sigma_schedule']}"
                     for a, v in settings.items()) or "no GPS algorithm"


def make_object(name: str) -> np.ndarray:
    from fastem.data import vesicle_2d

    if name == "vesicle":
        return vesicle_2d(128, seed=0)
    if name == "pair":
        u = np.zeros((128, 128))
        c = 64
        u[c - 32:c + 16, c - 28:c + 20] += vesicle_2d(48, seed=1)
        u[c + 8:c + 36, c + 12:c + 40] += vesicle_2d(28, seed=2)
        return u
    raise SystemExit(f"unknown object {name!r}; choose vesicle or pair")


def run_object(name: str, runs: int, iterations: int, seed: int, keep: int = 5, gamma_scale: float | None = None,
               algorithms=ALGORITHMS, gamma_schedule: str = "oss", stage_restart: str = "stage",
               sigma_schedule=None) -> dict:
    """The consistency experiment on one object (``gamma_scale`` / ``sigma_schedule`` None: PhaseConfig's defaults)."""
    from fastem.data import cdi_intensities
    from fastem.phase import (PhaseConfig, initial_phases, keep_best, make_solver, prepare_problem, r_real)

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import phase_sweep

    obj = make_object(name)
    cdi = cdi_intensities(obj, r_noise=0.06, read_noise=1.0, beamstop_radius=2, seed=0)
    out = {"object": name, "shape": list(obj.shape), "r_noise": cdi.r_noise, "support_pixels": int(cdi.support.sum()),
           "oracle_rreal": phase_sweep.oracle_rreal(cdi), "algorithms": {}}
    for alg in algorithms:
        t0 = time.perf_counter()
        extra = {} if gamma_scale is None else {"gamma_scale": gamma_scale}
        if sigma_schedule is not None:
            extra["sigma_schedule"] = sigma_schedule
        cfg = PhaseConfig(algorithm=alg, iterations=iterations, gamma_schedule=gamma_schedule,
                          stage_restart=stage_restart, **extra)
        prob = prepare_problem(cdi.intensities, cdi.known, cdi.support)
        sol = make_solver(prob, runs, cfg).initialise(initial_phases(seed, range(runs), prob.shape)).run()
        seconds = time.perf_counter() - t0
        images = sol.best_images_centred()
        rf = sol.best_rf.copy()
        rr = np.array([r_real(im, cdi.object) for im in images])
        kept, idx, mean, var = keep_best(images, rf, keep)
        scale = float(np.sum(mean * cdi.object) / np.sum(mean * mean))
        its, hist = sol.history()
        out["algorithms"][alg] = {
            "seconds": seconds,
            "config": cfg.as_dict(),
            "rf_best": float(rf[idx[0]]), "rf_mean5": float(rf[idx].mean()), "rf_var5": float(rf[idx].var()),
            "rf_var_all": float(rf.var()),
            "rreal_best": float(rr[idx[0]]), "rreal_mean5": float(rr[idx].mean()), "rreal_var5": float(rr[idx].var()),
            "rreal_var_all": float(rr.var()), "rreal_min_all": float(rr.min()), "rreal_median_all": float(np.median(rr)),
            "rreal_of_mean5": float(r_real(mean, cdi.object)),
            "pixel_var5_rel": float(np.mean(var * scale**2) / np.mean(cdi.object**2)),
            "rf_all": rf.tolist(), "rreal_all": rr.tolist(),
            "history_iterations": its.tolist(),
            "history_rf_median": np.median(hist, axis=1).tolist(),
            "history_rf_p10": np.percentile(hist, 10, axis=1).tolist(),
            "history_rf_p90": np.percentile(hist, 90, axis=1).tolist(),
            "history_rf_best_run": hist[:, idx[0]].tolist(),
            "error": phase_sweep.error_analysis(mean, kept[0], cdi.object, np.sqrt(cdi.intensities), cdi.b_true,
                                                cdi.known, 2),
        }
        a = out["algorithms"][alg]
        print(f"  {name:8s} {alg:6s} {seconds:6.1f} s  R_F best {100 * a['rf_best']:.2f} %  mean5 "
              f"{100 * a['rf_mean5']:.2f} %  | R_real best {100 * a['rreal_best']:.2f} %  mean5 "
              f"{100 * a['rreal_mean5']:.2f} %  of mean5 {100 * a['rreal_of_mean5']:.2f} %", flush=True)
    return out


def error_table(res: dict) -> str:
    """Relative error of the mean of the best 5 per ring of |q| (Fourier px)."""
    algs = res["algorithms"]
    first = next(iter(algs.values()))["error"]
    lines = [f"Relative error ||P_q e|| / ||P_q u_true|| of the mean of the best 5, per ring of |q| (px), "
             f"and its L2 norm; oracle R_real (true phases, measured magnitudes) {100 * res['oracle_rreal']:.2f} %:", "",
             "| algorithm | " + " | ".join(first["band_labels"]) + " | ||e|| / ||u|| |",
             "|---" * (len(first["band_labels"]) + 2) + "|"]
    for alg, a in algs.items():
        e = a["error"]
        lines.append(f"| {alg.upper()} | " + " | ".join(f"{100 * v:.1f} %" for v in e["band_rel_error"])
                     + f" | {100 * e['error_l2']:.2f} % |")
    return "\n".join(lines)


def table(res: dict) -> str:
    lines = [f"### {res['object']} ({res['shape'][0]}x{res['shape'][1]}, R_noise {100 * res['r_noise']:.2f} %, "
             f"support {res['support_pixels']} px)", "",
             "| algorithm | R_F best | R_F mean of best 5 | R_F var (best 5) | R_real best | R_real mean of best 5 "
             "| R_real var (best 5) | R_real of the mean of best 5 | pixel variance of best 5 (rel.) | R_real min / median "
             "(all runs) | time |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for alg, a in res["algorithms"].items():
        lines.append(f"| {alg.upper()} | {100 * a['rf_best']:.2f} % | {100 * a['rf_mean5']:.2f} % | "
                     f"{a['rf_var5']:.2e} | {100 * a['rreal_best']:.2f} % | {100 * a['rreal_mean5']:.2f} % | "
                     f"{a['rreal_var5']:.2e} | {100 * a['rreal_of_mean5']:.2f} % | {a['pixel_var5_rel']:.2e} | "
                     f"{100 * a['rreal_min_all']:.1f} / {100 * a['rreal_median_all']:.1f} % | {a['seconds']:.0f} s |")
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6.5 * len(results), 4.5), squeeze=False)
    colours = {"hio": "C3", "oss": "C2", "gps-r": "C1", "gps-f": "C0"}
    for ax, res in zip(axes[0], results):
        for alg, a in res["algorithms"].items():
            its = np.asarray(a["history_iterations"])
            ax.fill_between(its, 100 * np.asarray(a["history_rf_p10"]), 100 * np.asarray(a["history_rf_p90"]),
                            color=colours[alg], alpha=0.15, lw=0)
            ax.plot(its, 100 * np.asarray(a["history_rf_median"]), color=colours[alg], lw=1.2,
                    label=f"{alg.upper()} (median, 10-90 %)")
            ax.plot(its, 100 * np.asarray(a["history_rf_best_run"]), color=colours[alg], lw=0.7, ls="--")
        ax.axhline(100 * res["r_noise"], color="k", lw=0.6, ls=":", label="R_noise")
        ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_ylabel("R_F (%)")
        ax.set_title(f"{res['object']}: R_F of {len(a['rf_all'])} runs (dashed: best run)", fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--iterations", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--objects", default="vesicle,pair")
    p.add_argument("--algorithms", default=",".join(ALGORITHMS))
    p.add_argument("--gamma-scale", type=float, default=None,
                   help="GPS smoothing multiplier (PhaseConfig.gamma_scale; default: PhaseConfig's)")
    p.add_argument("--sigma-schedule", default=None,
                   help="GPS sigma schedule 'fraction:value,...' (PhaseConfig.sigma_schedule; default: PhaseConfig's)")
    p.add_argument("--gps-schedule", default="oss", choices=("oss", "relax"),
                   help="GPS smoothing schedule (PhaseConfig.gamma_schedule; consistency experiment only)")
    p.add_argument("--stage-restart", default="stage", choices=("stage", "global"),
                   help="each stage starts from that stage's best (stage) or the best so far (global, the "
                        "thesis' algorithms 1-2); consistency experiment only")
    p.add_argument("--tag", default="", help="suffix of the output file names (e.g. _gamma400)")
    p.add_argument("--out-dir", type=Path, default=RESULTS)
    p.add_argument("--sweep", action="store_true",
                   help="regime sweep instead (bench/phase_sweep.py): noise x beamstop x support, 6 configurations")
    p.add_argument("--noise", default="0.03,0.06,0.12", help="--sweep: R_noise values")
    p.add_argument("--beamstop", default="2,4,8", help="--sweep: beamstop radii (px)")
    p.add_argument("--supports", default="tight,loose,auto", help="--sweep: support kinds")
    p.add_argument("--grid", action="store_true",
                   help="robustness grid instead (bench/phase_grid.py, issue 15): objects x supports x noise x missing "
                        "data, every algorithm from the same starts, several seeds")
    p.add_argument("--grid-objects", default="vesicle,pair")
    p.add_argument("--grid-supports", default="tight,loose2,loose4,estimated")
    p.add_argument("--grid-phase-range", default="-1.5707963:1.5707963",
                   help="phase range LO:HI (radians) the complex object is reconstructed with ('none': no constraint)")
    p.add_argument("--grid-noise", default="0,0.03,0.06")
    p.add_argument("--grid-missing", default="none,beamstop,gaps")
    p.add_argument("--grid-seeds", default="0,1,2")
    p.add_argument("--grid-size", type=int, default=128)
    p.add_argument("--grid-runs", type=int, default=16)
    p.add_argument("--grid-iterations", type=int, default=1000)
    p.add_argument("--grid-keep", type=int, default=5)
    p.add_argument("--grid-summarise", type=Path, default=None, metavar="RECORD.json",
                   help="rewrite the .md of a grid record from its .json (no run): after a change of the summary")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore", category=UserWarning)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    cmd = "python bench/reproduce_phase.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.grid_summarise is not None:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import phase_grid

        return phase_grid.resummarise(args.grid_summarise)
    if args.grid:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import phase_grid

        return phase_grid.grid(args, cmd.strip(), args.out_dir)
    if args.sweep:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import phase_sweep

        return phase_sweep.main(args, cmd.strip(), args.out_dir)
    from fastem.benchmark import machine_info

    results = []
    t0 = time.perf_counter()
    for name in args.objects.split(","):
        results.append(run_object(name.strip(), args.runs, args.iterations, args.seed, gamma_scale=args.gamma_scale,
                                  algorithms=tuple(a.strip() for a in args.algorithms.split(",")),
                                  gamma_schedule=args.gps_schedule, stage_restart=args.stage_restart,
                                  sigma_schedule=args.sigma_schedule))
    settings = gps_settings(results)
    md = [f"## GPS consistency experiment ({args.runs} runs x {args.iterations} iterations, seed {args.seed}, "
          f"{settings_text(settings)}, GPS schedule {args.gps_schedule}, stage restart {args.stage_restart})", "",
          f"Command: `{cmd.strip()}`; total {time.perf_counter() - t0:.0f} s on {machine_info()['cpu_model']} "
          f"({machine_info()['cores_available']} cores).", ""]
    for res in results:
        md += [table(res), "", error_table(res), ""]
    stem = f"phase_reproduction{args.tag}"
    if str(Path(__file__).resolve().parent) not in sys.path:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
    from phase_grid import write_result_text  # atomic (bench.write_result_text)

    write_result_text(args.out_dir / f"{stem}.md", "\n".join(md))
    payload = {"command": cmd, "runs": args.runs, "iterations": args.iterations, "seed": args.seed,
               "gps_settings": settings, "gps_schedule": args.gps_schedule, "stage_restart": args.stage_restart,
               "machine": machine_info(), "results": results}
    write_result_text(args.out_dir / f"{stem}.json", json.dumps(payload))
    plot(results, args.out_dir / f"{stem}_rf.png")
    print("\n".join(md))
    print(f"written: {args.out_dir / stem}.md, .json, {stem}_rf.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
