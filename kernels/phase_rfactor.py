"""R-factor of the current image, in half-spectrum (real-FFT) layout.

Two small kernels used by ``fastem.phase`` every ``rfactor_every`` iterations (never inside the
two-FFT iteration itself). Arrays always carry the leading run axis: ``(R, *grid)`` with a 2D or
3D ``grid``; the half-spectrum shape is ``(R, *grid[:-1], grid[-1] // 2 + 1)``.

:func:`hermitian_half`
    ``half[k] = scale * (z[k] + conj(z[-k])) / 2`` for ``k`` in the half space of a real FFT.
    A complex-to-real (unnormalised) inverse FFT of ``half`` is then exactly
    ``scale * N * Re(ifftn(z))``: the real part of a complex inverse transform for half the cost.
:func:`rfactor_half`
    Per-run sum over measured pixels of ``| |F(k)| - b(k) |``, ``F`` the real-FFT spectrum of the
    (real) image. Every full-grid pixel is counted exactly once: a half-space pixel ``k`` stands
    for itself (``bh = b(k)``) and, when its mirror ``-k`` lies outside the half space, for ``-k``
    too (``bm = b(-k)``, since ``|F(-k)| = |F(k)|``); ``bh``/``bm`` are negative where there is
    nothing to count (unknown pixel, or a mirror inside the half space). Dividing by
    ``sum_known b`` gives ``R_F`` (thesis eq. 2.21).
"""

from __future__ import annotations

import numpy as np

from fastem import backend
from fastem.errors import InputError

from ._dispatch import KernelDispatcher, require_arrays, as_numba_cuda, numba_cuda_stream

_HERMITIAN_HALF = KernelDispatcher("hermitian_half", ("numpy", "numba", "cuda", "numba-cuda"))
_RFACTOR_HALF = KernelDispatcher("rfactor_half", ("numpy", "numba", "cuda", "numba-cuda"))

__all__ = ["hermitian_half", "rfactor_half", "half_spectrum_weights"]

_REAL_OF = {np.dtype(np.complex64): np.dtype(np.float32), np.dtype(np.complex128): np.dtype(np.float64)}


def _runs_grid3(shape) -> tuple[int, int, int, int]:
    """(runs, A, B, C) of a (runs, *grid) shape; a 2D grid gets A = 1."""
    if len(shape) == 3:
        return int(shape[0]), 1, int(shape[1]), int(shape[2])
    if len(shape) == 4:
        return tuple(int(s) for s in shape)  # type: ignore[return-value]
    raise InputError(f"phase R-factor kernels need (runs, *grid) arrays with a 2D or 3D grid, got shape {tuple(shape)}")


