"""The robustness grid of issue 15 (``bench/reproduce_phase.py --grid``).

Objects x supports x noise x missing data, every algorithm from the SAME random starts, several
seeds; per cell the R_real of the kept mean (consistent runs only, :func:`fastem.phase.keep_consistent`),
its R_F, the spread of R_real over all starts and the time.

Axes (defaults = the full grid of the issue; every axis is an option so that a reduced grid can be
run and stated):

objects
    ``vesicle`` (``vesicle_2d(3N/8)`` centred), ``pair`` (two different textured vesicles, sides
    3N/8 and 7N/32, apart), ``complex`` (:func:`fastem.data.complex_particle` of side 3N/8: the
    vesicle's modulus with a smooth phase spanning [-1, 1] rad; reconstructed with
    ``complex_object=True`` and the phase range of ``--grid-phase-range``, default
    [-pi/2, pi/2]: a weak-phase assumption that contains the truth without fitting it).
supports
    ``tight`` (the object dilated by 2 px), ``loose2`` / ``loose4`` (a box around the object
    grown about its centre to 2x / 4x the object's area; for the pair, whose bounding box alone
    is larger than that, the object dilated to 2x / 4x its area), ``estimated`` (``autocorrelation_support``,
    mode ``auto``). Loose and estimated supports run with shrink-wrap (defaults), tight without.
    A support above half the array is skipped (oversampling limit).
noise
    R_noise 0 (1e12 photons, no read noise), 3 %, 6 % (Poisson + Gaussian read noise 1 photon).
missing
    ``none``; ``beamstop`` (radius ``N/32`` px); ``gaps`` (the beamstop plus two 2-px detector
    gaps, a row band and a column band 5 px off the centre).

Target (issue 15): GPS-F has the lowest R_real in at least 3 of 4 cells and is never worse than
1.2x the best of HIO/OSS; on the loose and estimated supports (with shrink-wrap) R_real < 10 %
at R_noise 6 %.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

OBJECTS = ("vesicle", "pair", "complex")
#: the phase span of the ``complex`` object (radians)
COMPLEX_PHASES = (-1.0, 1.0)
SUPPORTS = ("tight", "loose2", "loose4", "estimated")
NOISE = (0.0, 0.03, 0.06)
MISSING = ("none", "beamstop", "gaps")
ALGORITHMS = ("hio", "oss", "gps-r", "gps-f")
#: algorithm variants of the grid, ``ALG/VARIANT`` (e.g. ``gps-f/global``)
VARIANTS = {"global": {"stage_restart": "global"}, "relax": {"gamma_schedule": "relax"},
            "relax+global": {"gamma_schedule": "relax", "stage_restart": "global"},
            "free": {"phase_range": None},  # complex object without the phase-range constraint
            "polar": {"gps_dual": "polar"},  # complex object: GPS with the polar dual step (the default before)
            # twice the filter strength, and sigma 0.3 instead of 1 in the last 30 % (chosen on four 6 %-noise
            # cells of the 128^2 grid where OSS led, then run on the whole grid)
            "g2-sigma0.3": {"gamma_scale": 2.0, "sigma_schedule": ((0.0, 0.01), (0.4, 0.1), (0.7, 0.3))},
            # GPS-R's settings before 2026-12-07 (GPS-F's defaults): the thesis' sigma schedule, filter x1
            "g1-sigma1": {"gamma_scale": 1.0, "sigma_schedule": ((0.0, 0.01), (0.4, 0.1), (0.7, 1.0))},
            # the old filter with the new final sigma only
            "g1-sigma0.3": {"gamma_scale": 1.0, "sigma_schedule": ((0.0, 0.01), (0.4, 0.1), (0.7, 0.3))}}
#: two R_real closer than this (absolute) count as a tie in the target check
TIE = 0.001


def write_result_text(path, text: str) -> None:
    """The project's atomic record writer (:func:`bench.write_result_text`), importable whether this
    module is loaded as ``bench.phase_grid`` or as ``phase_grid`` (by ``bench/reproduce_phase.py``)."""
    import sys

    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)
    from bench import write_result_text as write

    write(path, text)


def make_object(name: str, n: int) -> np.ndarray:
    from fastem.data import complex_particle, embed_centred, vesicle_2d

    u = np.zeros((n, n))
    c = n // 2
    if name == "complex":
        return embed_centred(complex_particle(3 * n // 8, seed=0, phase_range=COMPLEX_PHASES), (n, n))
    if name == "vesicle":
        a = 3 * n // 8
        u[c - a // 2:c - a // 2 + a, c - a // 2:c - a // 2 + a] = vesicle_2d(a, seed=0)
        return u
    if name == "pair":
        a, b = 3 * n // 8, 7 * n // 32
        u[c - a // 2 - n // 16:c - a // 2 - n // 16 + a, c - a // 2 - n // 32:c - a // 2 - n // 32 + a] += \
            vesicle_2d(a, seed=1)
        u[c + n // 16:c + n // 16 + b, c + 3 * n // 32:c + 3 * n // 32 + b] += vesicle_2d(b, seed=2)
        return u
    raise SystemExit(f"--grid: unknown object {name!r} (vesicle, pair, complex)")


def loose_box(obj_support: np.ndarray, factor: float) -> np.ndarray:
    """The bounding box of ``obj_support`` grown about its centre to >= ``factor`` times its area;
    when the bounding box alone is already larger (separated particles), the object's support
    dilated until it covers ``factor`` times its area instead (so 2x and 4x differ)."""
    from scipy import ndimage

    idx = np.nonzero(obj_support)
    if np.prod([int(i.max()) - int(i.min()) + 1 for i in idx]) >= factor * obj_support.sum():
        out = obj_support.copy()
        while out.sum() < factor * obj_support.sum():
            out = ndimage.binary_dilation(out)
        return out
    lo, hi = [int(i.min()) for i in idx], [int(i.max()) + 1 for i in idx]
    pad = 0
    while True:
        sl = tuple(slice(max(0, a - pad), min(n, b + pad)) for a, b, n in zip(lo, hi, obj_support.shape))
        if np.prod([s.stop - s.start for s in sl]) >= factor * obj_support.sum() or pad > max(obj_support.shape):
            break
        pad += 1
    out = np.zeros(obj_support.shape, bool)
    out[sl] = True
    return out


def make_data(obj: np.ndarray, noise: float, missing: str, seed: int):
    from fastem.data import cdi_intensities

    n = obj.shape[0]
    radius = 0 if missing == "none" else max(1.5, n / 32)
    if noise > 0:
        cdi = cdi_intensities(obj, r_noise=noise, beamstop_radius=radius, seed=seed, support_dilation=2)
    else:
        cdi = cdi_intensities(obj, flux=1e12, read_noise=0.0, beamstop_radius=radius, seed=seed, support_dilation=2)
    if missing == "gaps":
        c = n // 2
        cdi.known[c + 5:c + 7, :] = False
        cdi.known[:, c + 5:c + 7] = False
        cdi.intensities[~cdi.known] = 0.0
    return cdi


def make_support(kind: str, cdi) -> np.ndarray:
    from fastem.phase import autocorrelation_support

    obj = np.abs(cdi.object) > 0
    if kind == "tight":
        return cdi.support  # the object dilated by 2 px
    if kind == "loose2":
        return loose_box(obj, 2)
    if kind == "loose4":
        return loose_box(obj, 4)
    if kind == "estimated":
        return autocorrelation_support(cdi.intensities, cdi.known, mode="auto")
    raise SystemExit(f"--grid: unknown support {kind!r}")


def run_cell(cdi, support, algorithm: str, runs: int, iterations: int, keep: int, seed: int, shrink_wrap: bool,
             options: dict | None = None) -> dict:
    from fastem.phase import (PhaseConfig, initial_phases, keep_consistent, make_solver, prepare_problem, r_factor,
                              r_real)

    options = dict(options or {})
    if "/" in algorithm:  # a variant: "gps-f/global" = GPS-F restarting each stage from the global best
        algorithm, variant = algorithm.split("/", 1)
        options.update(VARIANTS[variant])
    if not options.get("complex_object", False):
        options.pop("phase_range", None)
    cfg = PhaseConfig(algorithm=algorithm, iterations=iterations, shrink_wrap=shrink_wrap, **options)
    t0 = time.perf_counter()
    prob = prepare_problem(cdi.intensities, cdi.known, support)
    sol = make_solver(prob, runs, cfg).initialise(initial_phases(seed, range(runs), prob.shape)).run()
    seconds = time.perf_counter() - t0
    images = sol.best_images_centred()
    rf = sol.final_rf()
    sel = keep_consistent(images, rf, keep)
    rr = np.array([r_real(im, cdi.object) for im in images])
    return {"rreal_mean": float(r_real(sel.mean, cdi.object)),
            "rf_mean": float(r_factor(sel.mean, np.sqrt(cdi.intensities), cdi.known)),
            "rreal_best": float(rr[sel.indices[0]]), "rreal_all_std": float(rr.std()),
            "rreal_all_median": float(np.median(rr)), "rf_best": float(rf[sel.indices[0]]),
            "kept": int(len(sel.indices)), "seconds": seconds}


def gps_settings() -> dict:
    """The GPS defaults the plain ``gps-r`` / ``gps-f`` entries of a record ran with, per algorithm."""
    from fastem.phase import PhaseConfig

    out = {}
    for alg in ("gps-r", "gps-f"):
        cfg = PhaseConfig(algorithm=alg)
        out[alg] = {"t": cfg.t, "s": cfg.s, "gamma_scale": cfg.gamma_scale, "gamma_schedule": cfg.gamma_schedule,
                    "sigma_schedule": [list(p) for p in cfg.sigma_schedule.points]}
    return out


def object_options(name: str, phase_range) -> dict:
    """Solver options an object needs: a complex object is reconstructed as one."""
    return {"complex_object": True, "phase_range": phase_range} if name == "complex" else {}


def grid(args, cmd: str, out_dir: Path) -> int:
    from fastem.benchmark import machine_info

    objects = [o.strip() for o in args.grid_objects.split(",")]
    supports = [s.strip() for s in args.grid_supports.split(",")]
    noises = [float(v) for v in args.grid_noise.split(",")]
    missings = [m.strip() for m in args.grid_missing.split(",")]
    algs = [a.strip() for a in args.algorithms.split(",")]
    seeds = [int(s) for s in args.grid_seeds.split(",")]
    n = int(args.grid_size)
    prange = None if args.grid_phase_range.strip().lower() == "none" else \
        tuple(float(v) for v in args.grid_phase_range.split(":"))
    stem = f"phase_grid{args.tag}"
    cells = []
    t_start = time.perf_counter()
    for name in objects:
        obj = make_object(name, n)
        for noise in noises:
            for missing in missings:
                for kind in supports:
                    cell = {"object": name, "noise": noise, "missing": missing, "support": kind, "algorithms": {}}
                    skipped = None
                    for seed in seeds:
                        cdi = make_data(obj, noise, missing, seed)
                        supp = make_support(kind, cdi)
                        if 2 * supp.sum() > supp.size:
                            skipped = f"support {int(supp.sum())} px > half the array"
                            break
                        cell["support_px"] = int(supp.sum())
                        cell["object_px"] = int((np.abs(cdi.object) > 0).sum())
                        cell.setdefault("r_noise", []).append(float(cdi.r_noise))
                        for alg in algs:
                            res = run_cell(cdi, supp, alg, args.grid_runs, args.grid_iterations, args.grid_keep,
                                           seed, shrink_wrap=kind != "tight", options=object_options(name, prange))
                            cell["algorithms"].setdefault(alg, []).append(res)
                    if skipped:
                        cell["skipped"] = skipped
                    cells.append(cell)
                    line = f"{name:8s} noise {noise:.2f} {missing:8s} {kind:9s}"
                    if skipped:
                        line += f" skipped ({skipped})"
                    else:
                        for alg in algs:
                            line += f"  {alg} {100 * np.mean([r['rreal_mean'] for r in cell['algorithms'][alg]]):5.1f}"
                    print(line, flush=True)
                    payload = {"command": cmd, "size": n, "runs": args.grid_runs, "iterations": args.grid_iterations,
                               "complex_phase_range": None if prange is None else list(prange),
                               "keep": args.grid_keep, "seeds": seeds, "machine": machine_info(),
                               "gps_settings": gps_settings(), "cells": cells,
                               "seconds": time.perf_counter() - t_start}
                    write_result_text(out_dir / f"{stem}.json", json.dumps(payload))
    md = summarise(payload, algs)
    write_result_text(out_dir / f"{stem}.md", md)
    print(md)
    print(f"written: {out_dir / stem}.md, .json")
    return 0


def resummarise(record: Path) -> int:
    """Rewrite ``record``'s .md from its .json (the algorithms in the order of the first cell)."""
    record = Path(record)
    payload = json.loads(record.read_text())
    algs = list(next(c for c in payload["cells"] if "skipped" not in c)["algorithms"])
    md = summarise(payload, algs)
    write_result_text(record.with_suffix(".md"), md)
    print(md)
    print(f"written: {record.with_suffix('.md')}")
    return 0


