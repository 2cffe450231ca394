"""The two CPU forward-projection kernels on one tilt series: generic (row bands) against SIMD tilt.

``kernels/forward_project.py`` sends every tilt about y to the SIMD tilt kernel (one task per
projection), also when there are fewer projections than 4 x threads (where the generic kernel
would cut each detector into row bands to keep every thread busy) and when the output has no
border. This bench times both kernels on the same volume and tilts (``--n``^3 volume, ``--n``^2
detector, tilts -60..+60, 4 sub-points, float32, bordered output, the machine's threads) for
several projection counts, checks they agree inside the detector, and reports the ratio.

Usage::

    nice -n 10 .venv/bin/python bench/tomo_forward_paths.py

Writes ``bench/results/tomo_forward_paths.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=96)
    ap.add_argument("--projections", default="3,9,41")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path, default=RESULTS)
    a = ap.parse_args(argv)

    from fastem.benchmark import machine_info
    from fastem.config import settings
    from fastem.kernels import forward_project
    from fastem.kernels._forward_project_numba import forward_project_numba
    from fastem.kernels.back_project import BORDER, cpu_tap_plan
    from fastem.kernels.forward_project import row_bands
    from fastem.tomo.projection_geometry import ProjectionGeometry

    rows = []
    n, b = a.n, BORDER
    for nk in (int(x) for x in a.projections.split(",")):
        geo = ProjectionGeometry((n, n, n), (n, n), np.linspace(-60, 60, nk))
        vol = np.random.default_rng(0).random(geo.volume_shape).astype(np.float32)
        tilt_out = np.zeros((nk, n + 2 * b, n + 2 * b), np.float32)
        generic_out = tilt_out.copy()
        shifts, tilt = cpu_tap_plan(geo.coefficients, 4)
        bands = row_bands(nk, n)

        def generic():
            forward_project_numba(vol, geo.coefficients, shifts, generic_out, b, bands, bands == 1)

        def simd_tilt():
            forward_project(vol, geo.coefficients, tilt_out, border=b, engine="numba")

        seconds = {}
        for name, fn in (("generic", generic), ("tilt", simd_tilt)):
            fn()                                   # compile / warm caches
            t = time.perf_counter()
            for _ in range(a.repeat):
                fn()
            seconds[name] = (time.perf_counter() - t) / a.repeat
        inner = (slice(None), slice(b, b + n), slice(b, b + n))
        diff = float(np.abs(tilt_out[inner] - generic_out[inner]).max() / np.abs(generic_out[inner]).max())
        rows.append({"projections": nk, "row_bands": bands, "tilt_geometry": bool(tilt),
                     "generic_s": round(seconds["generic"], 5), "tilt_s": round(seconds["tilt"], 5),
                     "generic_over_tilt": round(seconds["generic"] / seconds["tilt"], 1),
                     "max_relative_difference": diff})
    record = {"command": "python bench/tomo_forward_paths.py " + " ".join(argv or sys.argv[1:]),
              "machine": machine_info(), "threads": settings.threads, "volume": n, "rows": rows}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "tomo_forward_paths.json").write_text(json.dumps(record, indent=1))
    md = [f"# Forward projection of a tilt series: generic kernel against the SIMD tilt kernel", "",
          f"`{record['command']}`: {n}^3 volume, {n}^2 detector, tilts -60..+60, 4 sub-points, float32, bordered "
          f"output, {settings.threads} threads; seconds per call (mean of {a.repeat}).", "",
          "| projections | generic kernel's row bands | generic (s) | SIMD tilt (s) | generic / tilt | max relative difference |",
          "|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['projections']} | {r['row_bands']} | {r['generic_s']:.4f} | {r['tilt_s']:.4f} | "
                  f"{r['generic_over_tilt']} | {r['max_relative_difference']:.1e} |")
    (a.out / "tomo_forward_paths.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
