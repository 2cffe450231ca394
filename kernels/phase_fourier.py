"""Fused Fourier-space update of the phase-retrieval engine (``fastem.phase``).

One pass over the Fourier-space arrays per iteration. The arrays hold a batch of independent
runs, ``(R, *grid)`` (or just ``grid``), in FFT layout (zero frequency at index 0); the data
arrays ``bk`` and ``filt`` have the shape ``grid`` and are shared by every run.

Measured magnitudes and the ``known`` mask travel in ONE array: ``bk = b`` on measured pixels
and ``bk = -1`` on unknown ones (beamstop, gaps), so the kernel reads 4 bytes per pixel for both.

Modes (``mode=``):

``MODE_GPS`` (0) -- GPS primal update and extrapolation (thesis eq. 2.13, 2.14, 2.28), with the
dual carried in Fourier space, ``Y = F(y)`` held in ``buf``::

    Ye     = filt * Y  if use_filter else Y          (GPS-R: Gaussian W_gamma folded in here)
    w      = z - t * Ye                               (step 1)
    z_new  = (b e^{i arg w} + (sigma/t) w) / (1 + sigma/t)   on known pixels   (step 2, eq. 2.14)
           = w                                                on unknown ones  (eq. 2.28)
    z     <- z_new
    buf   <- scale * (Ye + s * (2 z_new - z))         (step 3, ready for ONE inverse FFT)

  ``arg 0`` is taken as 0 (phase 1). With ``scale = 1/N`` an unnormalised inverse FFT of
  ``buf`` is exactly ``y + s F^{-1}(2 z_new - z)``.

``MODE_PROJECT`` (1) -- magnitude projection of ER / HIO / OSS, in place on ``buf``
(``z`` is not used)::

    buf <- scale * (b e^{i arg buf})   on known pixels,   scale * buf   on unknown ones

``MODE_FILTER`` (2) -- OSS low-pass filter: ``buf <- scale * filt * buf``.
"""

from __future__ import annotations

import numpy as np

from fastem import backend
from fastem.errors import InputError

from ._dispatch import KernelDispatcher, require_arrays, as_numba_cuda, numba_cuda_stream
from ._phase_common import check_batch, check_contiguous

_FOURIER = KernelDispatcher("phase_fourier_update", ("numpy", "numba", "cuda", "numba-cuda"))

__all__ = ["phase_fourier_update", "bind_phase_fourier_update", "MODE_GPS", "MODE_PROJECT", "MODE_FILTER"]

MODE_GPS, MODE_PROJECT, MODE_FILTER = 0, 1, 2
_MODES = (MODE_GPS, MODE_PROJECT, MODE_FILTER)


def _fourier_numpy(mode, z, buf, bk, filt, use_filter, t, s, sigma, scale):
    """The definition, in the arrays' own precision (the float64 oracle on complex128 input)."""
    xp = backend.get_array_module(buf)
    known = bk >= 0
    b = xp.where(known, bk, 0)
    tiny = np.finfo(bk.dtype).tiny
    if mode == MODE_FILTER:
        buf *= filt * scale
        return
    if mode == MODE_PROJECT:
        m = xp.abs(buf)
        ph = xp.where(m * m > tiny, buf / xp.where(m > 0, m, 1), 1)
        buf[...] = xp.where(known, b * ph, buf) * scale
        return
    ye = buf * filt if use_filter else buf.copy()
    w = z - t * ye
    m = xp.abs(w)
    ph = xp.where(m * m > tiny, w / xp.where(m > 0, m, 1), 1)
    eps = sigma / t
    z_new = xp.where(known, (b * ph + eps * w) / (1 + eps), w)
    buf[...] = (ye + s * (2 * z_new - z)) * scale
    z[...] = z_new


