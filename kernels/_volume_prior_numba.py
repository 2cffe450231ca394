"""CPU twin of ``cuda/volume_prior.cu``: one parallel pass over the voxels (gather form, no races)."""

from numba import njit, prange

from . import _volume_prior_common

_voxel = _volume_prior_common.compile_voxel(njit(inline="always"))


# no cache=True: Numba's cache checks only this file's time stamp, not _volume_prior_common.py's,
# so a cached build would silently keep old arithmetic after an edit there (compiles once per process)
@njit(parallel=True, nogil=True)
def volume_prior_numba(x, grad, kind, a, p, q, t, sigma, alpha, beta):
    """``grad <- beta*grad + alpha*dR/dx`` over a (nz, ny, nx) volume; returns ``R(x)`` (float64).

    ``beta == 0`` overwrites ``grad`` (its old values, NaN included, are not read).
    """
    nz, ny, nx = x.shape
    total = 0.0
    for z in prange(nz):
        acc = 0.0
        for y in range(ny):
            for c in range(nx):
                g, v = _voxel(x, z, y, c, nz, ny, nx, kind, a, p, q, t, sigma)
                if beta == 0.0:
                    grad[z, y, c] = alpha * g
                else:
                    grad[z, y, c] = beta * grad[z, y, c] + alpha * g
                acc += v
        total += acc
    return total
