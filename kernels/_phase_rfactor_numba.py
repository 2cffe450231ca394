"""CPU twins of ``cuda/phase_rfactor.cu`` (see ``phase_rfactor.py``)."""

import math

from numba import njit, prange


@njit(parallel=True, cache=True, nogil=True)
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
        dst = row * nh
        for c in range(nh):
            mc = (nc - c) % nc
            v = z[src + c]
            m = z[msrc + mc]
            half[dst + c] = complex(v.real + m.real, v.imag - m.imag) * half_scale


@njit(parallel=True, cache=True, nogil=True)
def rfactor_half_numba(spec, bh, bm, partial, out, npix, rowlen):
    """Per-row partial sums of ``| |F| - bh | + | |F| - bm |`` (negative b skipped), then per run."""
    nrows = spec.size // rowlen
    rows_per_run = npix // rowlen
    for row in prange(nrows):
        base = row * rowlen
        p0 = base % npix
        acc = 0.0
        for c in range(rowlen):
            v = spec[base + c]
            mag = math.sqrt(float(v.real) * float(v.real) + float(v.imag) * float(v.imag))
            b1 = bh[p0 + c]
            if b1 >= 0:
                acc += abs(mag - b1)
            b2 = bm[p0 + c]
            if b2 >= 0:
                acc += abs(mag - b2)
        partial[row] = acc
    for r in range(out.size):
        acc = 0.0
        for j in range(r * rows_per_run, (r + 1) * rows_per_run):
            acc += partial[j]
        out[r] = acc
