"""Regularised tomography (issue 20) side by side: fastem regularised vs RESIRE vs SIRT vs svmbir.

Run (niced, tiny sizes, a few minutes on 2 cores)::

    nice -n 10 .venv/bin/python bench/tomo_regularised.py            # 32^3, 5 % noise, 3 seeds
    nice -n 10 .venv/bin/python bench/tomo_regularised.py --n 24 --noise 0.02

The case: ``fastem.data.vesicle_3d(n)`` (even ``n``; ``--phantom shepp-logan``:
``fastem.data.shepp_logan_3d(n)``; ``--phantom cell``: ``fastem.data.cell_3d(n)``, voxel-sized
detail), single-axis tilts -60..+60 deg (``--max-tilt``) in ``--step``
degree steps (a 60 deg missing wedge), simulated by the independent ray-sum projector
``fastem.data.tilt_series`` (geometric-middle centring, ASTRA / thesis angle sign), Gaussian noise
of ``--noise`` x the largest projection value, one seed per noise draw. Every method sees the
same data, 2 threads each (Numba's and svmbir's ``num_threads``):

* fastem ``regularised`` with ``tv``, ``itv`` (the default) and ``qggmrf`` priors at ``prior_weight="auto"`` (R-free),
  ``--iterations`` FISTA iterations after the automatic search (its time included);
* fastem RESIRE (``fst``, positivity) and SIRT (``linear``, positivity), ``--iterations`` each;
* svmbir 0.5.0 ``recon`` at its defaults (qGGMRF, ``snr_db=30``, positivity, its stopping rule)
  when importable, except ``roi_radius`` = the detector width so that it reconstructs the whole
  square slice as fastem does (its default circle cut the phantom at 16^3: noise-free error 0.80).
  Its axis order and angle sign are pinned first by a noise-free run: every transpose/flip of its
  (slice, row, col) output and both angle signs are tried and the mapping with the lowest error
  is used for every noisy run (reported in the results). It runs ``--svmbir-repeats`` times
  (default 3) on each seed's series: with 2 threads its ICD is not deterministic, most of all on
  the blocked case, where the garbage behind its zero weights makes runs on identical data differ
  visibly; its row is the mean over all runs and the table's note gives their range.

* GENFIRE 1.1.11 (``--genfire-env DIR``, an environment made by ``bench/peers/make_genfire_env.sh``;
  it needs numpy < 1.24, so it runs as a subprocess, ``bench/peers/genfire_run.py``) at its
  defaults (oversampling 3, FFT gridding, resolution extension/suppression, R-free, positivity)
  for ``--iterations`` iterations, its FFTs on the same 2 threads. Its conventions are pinned
  first as svmbir's: both angle signs, the images as given or transposed, the projections as
  given or shifted by half a pixel either way (GENFIRE's rotation centre is the FFT centre
  ``n / 2``, the series' is the geometric middle ``(n - 1) / 2``; its volume is shifted back by
  the same amount on all three axes), every transpose/flip of its output; all with ``--pin-iterations`` iterations on the noise-free series. Its time is that of
  ``genfire.main.main`` (gridding included), not the subprocess start.

Figures: relative L2 error against the phantom (mean and spread over the seeds), the thesis'
projection R-factor ``R_F = (1/n) sum_k sum |P_k(O) - b_k| / sum |b_k|`` (eq. 3.9) of every
method's volume against the noisy series it was given (``P_k``: the ray-sum projector that made
the series, so every method is judged by the same model), and wall time. fastem's Numba kernels are
compiled on a tiny case before the first timed run (``warm_up``), so no time includes compilation.
Writes ``bench/results/tomo_regularised[-<tag>].json`` and ``.md``.
"""

from __future__ import annotations

import os as _os

from fastem.config import use_passive_openmp as _use_passive_openmp  # noqa: E402
_use_passive_openmp()  # as the CLI does: PASSIVE with a short spin (bench/results/openmp_wait_policy.md)
_os.environ.setdefault("NUMBA_NUM_THREADS", "2")

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

from fastem.data import cell_3d, shepp_logan_3d, tilt_angles, tilt_series, vesicle_3d
from fastem.tomo import relative_error, resire, sirt
from fastem.tomo.regularised import regularised

RESULTS = Path(__file__).resolve().parent / "results"
THREADS = 2


PHANTOMS = {"vesicle": lambda n: vesicle_3d(n, seed=0), "shepp-logan": lambda n: shepp_logan_3d(n),
            "cell": lambda n: cell_3d(n, seed=0)}


