"""Synthetic coherent-diffraction data: noisy far-field intensities of a known object.

Model (``gps.md``, "Synthetic test data"; thesis section 2.4)::

    u       object embedded, centred, in the detector-sized array
    P       = |F u|^2 / sum |F u|^2                (F: unnormalised FFT, zero frequency centred)
    I       = Poisson(flux * P) + Normal(0, read_noise), negatives set to 0
    b       = sqrt(I),  b_true = sqrt(flux * P)
    R_noise = sum_known |b - b_true| / sum_known b_true        (thesis eq. 2.30)

``flux`` is the expected total photon count. Given a target ``r_noise`` instead, the flux is
found by bisection on ``log(flux)``; each trial uses the same seed, so the result is
deterministic. A beamstop removes a disc of radius ``beamstop_radius`` pixels around zero
frequency: those pixels are unknown (``known`` False, intensity 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..errors import InputError

__all__ = ["CDIData", "cdi_intensities", "embed_centred", "centred_fft_power", "r_noise_of"]


@dataclass
class CDIData:
    """Synthetic diffraction data and its ground truth (all arrays centred, zero frequency at
    ``shape // 2``).

    Attributes
    ----------
    intensities : ndarray, float64
        Noisy photon counts ``I`` (>= 0; 0 on unknown pixels).
    known : ndarray, bool
        False inside the beamstop disc.
    magnitudes : ndarray, float64
        ``b = sqrt(I)``, the measured Fourier magnitudes.
    b_true : ndarray, float64
        Noise-free magnitudes at the same flux, ``sqrt(flux * P)`` (on every pixel).
    support : ndarray, bool
        The true object's support (``object > 0``) dilated by ``support_dilation`` pixels.
    object : ndarray, float64
        The true object embedded in the full array.
    r_noise : float
        Achieved ``R_noise`` over known pixels (fraction, 0.06 = 6 %).
    flux : float
        Expected total photon count.
    read_noise : float
        Gaussian read-noise standard deviation (photons).
    seed : int or None
    """

    intensities: np.ndarray
    known: np.ndarray
    magnitudes: np.ndarray
    b_true: np.ndarray
    support: np.ndarray
    object: np.ndarray
    r_noise: float
    flux: float
    read_noise: float
    seed: object = None

    @property
    def mask(self) -> np.ndarray:
        """The CXI uint32 mask: 0x10 (shadowed, the beamstop) where not known."""
        from ..io.cxi import MASK_SHADOWED, mask_from_known

        return mask_from_known(self.known, MASK_SHADOWED)


def embed_centred(obj, shape) -> np.ndarray:
    """Zero-pad ``obj`` to ``shape`` so that its centre index ``n // 2`` lands on ``shape // 2``."""
    obj = np.asarray(obj)
    shape = tuple(int(s) for s in shape)
    if len(shape) != obj.ndim:
        raise InputError(f"shape {shape} has {len(shape)} axes but the object is {obj.ndim}D")
    if any(s < o for s, o in zip(shape, obj.shape)):
        raise InputError(f"shape {shape} is smaller than the object {obj.shape}")
    out = np.zeros(shape, dtype=obj.dtype)
    start = [s // 2 - o // 2 for s, o in zip(shape, obj.shape)]
    out[tuple(slice(b, b + o) for b, o in zip(start, obj.shape))] = obj
    return out


def centred_fft_power(u) -> np.ndarray:
    """``|F u|^2`` with the zero frequency at ``shape // 2`` (object centred at ``shape // 2`` too)."""
    spectrum = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(u)))
    return spectrum.real**2 + spectrum.imag**2


def r_noise_of(b, b_true, known) -> float:
    """``R_noise = sum_known |b - b_true| / sum_known b_true``."""
    denom = float(b_true[known].sum())
    return float(np.abs(b[known] - b_true[known]).sum() / denom) if denom > 0 else float("nan")


