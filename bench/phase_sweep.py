"""Regime sweep of the GPS consistency experiment: where does the thesis ordering hold, and why?

    .venv/bin/python bench/reproduce_phase.py --sweep [--runs 20] [--iterations 1000]
        [--noise 0.03,0.06,0.12] [--beamstop 2,4,8] [--supports tight,loose,auto] [--tag ...]

Object: ``fastem.data.vesicle_2d(128, seed=0)``. For every combination of

* noise: ``R_noise`` 3, 6, 12 % (Poisson + Gaussian read noise 1 photon, flux solved for the target;
  ``0``: 1e12 photons and no read noise),
* missing centre: beamstop radius 2, 4, 8 px,
* support: ``tight`` = the true support dilated by 1 px; ``loose`` = dilated by 5 px;
  ``auto`` = :func:`fastem.phase.autocorrelation_support` from the data,

HIO, OSS, GPS-R, GPS-F (spec sigma schedule ``0:0.01,0.4:0.1,0.7:1``) and GPS-R, GPS-F with the
thesis' schedule (``0:0.01,0.4:0.1``: 0.01 for 400 of 1000 iterations, then 0.1; thesis 2.4.2.1)
run from the SAME ``--runs`` random starts (seed 0).

Recorded per (condition, algorithm): R_F and R_real (translation, twin and scale removed) of
every run; best / mean of the best 5 (by R_F) / of the mean of the best 5; and a frequency
analysis of the error ``e = c u - u_true`` of the mean of the best 5 (aligned, scale ``c`` fitted):

* ``band_energy``: the fraction of ``||e||^2`` (Parseval: of ``sum |F e|^2``) in the rings
  ``|q| <= bs`` (the missing centre), ``(bs, 2 bs]``, ``(2 bs, 8]``, ``(8, 16]``, ``(16, 32]``,
  ``> 32`` Fourier pixels (Nyquist = 64);
* ``rreal_without``: ``R_real`` of ``u_true + e`` with the part of ``e`` at ``|q| <= Q`` removed,
  for ``Q = bs, 2 bs, 8, 16, 32`` -- how much of ``R_real`` the low frequencies carry;
* ``fit``: for the best run's image ``u``, ``sum | |F u| - b |`` against the noisy data ``b``
  and against the noise-free ``b_true``, over known pixels with ``|q| <= 32`` and ``> 32``,
  each divided by ``sum b_true`` of the band: a reconstruction that fits the noise has
  ``R(b) < R(b_true)`` at high ``q``. The truth's own values (``R(b)`` = R_noise of the band) are
  recorded as ``truth_fit``.

Writes ``bench/results/phase_sweep{tag}.json`` and ``.md`` (``python bench/phase_sweep.py JSON``
re-renders the tables of a JSON). Bands with an empty ring (e.g. ``(8, 8]``) in JSON written
before the band edges were made unique carry 0 and are skipped in the tables.
"""

from __future__ import annotations

import os as _os

from fastem.config import use_passive_openmp as _use_passive_openmp  # noqa: E402
_use_passive_openmp()  # as the CLI does: PASSIVE with a short spin (bench/results/openmp_wait_policy.md)

import json
import time
from itertools import product
from pathlib import Path

import numpy as np

THESIS_SIGMA = "0:0.01,0.4:0.1"
SPEC_SIGMA = "0:0.01,0.4:0.1,0.7:1"
#: (label, algorithm, sigma schedule)
CONFIGS = (("HIO", "hio", SPEC_SIGMA), ("OSS", "oss", SPEC_SIGMA), ("GPS-R", "gps-r", SPEC_SIGMA),
           ("GPS-F", "gps-f", SPEC_SIGMA), ("GPS-R thesis-sigma", "gps-r", THESIS_SIGMA),
           ("GPS-F thesis-sigma", "gps-f", THESIS_SIGMA))
HIGH_Q = 32.0


def radial_q(shape) -> np.ndarray:
    """``|q|`` in Fourier pixels, zero frequency at index 0 (FFT layout)."""
    grids = np.meshgrid(*[np.fft.fftfreq(n) * n for n in shape], indexing="ij")
    return np.sqrt(sum(g**2 for g in grids))


def band_edges(beamstop: float) -> list[float]:
    """Upper edges of the rings: the beamstop radius, twice it, 8, 16, 32 px (sorted, unique;
    2 and 4 px without a beamstop)."""
    bs = float(beamstop) if beamstop > 0 else 2.0
    return sorted({bs, 2.0 * bs, 8.0, 16.0, HIGH_Q})


