"""Partial-scan files (``formats_and_cli.md``): what ``fastem scan simulate`` / ``complete`` write.

Layout (HDF5)::

    /scan/partial     (N, H, W) float32  detected signal on the path, nearest-sample infill, [-1, 1]
    /scan/path        (N, H, W) float32  dwell per pixel in [0, 1]
    /scan/truth       (N, H, W) float32  normalised image blurred by the 5x5 Gaussian, [-1, 1]
    /scan  attrs      coverage (requested), measured_coverage (N,), dwell_fraction (N,), path
    /scan/completed   (N, H, W) float32  a completion (``complete``), attr method
    /process/fastem/  provenance + results (fastem.io.write_process_group)

Writes are atomic (``fastem.io.atomic_output``): no partial files, no silent overwrite, never
into an input. Both commands stream: :func:`simulate_to_file` reads (or generates), simulates
and writes ``chunk`` images at a time into datasets created up front, :func:`complete_file`
one image at a time, so memory is bounded by the chunk whatever ``N``. File I/O goes through
:func:`fastem.scan.h5guard.guarded_h5`, so a full disk is one line, never a crash.
"""

from __future__ import annotations

import warnings
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from fastem.errors import InputError

__all__ = ["SCAN_GROUP", "ImageStack", "SyntheticStack", "ScanFile", "simulate_images", "simulate_to_file",
           "write_partial_scans", "read_partial_scans", "complete_file", "write_completed",
           "simulate_output_bytes"]

SCAN_GROUP = "/scan"
_DESCRIPTIONS = {
    "partial": "detected signal on the path, nearest-sample infill, [-1, 1]",
    "path": "dwell per pixel in [0, 1]",
    "truth": "normalised image blurred by a 5x5 Gaussian (sigma 2.5 px), [-1, 1]",
}
#: images whose largest |value| exceeds this are divided by it first (the pipeline normalises
#: every image to [-1, 1] anyway, and its min/max arithmetic would overflow on such values)
_RESCALE_ABOVE = 1e30


def _warn(message: str) -> None:
    from fastem.io import DataWarning

    warnings.warn(message, DataWarning, stacklevel=3)


def _check_real(dtype, where: str) -> None:
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        raise InputError(f"{where}: complex data ({dtype}); partial scans are made of real intensities: store the "
                         f"magnitude (abs) or the real part as a real dataset")
    if dtype.kind not in "fiub":
        raise InputError(f"{where}: expected real numbers, got dtype {dtype}")


# --------------------------------------------------------------------------------------------
# image sources read block by block
# --------------------------------------------------------------------------------------------
class ImageStack:
    """The images of ``IN`` (HDF5 ``FILE:/ds``, CXI, EMD, MRC or TIFF), read ``[start, stop)`` at a time.

    An HDF5 dataset named in the reference is sliced from disk (never loaded whole); other
    inputs are read once. Complex or non-numeric data and ranks other than 2 and 3 are refused
    with the file and dataset named.
    """

    def __init__(self, spec):
        from fastem.io.hdf5 import find_dataset, is_hdf5, open_h5, parse_ref, require_file

        self.spec = str(spec)
        self._file = None
        self._data = None
        path, dataset = parse_ref(spec)
        require_file(path)
        if dataset is not None and is_hdf5(path):
            self._opened = ExitStack()
            self._file = self._opened.enter_context(open_h5(path))
            try:
                ds = find_dataset(self._file, dataset, file_label=str(path))
                self.where = f"{path}:{ds.name}"
                self._check(ds.dtype, ds.shape)
            except Exception:
                self.close()
                raise
            self._data = ds
        else:
            from fastem.io import read_images

            arr = read_images(spec)
            self.where = self.spec
            self._check(arr.dtype, arr.shape)
            self._data = arr
        shape = self._data.shape
        self.single = len(shape) == 2
        self.n = 1 if self.single else int(shape[0])
        self.shape = tuple(int(s) for s in shape[-2:])
        self.dtype = np.dtype(self._data.dtype)

    def _check(self, dtype, shape) -> None:
        _check_real(dtype, self.where)
        if len(shape) not in (2, 3):
            raise InputError(f"{self.where}: expected an (N, rows, cols) or (rows, cols) image array, got shape "
                             f"{tuple(shape)}")
        if 0 in shape:
            raise InputError(f"{self.where}: no images (shape {tuple(shape)})")

    def read(self, start: int, stop: int) -> np.ndarray:
        """Images ``start .. stop - 1`` as a (k, rows, cols) array (as stored)."""
        if self.single:
            return np.asarray(self._data[()])[None]
        return np.asarray(self._data[start:stop])

    def close(self) -> None:
        if self._file is not None:
            self._file = None
            self._opened.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SyntheticStack:
    """``n`` synthetic HAADF-STEM micrographs (:class:`fastem.data.StemGenerator`), made per block."""

    def __init__(self, n: int, size: int = 512, *, seed: int = 0):
        from fastem.data.stem import StemGenerator

        self.n, self.shape, self.single = int(n), (int(size), int(size)), False
        self.dtype = np.dtype(np.float32)
        self.where = f"synthetic HAADF-STEM micrographs (fastem.data.stem, seed {seed})"
        self._gen = StemGenerator(size, seed=seed, device="cpu")

    def read(self, start: int, stop: int) -> np.ndarray:
        return self._gen(stop - start, index_base=start)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


