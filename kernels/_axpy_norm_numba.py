"""CPU twin of ``cuda/axpy_norm.cu``: Numba parallel loop with a reduction."""

from numba import njit, prange


@njit(parallel=True, cache=True, nogil=True)
def axpy_norm_numba(a, x, y):
    """``y <- a*x + y`` over flat complex arrays; returns ``sum |y|^2`` accumulated in float64."""
    acc = 0.0
    for i in prange(x.size):
        v = a * x[i] + y[i]
        y[i] = v
        acc += float(v.real) * float(v.real) + float(v.imag) * float(v.imag)
    return acc
