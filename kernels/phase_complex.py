"""Fused real-space update of the phase-retrieval engine for COMPLEX-valued objects.

The twin of :mod:`fastem.kernels.phase_real` for objects that are complex (Bragg CDI, phase
objects): no positivity, the iterate ``u`` and the image are complex, and an optional
**phase-range constraint** keeps the phase of every pixel inside the support in
``[lo, hi]`` (``0 <= hi - lo <= pi``, radians; a convex sector of the complex plane).

``buf`` holds a batch of runs ``(R, *grid)`` (or ``grid``) straight out of the inverse FFT;
``wsup`` is ``-W`` inside the support ``S`` and ``+W`` outside (shared, or one per run), exactly
as in :mod:`~fastem.kernels.phase_real`.

The constraint set at a pixel is ``C = {0}`` outside ``S``; inside ``S`` it is the whole complex
plane (no range) or the sector ``K = {r e^{i theta}: r >= 0, lo <= theta <= hi}``. Its projection
``P(v)`` is ``0`` outside ``S``; inside ``S`` it is ``v`` (no range) or, with
``c = (lo + hi) / 2``, ``h = (hi - lo) / 2`` and ``w = v e^{-ic} = a + i b``::

    w in K   <=>  a sin h - |b| cos h >= 0 and a >= 0          (|arg w| <= h, h in [0, pi/2];
                                                                 a >= 0 matters only for h = 0)
    P(v) = v                                                    if w in K
    P(v) = max(a cos h + |b| sin h, 0) (cos h + i sgn(b) sin h) e^{ic}   otherwise

(the nearest point of the nearer boundary ray; ``sgn(0) = +1``). ``good`` means ``v in C`` and
``x`` is ``buf`` itself (complex). Modes (the constants of :mod:`~fastem.kernels.phase_real`):

``MODE_GPS`` (0) -- ``buf <- W (v - P(v))``: the projection onto the polar cone ``S*`` (Moreau),
  thesis eq. 2.19 for a complex object, times the GPS-F weight. With ``lo = hi = 0`` this is the
  real kernel's ``min(Re v, 0) + i Im v`` inside ``S``.
``MODE_GPS_FEEDBACK`` (5) -- ``buf <- 0`` where good, else ``W v``: GPS's dual step with Fienup's
  feedback rule in place of the polar projection (see ``fastem.phase.gps``). It differs from
  ``MODE_GPS`` only at pixels inside ``S`` whose value is outside the phase sector: there the
  polar projection keeps only the component of ``v`` normal to the sector, this mode all of ``v``
  (as HIO feeds back all of ``x`` there). Without a phase range both modes are the same.
``MODE_ER`` (1) -- ``buf <- P(x)``.
``MODE_HIO`` (2) -- ``u_new = x`` where good, else ``u - beta x``; ``u <- u_new``, ``buf <- u_new``.
``MODE_OSS_SPLIT`` (3) -- ``h = u - beta x``; ``u <- x`` where good, else ``h``; ``buf <- h``.
``MODE_OSS_MERGE`` (4) -- ``u_new = u`` inside ``S``, ``x`` outside; ``u <- u_new``, ``buf <- u_new``.

In ER, HIO and OSS_SPLIT, when ``image`` is given and ``write_image`` is set, ``image <- P(x)``
(the projected image whose R-factor is monitored). ER and GPS with ``phase_range=(0, 0)`` give
exactly the iterates of the real kernel (a real non-negative object is the sector of width 0).
"""

from __future__ import annotations

import math

import numpy as np

from fastem import backend
from fastem.errors import InputError

from ._dispatch import KernelDispatcher, require_arrays, as_numba_cuda, numba_cuda_stream
from ._phase_common import check_batch, check_contiguous
from .phase_real import MODE_ER, MODE_GPS, MODE_HIO, MODE_OSS_MERGE, MODE_OSS_SPLIT, _per_run

_COMPLEX = KernelDispatcher("phase_complex_update", ("numpy", "numba", "cuda", "numba-cuda"))

__all__ = ["phase_complex_update", "bind_phase_complex_update", "check_phase_range", "project_complex",
           "MODE_GPS_FEEDBACK"]

#: GPS's dual step with the feedback rule (complex objects only; see the module docstring)
MODE_GPS_FEEDBACK = 5

_MODES = (MODE_GPS, MODE_ER, MODE_HIO, MODE_OSS_SPLIT, MODE_OSS_MERGE, MODE_GPS_FEEDBACK)
_NEEDS_U = (MODE_HIO, MODE_OSS_SPLIT, MODE_OSS_MERGE)
_WRITES_IMAGE = (MODE_ER, MODE_HIO, MODE_OSS_SPLIT)


