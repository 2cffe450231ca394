"""Regularised tomography at scale (issue 20): TV and isotropic TV (fastem's default) against svmbir,
time and memory.

The same case as ``bench/tomo_regularised.py`` (vesicle phantom, single-axis tilts -60..+60,
Gaussian noise) at sizes where the time and the memory of each method matter: ``128^3 x 60``
and ``256^3 x 90`` projections by default. Each method runs in a process of its own (so that
the peak memory is its own), after its kernels are compiled on a tiny case (fastem's Numba JIT;
svmbir has nothing to compile):

* wall seconds of the reconstruction alone (the data already in memory);
* peak resident memory during it, above the process's memory just before it (Linux: the
  ``VmHWM`` high-water mark is reset through ``/proc/self/clear_refs`` first), and the input's
  own size for scale;
* relative L2 error and the low-half FSC, overall and in the missing wedge (as in
  ``bench/tomo_regularised.py``).

svmbir's axis/sign convention is pinned on a small noise-free series first (the mapping does
not depend on the size). Both methods get 2 threads.

Usage::

    nice -n 10 .venv/bin/python bench/tomo_regularised_scale.py                       # 128x60, 256x90
    nice -n 10 .venv/bin/python bench/tomo_regularised_scale.py --cases 64x41 --tag quick

Writes ``bench/results/tomo_regularised_scale[-<tag>].{json,md}``.
"""

from __future__ import annotations

import os as _os

from fastem.config import use_passive_openmp as _use_passive_openmp  # noqa: E402
_use_passive_openmp()  # as the CLI does: PASSIVE with a short spin (bench/results/openmp_wait_policy.md)
_os.environ.setdefault("NUMBA_NUM_THREADS", "2")

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import tomo_regularised as tr  # noqa: E402  (the shared case, peers and metrics)

RESULTS = HERE / "results"
METHODS = ("fastem regularised tv auto", "svmbir defaults", "fastem regularised itv auto")


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def worker(method: str, case: Path, out: Path, mapping: list) -> None:
    """One method on the series in ``case`` (npz: data, tilts); writes the volume, seconds and memory."""
    z = np.load(case)
    data, tilts = z["data"], z["tilts"]
    first_call = None                      # svmbir: the untimed call that builds its system matrix
    extra = {}                             # fastem: the chosen strength and why the solve stopped
    if method.startswith("fastem"):
        from fastem.tomo.regularised import regularised

        prior = method.split()[2]          # "fastem regularised <prior> auto"
        small = tr.make_case(12, 0, 0.02, 6.0)
        regularised(small[3], small[1], prior=prior, iterations=2, auto_inner=2, convention="thesis")

        def run():
            r = regularised(data, tilts, prior=prior, iterations=int(z["iterations"]), convention="thesis")
            extra.update(weight=r.config["prior_weight"], stopped=r.config.get("stopped") or "iterations",
                         best_iteration=r.config["rfree_stop"]["best_iteration"])
            return np.asarray(r.volume)
    else:
        svm, why = tr._svmbir()
        if svm is None:
            raise SystemExit(why)
        sign, perm, flips = mapping
        # svmbir computes its system matrix once per geometry and caches it on disk: build it in an
        # untimed first call (1 iteration), as a user's later runs on that geometry would find it
        t0 = time.perf_counter()
        tr._svmbir_recon(svm, data, tilts, sign, max_iterations=1)
        first_call = time.perf_counter() - t0

        def run():
            return tr._apply(tr._svmbir_recon(svm, data, tilts, sign), tuple(perm), tuple(flips))
    before = _status_kib("VmRSS")
    _reset_peak()
    t0 = time.perf_counter()
    vol = run()
    seconds = time.perf_counter() - t0
    peak = _status_kib("VmHWM")
    np.savez(out, volume=np.asarray(vol, np.float32), seconds=seconds, rss_before_kib=before, peak_kib=peak,
             first_call_s=np.nan if first_call is None else first_call, extra=json.dumps(extra))


