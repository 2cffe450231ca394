"""The volume priors' per-voxel arithmetic, written once in plain Python and compiled per engine.

``_volume_prior_numba.py`` compiles :func:`voxel` with ``numba.njit`` and
``_volume_prior_numba_cuda.py`` with ``numba.cuda.jit(device=True)``; ``cuda/volume_prior.cu``
holds the same arithmetic in CUDA C and ``volume_prior.py`` the float64 NumPy reference (written
independently, on whole shifted arrays). Definitions: docs/tomo_regularised.md "Priors".

Kinds (``kind``): 0 anisotropic TV (smoothed), 1 isotropic TV (smoothed), 2 Huber, 3 qGGMRF.
``a`` is epsilon (TV) or delta (Huber); ``p, q, t, sigma`` are the qGGMRF parameters.
"""

import math

ATV, ITV, HUBER, QGGMRF = 0, 1, 2, 3

#: qGGMRF neighbour weights 1/|offset| (face, edge, corner), normalised so the 26 sum to 1 (as MBIR)
_NORM = 6.0 + 12.0 / math.sqrt(2.0) + 8.0 / math.sqrt(3.0)
W_FACE = 1.0 / _NORM
W_EDGE = 1.0 / math.sqrt(2.0) / _NORM
W_CORNER = 1.0 / math.sqrt(3.0) / _NORM


def rho(kind, d, a, p, q, t, sigma):
    """The pair potential ``rho(d)`` of an anisotropic prior (kinds 0, 2, 3)."""
    ad = abs(d)
    if kind == 0:
        return math.sqrt(d * d + a * a) - a
    if kind == 2:
        if ad <= a:
            return 0.5 * d * d
        return a * (ad - 0.5 * a)
    if ad == 0.0:
        return 0.0
    u = (ad / (t * sigma)) ** (q - p)
    return ad ** p / (p * sigma ** p) * u / (1.0 + u)


def drho(kind, d, a, p, q, t, sigma):
    """``rho'(d)`` (odd in ``d``)."""
    if kind == 0:
        return d / math.sqrt(d * d + a * a)
    if kind == 2:
        if d > a:
            return a
        if d < -a:
            return -a
        return d
    ad = abs(d)
    if ad == 0.0:
        return 0.0
    u = (ad / (t * sigma)) ** (q - p)
    g = ad ** (p - 1.0) / (p * sigma ** p) * u / (1.0 + u) * (p + (q - p) / (1.0 + u))
    return g if d > 0.0 else -g


def qg_pair(ad, p, q, c0, lts):
    """qGGMRF ``(rho(d), rho'(|d|))`` at ``ad = |d| > 0`` with ``c0 = 1/(p sigma^p)``, ``lts = log(T sigma)``:
    one log and two exps (``rho' = rho (p + (q - p)/(1 + u)) / |d|``)."""
    lg = math.log(ad)
    u = math.exp((q - p) * (lg - lts))
    r = c0 * math.exp(p * lg) * u / (1.0 + u)
    return r, r * (p + (q - p) / (1.0 + u)) / ad


def _diff3(x, z, y, c, nz, ny, nx):
    """Forward differences of voxel (z, y, c) along z, y, x (0 at the far faces)."""
    v = float(x[z, y, c])
    dz = float(x[z + 1, y, c]) - v if z + 1 < nz else 0.0
    dy = float(x[z, y + 1, c]) - v if y + 1 < ny else 0.0
    dx = float(x[z, y, c + 1]) - v if c + 1 < nx else 0.0
    return dz, dy, dx


def voxel(x, z, y, c, nz, ny, nx, kind, a, p, q, t, sigma):
    """``(dR/dx[z, y, c], this voxel's share of R)`` for voxel (z, y, c) of the (nz, ny, nx) volume ``x``.

    The share sums to ``R`` over the volume: every neighbour pair is counted at the voxel whose
    offset to the other is lexicographically positive; isotropic TV counts ``|grad x| - eps`` at
    each voxel. Reads only ``x`` (gather form: no two voxels write the same place).
    """
    if kind == 1:
        dz, dy, dx = _diff3(x, z, y, c, nz, ny, nx)
        n = math.sqrt(dz * dz + dy * dy + dx * dx + a * a)
        g = -(dz + dy + dx) / n
        val = n - a
        if z > 0:
            ez, ey, ex = _diff3(x, z - 1, y, c, nz, ny, nx)
            g += ez / math.sqrt(ez * ez + ey * ey + ex * ex + a * a)
        if y > 0:
            ez, ey, ex = _diff3(x, z, y - 1, c, nz, ny, nx)
            g += ey / math.sqrt(ez * ez + ey * ey + ex * ex + a * a)
        if c > 0:
            ez, ey, ex = _diff3(x, z, y, c - 1, nz, ny, nx)
            g += ex / math.sqrt(ez * ez + ey * ey + ex * ex + a * a)
        return g, val
    v = float(x[z, y, c])
    g = 0.0
    val = 0.0
    c0 = 0.0
    lts = 0.0
    if kind == 3:
        c0 = 1.0 / (p * sigma ** p)
        lts = math.log(t * sigma)
    for oz in range(-1, 2):
        zz = z + oz
        if zz < 0 or zz >= nz:
            continue
        for oy in range(-1, 2):
            yy = y + oy
            if yy < 0 or yy >= ny:
                continue
            for ox in range(-1, 2):
                cc = c + ox
                if cc < 0 or cc >= nx:
                    continue
                m = abs(oz) + abs(oy) + abs(ox)
                if m == 0:
                    continue
                if kind != 3:
                    if m != 1:
                        continue
                    w = 1.0
                elif m == 1:
                    w = W_FACE
                elif m == 2:
                    w = W_EDGE
                else:
                    w = W_CORNER
                d = v - float(x[zz, yy, cc])
                positive = oz > 0 or (oz == 0 and (oy > 0 or (oy == 0 and ox > 0)))
                if kind == 3:
                    if d != 0.0:
                        r, dr = qg_pair(abs(d), p, q, c0, lts)
                        g += w * dr if d > 0.0 else -w * dr
                        if positive:
                            val += w * r
                    continue
                g += w * drho(kind, d, a, p, q, t, sigma)
                if positive:
                    val += w * rho(kind, d, a, p, q, t, sigma)
        # (pairs with a negative offset are counted at the other voxel)
    return g, val


def compile_voxel(jit):
    """:func:`voxel` compiled with ``jit`` (``numba.njit(...)`` or ``numba.cuda.jit(device=True)``).

    The helpers it calls are compiled with the same ``jit`` and bound in a copy of this module's
    namespace, so one source serves both engines.
    """
    import types

    ns = dict(globals())
    ns.update(rho=jit(rho), drho=jit(drho), _diff3=jit(_diff3), qg_pair=jit(qg_pair))
    return jit(types.FunctionType(voxel.__code__, ns, "voxel", voxel.__defaults__))
