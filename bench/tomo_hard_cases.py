"""RESIRE against SIRT and FBP on a hard case: missing wedge, partly blocked projections, noise.

Run::

    .venv/bin/python bench/tomo_hard_cases.py            # 64^3, 3 seeds, 100 it + stopping rule (long)
    .venv/bin/python bench/tomo_hard_cases.py --quick    # 32^3, 2 seeds, 40 it (a couple of minutes)

The case (issue 14, "Results"): ``fastem.data.vesicle_3d(n)`` (even ``n``), tilts -60..+60 deg
about y (a 60 deg missing wedge around z), every projection with a random rectangle of about 15 %
of its pixels blocked (mask 0; the data there hold garbage), Gaussian noise of ``--noise`` x the
largest projection value, simulated by the independent ray-sum projector
``fastem.data.tilt_series`` in the geometric-middle centring (``centring="middle"``) and the
thesis / ASTRA angle sign (``-theta`` to the fastem-sign simulator, ``convention="thesis"`` to
the reconstructions). Per seed, every method sees the same data and the mask:

* RESIRE ``fst`` and ``linear`` and SIRT (fastem, positivity), each at the same iteration count
  (``--iterations``) and with the discrepancy stopping rule (``noise_level`` = the true sigma,
  at most ``--max-iterations``); FBP (blocked pixels filtered as zeros: FBP has no mask);
* RESIRE without positivity (the thesis' algorithm 3 has none) beside the default;
* RESIRE ``fst`` with the thesis' scalar step (``step_normalisation="global"``) beside the default
  per-voxel step that a mask selects (``"auto"``).

Figures: relative L2 error against the phantom, mean FSC within 30 deg of z (the missing-wedge
direction) and over all directions, R-factor against the data over the measured pixels, the
iteration count. Mean and spread over seeds. Writes ``bench/results/tomo_hard_cases[-quick].json``
and ``.md``.
"""

from __future__ import annotations

import os as _os

from fastem.config import use_passive_openmp as _use_passive_openmp  # noqa: E402
_use_passive_openmp()  # as the CLI does: PASSIVE with a short spin (bench/results/openmp_wait_policy.md)

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from fastem.data import tilt_angles, tilt_series, vesicle_3d
from fastem.tomo import fbp, fourier_shell_correlation, relative_error, resire, sirt

RESULTS = Path(__file__).resolve().parent / "results"


def make_case(n: int, seed: int, noise: float, step: float):
    truth = vesicle_3d(n, seed=0)
    tilts = tilt_angles(-60.0, 60.0, step)
    clean = tilt_series(truth, -tilts, centring="middle")
    rng = np.random.default_rng(seed)
    sigma = noise * float(np.abs(clean).max())
    data = clean + rng.normal(0.0, sigma, clean.shape).astype(np.float32)
    mask = np.ones(data.shape, dtype=bool)
    rows, cols = data.shape[1:]
    for k in range(len(tilts)):  # a random rectangle of about 15 % of the pixels
        h, w = int(rows * rng.uniform(0.3, 0.5)), int(cols * rng.uniform(0.3, 0.5))
        r0, c0 = rng.integers(0, rows - h + 1), rng.integers(0, cols - w + 1)
        mask[k, r0:r0 + h, c0:c0 + w] = False
    data[~mask] = rng.uniform(0, 10 * float(clean.max()), int((~mask).sum()))  # garbage where blocked
    return truth, tilts, data.astype(np.float32), mask, sigma


def score(name, result, truth, seconds):
    _, fsc_all, _ = fourier_shell_correlation(result.volume, truth)
    _, fsc_z, _ = fourier_shell_correlation(result.volume, truth, direction=(0, 0, 1), cone_deg=30)
    return {"method": name, "iterations": int(result.iterations), "rel_l2": relative_error(result.volume, truth, 2),
            "fsc_z": float(np.nanmean(fsc_z)), "fsc": float(np.nanmean(fsc_all)), "r_factor": float(result.r_factor),
            "seconds": round(float(seconds), 2), "stopped": result.config.get("stopped")}


