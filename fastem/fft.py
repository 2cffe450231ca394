"""FFT provider: pyFFTW on the CPU, cuFFT (through CuPy) on the GPU, SciPy as a fallback.

Two levels:

* :class:`FFTPlan` -- a cached plan for one (shape, dtype, axes, real/complex) on one device,
  for hot loops: it owns aligned work buffers, executes forward and backward transforms in
  place or out of place without allocating, and leaves normalisation to the caller when asked
  (kernels fold the ``1/N`` into their own pass). Obtain one with :func:`get_plan`; plans are
  memoised per key, so asking twice costs a dictionary lookup.
* NumPy-compatible functions :func:`fftn`, :func:`ifftn`, :func:`rfftn`, :func:`irfftn`,
  :func:`fft2`, :func:`ifft2`, :func:`fft`, :func:`ifft`, :func:`rfft`, :func:`irfft`
  (``norm="backward"|"ortho"|"forward"``, optional ``out=``) that route through the cached
  plans and accept NumPy or CuPy arrays.

Conventions: transforms run over ``axes`` (default: all axes for the ``*n`` functions, the last
one or two for the 1D/2D ones); any other (leading) axes are batched. Zero frequency at index 0
(no shifts). The forward transform is unnormalised and the backward one carries ``1/N`` under
``norm="backward"``, exactly as in ``numpy.fft``.

CPU details: plans are built with ``FFTW_MEASURE`` (``$FASTEM_FFT_PLANNER`` overrides; planning of one
transform is capped at ``$FASTEM_FFT_PLANNING_TIMELIMIT`` = 5 s) on
SIMD-aligned buffers with ``threads = fastem.config.settings.threads`` (all available cores by
default). FFTW wisdom is imported from and saved to ``<cache_dir>/fftw-wisdom-<arch>.pickle``
(``$FASTEM_CACHE_DIR``, default ``~/.cache/fastem``), so the next run plans instantly. Without
pyFFTW, SciPy's ``scipy.fft`` (with ``workers=threads``) is used; it allocates its outputs.
"""

from __future__ import annotations

import atexit
import logging
import os
import pickle
import platform
import threading
from collections import OrderedDict
from typing import Any, Sequence

import numpy as np

from . import backend
from .config import cache_dir, settings

log = logging.getLogger(__name__)

__all__ = [
    "FFTPlan",
    "get_plan",
    "clear_plan_cache",
    "empty_aligned",
    "fft",
    "ifft",
    "fft2",
    "ifft2",
    "fftn",
    "ifftn",
    "rfft",
    "irfft",
    "rfftn",
    "irfftn",
    "fftshift",
    "ifftshift",
    "provider",
    "save_wisdom",
]

_pyfftw = backend.optional_module("pyfftw")
_PLAN_CACHE_SIZE = int(os.environ.get("FASTEM_FFT_PLAN_CACHE", "32"))
_plan_cache: "OrderedDict[tuple, FFTPlan]" = OrderedDict()
_cache_lock = threading.RLock()
_wisdom_state = {"loaded": False, "dirty": False}


def provider(device: Any = None) -> str:
    """Name of the FFT library used on ``device``: ``'pyfftw'``, ``'scipy'`` or ``'cufft'``."""
    dev = backend.Device(device)
    if dev.is_gpu:
        return "cufft"
    return "pyfftw" if _pyfftw is not None else "scipy"


# --------------------------------------------------------------------------------------------
# wisdom
# --------------------------------------------------------------------------------------------
def _wisdom_path():
    return cache_dir(create=False) / f"fftw-wisdom-{platform.machine()}.pickle"


def _load_wisdom() -> None:
    if _wisdom_state["loaded"] or _pyfftw is None:
        return
    _wisdom_state["loaded"] = True
    path = _wisdom_path()
    try:
        with open(path, "rb") as fh:
            wisdom = pickle.load(fh)
        _pyfftw.import_wisdom(wisdom)
        log.debug("imported FFTW wisdom from %s", path)
    except FileNotFoundError:
        pass
    except Exception as exc:  # corrupt or foreign wisdom: ignore, it will be rebuilt
        log.debug("could not import FFTW wisdom from %s: %s", path, exc)