def run_case(n: int, n_proj: int, args, mapping, tmp: Path) -> dict:
    tilts = np.linspace(-args.max_tilt, args.max_tilt, n_proj)
    truth = tr.PHANTOMS["vesicle"](n).astype(np.float64)
    clean = tr.tilt_series(truth, -tilts, centring="middle")
    rng = np.random.default_rng(args.seed)
    data = (clean + rng.normal(0.0, args.noise * float(np.abs(clean).max()), clean.shape)).astype(np.float32)
    case = tmp / f"case{n}.npz"
    np.savez(case, data=data, tilts=tilts, iterations=args.iterations)
    row = {"n": n, "projections": n_proj, "input_mib": data.nbytes / 2**20, "volume_mib": n ** 3 * 4 / 2**20,
           "methods": {}}
    for method in args.methods:
        out = tmp / "out.npz"
        proc = subprocess.run([sys.executable, __file__, "--worker", method, str(case), str(out),
                               json.dumps([float(mapping[0]), list(mapping[1]), list(mapping[2])])],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{method} at {n}^3 failed ({proc.returncode}): {proc.stderr[-3000:]}")
        r = np.load(out)
        vol = r["volume"].astype(np.float64)
        row["methods"][method] = {
            "seconds": float(r["seconds"]),
            "first_call_s": None if np.isnan(r["first_call_s"]) else float(r["first_call_s"]),
            **json.loads(str(r["extra"])),
            "peak_mib_above": (int(r["peak_kib"]) - int(r["rss_before_kib"])) / 1024,
            "peak_mib": int(r["peak_kib"]) / 1024,
            "error": tr.relative_error(vol, truth), "fsc_low": tr.fsc_low_half(vol, truth),
            "fsc_low_wedge": tr.fsc_low_half(vol, truth, (0, 0, 1))}
        print(f"{n}^3 x {n_proj} {method}: {row['methods'][method]}", flush=True)
    return row


def render(rows, args, argv, info) -> str:
    lines = [f"# Regularised tomography at scale: fastem default vs svmbir (vesicle, tilts -{args.max_tilt:g}..+"
             f"{args.max_tilt:g}, noise {args.noise:g} x max, seed {args.seed}, 2 threads)", "",
             "Command: `" + " ".join(["nice -n 10 .venv/bin/python bench/tomo_regularised_scale.py", *argv]) + "`", "",
             f"Machine: {info}", "",
             "| case | method | wall s | peak memory above input (MiB) | rel. L2 error | FSC low half | FSC low half, "
             "wedge (z) | time / svmbir | memory / svmbir | error / svmbir |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    ref = METHODS[1]
    for row in rows:
        base = row["methods"].get(ref)
        for name, m in row["methods"].items():
            ratio = (lambda k: f"{m[k] / base[k]:.2f}" if base and base[k] > 0 else "-")
            lines.append(f"| {row['n']}^3 x {row['projections']} | {name} | {m['seconds']:.1f} | "
                         f"{m['peak_mib_above']:.1f} | {m['error']:.4f} | {m['fsc_low']:.3f} | "
                         f"{m['fsc_low_wedge']:.3f} | {ratio('seconds')} | {ratio('peak_mib_above')} | "
                         f"{ratio('error')} |")
    lines += ["", "Input: the projections, float32 "
              + ", ".join(f"{r['n']}^3 x {r['projections']}: {r['input_mib']:.1f} MiB (volume {r['volume_mib']:.1f} MiB)"
                          for r in rows) + ".",
              "",
              "Each method runs in its own process; *wall s* is the reconstruction alone (data in memory, kernels "
              "compiled; svmbir's system matrix built and cached on disk by an untimed 1-iteration call first, "
              "whose time is in the JSON as `first_call_s`); *peak memory above input* is the process's resident high-water mark during the "
              "reconstruction minus its resident memory just before it (`VmHWM` reset via `/proc/self/clear_refs`). "
              f"svmbir convention pinned on a 32^3 noise-free series: angle sign {mapping_text(args.mapping)}. "
              "FSC as in `bench/tomo_regularised.py`.", "",
              "fastem's automatic strength and stop: " + "; ".join(
                  f"{r['n']}^3 {name.split()[2]}: weight {m['weight']:.4g}, stopped by {m['stopped']} "
                  f"(best R-free at final iteration {m['best_iteration']} of at most {args.iterations})"
                  for r in rows for name, m in r["methods"].items() if "weight" in m) + "."]
    return "\n".join(lines) + "\n"


def mapping_text(m) -> str:
    return f"{m[0]:+.0f}, output axes {list(m[1])}, flips {list(m[2])}"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        method, case, out, mapping = argv[1:5]
        worker(method, Path(case), Path(out), json.loads(mapping))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="128x60,256x90", help="comma-separated NxPROJECTIONS")
    ap.add_argument("--noise", type=float, default=0.02)
    ap.add_argument("--max-tilt", type=float, default=60.0)
    ap.add_argument("--iterations", type=int, default=150, help="fastem's iteration cap (it stops by R-free)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--tag", default="")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder of the records")
    args = ap.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for m in args.methods:
        if m not in METHODS:
            ap.error(f"--methods: unknown {m!r} (choose from {', '.join(METHODS)})")
    cases = []
    for c in args.cases.split(","):
        try:
            n, k = (int(v) for v in c.lower().split("x"))
        except ValueError:
            ap.error(f"--cases: {c!r} is not NxPROJECTIONS")
        cases.append((n, k))
    svm, why = tr._svmbir()
    if svm is None and METHODS[1] in args.methods:
        ap.error(why)
    truth, tilts, clean, _, _ = tr.make_case(32, 0, 0.0, 3.0, args.max_tilt)
    args.mapping = tr.pin_svmbir(svm, truth, tilts, clean)[1:] if svm is not None else (1.0, (0, 1, 2), (False,) * 3)
    from fastem.benchmark import machine_info

    info = machine_info()
    info_text = f"{info['cpu_model']}, {info['cores_available']} cores, {info['memory_gb']} GB, svmbir " + (svm.__version__ if svm is not None else "not installed")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, k in cases:
            rows.append(run_case(n, k, args, args.mapping, Path(tmp)))
    tag = f"-{args.tag}" if args.tag else ""
    from fastem.bench import write_result_text

    write_result_text(args.out / f"tomo_regularised_scale{tag}.json",
                      json.dumps({"argv": argv, "machine": info, "rows": rows}, indent=1, default=float))
    write_result_text(args.out / f"tomo_regularised_scale{tag}.md", render(rows, args, argv, info_text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
