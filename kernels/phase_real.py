"""Fused real-space update of the phase-retrieval engine (``fastem.phase``).

One pass over the real-space arrays per iteration. ``buf`` holds a batch of runs ``(R, *grid)``
(or ``grid``) straight out of the inverse FFT (already normalised: the Fourier kernel folded
``1/N`` in); ``wsup`` has the shape ``grid`` and is shared by every run, or the shape of ``buf``
(one support per run, as shrink-wrap makes them).

Support and Gaussian weight travel in ONE array: ``wsup = -W`` inside the support ``S`` and
``+W`` outside, with ``W > 0`` the GPS-F weight ``exp(-s gamma r^2)`` (``W = 1`` for the other
modes). So ``x in S  <=>  wsup < 0``.

Modes (``mode=``), with ``x = Re(buf)``:

``MODE_GPS`` (0) -- dual projection onto ``S*`` (thesis eq. 2.19) and the GPS-F weight (eq. 2.27)::

    buf <- W * (min(Re v, 0) + i Im v)   inside S,     W * v   outside S

  (for GPS-R, ``W = 1``: its Gaussian is a Fourier-space multiply in the other kernel).

``MODE_ER`` (1) -- ``buf <- x`` where ``x in S and x >= 0``, else ``0`` (Fienup 1982).

``MODE_HIO`` (2) -- ``u_new = x`` where ``x in S and x >= 0``, else ``u - beta x``;
``u <- u_new``, ``buf <- u_new``.

``MODE_OSS_SPLIT`` (3) -- first half of an OSS step: ``h = u - beta x`` everywhere goes to ``buf``
(to be low-pass filtered); ``u <-`` the HIO value (``x`` where ``x in S and x >= 0``, else ``h``),
of which only the pixels inside ``S`` are used later.

``MODE_OSS_MERGE`` (4) -- second half, after ``buf`` was filtered: ``u_new = u`` inside ``S``,
``Re(buf)`` outside; ``u <- u_new``, ``buf <- u_new`` (Rodriguez et al. 2013).

In ER, HIO and OSS_SPLIT, when ``image`` is given, the current image ``x`` where
``x in S and x >= 0``, else 0 (the support- and positivity-projected iterate, whose R-factor is
monitored) is written to it.
"""

from __future__ import annotations

import numpy as np

from fastem import backend
from fastem.errors import InputError

from ._dispatch import KernelDispatcher, require_arrays, as_numba_cuda, numba_cuda_stream
from ._phase_common import check_batch, check_contiguous

_REAL = KernelDispatcher("phase_real_update", ("numpy", "numba", "cuda", "numba-cuda"))

__all__ = ["phase_real_update", "bind_phase_real_update", "MODE_GPS", "MODE_ER", "MODE_HIO", "MODE_OSS_SPLIT", "MODE_OSS_MERGE"]

MODE_GPS, MODE_ER, MODE_HIO, MODE_OSS_SPLIT, MODE_OSS_MERGE = 0, 1, 2, 3, 4
_MODES = (MODE_GPS, MODE_ER, MODE_HIO, MODE_OSS_SPLIT, MODE_OSS_MERGE)
_NEEDS_U = (MODE_HIO, MODE_OSS_SPLIT, MODE_OSS_MERGE)
_WRITES_IMAGE = (MODE_ER, MODE_HIO, MODE_OSS_SPLIT)


def _real_numpy(mode, buf, wsup, u, image, beta):
    """The definition, in the arrays' own precision (the float64 oracle on complex128 input)."""
    xp = backend.get_array_module(buf)
    inside = wsup < 0
    weight = xp.abs(wsup)
    if mode == MODE_GPS:
        re = xp.where(inside, xp.minimum(buf.real, 0), buf.real)
        buf[...] = weight * (re + 1j * buf.imag)
        return
    x = buf.real.copy()
    good = inside & (x >= 0)
    if image is not None and mode in _WRITES_IMAGE:
        image[...] = xp.where(good, x, 0)
    if mode == MODE_ER:
        buf[...] = xp.where(good, x, 0)
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


def _per_run(buf, wsup) -> bool:
    """True when ``wsup`` has the shape of a batched ``buf`` (one support per run). A 3D ``buf``
    with a 3D ``wsup`` of its shape is ambiguous (3D grid, or a batch of 2D grids) but harmless:
    either way ``wsup`` is indexed like ``buf``."""
    return wsup.ndim >= 3 and tuple(wsup.shape) == tuple(buf.shape)


def _check(mode, buf, wsup, u, image):
    func = "phase_real_update"
    rdt = check_batch(func, mode, _MODES, buf, wsup[0] if _per_run(buf, wsup) else wsup, "wsup")
    arrays = [("buf", buf), ("wsup", wsup)]
    for name, a, needed in (("u", u, mode in _NEEDS_U), ("image", image, False)):
        if a is None:
            if needed:
                raise InputError(f"{func}: mode {mode} needs the real iterate {name}")
            continue
        if tuple(a.shape) != tuple(buf.shape) or a.dtype != rdt:
            raise InputError(f"{func}: {name} must be {rdt} with shape {tuple(buf.shape)}, got "
                             f"{a.dtype} {tuple(a.shape)}")
        arrays.append((name, a))
    check_contiguous(func, arrays)


