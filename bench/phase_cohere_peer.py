"""cohere-core as a phase-retrieval peer on issue 15's robustness grid (reduced).

cohere-core (Argonne's Bragg-CDI engine, ``pip install cohere-core``, numpy backend, complex128,
single-threaded FFTs) runs HIO/ER with its phase constraint and, where fastem uses it,
Gaussian shrink-wrap, on the same data and supports as fastem's GPS-F, HIO and OSS
(``bench/phase_grid.py``: same objects, noise, missing data and support constructions). Both
sides get the same number of starts and iterations per start, and the same post-processing:
every start's final image goes through :func:`fastem.phase.keep_consistent` (align
translation and twin, drop outliers, average the ``keep`` best by R_F), and R_real of the kept
mean is reported with its R_F and the wall time.

cohere's settings (its documented example configuration, ``config_rec``, fitted to the same
iteration count): algorithm sequence ``3*(20*ER+170*HIO)+30*ER`` (600 iterations; the example
is ``3*(20*ER+180*HIO)+20*ER``), ``hio_beta`` 0.9, ``phc_trigger`` [0, 1, 310] with the
phase range (-pi/2, pi/2), and for loose and estimated supports ``shrink_wrap_trigger`` [10, 1],
``GAUSS``, threshold 0.1, sigma 1. Its starts are its own kind (uniform random amplitude and
phase inside the support), drawn from a seeded generator per start. cohere's data are prepared
as its standard preprocessing does (intensities below its ``intensity_threshold``, 2 counts, set
to 0; the synthetic data are in photon counts with 1-count read noise); R_F is measured against
the unthresholded data for both sides (cohere seeds from the clock,
so its own starts are not reproducible). The image compared is the amplitude ``|u|`` (the
objects are real and non-negative), scaled to the data by least squares before its R_F.

A third row, ``cohere+mask, phase 0.2``, narrows the phase constraint to (-0.2, 0.2) rad at
every iteration, as a cohere user who knows the object is real and non-negative would.

The ``complex`` object (``bench/phase_grid.py``: phases -1..1 rad) is cohere's home ground (Bragg
CDI): fastem reconstructs it with ``complex_object=True`` and the phase range (-pi/2, pi/2), the
range of cohere's documented phase constraint; cohere's complex image is compared (not ``|u|``),
and the ``phase 0.2`` row, which assumes a real object, is not run for it. cohere's forward
model is the inverse FFT of its object, so its image is conjugated into the data's convention
(the forward FFT) before it is compared.

**Unknown pixels**: cohere has no missing-data mask; its modulus step scales every pixel to the
data, so a missing (zero) pixel forces the amplitude there to 0. Two rows: ``cohere`` as shipped
(missing pixels read as measured zeros) and ``cohere+mask``, with a subclass whose modulus step
leaves the unknown pixels' amplitudes free (what fastem and the thesis do; a 3-line override).

Usage::

    nice -n 10 .venv/bin/python bench/phase_cohere_peer.py              # reduced grid (about 10 min)
    nice -n 10 .venv/bin/python bench/phase_cohere_peer.py --quick      # one cell

Needs ``cohere-core`` (``pip install cohere-core==4.5.4``; a throwaway environment or
``PYTHONPATH`` to an unpacked wheel is enough: it uses numpy, scipy, scikit-learn, tifffile,
psutil, tqdm and matplotlib). Writes ``bench/results/phase_cohere_peer.json`` and ``.md``.
"""

from __future__ import annotations

import os as _os

from fastem.config import use_passive_openmp as _use_passive_openmp  # noqa: E402
_use_passive_openmp()  # as the CLI does: PASSIVE with a short spin (bench/results/openmp_wait_policy.md)

import argparse
import contextlib
import io as _io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import write_results  # noqa: E402
from bench.phase_grid import make_data, make_object, make_support, object_options, run_cell  # noqa: E402

RESULTS = ROOT / "bench" / "results"
FASTEM_ALGS = ("gps-r", "gps-f", "hio", "oss")   # gps-r: the default since 2026-12-06 (grid)
#: (row name, unknown pixels left free, phase range at every iteration or None = the documented example's)
COHERE_VARIANTS = (("cohere", False, None), ("cohere+mask", True, None), ("cohere+mask, phase 0.2", True, 0.2))
INTENSITY_THRESHOLD = 2.0  # cohere's standard data preparation: intensities below this (counts) -> 0


