"""CPU twin of ``cuda/phase_fourier.cu`` (see ``phase_fourier.py`` for the equations).

The complex arrays arrive as real views (``re, im`` interleaved, length ``2 n``) so that every
operation stays in the arrays' precision. Parallel over rows of the batched array; each row is
taken as a slice and the loop body is branch-free (selects), which lets LLVM vectorise it. All
elements are independent: no reduction, nothing to synchronise.
"""

import numpy as np
from numba import njit, prange

from ._numba_flags import fastmath


@njit(parallel=True, cache=True, nogil=True, fastmath=fastmath())
def phase_fourier_numba(mode, z, buf, bk, filt, use_filter, t, s, c_keep, c_mix, scale, one, tiny, npix, rowlen):
    """``z``, ``buf``: real views (2 per complex element); ``bk``, ``filt``: ``npix`` reals.

    ``tiny`` is the smallest normal number of the dtype: ``|w|^2 <= tiny`` counts as ``w = 0``
    (phase 1), so flushed denormals never reach the reciprocal square root.
    """
    zero = one - one
    two = one + one
    nrows = (buf.size // 2) // rowlen
    for row in prange(nrows):
        base = row * rowlen
        p0 = base % npix
        yb = buf[2 * base: 2 * (base + rowlen)]
        bb = bk[p0: p0 + rowlen]
        if mode == 0:  # GPS: prox + extrapolation
            zz = z[2 * base: 2 * (base + rowlen)]
            ff = filt[p0: p0 + rowlen]
            for c in range(rowlen):
                b = bb[c]
                f_y = ff[c] if use_filter else one
                yr = yb[2 * c] * f_y
                yi = yb[2 * c + 1] * f_y
                zr = zz[2 * c]
                zi = zz[2 * c + 1]
                wr = zr - t * yr
                wi = zi - t * yi
                m2 = wr * wr + wi * wi
                known = b >= 0
                pos = m2 > tiny
                inv = one / np.sqrt(m2 if pos else one)
                f = c_keep * b * inv + c_mix if known else one
                add = c_keep * b if (known and not pos) else zero  # arg 0 -> phase 1
                nr = wr * f + add
                ni = wi * f
                zz[2 * c] = nr
                zz[2 * c + 1] = ni
                yb[2 * c] = (yr + s * (two * nr - zr)) * scale
                yb[2 * c + 1] = (yi + s * (two * ni - zi)) * scale
        elif mode == 1:  # magnitude projection (ER / HIO / OSS)
            for c in range(rowlen):
                b = bb[c]
                ur = yb[2 * c]
                ui = yb[2 * c + 1]
                m2 = ur * ur + ui * ui
                known = b >= 0
                pos = m2 > tiny
                inv = one / np.sqrt(m2 if pos else one)
                f = b * inv * scale if known else scale
                add = b * scale if (known and not pos) else zero
                yb[2 * c] = ur * f + add
                yb[2 * c + 1] = ui * f
        else:  # low-pass filter (OSS)
            ff = filt[p0: p0 + rowlen]
            for c in range(rowlen):
                f = ff[c] * scale
                yb[2 * c] = yb[2 * c] * f
                yb[2 * c + 1] = yb[2 * c + 1] * f