class _ArrayStack:
    """An in-memory (N, H, W) array behind the :class:`ImageStack` interface."""

    def __init__(self, images, where: str = "images"):
        images = np.asarray(images)
        _check_real(images.dtype, where)
        if images.ndim == 2:
            images = images[None]
        if images.ndim != 3:
            raise InputError(f"images must be (N, rows, cols) or (rows, cols), got shape {images.shape}")
        self._data, self.where, self.single = images, where, False
        self.n, self.shape, self.dtype = images.shape[0], images.shape[1:], images.dtype

    def read(self, start, stop):
        return self._data[start:stop]

    def close(self):
        pass


# --------------------------------------------------------------------------------------------
# simulate
# --------------------------------------------------------------------------------------------
def simulate_output_bytes(n: int, shape) -> int:
    """Uncompressed size of the simulate datasets (partial, path, truth: 3 float32 arrays)."""
    return 3 * 4 * int(n) * int(shape[0]) * int(shape[1])


def _prepare_block(imgs: np.ndarray, batch: np.ndarray) -> tuple[int, int]:
    """Copy ``imgs`` into ``batch`` (rescaling overflowing images); returns (non-finite, rescaled) counts."""
    k = imgs.shape[0]
    bad = 0
    rescaled = 0
    if imgs.dtype.kind == "f":
        finite = np.isfinite(imgs)
        bad = int(imgs.size - np.count_nonzero(finite))
        for i in range(k):
            img = imgs[i]
            big = float(np.max(np.abs(img), where=finite[i], initial=0.0))
            if big > _RESCALE_ABOVE:
                batch[i] = np.where(finite[i], img / big, img)  # non-finite pixels: the pipeline zeroes them
                rescaled += 1
            else:
                batch[i] = img
    else:
        batch[:k] = imgs
    return bad, rescaled


def _simulate_blocks(stack, kind, coverage, *, seed, dose, device, chunk, bar, options=None):
    """Yield ``(start, stop, partial, path, truth)`` host float32 blocks, then the pipeline and counts."""
    from fastem.io import require_finite_result

    from .partial import PartialScanPipeline, _check_int

    chunk = _check_int(chunk, "chunk", 1)
    n, (h, w) = stack.n, stack.shape
    if min(h, w) < 8:
        raise InputError(f"{stack.where}: images of {h}x{w} pixels are too small for a partial scan (8x8 at least)")
    chunk = max(1, min(n, chunk))
    pipe = PartialScanPipeline(chunk, (h, w), kind, coverage, seed=seed, dose=dose, device=device, **(options or {}))
    dtype = stack.dtype if stack.dtype in (np.float32, np.float64) else np.dtype(np.float32)
    batch = np.zeros((chunk, h, w), dtype)
    counts = {"non_finite": 0, "rescaled": 0}
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        imgs = stack.read(start, stop)
        if imgs.shape != (stop - start, h, w):
            raise InputError(f"{stack.where}: images {start}..{stop - 1} have shape {imgs.shape[1:]}, expected {(h, w)}")
        bad, rescaled = _prepare_block(imgs, batch)
        counts["non_finite"] += bad
        counts["rescaled"] += rescaled
        out = pipe(batch, example_base=start)
        k = stop - start
        blocks = []
        for src in (out.partial, out.path, out.target):
            host = (src.get() if hasattr(src, "get") else src)[:k]
            require_finite_result(host, f"{stack.where}: partial scans of images {start}..{stop - 1}",
                                  hint="check the input images (values too large?)")
            blocks.append(host)
        yield start, stop, blocks
        if bar is not None:
            bar.update(k)
    yield None, pipe, counts


