"""Plain float64 NumPy implementations: the test oracle and the "straightforward NumPy" peer.

Nothing here is fast; everything follows docs/tomo.md ("How it works") as literally
as possible:

* :func:`forward_project_linear` / :func:`back_project` -- explicit sub-points, each splatted or
  read bilinearly (the ``numpy`` engines of :func:`fastem.kernels.forward_project` /
  :func:`fastem.kernels.back_project`, in float64);
* :func:`forward_project_fst` -- the padded volume placed with ``ifftshift`` and divided by the
  trilinear kernel's apodization (gridding correction), a full complex 3D FFT, full complex central planes by trilinear interpolation (periodic grid, 0 outside
  ``|c| < P/2``; the planes' Nyquist row and column set to 0), complex inverse 2D FFTs,
  real part, centre crop. It shares only the grid
  sizes (:func:`fastem.tomo.operators.fst_grid`) with the fast path, which uses half spectra;
* :func:`resire` and :func:`sirt` -- the iterations, one line per equation.
"""

from __future__ import annotations

import numpy as np

from ..kernels.back_project import back_project as _back_project_kernel
from ..kernels.forward_project import forward_project as _forward_project_kernel
from .metrics import r_factor
from .operators import fst_grid
from .projection_geometry import ProjectionGeometry

__all__ = ["forward_project_linear", "back_project", "forward_project_fst", "resire", "sirt"]


def forward_project_linear(volume, geometry: ProjectionGeometry, subpoints: int = 4) -> np.ndarray:
    """``P_k(volume)`` for every projection, float64 (n, rows, cols)."""
    out = np.empty(geometry.projections_shape)
    return _forward_project_kernel(np.asarray(volume, dtype=np.float64), geometry.coefficients, out,
                                   subpoints=subpoints, engine="numpy")


def back_project(images, geometry: ProjectionGeometry, subpoints: int = 1) -> np.ndarray:
    """``sum_k B_k(images_k)``, float64 (nz, ny, nx)."""
    out = np.zeros(geometry.volume_shape)
    return _back_project_kernel(np.asarray(images, dtype=np.float64), geometry.coefficients, out,
                                subpoints=subpoints, engine="numpy")


def _trilinear_periodic(spectrum, c):
    """Trilinear interpolation of a periodic complex grid at index coordinates c = (cz, cy, cx)."""
    shape = spectrum.shape
    inside = np.ones(c[0].shape, dtype=bool)
    for a in range(3):
        inside &= np.abs(c[a]) < shape[a] / 2
    fl = [np.floor(ca) for ca in c]
    acc = np.zeros(c[0].shape, dtype=np.complex128)
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                d = (dz, dy, dx)
                w = np.ones(c[0].shape)
                idx = []
                for a in range(3):
                    frac = c[a] - fl[a]
                    w = w * (frac if d[a] else 1.0 - frac)
                    idx.append((fl[a].astype(np.int64) + d[a]) % shape[a])
                acc += w * spectrum[idx[0], idx[1], idx[2]]
    return np.where(inside, acc, 0.0)