def _check(mode, z, buf, bk, filt, use_filter):
    func = "phase_fourier_update"
    rdt = check_batch(func, mode, _MODES, buf, bk, "bk")
    grid = tuple(bk.shape)
    arrays = [("buf", buf), ("bk", bk)]
    if mode == MODE_GPS:
        if z is None or z.shape != buf.shape or z.dtype != buf.dtype:
            raise InputError(f"{func}: z must match buf ({tuple(buf.shape)} {buf.dtype}), got "
                             f"{None if z is None else (tuple(z.shape), z.dtype)}")
        arrays.append(("z", z))
    if mode == MODE_FILTER or (mode == MODE_GPS and use_filter):
        if filt is None or tuple(filt.shape) != grid or filt.dtype != rdt:
            raise InputError(f"{func}: filt must be {rdt} with shape {grid}, got "
                             f"{None if filt is None else (tuple(filt.shape), filt.dtype)}")
        arrays.append(("filt", filt))
    check_contiguous(func, arrays)


def phase_fourier_update(mode: int, z, buf, bk, filt=None, *, use_filter: bool = False, t: float = 1.0,
                         s: float = 0.9, sigma: float = 0.0, scale: float = 1.0, engine: str | None = None) -> None:
    """Fused Fourier-space update (see the module docstring for the equations of each mode).

    Parameters
    ----------
    mode : {MODE_GPS, MODE_PROJECT, MODE_FILTER}
    z : ndarray (R, *grid) or grid, complex64/complex128, or None
        GPS primal variable ``z`` (Fourier space), updated in place; unused by the other modes.
    buf : ndarray, same shape and dtype as ``z``
        In: ``Y = F(y)`` (GPS; for GPS-R the unfiltered ``F(proj(v))``), ``F(u)`` (PROJECT,
        FILTER). Out: the array to inverse-transform, times ``scale``.
    bk : ndarray grid, float32 (complex64 data) or float64
        Measured magnitudes ``b`` on known pixels, ``-1`` on unknown pixels.
    filt : ndarray grid, same real dtype, optional
        Fourier-space Gaussian ``W`` (GPS-R with ``use_filter``, or the OSS filter).
    t, s, sigma : float
        GPS step sizes and fidelity parameter (``t > 0``, ``sigma >= 0``).
    scale : float
        Multiplies what is written to ``buf`` (``1/N`` folds the inverse-FFT normalisation in).
    engine : {None, "numpy", "numba", "cuda", "numba-cuda"}
    """
    require_arrays("phase_fourier_update", ("z", "filt"), z=z, buf=buf, bk=bk, filt=filt)
    if use_filter and mode == MODE_GPS and filt is None:
        raise InputError("phase_fourier_update: use_filter needs filt")
    bind_phase_fourier_update(mode, z, buf, bk, filt, t=t, s=s, scale=scale, engine=engine)(sigma, use_filter)


def bind_phase_fourier_update(mode: int, z, buf, bk, filt=None, *, t: float = 1.0, s: float = 0.9,
                              scale: float = 1.0, engine: str | None = None):
    """Validate once and return ``update(sigma, use_filter=False)`` bound to these arrays.

    For hot loops (the solvers call it every iteration): the arrays, engine and constants are
    checked and resolved here, so each call only launches the kernel. Arguments as in
    :func:`phase_fourier_update`.
    """
    _check(mode, z, buf, bk, filt, mode == MODE_GPS and filt is not None)
    if mode == MODE_GPS and not t > 0:
        raise InputError(f"phase_fourier_update: t must be > 0, got {t}")
    return _FOURIER(engine, (z, buf, bk, filt), mode, z, buf, bk, filt, t, s, scale)


# Each engine's implementation is a binder: it takes the validated arrays and constants and
# returns the ``update(sigma, use_filter)`` closure that the solvers call every iteration.

@_FOURIER.register("numpy")
def _bind_numpy(mode, z, buf, bk, filt, t, s, scale):
    has_filt = filt is not None

    def update_numpy(sigma: float = 0.0, use_filter: bool = False) -> None:
        _check_sigma(sigma)
        uf = bool(use_filter) and has_filt
        _fourier_numpy(mode, z, buf, bk, filt if (uf or mode == MODE_FILTER) else None, uf, t, s, sigma, scale)
    return update_numpy


def _layout(z, buf, bk, filt):
    """(npix, runs, rowlen, z or buf, filt or bk, real scalar type, has a filter): the compiled
    kernels' view of the batch; unused arrays are replaced by arrays of the same dtype that those
    modes never touch."""
    npix = int(bk.size)
    return (npix, buf.size // npix, int(bk.shape[-1]), (buf if z is None else z), (bk if filt is None else filt),
            bk.dtype.type, filt is not None)