def save_wisdom() -> None:
    """Write the accumulated FFTW wisdom to the user cache (done automatically at exit)."""
    if _pyfftw is None or not _wisdom_state["dirty"]:
        return
    path = _wisdom_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            pickle.dump(_pyfftw.export_wisdom(), fh)
        os.replace(tmp, path)
        _wisdom_state["dirty"] = False
    except OSError as exc:  # read-only home etc.: planning simply repeats next time
        log.debug("could not save FFTW wisdom to %s: %s", path, exc)


atexit.register(save_wisdom)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def empty_aligned(shape, dtype, device: Any = None):
    """An uninitialised array on ``device``; SIMD-aligned on the CPU when pyFFTW is present."""
    dev = backend.Device(device)
    if dev.is_gpu:
        with dev.use():
            return dev.xp.empty(shape, dtype)
    if _pyfftw is not None:
        return _pyfftw.empty_aligned(shape, dtype=dtype)
    return np.empty(shape, dtype)


def _normalise_axes(ndim: int, axes) -> tuple[int, ...]:
    if axes is None:
        axes = tuple(range(ndim))
    elif np.isscalar(axes):
        axes = (int(axes),)
    out = tuple(sorted(int(a) % ndim for a in axes))
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axes {axes}")
    return out


def _complex_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype in (np.float32, np.complex64, np.float16):
        return np.dtype(np.complex64)
    return np.dtype(np.complex128)


def _real_dtype(dtype) -> np.dtype:
    return np.dtype(np.float32) if _complex_dtype(dtype) == np.complex64 else np.dtype(np.float64)


def _is_aligned(a) -> bool:
    return _pyfftw is not None and _pyfftw.is_byte_aligned(a, _pyfftw.simd_alignment)


