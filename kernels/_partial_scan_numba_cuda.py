"""Numba CUDA version of ``cuda/partial_scan.cu`` (runs on a GPU, or under the CUDA simulator).

Same kernels, same thread mapping (one thread per output pixel, ``blockIdx.y`` = example), same
counter-based random numbers (device-function copies of ``_hash_rng``: ``@njit`` functions are
not callable from every Numba CUDA build). Kernels are module-level ``@cuda.jit`` functions.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float64, int64, uint64

THREADS = 128
_GOLDEN = uint64(0x9E3779B97F4A7C15)
_ONE = uint64(1)
_NOISE = uint64(1)
_AUGMENT = uint64(5)

from . import _hash_rng_scalar  # noqa: E402

# the counter-based RNG compiled from the one scalar source for this target (see _hash_rng_scalar)
_rng = _hash_rng_scalar.compile_for(lambda f: cuda.jit(device=True, inline=True)(f), "cuda")
_fmix, _stream_key, _uniform32 = _rng.fmix, _rng.stream_key, _rng.uniform32


@cuda.jit(device=True, inline=True)
def _reflect(i, n):
    period = 2 * n
    i = i % period
    if i < 0:
        i += period
    return period - 1 - i if i >= n else i


@cuda.jit(device=True, inline=True)
def _pixel(h, w):
    """(b, r, c, p) of this thread (``blockIdx.y`` = example, x = flat pixel); p = -1 past the end."""
    p = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    if p >= h * w:
        return cuda.blockIdx.y, 0, 0, -1
    r = p // w
    return cuda.blockIdx.y, r, p - r * w, p


@cuda.jit(device=True, inline=True)
def _clean(v):
    d = float64(v)
    return d if math.isfinite(d) else 0.0


@cuda.jit
def image_minmax_kernel(images, minmax):
    """One block of THREADS per image (``images`` viewed as (B, npix))."""
    lo_s = cuda.shared.array(THREADS, dtype=float64)
    hi_s = cuda.shared.array(THREADS, dtype=float64)
    b = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    lo = math.inf
    hi = -math.inf
    for i in range(tid, images.shape[1], THREADS):
        v = _clean(images[b, i])
        lo = min(lo, v)
        hi = max(hi, v)
    lo_s[tid] = lo
    hi_s[tid] = hi
    cuda.syncthreads()
    step = THREADS // 2
    while step > 0:
        if tid < step:
            lo_s[tid] = min(lo_s[tid], lo_s[tid + step])
            hi_s[tid] = max(hi_s[tid], hi_s[tid + step])
        cuda.syncthreads()
        step //= 2
    if tid == 0:
        minmax[b, 0] = lo_s[0]
        minmax[b, 1] = hi_s[0]


@cuda.jit(device=True, inline=True)
def _load(x, b, r, c, ho, wo, t, lo, scale):
    a = ho - 1 - r if (t & 1) else r
    bb = wo - 1 - c if (t & 2) else c
    if t & 4:
        v = x[b, bb, a]
    else:
        v = x[b, a, bb]
    return np.float32((_clean(v) - lo) * scale - 1.0)


@cuda.jit
def normalise_blur_kernel(images, minmax, img, blur, weights, seed, example_base, augment, near_constant):
    ho, wo = img.shape[1], img.shape[2]
    b, r, c, p = _pixel(ho, wo)
    if p < 0:
        return
    lo = minmax[b, 0]
    span = minmax[b, 1] - lo
    if span < near_constant:
        img[b, r, c] = 0.0
        blur[b, r, c] = 0.0
        return
    scale = 2.0 / span
    t = 0
    if augment:
        key = _stream_key(seed, uint64(example_base + b), _AUGMENT)
        t = int64(_fmix(key + _GOLDEN) >> uint64(61))
    img[b, r, c] = _load(images, b, r, c, ho, wo, t, lo, scale)
    acc = np.float32(0.0)
    for i in range(5):
        rr = _reflect(r + i - 2, ho)
        row = np.float32(0.0)
        for j in range(5):
            row += weights[j] * _load(images, b, rr, _reflect(c + j - 2, wo), ho, wo, t, lo, scale)
        acc += weights[i] * row
    blur[b, r, c] = acc


@cuda.jit
def detect_column_pass_kernel(path, near_row, img, blur, partial, seed, example_base, with_det):
    h, w = path.shape[1], path.shape[2]
    b, r, c, p = _pixel(h, w)
    if p < 0:
        return
    mv = path[b, r, c]
    if with_det and mv > 0:
        key = _stream_key(seed, uint64(example_base + b), _NOISE)
        u = _uniform32(key, uint64(p))
        partial[b, r, c] = mv * (mv * img[b, r, c] + np.float32(2.0) * (np.float32(1.0) - mv) * u * blur[b, r, c])
    found = -1
    d = 0
    while r - d >= 0 or r + d < h:
        if r - d >= 0 and path[b, r - d, c] > 0:
            found = r - d
            break
        if d > 0 and r + d < h and path[b, r + d, c] > 0:
            found = r + d
            break
        d += 1
    near_row[b, r, c] = found


@cuda.jit
def row_pass_fill_kernel(path, near_row, partial, nearest, with_values):
    h, w = path.shape[1], path.shape[2]
    b, r, c, p = _pixel(h, w)
    if p < 0:
        return
    best = int64(-1)
    bq = -1
    d = 0
    while c - d >= 0 or c + d < w:
        dd = int64(d) * d
        if best >= 0 and dd > best:
            break
        q = c - d
        if q >= 0 and near_row[b, r, q] >= 0:
            dr = int64(r - near_row[b, r, q])
            cost = dr * dr + dd
            if best < 0 or cost <= best:
                best = cost
                bq = q
        q = c + d
        if d > 0 and q < w and near_row[b, r, q] >= 0:
            dr = int64(r - near_row[b, r, q])
            cost = dr * dr + dd
            if best < 0 or cost < best:
                best = cost
                bq = q
        d += 1
    if bq < 0:
        nearest[b, r, c] = -1
        if with_values:
            partial[b, r, c] = 0.0
        return
    nr = near_row[b, r, bq]
    nearest[b, r, c] = nr * w + bq
    if with_values and not path[b, r, c] > 0:
        partial[b, r, c] = partial[b, nr, bq]


def _blocks(npix: int) -> int:
    return (npix + THREADS - 1) // THREADS


def minmax(images, out, stream=0):
    """``images`` (B, H, W) device array (or NumPy in the simulator) -> ``out`` (B, 2) float64."""
    nb = images.shape[0]
    flat = images.reshape(nb, images.shape[1] * images.shape[2])
    image_minmax_kernel[nb, THREADS, stream](flat, out)


def normalise_blur(images, minmax_, img, blur, weights, seed, example_base, augment, near_constant, stream=0):
    nb, ho, wo = img.shape
    normalise_blur_kernel[(_blocks(ho * wo), nb), THREADS, stream](
        images, minmax_, img, blur, weights, seed, example_base, augment, near_constant)


def detect_column_pass(path, near_row, img, blur, partial, seed, example_base, with_det, stream=0):
    nb, h, w = path.shape
    detect_column_pass_kernel[(_blocks(h * w), nb), THREADS, stream](
        path, near_row, img, blur, partial, seed, example_base, with_det)


def row_pass_fill(path, near_row, partial, nearest, with_values, stream=0):
    nb, h, w = path.shape
    row_pass_fill_kernel[(_blocks(h * w), nb), THREADS, stream](path, near_row, partial, nearest, with_values)
