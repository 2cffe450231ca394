"""The plain NumPy/SciPy partial-scan pipeline: the float64 test oracle and the benchmark peer.

Everything here follows the partial-scan specification (docs/scan.md, "Forming a partial scan") literally and favours clarity over
speed; the kernels in ``fastem.kernels.scan_path`` and ``fastem.kernels.partial_scan`` must
reproduce it (their ``engine="numpy"`` calls these functions). Random numbers come from the
counter-based generator of ``fastem.kernels._hash_rng`` so that every engine draws the same
numbers for the same ``(seed, example)``.

Conventions
-----------
* Images are ``(..., H, W)``; a pixel ``(r, c)`` has its centre at ``x = c, y = r``.
* A path is a dwell map ``m`` in [0, 1] of the image's shape; a pixel is *sampled* when
  ``m > 0``. Accumulated dwell below :data:`MIN_DWELL` counts as not visited.
* Nearest sampled pixel (the infill): Euclidean distance; among equidistant sampled pixels the
  one with the smaller column index wins, then the one with the smaller row index.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from . import _hash_rng as R
from .scan_geometry import (BLUR_RADIUS, BLUR_SIGMA, MIN_DWELL, NEAR_CONSTANT, blur_weights,  # noqa: F401
                            dihedral, grid_channel_width)

__all__ = [
    "MIN_DWELL", "BLUR_SIGMA", "BLUR_RADIUS", "blur_weights", "dihedral", "normalise", "gaussian_blur",
    "noise_uniform", "detect", "nearest_sampled", "nearest_sampled_bruteforce", "infill_nearest_scipy", "spiral_dwell",
    "spiral_params", "grid_dwell", "grid_channel_width", "grid_params", "form_partial_scans", "pipeline",
]

# ---------------------------------------------------------------------------------------------
# augmentation and preprocessing
# ---------------------------------------------------------------------------------------------
def normalise(x: np.ndarray) -> np.ndarray:
    """Spec step 1 for one image: NaN/Inf -> 0, then [min, max] -> [-1, 1] (float64).

    A near-constant image (``max - min < 1e-6`` after the cleanup) becomes all zeros.
    """
    x = np.where(np.isfinite(x), x, 0).astype(np.float64)
    lo, hi = float(x.min()), float(x.max())
    if hi - lo < NEAR_CONSTANT:
        return np.zeros_like(x)
    return 2.0 * (x - lo) / (hi - lo) - 1.0


def gaussian_blur(x: np.ndarray) -> np.ndarray:
    """Spec step 2: separable 5x5 Gaussian, sigma 2.5 px, ``reflect`` padding (``d c b a | a b c d``)."""
    w = blur_weights()
    y = ndimage.correlate1d(np.asarray(x, dtype=np.float64), w, axis=-1, mode="reflect")
    return ndimage.correlate1d(y, w, axis=-2, mode="reflect")


def noise_uniform(seed: int, example: int, shape: tuple[int, int]) -> np.ndarray:
    """The per-pixel U[0,1) of the noise model for one example (float32 values, as the kernels)."""
    key = R.stream_key_np(seed, example, R.NOISE)
    return R.uniform32_np(key, np.arange(shape[0] * shape[1])).reshape(shape)


def detect(img: np.ndarray, blur: np.ndarray, m: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Spec step 3: ``det = m * (m * img + 2 * (1 - m) * U * blur)``."""
    return m * (m * img + 2.0 * (1.0 - m) * u * blur)


def shot_noise(img: np.ndarray, m: np.ndarray, dose: float, rng: np.random.Generator) -> np.ndarray:
    """Poisson shot noise at ``dose`` electrons per full-dwell pixel on a [-1, 1] image.

    Counts ``k ~ Poisson(dose * m * (img + 1) / 2)``; the noisy image is ``2 k / (dose * m) - 1``
    where ``m > 0`` (unbiased: its mean is ``img``) and ``img`` elsewhere.
    """
    lam = dose * m * (img + 1.0) * 0.5
    k = rng.poisson(np.maximum(lam, 0.0))
    out = np.array(img, dtype=np.float64, copy=True)
    s = m > 0
    out[s] = 2.0 * k[s] / (dose * m[s]) - 1.0
    return out


