"""Batched partial-scan formation: normalise + blur (stage A), noise model + nearest infill (stage B).

Spec: docs/scan.md, "Forming a partial scan", steps 1-4. Engines:

``numpy``
    ``fastem.scan._reference`` in float64 (the oracle; exact nearest pixel by a dense
    separable search -- slow, for tests).
``numba``
    ``_partial_scan_numba``: parallel over rows / column blocks and the batch; exact Euclidean
    nearest sampled pixel by the Felzenszwalb-Huttenlocher separable lower envelope in integer
    arithmetic.
``cuda``
    ``cuda/partial_scan.cu`` (CuPy RawKernels): one thread per pixel; exact nearest pixel by
    a column pass and an outward row search with early exit.
``numba-cuda``
    ``_partial_scan_numba_cuda``: the CUDA kernels written in Numba CUDA (GPU or simulator).

All engines give the same nearest pixel (ties: smaller column, then smaller row) and draw the
same noise (counter-based, ``_hash_rng``), so results agree to float32 rounding. Nothing is
allocated per call when the caller passes the scratch arrays (``minmax``, ``near_row``).
"""

from __future__ import annotations

import functools

import numpy as np

from fastem import backend
from fastem.interop import accepts_torch
from fastem.errors import InputError

from . import _hash_rng as R
from .scan_geometry import NEAR_CONSTANT
from ._dispatch import KernelDispatcher, require_arrays, as_numba_cuda, numba_cuda_stream

_NORMALISE = KernelDispatcher("normalise_blur", ("numpy", "numba", "cuda", "numba-cuda"))
_SAMPLE = KernelDispatcher("sample_infill", ("numpy", "numba", "cuda", "numba-cuda"))
_NEAREST = KernelDispatcher("nearest_sampled", ("numpy", "numba", "cuda", "numba-cuda"))

__all__ = ["normalise_blur", "sample_infill", "nearest_sampled", "NEAR_CONSTANT"]

_THREADS = 256


def _nchunk() -> int:
    import numba

    return 4 * numba.get_num_threads()


def _check_batch(name: str, what: str, a, shape=None, dtype=np.float32):
    if getattr(a, "ndim", 0) != 3:
        raise InputError(f"{name}: {what} must be a (batch, rows, cols) array, got shape {getattr(a, 'shape', None)}")
    if shape is not None and tuple(a.shape) != tuple(shape):
        raise InputError(f"{name}: {what} has shape {tuple(a.shape)}, expected {tuple(shape)}")
    if dtype is not None and a.dtype != dtype:
        raise InputError(f"{name}: {what} must be {np.dtype(dtype).name}, got {a.dtype}")
    if not a.flags.c_contiguous:
        raise InputError(f"{name}: {what} must be C-contiguous")


@functools.lru_cache(maxsize=None)
def _weights_on(device_id: int):
    from .scan_geometry import blur_weights

    w = blur_weights(np.float32)
    if device_id < 0:
        return w
    with backend.Device(device_id).use():
        return backend.Device(device_id).xp.asarray(w)


@_NORMALISE.register("numpy")
def _normalise_blur_numpy(images, out_img, out_blur, seed, example_base, augment, minmax):
    from . import _scan_reference as ref

    for b in range(images.shape[0]):
        x = np.asarray(images[b])
        if augment:
            x = ref.dihedral(x, int(R.dihedral_indices_np(seed, example_base + b)))
        img = ref.normalise(x)
        out_img[b] = img
        out_blur[b] = ref.gaussian_blur(img)
    return out_img, out_blur


def _minmax_scratch(images, minmax):
    """The caller's ``minmax`` scratch, or a fresh (B, 2) float64 one on the current device."""
    if minmax is None:
        minmax = backend.get_array_module(images).empty((images.shape[0], 2), np.float64)
    return minmax


@_NORMALISE.register("numba")
def _normalise_blur_numba(images, out_img, out_blur, seed, example_base, augment, minmax):
    from . import _partial_scan_numba as K

    minmax = _minmax_scratch(images, minmax)
    K.minmax_numba(images, minmax)
    K.normalise_numba(images, minmax, out_img, R.seed_u64(seed), int(example_base), bool(augment), NEAR_CONSTANT)
    K.blur_numba(out_img, _weights_on(-1), out_blur, _nchunk())
    return out_img, out_blur


