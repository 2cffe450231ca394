"""The scan domain's job module: what ``fastem scan simulate`` / ``complete`` read and write (layout: docs/scan.md).

Layout (HDF5)::

    /scan/partial     (N, H, W) float32  detected signal on the path, nearest-sample infill, [-1, 1]
    /scan/path        (N, H, W) float32  dwell per pixel in [0, 1]
    /scan/truth       (N, H, W) float32  normalised image blurred by the 5x5 Gaussian, [-1, 1]
    /scan  attrs      coverage (requested), measured_coverage (N,), dwell_fraction (N,), path
    /scan/completed   (N, H, W) float32  a completion (``complete``), attr method (+ model, model_sha256, ensemble)
    /scan/completed_intensity (N, H, W) float32  with a path mask (a real acquisition): the
                      completion in the input's intensity scale, attrs intensity_min/max (N,)
    /process/fastem/  provenance + results (fastem.io.write_process_group)

Writes are atomic (``fastem.io.atomic_output``): no partial files, no silent overwrite, never
into an input. Both commands stream: :func:`simulate_to_file` reads (or generates), simulates
and writes ``chunk`` images at a time into datasets created up front, :func:`complete_file`
one image at a time, so memory is bounded by the chunk whatever ``N``. File I/O goes through
:func:`fastem.scan.h5guard.guarded_h5`, so a full disk is one line, never a crash.
"""

from __future__ import annotations

import functools
import warnings
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from fastem import backend
from fastem.errors import InputError

