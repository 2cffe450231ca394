"""CPU twin of ``cuda/phase_real.cu`` (see ``phase_real.py`` for the equations).

Parallel over rows of the batched array (one modulo per row, contiguous inner loop); every
element is independent.
"""

from numba import njit, prange


@njit(parallel=True, cache=True, nogil=True)
def phase_real_numba(mode, buf, wsup, u, image, write_image, beta, npix, rowlen):
    nrows = buf.size // rowlen
    for row in prange(nrows):
        base = row * rowlen
        p0 = base % npix
        if mode == 0:  # GPS: projection onto S*, then the GPS-F weight
            for c in range(rowlen):
                i = base + c
                ws = wsup[p0 + c]
                v = buf[i]
                re = v.real
                if ws < 0:
                    if re > 0:
                        re = re * 0
                    ws = -ws
                buf[i] = v * 0 + complex(ws * re, ws * v.imag)
        else:
            for c in range(rowlen):
                i = base + c
                ws = wsup[p0 + c]
                x = buf[i].real
                good = ws < 0 and x >= 0
                if write_image:
                    image[i] = x if good else x * 0
                if mode == 1:  # ER
                    un = x if good else x * 0
                elif mode == 2:  # HIO
                    un = x if good else u[i] - beta * x
                    u[i] = un
                elif mode == 3:  # OSS, first half: h = u - beta x goes to the filter
                    h = u[i] - beta * x
                    u[i] = x if good else h
                    un = h
                else:  # OSS, second half: HIO value inside S, filtered h outside
                    un = u[i] if ws < 0 else x
                    u[i] = un
                buf[i] = buf[i] * 0 + un