def forward_project_fst(volume, geometry: ProjectionGeometry, oversampling=2.0, gridding: bool = True) -> np.ndarray:
    """The thesis' Fourier-slice forward projection, float64 (n, rows, cols).

    Centring as :class:`ProjectionGeometry`: the spectrum of the volume about its geometric
    middle ``(n-1)/2`` is the FFT of the ``ifftshift``-placed volume (origin ``n//2``) times
    ``exp(-2 pi i f.d)``, ``d = n//2 - (n-1)/2`` per axis, at every sampled frequency ``f``; the
    image of a plane has its origin at index 0 and is moved to the detector position of the
    axis, ``((rows-1)/2, center)``, by an integral crop and a phase ramp for the fraction.
    """
    vol = np.asarray(volume, dtype=np.float64)
    (pz, py, px), (qr, qc) = fst_grid(geometry.volume_shape, geometry.detector_shape, oversampling, geometry.rotations,
                                      abs(geometry.axis_offset) + max(geometry.max_shift))
    nz, ny, nx = vol.shape
    padded = np.zeros((pz, py, px))
    # centred placement: index i - n//2 sits at P//2 + (i - n//2), then ifftshift moves P//2 to 0
    padded[pz // 2 - nz // 2:pz // 2 - nz // 2 + nz, py // 2 - ny // 2:py // 2 - ny // 2 + ny,
           px // 2 - nx // 2:px // 2 - nx // 2 + nx] = vol
    if gridding:  # divide by the trilinear kernel's apodization sinc^2(t / P) on every interpolated axis
        for axis, p in enumerate((pz, py, px)):
            steps = np.concatenate([geometry.rotations[:, 0, 2 - axis] * p / qc, geometry.rotations[:, 1, 2 - axis] * p / qr])
            if np.all(np.abs(steps - np.round(steps)) < 1e-9):
                continue  # sampled on grid coordinates only: no interpolation along this axis
            shape = [1, 1, 1]
            shape[axis] = p
            padded /= (np.sinc((np.arange(p) - p // 2) / p) ** 2).reshape(shape)
    spectrum = np.fft.fftn(np.fft.ifftshift(padded))
    kv, ku = np.meshgrid(np.fft.fftfreq(qr, 1.0 / qr), np.fft.fftfreq(qc, 1.0 / qc), indexing="ij")
    rows, cols = geometry.detector_shape
    d = np.array([nx // 2 - (nx - 1) / 2, ny // 2 - (ny - 1) / 2, nz // 2 - (nz - 1) / 2])  # (x, y, z)
    cv, cu = (rows - 1) / 2, geometry.center
    mv, mu = int(np.floor(cv + 0.5)), int(np.floor(cu + 0.5))
    detector_ramp = np.exp(-2j * np.pi * (ku * (cu - mu) / qc + kv * (cv - mv) / qr))
    ri = (np.arange(rows) - mv) % qr
    ci = (np.arange(cols) - mu) % qc
    out = np.empty(geometry.projections_shape)
    for k, R in enumerate(geometry.rotations):
        f = ku[..., None] * R[0] / qc + kv[..., None] * R[1] / qr  # cycles per voxel, (x, y, z)
        c = (f[..., 2] * pz, f[..., 1] * py, f[..., 0] * px)
        plane = _trilinear_periodic(spectrum, c) * np.exp(-2j * np.pi * (f @ d)) * detector_ramp
        if geometry.shifts is not None:  # per-projection alignment shift (du, dv)
            du, dv = geometry.shifts[k]
            plane = plane * np.exp(-2j * np.pi * (ku * du / qc + kv * dv / qr))
        plane[(kv == -qr // 2) | (ku == -qc // 2)] = 0  # Nyquist row and column (both even)
        image = np.fft.ifft2(plane).real  # the axis at index (0, 0)
        out[k] = image[ri][:, ci]
    return out


def resire(projections, geometry: ProjectionGeometry, iterations: int, *, step: float = 2.0, projector: str = "linear",
           oversampling=2.0, mask=None, positivity: bool = True, support=None, voxel_steps: bool = False):
    """Float64 RESIRE: ``O <- max(O - step/(n N_z) * sum_k B_k((P_k O - b_k) M_k), 0)``.

    ``voxel_steps``: the step times ``sum_k B_k(1) / max(sum_k B_k(M_k), g)`` per voxel
    (``g = 1e-3 * max``), scaled down so that ``max_v (w B(M P 1))_v <= max_v B(M P 1)_v``
    (:class:`fastem.tomo.Resire`'s ``step_normalisation="voxel"``).

    Returns ``(volume, r_factors)``, ``r_factors[i]`` the R-factor of the iterate entering
    iteration i, and one more entry for the final volume.
    """
    b = np.asarray(projections, dtype=np.float64)
    m = np.ones(b.shape) if mask is None else np.asarray(mask, dtype=np.float64)
    b = b * (m != 0)
    vol = np.zeros(geometry.volume_shape)
    dt = step / (geometry.n_projections * geometry.beam_length)
    sub = 4 if projector == "linear" else 1

    def project(o):
        if projector == "linear":
            return forward_project_linear(o, geometry)
        return forward_project_fst(o, geometry, oversampling)

    if voxel_steps:
        counts = back_project(m, geometry, subpoints=sub)
        w = back_project(np.ones(b.shape), geometry, subpoints=sub) / np.maximum(counts, 1e-3 * counts.max())
        reach = back_project(project(np.ones(geometry.volume_shape)) * m, geometry, subpoints=sub)
        w = w * min(1.0, reach.max() / (w * reach).max())  # Collatz-Wielandt bound kept at the scalar step's
        dt = dt * w

    history = []
    for _ in range(iterations):
        p = project(vol)
        history.append(r_factor(p, b, m != 0))
        vol = vol - dt * back_project((p - b) * m, geometry, subpoints=sub)
        if support is not None:
            vol = np.where(support, vol, 0.0)
        if positivity:
            vol = np.maximum(vol, 0.0)
    history.append(r_factor(project(vol), b, m != 0))
    return vol, np.asarray(history)


def sirt(projections, geometry: ProjectionGeometry, iterations: int, *, mask=None, positivity: bool = False,
         guard: float = 1e-3):
    """Float64 SIRT on the linear pair: ``O <- O + C A^T R (b - A O)``, ``R = M / max(A 1, g)``,
    ``C = 1 / max(A^T M, g')`` (``g = guard * max``); returns ``(volume, r_factors)``."""
    b = np.asarray(projections, dtype=np.float64)
    m = np.ones(b.shape) if mask is None else np.asarray(mask, dtype=np.float64)
    b = b * (m != 0)
    row = forward_project_linear(np.ones(geometry.volume_shape), geometry)
    R = m / np.maximum(row, guard * row.max())
    col = back_project(m, geometry, subpoints=4)
    C = 1.0 / np.maximum(col, guard * col.max())
    vol = np.zeros(geometry.volume_shape)
    history = []
    for _ in range(iterations):
        p = forward_project_linear(vol, geometry)
        history.append(r_factor(p, b, R != 0))
        vol = vol + C * back_project(R * (b - p), geometry, subpoints=4)
        if positivity:
            vol = np.maximum(vol, 0.0)
    history.append(r_factor(forward_project_linear(vol, geometry), b, R != 0))
    return vol, np.asarray(history)