@_NORMALISE.register("numba-cuda")
def _normalise_blur_numba_cuda(images, out_img, out_blur, seed, example_base, augment, minmax):
    from . import _partial_scan_numba_cuda as KC

    minmax = _minmax_scratch(images, minmax)
    dev = backend.get_device(images)
    stream = numba_cuda_stream()
    weights = _weights_on(dev.id) if dev.is_gpu else _weights_on(-1)
    KC.minmax(as_numba_cuda(images), as_numba_cuda(minmax), stream)
    KC.normalise_blur(as_numba_cuda(images), as_numba_cuda(minmax), as_numba_cuda(out_img), as_numba_cuda(out_blur),
                      as_numba_cuda(weights), R.seed_u64(seed), int(example_base), bool(augment), NEAR_CONSTANT, stream)
    return out_img, out_blur


@_NORMALISE.register("cuda")
def _normalise_blur_cuda(images, out_img, out_blur, seed, example_base, augment, minmax):
    from . import _cuda

    minmax = _minmax_scratch(images, minmax)
    nb, h, w = images.shape
    dev = backend.get_device(images)
    suffix = "f32" if images.dtype == np.float32 else "f64"
    with dev.use():
        _cuda.get_function("partial_scan", f"image_minmax_{suffix}", dev)((nb,), (256,), (images, np.int64(h * w), minmax))
        blocks = (h * w + _THREADS - 1) // _THREADS
        _cuda.get_function("partial_scan", f"normalise_blur_{suffix}", dev)(
            (blocks, nb), (_THREADS,),
            (images, minmax, out_img, out_blur, _weights_on(dev.id), np.int32(h), np.int32(w), np.int32(h), np.int32(w),
             R.seed_u64(seed), np.int64(example_base), np.int32(bool(augment)), np.float64(NEAR_CONSTANT)))
    return out_img, out_blur


@accepts_torch
def normalise_blur(images, out_img, out_blur, seed: int = 0, example_base: int = 0, augment: bool = False,
                   minmax=None, engine: str | None = None):
    """Spec steps 1, 2 and 5: cleanup, dihedral augmentation, [-1, 1] normalisation, 5x5 blur.

    Parameters
    ----------
    images : (B, H, W) float32 or float64, NumPy or CuPy, C-contiguous
        Raw micrographs; NaN and +-Inf read as 0. Not modified.
    out_img, out_blur : (B, H', W') float32, same device
        The normalised image ``2 (x - min) / (max - min) - 1`` (all 0 when ``max - min < 1e-6``)
        and its Gaussian blur (5 taps, sigma 2.5 px, ``reflect`` padding: ``d c b a | a b c d``).
        ``(H', W') = (H, W)``; with ``augment`` the images must be square.
    seed, example_base : int
        Example ``b`` is ``example_base + b``; with ``augment`` it is shown under the dihedral
        transform ``_hash_rng.dihedral_indices_np(seed, example)`` (see ``fastem.scan.dihedral``).
    minmax : (B, 2) float64 scratch on the same device, optional (allocated when omitted)
    engine : {None, "numpy", "numba", "cuda", "numba-cuda"}
    """
    require_arrays("normalise_blur", ('minmax',), images=images, out_img=out_img, out_blur=out_blur, minmax=minmax)
    name = "normalise_blur"
    _check_batch(name, "images", images, dtype=None)
    if images.dtype not in (np.float32, np.float64):
        raise InputError(f"{name}: images must be float32 or float64, got {images.dtype}")
    nb, h, w = images.shape
    if augment and h != w:
        raise InputError(f"{name}: dihedral augmentation needs square images, got {h}x{w}")
    _check_batch(name, "out_img", out_img, (nb, h, w))
    _check_batch(name, "out_blur", out_blur, (nb, h, w))
    return _NORMALISE(engine, (images, out_img, out_blur), images, out_img, out_blur, seed, example_base, augment,
                      minmax)