def run_seed(n, seed, args, log):
    truth, tilts, data, mask, sigma = make_case(n, seed, args.noise, args.step)
    common = dict(mask=mask, convention="thesis", volume_shape=truth.shape, progress=False)
    rows = []

    def timed(name, fn, curve_every=0, **kw):
        curve = []

        def sample(solver):  # error and wedge FSC along the matched run (outside the timing's purpose)
            vol = solver.host_volume()
            _, fz, _ = fourier_shell_correlation(vol, truth, direction=(0, 0, 1), cone_deg=30)
            curve.append([int(solver.iteration), relative_error(vol, truth, 2), float(np.nanmean(fz))])

        if curve_every:
            kw.update(callback=sample, callback_every=curve_every)
        t0 = time.perf_counter()
        res = fn(data, tilts, **common, **kw)
        rows.append(score(name, res, truth, time.perf_counter() - t0))
        if curve:
            rows[-1]["curve"] = curve
        r = rows[-1]
        log(f"  seed {seed} {name:34s} it {r['iterations']:4d}  rel L2 {r['rel_l2']:.4f}  FSC z {r['fsc_z']:.3f}"
            f"  FSC {r['fsc']:.3f}  R_F {100 * r['r_factor']:.2f} %  {r['seconds']:.1f} s")

    it, cap = args.iterations, args.max_iterations
    for proj in ("fst", "linear"):
        timed(f"RESIRE {proj} ({it} it)", resire, iterations=it, projector=proj, curve_every=args.curve_every)
        timed(f"RESIRE {proj} (stopping rule)", resire, iterations=cap, projector=proj, noise_level=sigma)
    # the thesis' scalar step (the default with a mask is the per-voxel step, step_normalisation="auto")
    timed(f"RESIRE fst global step ({it} it)", resire, iterations=it, projector="fst", step_normalisation="global")
    timed("RESIRE fst global step (stopping rule)", resire, iterations=cap, projector="fst", noise_level=sigma,
          step_normalisation="global")
    timed(f"RESIRE fst no positivity ({it} it)", resire, iterations=it, projector="fst", positivity=False)
    # why "auto" keeps the scalar step without positivity: the per-voxel one, forced
    timed(f"RESIRE fst no positivity per-voxel step ({it} it)", resire, iterations=it, projector="fst",
          positivity=False, step_normalisation="voxel")
    timed(f"SIRT positivity ({it} it)", sirt, iterations=it, positivity=True, curve_every=args.curve_every)
    timed("SIRT positivity (stopping rule)", sirt, iterations=cap, positivity=True, noise_level=sigma)
    t0 = time.perf_counter()
    res = fbp(data, tilts, mask=mask, convention="thesis", volume_shape=truth.shape)
    rows.append(score("FBP", res, truth, time.perf_counter() - t0))
    return rows


def summarise(per_seed):
    names = [r["method"] for r in per_seed[0]]
    out = []
    for i, name in enumerate(names):
        rs = [rows[i] for rows in per_seed]
        entry = {"method": name}
        for key in ("iterations", "rel_l2", "fsc_z", "fsc", "r_factor"):
            vals = np.array([r[key] for r in rs], dtype=np.float64)
            entry[key] = float(vals.mean())
            entry[key + "_std"] = float(vals.std())
        out.append(entry)
    return out


