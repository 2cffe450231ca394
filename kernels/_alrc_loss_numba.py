"""CPU twin of ``cuda/alrc_loss.cu``: per-example loss reductions, ALRC finalisation, scaled gradient.

Arrays arrive flattened to ``(B, P)`` (B examples of P pixels each). Work is split into
``(example, chunk)`` tiles so that a single large example (batch 1) still uses every core.
Loss codes: 0 = MSE, 1 = Huberised MSE, 2 = quartic error, 3 = mean absolute error.
All arithmetic is float64 whatever the input dtype.
"""

import math

import numpy as np
from numba import njit, prange

from . import _alrc_common
from ._numba_flags import FASTMATH_SUMS, fastmath

_example_terms = njit(inline="always", cache=True)(_alrc_common.example_terms)
_clip_threshold = njit(inline="always", cache=True)(_alrc_common.clip_threshold)

CHUNK = 16384
#: below this many pixels per call the serial twins run (a parallel region costs more than the work)
SERIAL_BELOW = 1 << 16


def _partial_sums(pred, target, weight, has_weight, kind, chunk, partial):
    """``partial[b, c] = sum_{p in chunk c} w_p * e(pred[b, p] - target[b, p])``.

    ``weight`` is ``(1, P)`` (shared by every example) or ``(B, P)``; ignored when ``has_weight``
    is false. ``e`` is ``d^2`` (kinds 0, 1), ``d^4`` (kind 2) or ``|d|`` (kind 3). One branch-free
    inner loop per (kind, weighted) so that LLVM vectorises it (``reassoc`` lets it split the sum).
    """
    nb, npix = pred.shape
    nchunk = partial.shape[1]
    wb_stride = 1 if weight.shape[0] > 1 else 0
    for t in prange(nb * nchunk):
        b, c, lo, hi = _chunk_of(t, nchunk, chunk, npix)
        # chunk slices indexed from 0: Numba then knows indices are non-negative and vectorises
        pb = pred[b, lo:hi]
        tb = target[b, lo:hi]
        wr = weight[b * wb_stride, lo:hi]
        acc = 0.0
        if kind == 2:
            if has_weight:
                for p in range(hi - lo):
                    d = np.float64(pb[p]) - np.float64(tb[p])
                    acc += (d * d) * (d * d) * np.float64(wr[p])
            else:
                for p in range(hi - lo):
                    d = np.float64(pb[p]) - np.float64(tb[p])
                    acc += (d * d) * (d * d)
        elif kind == 3:
            if has_weight:
                for p in range(hi - lo):
                    acc += abs(np.float64(pb[p]) - np.float64(tb[p])) * np.float64(wr[p])
            else:
                for p in range(hi - lo):
                    acc += abs(np.float64(pb[p]) - np.float64(tb[p]))
        else:
            if has_weight:
                for p in range(hi - lo):
                    d = np.float64(pb[p]) - np.float64(tb[p])
                    acc += d * d * np.float64(wr[p])
            else:
                for p in range(hi - lo):
                    d = np.float64(pb[p]) - np.float64(tb[p])
                    acc += d * d
        partial[b, c] = acc



@njit(inline="always", cache=True)
def _chunk_of(t, nchunk, chunk, npix):
    """Task ``t`` of the (example, chunk) grid: ``(example b, chunk c, first pixel, end pixel)``."""
    b = t // nchunk
    c = t - b * nchunk
    lo = c * chunk
    return b, c, lo, min(npix, lo + chunk)

@njit(cache=True, nogil=True)
def alrc_finalize_numba(partial, npix, kind, scale, n, beta, clip, update, moments, losses, clipped, factor,
                        gscale):
    """Per-example losses, clip factors and gradient scales from the partial sums; moment update.

    Writes ``losses[b] = L_b``, ``clipped[b] = L_dyn_b``, ``factor[b] = c_b`` and
    ``gscale[b] = c_b * dL_b/dm_b / (P * B)`` (``m_b`` the weighted mean of ``e``). When ``clip``
    and ``update`` and every loss is finite, ``moments = [mu1, mu2]`` is updated in place from the
    clipped losses. Returns ``(mean clipped loss, number of non-finite losses)``.
    """
    nb = partial.shape[0]
    lmax = 0.0
    if clip:
        lmax = _clip_threshold(moments[0], moments[1], n)
    s1 = 0.0
    s2 = 0.0
    bad = 0
    for b in range(nb):
        tot = 0.0
        for c in range(partial.shape[1]):
            tot += partial[b, c]
        loss, ld, f, g, flag = _example_terms(scale * tot / npix, kind, clip, lmax, scale, npix, nb)
        bad += flag
        losses[b] = loss
        clipped[b] = ld
        factor[b] = f
        gscale[b] = g
        s1 += ld
        s2 += ld * ld
    if clip and update and bad == 0:
        moments[0] = beta * moments[0] + (1.0 - beta) * (s1 / nb)
        moments[1] = beta * moments[1] + (1.0 - beta) * (s2 / nb)
    return s1 / nb, bad


def _grad(pred, target, weight, has_weight, kind, gscale, gout, chunk, grad):
    """``grad[b, p] = gout * gscale[b] * w_p * e'(pred[b, p] - target[b, p])`` (branch-free inner loops)."""
    nb, npix = pred.shape
    nchunk = (npix + chunk - 1) // chunk
    wb_stride = 1 if weight.shape[0] > 1 else 0
    for t in prange(nb * nchunk):
        b, c, lo, hi = _chunk_of(t, nchunk, chunk, npix)
        pb = pred[b, lo:hi]
        tb = target[b, lo:hi]
        ob = grad[b, lo:hi]
        wr = weight[b * wb_stride, lo:hi]
        g = gout * gscale[b]
        if kind == 2:
            g4 = 4.0 * g
            if has_weight:
                for p in range(hi - lo):
                    d = np.float64(pb[p]) - np.float64(tb[p])
                    ob[p] = g4 * d * d * d * np.float64(wr[p])
            else:
                for p in range(hi - lo):
                    d = np.float64(pb[p]) - np.float64(tb[p])
                    ob[p] = g4 * d * d * d
        elif kind == 3:
            if has_weight:
                for p in range(hi - lo):
                    d = np.float64(pb[p]) - np.float64(tb[p])
                    ob[p] = g * np.float64(wr[p]) * ((d > 0.0) - (d < 0.0))
            else:
                for p in range(hi - lo):
                    d = np.float64(pb[p]) - np.float64(tb[p])
                    ob[p] = g * ((d > 0.0) - (d < 0.0))
        else:
            g2 = 2.0 * g
            if has_weight:
                for p in range(hi - lo):
                    ob[p] = g2 * (np.float64(pb[p]) - np.float64(tb[p])) * np.float64(wr[p])
            else:
                for p in range(hi - lo):
                    ob[p] = g2 * (np.float64(pb[p]) - np.float64(tb[p]))


_REASSOC = fastmath(FASTMATH_SUMS)  # vectorisable sums; no nnan/ninf: NaN/Inf still propagate to the check
alrc_partial_sums_numba = njit(parallel=True, cache=True, nogil=True, fastmath=_REASSOC)(_partial_sums)
alrc_partial_sums_serial = njit(cache=True, nogil=True, fastmath=_REASSOC)(_partial_sums)
alrc_grad_numba = njit(parallel=True, cache=True, nogil=True)(_grad)
alrc_grad_serial = njit(cache=True, nogil=True)(_grad)
