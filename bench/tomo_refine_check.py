"""How well ``--refine-angles`` recovers perturbed tilt angles and shifts (issue 14).

A blob phantom (``--size``^3) is projected with the ``linear`` projector at tilts -60..60
perturbed by up to ``--angle`` degrees (zero mean) and detector shifts up to ``--shift`` pixels
(zero mean); :func:`fastem.tomo.refine_alignment` starts from the nominal tilts and no shifts.
Errors are measured after removing what the data cannot determine (a rigid motion of the object
and the tilt scale: ``remove_rigid_motion``, ``remove_tilt_scale``). Reports per round the
R-factor, the largest and median angle error (each Euler angle) and shift error, next to the
errors of the nominal geometry. Results: ``bench/results/tomo_refine_check.{json,md}``.

Usage: ``nice -n 10 .venv/bin/python bench/tomo_refine_check.py [--size 32] [--proj 31] [--rounds 5]``
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

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _rel(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def phantom(n: int, rng) -> np.ndarray:
    z, y, x = np.meshgrid(*[np.arange(n) - (n - 1) / 2] * 3, indexing="ij")
    vol = np.zeros((n, n, n))
    for _ in range(max(10, n // 2)):
        c = rng.uniform(-0.3 * n, 0.3 * n, 3)
        s = rng.uniform(1.0, 2.0)
        vol += rng.uniform(0.5, 1.5) * np.exp(-((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) / (2 * s * s))
    return vol.astype(np.float32)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--proj", type=int, default=31)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iterations", type=int, default=40)
    p.add_argument("--angle", type=float, default=1.5)
    p.add_argument("--shift", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--parameters", default="auto", help="auto (single axis: tilt + shifts), all, or names")
    p.add_argument("--projector", default="linear", choices=["linear", "fst"])
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "tomo_refine_check")
    a = p.parse_args(argv)
    from fastem.io import atomic_output
    from fastem.tomo import LinearProjector, ProjectionGeometry, refine_alignment
    from fastem.tomo.refine import remove_rigid_motion, remove_tilt_scale

    rng = np.random.default_rng(a.seed)
    n = a.size
    vol = phantom(n, rng)
    nominal = np.zeros((a.proj, 3))
    nominal[:, 1] = np.linspace(-60, 60, a.proj)
    da = np.zeros((a.proj, 3))
    da[:, 1] = rng.uniform(-a.angle, a.angle, a.proj)
    da[:, 1] -= da[:, 1].mean()
    ds = rng.uniform(-a.shift, a.shift, (a.proj, 2))
    ds -= ds.mean(axis=0)
    true_a = nominal + da
    data = LinearProjector(ProjectionGeometry(vol.shape, (n, n), true_a, shifts=ds)).project(vol)

    def errors(angles, shifts):
        ga, gs = remove_rigid_motion(true_a, ds, angles, shifts)
        ga = remove_tilt_scale(true_a * [0, 1, 0], ga)
        ea, es = np.abs(ga - true_a), np.abs(gs - ds)
        return {"angle_max": ea.max(axis=0).round(3).tolist(), "angle_median": np.median(ea, axis=0).round(3).tolist(),
                "shift_max": es.max(axis=0).round(3).tolist(), "shift_median": np.median(es, axis=0).round(3).tolist()}

    rounds = []
    t0 = time.perf_counter()

    def cb(r, res):
        rounds.append({"round": r + 1, "r_factor": round(res.r_factors[-1], 5), "seconds": round(time.perf_counter() - t0, 1),
                       **errors(res.angles, res.shifts)})
        print(rounds[-1], flush=True)

    params = a.parameters if a.parameters in ("auto", "all") else a.parameters.split(",")
    res = refine_alignment(data, nominal, rounds=a.rounds, iterations=a.iterations, projector=a.projector,
                           min_gain=1e-4, parameters=params, callback=cb)
    ga, gs = remove_rigid_motion(true_a, ds, res.angles, res.shifts)
    ga = remove_tilt_scale(true_a * [0, 1, 0], ga)
    per_projection = {"tilt": nominal[:, 1].round(2).tolist(), "tilt_error": (ga - true_a)[:, 1].round(3).tolist(),
                      "shift_error": np.abs(gs - ds).max(axis=1).round(3).tolist(),
                      "true_angles": true_a.round(4).tolist(), "true_shifts": ds.round(4).tolist(),
                      "refined_angles": res.angles.round(4).tolist(), "refined_shifts": res.shifts.round(4).tolist()}
    print(per_projection)
    # the final reconstruction (same iterations) with each geometry; the refined one is put in the
    # truth's frame first (a rigid motion of the whole volume is not determined by the data)
    from fastem.tomo import relative_error, resire

    ra, rs = remove_rigid_motion(true_a, ds, res.angles, res.shifts)
    final = {}
    for name, (ga_, gs_) in {"nominal": (nominal, np.zeros_like(ds)), "refined": (ra, rs), "true": (true_a, ds)}.items():
        rec = resire(data, ga_, iterations=a.iterations, projector=a.projector, shifts=gs_)
        final[name] = {"r_factor": round(float(rec.r_factor), 5), "rel_error": round(float(relative_error(rec.volume, vol)), 4)}
    print(final)
    report = {"size": n, "projections": a.proj, "angle": a.angle, "shift": a.shift, "seed": a.seed,
              "parameters": a.parameters, "projector": a.projector, 
              "nominal": errors(nominal, np.zeros_like(ds)), "rounds": rounds, "per_projection": per_projection,
              "final_reconstruction": final}
    cmd = (f"nice -n 10 .venv/bin/python bench/tomo_refine_check.py --size {n} --proj {a.proj} --rounds {a.rounds} "
           f"--iterations {a.iterations} --parameters {a.parameters} --projector {a.projector} --seed {a.seed}"
           + ("" if a.out == ROOT / "bench" / "results" / "tomo_refine_check" else f" --out {_rel(a.out)}"))
    lines = [f"# Angle/shift refinement check ({n}^3, {a.proj} tilts -60..60, tilt errors <= {a.angle:g} deg, "
             f"shifts <= {a.shift:g} px)", "", f"Command: `{cmd}`. Errors after removing the rigid motion and the "
             "tilt scale; angles (phi, theta, psi) in degrees, shifts (du, dv) in pixels.", "",
             "| geometry | R_F of the round's reconstruction | max angle error | median angle error | max shift error |",
             "| --- | --- | --- | --- | --- |",
             f"| nominal | - | {report['nominal']['angle_max']} | {report['nominal']['angle_median']} | "
             f"{report['nominal']['shift_max']} |"]
    for r in rounds:
        lines.append(f"| after round {r['round']} | {100 * r['r_factor']:.2f} % | {r['angle_max']} | {r['angle_median']} | "
                     f"{r['shift_max']} |")
    lines += ["", f"Final reconstruction ({a.iterations} iterations, `{a.projector}`) with each geometry "
              "(the refined one moved rigidly into the truth's frame): R_F / relative L2 error against the phantom", "",
              "| geometry | R_F | rel. L2 error |", "| --- | --- | --- |"]
    lines += [f"| {k} | {100 * v['r_factor']:.2f} % | {v['rel_error']:.4f} |" for k, v in final.items()]
    text = "\n".join(lines) + "\n"
    print(text)
    with atomic_output(a.out.with_suffix(".json"), overwrite=True) as tmp:
        Path(tmp).write_text(json.dumps(report, indent=1))
    with atomic_output(a.out.with_suffix(".md"), overwrite=True) as tmp:
        Path(tmp).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