def check_phase_range(phase_range, name: str = "phase_range"):
    """``None`` or ``(lo, hi)`` as two floats (radians) with ``0 <= hi - lo <= pi``; else a
    one-line :class:`InputError` naming ``name``."""
    if phase_range is None:
        return None
    try:
        lo, hi = (float(v) for v in phase_range)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be None or two numbers (lo, hi) in radians, got {phase_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise InputError(f"{name} must be finite, got {phase_range!r}")
    if not 0.0 <= hi - lo <= math.pi + 1e-12:
        raise InputError(f"{name} = ({lo:g}, {hi:g}): need lo <= hi and hi - lo <= pi (a convex sector), "
                         f"got a width of {hi - lo:g} rad")
    return lo, hi


def _range_constants(phase_range):
    """``(constrained, cos c, sin c, cos h, sin h)`` in float64 (``c`` centre, ``h`` half width)."""
    if phase_range is None:
        return 0, 1.0, 0.0, 0.0, 1.0
    lo, hi = phase_range
    c, h = 0.5 * (lo + hi), min(0.5 * (hi - lo), 0.5 * math.pi)
    return 1, math.cos(c), math.sin(c), math.cos(h), math.sin(h)


def project_complex(v, inside, phase_range=None):
    """``P(v)`` of the module docstring in plain NumPy/CuPy (any shape; ``inside`` broadcasts).

    The definition the tests and the kernels are checked against; returns a new array.
    """
    xp = backend.get_array_module(v)
    if phase_range is None:
        return xp.where(inside, v, 0)
    _, cc, sc, ch, sh = _range_constants(phase_range)
    rot = cc - 1j * sc
    w = v * rot
    a, b = w.real, w.imag
    ab = xp.abs(b)
    in_cone = (a * sh - ab * ch >= 0) & (a >= 0)
    t = xp.maximum(a * ch + ab * sh, 0)
    sgn = xp.where(b >= 0, 1.0, -1.0)
    edge = (t * ch + 1j * (t * sgn * sh)) * (cc + 1j * sc)
    return xp.where(inside, xp.where(in_cone, v, edge.astype(v.dtype)), 0).astype(v.dtype)


def _in_set(v, inside, phase_range):
    xp = backend.get_array_module(v)
    if phase_range is None:
        return inside
    _, cc, sc, ch, sh = _range_constants(phase_range)
    w = v * (cc - 1j * sc)
    return inside & (w.real * sh - xp.abs(w.imag) * ch >= 0) & (w.real >= 0)


def _complex_numpy(mode, buf, wsup, u, image, beta, phase_range):
    """The definition, in the arrays' own precision (the float64 oracle on complex128 input)."""
    xp = backend.get_array_module(buf)
    inside = wsup < 0
    weight = xp.abs(wsup)
    x = buf.copy()
    proj = project_complex(x, inside, phase_range)
    if mode == MODE_GPS:
        buf[...] = weight * (x - proj)
        return
    good = _in_set(x, inside, phase_range)
    if mode == MODE_GPS_FEEDBACK:
        buf[...] = xp.where(good, 0, weight * x)
        return
    if image is not None and mode in _WRITES_IMAGE:
        image[...] = proj
    if mode == MODE_ER:
        buf[...] = proj
    elif mode == MODE_HIO:
        u[...] = xp.where(good, x, u - beta * x)
        buf[...] = u
    elif mode == MODE_OSS_SPLIT:
        h = u - beta * x
        u[...] = xp.where(good, x, h)
        buf[...] = h
    else:  # MODE_OSS_MERGE
        u[...] = xp.where(inside, u, x)
        buf[...] = u


def _check(mode, buf, wsup, u, image):
    func = "phase_complex_update"
    check_batch(func, mode, _MODES, buf, wsup[0] if _per_run(buf, wsup) else wsup, "wsup")
    arrays = [("buf", buf), ("wsup", wsup)]
    for name, a, needed in (("u", u, mode in _NEEDS_U), ("image", image, False)):
        if a is None:
            if needed:
                raise InputError(f"{func}: mode {mode} needs the complex iterate {name}")
            continue
        if tuple(a.shape) != tuple(buf.shape) or a.dtype != buf.dtype:
            raise InputError(f"{func}: {name} must be {buf.dtype} with shape {tuple(buf.shape)}, got "
                             f"{a.dtype} {tuple(a.shape)}")
        arrays.append((name, a))
    check_contiguous(func, arrays)


def phase_complex_update(mode: int, buf, wsup, u=None, image=None, *, beta: float = 0.9, phase_range=None,
                         engine: str | None = None) -> None:
    """Fused real-space update for complex objects (equations in the module docstring).

    Parameters
    ----------
    mode : {MODE_GPS, MODE_GPS_FEEDBACK, MODE_ER, MODE_HIO, MODE_OSS_SPLIT, MODE_OSS_MERGE}
    buf : ndarray (R, *grid) or grid, complex64/complex128, C-contiguous
        The inverse-FFT output, updated in place (ready for the forward FFT).
    wsup : ndarray grid (shared) or like ``buf`` (one per run), float32 (complex64 data) or float64
        ``-W`` inside the support, ``+W`` outside (``W > 0``).
    u : ndarray like ``buf`` (complex), optional
        HIO / OSS iterate, updated in place.
    image : ndarray like ``buf`` (complex), optional
        Receives the projected image ``P(x)`` (ER, HIO, OSS_SPLIT).
    beta : float
        HIO / OSS feedback parameter.
    phase_range : None or (lo, hi)
        Phase range (radians, ``0 <= hi - lo <= pi``) inside the support; None: no constraint.
    engine : {None, "numpy", "numba", "cuda", "numba-cuda"}
    """
    require_arrays("phase_complex_update", ("u", "image"), buf=buf, wsup=wsup, u=u, image=image)
    bind_phase_complex_update(mode, buf, wsup, u, image, beta=beta, phase_range=phase_range,
                              engine=engine)(image is not None)


def bind_phase_complex_update(mode: int, buf, wsup, u=None, image=None, *, beta: float = 0.9, phase_range=None,
                              engine: str | None = None):
    """Validate once and return ``update(write_image=False)`` bound to these arrays (for hot
    loops; arguments as in :func:`phase_complex_update`)."""
    _check(mode, buf, wsup, u, image)
    phase_range = check_phase_range(phase_range)
    return _COMPLEX(engine, (buf, wsup, u, image), mode, buf, wsup, u, image, beta, phase_range)


@_COMPLEX.register("numpy")
def _bind_numpy(mode, buf, wsup, u, image, beta, phase_range):
    can_write = image is not None and mode in _WRITES_IMAGE

    def update_numpy(write_image: bool = False) -> None:
        _complex_numpy(mode, buf, wsup, u, image if (write_image and can_write) else None, beta, phase_range)
    return update_numpy


def _layout(mode, buf, wsup, u, image):
    """``(npix, runs, wstride, rowlen, u', image', can_write)``: the compiled kernels' view.

    Unused complex arrays are replaced by ``buf`` (same dtype; never touched in those modes),
    so one compiled kernel serves every mode."""
    can_write = image is not None and mode in _WRITES_IMAGE
    per_run = _per_run(buf, wsup)
    npix = int(wsup[0].size) if per_run else int(wsup.size)
    return (npix, buf.size // npix, npix if per_run else 0, int(wsup.shape[-1]),
            u if u is not None else buf, image if can_write else buf, can_write)


@_COMPLEX.register("numba")
def _bind_numba(mode, buf, wsup, u, image, beta, phase_range):
    from ._phase_complex_numba import phase_complex_numba

    npix, _, wstride, rowlen, uu, im, can_write = _layout(mode, buf, wsup, u, image)
    rdt = wsup.dtype.type
    flag, cc, sc, ch, sh = _range_constants(phase_range)
    consts = tuple(rdt(v) for v in (cc, sc, ch, sh))
    bv, wv, uv, iv = buf.reshape(-1).view(rdt), wsup.reshape(-1), uu.reshape(-1).view(rdt), im.reshape(-1).view(rdt)

    def update_numba(write_image: bool = False) -> None:
        phase_complex_numba(int(mode), bv, wv, uv, iv, bool(write_image) and can_write, rdt(beta), npix, rowlen,
                            wstride, int(flag), *consts)
    return update_numba


@_COMPLEX.register("cuda")
def _bind_cuda(mode, buf, wsup, u, image, beta, phase_range):
    from . import _cuda

    npix, runs, wstride, _, uu, im, can_write = _layout(mode, buf, wsup, u, image)
    rdt = wsup.dtype.type   # spelt out for the launch-signature check
    flag, cc, sc, ch, sh = _range_constants(phase_range)
    device = backend.get_device(buf)
    name = "phase_complex_c64" if buf.dtype == np.complex64 else "phase_complex_c128"
    kernel = _cuda.get_function("phase_complex", name, device)
    blocks = max(1, min((npix + 255) // 256, 1024))

    def update_cuda(write_image: bool = False) -> None:
        with device.use():
            kernel((blocks, runs), (256,), (np.int32(mode), buf, wsup, uu, im,
                                            np.int32(bool(write_image) and can_write), rdt(beta), np.int64(npix),
                                            np.int64(wstride), np.int32(flag), rdt(cc), rdt(sc), rdt(ch), rdt(sh)))
    return update_cuda


@_COMPLEX.register("numba-cuda")
def _bind_numba_cuda(mode, buf, wsup, u, image, beta, phase_range):
    from ._phase_complex_numba_cuda import phase_complex_numba_cuda

    npix, runs, wstride, _, uu, im, can_write = _layout(mode, buf, wsup, u, image)
    rdt = wsup.dtype.type
    flag, cc, sc, ch, sh = _range_constants(phase_range)
    device = backend.get_device(buf)
    bc, wc, uc, ic = (as_numba_cuda(a.reshape(-1)) for a in (buf, wsup, uu, im))

    def update_numba_cuda(write_image: bool = False) -> None:
        with device.use():
            phase_complex_numba_cuda(int(mode), bc, wc, uc, ic, int(bool(write_image) and can_write), rdt(beta),
                                     npix, runs, wstride, int(flag), rdt(cc), rdt(sc), rdt(ch), rdt(sh),
                                     stream=numba_cuda_stream())
    return update_numba_cuda