def _beamstop(shape, radius) -> np.ndarray:
    known = np.ones(shape, dtype=bool)
    if radius is None or radius <= 0:
        return known
    grids = np.meshgrid(*[np.arange(s) - s // 2 for s in shape], indexing="ij")
    known[sum(g.astype(np.float64) ** 2 for g in grids) <= float(radius) ** 2] = False
    return known


def _noisy(power, flux, read_noise, seed):
    rng = np.random.default_rng(seed)
    expected = flux * power
    counts = rng.poisson(expected).astype(np.float64)
    if read_noise > 0:
        counts += rng.normal(0.0, read_noise, size=counts.shape)
    np.maximum(counts, 0.0, out=counts)
    return counts, np.sqrt(expected)


def cdi_intensities(obj, *, r_noise: float | None = 0.06, flux: float | None = None, read_noise: float = 1.0,
                    beamstop_radius: float = 2, shape=None, support_dilation: int = 1, seed=0) -> CDIData:
    """Simulate noisy diffraction intensities of ``obj`` with a missing centre.

    Parameters
    ----------
    obj : array_like, 2D or 3D, real non-negative or complex
        The object (e.g. :func:`fastem.data.vesicle_2d`, or the complex
        :func:`fastem.data.complex_particle`), centred on ``n // 2``.
    r_noise : float, optional
        Target ``R_noise`` (fraction; 0.06 = 6 %) used to solve for the flux when ``flux`` is
        None. The achieved value (``CDIData.r_noise``) is within ~0.1 % (absolute) of it.
    flux : float, optional
        Expected total photon count; overrides ``r_noise``.
    read_noise : float
        Standard deviation of the additive Gaussian read noise (photons).
    beamstop_radius : float
        Pixels with distance <= this from the zero frequency are unknown (0 or None: none).
    shape : tuple, optional
        Detector shape; the object is zero-padded (centred) to it. Default ``obj.shape``.
    support_dilation : int
        The returned support is ``object > 0`` dilated by this many pixels (a slightly loose
        support, as used in practice; 0 = exact).
    seed : int or None
        Seed of the noise draws (``numpy.random.default_rng``).

    Returns
    -------
    CDIData
    """
    obj = np.asarray(obj)
    obj = obj.astype(np.complex128 if np.iscomplexobj(obj) else np.float64)
    if obj.ndim not in (2, 3):
        raise InputError(f"cdi_intensities: the object must be 2D or 3D, got shape {obj.shape}")
    if not np.all(np.isfinite(obj)) or (not np.iscomplexobj(obj) and obj.min() < 0):
        raise InputError("cdi_intensities: the object must be finite and (if real) non-negative")
    if not obj.any():
        raise InputError("cdi_intensities: the object is zero everywhere")
    u = embed_centred(obj, obj.shape if shape is None else shape)
    power = centred_fft_power(u)
    power /= power.sum()
    known = _beamstop(u.shape, beamstop_radius)

    if flux is None:
        if r_noise is None or not 0.0 < r_noise < 1.0:
            raise InputError(f"cdi_intensities: r_noise must lie in (0, 1), got {r_noise}")
        flux = _solve_flux(power, known, float(r_noise), float(read_noise), seed)
    elif flux <= 0:
        raise InputError(f"cdi_intensities: flux must be > 0, got {flux}")
    counts, b_true = _noisy(power, float(flux), float(read_noise), seed)
    counts[~known] = 0.0
    b = np.sqrt(counts)
    support = np.abs(u) > 0
    if support_dilation > 0:
        support = ndimage.binary_dilation(support, iterations=int(support_dilation))
    return CDIData(intensities=counts, known=known, magnitudes=b, b_true=b_true, support=support, object=u,
                   r_noise=r_noise_of(b, b_true, known), flux=float(flux), read_noise=float(read_noise), seed=seed)


def _solve_flux(power, known, target, read_noise, seed) -> float:
    """Bisection on log10(flux) for R_noise(flux) = target (R_noise falls as the flux grows)."""

    def rn(log_flux):
        counts, b_true = _noisy(power, 10.0**log_flux, read_noise, seed)
        return r_noise_of(np.sqrt(counts), b_true, known)

    lo, hi = 0.0, 16.0
    r_lo, r_hi = rn(lo), rn(hi)
    if not r_hi <= target <= r_lo:
        raise InputError(f"cdi_intensities: R_noise {target:.3g} is out of reach "
                         f"({r_hi:.3g} at 1e16 photons, {r_lo:.3g} at 1 photon)")
    best = (abs(r_lo - target), lo)
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        r = rn(mid)
        best = min(best, (abs(r - target), mid))
        if r > target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-4:
            break
    return 10.0 ** best[1]
