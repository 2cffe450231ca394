"""Partial-scan files (``formats_and_cli.md``): what ``fastem scan simulate`` / ``complete`` write.

Layout (HDF5)::

    /scan/partial     (N, H, W) float32  detected signal on the path, nearest-sample infill, [-1, 1]
    /scan/path        (N, H, W) float32  dwell per pixel in [0, 1]
    /scan/truth       (N, H, W) float32  normalised image blurred by the 5x5 Gaussian, [-1, 1]
    /scan  attrs      coverage (requested), measured_coverage (N,), dwell_fraction (N,), path
    /scan/completed   (N, H, W) float32  a completion (``complete``), attr method
    /process/fastem/  provenance + results (fastem.io.write_process_group)

Writes are atomic (``fastem.io.atomic_output``): no partial files, no silent overwrite, never
into an input.
"""

from __future__ import annotations

import numpy as np

from fastem.errors import InputError

__all__ = ["SCAN_GROUP", "simulate_images", "write_partial_scans", "read_partial_scans", "write_completed"]

SCAN_GROUP = "/scan"


def simulate_images(images, kind: str = "spiral", coverage: float = 1 / 20, *, seed: int = 0,
                    dose: float | None = None, device=None, chunk: int = 16, bar=None):
    """Partial scans of an (N, H, W) host stack in batches of ``chunk``; host arrays out.

    Returns ``(partial, path, truth, pipeline)``; example ``i`` uses the random streams of
    ``(seed, i)``, so the result does not depend on ``chunk`` or the device.
    """
    from .partial import PartialScanPipeline

    images = np.asarray(images)
    if images.ndim == 2:
        images = images[None]
    if images.ndim != 3:
        raise InputError(f"images must be (N, rows, cols) or (rows, cols), got shape {images.shape}")
    n, h, w = images.shape
    if min(h, w) < 8:
        raise InputError(f"images of {h}x{w} pixels are too small for a partial scan (8x8 at least)")
    chunk = max(1, min(n, int(chunk)))
    pipe = PartialScanPipeline(chunk, (h, w), kind, coverage, seed=seed, dose=dose, device=device)
    partial = np.empty((n, h, w), np.float32)
    path = np.empty_like(partial)
    truth = np.empty_like(partial)
    batch = np.zeros((chunk, h, w), images.dtype if images.dtype in (np.float32, np.float64) else np.float32)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        batch[: stop - start] = images[start:stop]
        out = pipe(batch, example_base=start)
        for dst, src in ((partial, out.partial), (path, out.path), (truth, out.target)):
            dst[start:stop] = (src.get() if hasattr(src, "get") else src)[: stop - start]
        if bar is not None:
            bar.update(stop - start)
    return partial, path, truth, pipe


def write_partial_scans(output, partial, path, truth, *, coverage: float, kind: str, config: dict, device=None,
                        overwrite: bool = False, inputs=()) -> dict:
    """Write the simulate layout; returns the per-image ``measured_coverage`` and ``dwell_fraction``."""
    import h5py

    from fastem.io import PROCESS_GROUP, atomic_output, provenance, write_process_group

    from .paths import dwell_fraction, measured_coverage

    cov, dwell = np.atleast_1d(measured_coverage(path)), np.atleast_1d(dwell_fraction(path))
    h, w = partial.shape[-2:]
    with atomic_output(output, overwrite=overwrite, inputs=inputs) as tmp:
        with h5py.File(tmp, "w") as f:
            g = f.create_group(SCAN_GROUP)
            for name, arr, text in (
                    ("partial", partial, "detected signal on the path, nearest-sample infill, [-1, 1]"),
                    ("path", path, "dwell per pixel in [0, 1]"),
                    ("truth", truth, "normalised image blurred by a 5x5 Gaussian (sigma 2.5 px), [-1, 1]")):
                g.create_dataset(name, data=arr, compression="gzip", compression_opts=4, chunks=(1, h, w))
                g[name].attrs["description"] = text
            g.attrs["coverage"] = coverage
            g.attrs["measured_coverage"] = cov
            g.attrs["dwell_fraction"] = dwell
            g.attrs["path"] = kind
            write_process_group(f.require_group(PROCESS_GROUP), provenance(config=config, device=device),
                                {"measured_coverage": cov, "dwell_fraction": dwell})
    return {"measured_coverage": cov, "dwell_fraction": dwell}


def read_partial_scans(source):
    """``(partial, path, truth or None)`` as (N, H, W) float32 from a simulate output."""
    import h5py

    from fastem.io import read_dataset

    partial = read_dataset(source, f"{SCAN_GROUP}/partial", dtype=np.float32, ndim=(2, 3))
    path = read_dataset(source, f"{SCAN_GROUP}/path", dtype=np.float32, ndim=(2, 3))
    if partial.shape != path.shape:
        raise InputError(f"{source}: /scan/partial {partial.shape} and /scan/path {path.shape} differ in shape")
    with h5py.File(source, "r") as f:
        truth = np.asarray(f[f"{SCAN_GROUP}/truth"][()], np.float32) if f"{SCAN_GROUP}/truth" in f else None
    if partial.ndim == 2:
        partial, path = partial[None], path[None]
        truth = None if truth is None else truth.reshape(partial.shape) if truth.size == partial.size else None
    if truth is not None and truth.shape != partial.shape:
        truth = None
    return partial, path, truth


def write_completed(output, completed, *, method: str, config: dict, results: dict | None = None,
                    overwrite: bool = False, inputs=()) -> None:
    """Write ``/scan/completed`` (+ provenance and results) atomically."""
    import h5py

    from fastem.backend import cpu_device
    from fastem.io import PROCESS_GROUP, atomic_output, provenance, write_process_group

    with atomic_output(output, overwrite=overwrite, inputs=inputs) as tmp:
        with h5py.File(tmp, "w") as f:
            g = f.create_group(SCAN_GROUP)
            g.create_dataset("completed", data=completed, compression="gzip", compression_opts=4)
            g["completed"].attrs["method"] = method
            g["completed"].attrs["description"] = "completed partial scan, [-1, 1]"
            write_process_group(f.require_group(PROCESS_GROUP), provenance(config=config, device=cpu_device),
                                results or {})