def _prox_weights(mode, t, sigma) -> tuple[float, float]:
    """``(1 / (1 + eps), eps / (1 + eps))`` with ``eps = sigma / t`` (GPS; ``eps = 0`` otherwise)."""
    _check_sigma(sigma)
    eps = sigma / t if mode == MODE_GPS else 0.0
    return 1.0 / (1.0 + eps), eps / (1.0 + eps)


def _constants(mode, t, s, scale, rdt, sigma):
    """The kernels' scalar arguments ``(t, s, 1 / (1 + eps), eps / (1 + eps), scale)`` in the real dtype ``rdt``."""
    keep, pull = _prox_weights(mode, t, sigma)
    return rdt(t), rdt(s), rdt(keep), rdt(pull), rdt(scale)


@_FOURIER.register("numba")
def _bind_numba(mode, z, buf, bk, filt, t, s, scale):
    from ._phase_fourier_numba import phase_fourier_numba

    npix, _, rowlen, zz, ff, rdt, has_filt = _layout(z, buf, bk, filt)
    tiny = rdt(np.finfo(rdt).tiny)
    zv, bv, bkv, fv = zz.reshape(-1).view(rdt), buf.reshape(-1).view(rdt), bk.reshape(-1), ff.reshape(-1)

    def update_numba(sigma: float = 0.0, use_filter: bool = False) -> None:
        phase_fourier_numba(int(mode), zv, bv, bkv, fv, bool(use_filter) and has_filt,
                            *_constants(mode, t, s, scale, rdt, sigma), rdt(1), tiny, npix, rowlen)
    return update_numba


@_FOURIER.register("cuda")
def _bind_cuda(mode, z, buf, bk, filt, t, s, scale):
    from . import _cuda

    npix, runs, _, zz, ff, _, has_filt = _layout(z, buf, bk, filt)
    rdt = bk.dtype.type   # spelt out for the launch-signature check
    device = backend.get_device(buf)
    name = "phase_fourier_c64" if buf.dtype == np.complex64 else "phase_fourier_c128"
    kernel = _cuda.get_function("phase_fourier", name, device)
    grid, block = _grid(npix, runs)

    def constants(sigma):   # _constants spelt out here, so the launch check sees each argument's dtype
        keep, pull = _prox_weights(mode, t, sigma)
        return rdt(t), rdt(s), rdt(keep), rdt(pull), rdt(scale)

    def update_cuda(sigma: float = 0.0, use_filter: bool = False) -> None:
        with device.use():
            kernel(grid, block, (np.int32(mode), zz, buf, bk, ff, np.int32(bool(use_filter) and has_filt),
                                 *constants(sigma), np.int64(npix)))
    return update_cuda


@_FOURIER.register("numba-cuda")
def _bind_numba_cuda(mode, z, buf, bk, filt, t, s, scale):
    from ._phase_fourier_numba_cuda import phase_fourier_numba_cuda

    npix, runs, _, zz, ff, rdt, has_filt = _layout(z, buf, bk, filt)
    tiny = rdt(np.finfo(rdt).tiny)
    device = backend.get_device(buf)
    zc, bc, bkc, fc = (as_numba_cuda(a.reshape(-1)) for a in (zz, buf, bk, ff))

    def update_numba_cuda(sigma: float = 0.0, use_filter: bool = False) -> None:
        with device.use():
            phase_fourier_numba_cuda(int(mode), zc, bc, bkc, fc, int(bool(use_filter) and has_filt),
                                     *_constants(mode, t, s, scale, rdt, sigma), tiny, npix, runs,
                                     stream=numba_cuda_stream())
    return update_numba_cuda


def _check_sigma(sigma) -> None:
    if not sigma >= 0:
        raise InputError(f"phase_fourier_update: sigma must be >= 0, got {sigma}")


def _grid(npix: int, runs: int, threads: int = 256) -> tuple[tuple[int, int], tuple[int]]:
    """2D launch: x strides over the pixels of one run, y is the run index."""
    blocks = max(1, min((npix + threads - 1) // threads, 1024))
    return (blocks, int(runs)), (threads,)