def cohere_params(iterations: int, shrink_wrap: bool, phase_range: float | None = None) -> dict:
    if iterations < 100:
        raise SystemExit("--iterations must be >= 100")
    # cohere's example shape "3*(20*ER+180*HIO)+20*ER" fitted to the iteration count: 3 blocks of
    # 20 ER + HIO, and a final ER polish of 5 % of the iterations (600: 3*(20*ER+170*HIO)+30*ER)
    polish = iterations // 20
    hio = (iterations - polish) // 3 - 20
    polish = iterations - 3 * (20 + hio)
    p = {"algorithm_sequence": f"3*(20*ER+{hio}*HIO)+{polish}*ER", "hio_beta": 0.9,
         "phc_trigger": [0, 1, 310], "phc_phase_min": -1.57, "phc_phase_max": 1.57}
    if phase_range is not None:  # a real, non-negative object: a narrow phase range at every iteration
        p.update(phc_trigger=[0, 1], phc_phase_min=-phase_range, phc_phase_max=phase_range)
    if shrink_wrap:
        p.update(shrink_wrap_trigger=[10, 1], shrink_wrap_type="GAUSS", shrink_wrap_threshold=0.1,
                 shrink_wrap_gauss_sigma=1.0)
    return p


def _rec_classes():
    from cohere_core.controller import phasing

    class MaskedRec(phasing.Rec):
        """cohere's Rec with a modulus step that leaves unknown pixels free (``self.known``)."""

        def modulus(self):
            dev = phasing.devlib
            ratio = self.get_ratio(self.iter_data, dev.absolute(self.rs_amplitudes))
            ratio = dev.where(self.known, ratio, 1.0)
            err = dev.where(self.known & (self.rs_amplitudes != 0), dev.absolute(self.rs_amplitudes) - self.iter_data, 0)
            self.errs.append(float(np.linalg.norm(err) / np.linalg.norm(self.iter_data)))
            self.rs_amplitudes *= ratio

    return phasing, phasing.Rec, MaskedRec


def run_cohere(cdi, support, *, runs: int, iterations: int, keep: int, seed: int, shrink_wrap: bool,
               masked: bool, phase_range: float | None = None) -> dict:
    from fastem.phase import keep_consistent, r_factor, r_real

    phasing, Rec, MaskedRec = _rec_classes()
    b = np.sqrt(np.maximum(cdi.intensities, 0.0))          # amplitudes, zero frequency at the centre
    known = np.asarray(cdi.known, bool)
    # cohere's data preparation zeroes intensities below its intensity_threshold (default 2 counts)
    b_cohere = np.where(cdi.intensities >= INTENSITY_THRESHOLD, b, 0.0)
    images = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        data_file = os.path.join(tmp, "data.npy")
        np.save(data_file, np.where(known, b_cohere, 0.0))
        np.save(os.path.join(tmp, "support.npy"), np.asarray(support, dtype=np.float64))
        for r in range(runs):
            rng = np.random.default_rng([seed, r, 0xC0])
            start = rng.random(b.shape) + 1j * rng.random(b.shape)
            params = cohere_params(iterations, shrink_wrap, phase_range)
            rec = (MaskedRec if masked else Rec)(params, data_file, "np", debug=True)
            with contextlib.redirect_stdout(_io.StringIO()):
                if rec.init_dev(-1) != 0:
                    raise RuntimeError("cohere: init_dev failed")
                if masked:
                    rec.known = np.fft.fftshift(known)       # the data's layout inside cohere
                original = phasing.devlib.random
                phasing.devlib.random = staticmethod(lambda shape, **kw: start.copy())
                try:
                    if rec.init_iter_loop(dir=tmp) != 0:
                        raise RuntimeError("cohere: init_iter_loop failed")
                finally:
                    phasing.devlib.random = original
                if rec.iterate() != 0:
                    raise RuntimeError("cohere: iterate failed")
            image = np.asarray(rec.get_image())
            # cohere's reciprocal space is the INVERSE transform of its object (phasing.py:
            # rs_amplitudes = ifft(ds_image)), so from data I(k) it reconstructs an object whose
            # forward transform has the modulus at -k: conj(u) (or u(-x)). The conjugate maps it
            # to fastem's (and the data generator's) convention |fft(u)| = b; for a real object
            # |u| is the same either way.
            images.append(np.conj(image) if np.iscomplexobj(cdi.object) else np.abs(image))
    seconds = time.perf_counter() - t0
    # scale every image to the data (cohere normalises to max |u| = 1), then R_F as for fastem
    scaled, rf = [], []
    failed = 0
    for im in images:
        if not np.all(np.isfinite(im)) or not np.any(im):
            # cohere divides by max |u| after the loop: a run whose image collapsed to 0 ends as NaN
            failed += 1
            scaled.append(np.zeros_like(im))
            rf.append(np.inf)
            continue
        mag = np.fft.fftshift(np.abs(np.fft.fftn(im)))
        s = float(np.sum(mag[known] * b[known]) / max(np.sum(mag[known] ** 2), 1e-300))
        scaled.append(im * s)
        rf.append(r_factor(scaled[-1], b, known))
    scaled, rf = np.array(scaled), np.array(rf)
    sel = keep_consistent(scaled, rf, keep)
    rr = np.array([r_real(im, cdi.object) for im in scaled])
    return {"rreal_mean": float(r_real(sel.mean, cdi.object)), "rf_mean": float(r_factor(sel.mean, b, known)),
            "rreal_best": float(rr[sel.indices[0]]), "rreal_all_std": float(rr.std()),
            "rreal_all_median": float(np.median(rr)), "rf_best": float(rf[sel.indices[0]]),
            "kept": int(len(sel.indices)), "failed": failed, "seconds": seconds}


