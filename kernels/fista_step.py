"""FISTA's vector updates, fused: the momentum extrapolation and the projected gradient step.

One iteration of :class:`fastem.tomo.regularised.RegularisedReconstruction` (FISTA with gradient
restart, Beck & Teboulle 2009; O'Donoghue & Candes 2015) around its gradient ``g`` at ``y``::

    y      = x + m (x - x_prev)                          fista_extrapolate
    x_new  = P_C(y - step g)                             fista_update (into g)
    x_prev = x
    s      = <y - x_new, x_new - x>                      (restart when s > 0)

``P_C``: ``max(., 0)`` with positivity, then times the support. Each is one pass over the
volume (the NumPy sequence takes 3 and 6 passes) and allocates nothing on the Numba and CUDA
engines. Every element is rounded as the NumPy engine rounds it (no FMA contraction), so the
engines give the same iterates bit for bit; ``s`` is summed in float64 (its order differs).
"""

from __future__ import annotations

import numpy as np

from fastem import backend
from fastem.errors import InputError

from ._dispatch import KernelDispatcher, require_arrays

__all__ = ["fista_extrapolate", "fista_update"]

_EXTRAPOLATE = KernelDispatcher("fista_extrapolate", ("numpy", "numba", "cuda"))
_UPDATE = KernelDispatcher("fista_update", ("numpy", "numba", "cuda"))
_SUPPORTED = (np.dtype(np.float32), np.dtype(np.float64))
_NO_SUPPORT: dict = {}          # dtype -> 1-element placeholder (the Numba kernel wants an array)


@_EXTRAPOLATE.register("numpy")
def _extrapolate_numpy(x, x_prev, y, m):
    xp = backend.get_array_module(x)
    xp.subtract(x, x_prev, out=y)
    y *= y.dtype.type(m)
    y += x
    return y


@_EXTRAPOLATE.register("numba")
def _extrapolate_numba(x, x_prev, y, m):
    from ._fista_step_numba import fista_extrapolate_numba

    fista_extrapolate_numba(x.reshape(-1), x_prev.reshape(-1), y.reshape(-1), y.dtype.type(m))
    return y


@_EXTRAPOLATE.register("cuda")
def _extrapolate_cuda(x, x_prev, y, m):
    from . import _cuda

    with backend.get_device(x).use():
        name = "fista_extrapolate_f32" if x.dtype == np.float32 else "fista_extrapolate_f64"
        kernel = _cuda.get_function("fista_step", name, backend.get_device(x))
        grid, block = _cuda.launch_config(x.size, threads=256, max_blocks=4096)
        kernel(grid, block, (x, x_prev, y, x.dtype.type(m), np.int64(x.size)))
    return y


@_UPDATE.register("numpy")
def _update_numpy(y, g, x, x_prev, step, positivity, support):
    xp = backend.get_array_module(y)
    g *= g.dtype.type(-step)
    g += y
    if positivity:
        xp.maximum(g, 0, out=g)
    if support is not None:
        g *= support
    s = float(xp.sum((y.astype(np.float64) - g) * (g.astype(np.float64) - x)))
    x_prev[...] = x
    return s


@_UPDATE.register("numba")
def _update_numba(y, g, x, x_prev, step, positivity, support):
    from ._fista_step_numba import fista_update_numba

    if support is None:
        support = _NO_SUPPORT.setdefault(y.dtype, np.zeros(1, y.dtype))
        has_support = False
    else:
        support, has_support = support.reshape(-1), True
    return float(fista_update_numba(y.reshape(-1), g.reshape(-1), x.reshape(-1), x_prev.reshape(-1), support,
                                    has_support, bool(positivity), y.dtype.type(-step)))


