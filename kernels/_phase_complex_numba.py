"""CPU twin of ``cuda/phase_complex.cu`` (see ``phase_complex.py`` for the equations).

``buf``, ``u`` and ``image`` arrive as real views (``re, im`` interleaved) of complex arrays.
Parallel over rows of the batched array; each row is taken as a slice and the loop bodies are
branch-free (selects), which lets LLVM vectorise them. Every element is independent.

The projection ``P(v)`` onto the phase sector: rotate by the centre, ``w = v e^{-ic} = a + i b``;
``w`` is in the sector when ``a sin h - |b| cos h >= 0`` and ``a >= 0``, else ``P(v)`` is the
nearest point ``t (cos h + i sgn(b) sin h) e^{ic}``, ``t = max(a cos h + |b| sin h, 0)``, of the
nearer boundary ray. Without a range (``constrained == 0``) every point inside the support is in
the set.
"""

from numba import njit, prange

from ._numba_flags import fastmath


@njit(cache=True, nogil=True, fastmath=fastmath())
def _project(re, im, inside, constrained, cc, sc, ch, sh):
    """``(Re P(v), Im P(v), good)`` for ``v = re + i im`` (``good``: ``v`` is in the set)."""
    zero = re * 0
    a = re * cc + im * sc
    b = im * cc - re * sc
    ab = abs(b)
    in_cone = (constrained == 0) | ((a * sh - ab * ch >= 0) & (a >= 0))
    t = a * ch + ab * sh
    t = t if t > 0 else zero
    tsh = t * sh
    tsh = tsh if b >= 0 else -tsh
    tch = t * ch
    er = tch * cc - tsh * sc
    ei = tch * sc + tsh * cc
    good = inside & in_cone
    pr = re if in_cone else er
    pi = im if in_cone else ei
    pr = pr if inside else zero
    pi = pi if inside else zero
    return pr, pi, good


@njit(parallel=True, cache=True, nogil=True, fastmath=fastmath())
def phase_complex_numba(mode, buf, wsup, u, image, write_image, beta, npix, rowlen, wstride, constrained, cc, sc, ch,
                        sh):
    """``buf``, ``u``, ``image``: real views (2 per complex element); ``wsup``: ``npix`` reals
    (``wstride = 0``, shared) or one support per run (``wstride = npix``); ``constrained``: 0/1,
    ``(cc, sc)``, ``(ch, sh)``: cosine and sine of the sector centre and half width."""
    nrows = (buf.size // 2) // rowlen
    for row in prange(nrows):
        base = row * rowlen
        p0 = (base // npix) * wstride + base % npix
        yb = buf[2 * base: 2 * (base + rowlen)]
        ww = wsup[p0: p0 + rowlen]
        if mode == 0 or mode == 5:
            # GPS: mode 0, v - P(v) (the projection onto the polar cone); mode 5 (feedback dual), 0
            # where v is in the set and all of v elsewhere; then the GPS-F weight
            feedback = mode == 5
            for c in range(rowlen):
                ws = ww[c]
                inside = ws < 0
                re = yb[2 * c]
                im = yb[2 * c + 1]
                pr, pi, good = _project(re, im, inside, constrained, cc, sc, ch, sh)
                w = -ws if inside else ws
                if feedback:
                    w = w * 0 if good else w
                    pr = pr * 0
                    pi = pi * 0
                yb[2 * c] = w * (re - pr)
                yb[2 * c + 1] = w * (im - pi)
            continue
        uu = u[2 * base: 2 * (base + rowlen)]
        im_ = image[2 * base: 2 * (base + rowlen)]
        for c in range(rowlen):
            ws = ww[c]
            inside = ws < 0
            re = yb[2 * c]
            im = yb[2 * c + 1]
            pr, pi, good = _project(re, im, inside, constrained, cc, sc, ch, sh)
            if write_image:
                im_[2 * c] = pr
                im_[2 * c + 1] = pi
            if mode == 1:  # ER
                nr = pr
                ni = pi
            elif mode == 2:  # HIO
                nr = re if good else uu[2 * c] - beta * re
                ni = im if good else uu[2 * c + 1] - beta * im
                uu[2 * c] = nr
                uu[2 * c + 1] = ni
            elif mode == 3:  # OSS, first half: h = u - beta x goes to the filter
                nr = uu[2 * c] - beta * re
                ni = uu[2 * c + 1] - beta * im
                uu[2 * c] = re if good else nr
                uu[2 * c + 1] = im if good else ni
            else:  # OSS, second half: HIO value inside S, filtered h outside
                nr = uu[2 * c] if inside else re
                ni = uu[2 * c + 1] if inside else im
                uu[2 * c] = nr
                uu[2 * c + 1] = ni
            yb[2 * c] = nr
            yb[2 * c + 1] = ni
