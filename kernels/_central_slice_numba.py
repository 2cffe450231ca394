"""CPU twins of ``cuda/central_slice.cu``: the three kernels of the ``fst`` forward projection.

1. :func:`pad_rows_numba` -- place the volume in a row-padded real array (nz, ny, Px), each row
   centred at index 0 with wrap-around (``x - nx//2`` -> ``(x - nx//2) mod Px``), zeros elsewhere;
2. (1D real FFTs along x, by the caller)
3. :func:`scatter_planes_numba` -- place those rows in the half spectrum (Pz, Py, Px//2+1) with
   the same wrap-around along z and y, zeros elsewhere; (then a 2D FFT over (z, y) in place)
4. :func:`sample_slices_numba` -- trilinear interpolation of the half spectrum on each
   projection's central plane (Hermitian lookup for negative kx; 0 outside the grid).
"""

import math

from numba import njit, prange


@njit(parallel=True, cache=True, nogil=True)
def pad_rows_numba(volume, out):
    """out (nz, ny, Px) real <- rows of ``volume`` (nz, ny, nx), centred with wrap-around."""
    nz, ny, nx = volume.shape
    px = out.shape[2]
    cx = nx // 2
    for line in prange(nz * ny):
        iz = line // ny
        iy = line - iz * ny
        src = volume[iz, iy]
        dst = out[iz, iy]
        for j in range(px):
            dst[j] = 0.0
        for ix in range(nx):
            dst[(ix - cx) % px] = src[ix]


@njit(parallel=True, cache=True, nogil=True)
def scatter_planes_numba(rows, spectrum, cz, cy):
    """spectrum (Pz, Py, H) complex <- rows (nz, ny, H) at ((iz - cz) mod Pz, (iy - cy) mod Py), else 0."""
    nz, ny, h = rows.shape
    pz, py, _ = spectrum.shape
    for t in prange(pz * py):
        jz = t // py
        jy = t - jz * py
        iz = (jz + cz) % pz
        iy = (jy + cy) % py
        dst = spectrum[jz, jy]
        if iz < nz and iy < ny:
            src = rows[iz, iy]
            for j in range(h):
                dst[j] = src[j]
        else:
            for j in range(h):
                dst[j] = 0.0


@njit(inline="always", cache=True)
def _fetch(spectrum, kz, ky, kx, pz, py, px):
    """F[kz, ky, kx] of the full periodic spectrum from its stored half (kx >= 0)."""
    if kx >= px - px // 2:  # wrap into [-Px/2, Px/2)
        kx -= px
    if kx < 0:
        return spectrum[(-kz) % pz, (-ky) % py, -kx].conjugate()
    return spectrum[kz % pz, ky % py, kx]


@njit(parallel=True, cache=True, nogil=True)
def sample_slices_numba(spectrum, frames, out, pz, py, px):
    """out[k, r, c] = trilinear F at ``c_idx = ku * frames[k,0] + kv * frames[k,1]`` (index units, x y z).

    spectrum (Pz, Py, Px//2+1) complex; frames (nk, 2, 3) float64; out (nk, Qr, Qc//2+1) complex;
    ``ku = c``, ``kv = r`` wrapped to [-Qr/2, Qr/2). Points with ``|c_a| >= P_a/2`` on any axis -> 0,
    and so are the Nyquist row (``kv = -Qr/2``, even Qr) and column (``c = Qc//2``, Qc even).
    """
    nk, qr, qh = out.shape
    hx, hy, hz = 0.5 * px, 0.5 * py, 0.5 * pz
    for t in prange(nk * qr):
        k = t // qr
        r = t - k * qr
        kv = r - qr if r >= qr - qr // 2 else r
        ux, uy, uz = frames[k, 0, 0], frames[k, 0, 1], frames[k, 0, 2]
        bx = kv * frames[k, 1, 0]
        by = kv * frames[k, 1, 1]
        bz = kv * frames[k, 1, 2]
        dst = out[k, r]
        if qr % 2 == 0 and r == qr // 2:
            dst[:] = 0.0
            continue
        dst[qh - 1] = 0.0
        for c in range(qh - 1):
            x = bx + c * ux
            y = by + c * uy
            z = bz + c * uz
            if abs(x) >= hx or abs(y) >= hy or abs(z) >= hz:
                dst[c] = 0.0
                continue
            fx = math.floor(x)
            fy = math.floor(y)
            fz = math.floor(z)
            wx = x - fx
            wy = y - fy
            wz = z - fz
            ix = int(fx)
            iy = int(fy)
            iz = int(fz)
            acc = ((1.0 - wz) * ((1.0 - wy) * ((1.0 - wx) * _fetch(spectrum, iz, iy, ix, pz, py, px)
                                               + wx * _fetch(spectrum, iz, iy, ix + 1, pz, py, px))
                                 + wy * ((1.0 - wx) * _fetch(spectrum, iz, iy + 1, ix, pz, py, px)
                                         + wx * _fetch(spectrum, iz, iy + 1, ix + 1, pz, py, px)))
                   + wz * ((1.0 - wy) * ((1.0 - wx) * _fetch(spectrum, iz + 1, iy, ix, pz, py, px)
                                         + wx * _fetch(spectrum, iz + 1, iy, ix + 1, pz, py, px))
                           + wy * ((1.0 - wx) * _fetch(spectrum, iz + 1, iy + 1, ix, pz, py, px)
                                   + wx * _fetch(spectrum, iz + 1, iy + 1, ix + 1, pz, py, px))))
            dst[c] = acc