# ---------------------------------------------------------------------------------------------
# nearest sampled pixel
# ---------------------------------------------------------------------------------------------
def nearest_sampled_bruteforce(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat index of, and squared distance to, the nearest sampled pixel of a 2D ``mask``.

    O(pixels x samples): for tests on small images. Ties: smaller column, then smaller row.
    Without any sampled pixel the index is -1 and the distance -1.
    """
    h, w = mask.shape
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return np.full((h, w), -1, np.int64), np.full((h, w), -1, np.int64)
    order = np.lexsort((rows, cols))  # by column, then row: argmin keeps the first minimum
    rows, cols = rows[order], cols[order]
    rr, cc = np.mgrid[0:h, 0:w]
    d2 = (rr.reshape(-1, 1) - rows.reshape(1, -1)) ** 2 + (cc.reshape(-1, 1) - cols.reshape(1, -1)) ** 2
    best = np.argmin(d2, axis=1)
    index = (rows[best] * w + cols[best]).reshape(h, w)
    return index.astype(np.int64), d2[np.arange(h * w), best].reshape(h, w).astype(np.int64)


def nearest_sampled(mask: np.ndarray, row_chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Exact nearest sampled pixel of a 2D ``mask`` by the separable method, vectorised.

    Column pass: nearest sampled row in each column (``maximum.accumulate`` from above,
    ``minimum.accumulate`` from below; the upper row wins a tie). Row pass: for each pixel the
    column ``q`` minimising ``(r - row_q)^2 + (c - q)^2`` by a dense argmin over ``q`` (the first,
    i.e. smaller, column wins a tie). O(H W^2) work, chunked over rows; the same answer as
    :func:`nearest_sampled_bruteforce`. Returns ``(flat index, squared distance)``, -1 without samples.
    """
    h, w = mask.shape
    rows = np.arange(h).reshape(-1, 1)
    up = np.maximum.accumulate(np.where(mask, rows, -1), axis=0)
    down = np.where(mask, rows, h)[::-1]
    down = np.minimum.accumulate(down, axis=0)[::-1]
    use_down = (up < 0) | ((down < h) & (down - rows < rows - up))
    near_row = np.where(use_down, np.where(down < h, down, -1), up)
    big = np.int64(4) * (h * h + w * w) + 1
    f = np.where(near_row >= 0, (rows - near_row).astype(np.int64) ** 2, big)
    cols = np.arange(w)
    dc2 = (cols.reshape(-1, 1) - cols.reshape(1, -1)).astype(np.int64) ** 2  # (c, q)
    index = np.empty((h, w), np.int64)
    dist2 = np.empty((h, w), np.int64)
    for r0 in range(0, h, row_chunk):
        fr = f[r0:r0 + row_chunk]                          # (rows, q)
        cost = fr[:, None, :] + dc2[None, :, :]            # (rows, c, q)
        q = np.argmin(cost, axis=2)
        best = np.take_along_axis(cost, q[..., None], axis=2)[..., 0]
        nr = np.take_along_axis(near_row[r0:r0 + row_chunk], q, axis=1)
        index[r0:r0 + row_chunk] = np.where(best < big, nr * w + q, -1)
        dist2[r0:r0 + row_chunk] = np.where(best < big, best, -1)
    return index, dist2


def infill_nearest_scipy(values: np.ndarray, sampled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-sampled infill through ``scipy.ndimage.distance_transform_edt`` (spec step 4).

    Returns ``(filled, distance)``; SciPy's tie-breaking among equidistant samples is its own.
    """
    dist, ind = ndimage.distance_transform_edt(~sampled, return_distances=True, return_indices=True)
    return values[tuple(ind)], dist


# ---------------------------------------------------------------------------------------------
# scan paths
# ---------------------------------------------------------------------------------------------
def _finish_dwell(acc: np.ndarray) -> np.ndarray:
    out = np.minimum(acc, 1.0)
    out[out < MIN_DWELL] = 0.0
    return out


def _deposit(acc: np.ndarray, rows: np.ndarray, cols: np.ndarray, weights: np.ndarray) -> None:
    h, w = acc.shape
    ok = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w) & (weights != 0)
    flat = rows[ok].astype(np.int64) * w + cols[ok]
    acc += np.bincount(flat, weights=weights[ok], minlength=h * w).reshape(h, w)


def spiral_params(shape, spacing: float, seed: int, example: int, rotate: bool, max_offset: float):
    """``(k, phi, cx, cy, theta_max, steps)`` of one example's spiral (see :func:`spiral_dwell`)."""
    h, w = shape
    key = R.stream_key_np(seed, example, R.SPIRAL)
    u = R.uniform64_np(key, np.arange(3))
    phi = 2.0 * math.pi * float(u[0]) if rotate else 0.0
    cx = 0.5 * (w - 1) + (2.0 * float(u[1]) - 1.0) * max_offset
    cy = 0.5 * (h - 1) + (2.0 * float(u[2]) - 1.0) * max_offset
    r_max = math.sqrt(max(cx, w - 1 - cx) ** 2 + max(cy, h - 1 - cy) ** 2) + 2.0
    k = spacing / (2.0 * math.pi)
    theta_max = r_max / k
    steps = max(10000, int(math.ceil(math.pi * r_max * r_max / spacing)))
    return k, phi, cx, cy, theta_max, steps


def _split(f: np.ndarray, antialias: bool, scale=1.0):
    """Weights of the two pixels either side of a line at fractional offset ``f``.

    Anti-aliased: ``(1 - f, f)`` times ``scale``. Otherwise the paper's 1-px line: the nearer
    pixel (``f < 0.5``) gets a full dwell of 1 and the other nothing.
    """
    if antialias:
        return (1.0 - f) * scale, f * scale
    w0 = (f < 0.5).astype(np.float64)
    return w0, 1.0 - w0


def spiral_dwell(shape, spacing: float, seed: int = 0, example: int = 0, rotate: bool = True,
                 max_offset: float = 0.0, antialias: bool = False) -> np.ndarray:
    """Archimedean spiral ``r = k theta``, arm spacing ``spacing = 2 pi k`` px, as a dwell map.

    The polyline through ``steps`` equal steps of theta (at least 10 000, enough for segments of
    at most ~2 px) is rasterised as a 1-px line: each segment visits the integer positions ``X``
    of its major axis in ``[start, end)``; across it the line lies between two pixels at
    fractional offset ``f``. By default (the paper's rasterisation) the nearer pixel gets dwell
    1, so the map is binary and the dwell fraction equals the pixel coverage. With
    ``antialias`` the two get ``1 - f`` and ``f`` (a line whose intensity is shared between the
    pixels it passes between). The sum is clipped to [0, 1].
    The spiral is centred at the image centre plus an offset in ``[-max_offset, max_offset]^2``
    and rotated by a random angle (``rotate``); it extends past the farthest corner, which is
    what the spec's ``ceil(sqrt(2) n)`` canvas with a centre crop achieves for zero offset.
    """
    h, w = shape
    k, phi, cx, cy, theta_max, steps = spiral_params(shape, spacing, seed, example, rotate, max_offset)
    theta = np.arange(steps + 1, dtype=np.float64) * (theta_max / steps)
    x = cx + k * theta * np.cos(theta + phi)
    y = cy + k * theta * np.sin(theta + phi)
    acc = np.zeros((h, w), np.float64)
    x0, y0, x1, y1 = x[:-1], y[:-1], x[1:], y[1:]
    dx, dy = x1 - x0, y1 - y0
    for major_x in (True, False):
        sel = (np.abs(dx) >= np.abs(dy)) if major_x else (np.abs(dx) < np.abs(dy))
        a0, a1, b0, db, da = (x0, x1, y0, dy, dx) if major_x else (y0, y1, x0, dx, dy)
        a0, a1, b0, db, da = a0[sel], a1[sel], b0[sel], db[sel], da[sel]
        keep = da != 0
        a0, a1, b0, db, da = a0[keep], a1[keep], b0[keep], db[keep], da[keep]
        fwd = da > 0
        start = np.where(fwd, np.ceil(a0), np.floor(a1) + 1).astype(np.int64)
        stop = np.where(fwd, np.ceil(a1), np.floor(a0) + 1).astype(np.int64)
        count = np.maximum(stop - start, 0)
        seg = np.repeat(np.arange(count.size), count)
        pos = start[seg] + (np.arange(seg.size) - np.repeat(np.cumsum(count) - count, count))
        b = b0[seg] + (pos - a0[seg]) * (db[seg] / da[seg])
        bf = np.floor(b)
        f = b - bf
        bi = bf.astype(np.int64)
        w0, w1 = _split(f, antialias)
        if major_x:
            _deposit(acc, bi, pos, w0)
            _deposit(acc, bi + 1, pos, w1)
        else:
            _deposit(acc, pos, bi, w0)
            _deposit(acc, pos, bi + 1, w1)
    return _finish_dwell(acc)


def grid_params(shape, seed: int, example: int, random_place: bool):
    """``(canvas, oy, ox, flip_rows, flip_cols)`` of one example's jittered grid."""
    h, w = shape
    n = max(h, w)
    canvas = int(1.2 * n)
    if not random_place:
        d = int(0.1 * n)
        return canvas, d, d, False, False
    key = R.stream_key_np(seed, example, R.GRID_PLACE)
    u = R.uniform64_np(key, np.arange(4))
    oy = int(u[0] * (canvas - h + 1))
    ox = int(u[1] * (canvas - w + 1))
    return canvas, oy, ox, bool(u[2] < 0.5), bool(u[3] < 0.5)


def grid_dwell(shape, u: float, amp: float = 1.0, seed: int = 0, example: int = 0,
               random_place: bool = True, antialias: bool = False) -> np.ndarray:
    """Jittered grid (spec): random walks with momentum in parallel channels, plus the transpose.

    Channels of width ``w = grid_channel_width(u)`` tile a square canvas of side ``int(1.2 n)``;
    channel ``j`` is centred on row ``j w + (w - 1) / 2``. Along it, column by column, with
    probability 1/2 the momentum is updated ``mom = 0.5 mom + 0.5 amp (1 + N(0,1))`` and the
    walk moves by it, else the position resets to ``amp (N(0,1) - 1)``; the position is clipped
    to the half-width ``(w - 1) / 2`` (reversing the momentum). The move from one column to the
    next is split into ``ceil(5 amp)`` sub-steps, each depositing ``sqrt(1 + dy^2) / steps`` into
    the two nearest rows with linear weights (time spent: dwell) when ``antialias``, else a dwell
    of 1 into the nearer row (the paper's 1-px line, a binary map). The walk map plus its
    transpose, clipped to [0, 1], is cropped to the image at ``(0.1 n, 0.1 n)``, or with
    ``random_place`` at a random offset in ``[0, 0.2 n]`` with random up-down/left-right flips.
    """
    if not 0.0 < u <= 0.25:
        raise ValueError(f"grid fraction u must be in (0, 0.25], got {u}")
    h, w = shape
    canvas, oy, ox, fy, fx = grid_params(shape, seed, example, random_place)
    width = grid_channel_width(u)
    nch = int(math.ceil(canvas / width))
    half = 0.5 * (width - 1.0)
    centre = np.arange(nch) * width + half
    steps = int(math.ceil(5.0 * amp))
    key = R.stream_key_np(seed, example, R.GRID_WALK)
    acc = np.zeros((h, w), np.float64)
    y = np.zeros(nch)
    mom = np.zeros(nch)
    rows_all, cols_all, wts_all = [], [], []
    for i in range(canvas):
        base = (np.arange(nch, dtype=np.int64) * canvas + i) * 3
        ustep = R.uniform64_np(key, base)
        nrm = R.normal64_np(key, base + 1, base + 2)
        y1 = y.copy()
        move = ustep < 0.5
        mom = np.where(move, 0.5 * mom + 0.5 * amp * (1.0 + nrm), mom)
        y = np.where(move, y + mom, amp * (nrm - 1.0))
        low, high = y < -half, y > half
        y = np.where(low, -half, np.where(high, half, y))
        mom = np.where(low | high, -mom, mom)
        scale = np.sqrt(1.0 + (y - y1) ** 2) / steps
        for s in range(1, steps + 1):
            row = centre + y1 + (y - y1) * (s / steps)
            rf = np.floor(row)
            f = row - rf
            ri = rf.astype(np.int64)
            rows_all += [ri, ri + 1]
            cols_all += [np.full(nch, i), np.full(nch, i)]
            wts_all += list(_split(f, antialias, scale))
    rows = np.concatenate(rows_all)
    cols = np.concatenate(cols_all)
    wts = np.concatenate(wts_all)
    _deposit(acc, rows - oy, cols - ox, wts)   # the walks
    _deposit(acc, cols - oy, rows - ox, wts)   # their transpose
    out = _finish_dwell(acc)
    if fy:
        out = out[::-1, :]
    if fx:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


# ---------------------------------------------------------------------------------------------
# the whole pipeline
# ---------------------------------------------------------------------------------------------
def form_partial_scans(images: np.ndarray, paths: np.ndarray, seed: int = 0, example_base: int = 0,
                       augment: bool = False, fill: str = "nearest", dose: float | None = None,
                       rng: np.random.Generator | None = None, uniform=None, scan_blurred: bool = True):
    """Spec steps 1-4 for a batch, in float64.

    Parameters
    ----------
    images : (B, H, W) array, any real dtype (NaN/Inf allowed)
    paths : (B, H', W') dwell maps in [0, 1] (``H', W'`` = the shape after augmentation)
    seed, example_base : example ``b`` uses the random streams of ``(seed, example_base + b)``
    augment : apply the dihedral transform ``dihedral_indices_np(seed, example)`` first
    fill : ``"nearest"`` (nearest sampled value) or ``"constant"`` (-1, then (x + 1) / 2 -> [0, 1])
    dose : optional Poisson shot noise (electrons per full-dwell pixel), drawn with ``rng``
    uniform : optional callable ``(b, shape) -> U[0,1)`` replacing the counter-based noise
        (the benchmark peer passes a NumPy ``Generator.random``)
    scan_blurred : the beam scans the blurred image (the paper's text, and then a sampled pixel
        of a binary path equals the target); else the unblurred normalised image

    Returns
    -------
    partial, target, img : (B, H', W') float64
        the partial scan, the blurred target and the normalised (augmented) image.
    """
    images = np.asarray(images)
    b_count = images.shape[0]
    partial, target, normed = [], [], []
    for b in range(b_count):
        ex = example_base + b
        x = images[b]
        if augment:
            x = dihedral(x, int(R.dihedral_indices_np(seed, ex)))
        img = normalise(x)
        blur = gaussian_blur(img)
        m = np.asarray(paths[b], dtype=np.float64)
        if m.shape != img.shape:
            raise ValueError(f"path {b} has shape {m.shape} but the image is {img.shape}")
        u = uniform(b, img.shape) if uniform is not None else noise_uniform(seed, ex, img.shape)
        scanned = blur if scan_blurred else img
        signal = scanned if dose is None else shot_noise(scanned, m, dose,
                                                         rng if rng is not None else np.random.default_rng(ex))
        det = detect(signal, blur, m, np.asarray(u, dtype=np.float64))
        sampled = m > 0
        if fill == "nearest":
            if sampled.any():
                out, _ = infill_nearest_scipy(det, sampled)
            else:
                out = np.zeros_like(det)
        elif fill == "constant":
            out = 0.5 * (np.where(sampled, det, -1.0) + 1.0)
        else:
            raise ValueError(f"fill must be 'nearest' or 'constant', got {fill!r}")
        partial.append(out)
        target.append(blur)
        normed.append(img)
    return np.stack(partial), np.stack(target), np.stack(normed)


def pipeline(images: np.ndarray, kind: str, param: float, seed: int = 0, example_base: int = 0,
             amp: float = 1.0, augment: bool = False, uniform=None, antialias: bool = False,
             scan_blurred: bool = True):
    """Path + noise + blur + infill for a batch, the plain way (the benchmark peer).

    ``param`` is the spiral arm spacing (px) for ``kind="spiral"`` or ``u`` for ``kind="grid"``.
    Returns ``(partial, path, target)``.
    """
    shape = images.shape[-2:]
    paths = []
    for b in range(images.shape[0]):
        ex = example_base + b
        if kind == "spiral":
            paths.append(spiral_dwell(shape, param, seed, ex, antialias=antialias))
        else:
            paths.append(grid_dwell(shape, param, amp, seed, ex, antialias=antialias))
    paths = np.stack(paths)
    partial, target, _ = form_partial_scans(images, paths, seed, example_base, augment=augment, uniform=uniform,
                                            scan_blurred=scan_blurred)
    return partial, paths, target
