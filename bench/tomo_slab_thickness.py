"""SIRT time per detector row against the slab thickness (how thick ``reconstruct_slabs`` cuts its slabs).

The CPU tilt projectors vectorise along the rotation axis: a slab's rows are their SIMD loop. This
bench reconstructs the same ``--rows`` detector rows of a vesicle tilt series (``--n``^3, tilts
-70..+70 step 3.5, ``--iterations`` SIRT iterations, one thread per process) as slabs of each
thickness in turn, first in one process alone, then in two processes side by side (each on its own
half of the rows), so both the cost of thin slabs and the slowdown of two busy cores are measured.
Slabs whose projections are all zero are skipped, as ``reconstruct_slab`` does.

Usage::

    nice -n 10 .venv/bin/python bench/tomo_slab_thickness.py        # 128^3, rows 0-63 and 64-127

Writes ``bench/results/tomo_slab_thickness[-<tag>].{json,md}``.
"""

from __future__ import annotations

import os

for _k in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_k, "1")
from fastem.config import use_passive_openmp as _use_passive_openmp  # noqa: E402
_use_passive_openmp()  # as the CLI does: PASSIVE with a short spin (bench/results/openmp_wait_policy.md)

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def worker(series: Path, r0: int, rows: int, thickness: int, iterations: int) -> float:
    """Seconds to reconstruct rows ``[r0, r0 + rows)`` as slabs of ``thickness`` rows."""
    from fastem.tomo import sirt

    z = np.load(series)
    proj, ang = z["projections"], z["angles"]
    mid = proj.shape[1] // 2
    sirt(proj[:, mid - 2:mid + 2], ang, iterations=2, progress=False)      # compile before the clock
    t0 = time.perf_counter()
    for s in range(r0, r0 + rows, thickness):
        part = proj[:, s:min(s + thickness, r0 + rows)]
        if np.any(part):
            sirt(part, ang, iterations=iterations, progress=False)
    return time.perf_counter() - t0


def _spawn(series, r0, rows, thickness, iterations):
    return subprocess.Popen([sys.executable, __file__, "--worker", str(series), str(r0), str(rows), str(thickness),
                             str(iterations)], stdout=subprocess.PIPE, text=True)


def _seconds(proc) -> float:
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed ({proc.returncode})")
    return float(out.strip().splitlines()[-1])


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "--worker":
        print(worker(Path(argv[1]), int(argv[2]), int(argv[3]), int(argv[4]), int(argv[5])))
        return {}
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--thicknesses", default="8,16,32,64")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--tag", default="")
    args = ap.parse_args(argv)
    try:
        thicknesses = [int(t) for t in args.thicknesses.split(",")]
    except ValueError:
        ap.error(f"--thicknesses: {args.thicknesses!r} is not a comma-separated list of integers")
    half = args.n // 2
    if any(not 1 <= t <= half for t in thicknesses):
        ap.error(f"--thicknesses: every thickness must be in 1..{half} (half the rows)")

    from fastem.data import tilt_angles, tilt_series, vesicle_3d

    ang = tilt_angles(-70, 70, 3.5)
    proj = tilt_series(vesicle_3d(args.n, seed=0).astype(np.float32), ang, centring="middle").astype(np.float32)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        series = Path(tmp) / "series.npz"
        np.savez(series, projections=proj, angles=ang)
        for t in thicknesses:
            alone = _seconds(_spawn(series, 0, half, t, args.iterations))
            pair = [_spawn(series, 0, half, t, args.iterations), _spawn(series, half, half, t, args.iterations)]
            side = [_seconds(p) for p in pair]
            rows.append({"thickness": t, "alone_s": alone, "side_by_side_s": side})
            print(rows[-1], flush=True)
    from fastem.bench import write_result_text
    from fastem.benchmark import machine_info

    info = machine_info()
    base = min(rows, key=lambda r: -r["thickness"])["alone_s"]
    lines = [f"# SIRT time against the slab thickness ({args.n}^3 vesicle, 41 tilts, {args.iterations} iterations, "
             "one thread per process)", "",
             "Command: `" + " ".join(["nice -n 10 .venv/bin/python bench/tomo_slab_thickness.py", *argv]) + "`", "",
             f"Machine: {info['cpu_model']}, {info['cores_available']} cores.", "",
             f"Each row: {half} detector rows reconstructed as slabs of that thickness; *alone*: one process; "
             "*side by side*: two processes at once, one per half of the rows.", "",
             "| slab rows | alone (s) | alone / thickest | side by side (s, each) | side by side / alone |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['thickness']} | {r['alone_s']:.2f} | {r['alone_s'] / base:.2f} | "
                     f"{' / '.join(f'{s:.2f}' for s in r['side_by_side_s'])} | "
                     f"{max(r['side_by_side_s']) / r['alone_s']:.2f} |")
    report = {"argv": argv, "machine": info, "n": args.n, "iterations": args.iterations, "rows": rows}
    tag = f"-{args.tag}" if args.tag else ""
    write_result_text(args.out / f"tomo_slab_thickness{tag}.json", json.dumps(report, indent=1))
    write_result_text(args.out / f"tomo_slab_thickness{tag}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return report


if __name__ == "__main__":
    main()