def _report_counts(stack, counts) -> None:
    if counts["non_finite"]:
        _warn(f"{stack.where}: {counts['non_finite']} NaN or infinite pixel value(s) were set to 0 before "
              f"normalising")
    if counts["rescaled"]:
        _warn(f"{stack.where}: {counts['rescaled']} image(s) with values above {_RESCALE_ABOVE:.0e} were divided by "
              f"their largest |value| before normalising (the result is the same up to rounding)")


def simulate_images(images, kind: str = "spiral", coverage: float = 1 / 20, *, seed: int = 0,
                    dose: float | None = None, device=None, chunk: int = 16, bar=None, options: dict | None = None):
    """Partial scans of an (N, H, W) host stack in batches of ``chunk``; host arrays out.

    ``options``: more :class:`~fastem.scan.PartialScanPipeline` keywords (``measure``,
    ``antialias``, ``scan_blurred``).

    Returns ``(partial, path, truth, pipeline)``; example ``i`` uses the random streams of
    ``(seed, i)``, so the result does not depend on ``chunk`` or the device. Everything is held
    in memory: for large ``N`` use :func:`simulate_to_file`.
    """
    stack = images if hasattr(images, "read") else _ArrayStack(images)
    n, (h, w) = stack.n, stack.shape
    partial = np.empty((n, h, w), np.float32)
    path = np.empty_like(partial)
    truth = np.empty_like(partial)
    for item in _simulate_blocks(stack, kind, coverage, seed=seed, dose=dose, device=device, chunk=chunk, bar=bar,
                                 options=options):
        if item[0] is None:
            _, pipe, counts = item
            break
        start, stop, blocks = item
        for dst, src in zip((partial, path, truth), blocks):
            dst[start:stop] = src
    _report_counts(stack, counts)
    return partial, path, truth, pipe


def simulate_to_file(output, stack, kind: str = "spiral", coverage: float = 1 / 20, *, seed: int = 0,
                     dose: float | None = None, device=None, chunk: int = 16, bar=None, config: dict | None = None,
                     overwrite: bool = False, inputs=(), options: dict | None = None) -> dict:
    """Simulate partial scans of ``stack`` (:class:`ImageStack`, :class:`SyntheticStack` or an
    array) and write the simulate layout to ``output``, ``chunk`` images at a time.

    Memory is bounded by ``chunk`` images whatever ``N``; the file equals the one
    :func:`write_partial_scans` writes for :func:`simulate_images` of the same images.
    Returns ``{"measured_coverage", "dwell_fraction", "pipeline"}``.
    """
    from fastem.io import PROCESS_GROUP, atomic_output, provenance, write_process_group

    from .h5guard import guarded_h5
    from .paths import dwell_fraction, measured_coverage

    stack = stack if hasattr(stack, "read") else _ArrayStack(stack)
    n, (h, w) = stack.n, stack.shape
    cov = np.empty(n)
    dwell = np.empty(n)
    with atomic_output(output, overwrite=overwrite, inputs=inputs) as tmp, guarded_h5(tmp, output) as f:
        g = f.create_group(SCAN_GROUP)
        for name, text in _DESCRIPTIONS.items():
            g.create_dataset(name, shape=(n, h, w), dtype=np.float32, compression="gzip", compression_opts=4,
                             chunks=(1, h, w))
            g[name].attrs["description"] = text
        for item in _simulate_blocks(stack, kind, coverage, seed=seed, dose=dose, device=device, chunk=chunk,
                                     bar=bar, options=options):
            if item[0] is None:
                _, pipe, counts = item
                break
            start, stop, blocks = item
            for name, block in zip(_DESCRIPTIONS, blocks):
                g[name][start:stop] = block
            cov[start:stop] = measured_coverage(blocks[1])
            dwell[start:stop] = dwell_fraction(blocks[1])
            f.guard.check()   # a full disk stops the run here, not after the last image
        _report_counts(stack, counts)
        g.attrs["coverage"] = coverage
        g.attrs["coverage_measure"] = pipe.measure
        g.attrs["antialias"] = pipe.antialias
        g.attrs["scan_blurred"] = pipe.scan_blurred
        g.attrs["measured_coverage"] = cov
        g.attrs["dwell_fraction"] = dwell
        g.attrs["path"] = kind
        write_process_group(f.require_group(PROCESS_GROUP), provenance(config=config or {}, device=device),
                            {"measured_coverage": cov, "dwell_fraction": dwell})
    return {"measured_coverage": cov, "dwell_fraction": dwell, "pipeline": pipe}


