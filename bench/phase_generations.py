"""Guided multi-start ("generations", :mod:`fastem.phase.generations`) against plain multi-start
at equal total iterations per run, same starts, on cells of the robustness grid (issue 15).

    nice -n 10 .venv/bin/python bench/phase_generations.py [--size 64 --runs 16 --iterations 600 --generations 3]

Writes ``bench/results/phase_generations{tag}.{md,json}``.
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

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import phase_grid as pg
    from fastem.phase import PhaseConfig, initial_phases, keep_consistent, make_solver, prepare_problem, r_real
    from fastem.phase.generations import retrieve_generations

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--runs", type=int, default=16)
    p.add_argument("--iterations", type=int, default=600)
    p.add_argument("--generations", type=int, default=3)
    p.add_argument("--keep", type=int, default=5)
    p.add_argument("--objects", default="pair,vesicle")
    p.add_argument("--supports", default="tight,estimated")
    p.add_argument("--algorithms", default="gps-f,hio")
    p.add_argument("--seeds", default="0")
    p.add_argument("--noise", type=float, default=0.06)
    p.add_argument("--missing", default="gaps")
    p.add_argument("--tag", default="")
    p.add_argument("--out-dir", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    cmd = "python bench/phase_generations.py " + " ".join(argv if argv is not None else sys.argv[1:])
    rows = []
    t_start = time.perf_counter()
    for name in args.objects.split(","):
        obj = pg.make_object(name, args.size)
        for kind in args.supports.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                cdi = pg.make_data(obj, args.noise, args.missing, seed)
                supp = pg.make_support(kind, cdi)
                prob = prepare_problem(cdi.intensities, cdi.known, supp)
                for alg in args.algorithms.split(","):
                    cfg = PhaseConfig(algorithm=alg, iterations=args.iterations, shrink_wrap=kind != "tight")
                    t0 = time.perf_counter()
                    sol = make_solver(prob, args.runs, cfg).initialise(
                        initial_phases(seed, range(args.runs), prob.shape)).run()
                    plain = keep_consistent(sol.best_images_centred(), sol.final_rf(), args.keep)
                    t1 = time.perf_counter()
                    guided, _, _ = retrieve_generations(prob, cfg, runs=args.runs, generations=args.generations,
                                                        keep=args.keep, seed=seed)
                    t2 = time.perf_counter()
                    row = {"object": name, "support": kind, "seed": seed, "algorithm": alg,
                           "plain_rreal": r_real(plain.mean, cdi.object), "guided_rreal": r_real(guided.mean, cdi.object),
                           "plain_seconds": t1 - t0, "guided_seconds": t2 - t1}
                    rows.append(row)
                    print(f"{name:8s} {kind:9s} seed {seed} {alg:6s} plain {100 * row['plain_rreal']:5.1f} %  "
                          f"generations {100 * row['guided_rreal']:5.1f} %", flush=True)
                    write(args, cmd, rows, time.perf_counter() - t_start)  # after every row: partial results survive
    print((args.out_dir / f"phase_generations{args.tag}.md").read_text())
    return 0


def write(args, cmd, rows, seconds) -> None:
    from fastem.benchmark import machine_info

    md = [f"## Guided multi-start ({args.generations} generations) vs plain multi-start, equal iterations",
          "", f"Command: `{cmd.strip()}`; {seconds:.0f} s on {machine_info()['cpu_model']} "
          f"({machine_info()['cores_available']} cores, shared and loaded: times are not comparable).", "",
          f"{args.size}^2, R_noise {100 * args.noise:.0f} %, missing {args.missing}, {args.runs} starts x "
          f"{args.iterations} iterations per run (guided: {args.generations} x {args.iterations // args.generations}), "
          f"R_real of the kept mean of <= {args.keep} consistent runs.", "",
          "| object | support | seed | algorithm | plain | generations | generations / plain |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['object']} | {r['support']} | {r['seed']} | {r['algorithm']} | {100 * r['plain_rreal']:.1f} % | "
                  f"{100 * r['guided_rreal']:.1f} % | {r['guided_rreal'] / max(r['plain_rreal'], 1e-12):.2f} |")
    ratios = [r["guided_rreal"] / max(r["plain_rreal"], 1e-12) for r in rows]
    md += ["", f"Median ratio generations / plain: {np.median(ratios):.2f} ({sum(x < 1 for x in ratios)} of "
           f"{len(rows)} better)."]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"phase_generations{args.tag}"
    from fastem.bench import write_result_text

    write_result_text(args.out_dir / f"{stem}.md", "\n".join(md) + "\n")
    write_result_text(args.out_dir / f"{stem}.json", json.dumps({"command": cmd, "rows": rows, "machine": machine_info()}))


if __name__ == "__main__":
    raise SystemExit(main())
