"""Laplacian smoothing of gradients (LS-GD, thesis chapter 5, Osher et al. arXiv 1806.06317).

For a vector ``g`` of length ``m`` (one periodic 1D signal) the order-``n`` smoothed vector is

.. math::  d = (A^n_\\sigma)^{-1} g, \\qquad A^n_\\sigma = I + (-1)^n \\sigma L^n,

with ``L`` the periodic 1D discrete Laplacian (first row ``v = [-2, 1, 0, ..., 0, 1]``, thesis
eq. 5.9 ff.). ``A`` is circulant, so ``d = ifft(fft(g) / (1 + (-1)^n sigma fft(v_n)))`` with
``v_n`` the first row of ``L^n`` (section 5.2.4). The eigenvalues of ``L`` are
``-4 sin^2(pi k / m)``, hence the denominator is real, even and at least 1:

.. math::  D_k = 1 + \\sigma \\, (4 \\sin^2(\\pi k / m))^n, \\qquad D_0 = 1

(``D_0 = 1``: the mean of ``g`` is preserved). Smoothing therefore runs as one real FFT, a
multiply of the half spectrum by the cached real factor ``1 / (m D_k)`` (the ``1/m`` of the
inverse transform is folded in), and one inverse real FFT.

Signals shorter than ``2n + 1`` are passed through unsmoothed (thesis remark in 5.2.4).

This module needs only NumPy (CuPy on the GPU); torch tensors are accepted and returned
(zero-copy views through :mod:`fastem.interop`), and a torch-only fallback (``torch.fft``)
serves devices CuPy cannot see.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import numpy as np

from .. import backend, interop
from .. import fft as F
from ..config import settings
from .._lru import LRUCache
from ..errors import InputError

__all__ = [
    "laplacian_coefficients",
    "laplacian_stencil",
    "laplacian_denominator",
    "laplacian_smooth",
    "smooth_rows",
    "min_length",
    "clear_denominator_cache",
]

_CACHE_SIZE = 256
_den_cache = LRUCache(_CACHE_SIZE)


def _check_order_sigma(order, sigma, where: str) -> tuple[int, float]:
    if isinstance(order, bool) or int(order) != order or int(order) < 1:
        raise InputError(f"{where}: order must be an integer >= 1, got {order!r}")
    sigma = float(sigma)
    if not np.isfinite(sigma) or sigma < 0:
        raise InputError(f"{where}: sigma must be finite and >= 0, got {sigma!r}")
    return int(order), sigma


def min_length(order: int = 1) -> int:
    """Shortest signal that is smoothed at ``order`` (``2 * order + 1``); shorter ones pass through."""
    return 2 * int(order) + 1


def laplacian_coefficients(order: int = 1) -> np.ndarray:
    """Stencil ``c^n = (c_1, ..., c_{2n+1})`` of ``L^n`` (the central difference of order 2n).

    ``c^1 = (1, -2, 1)`` and ``c^n = c^{n-1} * (1, -2, 1)`` (full convolution), i.e.
    ``c^n_i = c^{n-1}_{i-2} - 2 c^{n-1}_{i-1} + c^{n-1}_i`` with out-of-range entries 0, which gives
    ``c^n_i = (-1)^{i-1} binom(2n, i-1)``. This is the recursion of thesis section 5.2.4 with its
    index offset corrected: the printed middle case ``c_{i-1} - 2 c_i + c_{i+1}`` would give
    ``c^2_3 = -4`` instead of the correct 6 (the stencil of the 4th derivative is
    ``1, -4, 6, -4, 1``); the printed boundary cases agree with the convolution.

    Returns
    -------
    ndarray of int64, shape (2n+1,)
    """
    order, _ = _check_order_sigma(order, 0.0, "laplacian_coefficients")
    c = np.array([1, -2, 1], dtype=np.int64)
    for _ in range(order - 1):
        c = np.convolve(c, [1, -2, 1])
    return c


def laplacian_stencil(m: int, order: int = 1) -> np.ndarray:
    """First row ``v_n`` of the ``m x m`` circulant ``L^n`` (float64, length ``m``).

    ``v_n = (c_{n+1}, ..., c_{2n+1}, 0, ..., 0, c_1, ..., c_n)`` (section 5.2.4); for ``m < 2n+1``
    the wrapped taps add up, which is still exactly the first row of the circulant power.
    """
    m = int(m)
    if m < 1:
        raise InputError(f"laplacian_stencil: length must be >= 1, got {m}")
    c = laplacian_coefficients(order).astype(np.float64)
    n = int(order)
    v = np.zeros(m, np.float64)
    for j, cj in zip(range(-n, n + 1), c):
        v[j % m] += cj
    return v


def _denominator64(m: int, order: int, sigma: float) -> np.ndarray:
    k = np.arange(m // 2 + 1, dtype=np.float64)
    lam = 4.0 * np.sin(np.pi * k / m) ** 2  # -(eigenvalues of L), >= 0
    den = 1.0 + sigma * lam ** order
    den[0] = 1.0  # exact: the mean is preserved bit for bit
    return den


def _cached(key, build):
    return _den_cache.get_or_build(key, build)


def clear_denominator_cache() -> None:
    """Drop all cached denominators."""
    _den_cache.clear()


def laplacian_denominator(m: int, order: int = 1, sigma: float = 1.0, dtype=np.float64, device: Any = None):
    """Real half-spectrum denominator ``D_k = 1 + (-1)^n sigma fft(v_n)_k``, ``k = 0..m//2``.

    Equal to ``1 + sigma (4 sin^2(pi k/m))^n`` (computed in float64, then cast). Cached per
    ``(m, order, sigma, dtype, device)``; the returned array is read-only on the CPU.

    Returns
    -------
    ndarray (NumPy or CuPy on ``device``), shape (m//2 + 1,), ``dtype``
    """
    order, sigma = _check_order_sigma(order, sigma, "laplacian_denominator")
    m = int(m)
    if m < 1:
        raise InputError(f"laplacian_denominator: length must be >= 1, got {m}")
    dev = backend.Device(device)
    dt = np.dtype(dtype)

    return _cached(("den", m, order, sigma, dt.str, dev.id),
                   lambda: _on_device(_denominator64(m, order, sigma).astype(dt), dev))


def _on_device(a: np.ndarray, dev: backend.Device):
    """A cached filter on ``dev``: a CuPy copy on a GPU, else the array made read-only."""
    if dev.is_gpu:
        with dev.use():
            return dev.xp.asarray(a)
    a.flags.writeable = False
    return a


def _inverse_factor(m: int, order: int, sigma: float, dt: np.dtype, dev: backend.Device):
    """Cached ``1 / (m D_k)`` shaped ``(m//2+1, 1)`` to scale interleaved (re, im) pairs."""

    def build():
        f = (1.0 / (m * _denominator64(m, order, sigma))).astype(dt)
        return _on_device(np.repeat(f[:, None], 2, axis=1), dev)  # (h, 2): matches the (h, 2) float view

    return _cached(("inv", m, order, sigma, dt.str, dev.id), build)


def _torch_inverse_factor(m: int, order: int, sigma: float, tdtype, tdevice):
    def build():
        torch = interop.require_torch()
        f = 1.0 / _denominator64(m, order, sigma)
        return torch.as_tensor(f, dtype=tdtype, device=tdevice)

    return _cached(("torch", m, order, sigma, str(tdtype), str(tdevice)), build)


# --------------------------------------------------------------------------------------------
# the batched transform on (B, m) rows
# --------------------------------------------------------------------------------------------
_PLANNERS = ("FFTW_ESTIMATE", "FFTW_MEASURE", "FFTW_PATIENT", "FFTW_EXHAUSTIVE")


@contextlib.contextmanager
def _fft_settings(planner, threads):
    """Temporarily override fastem's FFT planner / thread count (both are part of the plan key)."""
    if planner is not None and planner not in _PLANNERS:
        raise InputError(f"planner must be one of {', '.join(_PLANNERS)} or None, got {planner!r}")
    if threads is not None and (isinstance(threads, bool) or int(threads) != threads or int(threads) < 1):
        raise InputError(f"threads must be an integer >= 1 or None, got {threads!r}")
    old = settings.fft_planner, settings.threads
    if planner is not None:
        settings.fft_planner = planner
    if threads is not None:
        settings.threads = int(threads)
    try:
        yield
    finally:
        settings.fft_planner, settings.threads = old


def smooth_rows(x, sigma: float = 1.0, order: int = 1, out=None, planner: str | None = None,
                threads: int | None = None):
    """Smooth each row of a C-contiguous real ``(B, m)`` NumPy/CuPy array; one batched transform.

    The FFT plan and the denominator are cached, so repeated calls with the same geometry do
    not allocate beyond the result (pass ``out``, which may be ``x`` itself, to avoid that too).
    No pass-through here: the caller guarantees ``m >= 1`` (rows shorter than ``2n+1`` are
    still exactly ``A^{-1}`` applied with the aliased circulant).

    Parameters
    ----------
    x : ndarray, float32 or float64, shape (B, m), C-contiguous
    sigma, order : see :func:`laplacian_smooth`
    out : ndarray like ``x``, optional
    planner : {None, "FFTW_ESTIMATE", "FFTW_MEASURE", ...}
        FFTW planning effort for this geometry (CPU/pyFFTW only; ``None``: fastem's global
        ``settings.fft_planner``, FFTW_MEASURE by default). MEASURE finds faster transforms but
        plans a new large length for seconds to minutes (once: wisdom is cached on disk).
    threads : int, optional
        FFTW threads for this transform (CPU only; ``None``: ``settings.threads``).

    Returns
    -------
    ndarray, shape (B, m), same dtype/device as ``x``
    """
    order, sigma = _check_order_sigma(order, sigma, "smooth_rows")
    if x.ndim != 2 or x.dtype not in (np.float32, np.float64):
        raise InputError(f"smooth_rows: need a float32/float64 (B, m) array, got {x.dtype} {x.shape}")
    dev = backend.get_device(x)
    b, m = x.shape
    if not x.flags.c_contiguous:
        x = dev.xp.ascontiguousarray(x)
    if out is None:
        out = F.empty_aligned((b, m), x.dtype, dev)
    elif out.shape != x.shape or out.dtype != x.dtype or not out.flags.c_contiguous:
        raise InputError(f"smooth_rows: out must be C-contiguous {x.shape} {x.dtype}, got {out.shape} {out.dtype}")
    h = m // 2 + 1
    fac = _inverse_factor(m, order, sigma, x.dtype, dev)
    with _fft_settings(None, None) if dev.is_gpu else _fft_settings(planner, threads):
        plan = F.get_plan((b, m), x.dtype, axes=(1,), real=True, device=dev)
        # the shared plan caches the planning, not a work array: the spectrum is this call's own
        spec = plan.forward(x, _spectrum_buffer(plan))
        with dev.use():
            view = spec.view(x.dtype).reshape(b, h, 2)
            dev.xp.multiply(view, fac, out=view)
        plan.backward(spec, out, normalise=False, overwrite_input=True)
    return out


_work = threading.local()


def _spectrum_buffer(plan):
    """A spectrum work array for ``plan``'s geometry owned by the calling thread (reused across
    calls, never shared between threads: concurrent smoothings of one shape stay independent)."""
    cache = getattr(_work, "spectra", None)
    if cache is None:
        cache = _work.spectra = {}
    key = (plan.out_shape, plan.out_dtype.str, plan.device.id)
    buf = cache.get(key)
    if buf is None:
        if len(cache) >= 8:
            cache.clear()
        buf = cache[key] = F.empty_aligned(plan.out_shape, plan.out_dtype, plan.device)
    return buf


def _smooth_rows_torch(t, sigma: float, order: int):
    """torch.fft fallback (devices CuPy cannot serve); ``t`` is a real (B, m) tensor."""
    torch = interop.require_torch()
    m = t.shape[-1]
    fac = _torch_inverse_factor(m, order, sigma, t.dtype, t.device)
    spec = torch.fft.rfft(t, dim=-1)
    spec.mul_(fac)
    return torch.fft.irfft(spec, n=m, dim=-1)


def _torch_via_arrays(t) -> bool:
    """Whether a tensor can go through NumPy (CPU) / CuPy (CUDA) views rather than torch.fft."""
    if t.device.type == "cpu":
        return True
    return t.device.type == "cuda" and backend.cupy_available()


# --------------------------------------------------------------------------------------------
# public functional form
# --------------------------------------------------------------------------------------------
def laplacian_smooth(g, sigma: float = 1.0, order: int = 1, axis: int = -1, out=None):
    """Order-``n`` Laplacian smoothing ``(I + (-1)^n sigma L^n)^{-1} g`` along ``axis``.

    Parameters
    ----------
    g : NumPy array, CuPy array or torch tensor, real (float16/bfloat16 computed in float32)
        One signal (1D) or a batch: every 1D slice along ``axis`` is one periodic signal.
    sigma : float >= 0
        Smoothing strength (``0`` returns a copy).
    order : int >= 1
        ``n``: 1 is the Laplacian, 2 the bi-harmonic operator, ...
    axis : int
        Axis of the signals (default last).
    out : array/tensor like ``g``, optional
        Where to write the result.

    Returns
    -------
    same type, shape, dtype and device as ``g``
        The smoothed signals; the mean of every signal is preserved. Signals shorter than
        ``2n + 1`` are returned unchanged (copied).

    Notes
    -----
    NumPy: pyFFTW plans (SciPy without pyFFTW); CuPy: cuFFT; torch: zero-copy NumPy/CuPy
    views (DLPack on the GPU), or ``torch.fft`` where CuPy is not available.
    """
    order, sigma = _check_order_sigma(order, sigma, "laplacian_smooth")
    if interop.is_torch_tensor(g):
        return _smooth_torch(g, sigma, order, axis, out)
    xp = backend.get_array_module(g)
    g = xp.asarray(g)
    if g.dtype.kind not in "fiu":
        raise InputError(f"laplacian_smooth: need a real array, got dtype {g.dtype}")
    if g.ndim == 0:
        raise InputError("laplacian_smooth: need at least one dimension")
    work_dt = np.float64 if g.dtype == np.float64 else np.float32
    if g.dtype.kind in "iu":
        work_dt = np.float64
    axis = axis % g.ndim
    m = g.shape[axis]
    if out is not None and (tuple(out.shape) != tuple(g.shape)):
        raise InputError(f"laplacian_smooth: out has shape {out.shape}, expected {g.shape}")
    if m < min_length(order) or sigma == 0.0 or g.size == 0:
        res = g.astype(work_dt if g.dtype.kind in "iu" else g.dtype, copy=True)
    else:
        moved = xp.moveaxis(g, axis, -1)
        rows = xp.ascontiguousarray(moved.reshape(-1, m), dtype=work_dt)
        sm = smooth_rows(rows, sigma, order)
        res = xp.moveaxis(sm.reshape(moved.shape), -1, axis)
        if g.dtype.kind == "f" and res.dtype != g.dtype:
            res = res.astype(g.dtype)
    if out is not None:
        out[...] = res
        return out
    return res


def _smooth_torch(t, sigma: float, order: int, axis: int, out):
    torch = interop.require_torch()
    if t.is_complex() or not t.is_floating_point():
        raise InputError(f"laplacian_smooth: need a real floating-point tensor, got {t.dtype}")
    if t.dim() == 0:
        raise InputError("laplacian_smooth: need at least one dimension")
    axis = axis % t.dim()
    m = t.shape[axis]
    src = t.detach()
    if m < min_length(order) or sigma == 0.0 or src.numel() == 0:
        res = src.clone()
    else:
        work = src if src.dtype in (torch.float32, torch.float64) else src.float()
        moved = work.movedim(axis, -1)
        rows = moved.reshape(-1, m).contiguous()
        if _torch_via_arrays(rows):
            sm = interop.to_torch(smooth_rows(interop.from_torch(rows), sigma, order))
        else:
            sm = _smooth_rows_torch(rows, sigma, order)
        res = sm.reshape(moved.shape).movedim(-1, axis)
        if res.dtype != t.dtype:
            res = res.to(t.dtype)
    if out is not None:
        out.copy_(res)
        return out
    return res
