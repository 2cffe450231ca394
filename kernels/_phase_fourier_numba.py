"""CPU twin of ``cuda/phase_fourier.cu`` (see ``phase_fourier.py`` for the equations).

Parallel over rows of the batched array (one modulo per row, contiguous inner loop); every
element is independent, so there is no reduction and nothing to synchronise.
"""

import math

from numba import njit, prange


@njit(parallel=True, cache=True, nogil=True, fastmath=False)
def phase_fourier_numba(mode, z, buf, bk, filt, use_filter, t, s, c_keep, c_mix, scale, npix, rowlen):
    nrows = buf.size // rowlen
    two = 2.0
    for row in prange(nrows):
        base = row * rowlen
        p0 = base % npix
        if mode == 0:  # GPS: prox + extrapolation
            for c in range(rowlen):
                i = base + c
                p = p0 + c
                ye = buf[i]
                if use_filter:
                    ye = ye * filt[p]
                zv = z[i]
                w = zv - t * ye
                b = bk[p]
                if b >= 0:
                    m2 = w.real * w.real + w.imag * w.imag
                    if m2 > 0:
                        zn = w * (c_keep * b / math.sqrt(m2) + c_mix)
                    else:
                        zn = w * c_mix + c_keep * b
                else:
                    zn = w
                z[i] = zn
                buf[i] = (ye + s * (two * zn - zv)) * scale
        elif mode == 1:  # magnitude projection (ER / HIO / OSS)
            for c in range(rowlen):
                i = base + c
                b = bk[p0 + c]
                u = buf[i]
                if b >= 0:
                    m2 = u.real * u.real + u.imag * u.imag
                    if m2 > 0:
                        u = u * (b * scale / math.sqrt(m2))
                    else:
                        u = u * 0 + b * scale
                else:
                    u = u * scale
                buf[i] = u
        else:  # low-pass filter (OSS)
            for c in range(rowlen):
                i = base + c
                buf[i] = buf[i] * (filt[p0 + c] * scale)