def error_analysis(mean_image, best_image, truth, b, b_true, known, beamstop) -> dict:
    """Frequency analysis of the reconstruction error (see the module docstring)."""
    from fastem.phase import align

    u = align(mean_image, truth)[0]
    u = u * float(np.sum(u * truth) / np.sum(u * u))
    e = u - truth
    q = radial_q(e.shape)
    spec = np.fft.fftn(e)
    power = np.abs(spec) ** 2
    total = float(power.sum())
    edges = [0.0] + band_edges(beamstop)
    labels, energy = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (q <= hi) if lo == 0.0 else (q > lo) & (q <= hi)
        labels.append(f"<= {hi:g}" if lo == 0.0 else f"({lo:g}, {hi:g}]")
        energy.append(float(power[sel].sum() / total))
    labels.append(f"> {HIGH_Q:g}")
    energy.append(float(power[q > HIGH_Q].sum() / total))
    # relative error per ring: ||P_B e|| / ||P_B u_true|| (1 = no information in that ring)
    truth_power = np.abs(np.fft.fftn(truth)) ** 2
    rel = []
    for lo, hi in zip(edges[:-1] + [HIGH_Q], edges[1:] + [np.inf]):
        sel = (q <= hi) if lo == 0.0 else (q > lo) & (q <= hi)
        rel.append(float(np.sqrt(power[sel].sum() / max(truth_power[sel].sum(), 1e-300))))
    denom = float(truth.sum())
    without = {}
    for cut in band_edges(beamstop):
        e_hi = np.fft.ifftn(np.where(q <= cut, 0, spec)).real
        without[f"{cut:g}"] = float(np.abs(e_hi).sum() / denom)
    # Fourier fit of the best run's image against the noisy and the noise-free magnitudes
    mag = np.abs(np.fft.fftshift(np.fft.fftn(best_image)))
    mag_truth = np.abs(np.fft.fftshift(np.fft.fftn(truth)))
    qc = np.fft.fftshift(q)
    fit, truth_fit = {}, {}
    for name, sel in (("low", known & (qc <= HIGH_Q)), ("high", known & (qc > HIGH_Q))):
        bt = float(b_true[sel].sum())
        fit[name] = {"vs_data": float(np.abs(mag - b)[sel].sum() / bt),
                     "vs_true": float(np.abs(mag - b_true)[sel].sum() / bt)}
        truth_fit[name] = {"vs_data": float(np.abs(mag_truth - b)[sel].sum() / bt)}
    return {"band_labels": labels, "band_energy": energy, "band_rel_error": rel,
            "error_l2": float(np.sqrt(total / np.sum(truth_power))), "rreal_without": without, "fit": fit,
            "truth_fit": truth_fit}


def oracle_rreal(cdi) -> float:
    """R_real of the measured magnitudes with the TRUE phases (the truth's magnitudes in the missing
    centre), projected onto support and positivity: what perfect phasing of these noisy data gives."""
    from fastem.phase import r_real

    spec = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(cdi.object)))
    mag = np.where(cdi.known, np.sqrt(cdi.intensities), cdi.b_true)
    u = np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(mag * np.exp(1j * np.angle(spec))))).real
    u = np.where(cdi.support & (u > 0), u, 0.0)
    return float(r_real(u, cdi.object))


def make_support(kind: str, cdi) -> np.ndarray:
    from scipy import ndimage

    from fastem.phase import autocorrelation_support

    if kind == "tight":
        return cdi.support
    if kind == "loose":
        return ndimage.binary_dilation(cdi.object > 0, iterations=5)
    if kind == "auto":
        return autocorrelation_support(cdi.intensities, cdi.known)
    raise SystemExit(f"unknown support {kind!r}; choose tight, loose or auto")


