"""CPU twin of ``cuda/projection_residual.cu``: crop, subtract, weight and sum in one pass."""

from numba import njit, prange

from ._numba_flags import FASTMATH_SUMS, fastmath


@njit(cache=True, nogil=True, inline="always", fastmath=fastmath(FASTMATH_SUMS))
def _row(s, dd, ww, oo, scale):
    """One detector row without wrap-around: ``oo = (scale*s - dd) * ww``; returns ``sum |d|``
    over ``ww != 0`` (contiguous slices: the loop vectorises; re-associated sum only)."""
    acc = 0.0
    for c in range(dd.shape[0]):
        d = scale * s[c] - dd[c]
        w = ww[c]
        oo[c] = d * w
        acc += abs(d) if w != 0.0 else 0.0
    return acc


@njit(parallel=True, cache=True, nogil=True)
def projection_residual_numba(src, data, weights, out, l1, scale, row_shift, col_shift, ob):
    """``d = scale*src[k, (r+row_shift) % Qr, (c+col_shift) % Qc] - data[k,r,c]``;
    ``out[k, r+ob, c+ob] = d * weights[k,r,c]`` (the ``ob``-wide border of out set to 0);
    ``l1[k] = sum |d|`` over pixels with ``weights != 0`` (float64). ``out`` may be ``src``
    itself when it reads only its own interior. Parallel over projections.

    When the shifted window lies inside ``src`` (the projectors' bordered images) each row is
    one contiguous pass (no modulo per pixel); otherwise rows and columns wrap around.
    """
    nk, rows, cols = data.shape
    qr = src.shape[1]
    qc = src.shape[2]
    inside = row_shift >= 0 and row_shift + rows <= qr and col_shift >= 0 and col_shift + cols <= qc
    for k in prange(nk):
        o = out[k]
        if ob > 0:
            o[:ob, :] = 0.0
            o[ob + rows:, :] = 0.0
            o[:, :ob] = 0.0
            o[:, ob + cols:] = 0.0
        acc = 0.0
        if inside:
            for r in range(rows):
                acc += _row(src[k, r + row_shift, col_shift:col_shift + cols], data[k, r], weights[k, r],
                            o[ob + r, ob:ob + cols], scale)
        else:
            for r in range(rows):
                sr = (r + row_shift) % qr
                for c in range(cols):
                    d = scale * src[k, sr, (c + col_shift) % qc] - data[k, r, c]
                    w = weights[k, r, c]
                    o[ob + r, ob + c] = d * w
                    if w != 0.0:
                        acc += abs(d)
        l1[k] = acc