def make_case(n: int, seed: int, noise: float, step: float, max_tilt: float = 60.0, phantom: str = "vesicle"):
    truth = PHANTOMS[phantom](n).astype(np.float64)
    tilts = tilt_angles(-max_tilt, max_tilt, step)
    clean = tilt_series(truth, -tilts, centring="middle")
    rng = np.random.default_rng(seed)
    sigma = noise * float(np.abs(clean).max())
    return truth, tilts, clean, (clean + rng.normal(0.0, sigma, clean.shape)).astype(np.float32), sigma


def block_projections(data, fraction: float, seed: int, garbage: float = 50.0):
    """Partially blocked projections: in every projection a band of ``fraction`` of the detector
    columns, at a random place (a grid bar or an edge), holds garbage (``garbage`` x the data's
    maximum) and has weight 0. Returns ``(blocked data, weights)``; each method is told the
    weights (fastem ``weights``/``mask``, svmbir ``weights``, ASTRA ``SinogramMaskId``)."""
    rng = np.random.default_rng(1000 + seed)
    n, _, cols = data.shape
    width = max(1, int(round(fraction * cols)))
    weights = np.ones(data.shape, np.float32)
    for k in range(n):
        c0 = int(rng.integers(0, cols - width + 1))
        weights[k, :, c0:c0 + width] = 0.0
    bad = garbage * float(np.abs(data).max())
    return np.where(weights > 0, data, bad).astype(np.float32), weights


# ---- svmbir ------------------------------------------------------------------------------------------
def _svmbir():
    try:
        import svmbir
    except ImportError as exc:
        return None, f"svmbir not importable: {exc}"
    return svmbir, None


def _svmbir_recon(svmbir, data, tilts, sign, **kw):
    """svmbir's (slices, rows, cols) volume of fastem projections (n, rows=y, cols)."""
    return svmbir.recon(np.ascontiguousarray(data, dtype=np.float32), sign * np.deg2rad(tilts),
                        num_threads=THREADS, verbose=0, roi_radius=float(data.shape[2]), **kw)


MAPPINGS = [(perm, flips) for perm in itertools.permutations(range(3))
            for flips in itertools.product((False, True), repeat=3)]


def _apply(vol, perm, flips):
    v = np.transpose(vol, perm)
    for axis, f in enumerate(flips):
        if f:
            v = np.flip(v, axis)
    return v


def _best_mapping(vol, truth):
    """``(error, perm, flips)``: the transpose/flip of ``vol`` closest to ``truth``."""
    return min((relative_error(_apply(vol, perm, flips), truth), perm, flips) for perm, flips in MAPPINGS
               if _apply(vol, perm, flips).shape == truth.shape)


def pin_svmbir(svmbir, truth, tilts, clean):
    """The (sign, perm, flips) mapping svmbir output -> fastem (z, y, x) with the lowest noise-free error."""
    trials = []
    for sign in (1.0, -1.0):
        e, perm, flips = _best_mapping(_svmbir_recon(svmbir, clean, tilts, sign), truth)
        trials.append((e, sign, perm, flips))
    return min(trials, key=lambda t: t[0])


# ---- GENFIRE (a subprocess in its own environment) ----------------------------------------------------
GENFIRE_RUNNER = Path(__file__).resolve().parent / "peers" / "genfire_run.py"


def _half_pixel_shift(data, shift: float):
    """Every projection (n_proj, rows, cols) shifted by ``shift`` pixels along rows and columns
    (a Fourier shift, exact for band-limited images)."""
    if shift == 0:
        return np.asarray(data, np.float32)
    from scipy import ndimage

    f = np.fft.fft2(np.asarray(data, np.float64), axes=(1, 2))
    out = np.empty(data.shape, np.float32)
    for k in range(data.shape[0]):
        out[k] = np.fft.ifft2(ndimage.fourier_shift(f[k], (shift, shift))).real
    return out


def _shift_volume(vol, shift: float):
    """``vol`` shifted by ``shift`` voxels along all three axes (a Fourier shift)."""
    if shift == 0:
        return vol
    from scipy import ndimage

    return np.fft.ifftn(ndimage.fourier_shift(np.fft.fftn(np.asarray(vol, np.float64)), (shift,) * 3)).real