@_SAMPLE.register("numpy")
def _sample_infill_numpy(img, blur, path, out_partial, out_nearest, seed, example_base, fill, near_row):
    from . import _scan_reference as ref

    nb, h, w = path.shape
    for b in range(nb):
        m = np.asarray(path[b], dtype=np.float64)
        det = ref.detect(np.asarray(img[b], np.float64), np.asarray(blur[b], np.float64), m,
                         ref.noise_uniform(seed, example_base + b, (h, w)).astype(np.float64))
        sampled = m > 0
        if fill == "constant":
            out_partial[b] = 0.5 * (np.where(sampled, det, -1.0) + 1.0)
            continue
        index, _ = ref.nearest_sampled(sampled)
        out_partial[b] = np.where(index >= 0, det.reshape(-1)[np.maximum(index, 0)], 0.0)
        if out_nearest is not None:
            out_nearest[b] = index
    return out_partial


@_SAMPLE.register("numba", "cuda", "numba-cuda", with_engine=True)
def _sample_infill_compiled(img, blur, path, out_partial, out_nearest, seed, example_base, fill, near_row, engine):
    shape = path.shape
    xp = backend.get_array_module(path)
    if near_row is None:
        near_row = xp.empty(shape, np.int32)
    _check_batch("sample_infill", "near_row", near_row, shape, np.int32)
    if fill == "nearest" and out_nearest is None:
        out_nearest = xp.empty(shape, np.int32)
    _STAGE_B[engine](path, near_row, img, blur, out_partial, out_nearest, seed, example_base,
                     with_det=True, with_values=True, row_pass=(fill == "nearest"))
    if fill == "constant":
        sampled = path > 0
        xp.copyto(out_partial, xp.where(sampled, out_partial, np.float32(-1.0)))
        out_partial += np.float32(1.0)
        out_partial *= np.float32(0.5)
    return out_partial


@accepts_torch
def sample_infill(img, blur, path, out_partial, out_nearest, seed: int = 0, example_base: int = 0,
                  fill: str = "nearest", near_row=None, engine: str | None = None):
    """Spec steps 3 and 4: the dwell-dependent noise model on the path, then the infill.

    Parameters
    ----------
    img, blur : (B, H, W) float32
        Normalised image (or a shot-noise realisation of it) and its blurred target.
    path : (B, H, W) float32
        Dwell ``m`` in [0, 1]; a pixel is sampled when ``m > 0``.
    out_partial : (B, H, W) float32
        ``det = m (m img + 2 (1 - m) U blur)`` on sampled pixels (``U`` uniform in [0, 1),
        counter-based from ``(seed, example_base + b)`` and the pixel's flat index). Unsampled
        pixels: ``fill="nearest"`` -- the value of the nearest sampled pixel (Euclidean; ties to
        the smaller column, then the smaller row; 0 when nothing is sampled); ``fill="constant"``
        -- -1, after which the whole map is taken to [0, 1] by ``(x + 1) / 2``.
    out_nearest : (B, H, W) int32 or None
        Flat index ``row * W + col`` of the nearest sampled pixel (-1 when none); needs
        ``fill="nearest"``.
    near_row : (B, H, W) int32 scratch, optional
    engine : {None, "numpy", "numba", "cuda", "numba-cuda"}
    """
    require_arrays("sample_infill", ("out_nearest", "near_row"), img=img, blur=blur, path=path, out_partial=out_partial, out_nearest=out_nearest, near_row=near_row)
    name = "sample_infill"
    _check_batch(name, "path", path)
    shape = path.shape
    for what, a in (("img", img), ("blur", blur), ("out_partial", out_partial)):
        _check_batch(name, what, a, shape)
    if fill not in ("nearest", "constant"):
        raise InputError(f"{name}: fill must be 'nearest' or 'constant', got {fill!r}")
    if out_nearest is not None:
        _check_batch(name, "out_nearest", out_nearest, shape, np.int32)
    return _SAMPLE(engine, (img, blur, path, out_partial, out_nearest), img, blur, path, out_partial, out_nearest,
                   seed, example_base, fill, near_row)


@_NEAREST.register("numpy")
def _nearest_sampled_numpy(path, out_nearest, near_row):
    from . import _scan_reference as ref

    for b in range(path.shape[0]):
        out_nearest[b] = ref.nearest_sampled(np.asarray(path[b]) > 0)[0]
    return out_nearest