# --------------------------------------------------------------------------------------------
# plans
# --------------------------------------------------------------------------------------------
class FFTPlan:
    """Forward and backward transforms of one geometry on one device.

    Parameters
    ----------
    shape : tuple of int
        Shape of the *real-space* array (for ``real=True`` the real input; the spectrum then has
        ``shape[axes[-1]] // 2 + 1`` entries along the last transformed axis).
    dtype : dtype
        Precision: ``complex64``/``float32`` -> single, ``complex128``/``float64`` -> double.
    axes : sequence of int, optional
        Transformed axes (default all); the remaining axes are batched.
    real : bool
        Real-to-complex forward / complex-to-real backward transforms.
    device : Device-like
        ``cpu`` (pyFFTW or SciPy) or ``cuda:N`` (cuFFT).

    Attributes
    ----------
    in_shape, out_shape : tuple
        Real-space and Fourier-space shapes.
    in_dtype, out_dtype : numpy.dtype
    buffer : ndarray
        An aligned Fourier-space work array of ``out_shape`` owned by the plan; ``forward()`` and
        ``backward()`` with no arguments transform it in place (complex plans only).
    n : int
        Number of points per transform (the product of the transformed lengths).

    Notes
    -----
    Execution never allocates on the pyFFTW and cuFFT paths when the arrays passed are
    C-contiguous and of the plan's dtype (and, on the CPU, SIMD-aligned: use
    :func:`empty_aligned` or the plan's buffers; unaligned arrays get a separate
    ``FFTW_UNALIGNED`` plan, still without copies). Complex-to-real transforms destroy their
    input in FFTW and cuFFT; :meth:`backward` copies it into an internal buffer first unless
    ``overwrite_input=True``.
    """

    def __init__(self, shape: Sequence[int], dtype, axes=None, real: bool = False, device: Any = None):
        self.device = backend.Device(device)
        self.in_shape = tuple(int(s) for s in shape)
        self.axes = _normalise_axes(len(self.in_shape), axes)
        if any(self.in_shape[a] < 1 for a in self.axes):
            raise ValueError(f"cannot plan an FFT of shape {self.in_shape}")
        self.real = bool(real)
        cdt = _complex_dtype(dtype)
        self.out_dtype = cdt
        self.in_dtype = _real_dtype(dtype) if real else cdt
        out_shape = list(self.in_shape)
        if real:
            out_shape[self.axes[-1]] = self.in_shape[self.axes[-1]] // 2 + 1
        self.out_shape = tuple(out_shape)
        self.n = int(np.prod([self.in_shape[a] for a in self.axes]))
        self.threads = settings.threads
        self.provider = provider(self.device)
        self._xp = self.device.xp
        self.buffer = empty_aligned(self.out_shape, self.out_dtype, self.device)
        self._real_buffer = empty_aligned(self.in_shape, self.in_dtype, self.device) if real else None
        self._c2r_scratch = None
        self._fftw: dict = {}
        self._cufft = None
        if self.provider == "pyfftw":
            _load_wisdom()
            # build the common plans now so that planning cost is paid once, up front
            if real:
                self._get_fftw("r2c", inplace=False, aligned=True)
                self._get_fftw("c2r", inplace=False, aligned=True)
            else:
                self._get_fftw("fwd", inplace=True, aligned=True)
                self._get_fftw("bwd", inplace=True, aligned=True)

    # ---- pyFFTW ------------------------------------------------------------------------------
    def _get_fftw(self, kind: str, inplace: bool, aligned: bool):
        key = (kind, inplace, aligned)
        obj = self._fftw.get(key)
        if obj is not None:
            return obj
        flags = [settings.fft_planner]
        if not aligned:
            flags.append("FFTW_UNALIGNED")
        if kind in ("fwd", "bwd"):
            a = _pyfftw.empty_aligned(self.in_shape, dtype=self.out_dtype)
            b = a if inplace else _pyfftw.empty_aligned(self.in_shape, dtype=self.out_dtype)
            direction = "FFTW_FORWARD" if kind == "fwd" else "FFTW_BACKWARD"
        elif kind == "r2c":
            a = _pyfftw.empty_aligned(self.in_shape, dtype=self.in_dtype)
            b = _pyfftw.empty_aligned(self.out_shape, dtype=self.out_dtype)
            direction = "FFTW_FORWARD"
        else:  # c2r
            a = _pyfftw.empty_aligned(self.out_shape, dtype=self.out_dtype)
            b = _pyfftw.empty_aligned(self.in_shape, dtype=self.in_dtype)
            direction = "FFTW_BACKWARD"
            flags.append("FFTW_DESTROY_INPUT")
        obj = _pyfftw.FFTW(a, b, axes=self.axes, direction=direction, flags=tuple(flags), threads=self.threads,
                           planning_timelimit=settings.fft_planning_timelimit)
        _wisdom_state["dirty"] = True
        self._fftw[key] = obj
        return obj

    def _run_fftw(self, kind: str, x, out) -> None:
        inplace = x is out or (x.ctypes.data == out.ctypes.data)
        aligned = _is_aligned(x) and _is_aligned(out)
        obj = self._get_fftw(kind, inplace, aligned)
        keep_in, keep_out = obj.input_array, obj.output_array
        obj.update_arrays(x, out)
        try:
            obj.execute()
        finally:
            # do not keep the caller's arrays alive through the cached plan
            obj.update_arrays(keep_in, keep_out)

    # ---- cuFFT ---------------------------------------------------------------------------------
    def _get_cufft(self):
        if self._cufft is None:
            import cupyx.scipy.fft as cufft_mod

            with self.device.use():
                if self.real:
                    fwd = cufft_mod.get_fft_plan(self._real_buffer, axes=self.axes, value_type="R2C")
                    bwd = cufft_mod.get_fft_plan(self.buffer, shape=[self.in_shape[a] for a in self.axes],
                                                 axes=self.axes, value_type="C2R")
                else:
                    fwd = bwd = cufft_mod.get_fft_plan(self.buffer, axes=self.axes, value_type="C2C")
            self._cufft = (fwd, bwd)
        return self._cufft

    # ---- checks ----------------------------------------------------------------------------
    def _check(self, a, shape, dtype, what: str):
        if tuple(a.shape) != shape or a.dtype != dtype:
            raise ValueError(f"FFT plan for {shape} {dtype}: {what} has shape {tuple(a.shape)} and dtype {a.dtype}")
        if backend.get_device(a) != self.device:
            raise ValueError(f"FFT plan on {self.device}: {what} lives on {backend.get_device(a)}")

    def _contig(self, a):
        return a if a.flags.c_contiguous else self._xp.ascontiguousarray(a)

    # ---- public ----------------------------------------------------------------------------
    def forward(self, x=None, out=None):
        """Unnormalised forward transform ``X[k] = sum_n x[n] exp(-2 pi i k.n / N)``.

        ``x`` defaults to :attr:`buffer` (complex plans), ``out`` to ``x`` for complex plans (in
        place) and to :attr:`buffer` for real plans. Returns ``out``.
        """
        if self.real:
            if x is None:
                x = self._real_buffer
            self._check(x, self.in_shape, self.in_dtype, "input")
            out = self.buffer if out is None else out
        else:
            x = self.buffer if x is None else x
            self._check(x, self.in_shape, self.out_dtype, "input")
            out = x if out is None else out
        self._check(out, self.out_shape, self.out_dtype, "output")
        x = self._contig(x)
        if self.provider == "pyfftw":
            if not out.flags.c_contiguous:
                raise ValueError("FFT output array must be C-contiguous")
            self._run_fftw("r2c" if self.real else "fwd", x, out)
        elif self.provider == "cufft":
            from cupy.cuda import cufft

            with self.device.use():
                self._get_cufft()[0].fft(x, out, cufft.CUFFT_FORWARD)
        else:
            import scipy.fft as sfft

            res = (sfft.rfftn if self.real else sfft.fftn)(x, axes=self.axes, workers=self.threads)
            out[...] = res
        return out

    def backward(self, x=None, out=None, normalise: bool = True, overwrite_input: bool = False):
        """Backward transform ``x[n] = c * sum_k X[k] exp(+2 pi i k.n / N)``, ``c = 1/N`` if ``normalise``.

        ``x`` defaults to :attr:`buffer`; ``out`` to ``x`` for complex plans (in place) and to an
        internal real buffer for real plans. Returns ``out``.
        """
        x = self.buffer if x is None else x
        self._check(x, self.out_shape, self.out_dtype, "input")
        if self.real:
            out = self._real_buffer if out is None else out
            self._check(out, self.in_shape, self.in_dtype, "output")
        else:
            out = x if out is None else out
            self._check(out, self.in_shape, self.out_dtype, "output")
        x = self._contig(x)
        if self.real and not overwrite_input and self.provider != "scipy":
            if self._c2r_scratch is None:
                self._c2r_scratch = empty_aligned(self.out_shape, self.out_dtype, self.device)
            self._c2r_scratch[...] = x
            x = self._c2r_scratch
        if self.provider == "pyfftw":
            if not out.flags.c_contiguous:
                raise ValueError("FFT output array must be C-contiguous")
            self._run_fftw("c2r" if self.real else "bwd", x, out)
        elif self.provider == "cufft":
            from cupy.cuda import cufft

            with self.device.use():
                self._get_cufft()[1].fft(x, out, cufft.CUFFT_INVERSE)
        else:
            import scipy.fft as sfft

            if self.real:
                res = sfft.irfftn(x, s=[self.in_shape[a] for a in self.axes], axes=self.axes,
                                  workers=self.threads, norm="forward")
            else:
                res = sfft.ifftn(x, axes=self.axes, workers=self.threads, norm="forward")
            out[...] = res
        if normalise:
            self._xp.multiply(out, out.real.dtype.type(1.0 / self.n), out=out)
        return out

    def __repr__(self) -> str:
        kind = "real" if self.real else "complex"
        return (f"FFTPlan({kind}, shape={self.in_shape}, axes={self.axes}, dtype={self.out_dtype}, "
                f"device={self.device}, provider={self.provider}, threads={self.threads})")


