"""Projection operators on one device: the ``linear`` pair and the ``fst`` forward projection.

Both operators own every buffer they need (allocated once, at construction) and expose the
three operations RESIRE, SIRT and FBP are built from:

``residual(volume, data, weights, out, l1)``
    ``out = (P(volume) - data) * weights`` in the bordered layout the back projection reads
    (zero border of :data:`BORDER` pixels), and ``l1[k] = sum |P_k(volume) - data_k|`` over
    the pixels with ``weights != 0`` (the numerator of the R-factor, thesis eq. 3.9);
``back(images, out, alpha=, beta=, weights=, positivity=, border=)``
    ``out <- beta*out + alpha*weights*sum_k B_k(images_k)`` (then positivity), one pass;
``forward(volume, out)``
    plain projections (n, rows, cols).

:class:`LinearProjector` splats 4 sub-points per voxel (``subpoints=4``) and its back
projection uses the same sub-points: the two are exact adjoints. :class:`FourierSliceProjector`
(``fst``, the thesis' forward projection) takes one padded 3D FFT per call and samples every
projection's central plane; its back projection is the bilinear one (``subpoints=1``). When
memory is short it processes the projections in chunks and, on a GPU, lowers the oversampling
until the padded spectrum fits (with a warning) instead of failing.

Each :class:`FourierSliceProjector` owns *private* FFT plans (:class:`fastem.fft.FFTPlan`
built directly, never the shared cached plans of :func:`fastem.fft.get_plan`): its spectrum and
plane buffers are work arrays that no other projector, solver or thread can touch, so two
projectors of the same shape interleaved give exactly what each gives alone.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.fft import next_fast_len

from .. import backend
from ..errors import InputError
from ..fft import FFTPlan, empty_aligned
from ..kernels.back_project import BORDER, back_project
from ..kernels.central_slice import pad_rows, sample_central_slices, scatter_planes
from ..kernels.forward_project import forward_project
from ..kernels.projection_residual import projection_residual
from ._validate import as_array
from .projection_geometry import ProjectionGeometry

__all__ = ["LinearProjector", "FourierSliceProjector", "make_projector", "fst_grid", "gridding_correction", "BORDER",
           "PROJECTORS"]

PROJECTORS = ("fst", "linear")


class _Projector:
    """Shared plumbing: device, dtype, geometry coefficients on the device."""

    back_subpoints = 1

    def __init__(self, geometry: ProjectionGeometry, device=None, engine: str | None = None):
        if not isinstance(geometry, ProjectionGeometry):
            raise InputError(f"geometry must be a ProjectionGeometry, got {type(geometry).__name__}")
        self.geometry = geometry
        self.device = backend.Device(device)
        self.xp = self.device.xp
        self.dtype = np.dtype(np.float32)
        self.engine = engine
        with self.device.use():
            self.coefficients = backend.to_device(np.ascontiguousarray(geometry.coefficients), self.device)

    def _kernel_engine(self, kernel: str):
        """The engine for ``kernel``: the projector's own, or the device default (``None``) where
        ``kernel`` does not implement it (``projection_residual``, ``pad_rows`` and
        ``scatter_planes`` have no ``numba-cuda`` twin; the kernels themselves refuse it)."""
        from ..kernels._dispatch import KERNEL_ENGINES

        e = self.engine
        return e if e is None or e in KERNEL_ENGINES[kernel] else None

    # ---- buffers the callers need ------------------------------------------------------------
    def bordered_images(self):
        """Zeroed (n, rows + 2*BORDER, cols + 2*BORDER) float32 images on the device."""
        n, rows, cols = self.geometry.projections_shape
        with self.device.use():
            return self.xp.zeros((n, rows + 2 * BORDER, cols + 2 * BORDER), dtype=self.dtype)

    def empty_volume(self):
        with self.device.use():
            return self.xp.zeros(self.geometry.volume_shape, dtype=self.dtype)

    # ---- operations ----------------------------------------------------------------------------
    def back(self, images, out, *, alpha: float = 1.0, beta: float = 0.0, weights=None,
             positivity: bool = False, border: int = 0):
        """``out <- beta*out + alpha*weights*sum_k B_k(images_k)`` (see :func:`fastem.kernels.back_project`)."""
        return back_project(images, self.coefficients, out, alpha=alpha, beta=beta, weights=weights,
                            positivity=positivity, subpoints=self.back_subpoints, border=border, engine=self.engine)

    def adjoint(self, images):
        """Convenience: ``sum_k B_k(images_k)`` of plain (n, rows, cols) images into a new volume."""
        images = self._as_device(images, "images")
        self.geometry.check_projections(images, "images")
        out = self.empty_volume()
        return self.back(images, out)

    def project(self, volume):
        """Convenience: the projections (n, rows, cols) of ``volume`` in a new array."""
        with self.device.use():
            out = self.xp.empty(self.geometry.projections_shape, dtype=self.dtype)
        return self.forward(self._as_device(volume, "volume"), out)

    def _as_device(self, a, name: str = "array"):
        if not backend.is_cupy_array(a):
            a = as_array(a, name)
        with self.device.use():
            return self.xp.ascontiguousarray(backend.to_device(a, self.device), dtype=self.dtype)

    def _check_volume(self, volume):
        if not hasattr(volume, "shape") or not hasattr(volume, "dtype"):
            raise InputError(f"volume must be an array, got {type(volume).__name__}")
        if tuple(volume.shape) != self.geometry.volume_shape:
            raise InputError(f"volume has shape {tuple(volume.shape)} but the geometry expects "
                             f"{self.geometry.volume_shape}")


class LinearProjector(_Projector):
    """The ``linear`` pair: sub-point splatting and its exact adjoint.

    Parameters
    ----------
    geometry : ProjectionGeometry
    device : Device-like
    subpoints : {4, 1}
        4: every voxel divided into 2 x 2 sub-pixels in object space (x-z plane, offsets +-1/4,
        :data:`fastem.kernels.back_project.SUBPOINT_OFFSETS`), each mapped onto the detector and
        splatted bilinearly (the ``linear`` projector); 1: the voxel centre splatted bilinearly.
    engine : kernel engine (None = default for the device)
        For the projector kernels; a kernel without it (``numba-cuda``: ``projection_residual``,
        ``pad_rows``, ``scatter_planes``) runs the device's default engine.

    Notes
    -----
    Cost per call: one pass over (volume x projections) with 16 taps (subpoints=4; 8 when the
    projections tilt about y and v is integral) or 4 taps (subpoints=1).
    """

    name = "linear"

    def __init__(self, geometry: ProjectionGeometry, device=None, subpoints: int = 4, engine: str | None = None):
        super().__init__(geometry, device, engine)
        if isinstance(subpoints, bool) or subpoints not in (1, 4):
            raise InputError(f"subpoints must be 1 or 4, got {subpoints}")
        self.subpoints = self.back_subpoints = int(subpoints)

    def forward(self, volume, out):
        """``out[k] = P_k(volume)``, out (n, rows, cols) on the device."""
        self._check_volume(volume)
        return forward_project(volume, self.coefficients, out, subpoints=self.subpoints, engine=self.engine)

    def residual(self, volume, data, weights, out, l1):
        """``out`` (bordered) ``= (P(volume) - data) * weights``; ``l1[k] = sum |P_k - data_k|`` (weights != 0)."""
        self._check_volume(volume)
        forward_project(volume, self.coefficients, out, subpoints=self.subpoints, border=BORDER, engine=self.engine)
        projection_residual(out, data, weights, out, l1, row_shift=BORDER, col_shift=BORDER, out_border=BORDER,
                            engine=self._kernel_engine("projection_residual"))
        return out, l1

    def memory_bytes(self) -> int:
        """Device memory the operator holds beyond its inputs (bytes)."""
        return int(self.coefficients.nbytes)


def fst_grid(volume_shape, detector_shape, oversampling, rotations=None, axis_offset: float = 0.0):
    """Padded volume shape ``(Pz, Py, Px)`` and plane shape ``(Qr, Qc)`` of the ``fst`` projector.

    ``P_a`` is the smallest even FFT-friendly length >= ``os_a * n_a`` (``oversampling`` a number
    or a (z, y, x) triple, each in [1, 8]). The planes sample the spectrum with the padded
    grid's spacing along x (columns) and y (rows): ``Qc = Px`` and ``Qr = Py``, so that an
    untilted projection samples grid points exactly; they are enlarged when needed so that the
    projection of the whole volume (half extent ``E_u = max_k sum_a |R_k[0, a]| n_a / 2`` along
    u, likewise along v) cannot wrap into the detector window: ``Qc >= E_u + cols/2 + |axis_offset| + 2``
    (``axis_offset``: the rotation axis' distance from the detector middle, pixels).
    """
    os3 = np.broadcast_to(np.asarray(oversampling, dtype=np.float64), (3,))
    if not np.all(np.isfinite(os3)) or np.any(os3 < 1.0) or np.any(os3 > 8.0):
        raise InputError(f"oversampling must be in [1, 8] (the thesis uses 2-4), got {oversampling}")

    def even_fast(x: float) -> int:
        n = next_fast_len(max(2, int(math.ceil(x - 1e-9))))
        while n % 2:
            n = next_fast_len(n + 1)
        return n

    padded = tuple(even_fast(o * n) for o, n in zip(os3, volume_shape))
    rows, cols = detector_shape
    half = np.array(volume_shape[::-1], dtype=np.float64) / 2.0  # (x, y, z)
    if rotations is None:
        ext_u = ext_v = float(np.linalg.norm(half))
    else:
        R = np.asarray(rotations, dtype=np.float64)
        ext_u = float(np.max(np.abs(R[:, 0, :]) @ half))
        ext_v = float(np.max(np.abs(R[:, 1, :]) @ half))
    q_rows = max(padded[1], even_fast(ext_v + rows / 2 + 2))
    q_cols = max(padded[2], even_fast(ext_u + cols / 2 + abs(float(axis_offset)) + 2))
    return padded, (q_rows, q_cols)


def gridding_correction(volume_shape, padded_shape, frames=None):
    """Per-axis factors ``(c_z, c_y, c_x)`` that undo the apodization of trilinear Fourier sampling.

    Trilinear interpolation between the samples of the padded spectrum (spacing ``1/P_a`` cycles
    per voxel) is, in real space, a multiplication of the (periodic) padded volume by
    ``sinc^2(t_a / P_a)`` along every axis, ``t_a`` the distance in voxels from the FFT origin
    (volume index ``n_a // 2``; ``sinc(t) = sin(pi t) / (pi t)``). At oversampling 2 that weights
    the volume's faces by ``sinc^2(1/4) = 0.81`` and its corners by 0.53. The ``fst`` projector
    divides the volume by it before the FFT (the classic gridding "deapodization" correction),
    leaving only the aliasing of the interpolation kernel's side lobes.

    An axis along which every projection samples the spectrum at integral grid coordinates (the
    tilt axis y of a single-axis series: ``frames[:, :, axis]`` integral) is not interpolated and
    gets no correction (factor 1).

    Parameters
    ----------
    volume_shape, padded_shape : (z, y, x) ints
    frames : ndarray (n, 2, 3), optional
        Spectrum-index steps (x, y, z) per unit ku and kv of every projection
        (``FourierSliceProjector.frames``); None: correct every axis.

    Returns
    -------
    tuple of 3 float64 arrays
        ``c_a[i] = 1 / sinc^2((i - n_a//2) / P_a)`` of length ``n_a`` (or ones), axes (z, y, x).
    """
    out = []
    for axis, (n, p) in enumerate(zip(volume_shape, padded_shape)):
        if frames is not None:
            f = np.asarray(frames, dtype=np.float64)[:, :, 2 - axis]
            if np.all(np.abs(f - np.round(f)) < 1e-9):
                out.append(np.ones(n))
                continue
        out.append(1.0 / np.sinc((np.arange(n) - n // 2) / float(p)) ** 2)
    return tuple(out)


def _available_bytes(device: backend.Device) -> int:
    from .memory import available_bytes

    return available_bytes(device)


def _fst_bytes(geometry: ProjectionGeometry, padded, plane, chunk: int, device) -> int:
    """Bytes the ``fst`` projector holds: its three private FFT plans, the row stage, the frames."""
    from .memory import plan_bytes

    nz, ny, _ = geometry.volume_shape
    pz, py, px = padded
    qr, qc = plane
    return int(plan_bytes((nz, ny, px), real=True, device=device) + nz * ny * px * 4
               + plan_bytes((pz, py, px // 2 + 1), real=False, device=device)
               + plan_bytes((chunk, qr, qc), real=True, device=device)
               + geometry.n_projections * 6 * 8 + geometry.coefficients.nbytes
               + geometry.n_projections * (qr + qc // 2 + 1) * 8  # phase ramps
               + (nz + ny * px) * 4)  # gridding correction factors


def _fst_sizing(geometry: ProjectionGeometry, oversampling, device, max_chunk_bytes, warn: bool = True):
    """``(oversampling, padded_shape, plane_shape, chunk)`` of an ``fst`` projector on ``device``.

    The oversampling is lowered (by 0.5 steps, a warning says so) until the projector's buffers
    fit in 90 % of the available memory; the planes are processed in balanced chunks of at most
    ``max_chunk_bytes`` (default a quarter of the memory left, at most 1 GiB on the CPU).
    """
    try:
        requested = np.broadcast_to(np.asarray(oversampling, dtype=np.float64), (3,)).copy()
    except (TypeError, ValueError):
        raise InputError(f"oversampling must be a number or 3 numbers in [1, 8], got {oversampling!r}") from None
    if max_chunk_bytes is not None:
        if isinstance(max_chunk_bytes, bool) or not isinstance(max_chunk_bytes, (int, np.integer)) \
                or max_chunk_bytes < 1:
            raise InputError(f"max_chunk_bytes must be a positive integer, got {max_chunk_bytes!r}")
    margin = abs(geometry.axis_offset) + max(geometry.max_shift)
    grid = lambda os3: fst_grid(geometry.volume_shape, geometry.detector_shape, os3, geometry.rotations,  # noqa: E731
                                margin)
    grid(requested)  # validates the range
    avail = _available_bytes(device)
    budget = int(0.9 * avail)

    def need(os3):
        padded, plane = grid(os3)
        return _fst_bytes(geometry, padded, plane, 1, device)

    os_try = requested.copy()
    while need(os_try) > budget and np.any(os_try > 1.0):
        os_try = np.maximum(os_try - 0.5, 1.0)
    if not np.array_equal(os_try, requested):
        if need(os_try) > budget:
            raise InputError(f"fst projector: the padded spectrum of a {geometry.volume_shape} volume needs about "
                             f"{need(os_try) / 2**30:.1f} GiB even without oversampling but "
                             f"{budget / 2**30:.1f} GiB are available on {device}; use the linear projector")
        if warn:
            warnings.warn(f"fst projector: oversampling {tuple(requested)} needs {need(requested) / 2**30:.1f} GiB "
                          f"but {budget / 2**30:.1f} GiB are available on {device}; using {tuple(os_try)}",
                          ResourceWarning, stacklevel=3)
    padded, plane = grid(os_try)
    qr, qc = plane
    n = geometry.n_projections
    per_projection = qr * (qc // 2 + 1) * 8 + qr * qc * 4
    if max_chunk_bytes is None:  # what is left once the spectrum exists
        max_chunk_bytes = min(avail // 4, max(0, avail - need(os_try)))
        if device.is_cpu:
            max_chunk_bytes = min(max_chunk_bytes, 1 << 30)
    cmax = max(1, min(n, int(max_chunk_bytes) // per_projection))
    nchunks = -(-n // cmax)
    chunk = -(-n // nchunks)  # balanced chunks
    return os_try, padded, plane, chunk


class FourierSliceProjector(_Projector):
    """The ``fst`` forward projection (thesis 3.2.1.1) with the bilinear back projection.

    Per forward call: rows padded and 1D real FFTs along x over the ``nz*ny`` occupied rows
    only, one complex 2D FFT over (z, y) of the half spectrum (``Pz x Py x (Px//2+1)``
    complex64), then for every chunk of projections: trilinear sampling of the half planes
    (``Qr x (Qc//2+1)``), one batched real inverse 2D FFT and a fused crop + residual pass.

    Parameters
    ----------
    geometry : ProjectionGeometry
    oversampling : float or (z, y, x) floats
        Zero-padding ratio (default 2, thesis range 2-4).
    device : Device-like
    max_chunk_bytes : int, optional
        Memory for the per-projection planes (complex half plane + real image, about
        ``12 * Qr * Qc`` bytes each); default a quarter of the free memory, at most 1 GiB on the CPU.
    engine : kernel engine (None = default for the device)
        For the projector kernels; a kernel without it (``numba-cuda``: ``projection_residual``,
        ``pad_rows``, ``scatter_planes``) runs the device's default engine.
    gridding : bool
        Divide the volume by the trilinear interpolation's apodization before the FFT
        (:func:`gridding_correction`; default True). Without it the projections of structure
        away from the volume centre are too weak (at os 2 by up to 19 % per axis).

    Attributes
    ----------
    padded_shape : (Pz, Py, Px)
    plane_shape : (Qr, Qc)
    chunk : int
        Projections per batch of planes.
    oversampling : ndarray (3,)
        The ratio in use (lower than asked for if the spectrum did not fit; a warning says so).
    """

    name = "fst"
    back_subpoints = 1

    def __init__(self, geometry: ProjectionGeometry, oversampling=2.0, device=None, max_chunk_bytes: int | None = None,
                 engine: str | None = None, gridding: bool = True):
        super().__init__(geometry, device, engine)
        if not isinstance(gridding, (bool, np.bool_)):
            raise InputError(f"gridding must be True or False, got {gridding!r}")
        self.gridding = bool(gridding)
        self.oversampling, self.padded_shape, self.plane_shape, self.chunk = _fst_sizing(
            geometry, oversampling, self.device, max_chunk_bytes)
        nz, ny, _nx = geometry.volume_shape
        pz, py, px = self.padded_shape
        qr, qc = self.plane_shape
        dev = self.device
        with dev.use():
            # private plans: their buffers are this projector's work arrays (never a shared plan's)
            self._rows_plan = FFTPlan((nz, ny, px), np.float32, axes=(2,), real=True, device=dev)
            self._rows_in = empty_aligned((nz, ny, px), np.float32, dev)
            self._spectrum_plan = FFTPlan((pz, py, px // 2 + 1), np.complex64, axes=(0, 1), device=dev)
            self._slices_plan = FFTPlan((self.chunk, qr, qc), np.float32, axes=(1, 2), real=True, device=dev)
            self.frames = backend.to_device(self._frames(), dev)
            shifts, self._crop = fst_shifts(geometry)
            self._correction = None
            if self.gridding:
                cz, cy, cx = gridding_correction(geometry.volume_shape, self.padded_shape, self._frames())
                cx_rows = np.zeros(px)
                cx_rows[(np.arange(_nx) - _nx // 2) % px] = cx  # the layout of pad_rows
                self._correction = (backend.to_device(cz.astype(np.float32)[:, None, None], dev),
                                    backend.to_device((cy[:, None] * cx_rows[None, :]).astype(np.float32), dev))
            self._ramps = None
            if np.any(shifts != 0.0):  # odd sizes with an integral axis need none
                ramp_r, ramp_c = phase_ramps(shifts, self.plane_shape)
                self._ramps = (backend.to_device(ramp_r, dev), backend.to_device(ramp_c, dev))
        self.spectrum = self._spectrum_plan.buffer

    # ---- sizing ------------------------------------------------------------------------------
    @staticmethod
    def estimate_bytes(geometry: ProjectionGeometry, oversampling=2.0, device=None,
                       max_chunk_bytes: int | None = None) -> int:
        """Bytes a projector built with these arguments would hold, without allocating anything."""
        dev = backend.Device(device)
        os3, padded, plane, chunk = _fst_sizing(geometry, oversampling, dev, max_chunk_bytes, warn=False)
        return _fst_bytes(geometry, padded, plane, chunk, dev)

    def _spectrum_bytes(self, os3) -> int:
        """Bytes of this projector's buffers at oversampling ``os3`` with one plane per chunk."""
        padded, plane = fst_grid(self.geometry.volume_shape, self.geometry.detector_shape, os3,
                                 self.geometry.rotations, abs(self.geometry.axis_offset) + max(self.geometry.max_shift))
        return _fst_bytes(self.geometry, padded, plane, 1, self.device)

    def _frames(self) -> np.ndarray:
        """(n, 2, 3) float64: spectrum-index step (x, y, z) per unit ku (row 0) and kv (row 1)."""
        R = self.geometry.rotations
        pz, py, px = self.padded_shape
        qr, qc = self.plane_shape
        grid = np.array([px, py, pz], dtype=np.float64)
        return np.ascontiguousarray(np.stack([R[:, 0, :] * grid / qc, R[:, 1, :] * grid / qr], axis=1))

    def memory_bytes(self) -> int:
        """Device memory of the buffers the operator owns (bytes; plans as :func:`~fastem.tomo.memory.plan_bytes`)."""
        return _fst_bytes(self.geometry, self.padded_shape, self.plane_shape, self.chunk, self.device)

    # ---- stages ------------------------------------------------------------------------------
    def transform(self, volume):
        """Half spectrum (Pz, Py, Px//2+1) of the zero-padded, centred volume (in :attr:`spectrum`)."""
        self._check_volume(volume)
        pad_rows(volume, self._rows_in, engine=self._kernel_engine("pad_rows"))
        if self._correction is not None:
            with self.device.use():
                self._rows_in *= self._correction[1]
                self._rows_in *= self._correction[0]
        rows = self._rows_plan.forward(self._rows_in, self._rows_plan.buffer)
        scatter_planes(rows, self.spectrum, engine=self._kernel_engine("scatter_planes"))
        self._spectrum_plan.forward()
        return self.spectrum

    def _planes(self, k0: int, count: int):
        """Real images (count, Qr, Qc) of projections k0..k0+count-1, centred at (0, 0), unnormalised."""
        planes = self._slices_plan.buffer
        sample_central_slices(self.spectrum, self.frames[k0:k0 + count], planes[:count], self.padded_shape,
                              engine=self.engine)
        if self._ramps is not None:  # sub-pixel shifts onto the detector's centring (see fst_shifts)
            with self.device.use():
                planes[:count] *= self._ramps[0][k0:k0 + count, :, None]
                planes[:count] *= self._ramps[1][k0:k0 + count, None, :]
        return self._slices_plan.backward(planes, normalise=False, overwrite_input=True)

    def _chunks(self):
        n = self.geometry.n_projections
        for k0 in range(0, n, self.chunk):
            yield k0, min(self.chunk, n - k0)

    # ---- operations --------------------------------------------------------------------------
    def residual(self, volume, data, weights, out, l1):
        """``out`` (bordered) ``= (P(volume) - data) * weights``; ``l1[k] = sum |P_k - data_k|`` (weights != 0)."""
        rows, cols = self.geometry.detector_shape
        qr, qc = self.plane_shape
        self.transform(volume)
        for k0, c in self._chunks():
            images = self._planes(k0, c)
            projection_residual(images[:c], data[k0:k0 + c], weights[k0:k0 + c], out[k0:k0 + c], l1[k0:k0 + c],
                                scale=1.0 / (qr * qc), row_shift=-self._crop[0], col_shift=-self._crop[1],
                                out_border=BORDER, engine=self._kernel_engine("projection_residual"))
        return out, l1

    def forward(self, volume, out):
        """``out[k] = P_k(volume)``, out (n, rows, cols) on the device."""
        rows, cols = self.geometry.detector_shape
        qr, qc = self.plane_shape
        xp = self.xp
        scale = np.float32(1.0 / (qr * qc))
        self.transform(volume)
        with self.device.use():
            # detector pixel (r, c) <- image ((r - crop_r) mod Qr, (c - crop_c) mod Qc)
            ri = xp.asarray((np.arange(rows) - self._crop[0]) % qr)
            ci = xp.asarray((np.arange(cols) - self._crop[1]) % qc)
            for k0, c in self._chunks():
                img = self._planes(k0, c)[:c]
                xp.multiply(img[:, ri][:, :, ci], scale, out=out[k0:k0 + c])
        return out


def fst_shifts(geometry: ProjectionGeometry):
    """Per-projection detector shifts of the ``fst`` images and the common integral crop offset.

    The ``fst`` spectrum is that of the volume placed with index ``n//2`` at the origin (the FFT
    convention), and the inverse FFT of a plane puts that origin at image index (0, 0). The
    geometry puts the origin at ``(n-1)/2`` and maps it to detector ``((rows-1)/2, center)``, so
    projection ``k``'s image must move by ``s_k = (c_v + A_k[1].d, c_u + A_k[0].d)`` pixels (plus the
    geometry's per-projection ``shifts``, if any) with
    ``d = (nx//2 - (nx-1)/2, ny//2 - (ny-1)/2, nz//2 - (nz-1)/2)`` (1/2 on even axes). The
    integral part common to all projections, ``crop = (round(c_v), round(c_u))``, is taken by the
    crop; the rest (``s_k - crop``, a fraction of a pixel or a few pixels) by phase ramps.

    Returns
    -------
    shifts : ndarray (n, 2) float64
        ``(rows, cols)`` shift of every projection left to the phase ramps.
    crop : (int, int)
    """
    nz, ny, nx = geometry.volume_shape
    rows, _cols = geometry.detector_shape
    d = np.array([nx // 2 - (nx - 1) / 2, ny // 2 - (ny - 1) / 2, nz // 2 - (nz - 1) / 2])
    A = geometry.rotations
    cv, cu = (rows - 1) / 2.0, float(geometry.center)
    crop = (int(math.floor(cv + 0.5)), int(math.floor(cu + 0.5)))
    shifts = np.stack([cv - crop[0] + A[:, 1, :] @ d, cu - crop[1] + A[:, 0, :] @ d], axis=1)
    if geometry.shifts is not None:  # per-projection alignment shifts (du, dv)
        shifts += geometry.shifts[:, ::-1]
    shifts[np.abs(shifts) < 1e-12] = 0.0
    return shifts, crop


def phase_ramps(shifts, plane_shape):
    """Row and column phase ramps (complex64) that shift real images of ``plane_shape`` by ``shifts``.

    For the half planes ``(Qr, Qc//2+1)`` of a real inverse FFT: multiplying plane ``k`` by
    ``ramp_r[k][:, None] * ramp_c[k][None, :]`` moves its image by ``shifts[k] = (dr, dc)``
    pixels (``g'(t) = g(t - s)``, band-limited). Returns ``(ramp_r (n, Qr), ramp_c (n, Qc//2+1))``.
    """
    qr, qc = plane_shape
    kr = np.fft.fftfreq(qr)  # cycles per pixel, signed
    kc = np.arange(qc // 2 + 1) / qc
    s = np.asarray(shifts, dtype=np.float64)
    ramp_r = np.exp(-2j * np.pi * s[:, :1] * kr[None, :]).astype(np.complex64)
    ramp_c = np.exp(-2j * np.pi * s[:, 1:] * kc[None, :]).astype(np.complex64)
    return ramp_r, ramp_c


def make_projector(name: str, geometry: ProjectionGeometry, *, device=None, oversampling=2.0,
                   max_chunk_bytes: int | None = None, engine: str | None = None, gridding: bool = True):
    """``"fst"`` -> :class:`FourierSliceProjector`, ``"linear"`` -> :class:`LinearProjector`."""
    if name == "fst":
        return FourierSliceProjector(geometry, oversampling, device=device, max_chunk_bytes=max_chunk_bytes,
                                     engine=engine, gridding=gridding)
    if name == "linear":
        return LinearProjector(geometry, device=device, engine=engine)
    raise InputError(f"projector must be one of {', '.join(PROJECTORS)}, got {name!r}")