def fmt_settings(st: dict) -> str:
    """``gps_settings`` of a record as text (older records hold one setting for both variants)."""
    if "t" in st:
        st = {"GPS-R and GPS-F": st}

    def one(v):
        sched = ", ".join(f"{x:g} from {100 * f:.0f} %" for f, x in v["sigma_schedule"])
        return (f"t {v['t']:g}, s {v['s']:g}, gamma_scale {v['gamma_scale']:g} ({v['gamma_schedule']}), "
                f"sigma {sched}")

    return "; ".join(f"{k.upper().replace(' AND ', ' and ')} {one(v)}" for k, v in st.items())


def summarise(payload: dict, algs) -> str:
    cells = [c for c in payload["cells"] if "skipped" not in c]
    skipped = [c for c in payload["cells"] if "skipped" in c]
    lines = [f"## Phase retrieval robustness grid ({payload['size']}x{payload['size']}, {payload['runs']} starts x "
             f"{payload['iterations']} iterations, kept mean of <= {payload['keep']} consistent runs, seeds "
             f"{','.join(map(str, payload['seeds']))})", "",
             f"Command: `{payload['command']}`; {payload['seconds']:.0f} s on {payload['machine']['cpu_model']} "
             f"({payload['machine']['cores_available']} cores, shared).", "",
             "R_real of the kept mean (%, mean over seeds; +- the spread of R_real over all starts, mean over "
             "seeds); loose and estimated supports with shrink-wrap. Bold: lowest."
             + (f" Plain entries ran with: {fmt_settings(payload['gps_settings'])}."
                if payload.get("gps_settings") else "")
             + ("" if not any("/" in a for a in algs) else
                " Variants (ALG/VARIANT): " + "; ".join(f"{v}: {VARIANTS[v.split('/')[1]]}" for v in algs if "/" in v)
                + ".")
             + ("" if not any(c["object"] == "complex" for c in cells) else
                f" The complex object (phases {COMPLEX_PHASES[0]:g} to {COMPLEX_PHASES[1]:g} rad) is reconstructed as "
                f"a complex object, phase range {payload.get('complex_phase_range')} (variant /free: none); its R_real "
                f"removes the constant phase and the conjugate twin."), "",
             "| object | R_noise | missing | support | " + " | ".join(a.upper() for a in algs)
             + " | GPS-F / best(HIO, OSS) | R_F of GPS-F's mean | time GPS-F |",
             "|---|---|---|---|" + "---|" * len(algs) + "---|---|---|"]
    from fastem.phase import PhaseConfig

    default = PhaseConfig().algorithm                # named in the target check
    gps = [a for a in algs if a.split("/")[0] in ("gps-r", "gps-f")]  # checked, variants too
    checks = {a: {"wins": 0, "within": 0, "total": 0, "sw": []} for a in gps}
    lowest = {}                                     # (object, noise) -> {alg: cells where it is lowest}
    for c in cells:
        m = {a: float(np.mean([r["rreal_mean"] for r in c["algorithms"][a]])) for a in algs}
        sd = {a: float(np.mean([r["rreal_all_std"] for r in c["algorithms"][a]])) for a in algs}
        best = min(m.values())
        cols = []
        for a in algs:
            txt = f"{100 * m[a]:.1f} +- {100 * sd[a]:.1f}"
            cols.append(f"**{txt}**" if m[a] == best else txt)
        row = lowest.setdefault((c["object"], c["noise"]), {a: 0 for a in algs} | {"cells": 0})
        row["cells"] += 1
        for a in algs:
            row[a] += m[a] <= best + TIE
        ratio = ""
        if "gps-f" in m and ("hio" in m or "oss" in m):
            ref = min(m[a] for a in ("hio", "oss") if a in m)
            ratio = f"{m['gps-f'] / ref if ref > 0 else float('inf'):.2f}"
        if "hio" in m or "oss" in m:
            ref = min(m[a] for a in ("hio", "oss") if a in m)
            for a in gps:
                r = m[a] / ref if ref > 0 else float("inf")
                ck = checks[a]
                ck["total"] += 1
                # lowest among the other algorithms: a variant does not compete with its own algorithm
                rivals = [m[b] for b in algs if b.split("/")[0] != a.split("/")[0]]
                ck["wins"] += m[a] <= min(rivals, default=m[a]) + TIE
                ck["within"] += r <= 1.2 or m[a] <= ref + TIE
                if c["support"] != "tight" and abs(c["noise"] - 0.06) < 1e-9:
                    ck["sw"].append(m[a])
        rf = f"{100 * np.mean([r['rf_mean'] for r in c['algorithms']['gps-f']]):.2f} %" if "gps-f" in m else ""
        tm = f"{np.mean([r['seconds'] for r in c['algorithms']['gps-f']]):.1f} s" if "gps-f" in m else ""
        lines.append(f"| {c['object']} | {100 * c['noise']:.0f} % | {c['missing']} | {c['support']} | "
                     + " | ".join(cols) + f" | {ratio} | {rf} | {tm} |")
    lines += [""]
    if skipped:
        lines += ["Skipped cells: " + "; ".join(f"{c['object']} {c['support']} ({c['skipped']})" for c in skipped), ""]
    if lowest:
        lines += [f"Cells in which each algorithm has the lowest R_real (ties within {100 * TIE:.1f} % absolute count "
                  "for every tied algorithm):", "",
                  "| object | R_noise | cells | " + " | ".join(a.upper() for a in algs) + " |",
                  "|---|---|---|" + "---|" * len(algs)]
        for (obj, noise), row in lowest.items():
            lines.append(f"| {obj} | {100 * noise:.0f} % | {row['cells']} | " + " | ".join(str(row[a]) for a in algs)
                         + " |")
        lines.append("| all | | " + str(sum(r["cells"] for r in lowest.values())) + " | "
                     + " | ".join(str(sum(r[a] for r in lowest.values())) for a in algs) + " |")
        lines += [""]
    for a in gps:
        ck = checks[a]
        if not ck["total"]:
            continue
        below = sum(v < 0.10 for v in ck["sw"])
        name = a.upper() + (" (the default)" if a == default else "")
        if "/" in a:
            name += f" (against {', '.join(b.upper() for b in algs if b.split('/')[0] != a.split('/')[0])})"
        lines += [f"Target check for {name} (ties within {100 * TIE:.1f} % absolute count as met): lowest in "
                  f"{ck['wins']} of {ck['total']} cells (target >= 3/4: "
                  f"{'met' if ck['wins'] >= 0.75 * ck['total'] else 'NOT met'}); within 1.2x of the best of HIO/OSS in "
                  f"{ck['within']} of {ck['total']} (target all: {'met' if ck['within'] == ck['total'] else 'NOT met'}); "
                  f"loose/estimated supports with shrink-wrap at R_noise 6 %: R_real < 10 % in {below} of "
                  f"{len(ck['sw'])} cells (target all: {'met' if ck['sw'] and below == len(ck['sw']) else 'NOT met'}).",
                  ""]
    return "\n".join(lines) + "\n"
