"""Reproduce the thesis' RESIRE experiment (chapter 3.3.1) on fastem's 64^3 vesicle phantom.

Run::

    .venv/bin/python bench/reproduce_tomo.py            # full: 64^3, 41 tilts, up to 400 iterations
    .venv/bin/python bench/reproduce_tomo.py --quick    # 32^3, 21 tilts, 60 iterations (the slow test)

Three experiments, all on projections from the *independent* ray-sum simulator
``fastem.data.tilt_series`` (not the reconstructions' own forward models), with Gaussian noise:

1. single axis: 41 tilts -70..+70 deg in 3.5 deg steps about y. RESIRE (``fst`` and
   ``linear``), SIRT (fastem, linear pair, positivity), ASTRA's 2D CPU SIRT slice by slice
   (positivity), FBP. Every iterative method runs exactly ``--iterations`` (400, as in the
   thesis); the relative error and the z-FSC are also recorded every 25 iterations (with
   noisy data, unregularised least squares first approaches the object, then fits the noise);
2. two tilt axes: RESIRE on the y series alone vs the y series plus the same tilts about x
   (``--side-iterations``, default 200);
3. partially blocked: a quarter of every projection masked (a different quadrant in turn);
   RESIRE with the mask vs RESIRE fed the blocked pixels as zeros vs the unblocked data
   (``--side-iterations``).

Figures of merit: R-factor (thesis eq. 3.9) of each reconstruction against the noisy data,
computed three ways -- by the method's own forward model, by the ``linear`` model, and by the
independent ray-sum simulator -- next to the noise floor (the R-factor of the true volume);
relative L1 / L2 error against the phantom; FSC shell by shell, all directions and within 30
deg of z (the missing-wedge direction). Writes ``bench/results/reproduce_tomo[-quick].json``,
``.md`` (tables) and PNGs (central slices, FSC curves, R-factor histories).
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
from fastem.tomo import (LinearProjector, ProjectionGeometry, fbp, fourier_shell_correlation, r_factor,
                         relative_error, resire, sirt)
from fastem.tomo.demo import slices_figure

RESULTS = Path(__file__).resolve().parent / "results"


def _metrics(name, volume, truth, data, geometry, own_r_factor, iterations, seconds, mask=None):
    lin = LinearProjector(geometry).project(volume.astype(np.float32))
    sim = tilt_series(volume, geometry.angles, detector_shape=geometry.detector_shape, centring="middle")
    _, fsc_all, _ = fourier_shell_correlation(volume, truth)
    _, fsc_z, _ = fourier_shell_correlation(volume, truth, direction=(0, 0, 1), cone_deg=30)
    return {
        "method": name, "iterations": int(iterations), "seconds": round(float(seconds), 2),
        "r_factor_own": float(own_r_factor) if own_r_factor is not None else None,
        "r_factor_linear": r_factor(lin, data, mask), "r_factor_raysum": r_factor(sim, data, mask),
        "rel_l1": relative_error(volume, truth, 1), "rel_l2": relative_error(volume, truth, 2),
        "fsc": [float(v) for v in fsc_all], "fsc_z": [float(v) for v in fsc_z],
        "fsc_mean": float(np.nanmean(fsc_all)), "fsc_z_mean": float(np.nanmean(fsc_z)),
    }


def _astra_sirt(data, tilts, shape, iterations):
    from fastem.bench.astra_peer import AstraSlices, available

    if not available():
        return None, 0.0
    peer = AstraSlices(shape, data.shape[2], tilts, projector="linear")
    t0 = time.perf_counter()
    vol = peer.sirt(data, iterations, positivity=True)
    peer.close()
    return vol, time.perf_counter() - t0


def single_axis(n, step, iterations, noise, seed, log):
    truth = vesicle_3d(n, seed=0)
    tilts = tilt_angles(-70.0, 70.0, step)
    data = tilt_series(truth, tilts, noise_sigma=noise, seed=seed, centring="middle")
    clean = tilt_series(truth, tilts, centring="middle")
    geo = ProjectionGeometry(truth.shape, data.shape[1:], tilts)
    rows, volumes, histories = [], {}, {}
    floor = r_factor(clean, data)
    log(f"single axis: {len(tilts)} tilts, {n}^3, noise {noise:g} of max; noise floor R_F {100 * floor:.2f} %")
    trace = {}

    def tracker(name):
        trace[name] = []

        def record(solver):
            vol = solver.state()["volume"]
            _, fz, _ = fourier_shell_correlation(vol, truth, direction=(0, 0, 1), cone_deg=30)
            trace[name].append((solver.iteration, relative_error(vol, truth), float(np.nanmean(fz))))
        return dict(iterations=iterations, progress=False, callback=record, callback_every=25)

    runs = [("RESIRE fst", lambda: resire(data, tilts, projector="fst", **tracker("RESIRE fst"))),
            ("RESIRE linear", lambda: resire(data, tilts, projector="linear", **tracker("RESIRE linear"))),
            ("SIRT (fastem)", lambda: sirt(data, tilts, positivity=True, **tracker("SIRT (fastem)"))),
            ("FBP", lambda: fbp(data, tilts))]
    for name, fn in runs:
        res = fn()
        volumes[name], histories[name] = res.volume, res.r_factor_history
        rows.append(_metrics(name, res.volume, truth, data, geo, res.r_factor, res.iterations, res.seconds))
        if trace.get(name):
            it, err, fz = min(trace[name], key=lambda t: t[1])
            rows[-1].update(trace=trace[name], best_iteration=it, best_rel_l2=err, best_fsc_z_mean=fz)
        log(f"  {name:<16} {res.iterations:4d} it  R_F own {100 * res.r_factor:6.2f} %  "
            f"rel L2 {100 * rows[-1]['rel_l2']:6.2f} %  {res.seconds:6.1f} s")
    sirt_iterations = next(r["iterations"] for r in rows if r["method"] == "SIRT (fastem)")
    vol, secs = _astra_sirt(data, tilts, truth.shape, sirt_iterations)
    if vol is not None:
        volumes["SIRT (ASTRA 2D CPU)"] = vol
        rows.append(_metrics("SIRT (ASTRA 2D CPU)", vol, truth, data, geo, None, sirt_iterations, secs))
        log(f"  {'SIRT (ASTRA)':<16} {sirt_iterations:4d} it  rel L2 {100 * rows[-1]['rel_l2']:6.2f} %  {secs:6.1f} s")
    else:
        log("  astra-toolbox not installed: ASTRA SIRT skipped")
    truth_row = _metrics("true volume", truth, truth, data, geo, None, 0, 0.0)
    return {"tilts": len(tilts), "size": n, "noise_sigma": noise, "noise_floor_r_factor": floor,
            "truth": truth_row, "rows": rows}, volumes, histories, truth


def two_axis(n, step, iterations, noise, seed, log):
    truth = vesicle_3d(n, seed=0)
    tilts = tilt_angles(-60.0, 60.0, step)
    single = np.stack([np.zeros_like(tilts), tilts, np.zeros_like(tilts)], axis=1)
    second = np.stack([np.zeros_like(tilts), np.zeros_like(tilts), tilts], axis=1)
    both = np.concatenate([single, second])
    data = tilt_series(truth, both, noise_sigma=noise, seed=seed, centring="middle")
    out = []
    for name, ang, d in (("y axis only", single, data[: len(tilts)]), ("y and x axes", both, data)):
        res = resire(d, ang, projector="linear", iterations=iterations, progress=False)
        geo = ProjectionGeometry(truth.shape, d.shape[1:], ang)
        out.append(_metrics(f"RESIRE linear, {name}", res.volume, truth, d, geo, res.r_factor, res.iterations,
                            res.seconds))
        log(f"  two-axis: {name:<14} {len(ang):3d} projections  rel L2 {100 * out[-1]['rel_l2']:6.2f} %  "
            f"FSC z {out[-1]['fsc_z_mean']:.3f}")
    return {"tilts_per_axis": len(tilts), "rows": out}


def quarter_masked(n, step, iterations, noise, seed, log):
    truth = vesicle_3d(n, seed=0)
    tilts = tilt_angles(-70.0, 70.0, step)
    data = tilt_series(truth, tilts, noise_sigma=noise, seed=seed, centring="middle")
    _, rows, cols = data.shape
    mask = np.ones(data.shape, dtype=bool)
    for k in range(len(tilts)):  # a different quadrant of each projection in turn
        r0 = 0 if k % 4 < 2 else rows // 2
        c0 = 0 if k % 2 == 0 else cols // 2
        mask[k, r0:r0 + rows // 2, c0:c0 + cols // 2] = False
    blocked = np.where(mask, data, 0.0).astype(np.float32)
    geo = ProjectionGeometry(truth.shape, data.shape[1:], tilts)
    out = []
    for name, d, m in (("all data", data, None), ("quarter masked, mask given", blocked, mask),
                       ("quarter blocked, read as zeros", blocked, None)):
        res = resire(d, tilts, projector="linear", mask=m, iterations=iterations, progress=False)
        out.append(_metrics(f"RESIRE linear, {name}", res.volume, truth, data, geo, res.r_factor, res.iterations,
                            res.seconds, mask=mask))
        log(f"  masked: {name:<32} rel L2 {100 * out[-1]['rel_l2']:6.2f} %  R_F (measured px) "
            f"{100 * out[-1]['r_factor_linear']:6.2f} %")
    return {"rows": out}


def _table(rows) -> str:
    head = ("| method | iterations | R_F own model | R_F linear | R_F ray-sum | rel. L1 | rel. L2 | mean FSC | "
            "mean FSC (z, 30 deg) | time (s) |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        own = "-" if r["r_factor_own"] is None else f"{100 * r['r_factor_own']:.2f} %"
        lines.append(f"| {r['method']} | {r['iterations']} | {own} | {100 * r['r_factor_linear']:.2f} % | "
                     f"{100 * r['r_factor_raysum']:.2f} % | {100 * r['rel_l1']:.1f} % | {100 * r['rel_l2']:.1f} % | "
                     f"{r['fsc_mean']:.3f} | {r['fsc_z_mean']:.3f} | {r['seconds']:.1f} |")
    return "\n".join(lines)


def _plots(prefix: Path, report, volumes, histories, truth) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    slices_figure(prefix.with_name(prefix.name + "-slices.png"), [("phantom", truth)] + list(volumes.items()))
    n = report["single_axis"]["size"]
    shells = len(report["single_axis"]["rows"][0]["fsc"])
    freq = (np.arange(shells) + 0.5) * 0.5 / shells
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for r in report["single_axis"]["rows"]:
        axes[0].plot(freq, r["fsc"], label=r["method"])
        axes[1].plot(freq, r["fsc_z"], label=r["method"])
    for ax, title in zip(axes, ("FSC, all directions", "FSC within 30 deg of z (missing wedge)")):
        ax.set_xlabel("spatial frequency (cycles / voxel)")
        ax.set_ylim(-0.1, 1.02)
        ax.set_title(f"{title}, {n}^3 vesicle", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(prefix.with_name(prefix.name + "-fsc.png"), dpi=90)
    plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, h in histories.items():
        if len(h):
            axes[0].semilogy(100 * np.asarray(h), label=name)
    axes[0].axhline(100 * report["single_axis"]["noise_floor_r_factor"], color="k", ls=":", label="noise floor")
    axes[0].set_xlabel("iteration")
    axes[0].set_ylabel("R_F own model (%)")
    axes[0].legend(fontsize=8)
    for r in report["single_axis"]["rows"]:
        if r.get("trace"):
            t = np.asarray(r["trace"])
            axes[1].plot(t[:, 0], 100 * t[:, 1], label=r["method"])
    axes[1].set_xlabel("iteration")
    axes[1].set_ylabel("relative L2 error (%)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(prefix.with_name(prefix.name + "-r_factor.png"), dpi=90)
    plt.close(fig)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="32^3, 21 tilts, 60 iterations")
    ap.add_argument("--iterations", type=int, default=None, help="iterations (default 400, quick 60)")
    ap.add_argument("--side-iterations", type=int, default=None,
                    help="iterations of the two-axis and masked cases (default 200, quick 60)")
    ap.add_argument("--noise", type=float, default=0.05, help="Gaussian noise sigma, fraction of the max (0.05)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    n, step = (32, 7.0) if args.quick else (64, 3.5)
    iterations = args.iterations or (60 if args.quick else 400)
    side = args.side_iterations or (60 if args.quick else 200)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "reproduce_tomo-quick" if args.quick else "reproduce_tomo"
    if args.noise != 0.05:
        stem += f"-noise{args.noise:g}"
    if iterations != (60 if args.quick else 400) or side != (60 if args.quick else 200):
        stem += f"-it{iterations}-{side}"  # a reduced run never replaces the full tables
    prefix = args.out / stem
    log = print
    t0 = time.perf_counter()
    main_report, volumes, histories, truth = single_axis(n, step, iterations, args.noise, args.seed, log)
    report = {"command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
              "single_axis": main_report,
              "two_axis": two_axis(n, 2 * step, side, args.noise, args.seed, log),
              "quarter_masked": quarter_masked(n, step, side, args.noise, args.seed, log)}
    report["seconds"] = round(time.perf_counter() - t0, 1)
    rows = main_report["rows"]
    by = {r["method"]: r for r in rows}
    report["ordering"] = {
        "r_factor_raysum": [r["method"] for r in sorted(rows, key=lambda r: r["r_factor_raysum"])],
        "rel_l2": [r["method"] for r in sorted(rows, key=lambda r: r["rel_l2"])],
        "fsc_z_mean": [r["method"] for r in sorted(rows, key=lambda r: -r["fsc_z_mean"])],
    }
    prefix.with_name(prefix.name + ".json").write_text(json.dumps(report, indent=1))
    kind = "quick" if args.quick else "full"
    if "-it" in stem:
        kind += f", reduced: {iterations} / {side} iterations"
    md = [f"# RESIRE reproduction ({kind})", "",
          f"Command: `.venv/bin/python bench/reproduce_tomo.py{' --quick' if args.quick else ''}"
          f"{'' if args.noise == 0.05 else f' --noise {args.noise:g}'}"
          f"{'' if args.iterations is None else f' --iterations {args.iterations}'}"
          f"{'' if args.side_iterations is None else f' --side-iterations {args.side_iterations}'}`", "",
          f"## Single axis: {main_report['tilts']} tilts, {n}^3 vesicle, noise {args.noise:g} of max "
          f"(noise floor R_F {100 * main_report['noise_floor_r_factor']:.2f} %)", "",
          _table(rows + [main_report["truth"]]), "",
          "Lowest relative L2 error along the way (recorded every 25 iterations):", "",
          "\n".join(f"- {r['method']}: {100 * r['best_rel_l2']:.1f} % at iteration {r['best_iteration']} "
                    f"(mean z-FSC {r['best_fsc_z_mean']:.3f})" for r in rows if "best_rel_l2" in r), "",
          "## Two tilt axes", "", _table(report["two_axis"]["rows"]), "",
          "## A quarter of every projection blocked (R_F over measured pixels)", "",
          _table(report["quarter_masked"]["rows"]), ""]
    prefix.with_name(prefix.name + ".md").write_text("\n".join(md))
    _plots(prefix, report, volumes, histories, truth)
    log(f"wrote {prefix}.json/.md/-slices.png/-fsc.png/-r_factor.png in {report['seconds']:.0f} s")
    if "RESIRE fst" in by and "FBP" in by:
        log("R_F (ray-sum) order: " + " < ".join(report["ordering"]["r_factor_raysum"]))
    return report


if __name__ == "__main__":
    main()