def write_partial_scans(output, partial, path, truth, *, coverage: float, kind: str, config: dict, device=None,
                        overwrite: bool = False, inputs=()) -> dict:
    """Write the simulate layout; returns the per-image ``measured_coverage`` and ``dwell_fraction``."""
    from fastem.io import PROCESS_GROUP, atomic_output, provenance, require_finite_result, write_process_group

    from .h5guard import guarded_h5
    from .paths import dwell_fraction, measured_coverage

    for name, arr in (("partial", partial), ("path", path), ("truth", truth)):
        require_finite_result(arr, f"{output}: /scan/{name}")
    cov, dwell = np.atleast_1d(measured_coverage(path)), np.atleast_1d(dwell_fraction(path))
    h, w = partial.shape[-2:]
    with atomic_output(output, overwrite=overwrite, inputs=inputs) as tmp, guarded_h5(tmp, output) as f:
        g = f.create_group(SCAN_GROUP)
        for name, arr in (("partial", partial), ("path", path), ("truth", truth)):
            g.create_dataset(name, data=arr, compression="gzip", compression_opts=4, chunks=(1, h, w))
            g[name].attrs["description"] = _DESCRIPTIONS[name]
        g.attrs["coverage"] = coverage
        g.attrs["measured_coverage"] = cov
        g.attrs["dwell_fraction"] = dwell
        g.attrs["path"] = kind
        write_process_group(f.require_group(PROCESS_GROUP), provenance(config=config, device=device),
                            {"measured_coverage": cov, "dwell_fraction": dwell})
    return {"measured_coverage": cov, "dwell_fraction": dwell}


# --------------------------------------------------------------------------------------------
# complete
# --------------------------------------------------------------------------------------------
class ScanFile:
    """A simulate output (``/scan/partial``, ``/scan/path``, optional ``/scan/truth``) read image by image.

    Checks up front: real dtypes, ranks 2 or 3, equal shapes (a ``/scan/truth`` of another shape
    is an error naming both shapes).
    """

    def __init__(self, source):
        import h5py

        from fastem.io.hdf5 import find_dataset, open_h5, parse_ref, require_file

        path, ds = parse_ref(source)
        if ds is not None:
            raise InputError(f"{source}: give the file only (it must hold {SCAN_GROUP}/partial and {SCAN_GROUP}/path)")
        require_file(path)
        self.path = Path(path)
        self._opened = ExitStack()
        self._f = self._opened.enter_context(open_h5(path))
        try:
            self.partial = find_dataset(self._f, f"{SCAN_GROUP}/partial", file_label=str(path))
            self.dwell = find_dataset(self._f, f"{SCAN_GROUP}/path", file_label=str(path))
            truth = self._f.get(f"{SCAN_GROUP}/truth")
            self.truth = truth if isinstance(truth, h5py.Dataset) else None
            for ds_ in (self.partial, self.dwell, self.truth):
                if ds_ is None:
                    continue
                where = f"{path}:{ds_.name}"
                _check_real(ds_.dtype, where)
                if ds_.ndim not in (2, 3) or 0 in ds_.shape:
                    raise InputError(f"{where}: expected (N, rows, cols) or (rows, cols) scans, got shape {ds_.shape}")
            if self.partial.shape != self.dwell.shape:
                raise InputError(f"{path}: {SCAN_GROUP}/partial {self.partial.shape} and {SCAN_GROUP}/path "
                                 f"{self.dwell.shape} differ in shape")
            if self.truth is not None and self.truth.shape != self.partial.shape:
                raise InputError(f"{path}:{SCAN_GROUP}/truth has shape {self.truth.shape} but {SCAN_GROUP}/partial "
                                 f"has {self.partial.shape}; they must match (remove {SCAN_GROUP}/truth to complete "
                                 f"without metrics)")
        except Exception:
            self.close()
            raise
        self.single = self.partial.ndim == 2
        self.n = 1 if self.single else int(self.partial.shape[0])
        self.shape = tuple(int(s) for s in self.partial.shape[-2:])

    def read(self, i: int):
        """``(partial, path, truth or None)`` of image ``i``, (H, W) float32 each."""
        sel = () if self.single else (i,)
        get = (lambda ds: None if ds is None else np.asarray(ds[sel], np.float32))
        return get(self.partial), get(self.dwell), get(self.truth)

    def close(self) -> None:
        if self._f is not None:
            self._f = None
            self._opened.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_partial_scans(source):
    """``(partial, path, truth or None)`` as (N, H, W) float32 from a simulate output (loaded whole)."""
    with ScanFile(source) as sf:
        read = (lambda ds: None if ds is None else np.asarray(ds[()], np.float32).reshape(sf.n, *sf.shape))
        return read(sf.partial), read(sf.dwell), read(sf.truth)


