"""CPU twin of ``cuda/stem_render.cu``: render Gaussian atom columns through a scan distortion.

Pixel ``(r, c)`` of image ``b`` is scanned at time ``t = (r W + c) / (H W)`` and sees the
specimen at ``x = c + jitter[b, r] + drift[b, 0] t``, ``y = r + drift[b, 1] t``; its intensity
is the carbon-film background (bilinear from a coarse grid of step ``bg_step``) plus
``sum_k amp_k exp(-|(x, y) - p_k|^2 inv2s2_k)`` over the atom columns in the 3x3 cells of a
cell list around ``(x, y)`` (cells of side ``cell`` >= the columns' cut-off radius).
Parallel over (image, row); no atomics.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True, nogil=True)
def render_numba(out, ax, ay, amp, inv2s2, cutoff2, cell_start, meta, jitter, drift, bg, bg_step):
    """``meta[b] = (atom_offset, cell_offset, ncx, ncy, x0, y0, cell)`` as float64."""
    nb, h, w = out.shape
    npix = h * w
    for t in prange(nb * h):
        b = t // h
        r = t - b * h
        aoff = int(meta[b, 0])
        coff = int(meta[b, 1])
        ncx = int(meta[b, 2])
        ncy = int(meta[b, 3])
        x0 = meta[b, 4]
        y0 = meta[b, 5]
        cell = meta[b, 6]
        jr = jitter[b, r]
        gy = r / bg_step
        iy = min(int(gy), bg.shape[1] - 2)
        fy = gy - iy
        for c in range(w):
            tt = (r * w + c) / npix
            xs = c + jr + drift[b, 0] * tt
            ys = r + drift[b, 1] * tt
            gx = c / bg_step
            ix = min(int(gx), bg.shape[2] - 2)
            fx = gx - ix
            acc = ((1 - fy) * ((1 - fx) * bg[b, iy, ix] + fx * bg[b, iy, ix + 1])
                   + fy * ((1 - fx) * bg[b, iy + 1, ix] + fx * bg[b, iy + 1, ix + 1]))
            cx = int(math.floor((xs - x0) / cell))
            cy = int(math.floor((ys - y0) / cell))
            for jy in range(max(cy - 1, 0), min(cy + 2, ncy)):
                for jx in range(max(cx - 1, 0), min(cx + 2, ncx)):
                    k = coff + jy * ncx + jx
                    for a in range(cell_start[k], cell_start[k + 1]):
                        i = aoff + a
                        dx = xs - ax[i]
                        dy = ys - ay[i]
                        d2 = dx * dx + dy * dy
                        if d2 < cutoff2[i]:
                            acc += amp[i] * math.exp(-d2 * inv2s2[i])
            out[b, r, c] = acc
