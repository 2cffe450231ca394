"""Kernels of the ``fst`` (Fourier slice theorem) forward projection.

The ``fst`` projector (thesis 3.2.1.1, step 1) computes ``P_k(O)`` as the inverse 2D FFT of the
central plane of the zero-padded volume's 3D FFT spanned by ``R_k[0]`` and ``R_k[1]``. The volume
is real, so only half of its spectrum (kx >= 0) is computed and stored, in two FFT stages that
skip the zero padding's all-zero rows; the per-projection planes are half planes too (a real
inverse 2D FFT follows):

:func:`pad_rows`
    volume (nz, ny, nx) -> real rows (nz, ny, Px), each centred at index 0 with wrap-around.
    (caller: real 1D FFT along x -> (nz, ny, Px//2+1))
:func:`scatter_planes`
    -> half spectrum (Pz, Py, Px//2+1), rows placed at ``(iz - nz//2) mod Pz``,
    ``(iy - ny//2) mod Py``, zeros elsewhere. (caller: complex 2D FFT over (z, y) in place)
:func:`sample_central_slices`
    -> (n, Qr, Qc//2+1) half planes by trilinear interpolation of the spectrum at
    ``ku * frames[k, 0] + kv * frames[k, 1]`` (index units; ``F(-k) = conj F(k)`` supplies
    kx < 0; points outside ``|c_a| < P_a/2`` read 0; the Nyquist row and column of the
    (even-sized) planes are 0, which keeps each plane exactly Hermitian).

Because the volume sits at the wrapped (``ifftshift``) positions, the 3D FFT is the centred
transform ``F(f) = sum_r O(r) exp(-2 pi i f.r)`` with no phase ramps, and the inverse 2D FFT of
a plane gives the projection centred at index (0, 0).

Engines: ``numpy`` (vectorised), ``numba`` (parallel), ``cuda`` (``cuda/central_slice.cu``),
``numba-cuda`` (sampling only; the two copies use ``cuda`` on a GPU, ``numba`` in the simulator).
"""

from __future__ import annotations

import numpy as np

from fastem import backend
from fastem.interop import accepts_torch
from fastem.errors import InputError

from ._dispatch import KernelDispatcher, require_arrays, as_numba_cuda, numba_cuda_stream
from ._tomo_checks import check_array

__all__ = ["pad_rows", "scatter_planes", "sample_central_slices"]

_COMPLEX = (np.dtype(np.complex64), np.dtype(np.complex128))


_PAD_ROWS = KernelDispatcher("pad_rows", ("numpy", "numba", "cuda"))
_SCATTER = KernelDispatcher("scatter_planes", ("numpy", "numba", "cuda"))
_SAMPLE_SLICES = KernelDispatcher("sample_central_slices", ("numpy", "numba", "cuda", "numba-cuda"))


def _launch(name, function, out, grid, block, args):
    from . import _cuda

    dev = backend.get_device(out)
    with dev.use():
        _cuda.get_function(name, function, dev)(grid, block, args)


