"""CPU twins of ``cuda/phase_rfactor.cu`` (see ``phase_rfactor.py``).

Complex arrays arrive as real views (``re, im`` interleaved). Parallel over rows; rows are taken
as slices so that LLVM can vectorise the loops. The reduction keeps one float64 partial sum per
row (no atomics), then sums the rows of each run.
"""

import numpy as np
from numba import njit, prange

from ._numba_flags import fastmath


@njit(parallel=True, cache=True, nogil=True, fastmath=fastmath())
def hermitian_half_numba(z, half, runs, na, nb, nc, half_scale):
    """``half[r,a,b,c] = half_scale * (z[r,a,b,c] + conj(z[r,-a,-b,-c]))`` for ``c <= nc // 2``."""
    nh = nc // 2 + 1
    npix = na * nb * nc
    for row in prange(runs * na * nb):
        r = row // (na * nb)
        ab = row - r * (na * nb)
        a = ab // nb
        b = ab - a * nb
        ma = (na - a) % na
        mb = (nb - b) % nb
        src = r * npix + (a * nb + b) * nc
        msrc = r * npix + (ma * nb + mb) * nc
        zs = z[2 * src: 2 * (src + nc)]
        zm = z[2 * msrc: 2 * (msrc + nc)]
        out = half[2 * row * nh: 2 * (row + 1) * nh]
        out[0] = half_scale * (zs[0] + zm[0])
        out[1] = half_scale * (zs[1] - zm[1])
        for c in range(1, nh):
            mc = nc - c
            out[2 * c] = half_scale * (zs[2 * c] + zm[2 * mc])
            out[2 * c + 1] = half_scale * (zs[2 * c + 1] - zm[2 * mc + 1])


@njit(parallel=True, cache=True, nogil=True, fastmath=fastmath())
def rfactor_half_numba(spec, bh, bm, partial, out, npix, rowlen):
    """Per-row partial sums of ``| |F| - bh | + | |F| - bm |`` (negative b skipped), then per run."""
    nrows = (spec.size // 2) // rowlen
    rows_per_run = npix // rowlen
    for row in prange(nrows):
        base = row * rowlen
        p0 = base % npix
        sp = spec[2 * base: 2 * (base + rowlen)]
        b1 = bh[p0: p0 + rowlen]
        b2 = bm[p0: p0 + rowlen]
        acc = 0.0
        for c in range(rowlen):
            re = sp[2 * c]
            im = sp[2 * c + 1]
            mag = np.float64(np.sqrt(re * re + im * im))
            x1 = np.float64(b1[c])
            x2 = np.float64(b2[c])
            acc += (abs(mag - x1) if x1 >= 0 else 0.0) + (abs(mag - x2) if x2 >= 0 else 0.0)
        partial[row] = acc
    for r in range(out.size):
        acc = 0.0
        for j in range(r * rows_per_run, (r + 1) * rows_per_run):
            acc += partial[j]
        out[r] = acc
