"""Numba CUDA version of ``cuda/alrc_loss.cu`` (runs on a GPU, or under the CUDA simulator).

Same three kernels: per-example partial sums (grid ``(bx, by)``, one example per ``y`` block
row, atomically added), a one-block finalisation (losses, clip factors, gradient scales, mean,
moment update on the device) and the scaled gradient. Arrays are flattened to ``(B, P)``.
"""

import math

from numba import cuda, float64

from . import _alrc_common
from ._numba_cuda_reduce import THREADS, block_sum as _block_sum

_example_terms = cuda.jit(device=True)(_alrc_common.example_terms)
_clip_threshold = cuda.jit(device=True)(_alrc_common.clip_threshold)


@cuda.jit
def alrc_sums_kernel(pred, target, weight, has_weight, kind, sums):
    partial = cuda.shared.array(THREADS, dtype=float64)
    tid = cuda.threadIdx.x
    nb, npix = pred.shape
    per_example = weight.shape[0] > 1
    b = cuda.blockIdx.y
    while b < nb:
        wb = b if per_example else 0
        acc = 0.0
        i = cuda.blockIdx.x * cuda.blockDim.x + tid
        while i < npix:
            d = float64(pred[b, i]) - float64(target[b, i])
            if kind == 2:
                e = d * d * d * d
            elif kind == 3:
                e = abs(d)
            else:
                e = d * d
            if has_weight:
                e *= float64(weight[wb, i])
            acc += e
            i += cuda.blockDim.x * cuda.gridDim.x
        total = _block_sum(partial, tid, acc)
        if tid == 0:
            cuda.atomic.add(sums, b, total)
        b += cuda.gridDim.y


@cuda.jit
def alrc_finalize_kernel(sums, npix, kind, scale, n, beta, clip, update, moments, losses, clipped, factor, gscale,
                         mean, nonfinite):
    partial = cuda.shared.array(THREADS, dtype=float64)
    tid = cuda.threadIdx.x
    nb = sums.shape[0]
    mu1 = moments[0]
    mu2 = moments[1]
    lmax = 0.0
    if clip:
        lmax = _clip_threshold(mu1, mu2, n)
    s1 = 0.0
    s2 = 0.0
    bad = 0.0
    b = tid
    while b < nb:
        loss, ld, f, g, flag = _example_terms(scale * sums[b] / npix, kind, clip, lmax, scale, npix, nb)
        bad += flag
        losses[b] = loss
        clipped[b] = ld
        factor[b] = f
        gscale[b] = g
        s1 += ld
        s2 += ld * ld
        b += THREADS
    s1 = _block_sum(partial, tid, s1)
    s2 = _block_sum(partial, tid, s2)
    bad = _block_sum(partial, tid, bad)
    if tid == 0:
        mean[0] = s1 / nb
        nonfinite[0] = int(bad)
        if clip and update and bad == 0.0:
            moments[0] = beta * mu1 + (1.0 - beta) * (s1 / nb)
            moments[1] = beta * mu2 + (1.0 - beta) * (s2 / nb)


@cuda.jit
def alrc_grad_kernel(pred, target, weight, has_weight, kind, gscale, gout, grad):
    nb, npix = pred.shape
    per_example = weight.shape[0] > 1
    g0 = gout[0]
    b = cuda.blockIdx.y
    while b < nb:
        wb = b if per_example else 0
        g = g0 * gscale[b]
        i = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        while i < npix:
            d = float64(pred[b, i]) - float64(target[b, i])
            if kind == 2:
                de = 4.0 * d * d * d
            elif kind == 3:
                de = 1.0 if d > 0.0 else (-1.0 if d < 0.0 else 0.0)
            else:
                de = 2.0 * d
            if has_weight:
                de *= float64(weight[wb, i])
            grad[b, i] = g * de
            i += cuda.blockDim.x * cuda.gridDim.x
        b += cuda.gridDim.y