def get_plan(shape: Sequence[int], dtype, axes=None, real: bool = False, device: Any = None) -> FFTPlan:
    """The cached :class:`FFTPlan` for this geometry (built on first use).

    The cache key includes the device and the current thread count; the least recently used
    plans are dropped beyond ``$FASTEM_FFT_PLAN_CACHE`` (default 32) entries.
    """
    dev = backend.Device(device)
    shape = tuple(int(s) for s in shape)
    ax = _normalise_axes(len(shape), axes)
    key = (shape, _complex_dtype(dtype).str, ax, bool(real), dev.id, settings.threads, settings.fft_planner)
    with _cache_lock:
        plan = _plan_cache.get(key)
        if plan is not None:
            _plan_cache.move_to_end(key)
            return plan
    plan = FFTPlan(shape, dtype, ax, real=real, device=dev)
    with _cache_lock:
        _plan_cache[key] = plan
        while len(_plan_cache) > _PLAN_CACHE_SIZE:
            _plan_cache.popitem(last=False)
    return plan


def clear_plan_cache() -> None:
    """Drop every cached plan (and its buffers)."""
    with _cache_lock:
        _plan_cache.clear()


# --------------------------------------------------------------------------------------------
# NumPy-style functions
# --------------------------------------------------------------------------------------------
def _norm_factors(norm: str | None, n: int) -> tuple[float, float]:
    """Scale applied to (forward, backward) on top of the unnormalised transforms."""
    if norm in (None, "backward"):
        return 1.0, 1.0 / n
    if norm == "ortho":
        return 1.0 / np.sqrt(n), 1.0 / np.sqrt(n)
    if norm == "forward":
        return 1.0 / n, 1.0
    raise ValueError(f"norm must be 'backward', 'ortho' or 'forward', got {norm!r}")


