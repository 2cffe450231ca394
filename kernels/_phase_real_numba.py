"""CPU twin of ``cuda/phase_real.cu`` (see ``phase_real.py`` for the equations).

``buf`` arrives as a real view (``re, im`` interleaved). Parallel over rows of the batched
array; each row is taken as a slice and the loop bodies are branch-free (selects), which lets
LLVM vectorise them. Every element is independent.
"""

from numba import njit, prange

from ._numba_flags import fastmath


@njit(parallel=True, cache=True, nogil=True, fastmath=fastmath())
def phase_real_numba(mode, buf, wsup, u, image, write_image, beta, npix, rowlen, wstride):
    """``buf``: real view (2 per complex element); ``wsup``: ``npix`` reals (``wstride = 0``, shared)
    or one support per run (``wstride = npix``); ``u``, ``image``: reals."""
    nrows = (buf.size // 2) // rowlen
    for row in prange(nrows):
        base = row * rowlen
        p0 = (base // npix) * wstride + base % npix
        yb = buf[2 * base: 2 * (base + rowlen)]
        ww = wsup[p0: p0 + rowlen]
        if mode == 0:  # GPS: projection onto S*, then the GPS-F weight
            for c in range(rowlen):
                ws = ww[c]
                inside = ws < 0
                re = yb[2 * c]
                re = (re if re < 0 else re * 0) if inside else re
                w = -ws if inside else ws
                yb[2 * c] = w * re
                yb[2 * c + 1] = w * yb[2 * c + 1]
            continue
        uu = u[base: base + rowlen]
        im = image[base: base + rowlen]
        for c in range(rowlen):
            ws = ww[c]
            x = yb[2 * c]
            zero = x * 0
            inside = ws < 0
            good = inside and x >= 0
            if write_image:
                im[c] = x if good else zero
            if mode == 1:  # ER
                un = x if good else zero
            elif mode == 2:  # HIO
                un = x if good else uu[c] - beta * x
                uu[c] = un
            elif mode == 3:  # OSS, first half: h = u - beta x goes to the filter
                h = uu[c] - beta * x
                uu[c] = x if good else h
                un = h
            else:  # OSS, second half: HIO value inside S, filtered h outside
                un = uu[c] if inside else x
                uu[c] = un
            yb[2 * c] = un
            yb[2 * c + 1] = zero
