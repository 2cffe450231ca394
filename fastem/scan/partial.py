"""Forming partial scans from full micrographs (spec "Forming a partial scan", steps 1-5).

For every example ``b`` of a batch (example id ``e = example_base + b``):

1. NaN and +-Inf -> 0; with ``augment`` the image is shown under the dihedral transform
   ``dihedral_index(seed, e)`` (one of the 8, see :func:`dihedral`); [min, max] -> [-1, 1];
   a near-constant image (``max - min < 1e-6``) becomes all zeros.
2. ``target`` = the normalised image blurred by a 5x5 Gaussian (sigma 2.5 px, reflect padding).
3. ``det = m (m s + 2 (1 - m) U blur)`` with ``m`` the path's dwell, ``U`` uniform in [0, 1)
   (counter-based: the same on every device) and ``s`` the scanned signal: by default the
   blurred image itself, as the paper's text says ("partial scans of the blurred images"), so
   that a pixel on a binary path reads exactly its target value; ``scan_blurred=False`` scans
   the unblurred image (what the authors' code does) while the target stays blurred. A binary
   path (the default 1-px line) gives ``det = s`` on the path. Optional Poisson shot noise at
   ``dose`` electrons per full-dwell pixel replaces ``s`` by its noisy version first
   (:func:`fastem.scan._reference.shot_noise`).
4. Unsampled pixels (``m = 0``) take the value of the nearest sampled pixel (exact Euclidean
   distance transform; ties to the smaller column, then row), or with ``fill="constant"`` -1,
   after which the map is taken to [0, 1] by ``(x + 1) / 2``.
5. The network sees ``(partial, path)`` as two channels and is trained against ``target``.

:class:`PartialScanPipeline` holds every buffer for a batch shape on one device, so calling it
in a training loop allocates nothing (except the optional shot noise); on a GPU the whole
chain runs in CUDA kernels without a host round trip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fastem import backend
from fastem.errors import InputError
from fastem.interop import as_array

from . import paths as P
from fastem.kernels.scan_geometry import dihedral

_NOISE_STREAM = 0xD05E   #: third seed word of the per-example shot-noise generators

__all__ = ["PartialScans", "PartialScanPipeline", "form_partial_scans", "make_partial_scans", "dihedral",
           "dihedral_index", "as_image_batch", "check_dose"]


def _check_int(value, name: str, minimum: int) -> int:
    """``value`` as an int >= ``minimum``, or an :class:`InputError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if int(value) < minimum:
        raise InputError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_dose(dose, what: str = "dose"):
    """``dose`` as a finite float > 0 (electrons per full-dwell pixel) or ``None``."""
    if dose is None:
        return None
    try:
        value = float(dose)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a finite number > 0 electrons per pixel, got {dose!r}") from None
    if not (0.0 < value < np.inf):
        raise InputError(f"{what} must be a finite number > 0 electrons per pixel, got {dose}")
    if value > 1e15:
        raise InputError(f"{what} = {dose:g} electrons per pixel is beyond what the Poisson sampler handles "
                         f"(at most 1e15); leave it out for noise-free scans")
    return value


def dihedral_index(seed: int, example) -> np.ndarray | int:
    """The dihedral transform index (0..7) that ``augment=True`` applies to ``example``."""
    from fastem.kernels._hash_rng import dihedral_indices_np

    idx = dihedral_indices_np(seed, example)
    return int(idx) if np.ndim(idx) == 0 else idx


@dataclass
class PartialScans:
    """A batch of partial scans, all (B, H, W) arrays on one device.

    Attributes
    ----------
    partial : float32
        The network input: detected signal on the path, infilled (``fill="nearest"``, values in
        [-1, 1]) or -1-filled and mapped to [0, 1] (``fill="constant"``).
    path : float32
        Dwell map in [0, 1] (the extra input channel).
    target : float32
        Ground truth: the normalised image blurred by the 5x5 Gaussian, in [-1, 1].
    image : float32
        The normalised (augmented) full image, in [-1, 1].
    nearest : int32 or None
        Flat index ``row * W + col`` of each pixel's nearest sampled pixel (nearest fill only).
    """

    partial: Any
    path: Any
    target: Any
    image: Any
    nearest: Any = None

    def network_input(self):
        """``(B, 2, H, W)`` float32: partial scan and path as two channels (a new array)."""
        xp = backend.get_array_module(self.partial)
        return xp.stack([self.partial, self.path], axis=1)

    def copy(self) -> "PartialScans":
        return PartialScans(*(None if a is None else a.copy() for a in
                              (self.partial, self.path, self.target, self.image, self.nearest)))


def as_image_batch(images, device=None, what: str = "images"):
    """``images`` as a C-contiguous float32/float64 (B, H, W) array on ``device`` (one copy at most).

    Accepts (H, W) or (B, H, W) NumPy/CuPy arrays or torch tensors; other real dtypes become
    float32. Raises :class:`InputError` for other shapes, complex or empty input.
    """
    if images is None:
        raise InputError(f"{what} must be an array (rows, cols) or (batch, rows, cols), got None")
    images = as_array(images)
    if not (isinstance(images, np.ndarray) or backend.is_cupy_array(images)):
        try:
            images = np.asarray(images)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{what} must be a numeric array, got {type(images).__name__} ({exc})") from None
    dev = backend.get_device(images) if device is None else backend.resolve_device(device)
    images = backend.to_device(images, dev)
    xp = dev.xp
    if images.ndim == 2:
        images = images[None]
    if images.ndim != 3:
        raise InputError(f"{what} must be (rows, cols) or (batch, rows, cols), got shape {tuple(images.shape)}")
    if 0 in images.shape:
        raise InputError(f"{what} is empty: shape {tuple(images.shape)}")
    if images.dtype.kind == "c":
        raise InputError(f"{what} must be real, got {images.dtype}")
    if images.dtype.kind not in "fiub":
        raise InputError(f"{what} must be numeric, got {images.dtype}")
    with dev.use():
        if images.dtype not in (np.float32, np.float64):
            images = images.astype(np.float32)
        return xp.ascontiguousarray(images)


class PartialScanPipeline:
    """Path + noise + blur + infill for batches of one shape, with every buffer preallocated.

    Parameters
    ----------
    batch : int
        Examples per call.
    shape : (rows, cols)
        Image shape (square when ``augment``).
    kind : {"spiral", "grid"}
    coverage : float in (0, 1]
        Target ``measure`` of the paths (solved once, see :func:`fastem.scan.solve_coverage`);
        1 is a full scan. Alternatively pass ``spacing`` (spiral) or ``u`` (grid) directly.
    measure : {"dwell", "coverage"}
        ``coverage`` as mean dwell (dose fraction, default) or as the fraction of visited pixels.
    antialias : bool
        Anti-aliased paths (fractional dwell) instead of the paper's binary 1-px line (default).
    scan_blurred : bool
        Scan the blurred image (default; on-path samples equal the target) or the unblurred one.
    seed : int
        Every random number (paths, noise, augmentation) is a function of ``(seed, example)``.
    augment : bool
        Random dihedral transform per example.
    fill : {"nearest", "constant"}
    dose : float, optional
        Poisson shot noise, electrons per full-dwell pixel.
    binary : bool
        Use ``m > 0`` as a binary path (``det = m img``).
    amp, rotate, max_offset, random_place
        Path options (:func:`fastem.scan.grid_path`, :func:`fastem.scan.spiral_path`).
    device, engine
        Where to run (``None``: the global ``--device`` setting) and which kernels.

    Examples
    --------
    >>> pipe = PartialScanPipeline(8, (256, 256), "spiral", 1 / 20, seed=1)
    >>> out = pipe(images, example_base=step * 8)       # doctest: +SKIP
    >>> x, y = out.network_input(), out.target           # doctest: +SKIP
    """

    def __init__(self, batch: int, shape=(512, 512), kind: str = "spiral", coverage: float = 1 / 20, *,
                 measure: str = "dwell", antialias: bool = False, scan_blurred: bool = True,
                 spacing: float | None = None, u: float | None = None, amp: float = 1.0,
                 seed: int = 0, augment: bool = False, fill: str = "nearest", dose: float | None = None,
                 binary: bool = False, rotate: bool = True, max_offset: float = 0.0, random_place: bool = True,
                 device=None, engine: str | None = None):
        if kind not in P.PATH_KINDS:
            raise InputError(f"path kind must be one of {', '.join(P.PATH_KINDS)}, got {kind!r}")
        if fill not in ("nearest", "constant"):
            raise InputError(f"fill must be 'nearest' or 'constant', got {fill!r}")
        dose = check_dose(dose)
        self.batch = _check_int(batch, "batch", 1)
        seed = _check_int(seed, "seed", 0)
        self.shape = P._shape(shape)
        if augment and self.shape[0] != self.shape[1]:
            raise InputError(f"dihedral augmentation needs square images, got {self.shape[0]}x{self.shape[1]}")
        self.kind, self.seed, self.augment, self.fill = kind, int(seed), bool(augment), fill
        self.dose, self.binary, self.engine = dose, bool(binary), engine
        self.device = backend.resolve_device(device)
        self.antialias, self.scan_blurred, self.measure = bool(antialias), bool(scan_blurred), measure
        param = P.path_parameter(kind, coverage, self.shape, param=spacing if kind == "spiral" else u, amp=amp,
                                 measure=measure, antialias=self.antialias)
        self.full_scan = param is None
        spacing, u = (param, None) if kind == "spiral" else (None, param)
        self.spacing, self.u, self.amp = spacing, u, float(amp)
        self.path_options = ({"rotate": rotate, "max_offset": max_offset} if kind == "spiral"
                             else {"random_place": random_place, "amp": amp})
        self.path_options["antialias"] = self.antialias
        dev = self.device
        full = (self.batch, *self.shape)
        with dev.use():
            xp = dev.xp
            self.path = xp.empty(full, np.float32)
            self.image = xp.empty(full, np.float32)
            self.target = xp.empty(full, np.float32)
            self.partial = xp.empty(full, np.float32)
            self.nearest = xp.empty(full, np.int32) if fill == "nearest" else None
            self._near_row = xp.empty(full, np.int32)
            self._minmax = xp.empty((self.batch, 2), np.float64)
            self._signal = xp.empty(full, np.float32) if dose is not None else None

    def make_paths(self, example_base: int = 0):
        """Fill and return ``self.path`` for examples ``example_base + b``."""
        if self.full_scan:
            self.path.fill(1.0)
        elif self.kind == "spiral":
            P.spiral_path(self.shape, spacing=self.spacing, seed=self.seed, example_base=example_base, out=self.path,
                          engine=self.engine, **self.path_options)
        else:
            P.grid_path(self.shape, u=self.u, seed=self.seed, example_base=example_base, out=self.path,
                        engine=self.engine, **self.path_options)
        if self.binary:
            self.path[...] = self.path > 0
        return self.path

    def __call__(self, images, example_base: int = 0, path=None) -> PartialScans:
        """Partial scans of ``images`` ((B, H, W) or (H, W) with B = ``batch``).

        ``path`` (B, H, W) float32 on the device replaces the generated paths. The returned
        arrays are the pipeline's buffers: copy them (``.copy()``) to keep them past the next call.
        """
        from fastem.kernels.partial_scan import normalise_blur, sample_infill

        example_base = _check_int(example_base, "example_base", 0)
        images = as_image_batch(images, self.device)
        if images.shape != (self.batch, *self.shape):
            raise InputError(f"images have shape {tuple(images.shape)}, the pipeline expects {(self.batch, *self.shape)}")
        with self.device.use():
            if path is None:
                self.make_paths(example_base)
            else:
                path = as_array(path)
                if tuple(path.shape) != tuple(self.path.shape):
                    raise InputError(f"path has shape {tuple(path.shape)}, expected {tuple(self.path.shape)}")
                self.path[...] = backend.to_device(path, self.device)
                if self.binary:
                    self.path[...] = self.path > 0
            normalise_blur(images, self.image, self.target, self.seed, example_base, self.augment,
                           minmax=self._minmax, engine=self.engine)
            signal = self.target if self.scan_blurred else self.image
            if self.dose is not None:
                signal = _shot_noise(signal, self.path, self.dose, self.seed, example_base, self._signal)
            sample_infill(signal, self.target, self.path, self.partial, self.nearest, self.seed, example_base,
                          fill=self.fill, near_row=self._near_row, engine=self.engine)
        return PartialScans(self.partial, self.path, self.target, self.image, self.nearest)


def _shot_noise(img, path, dose: float, seed: int, example_base: int, out):
    """Poisson shot noise on the sampled pixels (see ``_reference.shot_noise``), into ``out``."""
    xp = backend.get_array_module(img)
    lam = xp.maximum(dose * path.astype(np.float64) * (img + 1.0) * 0.5, 0.0)
    counts = xp.empty(lam.shape, np.int64)
    for b in range(lam.shape[0]):   # one stream per example: independent of the batch split
        entropy = [int(seed) % 2**63, (int(example_base) + b) % 2**63, _NOISE_STREAM]
        if xp is np:
            counts[b] = np.random.default_rng(entropy).poisson(lam[b])
        else:
            rs = xp.random.RandomState(int(np.random.SeedSequence(entropy).generate_state(1)[0]))
            counts[b] = rs.poisson(lam[b])
    sampled = path > 0
    safe = xp.where(sampled, path, 1.0)
    xp.copyto(out, xp.where(sampled, 2.0 * counts / (dose * safe) - 1.0, img).astype(np.float32))
    return out


def form_partial_scans(images, path, *, seed: int = 0, example_base: int = 0, augment: bool = False,
                       fill: str = "nearest", dose: float | None = None, binary: bool = False,
                       scan_blurred: bool = True, engine: str | None = None) -> PartialScans:
    """Partial scans of ``images`` along given dwell maps ``path`` (new arrays, on the images' device).

    ``images``: (B, H, W) or (H, W); ``path``: the same shape (after augmentation), dwell in
    [0, 1]. See the module docstring for the steps and :class:`PartialScanPipeline` for options.
    """
    images = as_image_batch(images)
    path = as_array(path)
    if path.ndim == 2:
        path = path[None]
    if tuple(path.shape) != tuple(images.shape):
        raise InputError(f"path has shape {tuple(path.shape)} but images have {tuple(images.shape)}")
    xp = backend.get_array_module(path)
    if bool(xp.isnan(path).any()) or bool((path < 0).any()) or bool((path > 1).any()):
        raise InputError("path dwell must be finite values in [0, 1]")
    dev = backend.get_device(images)
    pipe = PartialScanPipeline(images.shape[0], images.shape[1:], "spiral", 1.0, seed=seed, augment=augment, fill=fill,
                               dose=dose, binary=binary, scan_blurred=scan_blurred, device=dev, engine=engine)
    return pipe(images, example_base, path=xp.asarray(path, dtype=np.float32)).copy()


def make_partial_scans(images, kind: str = "spiral", coverage: float = 1 / 20, *, seed: int = 0,
                       example_base: int = 0, device=None, **options) -> PartialScans:
    """Paths + partial scans for ``images`` in one call (new arrays). Options: :class:`PartialScanPipeline`."""
    images = as_image_batch(images, device)
    pipe = PartialScanPipeline(images.shape[0], images.shape[1:], kind, coverage, seed=seed,
                               device=backend.get_device(images), **options)
    return pipe(images, example_base).copy()
