"""CPU twin of ``cuda/projection_residual.cu``: crop, subtract, weight and sum in one pass."""

from numba import njit, prange


@njit(parallel=True, cache=True, nogil=True)
def projection_residual_numba(src, data, weights, out, l1, scale, row_shift, col_shift, ob):
    """``d = scale*src[k, (r+row_shift) % Qr, (c+col_shift) % Qc] - data[k,r,c]``;
    ``out[k, r+ob, c+ob] = d * weights[k,r,c]`` (the ``ob``-wide border of out set to 0);
    ``l1[k] = sum |d|`` over pixels with ``weights != 0`` (float64). ``out`` may be ``src``
    itself when it reads only its own interior. Parallel over projections.
    """
    nk, rows, cols = data.shape
    qr = src.shape[1]
    qc = src.shape[2]
    for k in prange(nk):
        o = out[k]
        if ob > 0:
            o[:ob, :] = 0.0
            o[ob + rows:, :] = 0.0
            o[:, :ob] = 0.0
            o[:, ob + cols:] = 0.0
        acc = 0.0
        for r in range(rows):
            sr = (r + row_shift) % qr
            for c in range(cols):
                d = scale * src[k, sr, (c + col_shift) % qc] - data[k, r, c]
                w = weights[k, r, c]
                o[ob + r, ob + c] = d * w
                if w != 0.0:
                    acc += abs(d)
        l1[k] = acc