def run_condition(obj, noise: float, beamstop: float, support_kind: str, runs: int, iterations: int, seed: int,
                  configs=CONFIGS, keep: int = 5) -> dict:
    from fastem.data import cdi_intensities
    from fastem.phase import PhaseConfig, initial_phases, keep_best, make_solver, prepare_problem, r_real

    if noise > 0:
        cdi = cdi_intensities(obj, r_noise=noise, read_noise=1.0, beamstop_radius=beamstop, seed=0)
    else:  # (practically) noise-free: 1e12 photons, no read noise
        cdi = cdi_intensities(obj, flux=1e12, read_noise=0.0, beamstop_radius=beamstop, seed=0)
    support = make_support(support_kind, cdi)
    missed = int(np.sum((cdi.object > 0) & ~support))
    prob = prepare_problem(cdi.intensities, cdi.known, support)
    b = np.sqrt(cdi.intensities)
    out = {"noise": noise, "r_noise": cdi.r_noise, "oracle_rreal": oracle_rreal(cdi), "beamstop": beamstop,
           "support": support_kind,
           "support_pixels": int(support.sum()), "object_pixels": int(np.sum(cdi.object > 0)),
           "object_pixels_outside_support": missed, "algorithms": {}}
    phases = initial_phases(seed, range(runs), prob.shape)
    for label, alg, sigma in configs:
        t0 = time.perf_counter()
        cfg = PhaseConfig(algorithm=alg, iterations=iterations, sigma_schedule=sigma)
        sol = make_solver(prob, runs, cfg).initialise(phases).run()
        images = sol.best_images_centred()
        rf = sol.best_rf.copy()
        rr = np.array([r_real(im, cdi.object) for im in images])
        kept, idx, mean, var = keep_best(images, rf, keep)
        res = {"algorithm": alg, "sigma_schedule": sigma, "seconds": time.perf_counter() - t0,
               "rf_all": rf.tolist(), "rreal_all": rr.tolist(), "best5": idx.tolist(),
               "rf_best": float(rf[idx[0]]), "rf_mean5": float(rf[idx].mean()),
               "rreal_best": float(rr[idx[0]]), "rreal_mean5": float(rr[idx].mean()),
               "rreal_var5": float(rr[idx].var()), "rreal_of_mean5": float(r_real(mean, cdi.object)),
               "rreal_median": float(np.median(rr)), "rreal_min": float(rr.min())}
        res.update(error_analysis(mean, kept[0], cdi.object, b, cdi.b_true, cdi.known, beamstop))
        out["algorithms"][label] = res
        print(f"  R_noise {100 * noise:4.1f} % bs {beamstop:g} {support_kind:5s} {label:18s} "
              f"{res['seconds']:5.1f} s  R_F {100 * res['rf_mean5']:.2f} %  R_real best5 "
              f"{100 * res['rreal_mean5']:.2f} %  of mean {100 * res['rreal_of_mean5']:.2f} %  median "
              f"{100 * res['rreal_median']:.2f} %", flush=True)
    return out


def ordering(cond: dict, key: str = "rreal_mean5", gps=("GPS-R", "GPS-F")) -> str:
    """``"A < B < ..."`` of HIO, OSS and the given GPS labels by ``key``."""
    algs = cond["algorithms"]
    names = [n for n in ("HIO", "OSS") + tuple(gps) if n in algs]
    names.sort(key=lambda n: algs[n][key])
    return " < ".join(n for n in names)


def thesis_holds(cond: dict, key: str = "rreal_mean5", gps=("GPS-R", "GPS-F")) -> bool:
    """GPS-F <= GPS-R < OSS < HIO (in ``key``)."""
    a = cond["algorithms"]
    f, r = a[gps[1]][key], a[gps[0]][key]
    return f <= r < a["OSS"][key] < a["HIO"][key]


def markdown(payload: dict) -> str:
    conds = payload["conditions"]
    labels = [c[0] for c in CONFIGS if c[0] in conds[0]["algorithms"]]
    lines = [f"## GPS regime sweep ({payload['runs']} runs x {payload['iterations']} iterations, seed "
             f"{payload['seed']}, vesicle_2d(128, seed=0))", "",
             f"Command: `{payload['command']}`; {payload['seconds'] / 60:.0f} min on {payload['machine']}.", "",
             "### R_real, mean of the best 5 runs by R_F (%)", "",
             "| R_noise | beamstop | support | " + " | ".join(labels) + " | order (spec sigma) | thesis order? |",
             "|---" * (len(labels) + 5) + "|"]
    for c in conds:
        a = c["algorithms"]
        lines.append(f"| {100 * c['noise']:.0f} % | {c['beamstop']:g} | {c['support']} | "
                     + " | ".join(f"{100 * a[l]['rreal_mean5']:.2f}" for l in labels)
                     + f" | {ordering(c)} | {'yes' if thesis_holds(c) else 'no'} |")
    lines += ["", "### R_F, mean of the best 5 (%)", "",
              "| R_noise | beamstop | support | " + " | ".join(labels) + " |", "|---" * (len(labels) + 3) + "|"]
    for c in conds:
        a = c["algorithms"]
        lines.append(f"| {100 * c['noise']:.0f} % | {c['beamstop']:g} | {c['support']} | "
                     + " | ".join(f"{100 * a[l]['rf_mean5']:.2f}" for l in labels) + " |")
    lines += ["", "### Where the error sits: R_real of the mean of the best 5, and without its part at "
              "|q| <= beamstop radius / <= 8 px (%)", "",
              "| R_noise | beamstop | support | " + " | ".join(labels) + " |", "|---" * (len(labels) + 3) + "|"]
    for c in conds:
        a = c["algorithms"]
        cells = []
        bs_key = f"{c['beamstop']:g}" if c["beamstop"] > 0 else "2"
        for l in labels:
            w = a[l]["rreal_without"]
            cells.append(f"{100 * a[l]['rreal_of_mean5']:.1f} / {100 * w[bs_key]:.1f} / {100 * w['8']:.1f}")
        lines.append(f"| {100 * c['noise']:.0f} % | {c['beamstop']:g} | {c['support']} | " + " | ".join(cells) + " |")
    lines += ["", f"### Noise fitting at high q (|q| > {HIGH_Q:g} px, best run): "
              "sum| |F u| - b | / sum b_true against the data / against the noise-free b_true (%)", "",
              "| R_noise | beamstop | support | truth vs data | " + " | ".join(labels) + " |",
              "|---" * (len(labels) + 4) + "|"]
    for c in conds:
        a = c["algorithms"]
        truth = a[labels[0]]["truth_fit"]["high"]["vs_data"]
        lines.append(f"| {100 * c['noise']:.0f} % | {c['beamstop']:g} | {c['support']} | {100 * truth:.1f} | "
                     + " | ".join(f"{100 * a[l]['fit']['high']['vs_data']:.1f} / "
                                  f"{100 * a[l]['fit']['high']['vs_true']:.1f}" for l in labels) + " |")
    lines += band_energy_table(conds, labels)
    return "\n".join(lines)