def _scale(xp, a, s: float):
    if s != 1.0:
        xp.multiply(a, a.real.dtype.type(s), out=a)
    return a


def _c2c(x, axes, norm, out, inverse: bool):
    xp = backend.get_array_module(x)
    x = xp.asarray(x)
    dtype = _complex_dtype(x.dtype)
    if x.dtype != dtype:
        x = x.astype(dtype)
    plan = get_plan(x.shape, dtype, axes, real=False, device=backend.get_device(x))
    if out is None:
        out = empty_aligned(x.shape, dtype, plan.device)
    fs, bs = _norm_factors(norm, plan.n)
    if inverse:
        plan.backward(x, out, normalise=False)
        return _scale(xp, out, bs)
    plan.forward(x, out)
    return _scale(xp, out, fs)


def fftn(x, axes=None, norm: str | None = None, out=None):
    """N-D complex FFT over ``axes`` (default all), other axes batched. Like ``numpy.fft.fftn``."""
    return _c2c(x, axes, norm, out, inverse=False)


def ifftn(x, axes=None, norm: str | None = None, out=None):
    """N-D inverse complex FFT over ``axes`` (default all). Like ``numpy.fft.ifftn``."""
    return _c2c(x, axes, norm, out, inverse=True)


def fft2(x, axes=(-2, -1), norm: str | None = None, out=None):
    """2D complex FFT over the last two axes (leading axes batched)."""
    return _c2c(x, axes, norm, out, inverse=False)