def rewrite_summary(json_path: Path) -> None:
    """Write the ``.md`` of a recorded ``.json`` again with :func:`summarise` (no runs)."""
    import json

    report = json.loads(Path(json_path).read_text())
    Path(json_path).with_suffix(".md").write_text(summarise(report))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--objects", default="pair,vesicle")
    ap.add_argument("--supports", default="tight,loose4,estimated")
    ap.add_argument("--noise", default="0,0.06", help="R_noise values")
    ap.add_argument("--missing", default="beamstop,gaps")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--runs", type=int, default=16, help="starts per cell (each side)")
    ap.add_argument("--iterations", type=int, default=600)
    ap.add_argument("--keep", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="one cell: pair, loose4, R_noise 6 %%, gaps, seed 0, 8 starts")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--tag", default="", help="suffix of the record's name (e.g. _complex)")
    args = ap.parse_args(argv)
    try:
        import cohere_core  # noqa: F401
        from importlib.metadata import version

        cohere_version = version("cohere-core")
    except Exception:  # pragma: no cover - optional peer
        raise SystemExit("cohere-core is not importable (pip install cohere-core==4.5.4)") from None
    if args.quick:
        args.objects, args.supports, args.noise, args.missing, args.seeds, args.runs = \
            "pair", "loose4", "0.06", "gaps", "0", 8
    objects, supports = args.objects.split(","), args.supports.split(",")
    noise = [float(v) for v in args.noise.split(",")]
    missing, seeds = args.missing.split(","), [int(v) for v in args.seeds.split(",")]
    from fastem.config import settings

    rows = []
    t_all = time.perf_counter()
    for obj_name in objects:
        obj = make_object(obj_name, args.size)
        for nz in noise:
            for miss in missing:
                for seed in seeds:
                    cdi = make_data(obj, nz, miss, seed)
                    for sup in supports:
                        support = make_support(sup, cdi)
                        if support.sum() > support.size / 2:
                            continue
                        sw = sup != "tight"
                        cell = {"object": obj_name, "noise": nz, "missing": miss, "seed": seed, "support": sup}
                        for alg in FASTEM_ALGS:
                            res = run_cell(cdi, support, alg, args.runs, args.iterations, args.keep, seed, sw,
                                           options=object_options(obj_name, (-1.5707963, 1.5707963)))
                            rows.append({**cell, "method": f"fastem {alg}", **res})
                        for name, masked, phase in COHERE_VARIANTS:
                            if phase is not None and obj_name == "complex":
                                continue  # the narrow range assumes a real object
                            res = run_cohere(cdi, support, runs=args.runs, iterations=args.iterations,
                                             keep=args.keep, seed=seed, shrink_wrap=sw, masked=masked,
                                             phase_range=phase)
                            rows.append({**cell, "method": name, **res})
                        msg = "  ".join(f"{r['method']} {100 * r['rreal_mean']:.1f}%" for r in rows
                                        if all(r[k] == v for k, v in cell.items()))
                        print(f"{obj_name} R_noise {nz:g} {miss} seed {seed} {sup}: {msg}", flush=True)
    wall = time.perf_counter() - t_all
    command = " ".join(["bench/phase_cohere_peer.py", *(argv if argv is not None else sys.argv[1:])])
    report = {"command": command, "cohere_core": cohere_version, "fastem_threads": settings.threads or os.cpu_count(),
              "size": args.size, "runs": args.runs, "iterations": args.iterations, "keep": args.keep,
              "wall_s": wall, "rows": rows}
    md = summarise(report)
    write_results(args.out, "phase_cohere_peer" + args.tag + ("-quick" if args.quick else ""), report, md)
    print("\n" + md)
    return report