def half_spectrum_weights(bk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(bh, bm)`` for :func:`rfactor_half` from the full-grid ``bk`` (``b``, ``-1`` = unknown).

    ``bh[k] = bk[k]``; ``bm[k] = bk[-k]`` where ``-k`` is outside the half space, else ``-1``.
    Host-side NumPy, once per data set.
    """
    bk = np.asarray(bk)
    n_last = bk.shape[-1]
    nh = n_last // 2 + 1
    mirrored = bk
    for ax, n in enumerate(bk.shape):
        mirrored = np.take(mirrored, (-np.arange(n)) % n, axis=ax)
    bh = np.ascontiguousarray(bk[..., :nh])
    bm = np.ascontiguousarray(mirrored[..., :nh]).copy()
    # the mirror of last-axis index c is (n - c) % n; it is inside [0, nh) only for c = 0 and
    # (even n) c = n / 2 -- those columns stand for themselves only
    bm[..., 0] = -1
    if n_last % 2 == 0:
        bm[..., n_last // 2] = -1
    return bh, bm


def hermitian_half(z, half, scale: float = 1.0, engine: str | None = None) -> None:
    """Write ``scale * (z[k] + conj(z[-k])) / 2`` for the real-FFT half space of ``z``.

    Parameters
    ----------
    z : ndarray (R, *grid), complex64/complex128, C-contiguous, 2D or 3D grid
    half : ndarray (R, *grid[:-1], grid[-1] // 2 + 1), same dtype; overwritten
    scale : float
    engine : {None, "numpy", "numba", "cuda", "numba-cuda"}
    """
    require_arrays("hermitian_half", (), z=z, half=half)
    if z.dtype not in _REAL_OF or half.dtype != z.dtype:
        raise InputError(f"hermitian_half: z and half must both be complex64 or complex128, got {z.dtype}, {half.dtype}")
    runs, a, b, c = _runs_grid3(z.shape)
    want = tuple(z.shape[:-1]) + (c // 2 + 1,)
    if tuple(half.shape) != want:
        raise InputError(f"hermitian_half: half has shape {tuple(half.shape)}, expected {want} for z {tuple(z.shape)}")
    if not (z.flags.c_contiguous and half.flags.c_contiguous):
        raise InputError("hermitian_half: z and half must be C-contiguous")
    _HERMITIAN_HALF(engine, (z, half), z, half, scale)


@_HERMITIAN_HALF.register("numpy")
def _hermitian_half_numpy(z, half, scale) -> None:
    xp = backend.get_array_module(z)
    mirrored = z
    for ax in range(1, z.ndim):
        mirrored = xp.take(mirrored, (-xp.arange(z.shape[ax])) % z.shape[ax], axis=ax)
    half[...] = ((z + xp.conj(mirrored)) * (0.5 * scale))[..., : half.shape[-1]]


@_HERMITIAN_HALF.register("numba")
def _hermitian_half_numba(z, half, scale) -> None:
    from ._phase_rfactor_numba import hermitian_half_numba

    runs, a, b, c = _runs_grid3(z.shape)
    rdt = _REAL_OF[z.dtype].type
    hermitian_half_numba(z.reshape(-1).view(rdt), half.reshape(-1).view(rdt), runs, a, b, c, rdt(0.5 * scale))


@_HERMITIAN_HALF.register("cuda")
def _hermitian_half_cuda(z, half, scale) -> None:
    from . import _cuda

    runs, a, b, c = _runs_grid3(z.shape)
    rdt = _REAL_OF[z.dtype].type
    with backend.get_device(z).use():
        name = "hermitian_half_c64" if z.dtype == np.complex64 else "hermitian_half_c128"
        kernel = _cuda.get_function("phase_rfactor", name, backend.get_device(z))
        nhalf = a * b * (c // 2 + 1)
        blocks = max(1, min((nhalf + 255) // 256, 1024))
        kernel((blocks, runs), (256,), (z, half, np.int64(a), np.int64(b), np.int64(c), rdt(0.5 * scale)))


@_HERMITIAN_HALF.register("numba-cuda")
def _hermitian_half_numba_cuda(z, half, scale) -> None:
    from ._phase_rfactor_numba_cuda import hermitian_half_numba_cuda

    runs, a, b, c = _runs_grid3(z.shape)
    rdt = _REAL_OF[z.dtype].type
    with backend.get_device(z).use():
        hermitian_half_numba_cuda(as_numba_cuda(z.reshape(-1)), as_numba_cuda(half.reshape(-1)), runs, a, b, c,
                                  rdt(0.5 * scale), stream=numba_cuda_stream())


def rfactor_half(spec, bh, bm, out, partial=None, engine: str | None = None):
    """Per-run ``sum_known | |F| - b |`` over the full grid, from a real-FFT half spectrum.

    Parameters
    ----------
    spec : ndarray (R, *half_grid), complex64/complex128, C-contiguous
        Real-FFT spectrum of the image of each run.
    bh, bm : ndarray half_grid, matching real dtype
        From :func:`half_spectrum_weights`.
    out : ndarray (R,), float64
        Receives the sums (accumulated in float64); overwritten.
    partial : ndarray (R * rows,), float64, optional
        CPU workspace (``rows = prod(half_grid[:-1])``), so that repeated calls allocate nothing.
    engine : {None, "numpy", "numba", "cuda", "numba-cuda"}

    Returns
    -------
    out
    """
    require_arrays("rfactor_half", ('partial',), spec=spec, bh=bh, bm=bm, out=out, partial=partial)
    if spec.dtype not in _REAL_OF:
        raise InputError(f"rfactor_half: spec must be complex64 or complex128, got {spec.dtype}")
    rdt = _REAL_OF[spec.dtype]
    half_grid = tuple(spec.shape[1:])
    if tuple(bh.shape) != half_grid or tuple(bm.shape) != half_grid or bh.dtype != rdt or bm.dtype != rdt:
        raise InputError(f"rfactor_half: bh and bm must be {rdt} with shape {half_grid}, got "
                         f"{bh.dtype} {tuple(bh.shape)} and {bm.dtype} {tuple(bm.shape)}")
    runs = int(spec.shape[0])
    if tuple(out.shape) != (runs,) or out.dtype != np.float64:
        raise InputError(f"rfactor_half: out must be float64 with shape ({runs},), got {out.dtype} {tuple(out.shape)}")
    if not (spec.flags.c_contiguous and bh.flags.c_contiguous and bm.flags.c_contiguous):
        raise InputError("rfactor_half: spec, bh and bm must be C-contiguous")
    return _RFACTOR_HALF(engine, (spec, bh, bm, out), spec, bh, bm, out, partial)


@_RFACTOR_HALF.register("numpy")
def _rfactor_half_numpy(spec, bh, bm, out, partial):
    xp = backend.get_array_module(spec)
    mag = xp.abs(spec).astype(np.float64)
    bh64, bm64 = bh.astype(np.float64), bm.astype(np.float64)
    term = xp.where(bh64 >= 0, xp.abs(mag - bh64), 0) + xp.where(bm64 >= 0, xp.abs(mag - bm64), 0)
    out[...] = term.reshape(spec.shape[0], -1).sum(axis=1)
    return out


@_RFACTOR_HALF.register("numba")
def _rfactor_half_numba(spec, bh, bm, out, partial):
    from ._phase_rfactor_numba import rfactor_half_numba

    runs, npix, rowlen = int(spec.shape[0]), int(np.prod(spec.shape[1:])), int(spec.shape[-1])
    rows = npix // rowlen
    if partial is None or partial.size < runs * rows or partial.dtype != np.float64:
        partial = np.empty(runs * rows, np.float64)
    rfactor_half_numba(spec.reshape(-1).view(_REAL_OF[spec.dtype]), bh.reshape(-1), bm.reshape(-1), partial, out,
                       npix, rowlen)
    return out


@_RFACTOR_HALF.register("cuda")
def _rfactor_half_cuda(spec, bh, bm, out, partial):
    from . import _cuda

    runs, npix = int(spec.shape[0]), int(np.prod(spec.shape[1:]))
    with backend.get_device(spec).use():
        out.fill(0)
        name = "rfactor_half_c64" if spec.dtype == np.complex64 else "rfactor_half_c128"
        kernel = _cuda.get_function("phase_rfactor", name, backend.get_device(spec))
        blocks = max(1, min((npix + 255) // 256, 256))
        kernel((blocks, runs), (256,), (spec, bh, bm, out, np.int64(npix)))
    return out


@_RFACTOR_HALF.register("numba-cuda")
def _rfactor_half_numba_cuda(spec, bh, bm, out, partial):
    from ._phase_rfactor_numba_cuda import rfactor_half_numba_cuda

    runs, npix = int(spec.shape[0]), int(np.prod(spec.shape[1:]))
    with backend.get_device(spec).use():
        out.fill(0)
        rfactor_half_numba_cuda(as_numba_cuda(spec.reshape(-1)), as_numba_cuda(bh.reshape(-1)),
                                as_numba_cuda(bm.reshape(-1)), as_numba_cuda(out), npix, runs,
                                stream=numba_cuda_stream())
    return out