def ifft2(x, axes=(-2, -1), norm: str | None = None, out=None):
    """2D inverse complex FFT over the last two axes (leading axes batched)."""
    return _c2c(x, axes, norm, out, inverse=True)


def fft(x, axis: int = -1, norm: str | None = None, out=None):
    """1D complex FFT along ``axis`` (other axes batched)."""
    return _c2c(x, (axis,), norm, out, inverse=False)


def ifft(x, axis: int = -1, norm: str | None = None, out=None):
    """1D inverse complex FFT along ``axis`` (other axes batched)."""
    return _c2c(x, (axis,), norm, out, inverse=True)


def rfftn(x, axes=None, norm: str | None = None, out=None):
    """N-D real-to-complex FFT over ``axes`` (the last one halved). Like ``numpy.fft.rfftn``."""
    xp = backend.get_array_module(x)
    x = xp.asarray(x)
    if x.dtype.kind == "c":
        raise TypeError("rfftn needs a real array")
    rdt = _real_dtype(x.dtype)
    if x.dtype != rdt:
        x = x.astype(rdt)
    plan = get_plan(x.shape, rdt, axes, real=True, device=backend.get_device(x))
    if out is None:
        out = empty_aligned(plan.out_shape, plan.out_dtype, plan.device)
    plan.forward(x, out)
    return _scale(xp, out, _norm_factors(norm, plan.n)[0])


def irfftn(x, s=None, axes=None, norm: str | None = None, out=None):
    """N-D complex-to-real inverse FFT; ``s`` gives the real lengths along ``axes``.

    Like ``numpy.fft.irfftn`` with the last transformed length defaulting to
    ``2 * (m - 1)``. The input is not modified.
    """
    xp = backend.get_array_module(x)
    x = xp.asarray(x)
    cdt = _complex_dtype(x.dtype)
    if x.dtype != cdt:
        x = x.astype(cdt)
    ax = _normalise_axes(x.ndim, axes)
    shape = list(x.shape)
    if s is None:
        shape[ax[-1]] = 2 * (x.shape[ax[-1]] - 1)
    else:
        if len(s) != len(ax):
            raise ValueError("s and axes must have the same length")
        for a, n in zip(ax, s):
            shape[a] = int(n)
        if shape[ax[-1]] // 2 + 1 != x.shape[ax[-1]]:
            raise ValueError(f"irfftn: length {shape[ax[-1]]} needs {shape[ax[-1]] // 2 + 1} input "
                             f"coefficients along axis {ax[-1]}, got {x.shape[ax[-1]]}")
    if any(shape[a] != x.shape[a] for a in ax[:-1]):
        raise ValueError("irfftn: zero-padding / cropping of the spectrum is not supported; pass matching s")
    plan = get_plan(shape, cdt, ax, real=True, device=backend.get_device(x))
    if out is None:
        out = empty_aligned(plan.in_shape, plan.in_dtype, plan.device)
    plan.backward(x, out, normalise=False)
    return _scale(xp, out, _norm_factors(norm, plan.n)[1])


def rfft(x, axis: int = -1, norm: str | None = None, out=None):
    """1D real-to-complex FFT along ``axis`` (other axes batched)."""
    return rfftn(x, axes=(axis,), norm=norm, out=out)


def irfft(x, n: int | None = None, axis: int = -1, norm: str | None = None, out=None):
    """1D complex-to-real inverse FFT along ``axis``; ``n`` is the output length."""
    return irfftn(x, s=None if n is None else (n,), axes=(axis,), norm=norm, out=out)


def fftshift(x, axes=None):
    """``numpy.fft.fftshift`` / ``cupy.fft.fftshift`` for the array's device."""
    return backend.get_array_module(x).fft.fftshift(x, axes=axes)


def ifftshift(x, axes=None):
    """``numpy.fft.ifftshift`` / ``cupy.fft.ifftshift`` for the array's device."""
    return backend.get_array_module(x).fft.ifftshift(x, axes=axes)