def phase_real_update(mode: int, buf, wsup, u=None, image=None, *, beta: float = 0.9,
                      engine: str | None = None) -> None:
    """Fused real-space update (see the module docstring for the equations of each mode).

    Parameters
    ----------
    mode : {MODE_GPS, MODE_ER, MODE_HIO, MODE_OSS_SPLIT, MODE_OSS_MERGE}
    buf : ndarray (R, *grid) or grid, complex64/complex128, C-contiguous
        The inverse-FFT output, updated in place (ready for the forward FFT).
    wsup : ndarray grid (shared) or like ``buf`` (one per run), float32 (complex64 data) or float64
        ``-W`` inside the support, ``+W`` outside (``W > 0``).
    u : ndarray like ``buf`` but real, optional
        HIO / OSS real-space iterate, updated in place.
    image : ndarray like ``u``, optional
        Receives the projected image (ER, HIO, OSS_SPLIT).
    beta : float
        HIO / OSS feedback parameter.
    engine : {None, "numpy", "numba", "cuda", "numba-cuda"}
    """
    require_arrays("phase_real_update", ("u", "image"), buf=buf, wsup=wsup, u=u, image=image)
    bind_phase_real_update(mode, buf, wsup, u, image, beta=beta, engine=engine)(image is not None)


def bind_phase_real_update(mode: int, buf, wsup, u=None, image=None, *, beta: float = 0.9,
                           engine: str | None = None):
    """Validate once and return ``update(write_image=False)`` bound to these arrays.

    For hot loops: each call only launches the kernel (``write_image`` says whether ``image``
    receives the projected image this time). Arguments as in :func:`phase_real_update`.
    """
    _check(mode, buf, wsup, u, image)
    return _REAL(engine, (buf, wsup, u, image), mode, buf, wsup, u, image, beta)


# Each engine's implementation is a binder: it takes the validated arrays and ``beta`` and
# returns the ``update(write_image)`` closure that the solvers call every iteration.

@_REAL.register("numpy")
def _bind_numpy(mode, buf, wsup, u, image, beta):
    can_write = image is not None and mode in _WRITES_IMAGE

    def update_numpy(write_image: bool = False) -> None:
        _real_numpy(mode, buf, wsup, u, image if (write_image and can_write) else None, beta)
    return update_numpy


def _layout(mode, buf, wsup, u, image):
    """``(npix, runs, wstride, rowlen, u', image', can_write, real scalar type)``: the compiled
    kernels' view of the batch.

    ``wstride`` is the offset of run r's support, ``r * wstride`` (0 for a shared support).
    Unused arrays are replaced by ``wsup`` (same real dtype, never touched in those modes) so
    one compiled kernel serves every mode.
    """
    can_write = image is not None and mode in _WRITES_IMAGE
    per_run = _per_run(buf, wsup)
    npix = int(wsup[0].size) if per_run else int(wsup.size)
    return (npix, buf.size // npix, npix if per_run else 0, int(wsup.shape[-1]),
            u if u is not None else wsup, image if can_write else wsup, can_write, wsup.dtype.type)


@_REAL.register("numba")
def _bind_numba(mode, buf, wsup, u, image, beta):
    from ._phase_real_numba import phase_real_numba

    npix, _, wstride, rowlen, uu, im, can_write, rdt = _layout(mode, buf, wsup, u, image)
    bv, wv, uv, iv = buf.reshape(-1).view(rdt), wsup.reshape(-1), uu.reshape(-1), im.reshape(-1)

    def update_numba(write_image: bool = False) -> None:
        phase_real_numba(int(mode), bv, wv, uv, iv, bool(write_image) and can_write, rdt(beta), npix, rowlen,
                         wstride)
    return update_numba


@_REAL.register("cuda")
def _bind_cuda(mode, buf, wsup, u, image, beta):
    from . import _cuda

    npix, runs, wstride, _, uu, im, can_write, _ = _layout(mode, buf, wsup, u, image)
    rdt = wsup.dtype.type   # spelt out for the launch-signature check
    device = backend.get_device(buf)
    name = "phase_real_c64" if buf.dtype == np.complex64 else "phase_real_c128"
    kernel = _cuda.get_function("phase_real", name, device)
    blocks = max(1, min((npix + 255) // 256, 1024))

    def update_cuda(write_image: bool = False) -> None:
        with device.use():
            kernel((blocks, runs), (256,), (np.int32(mode), buf, wsup, uu, im,
                                            np.int32(bool(write_image) and can_write), rdt(beta), np.int64(npix),
                                            np.int64(wstride)))
    return update_cuda


@_REAL.register("numba-cuda")
def _bind_numba_cuda(mode, buf, wsup, u, image, beta):
    from ._phase_real_numba_cuda import phase_real_numba_cuda

    npix, runs, wstride, _, uu, im, can_write, rdt = _layout(mode, buf, wsup, u, image)
    device = backend.get_device(buf)
    bc, wc, uc, ic = (as_numba_cuda(a.reshape(-1)) for a in (buf, wsup, uu, im))

    def update_numba_cuda(write_image: bool = False) -> None:
        with device.use():
            phase_real_numba_cuda(int(mode), bc, wc, uc, ic, int(bool(write_image) and can_write), rdt(beta), npix,
                                  runs, wstride, stream=numba_cuda_stream())
    return update_numba_cuda