def band_energy_table(conds: list, labels: list) -> list[str]:
    """Markdown rows: the share of ||e||^2 below/above the missing centre, per algorithm."""
    lines = ["", "### Error energy at |q| <= beamstop radius (the missing centre) / <= 16 px / > 32 px (% of "
             "||e||^2 of the mean of the best 5)", "",
             "| R_noise | beamstop | support | " + " | ".join(labels) + " |", "|---" * (len(labels) + 3) + "|"]
    for c in conds:
        a = c["algorithms"]
        cells = []
        for l in labels:
            q = np.asarray(_band_upper(a[l]["band_labels"]))
            e = np.asarray(a[l]["band_energy"])
            inside = float(e[q <= max(c["beamstop"], 0)].sum()) if c["beamstop"] > 0 else 0.0
            low = float(e[q <= 16].sum())
            high = float(e[np.isinf(q)].sum())
            cells.append(f"{100 * inside:.0f} / {100 * low:.0f} / {100 * high:.0f}")
        lines.append(f"| {100 * c['noise']:.0f} % | {c['beamstop']:g} | {c['support']} | " + " | ".join(cells) + " |")
    return lines


def _band_upper(labels) -> list[float]:
    """Upper edge of each band label ('<= 2', '(2, 4]', '> 32' -> inf); empty bands repeat an edge."""
    out = []
    for lab in labels:
        lab = lab.strip()
        if lab.startswith(">"):
            out.append(np.inf)
        else:
            out.append(float(lab.rstrip("]").split(",")[-1].replace("<=", "").strip()))
    return out


def render(json_path: Path) -> str:
    """Markdown of a sweep JSON (rewrites the .md next to it)."""
    payload = json.loads(Path(json_path).read_text())
    md = markdown(payload)
    Path(json_path).with_suffix(".md").write_text(md + "\n")
    return md


def main(args, command: str, out_dir: Path) -> int:
    from fastem.benchmark import machine_info
    from fastem.data import vesicle_2d

    obj = vesicle_2d(128, seed=0)
    noises = [float(v) for v in args.noise.split(",")]
    stops = [float(v) for v in args.beamstop.split(",")]
    supports = [s.strip() for s in args.supports.split(",")]
    t0 = time.perf_counter()
    conditions = []
    stem = f"phase_sweep{args.tag}"
    info = machine_info()
    for noise, stop, supp in product(noises, stops, supports):
        conditions.append(run_condition(obj, noise, stop, supp, args.runs, args.iterations, args.seed))
        payload = {"command": command, "runs": args.runs, "iterations": args.iterations, "seed": args.seed,
                   "machine": f"{info['cpu_model']} ({info['cores_available']} cores)", "conditions": conditions,
                   "seconds": time.perf_counter() - t0}
        (out_dir / f"{stem}.json").write_text(json.dumps(payload))  # after every condition: partial results
    (out_dir / f"{stem}.md").write_text(markdown(payload) + "\n")
    print(markdown(payload))
    print(f"written: {out_dir / stem}.json, .md")
    return 0


if __name__ == "__main__":
    import sys

    print(render(Path(sys.argv[1])))