def summarise(report: dict) -> str:
    rows = report["rows"]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    keys = list(dict.fromkeys((r["object"], r["noise"], r["missing"], r["support"]) for r in rows))
    lines = [f"# fastem vs cohere-core {report['cohere_core']}: phase retrieval on the robustness grid (reduced)", "",
             f"Command: `{report['command']}`; {report['size']}x{report['size']}, {report['runs']} starts x "
             f"{report['iterations']} iterations per side, kept mean of <= {report['keep']} consistent runs "
             f"(`keep_consistent`), mean over seeds; fastem float32 on {report['fastem_threads']} threads, "
             f"cohere numpy complex128 (single-threaded FFTs); wall {report['wall_s']:.0f} s. "
             "`cohere`: as shipped (missing pixels read as zeros); `cohere+mask`: modulus leaves them free; "
             "`phase 0.2`: phase constraint (-0.2, 0.2) rad at every iteration (real objects only). "
             "Loose and estimated supports with shrink-wrap on both sides."
             + ("" if not any(r["object"] == "complex" for r in rows) else
                " The `complex` object is reconstructed as one by fastem (phase range (-pi/2, pi/2)) and compared "
                "as cohere's complex image, conjugated into the data's convention."), "",
             "R_real of the kept mean (%), and in brackets the wall time per cell (s):", "",
             "| object | R_noise | missing | support | " + " | ".join(methods) + " | best |",
             "|" + " --- |" * (len(methods) + 5)]
    wins = {m: 0 for m in methods}
    for key in keys:
        cell = [r for r in rows if (r["object"], r["noise"], r["missing"], r["support"]) == key]
        ran = [m for m in methods if any(r["method"] == m for r in cell)]  # the phase 0.2 row skips complex
        means = {m: np.mean([r["rreal_mean"] for r in cell if r["method"] == m]) for m in ran}
        secs = {m: np.mean([r["seconds"] for r in cell if r["method"] == m]) for m in ran}
        best = min(means, key=means.get)
        wins[best] += 1
        lines.append(f"| {key[0]} | {100 * key[1]:.0f} % | {key[2]} | {key[3]} | "
                     + " | ".join((f"{'**' if m == best else ''}{100 * means[m]:.1f}{'**' if m == best else ''} "
                                   f"({secs[m]:.1f})") if m in means else "not run" for m in methods)
                     + f" | {best} |")
    lines += ["", "Cells won (lowest R_real): " + ", ".join(f"{m} {n}" for m, n in wins.items()), ""]
    for m in methods:
        failed = sum(r.get("failed", 0) for r in rows if r["method"] == m)
        if failed:
            total = report["runs"] * sum(1 for r in rows if r["method"] == m)
            lines.append(f"{m}: {failed} of {total} starts ended with a NaN image (max |u| = 0 after the loop); "
                         "counted as failed runs (never kept).")
    lines.append("")
    tot = {m: sum(r["seconds"] for r in rows if r["method"] == m) for m in methods}
    lines.append("Total time per method (s): " + ", ".join(f"{m} {t:.1f}" for m, t in tot.items())
                 + "".join(f"; cohere / fastem {a} = {tot['cohere+mask'] / tot[f'fastem {a}']:.2f}x"
                           for a in ("gps-r", "gps-f") if f"fastem {a}" in tot) + " (masked variant).")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