__all__ = ["SCAN_GROUP", "ImageStack", "SyntheticStack", "ScanFile", "AcquiredScans", "simulate_images",
           "simulate_to_file", "write_partial_scans", "read_partial_scans", "open_scans", "scan_conditions",
           "normalise_acquired", "to_intensity", "complete_file", "write_completed", "simulate_output_bytes"]

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
class _Closable:
    """A context manager whose :meth:`close` closes the files it opened into ``self._opened``."""

    _opened: ExitStack | None = None

    def close(self) -> None:
        opened, self._opened = self._opened, None
        if opened is not None:
            opened.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ImageStack(_Closable):
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
        from fastem.io.inputs import is_emd_array

        if dataset is not None and is_hdf5(path) and not is_emd_array(spec):  # EMD: axis order by read_emd
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

    def source(self, start: int, stop: int):
        """A small picklable description from which a Dask worker reads images ``start .. stop - 1``."""
        return ("file", self.spec)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Images ``start .. stop - 1`` as a (k, rows, cols) array (as stored)."""
        if self.single:
            return np.asarray(self._data[()])[None]
        return np.asarray(self._data[start:stop])


class SyntheticStack(_Closable):
    """``n`` synthetic HAADF-STEM micrographs (:class:`fastem.data.StemGenerator`), made per block."""

    def __init__(self, n: int, size: int = 512, *, seed: int = 0):
        from fastem.data.stem import StemGenerator

        self.n, self.shape, self.single = int(n), (int(size), int(size)), False
        self.dtype = np.dtype(np.float32)
        self.where = f"synthetic HAADF-STEM micrographs (fastem.data.stem, seed {seed})"
        self._gen = StemGenerator(size, seed=seed, device="cpu")
        self._seed = int(seed)

    def source(self, start: int, stop: int):
        return ("synthetic", self.n, self.shape[0], self._seed)

    def read(self, start: int, stop: int) -> np.ndarray:
        return self._gen(stop - start, index_base=start)


class _ArrayStack(_Closable):
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

    def source(self, start: int, stop: int):
        return ("block", start, np.ascontiguousarray(self._data[start:stop]))


def _open_source(source):
    """The stack a worker reads from (see the ``source`` methods); ``(stack, offset)``."""
    if source[0] == "file":
        return ImageStack(source[1]), 0
    if source[0] == "synthetic":
        return SyntheticStack(source[1], source[2], seed=source[3]), 0
    return _ArrayStack(source[2]), source[1]


@functools.lru_cache(maxsize=4)
def _worker_pipeline(k, shape, kind, coverage, seed, dose, device, options):
    from .partial import PartialScanPipeline

    return PartialScanPipeline(k, shape, kind, coverage, seed=seed, dose=dose, device=device, **dict(options))


#: gzip level of the scan datasets (chunks of one image); workers compress with the same level
SCAN_DEFLATE_LEVEL = 4


def simulate_block_task(task: dict) -> dict:
    """One block of :func:`simulate_to_file` on a worker: read, simulate, return host blocks.

    ``task``: ``source`` (a stack's :meth:`source`), ``start``, ``stop``, ``kind``, ``coverage``,
    ``seed``, ``dose``, ``options`` (a tuple of pipeline keyword pairs), ``device`` (None: the
    worker's default). Example ``i`` uses the random streams of ``(seed, i)``, so a block gives
    the same values on any worker, alone or in any split (bitwise on one kind of CPU).
    """
    from fastem.io import require_finite_result

    stack, offset = _open_source(task["source"])
    start, stop = task["start"], task["stop"]
    with stack:
        imgs = stack.read(start - offset, stop - offset)
        k, (h, w) = stop - start, stack.shape
        dtype = stack.dtype if stack.dtype in (np.float32, np.float64) else np.dtype(np.float32)
        batch = np.zeros((k, h, w), dtype)
        bad, rescaled = _prepare_block(imgs, batch)
        pipe = _worker_pipeline(k, (h, w), task["kind"], task["coverage"], task["seed"], task["dose"], task["device"],
                                task["options"])
        out = pipe(batch, example_base=start)
        blocks = []
        for src in (out.partial, out.path, out.target):
            host = backend.to_host(src, copy=True)[:k]
            require_finite_result(host, f"{stack.where}: partial scans of images {start}..{stop - 1}",
                                  hint="check the input images (values too large?)")
            blocks.append(host)
    res = {"start": start, "stop": stop, "blocks": blocks, "non_finite": bad, "rescaled": rescaled,
           "attrs": {"measure": pipe.measure, "antialias": pipe.antialias, "scan_blurred": pipe.scan_blurred}}
    if task.get("deflate"):
        res["blocks"] = _deflated(blocks, int(task["deflate"]))
    return res


def _deflated(blocks, level: int) -> dict:
    """The HDF5 chunks of ``blocks`` (partial, path, truth), compressed here as the file's gzip
    filter would (one ``(1, h, w)`` float32 chunk per image), with the path's coverage figures: a
    worker does the compression, so the client only copies bytes into the file."""
    import zlib

    from .paths import dwell_fraction, measured_coverage

    chunks = [[zlib.compress(np.ascontiguousarray(img, dtype="<f4").tobytes(), level) for img in b] for b in blocks]
    return {"chunks": chunks, "coverage": measured_coverage(blocks[1]), "dwell": dwell_fraction(blocks[1])}


def _distributed_blocks(stack, kind, coverage, *, seed, dose, chunk, bar, options, executor):
    """Like :func:`_simulate_blocks`, with the blocks computed by ``executor`` (in completion order)."""
    from .partial import _check_int

    chunk = _check_int(chunk, "chunk", 1)
    n, (h, w) = stack.n, stack.shape
    if min(h, w) < 8:
        raise InputError(f"{stack.where}: images of {h}x{w} pixels are too small for a partial scan (8x8 at least)")
    chunk = max(1, min(n, chunk))
    from fastem.executor import items_per_task

    # per image on a worker: the input, its blurred copy, partial, path, truth, noise and infill
    # work arrays of the pipeline, about 12 float32 arrays of the image's size
    chunk = items_per_task(executor, chunk, 12 * 4 * h * w, what="scan simulate", item="image")
    opts = tuple(sorted((options or {}).items()))
    tasks = ({"source": stack.source(a, min(n, a + chunk)), "start": a, "stop": min(n, a + chunk), "kind": kind,
              "coverage": coverage, "seed": seed, "dose": dose, "options": opts, "device": None,
              "deflate": SCAN_DEFLATE_LEVEL} for a in range(0, n, chunk))
    counts = {"non_finite": 0, "rescaled": 0}
    attrs = None
    for _, res in executor.imap_unordered(simulate_block_task, tasks):
        counts["non_finite"] += res["non_finite"]
        counts["rescaled"] += res["rescaled"]
        attrs = res["attrs"]
        yield res["start"], res["stop"], res["blocks"]
        if bar is not None:
            bar.update(res["stop"] - res["start"])
    yield None, SimpleNamespace(**attrs), counts


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
            host = backend.to_host(src)[:k]
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
                     overwrite: bool = False, inputs=(), options: dict | None = None, executor=None) -> dict:
    """Simulate partial scans of ``stack`` (:class:`ImageStack`, :class:`SyntheticStack` or an
    array) and write the simulate layout to ``output``, ``chunk`` images at a time.

    Memory is bounded by ``chunk`` images whatever ``N``; the file equals the one
    :func:`write_partial_scans` writes for :func:`simulate_images` of the same images.
    ``executor`` (:mod:`fastem.executor`, e.g. a :class:`~fastem.executor.DaskExecutor`): the
    blocks are simulated on its workers (each reads its own images: a file input is opened by
    the worker, never sent), at most two per worker in flight, and written here by region as
    they arrive; the file is the same as without it (each example has its own random streams),
    and a block lost with a worker is recomputed by Dask. ``device`` is then each worker's own.
    Returns ``{"measured_coverage", "dwell_fraction", "pipeline"}`` (with an executor,
    ``pipeline`` holds only the pipeline's ``measure``, ``antialias`` and ``scan_blurred``).
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
            g.create_dataset(name, shape=(n, h, w), dtype=np.float32, compression="gzip",
                             compression_opts=SCAN_DEFLATE_LEVEL, chunks=(1, h, w))
            g[name].attrs["description"] = text
        from fastem.executor import InlineExecutor

        if executor is None or isinstance(executor, InlineExecutor):
            blocks_iter = _simulate_blocks(stack, kind, coverage, seed=seed, dose=dose, device=device, chunk=chunk,
                                           bar=bar, options=options)
        else:
            blocks_iter = _distributed_blocks(stack, kind, coverage, seed=seed, dose=dose, chunk=chunk, bar=bar,
                                              options=options, executor=executor)
        for item in blocks_iter:
            if item[0] is None:
                _, pipe, counts = item
                break
            start, stop, blocks = item
            if isinstance(blocks, dict):       # compressed on a worker: the chunks go in as they are
                for name, chunks in zip(_DESCRIPTIONS, blocks["chunks"]):
                    for i, raw in enumerate(chunks):
                        g[name].id.write_direct_chunk((start + i, 0, 0), raw)
                cov[start:stop] = blocks["coverage"]
                dwell[start:stop] = blocks["dwell"]
            else:
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
class ScanFile(_Closable):
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
        group = self._f.get(SCAN_GROUP)
        #: the ``/scan`` attributes (``path``, ``coverage``, ``dwell_fraction``, ...) as read
        self.attrs = dict(group.attrs) if isinstance(group, h5py.Group) else {}

    def read(self, i: int):
        """``(partial, path, truth or None)`` of image ``i``, (H, W) float32 each."""
        sel = () if self.single else (i,)
        get = (lambda ds: None if ds is None else np.asarray(ds[sel], np.float32))
        return get(self.partial), get(self.dwell), get(self.truth)



def read_partial_scans(source):
    """``(partial, path, truth or None)`` as (N, H, W) float32 from a simulate output (loaded whole)."""
    with ScanFile(source) as sf:
        read = (lambda ds: None if ds is None else np.asarray(ds[()], np.float32).reshape(sf.n, *sf.shape))
        return read(sf.partial), read(sf.dwell), read(sf.truth)


def scan_conditions(reader) -> tuple[str | None, float | None]:
    """``(path type, mean dose fraction)`` of the scans behind ``reader``, ``None`` where unknown.

    :class:`ScanFile`: the ``/scan`` attributes ``path`` and ``dwell_fraction`` (mean) that
    ``fastem scan simulate`` writes; :class:`AcquiredScans`: no path type, the masks' mean dwell.
    What a completion model's record is compared with (:func:`fastem.nn.model.check_model_use`).
    """
    if isinstance(reader, AcquiredScans):
        return None, reader.mean_dwell()
    attrs = reader.attrs
    kind = attrs.get("path")
    kind = kind.decode() if isinstance(kind, bytes) else (str(kind) if kind is not None else None)
    dwell = attrs.get("dwell_fraction")
    mean = float(np.mean(dwell)) if dwell is not None and np.size(dwell) else None
    return kind, (mean if mean is not None and np.isfinite(mean) else None)


#: a mask image whose values span less than this fraction of their magnitude counts as constant
_CONSTANT_RTOL = 1e-6


def normalise_acquired(image, dwell, where: str = "image"):
    """Normalise one acquired partial scan the way the completion model was trained (spec steps 1 and 4).

    The samples are the pixels with ``dwell > 0``; their [min, max] is mapped linearly to
    [-1, 1] (a near-constant set of samples becomes 0), and every other pixel takes the value
    of its nearest sample (exact Euclidean, :func:`fastem.kernels.partial_scan.nearest_sampled`,
    as ``/scan/partial`` stores it). Values on the samples are used as they are: a binary mask
    gives exactly the training input of the paper's 1-px path.

    Parameters
    ----------
    image : (H, W) real array
        The acquired intensities (any scale, any units); unsampled pixels are ignored.
    dwell : (H, W) float array
        Dwell per pixel in [0, 1] (0 = not visited).
    where : str
        Names the image in errors.

    Returns
    -------
    partial : (H, W) float32
        Network input channel 0, in [-1, 1], nearest-sample infill.
    lo, hi : float
        The samples' minimum and maximum: ``intensity = lo + (x + 1) / 2 * (hi - lo)`` maps a
        completion ``x`` in [-1, 1] back to the input's scale (:func:`to_intensity`).

    Raises
    ------
    InputError
        No sampled pixel; NaN or infinite values at sampled pixels (count given).
    """
    from .baselines import _nearest

    img = np.asarray(image)
    m = np.asarray(dwell)
    if img.shape != m.shape or img.ndim != 2:
        raise InputError(f"{where}: image {img.shape} and path mask {m.shape} must be equal 2D shapes")
    sampled = m > 0
    if not sampled.any():
        raise InputError(f"{where}: the path mask samples no pixel (all zero): nothing to complete from")
    values = img[sampled].astype(np.float64)
    bad = int(values.size - np.count_nonzero(np.isfinite(values)))
    if bad:
        raise InputError(f"{where}: {bad} NaN or infinite value(s) at sampled pixels (mask > 0); fix the data or "
                         f"set those pixels to 0 in the path mask")
    lo, hi = float(values.min()), float(values.max())
    full = np.zeros(img.shape, np.float64)
    if hi - lo > _CONSTANT_RTOL * max(abs(lo), abs(hi)) and hi > lo:
        full[sampled] = np.clip(2.0 * (values - lo) / (hi - lo) - 1.0, -1.0, 1.0)
    return _nearest(full, sampled).astype(np.float32), lo, hi


def to_intensity(completed, lo: float, hi: float) -> np.ndarray:
    """Map a completion in [-1, 1] back to the acquired intensity scale (the inverse of
    :func:`normalise_acquired`'s min/max); float32, same shape."""
    x = np.asarray(completed, np.float64)
    return (lo + (x + 1.0) * 0.5 * (hi - lo)).astype(np.float32)


class AcquiredScans(_Closable):
    """A user's own partial scans: the images of ``IN`` and their dwell/path mask, image by image.

    ``IN`` and ``MASK`` are anything :class:`ImageStack` reads (HDF5 ``FILE:/ds``, CXI, EMD,
    MRC, TIFF). The mask has the images' shape, (N, H, W) or (H, W); a single (H, W) mask (or a
    stack of one) applies to every image. Non-zero mask pixels are sampled: values in [0, 1]
    are the dwell; a mask image with values above 1 (a 0/255 image, say) is binarised (non-zero
    -> 1) with a :class:`~fastem.io.DataWarning`. NaN / infinite or negative mask values, an
    all-zero mask and mismatched shapes are one-line errors naming ``mask_flag`` and the file.
    :meth:`read` returns what :class:`ScanFile` does, normalised by :func:`normalise_acquired`,
    and keeps each image's (min, max) in :attr:`scale`.
    """

    def __init__(self, source, mask, *, mask_flag: str = "--path-mask"):
        self.flag = mask_flag
        self._images = ImageStack(source)
        try:
            self._masks = ImageStack(mask)
        except Exception:
            self._images.close()
            raise
        try:
            self._check()
        except Exception:
            self.close()
            raise
        self.path = self._images.where
        self.mask_where = self._masks.where
        self.single = self._images.single
        self.n, self.shape = self._images.n, self._images.shape
        self.scale: dict[int, tuple[float, float]] = {}
        self.binarised = 0
        self._seen: set[int] = set()

    def _check(self) -> None:
        im, mk = self._images, self._masks
        if mk.shape != im.shape or mk.n not in (1, im.n):
            mshape = mk.shape if mk.single else (mk.n, *mk.shape)
            ishape = im.shape if im.single else (im.n, *im.shape)
            raise InputError(f"{self.flag} {mk.where}: mask of shape {tuple(mshape)} does not match the images of "
                             f"{im.where}, shape {tuple(ishape)} (give one (rows, cols) mask or one per image)")

    def read_mask(self, i: int) -> np.ndarray:
        """Dwell map of image ``i``, (H, W) float32 in [0, 1] (checked, binarised if needed)."""
        j = 0 if self._masks.n == 1 else i
        m = np.asarray(self._masks.read(j, j + 1)[0])
        if m.dtype.kind == "b":
            m = m.astype(np.float32)
        where = f"{self.flag} {self._masks.where}" + (f": image {j}" if self._masks.n > 1 else "")
        mf = m.astype(np.float64)
        if not np.isfinite(mf).all():
            raise InputError(f"{where}: {int(np.count_nonzero(~np.isfinite(mf)))} NaN or infinite mask value(s); "
                             f"a path mask holds dwell in [0, 1] (0 = not sampled)")
        if (mf < 0).any():
            raise InputError(f"{where}: {int(np.count_nonzero(mf < 0))} negative mask value(s) (smallest "
                             f"{mf.min():g}); a path mask holds dwell in [0, 1] (0 = not sampled)")
        if not (mf > 0).any():
            raise InputError(f"{where}: the path mask is all zero: no pixel was sampled")
        if mf.max() > 1.0:
            mf = (mf > 0).astype(np.float64)
            if j not in self._seen:
                self.binarised += 1
        self._seen.add(j)
        return mf.astype(np.float32)

    def mean_dwell(self) -> float:
        """Mean dose fraction over every mask image (reads the masks once)."""
        return float(np.mean([float(np.mean(self.read_mask(j))) for j in range(self._masks.n)]))

    def read(self, i: int):
        """``(partial, path, None)`` of image ``i``: normalised input in [-1, 1] and its dwell map."""
        m = self.read_mask(i)
        img = np.asarray(self._images.read(i, i + 1)[0])
        where = self._images.where + ("" if self._images.single else f": image {i}")
        partial, lo, hi = normalise_acquired(img, m, where)
        self.scale[i] = (lo, hi)
        return partial, m, None

    def close(self) -> None:
        self._images.close()
        if hasattr(self, "_masks"):
            self._masks.close()


def open_scans(source, path_mask=None):
    """The reader for ``scan complete``'s input: :class:`ScanFile` (a simulate output) or, with
    ``path_mask``, :class:`AcquiredScans` (a user's own images plus their path mask)."""
    return ScanFile(source) if path_mask is None else AcquiredScans(source, path_mask)


def _network_inputs(partial: np.ndarray, path: np.ndarray, where: str):
    """``(partial, path)`` as a completion network expects them: finite, partial in [-1, 1]
    with nearest infill, dwell in [0, 1]. NaN / infinite pixels are not samples (the partial
    scan is re-infilled from the remaining samples); no sample left is an error."""
    from .baselines import _nearest

    usable = np.isfinite(partial) & np.isfinite(path)
    m = np.where(usable, np.clip(path, 0.0, 1.0), 0.0).astype(np.float32)
    sampled = m > 0
    if not sampled.any():
        raise InputError(f"{where}: the path samples no pixel: nothing to complete from")
    p = np.clip(np.where(usable, partial, 0.0), -1.0, 1.0).astype(np.float32)
    if not usable.all():
        p = _nearest(np.where(sampled, p, 0.0).astype(np.float64), sampled).astype(np.float32)
    return p, m


def _complete_block(sf, start: int, stop: int, method: str, completer=None) -> dict:
    """Complete images ``start .. stop - 1`` of the open scans ``sf``; everything but the writing.

    Returns the completions, for acquired scans (``sf.scale``) their intensity-scale versions,
    inputs and ``(lo, hi, coverage, dwell)``, per-image RMSE/SSIM against the truth (None where
    there is none or it is not finite) and the counts of suspicious pixels.
    """
    from fastem.io import require_finite_result

    from .baselines import complete as complete_one
    from .metrics import rmse, ssim
    from .paths import dwell_fraction, measured_coverage

    acquired = isinstance(sf, AcquiredScans)
    h, w = sf.shape
    res = {"start": start, "stop": stop, "bad_pixels": 0, "out_of_range": 0, "bad_truth": 0, "completed": [],
           "rmse": [], "ssim": [], "scale": [], "intensity": [], "partial": [], "path": []}
    block_p, block_m, truths = [], [], []
    for i in range(start, stop):
        partial, path, truth = sf.read(i)
        if not acquired:
            res["bad_pixels"] += int(np.count_nonzero(~(np.isfinite(partial) & np.isfinite(path))))
            with np.errstate(invalid="ignore"):
                res["out_of_range"] += int(np.count_nonzero(np.abs(partial) > 1.001)
                                           + np.count_nonzero((path < 0) | (path > 1.001)))
        block_p.append(partial)
        block_m.append(path)
        truths.append(truth)
    if completer is None:
        done = []
        for i, partial, path in zip(range(start, stop), block_p, block_m):
            try:
                done.append(complete_one(partial, path, method).astype(np.float32))
            except InputError as exc:
                raise InputError(f"{sf.path}: image {i}: {exc}") from None
    else:
        cleaned = [_network_inputs(p, m, f"{sf.path}: image {i}")
                   for i, p, m in zip(range(start, stop), block_p, block_m)]
        out = completer(np.stack([c[0] for c in cleaned]), np.stack([c[1] for c in cleaned]))
        done = [np.clip(np.asarray(o, np.float32), -1.0, 1.0) for o in out]
    for i, completed, partial, path, truth in zip(range(start, stop), done, block_p, block_m, truths):
        require_finite_result(completed, f"{sf.path}: completion of image {i}")
        res["completed"].append(completed)
        if acquired:
            lo, hi = sf.scale[i]
            intensity = to_intensity(completed, lo, hi)
            require_finite_result(intensity, f"{sf.path}: completion of image {i} in the input's scale")
            res["scale"].append((lo, hi, measured_coverage(path), dwell_fraction(path)))
            res["intensity"].append(intensity)
            res["partial"].append(partial)
            res["path"].append(path)
        if truth is not None and np.isfinite(truth).all():
            res["rmse"].append(rmse(completed, truth))
            res["ssim"].append(ssim(completed, truth) if min(h, w) >= 12 else None)
        else:
            res["bad_truth"] += truth is not None
            res["rmse"].append(None)
            res["ssim"].append(None)
    return res


def complete_block_task(task: dict) -> dict:
    """One block of :func:`complete_file` with a baseline, on a worker that opens the scans itself."""
    with open_scans(task["source"], task["path_mask"]) as sf:
        return _complete_block(sf, task["start"], task["stop"], task["method"])


def complete_file(source, output, method: str = "linear", *, completer=None, chunk: int = 1, path_mask=None,
                  bar=None, config: dict | None = None, attrs: dict | None = None, device=None,
                  overwrite: bool = False, inputs=(), executor=None) -> dict:
    """Complete every scan of ``source`` and write ``/scan/completed`` (in [-1, 1]) to ``output``.

    Parameters
    ----------
    source : path
        A simulate output (``/scan/partial``, ``/scan/path``, optional ``/scan/truth``), or with
        ``path_mask`` the user's own images (:class:`AcquiredScans`).
    output : path
        The HDF5 file written (atomically; never an input).
    method : str
        A baseline of :mod:`fastem.scan.baselines` (used when ``completer`` is None), else the
        name recorded in the ``method`` attribute (e.g. ``"model"``).
    completer : callable, optional
        ``completer(partial, path) -> completion``, (k, H, W) float32 arrays in and out: partial
        scans in [-1, 1] with nearest infill, dwell in [0, 1], completions in [-1, 1] (a
        completion network, :func:`fastem.nn.inference.complete_partial_scans`). Its inputs are
        cleaned first (NaN / infinite pixels are not samples).
    chunk : int
        Images per ``completer`` call (memory holds ``chunk`` images).
    path_mask : str, optional
        Dwell/path mask of the images in ``source`` (seed 000's real-acquisition case): each
        image is normalised by :func:`normalise_acquired`; the output adds
        ``/scan/completed_intensity`` (float32, the input's intensity scale: attributes
        ``intensity_min`` and ``intensity_max``, (N,) each, the sampled pixels' range),
        ``/scan/partial`` (the normalised input) and ``/scan/path`` (the dwell used), plus the
        ``/scan`` attributes ``dwell_fraction`` and ``measured_coverage``.
    bar : progress bar, optional
        ``update(k)`` per block, ``set_postfix`` with the running RMSE.
    config : dict
        Configuration recorded in the provenance (``/process/fastem``).
    attrs : dict, optional
        Extra attributes of ``/scan/completed`` (the model file and its sha256).
    device : Device or str, optional
        Recorded in the provenance (default: the CPU, where the baselines run).
    executor : fastem.executor.Executor, optional
        Complete the blocks of ``chunk`` images with a baseline on its workers (each opens the
        scans itself; results written here by region as they arrive, same file as without).
        Ignored with a ``completer`` (a network runs in this process, on ``device``).

    Returns
    -------
    dict
        ``{"rmse", "ssim"}`` (per-image arrays against ``/scan/truth``, or ``None``), plus
        ``"dwell_fraction"`` with ``path_mask``.

    Memory is bounded by ``chunk`` images whatever ``N``. RMSE and SSIM are computed when
    ``/scan/truth`` is present (images whose truth is not finite are left out, with a warning).
    """
    from fastem.backend import cpu_device
    from fastem.executor import InlineExecutor
    from fastem.io import PROCESS_GROUP, atomic_output, provenance, require_finite_result, write_process_group

    from .h5guard import guarded_h5

    bad_pixels = bad_truth = out_of_range = 0
    chunk = max(1, int(chunk))
    acquired = path_mask is not None
    with open_scans(source, path_mask) as sf:
        n, (h, w) = sf.n, sf.shape
        lo = np.zeros(n)
        hi = np.zeros(n)
        cov = np.zeros(n)
        dwell = np.zeros(n)
        with atomic_output(output, overwrite=overwrite, inputs=inputs) as tmp, guarded_h5(tmp, output) as f:
            g = f.create_group(SCAN_GROUP)

            def dataset(name, description):
                ds = g.create_dataset(name, shape=(n, h, w), dtype=np.float32, compression="gzip",
                                      compression_opts=4, chunks=(1, h, w))
                ds.attrs["description"] = description
                return ds

            d = dataset("completed", "completed partial scan, [-1, 1]")
            d.attrs["method"] = method
            for key, value in (attrs or {}).items():
                d.attrs[key] = value
            if acquired:
                d_int = dataset("completed_intensity", "completed partial scan in the input's intensity scale "
                                                       "(lo + (completed + 1) / 2 (hi - lo), lo/hi the samples' range)")
                d_partial = dataset("partial", "the input's samples mapped from [min, max] to [-1, 1], "
                                               "nearest-sample infill (the network input)")
                d_path = dataset("path", _DESCRIPTIONS["path"])
            rmse_at: dict[int, float] = {}
            ssim_at: dict[int, float] = {}
            if executor is None or isinstance(executor, InlineExecutor) or completer is not None:
                blocks = (_complete_block(sf, a, min(n, a + chunk), method, completer) for a in range(0, n, chunk))
            else:
                from fastem.executor import items_per_task

                # per scan on a worker: its partial, path, truth and outputs, and the baseline's
                # float64 work arrays (interpolation weights, triangulation), about 16 floats a pixel
                chunk = items_per_task(executor, chunk, 16 * 8 * h * w, what="scan complete", item="scan")
                tasks = ({"source": str(source), "path_mask": path_mask, "start": a, "stop": min(n, a + chunk),
                          "method": method} for a in range(0, n, chunk))
                blocks = (res for _, res in executor.imap_unordered(complete_block_task, tasks))
            for res in blocks:
                bad_pixels += res["bad_pixels"]
                out_of_range += res["out_of_range"]
                bad_truth += res["bad_truth"]
                for j, i in enumerate(range(res["start"], res["stop"])):
                    d[i] = res["completed"][j]
                    if acquired:
                        lo[i], hi[i], cov[i], dwell[i] = res["scale"][j]
                        d_int[i], d_partial[i], d_path[i] = res["intensity"][j], res["partial"][j], res["path"][j]
                    if res["rmse"][j] is not None:
                        rmse_at[i] = res["rmse"][j]
                        if res["ssim"][j] is not None:
                            ssim_at[i] = res["ssim"][j]
                        if bar is not None:
                            bar.set_postfix(RMSE=f"{np.mean(list(rmse_at.values())):.4f}")
                f.guard.check()
                if bar is not None:
                    bar.update(res["stop"] - res["start"])
            errors = [rmse_at[i] for i in sorted(rmse_at)]
            sims = [ssim_at[i] for i in sorted(ssim_at)]
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
            if acquired and sf.binarised:
                _warn(f"{sf.flag} {sf.mask_where}: {sf.binarised} mask image(s) hold values above 1 and were "
                      f"binarised (non-zero = sampled, dwell 1); give dwell in [0, 1] to use fractional dwell")
            results = {"rmse": np.array(errors) if errors else None, "ssim": np.array(sims) if sims else None}
            if acquired:
                d_int.attrs["intensity_min"] = lo
                d_int.attrs["intensity_max"] = hi
                g.attrs["measured_coverage"] = cov
                g.attrs["dwell_fraction"] = dwell
                g.attrs["source"] = str(sf.path)
                g.attrs["path_mask"] = str(sf.mask_where)
                results["dwell_fraction"] = dwell
            for name, values in results.items():
                require_finite_result(values, f"{output}: {name}")
            write_process_group(f.require_group(PROCESS_GROUP),
                                provenance(config=config or {}, device=device if device is not None else cpu_device),
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
