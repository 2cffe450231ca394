"""Model error of the projectors against the exact line integral (issue 14, ``fst`` gridding).

The object is a sum of Gaussian blobs (sigma in voxels) at random off-centre positions, sampled
on the voxel grid; its exact parallel-beam projection is analytic: every blob projects to a 2D
Gaussian of amplitude ``sqrt(2 pi) sigma`` centred at ``(A_k[0].c, A_k[1].c)`` on the detector
(the geometry's centring). Reported: relative L2 error ``||P(vol) - exact|| / ||exact||`` of the
``fst`` projector at oversampling 2 and 3 with and without the gridding correction
(:func:`fastem.tomo.operators.gridding_correction`), and of the ``linear`` (4 object-space
sub-points) and bilinear projectors, for a tilt series about y and random Euler angles, on an
even and an odd volume. Results: ``bench/results/tomo_fst_model_error.{json,md}``.

Usage: ``nice -n 10 .venv/bin/python bench/tomo_fst_model_error.py [--size 32] [--sigma 1.5]``
"""

from __future__ import annotations

import os as _os

from fastem.config import use_passive_openmp as _use_passive_openmp  # noqa: E402
_use_passive_openmp()  # as the CLI does: PASSIVE with a short spin (bench/results/openmp_wait_policy.md)

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def blob_volume(shape, centres, sigma):
    """Sum of unit Gaussians at centred positions ``centres`` (x, y, z), float64 (z, y, x)."""
    z, y, x = np.meshgrid(*[np.arange(n) - (n - 1) / 2 for n in shape], indexing="ij")
    vol = np.zeros(shape)
    for c in centres:
        vol += np.exp(-((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) / (2 * sigma ** 2))
    return vol


def exact_projections(geometry, centres, sigma):
    """The analytic line integrals of :func:`blob_volume` for every projection, float64 (n, rows, cols)."""
    rows, cols = geometry.detector_shape
    r, c = np.meshgrid(np.arange(rows) - (rows - 1) / 2, np.arange(cols) - geometry.center, indexing="ij")
    out = np.zeros(geometry.projections_shape)
    for k, A in enumerate(geometry.rotations):
        for cen in centres:
            u, v = A[0] @ np.asarray(cen, float), A[1] @ np.asarray(cen, float)
            out[k] += math.sqrt(2 * math.pi) * sigma * np.exp(-((c - u) ** 2 + (r - v) ** 2) / (2 * sigma ** 2))
    return out


def model_errors(n: int, sigma: float = 1.5, seed: int = 0, n_blobs: int = 6):
    """``{(case, projector): rel. L2 error}`` for the tilt and Euler cases at size ``n``."""
    from fastem.tomo import FourierSliceProjector, LinearProjector, ProjectionGeometry

    rng = np.random.default_rng(seed)
    shape = (n, n, n)
    reach = 0.35 * n  # blobs well off-centre, inside the volume
    centres = rng.uniform(-reach, reach, (n_blobs, 3))
    vol = blob_volume(shape, centres, sigma).astype(np.float32)
    cases = {"tilt -70..70 (15)": np.linspace(-70, 70, 15), "Euler random (10)": rng.uniform(-90, 90, (10, 3))}
    out = {}
    for case, angles in cases.items():
        geo = ProjectionGeometry(shape, (n, n), angles)
        ex = exact_projections(geo, centres, sigma)
        norm = np.linalg.norm(ex)
        ops = {}
        for os_ in (2.0, 3.0):
            for g in (False, True):
                ops[f"fst os {os_:g}, {'gridding corrected' if g else 'no correction'}"] = \
                    FourierSliceProjector(geo, os_, gridding=g)
        ops["linear (4 object-space sub-points)"] = LinearProjector(geo)
        ops["bilinear (1 point)"] = LinearProjector(geo, subpoints=1)
        for name, op in ops.items():
            out[(case, name)] = float(np.linalg.norm(op.project(vol) - ex) / norm)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, nargs="+", default=[32, 33])
    p.add_argument("--sigma", type=float, default=1.5)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "tomo_fst_model_error")
    a = p.parse_args(argv)
    from fastem.io import atomic_output

    rows = []
    for n in a.size:
        for (case, name), err in model_errors(n, a.sigma).items():
            rows.append({"size": n, "case": case, "projector": name, "rel_l2": round(err, 5)})
    lines = [f"# Projector model error against the exact line integral (Gaussian blobs, sigma {a.sigma:g} voxels)", "",
             f"Command: `nice -n 10 .venv/bin/python bench/tomo_fst_model_error.py --size {' '.join(map(str, a.size))} "
             f"--sigma {a.sigma:g}`", "", "| size | angles | projector | rel. L2 error |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['size']}^3 | {r['case']} | {r['projector']} | {100 * r['rel_l2']:.2f} % |" for r in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    with atomic_output(a.out.with_suffix(".json"), overwrite=True) as tmp:
        Path(tmp).write_text(json.dumps({"sigma": a.sigma, "rows": rows}, indent=1))
    with atomic_output(a.out.with_suffix(".md"), overwrite=True) as tmp:
        Path(tmp).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
