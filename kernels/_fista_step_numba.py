"""CPU twins of ``cuda/fista_step.cu``: FISTA's extrapolation and its projected update, one pass each.

No contraction (no FMA): every element is rounded as the NumPy engine rounds it. The update's
restart sum is re-associated (``reassoc`` only: per-thread partial sums vectorise).
"""

from numba import njit, prange


@njit(parallel=True, cache=True, nogil=True)
def fista_extrapolate_numba(x, x_prev, y, m):
    """``y = (x - x_prev) * m + x`` over flat arrays (``m`` of the arrays' dtype)."""
    for i in prange(x.shape[0]):
        xi = x[i]
        y[i] = (xi - x_prev[i]) * m + xi


@njit(parallel=True, cache=True, nogil=True, fastmath={"reassoc"})
def fista_update_numba(y, g, x, x_prev, support, has_support, positivity, neg_step):
    """``x_new = P(g * neg_step + y)`` into ``g``; ``x_prev = x``; returns ``sum (y - x_new)(x_new - x)``
    in float64. ``P``: ``max(., 0)`` when ``positivity`` (NaN kept), then times ``support`` when
    ``has_support``. Flat arrays."""
    acc = 0.0
    zero = neg_step - neg_step        # +0.0 of the arrays' dtype
    for i in prange(y.shape[0]):
        yi = y[i]
        xi = x[i]
        xn = g[i] * neg_step + yi
        if positivity and xn < 0:
            xn = zero
        if has_support:
            xn = xn * support[i]
        acc += (float(yi) - float(xn)) * (float(xn) - float(xi))
        g[i] = xn
        x_prev[i] = xi
    return acc