@_UPDATE.register("cuda")
def _update_cuda(y, g, x, x_prev, step, positivity, support):
    from . import _cuda

    xp = backend.get_array_module(y)
    with backend.get_device(y).use():
        # the 8-byte accumulator comes from CuPy's memory pool (no cudaMalloc); one per call, so that
        # solvers in concurrent threads on one device never share it
        out = xp.zeros(1, dtype=np.float64)
        name = "fista_update_f32" if y.dtype == np.float32 else "fista_update_f64"
        kernel = _cuda.get_function("fista_step", name, backend.get_device(y))
        grid, block = _cuda.launch_config(y.size, threads=256, max_blocks=4096)
        kernel(grid, block, (y, g, x, x_prev, y if support is None else support, np.int32(support is not None),
                             np.int32(bool(positivity)), y.dtype.type(-step), np.int64(y.size), out))
        return float(out[0])


def _check(where: str, **arrays):
    require_arrays(where, **arrays)
    first_name, first = next(iter(arrays.items()))
    if first.dtype not in _SUPPORTED:
        raise InputError(f"{where}: {first_name} must be float32 or float64, got {first.dtype}")
    for name, a in arrays.items():
        if a.shape != first.shape or a.dtype != first.dtype:
            raise InputError(f"{where}: {name} is {a.dtype} {tuple(a.shape)} but {first_name} is "
                             f"{first.dtype} {tuple(first.shape)}")
        if not a.flags.c_contiguous:
            raise InputError(f"{where}: {name} must be C-contiguous")


def _finite_scalar(where: str, name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {name} must be a real number, got {type(value).__name__}") from None
    if not np.isfinite(v):
        raise InputError(f"{where}: {name} must be finite, got {value!r}")
    return v


def fista_extrapolate(x, x_prev, y, momentum: float, *, engine: str | None = None):
    """``y <- x + momentum (x - x_prev)``, in place in ``y``, one pass.

    Parameters
    ----------
    x, x_prev : ndarray, any shape, float32 or float64, C-contiguous
        The current and the previous iterate (not modified).
    y : ndarray, same shape, dtype and device
        Overwritten with the extrapolated point (computed as ``(x - x_prev) * momentum + x``).
    momentum : float
        FISTA's ``(t_k - 1) / t_{k+1}`` (0 = no momentum).
    engine : {None, "numpy", "numba", "cuda"}

    Returns
    -------
    y
    """
    _check("fista_extrapolate", x=x, x_prev=x_prev, y=y)
    m = _finite_scalar("fista_extrapolate", "momentum", momentum)
    return _EXTRAPOLATE(engine, (x, x_prev, y), x, x_prev, y, m)


def fista_update(y, grad, x, x_prev, step: float, *, positivity: bool = True, support=None,
                 engine: str | None = None) -> float:
    """The projected gradient step from ``y``: ``grad <- P_C(y - step grad)``, ``x_prev <- x``.

    Parameters
    ----------
    y : ndarray, any shape, float32 or float64, C-contiguous
        The extrapolated point (not modified).
    grad : ndarray, same shape, dtype and device
        The objective's gradient at ``y``; overwritten with the new iterate ``x_new``.
    x : ndarray
        The current iterate (not modified).
    x_prev : ndarray
        Overwritten with ``x``.
    step : float > 0
    positivity : bool
        Clamp negative values to 0 (NaN is kept, for the caller's divergence check).
    support : ndarray or None
        Multiplies the new iterate (0 off the support).
    engine : {None, "numpy", "numba", "cuda"}

    Returns
    -------
    float
        ``sum (y - x_new) (x_new - x)`` in float64: the gradient-restart test (restart the
        momentum when it is positive).
    """
    arrays = dict(y=y, grad=grad, x=x, x_prev=x_prev)
    if support is not None:
        arrays["support"] = support
    _check("fista_update", **arrays)
    s = _finite_scalar("fista_update", "step", step)
    if not s > 0:
        raise InputError(f"fista_update: step must be finite and > 0, got {step!r}")
    return _UPDATE(engine, tuple(arrays.values()), y, grad, x, x_prev, s, bool(positivity), support)