def _genfire_recon(env, data, tilts, sign, transpose, shift, iterations):
    """GENFIRE's output volume and its own wall time (s). With ``shift``, the projections are
    shifted by ``shift`` pixels before GENFIRE sees them and its volume by ``-shift`` voxels in
    every axis afterwards (GENFIRE then rotates about a centre ``shift`` away from the series',
    and the volume is put back on the phantom's grid)."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(src, projections=_half_pixel_shift(data, shift), tilts=np.asarray(tilts, float), sign=float(sign),
                 transpose=int(transpose), iterations=int(iterations), oversampling=3, rfree=1, threads=THREADS)
        proc = subprocess.run([str(Path(env) / "bin" / "python"), str(GENFIRE_RUNNER), str(src), str(dst)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"GENFIRE failed ({proc.returncode}): {proc.stderr[-2000:]}")
        out = np.load(dst)
        return _shift_volume(out["volume"], -shift), float(out["seconds"])


def _astra_sirt(data, tilts, sign, iterations, shape, mask=None):
    """ASTRA 2.5's CPU SIRT (linear projector, min 0), slice by slice (``bench/astra_peer.py``)."""
    from fastem.bench.astra_peer import AstraSlices

    geo = AstraSlices(shape, data.shape[2], sign * np.asarray(tilts, float))
    try:
        return geo.sirt(data, iterations, positivity=True, mask=mask)
    finally:
        geo.close()


def pin_astra(truth, tilts, clean, iterations):
    """``(error, sign, perm, flips)``: ASTRA's angle sign and output mapping with the lowest
    noise-free error. The pair is found only up to a mirror (the opposite sign with x flipped fits
    as well), so either may come back; both give the same volume."""
    trials = []
    for sign in (1.0, -1.0):
        e, perm, flips = _best_mapping(_astra_sirt(clean, tilts, sign, iterations, truth.shape), truth)
        trials.append((e, sign, perm, flips))
    return min(trials, key=lambda t: t[0])


def pin_genfire(env, truth, tilts, clean, iterations):
    """``(error, sign, transpose, shift, perm, flips)`` with the lowest noise-free error."""
    trials = []
    for sign, transpose, shift in itertools.product((1.0, -1.0), (0, 1), (0.0, 0.5, -0.5)):
        e, perm, flips = _best_mapping(_genfire_recon(env, clean, tilts, sign, transpose, shift, iterations)[0], truth)
        trials.append((e, sign, transpose, shift, perm, flips))
    return min(trials, key=lambda t: t[0])


def fsc_low_half(vol, truth, direction=None) -> float:
    """Mean Fourier shell correlation with the truth over the lower half of the frequencies
    (shells below 0.25 cycles/voxel; the issue's "FSC (low half)"); with ``direction`` only within
    30 degrees of it (``(0, 0, 1)``: z, the missing-wedge direction of a tilt series about y)."""
    from fastem.tomo.metrics import fourier_shell_correlation

    freq, fsc, counts = fourier_shell_correlation(vol, truth, direction=direction)
    low = (freq < 0.25) & (counts > 0)
    return float(np.nanmean(fsc[low]))


def projection_rfactor(vol, tilts, data, weights=None) -> float:
    """Thesis eq. 3.9: the mean over projections of ``sum |P_k(vol) - b_k| / sum |b_k|`` (``P``: the
    ray-sum projector that simulated the series), over the measured pixels (weight > 0) only."""
    proj = tilt_series(np.asarray(vol, np.float64), -np.asarray(tilts), centring="middle")
    b = np.asarray(data, np.float64)
    m = np.ones(b.shape) if weights is None else (np.asarray(weights) > 0).astype(np.float64)
    return float(np.mean((m * np.abs(proj - b)).sum(axis=(1, 2)) / (m * np.abs(b)).sum(axis=(1, 2))))


# ---- the methods --------------------------------------------------------------------------------
METRICS = ("error", "r_f", "fsc_low", "fsc_low_wedge", "seconds")