@_PAD_ROWS.register("numpy")
def _pad_rows_numpy(volume, out):
    nx, px = volume.shape[2], out.shape[2]
    out[...] = 0
    out[:, :, (np.arange(nx) - nx // 2) % px] = volume
    return out


@_PAD_ROWS.register("numba")
def _pad_rows_numba(volume, out):
    from ._central_slice_numba import pad_rows_numba

    pad_rows_numba(volume, out)
    return out


@_PAD_ROWS.register("cuda")
def _pad_rows_cuda(volume, out):
    _check_gpu_dtype("pad_rows", volume, np.float32)
    nz, ny, nx = volume.shape
    px = out.shape[2]
    n = nz * ny * px
    _launch("central_slice", "pad_rows_f32", out, (min((n + 255) // 256, 65535 * 8),), (256,),
            (volume, out, np.int32(nz), np.int32(ny), np.int32(nx), np.int32(px)))
    return out


@accepts_torch
def pad_rows(volume, out, *, engine: str | None = None):
    """Centre every x row of ``volume`` (nz, ny, nx) at index 0 of ``out`` (nz, ny, Px), wrapping.

    ``out[iz, iy, (ix - nx//2) mod Px] = volume[iz, iy, ix]``; every other element is set to 0.
    Both real (float32/float64, same dtype), ``Px >= nx``.
    """
    require_arrays("pad_rows", (), volume=volume, out=out)
    where = "pad_rows"
    check_array("volume", volume, 3, where=where)
    check_array("out", out, 3, (volume.dtype,), where)
    nz, ny, nx = volume.shape
    if out.shape[:2] != (nz, ny) or out.shape[2] < nx:
        raise InputError(f"{where}: out of shape {tuple(out.shape)} cannot hold rows of {tuple(volume.shape)}")
    return _PAD_ROWS(engine, (volume, out), volume, out)


@_SCATTER.register("numpy")
def _scatter_planes_numpy(rows, spectrum):
    nz, ny = rows.shape[:2]
    pz, py = spectrum.shape[:2]
    spectrum[...] = 0
    zi = (np.arange(nz) - nz // 2) % pz
    yi = (np.arange(ny) - ny // 2) % py
    spectrum[zi[:, None], yi[None, :], :] = rows
    return spectrum


@_SCATTER.register("numba")
def _scatter_planes_numba(rows, spectrum):
    from ._central_slice_numba import scatter_planes_numba

    nz, ny = rows.shape[:2]
    scatter_planes_numba(rows, spectrum, nz // 2, ny // 2)
    return spectrum


@_SCATTER.register("cuda")
def _scatter_planes_cuda(rows, spectrum):
    _check_gpu_dtype("scatter_planes", rows, np.complex64)
    nz, ny, h = rows.shape
    pz, py = spectrum.shape[:2]
    n = pz * py * h
    _launch("central_slice", "scatter_planes_c64", spectrum, (min((n + 255) // 256, 65535 * 8),), (256,),
            (rows, spectrum, np.int32(nz), np.int32(ny), np.int32(h), np.int32(pz), np.int32(py)))
    return spectrum


@accepts_torch
def scatter_planes(rows, spectrum, *, engine: str | None = None):
    """Place ``rows`` (nz, ny, H) in ``spectrum`` (Pz, Py, H) at the wrapped centred positions.

    ``spectrum[(iz - nz//2) mod Pz, (iy - ny//2) mod Py, :] = rows[iz, iy, :]``, zeros elsewhere.
    Both complex (complex64/complex128, same dtype).
    """
    require_arrays("scatter_planes", (), rows=rows, spectrum=spectrum)
    where = "scatter_planes"
    check_array("rows", rows, 3, _COMPLEX, where)
    check_array("spectrum", spectrum, 3, (rows.dtype,), where)
    nz, ny, h = rows.shape
    pz, py, h2 = spectrum.shape
    if h2 != h or pz < nz or py < ny:
        raise InputError(f"{where}: spectrum of shape {tuple(spectrum.shape)} cannot hold rows of {tuple(rows.shape)}")
    return _SCATTER(engine, (rows, spectrum), rows, spectrum)


def _check_gpu_dtype(where, a, dtype):
    if a.dtype != dtype:
        raise InputError(f"{where}: the GPU kernels take {np.dtype(dtype)} arrays, got {a.dtype}")


@_SAMPLE_SLICES.register("numpy")
def _sample_numpy(spectrum, frames, out, full_shape):
    pz, py, px = full_shape
    nk, qr, qh = out.shape
    spec = np.asarray(spectrum, dtype=np.complex128)
    kv = np.fft.fftfreq(qr, 1.0 / qr)[:, None]
    ku = np.arange(qh, dtype=np.float64)[None, :]
    for k in range(nk):
        c = [ku * frames[k, 0, a] + kv * frames[k, 1, a] for a in range(3)]  # x, y, z
        inside = (np.abs(c[0]) < px / 2) & (np.abs(c[1]) < py / 2) & (np.abs(c[2]) < pz / 2)
        c = [np.where(inside, ca, 0.0) for ca in c]  # outside points read 0 below; keep indices valid
        fl = [np.floor(ca) for ca in c]
        acc = np.zeros((qr, qh), dtype=np.complex128)
        for dz in (0, 1):
            for dy in (0, 1):
                for dx in (0, 1):
                    kx = fl[0].astype(np.int64) + dx
                    ky = fl[1].astype(np.int64) + dy
                    kz = fl[2].astype(np.int64) + dz
                    w = ((c[0] - fl[0]) if dx else (1 - (c[0] - fl[0]))) * \
                        ((c[1] - fl[1]) if dy else (1 - (c[1] - fl[1]))) * \
                        ((c[2] - fl[2]) if dz else (1 - (c[2] - fl[2])))
                    kx = np.where(kx >= px - px // 2, kx - px, kx)
                    neg = kx < 0
                    val = np.where(neg, np.conj(spec[(-kz) % pz, (-ky) % py, np.where(neg, -kx, 0)]),
                                   spec[kz % pz, ky % py, np.where(neg, 0, kx)])
                    acc += w * val
        out[k] = np.where(inside, acc, 0)
        out[k, :, qh - 1] = 0
        if qr % 2 == 0:
            out[k, qr // 2] = 0
    return out


@_SAMPLE_SLICES.register("numba")
def _sample_numba(spectrum, frames, out, full_shape):
    from ._central_slice_numba import sample_slices_numba

    pz, py, px = full_shape
    sample_slices_numba(spectrum, frames, out, pz, py, px)
    return out


@_SAMPLE_SLICES.register("cuda")
def _sample_cuda(spectrum, frames, out, full_shape):
    _check_gpu_dtype("sample_central_slices", spectrum, np.complex64)
    pz, py, px = full_shape
    nk, qr, qh = out.shape
    grid = ((qh + 31) // 32, (qr + 7) // 8, nk)
    _launch("central_slice", "sample_slices_c64", out, grid, (32, 8),
            (spectrum, frames, out, np.int32(nk), np.int32(qr), np.int32(qh),
             np.int32(pz), np.int32(py), np.int32(px)))
    return out


@_SAMPLE_SLICES.register("numba-cuda")
def _sample_numba_cuda(spectrum, frames, out, full_shape):
    from ._central_slice_numba_cuda import sample_slices_numba_cuda

    pz, py, px = full_shape
    with backend.get_device(out).use():
        sample_slices_numba_cuda(as_numba_cuda(spectrum), as_numba_cuda(frames), as_numba_cuda(out),
                                 pz, py, px, stream=numba_cuda_stream())
    return out


@accepts_torch
def sample_central_slices(spectrum, frames, out, full_shape, *, engine: str | None = None):
    """Trilinear central-plane sampling of a half spectrum (the ``fst`` projector's slice step).

    Parameters
    ----------
    spectrum : ndarray, (Pz, Py, Px//2+1), complex64 or complex128
        Half spectrum of the padded volume (kx >= 0), index ``[kz mod Pz, ky mod Py, kx]``.
    frames : ndarray, (n, 2, 3), float64
        ``frames[k, 0]`` / ``frames[k, 1]``: spectrum-index step (x, y, z) per detector frequency
        step along u / v, i.e. ``R_k[0] * (Px, Py, Pz) / Qc`` and ``R_k[1] * (Px, Py, Pz) / Qr``.
    out : ndarray, (n, Qr, Qc//2+1), spectrum's dtype
        Half planes of an even Qc: row ``r`` is ``kv = r`` wrapped to ``[-Qr/2, Qr/2)``, column
        ``c`` is ``ku = c``; the Nyquist row (``kv = -Qr/2``) and column (``ku = Qc/2``) are 0.
    full_shape : (Pz, Py, Px)
        The padded real-space shape (Px is not recoverable from the half spectrum).
    engine : {None, "numpy", "numba", "cuda", "numba-cuda"}
    """
    require_arrays("sample_central_slices", (), spectrum=spectrum, frames=frames, out=out)
    where = "sample_central_slices"
    check_array("spectrum", spectrum, 3, _COMPLEX, where)
    check_array("out", out, 3, (spectrum.dtype,), where)
    check_array("frames", frames, 3, (np.dtype(np.float64),), where)
    pz, py, px = (int(s) for s in full_shape)
    if spectrum.shape != (pz, py, px // 2 + 1):
        raise InputError(f"{where}: spectrum shape {tuple(spectrum.shape)} is not the half spectrum of {full_shape}")
    if frames.shape != (out.shape[0], 2, 3):
        raise InputError(f"{where}: frames must have shape ({out.shape[0]}, 2, 3), got {tuple(frames.shape)}")
    return _SAMPLE_SLICES(engine, (spectrum, frames, out), spectrum, frames, out, (pz, py, px))
