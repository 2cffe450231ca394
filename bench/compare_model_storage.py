"""Does float16 storage change the packaged completion model's results? (issue 12 model card)

Completes the same spiral 1/20 partial scans of ``--images`` synthetic 512x512 test micrographs
(seed 2020, as ``bench/reproduce_scan.py``) with a float32 model file and its float16 repack
(``fastem.nn.model.repack_model``) and prints both RMSEs and the largest difference.

    .venv/bin/python bench/compare_model_storage.py FLOAT32_MODEL.pt [--half fastem/models/completion_spiral_1-20.pt]

Without ``--half`` the float16 copy is made in a temporary folder.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path, help="float32 completion model file")
    ap.add_argument("--half", type=Path, default=None, help="its float16 copy (default: made here)")
    ap.add_argument("--images", type=int, default=4)
    a = ap.parse_args(argv)

    from fastem.data.stem import generate_stem
    from fastem.nn.inference import complete_partial_scans
    from fastem.nn.model import load_model, repack_model
    from fastem.scan import PartialScanPipeline, rmse

    imgs = generate_stem(a.images, 512, seed=2020, dose=500.0, device="cpu")
    scans = PartialScanPipeline(a.images, (512, 512), "spiral", 1 / 20, seed=2020, device="cpu")(imgs)
    with tempfile.TemporaryDirectory() as tmp:
        half = a.half or repack_model(a.model, Path(tmp) / "half.pt")
        out = {}
        for name, path in (("float32", a.model), ("float16", half)):
            model, _ = load_model(path, kind="completion-gan")
            done = complete_partial_scans(model, scans.partial, scans.path)
            out[name] = (done, float(np.mean([rmse(done[i], scans.target[i]) for i in range(a.images)])))
    diff = np.abs(out["float32"][0] - out["float16"][0])
    result = {"rmse_float32": out["float32"][1], "rmse_float16": out["float16"][1], "max_abs_diff": float(diff.max()),
              "rms_diff": float(np.sqrt(np.mean(diff ** 2))), "images": a.images}
    print(f"{a.images} test images, spiral 1/20: RMSE float32 {100 * result['rmse_float32']:.3f} %, float16 "
          f"{100 * result['rmse_float16']:.3f} %; completions differ by at most {result['max_abs_diff']:.4f} "
          f"(RMS {result['rms_diff']:.5f}) on [-1, 1]")
    return result


if __name__ == "__main__":
    main()