def run_methods(truth, tilts, data, iterations, svm, mapping, genfire=None, astra=None, weights=None,
                svmbir_repeats: int = 1):
    """Every method on the same series; ``weights`` (0 = unmeasured) given to each of them.
    svmbir runs ``svmbir_repeats`` times: its figures are the mean over the runs, each run's in
    ``runs`` (its 2-thread ICD is not deterministic; see the module docstring)."""
    kw = dict(convention="thesis")
    out = {}

    def timed(name, fn, repeats=1):
        rows = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            vol, extra = fn()
            seconds = extra.pop("seconds", time.perf_counter() - t0)
            rows.append({"error": relative_error(vol, truth), "r_f": projection_rfactor(vol, tilts, data, weights),
                         "fsc_low": fsc_low_half(vol, truth), "fsc_low_wedge": fsc_low_half(vol, truth, (0, 0, 1)),
                         "seconds": seconds, **extra})
        out[name] = rows[0] if repeats == 1 else {**{k: float(np.mean([r[k] for r in rows])) for k in METRICS},
                                                   "runs": rows}

    for prior in ("tv", "itv", "qggmrf"):
        def reg(prior=prior):
            r = regularised(data, tilts, prior=prior, iterations=iterations, weights=weights, **kw)
            return r.volume, {"weight": r.config["prior_weight"], "noise_estimate": r.config["noise_estimate"]}
        timed(f"fastem regularised {prior} auto", reg)
    timed("fastem RESIRE fst", lambda: (resire(data, tilts, iterations=iterations, progress=False, mask=weights,
                                               **kw).volume, {}))
    timed("fastem SIRT", lambda: (sirt(data, tilts, iterations=iterations, positivity=True, progress=False,
                                       mask=weights, **kw).volume, {}))
    if svm is not None:
        _, sign, perm, flips = mapping
        timed("svmbir defaults", lambda: (_apply(_svmbir_recon(svm, data, tilts, sign, **(
            {} if weights is None else {"weights": weights})), perm, flips), {}), repeats=svmbir_repeats)
    if astra is not None:
        _, sign, perm, flips = astra
        timed("ASTRA 2.5 SIRT (per slice, min 0)",
              lambda: (_apply(_astra_sirt(data, tilts, sign, iterations, truth.shape, weights), perm, flips), {}))
    if genfire is not None and weights is None:      # GENFIRE takes no per-pixel weights: not run on blocked data
        env, (_, sign, transpose, shift, perm, flips) = genfire

        def gf():
            vol, seconds = _genfire_recon(env, data, tilts, sign, transpose, shift, iterations)
            return _apply(vol, perm, flips), {"seconds": seconds}
        timed("GENFIRE 1.1.11 defaults", gf)
    return out