def complete_file(source, output, method: str = "linear", *, bar=None, config: dict | None = None,
                  overwrite: bool = False, inputs=()) -> dict:
    """Complete every scan of the simulate output ``source`` and write ``/scan/completed`` to ``output``.

    One image at a time (memory of one image whatever ``N``). NaN or infinite pixels of the
    partial scans or paths are not used as samples (a :class:`~fastem.io.DataWarning` gives the
    count); RMSE and SSIM against ``/scan/truth`` when present (images whose truth is not finite
    are left out of the metrics, with a warning). Returns ``{"rmse", "ssim"}`` arrays or ``None``.
    """
    from fastem.io import PROCESS_GROUP, atomic_output, provenance, require_finite_result, write_process_group
    from fastem.backend import cpu_device

    from .baselines import complete as complete_one
    from .h5guard import guarded_h5
    from .metrics import rmse, ssim

    errors, sims = [], []
    bad_pixels = bad_truth = out_of_range = 0
    with ScanFile(source) as sf:
        n, (h, w) = sf.n, sf.shape
        with atomic_output(output, overwrite=overwrite, inputs=inputs) as tmp, guarded_h5(tmp, output) as f:
            g = f.create_group(SCAN_GROUP)
            d = g.create_dataset("completed", shape=(n, h, w), dtype=np.float32, compression="gzip",
                                 compression_opts=4, chunks=(1, h, w))
            d.attrs["method"] = method
            d.attrs["description"] = "completed partial scan, [-1, 1]"
            for i in range(n):
                partial, path, truth = sf.read(i)
                bad_pixels += int(np.count_nonzero(~(np.isfinite(partial) & np.isfinite(path))))
                with np.errstate(invalid="ignore"):
                    out_of_range += int(np.count_nonzero(np.abs(partial) > 1.001)
                                        + np.count_nonzero((path < 0) | (path > 1.001)))
                try:
                    done = complete_one(partial, path, method).astype(np.float32)
                except InputError as exc:
                    raise InputError(f"{sf.path}: image {i}: {exc}") from None
                require_finite_result(done, f"{sf.path}: completion of image {i}")
                d[i] = done
                if truth is not None:
                    if np.isfinite(truth).all():
                        errors.append(rmse(done, truth))
                        if min(h, w) >= 12:
                            sims.append(ssim(done, truth))
                        if bar is not None:
                            bar.set_postfix(RMSE=f"{np.mean(errors):.4f}")
                    else:
                        bad_truth += 1
                f.guard.check()
                if bar is not None:
                    bar.update(1)
            if bad_pixels:
                _warn(f"{sf.path}: {bad_pixels} NaN or infinite pixel(s) in {SCAN_GROUP}/partial or {SCAN_GROUP}/path "
                      f"were not used as samples")
            if out_of_range:
                _warn(f"{sf.path}: {out_of_range} pixel(s) of {SCAN_GROUP}/partial outside [-1, 1] or of "
                      f"{SCAN_GROUP}/path outside [0, 1] (not a `fastem scan simulate` output?); samples are clipped "
                      f"to [-1, 1]")
            if bad_truth:
                _warn(f"{sf.path}: {bad_truth} image(s) of {SCAN_GROUP}/truth hold NaN or inf and are left out of "
                      f"RMSE / SSIM")
            results = {"rmse": np.array(errors) if errors else None, "ssim": np.array(sims) if sims else None}
            for name, values in results.items():
                require_finite_result(values, f"{output}: {name}")
            write_process_group(f.require_group(PROCESS_GROUP), provenance(config=config or {}, device=cpu_device),
                                results)
    return results


def write_completed(output, completed, *, method: str, config: dict, results: dict | None = None,
                    overwrite: bool = False, inputs=()) -> None:
    """Write ``/scan/completed`` (+ provenance and results) atomically."""
    from fastem.backend import cpu_device
    from fastem.io import PROCESS_GROUP, atomic_output, provenance, require_finite_result, write_process_group

    from .h5guard import guarded_h5

    require_finite_result(completed, f"{output}: /scan/completed")
    with atomic_output(output, overwrite=overwrite, inputs=inputs) as tmp, guarded_h5(tmp, output) as f:
        g = f.create_group(SCAN_GROUP)
        g.create_dataset("completed", data=completed, compression="gzip", compression_opts=4)
        g["completed"].attrs["method"] = method
        g["completed"].attrs["description"] = "completed partial scan, [-1, 1]"
        write_process_group(f.require_group(PROCESS_GROUP), provenance(config=config, device=cpu_device),
                            results or {})