@_NEAREST.register("numba", "cuda", "numba-cuda", with_engine=True)
def _nearest_sampled_compiled(path, out_nearest, near_row, engine):
    xp = backend.get_array_module(path)
    if near_row is None:
        near_row = xp.empty(path.shape, np.int32)
    _check_batch("nearest_sampled", "near_row", near_row, path.shape, np.int32)
    dummy = xp.empty((1, 1, 1), np.float32)
    _STAGE_B[engine](path, near_row, dummy, dummy, dummy, out_nearest, 0, 0,
                     with_det=False, with_values=False, row_pass=True)
    return out_nearest


@accepts_torch
def nearest_sampled(path, out_nearest=None, near_row=None, engine: str | None = None):
    """Exact Euclidean nearest sampled pixel of each pixel (``path > 0`` is sampled).

    Parameters
    ----------
    path : (B, H, W) float32, NumPy or CuPy
    out_nearest : (B, H, W) int32, optional
        Flat index ``row * W + col`` of the nearest sampled pixel, -1 when the image has none.
        Ties: the smaller column, then the smaller row.

    Returns
    -------
    out_nearest
    """
    require_arrays("nearest_sampled", ('out_nearest', 'near_row'), path=path, out_nearest=out_nearest, near_row=near_row)
    name = "nearest_sampled"
    _check_batch(name, "path", path)
    xp = backend.get_array_module(path)
    if out_nearest is None:
        out_nearest = xp.empty(path.shape, np.int32)
    _check_batch(name, "out_nearest", out_nearest, path.shape, np.int32)
    return _NEAREST(engine, (path, out_nearest), path, out_nearest, near_row)


# Stage B (column pass + detection, then the row pass + infill), one function per compiled engine;
# shared by sample_infill and nearest_sampled, whose implementations pick one by the resolved engine.

def _stage_b_numba(path, near_row, img, blur, partial, nearest, seed, example_base, *, with_det, with_values,
                   row_pass):
    """Column pass (+ detection) and, when ``row_pass``, the row pass (+ infill) on the CPU."""
    from . import _partial_scan_numba as K

    K.column_pass_numba(path, near_row, img, blur, partial, R.seed_u64(seed), int(example_base), with_det)
    if row_pass:
        K.row_pass_numba(path, near_row, partial, nearest, with_values, _nchunk())


def _stage_b_numba_cuda(path, near_row, img, blur, partial, nearest, seed, example_base, *, with_det, with_values,
                        row_pass):
    """Stage B in Numba CUDA (GPU or simulator)."""
    from . import _partial_scan_numba_cuda as KC

    stream = numba_cuda_stream()
    KC.detect_column_pass(as_numba_cuda(path), as_numba_cuda(near_row), as_numba_cuda(img), as_numba_cuda(blur),
                          as_numba_cuda(partial), R.seed_u64(seed), int(example_base), with_det, stream)
    if row_pass:
        KC.row_pass_fill(as_numba_cuda(path), as_numba_cuda(near_row), as_numba_cuda(partial),
                         as_numba_cuda(nearest), with_values, stream)


def _stage_b_cuda(path, near_row, img, blur, partial, nearest, seed, example_base, *, with_det, with_values,
                  row_pass):
    """Stage B in CUDA C (``cuda/partial_scan.cu``)."""
    from . import _cuda

    nb, h, w = path.shape
    dev = backend.get_device(path)
    blocks = (h * w + _THREADS - 1) // _THREADS
    with dev.use():
        _cuda.get_function("partial_scan", "detect_column_pass", dev)(
            (blocks, nb), (_THREADS,), (path, near_row, img, blur, partial, np.int32(h), np.int32(w), R.seed_u64(seed),
                                        np.int64(example_base), np.int32(bool(with_det))))
        if row_pass:
            _cuda.get_function("partial_scan", "row_pass_fill", dev)(
                (blocks, nb), (_THREADS,), (path, near_row, partial, nearest, np.int32(h), np.int32(w),
                                            np.int32(bool(with_values))))


#: stage B by resolved engine (the compiled engines of sample_infill and nearest_sampled)
_STAGE_B = {"numba": _stage_b_numba, "numba-cuda": _stage_b_numba_cuda, "cuda": _stage_b_cuda}