def table(summary) -> str:
    lines = ["| method | iterations | rel. L2 | mean FSC z (wedge) | mean FSC | R_F (measured) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in summary:
        lines.append(f"| {r['method']} | {r['iterations']:.0f} | {r['rel_l2']:.4f} +- {r['rel_l2_std']:.4f} | "
                     f"{r['fsc_z']:.3f} +- {r['fsc_z_std']:.3f} | {r['fsc']:.3f} | {100 * r['r_factor']:.2f} % |")
    return "\n".join(lines)


def curves(per_seed, iterations) -> str:
    """Mean over seeds of error / wedge FSC along the matched runs, RESIRE fst against SIRT."""
    a, b = f"RESIRE fst ({iterations} it)", f"SIRT positivity ({iterations} it)"
    first = {r["method"]: r for r in per_seed[0]}
    if "curve" not in first.get(a, {}) or "curve" not in first.get(b, {}):
        return ""
    lines = ["Along the matched runs (mean over seeds; RESIRE fst default step vs SIRT):", "",
             "| iteration | RESIRE rel. L2 | SIRT rel. L2 | RESIRE FSC z | SIRT FSC z | RESIRE ahead in both (seeds) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for j, (itn, _, _) in enumerate(first[a]["curve"]):
        ra, rb = [], []
        for rows in per_seed:
            by = {r["method"]: r for r in rows}
            ra.append(by[a]["curve"][j])
            rb.append(by[b]["curve"][j])
        ahead = sum(x[1] < y[1] and x[2] > y[2] for x, y in zip(ra, rb))
        lines.append(f"| {itn} | {np.mean([x[1] for x in ra]):.4f} | {np.mean([y[1] for y in rb]):.4f} | "
                     f"{np.mean([x[2] for x in ra]):.3f} | {np.mean([y[2] for y in rb]):.3f} | "
                     f"{ahead} of {len(ra)} |")
    return "\n".join(lines)


def paired(per_seed, iterations) -> str:
    """Per-seed differences RESIRE (default step) - SIRT: the same data, so paired."""
    lines = ["Paired per seed, RESIRE fst (default) minus SIRT (negative error / positive FSC z = RESIRE ahead):", ""]
    for label, a, b in (("matched iterations", f"RESIRE fst ({iterations} it)", f"SIRT positivity ({iterations} it)"),
                        ("stopping rule", "RESIRE fst (stopping rule)", "SIRT positivity (stopping rule)")):
        d_err, d_fsc = [], []
        for rows in per_seed:
            by = {r["method"]: r for r in rows}
            d_err.append(by[a]["rel_l2"] - by[b]["rel_l2"])
            d_fsc.append(by[a]["fsc_z"] - by[b]["fsc_z"])
        ahead = sum(e < 0 and f > 0 for e, f in zip(d_err, d_fsc))
        lines.append(f"- {label}: rel. L2 difference {', '.join(f'{v:+.4f}' for v in d_err)}; FSC z difference "
                     f"{', '.join(f'{v:+.3f}' for v in d_fsc)}; RESIRE ahead in both in {ahead} of {len(d_err)} seeds")
    return "\n".join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="32^3, 2 seeds, 40 iterations")
    ap.add_argument("--size", type=int, default=None, help="volume edge (even; default 64, quick 32)")
    ap.add_argument("--seeds", type=int, default=None, help="number of noise/mask seeds (default 3, quick 2)")
    ap.add_argument("--iterations", type=int, default=None, help="matched iteration count (default 100, quick 40)")
    ap.add_argument("--max-iterations", type=int, default=None, help="cap with the stopping rule (400, quick 150)")
    ap.add_argument("--noise", type=float, default=0.05, help="noise sigma, fraction of the max projection (0.05)")
    ap.add_argument("--step", type=float, default=None, help="tilt step in degrees (default 3, quick 6)")
    ap.add_argument("--curve-every", type=int, default=10,
                    help="record error and wedge FSC every this many iterations of the matched RESIRE and SIRT "
                         "runs (0: off)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    n = args.size or (32 if args.quick else 64)
    if n % 2:
        ap.error("--size must be even (the hard case is about even sizes)")
    seeds = args.seeds or (2 if args.quick else 3)
    args.iterations = args.iterations or (40 if args.quick else 100)
    args.max_iterations = args.max_iterations or (150 if args.quick else 400)
    args.step = args.step or (6.0 if args.quick else 3.0)

    def log(msg):
        print(msg, flush=True)

    log(f"hard case: {n}^3 vesicle, tilts -60..60 step {args.step:g}, ~15 % blocked per projection, "
        f"noise {args.noise:g} of max, {seeds} seed(s)")
    per_seed = [run_seed(n, seed, args, log) for seed in range(seeds)]
    summary = summarise(per_seed)
    report = {"size": n, "seeds": seeds, "iterations": args.iterations, "max_iterations": args.max_iterations,
              "noise": args.noise, "tilt_step": args.step, "command": " ".join(["bench/tomo_hard_cases.py", *(argv or sys.argv[1:])]),
              "summary": summary, "per_seed": per_seed}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "tomo_hard_cases" + ("-quick" if args.quick else "" if n == 64 else f"_{n}")
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=1))
    md = (f"# RESIRE vs SIRT vs FBP: missing wedge + blocked pixels + noise\n\n"
          f"`{report['command']}`: {n}^3 vesicle, tilts -60..60 deg step {args.step:g}, about 15 % of every "
          f"projection blocked (masked), noise {args.noise:g} of the max, {seeds} seed(s); mean +- std over seeds.\n\n"
          + table(summary) + "\n\n" + paired(per_seed, args.iterations) + "\n\n"
          + curves(per_seed, args.iterations) + "\n")
    (args.out / f"{stem}.md").write_text(md)
    log("\n" + table(summary) + "\n\n" + paired(per_seed, args.iterations))
    return report


if __name__ == "__main__":
    main()