def warm_up(blocked: float) -> None:
    """Compile every fastem kernel the methods use (Numba JIT, cached on disk) on a tiny case, so
    that no timed run pays for compilation (the peers have nothing to compile)."""
    truth, tilts, clean, data, _ = make_case(12, 0, 0.02, 6.0)
    weights = block_projections(data, blocked, 0)[1] if blocked > 0 else None
    kw = dict(convention="thesis", weights=weights)
    for prior in ("tv", "itv", "qggmrf"):
        regularised(data, tilts, prior=prior, iterations=2, auto_inner=2, **kw)
    resire(data, tilts, iterations=2, progress=False, mask=weights, convention="thesis")
    sirt(data, tilts, iterations=2, positivity=True, progress=False, mask=weights, convention="thesis")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--noise", type=float, default=0.05)
    ap.add_argument("--step", type=float, default=3.0)
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--max-tilt", type=float, default=60.0, help="tilts -MAX..+MAX degrees (default 60)")
    ap.add_argument("--phantom", choices=sorted(PHANTOMS), default="vesicle")
    ap.add_argument("--genfire-env", type=Path, default=None,
                    help="a GENFIRE environment (bash bench/peers/make_genfire_env.sh DIR): run GENFIRE 1.1.11 too")
    ap.add_argument("--pin-iterations", type=int, default=50, help="GENFIRE iterations of each convention trial")
    ap.add_argument("--blocked", type=float, default=0.0,
                    help="fraction of detector columns blocked in every projection (garbage values, weight 0)")
    ap.add_argument("--svmbir-repeats", type=int, default=3,
                    help="svmbir runs per seed (default 3; its figures: the mean over them, their range reported)")
    ap.add_argument("--tag", default="")
    args = ap.parse_args(argv)
    if args.svmbir_repeats < 1:
        ap.error(f"--svmbir-repeats must be >= 1, got {args.svmbir_repeats}")
    svm, why = _svmbir()
    truth, tilts, clean, _, _ = make_case(args.n, 0, 0.0, args.step, args.max_tilt, args.phantom)
    mapping = pin_svmbir(svm, truth, tilts, clean) if svm is not None else None
    if mapping is not None:
        print(f"svmbir pinned (noise-free error {mapping[0]:.3f}): angle sign {mapping[1]:+.0f}, "
              f"axes {mapping[2]}, flips {mapping[3]}", flush=True)
    astra_pin, astra_missing = None, None
    try:
        import astra  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import failure: the peer is skipped and said so
        astra_missing = f"astra not importable: {exc}"
    else:
        astra_pin_iterations = max(50, args.iterations)     # a few iterations cannot tell the mappings apart
        astra_pin = pin_astra(truth, tilts, clean, astra_pin_iterations)
        print(f"ASTRA pinned (noise-free error {astra_pin[0]:.3f}): angle sign {astra_pin[1]:+.0f}, "
              f"axes {astra_pin[2]}, flips {astra_pin[3]}", flush=True)
    genfire, gf_pin = None, None
    if args.genfire_env is not None:
        gf_pin = pin_genfire(args.genfire_env, truth, tilts, clean, args.pin_iterations)
        genfire = (args.genfire_env, gf_pin)
        print(f"GENFIRE pinned (noise-free error {gf_pin[0]:.3f} at {args.pin_iterations} it): angle sign "
              f"{gf_pin[1]:+.0f}, images transposed {bool(gf_pin[2])}, shift {gf_pin[3]:+.1f} px, axes {gf_pin[4]}, "
              f"flips {gf_pin[5]}", flush=True)
    warm_up(args.blocked)
    runs = []
    for seed in range(args.seeds):
        truth, tilts, clean, data, sigma = make_case(args.n, seed, args.noise, args.step, args.max_tilt, args.phantom)
        weights = None
        if args.blocked > 0:
            data, weights = block_projections(data, args.blocked, seed)
        res = run_methods(truth, tilts, data, args.iterations, svm, mapping, genfire, astra_pin, weights,
                          args.svmbir_repeats)
        for name, r in res.items():
            print(f"seed {seed} {name:34s} error {r['error']:.4f}  R_F {100 * r['r_f']:.2f} %  {r['seconds']:.2f} s",
                  flush=True)
        runs.append({"seed": seed, "sigma": sigma, "results": res})
    names = list(runs[0]["results"])
    summary = {}
    for name in names:
        e = np.array([r["results"][name]["error"] for r in runs])
        s = np.array([r["results"][name]["seconds"] for r in runs])
        rf = np.array([r["results"][name]["r_f"] for r in runs])
        fl = np.array([r["results"][name]["fsc_low"] for r in runs])
        fw = np.array([r["results"][name]["fsc_low_wedge"] for r in runs])
        summary[name] = {"error_mean": float(e.mean()), "error_std": float(e.std()), "seconds_mean": float(s.mean()),
                         "r_f_mean": float(rf.mean()), "fsc_low_mean": float(fl.mean()),
                         "fsc_low_wedge_mean": float(fw.mean())}
    ref = summary.get("svmbir defaults")
    if ref is not None and args.svmbir_repeats > 1:
        svm_runs = [run for r in runs for run in r["results"]["svmbir defaults"]["runs"]]
        ref["range"] = {k: [float(min(x[k] for x in svm_runs)), float(max(x[k] for x in svm_runs))] for k in METRICS}
    record = {"case": {"n": args.n, "noise": args.noise, "tilts": [-args.max_tilt, args.max_tilt, args.step],
                       "iterations": args.iterations,
                       "seeds": args.seeds, "threads": THREADS, "phantom": args.phantom, "blocked": args.blocked},
              "svmbir": None if mapping is None else {"noise_free_error": mapping[0], "angle_sign": mapping[1],
                                                       "axes": list(mapping[2]), "flips": list(mapping[3])},
              "svmbir_missing": why,
              "astra": None if astra_pin is None else {"noise_free_error": astra_pin[0], "angle_sign": astra_pin[1],
                                                       "axes": list(astra_pin[2]), "flips": list(astra_pin[3])},
              "astra_missing": astra_missing,
              "genfire": None if gf_pin is None else {"noise_free_error": gf_pin[0], "pin_iterations": args.pin_iterations,
                                                      "angle_sign": gf_pin[1], "transposed": bool(gf_pin[2]),
                                                      "shift_px": gf_pin[3], "axes": list(gf_pin[4]),
                                                      "flips": list(gf_pin[5])},
              "summary": summary, "runs": runs}
    tag = f"-{args.tag}" if args.tag else ""
    RESULTS.mkdir(exist_ok=True)
    lines = [f"# Regularised tomography vs peers ({args.n}^3 {args.phantom}, tilts -{args.max_tilt:g}..{args.max_tilt:g} "
             f"step {args.step}, "
             f"noise {args.noise:g} x max, {args.seeds} seeds, {THREADS} threads, {args.iterations} iterations"
             + (f", {args.blocked:g} of each projection's columns blocked: garbage at weight 0, every method told; "
                "R_F over the measured pixels; GENFIRE not run, it takes no weights" if args.blocked > 0 else "")
             + ")", "",
             "Command: `nice -n 10 .venv/bin/python bench/tomo_regularised.py " + " ".join(argv or sys.argv[1:]) + "`",
             "", "| method | rel. L2 error (mean +- std) | R_F (eq. 3.9) | FSC low half | FSC low half, wedge (z) | "
                 "wall s | error / svmbir | time / svmbir |",
             "|---|---|---|---|---|---|---|---|"]
    for name, s in summary.items():
        ratio_e = f"{s['error_mean'] / ref['error_mean']:.2f}" if ref else "-"
        ratio_t = f"{s['seconds_mean'] / ref['seconds_mean']:.2f}" if ref else "-"
        lines.append(f"| {name} | {s['error_mean']:.4f} +- {s['error_std']:.4f} | {100 * s['r_f_mean']:.2f} % | "
                     f"{s['fsc_low_mean']:.3f} | {s['fsc_low_wedge_mean']:.3f} | {s['seconds_mean']:.2f} | "
                     f"{ratio_e} | {ratio_t} |")
    def pinned(name, pin, why, text):
        """The table's note on a peer: how its convention was pinned, or why it did not run."""
        return ["", text() if pin is not None else f"{name} not run: {why}"]

    lines += pinned("svmbir", mapping, why, lambda: (
        f"svmbir convention pinned on the noise-free series: angle sign {mapping[1]:+.0f}, output axes "
        f"{list(mapping[2])} (transpose of its (slice, row, col)), flips {list(mapping[3])}; "
        f"noise-free error {mapping[0]:.3f}."))
    lines += pinned("ASTRA", astra_pin, astra_missing, lambda: (
        f"ASTRA convention pinned on the noise-free series ({astra_pin_iterations} SIRT iterations): angle "
        f"sign {astra_pin[1]:+.0f}, output axes {list(astra_pin[2])}, flips {list(astra_pin[3])}; "
        f"noise-free error {astra_pin[0]:.3f}. ASTRA's CPU SIRT runs one slice at a time on one thread."))
    lines += pinned("GENFIRE", gf_pin, "no --genfire-env", lambda: (
        f"GENFIRE convention pinned on the noise-free series ({args.pin_iterations} iterations per trial): "
        f"angle sign {gf_pin[1]:+.0f}, images {'transposed' if gf_pin[2] else 'as given'}, projections "
        f"shifted by {gf_pin[3]:+.1f} px in both detector axes (its volume by {-gf_pin[3]:+.1f} voxel on all "
        f"three), output axes {list(gf_pin[4])}, flips {list(gf_pin[5])}; noise-free error {gf_pin[0]:.3f}. "
        f"Its time is genfire.main.main's."))
    if ref is not None and "range" in ref:
        rng = ref["range"]
        lines += ["", f"svmbir ran {args.svmbir_repeats} times on each seed's series (its row: the mean over "
                      f"all {args.svmbir_repeats * args.seeds} runs): its 2-thread ICD is not deterministic. "
                      f"Range over the runs: error {rng['error'][0]:.4f}-{rng['error'][1]:.4f}, FSC low half "
                      f"{rng['fsc_low'][0]:.4f}-{rng['fsc_low'][1]:.4f}, wedge "
                      f"{rng['fsc_low_wedge'][0]:.4f}-{rng['fsc_low_wedge'][1]:.4f}, "
                      f"{rng['seconds'][0]:.2f}-{rng['seconds'][1]:.2f} s."]
    lines += ["", "FSC: mean Fourier shell correlation with the phantom over the shells below 0.25 cycles/voxel, "
                  "over all directions and within 30 degrees of z (the missing wedge of a tilt series about y); "
                  "`fastem.tomo.metrics.fourier_shell_correlation`.",
              "", "Times: wall seconds of one reconstruction, mean over the seeds; fastem's Numba kernels were "
                  "compiled on a tiny case before the first timed run (`warm_up`)."]
    for ext, text in (("json", json.dumps(record, indent=1, default=float)), ("md", "\n".join(lines) + "\n")):
        from fastem.bench import write_result_text

        write_result_text(RESULTS / f"tomo_regularised{tag}.{ext}", text)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
