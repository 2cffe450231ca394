"""Validated phase-retrieval data, laid out once for the iteration (spec ``gps.md`` "Conventions").

Data arrive in the on-disk convention (zero frequency at the array centre, object centred in
real space). :func:`prepare_problem` checks them, takes ``b = sqrt(I)``, and shifts ``b``, the
``known`` mask and the support to FFT layout ONCE (``ifftshift``), so the iteration never shifts.
Results are shifted back (``fftshift``) on the way out.

Bad input (documented handling):

* non-finite intensities: :class:`~fastem.errors.InputError` naming how many and the first index
  (mark them unknown in the mask if they are bad pixels);
* negative intensities (background subtraction, read noise): set to 0 with a warning;
* shape mismatch between intensities, mask and support: :class:`~fastem.errors.InputError`;
* support larger than half the array, or empty: :class:`~fastem.errors.InputError`
  (:func:`fastem.phase.support.check_support`);
* no known pixel, or all known intensities zero: :class:`~fastem.errors.InputError`;
* complex intensities (measured intensities are real: pass ``abs(field)**2``), non-numeric data,
  a mask that is not boolean/numeric: :class:`~fastem.errors.InputError` naming the parameter;
* magnitudes too large or too small for the iteration's precision (e.g. intensities of 1e300,
  or above ~1e19 in single precision, whose squares overflow): the magnitudes are scaled
  internally by a power of two (:attr:`PhaseProblem.magnitude_scale`; exact, and every
  algorithm is positively homogeneous in the magnitudes) and the images are scaled back, so the
  results are those of the unscaled problem in the data's units.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from numbers import Real
from typing import Any

import numpy as np

from fastem import backend
from fastem.errors import InputError
from fastem.io.validate import DataWarning
from fastem.kernels.phase_rfactor import half_spectrum_weights

from .support import autocorrelation_support, check_support

__all__ = ["PhaseProblem", "prepare_problem", "problem_from_host"]


@dataclass
class PhaseProblem:
    """Data of one phase-retrieval problem on one device (built by :func:`prepare_problem`).

    Attributes
    ----------
    shape : tuple of int
        The grid (2D or 3D).
    dtype : numpy dtype
        complex64 or complex128: the precision of the iteration.
    magnitudes, known, support : ndarray
        Host copies in the on-disk (centred) layout: ``b = sqrt(I)`` float64, bool, bool.
    bk : device array, ``shape``, real dtype
        ``b`` on known pixels and ``-1`` on unknown ones, FFT layout.
    bh, bm : device arrays
        Half-spectrum weights for the R-factor kernel (:func:`fastem.kernels.rfactor_half`).
    support_fft : ndarray bool
        The support in FFT layout (host).
    sum_b : float
        ``sum_known b`` in the internal units (the R-factor denominator).
    support_estimated : bool
        True when the support came from the autocorrelation.
    magnitude_scale : float
        A power of two: the iteration runs on ``b * magnitude_scale`` (``bk``, ``bh``, ``bm``,
        ``sum_b``); 1 unless the magnitudes would overflow or underflow the iteration's precision.
        Images in the data's units are the internal ones divided by it. ``magnitudes`` are unscaled.
    """

    shape: tuple
    dtype: np.dtype
    device: backend.Device
    magnitudes: np.ndarray
    known: np.ndarray
    support: np.ndarray
    bk: Any
    bh: Any
    bm: Any
    support_fft: np.ndarray
    sum_b: float
    support_estimated: bool = False
    notes: list = field(default_factory=list)
    magnitude_scale: float = 1.0

    @property
    def rdtype(self) -> np.dtype:
        return np.dtype(np.float32) if self.dtype == np.complex64 else np.dtype(np.float64)

    @property
    def npix(self) -> int:
        return int(np.prod(self.shape))

    def host_data(self) -> dict:
        """The host arrays and settings this problem is built from (picklable: what a remote
        worker needs to rebuild it with :func:`problem_from_host`)."""
        return {"magnitudes": self.magnitudes, "known": self.known, "support": self.support,
                "dtype": np.dtype(self.dtype).str, "support_estimated": bool(self.support_estimated)}

    def to_device(self, array, dtype=None):
        """A C-contiguous copy (never a view) of a host array on this problem's device."""
        a = np.array(array, dtype=dtype, order="C", copy=True)
        return backend.to_device(a, self.device) if self.device.is_gpu else a


def _first_index(mask: np.ndarray) -> tuple:
    return tuple(int(i) for i in np.argwhere(mask)[0])


#: the largest magnitude ``max b`` (data units) the iteration takes without rescaling, per precision:
#: squares of Fourier sums of ``N`` such values stay far below the largest float (and far above
#: the smallest normal one for the lower bound)
_SAFE_EXPONENT = {np.dtype(np.float32): 32, np.dtype(np.float64): 256}


def magnitude_scale(bmax: float, rdtype) -> float:
    """The power of two the magnitudes are multiplied by inside the iteration: 1 when ``bmax``
    lies in ``[2**-e, 2**e]`` (``e`` = 32 single, 256 double precision), else ``2**-k`` with
    ``bmax * 2**-k`` in ``[1, 2)``."""
    e = _SAFE_EXPONENT[np.dtype(rdtype)]
    if not (bmax > 0 and math.isfinite(bmax)) or 2.0**-e <= bmax <= 2.0**e:
        return 1.0
    return math.ldexp(1.0, -math.frexp(bmax)[1] + 1)


def _as_real_array(value, name: str) -> np.ndarray:
    """``value`` as a NumPy array of real numbers, or a one-line error naming ``name``."""
    if value is None:
        raise InputError(f"{name} must be an array, got None")
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be a numeric array, got {type(value).__name__} ({exc})") from None
    if arr.dtype.kind == "c":
        raise InputError(f"{name} must be real (measured intensities are |F|^2), got dtype {arr.dtype}; pass "
                         f"abs(field)**2 for a complex field")
    if arr.dtype.kind not in "iuf":
        raise InputError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    return arr


def prepare_problem(intensities, known=None, support=None, *, dtype=np.complex64, device: Any = None,
                    support_threshold: float = 0.005, where: str = "intensities",
                    support_mode: str = "auto") -> PhaseProblem:
    """Validate and lay out the data of a phase-retrieval problem.

    Parameters
    ----------
    intensities : array_like, 2D or 3D, real
        Diffraction intensities (photon counts), zero frequency at the array centre.
    known : array_like of bool, same shape, optional
        True where the intensity was measured (default: everywhere).
    support : array_like of bool, same shape, optional
        Real-space support, object centred; estimated from the autocorrelation when omitted.
    dtype : complex64 or complex128
        Precision of the iteration.
    device : Device or str, optional
        Where to iterate (default: the global setting).
    support_threshold : float
        Relative threshold of the autocorrelation support estimate, in ``(0, 1)``.
    support_mode : {"auto", "full", "half"}
        How the support is estimated when ``support`` is None
        (:func:`fastem.phase.support.autocorrelation_support`; "auto": the full autocorrelation
        support when it covers at most half of the array -- it contains a translate of any
        object, for shrink-wrap to refine -- else the half-scaled one).
    where : str
        Name of the data in error messages (e.g. ``"in.cxi:/entry_1/data_1/data"``).

    Raises
    ------
    InputError
        One line naming the parameter (or ``where``) and the problem; see the module docstring.
    """
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise InputError(f"dtype must be complex64 or complex128, got {dtype!r}") from None
    if dtype not in (np.complex64, np.complex128):
        raise InputError(f"dtype must be complex64 or complex128, got {dtype}")
    if not isinstance(where, str):
        raise InputError(f"where must be a string, got {type(where).__name__}")
    if isinstance(support_threshold, bool) or not isinstance(support_threshold, Real) \
            or not 0 < float(support_threshold) < 1:
        raise InputError(f"support_threshold must be a number in (0, 1), got {support_threshold!r}")
    inten = _as_real_array(intensities, where)
    if inten.ndim not in (2, 3):
        raise InputError(f"{where}: expected a 2D or 3D array, got shape {inten.shape}")
    if min(inten.shape) < 4:
        raise InputError(f"{where}: array {inten.shape} too small (every side must be >= 4)")
    inten = inten.astype(np.float64)
    if known is None:
        known_arr = np.ones(inten.shape, bool)
    else:
        if known is not None and not hasattr(known, "shape") and not isinstance(known, (list, tuple)):
            raise InputError(f"mask (known) must be a boolean array, got {type(known).__name__}")
        known_arr = np.asarray(known)
        if known_arr.dtype.kind not in "biuf":
            raise InputError(f"mask (known) must be a boolean array, got dtype {known_arr.dtype}")
        if known_arr.shape != inten.shape:
            raise InputError(f"mask: shape {known_arr.shape} does not match {where} {inten.shape}")
        if known_arr.dtype.kind == "f" and not np.isfinite(known_arr).all():
            raise InputError("mask (known) holds non-finite values; give a boolean array")
        known_arr = known_arr.astype(bool)
    bad = ~np.isfinite(inten) & known_arr
    if bad.any():
        raise InputError(f"{where}: {int(bad.sum())} non-finite intensit{'y' if bad.sum() == 1 else 'ies'} on measured "
                         f"pixels (first at index {_first_index(bad)}); mark them unknown in the mask")
    inten = np.where(known_arr, inten, 0.0)
    neg = inten < 0
    if neg.any():
        warnings.warn(f"{where}: {int(neg.sum())} negative intensities set to 0 (min {inten.min():.3g})", DataWarning,
                      stacklevel=2)
        inten = np.maximum(inten, 0.0)
    if not known_arr.any():
        raise InputError(f"{where}: no measured pixel (the mask marks every pixel unknown)")
    b = np.sqrt(inten)
    sum_b = float(b[known_arr].sum())
    if not sum_b > 0:
        raise InputError(f"{where}: all measured intensities are zero")
    estimated = support is None
    if estimated:
        # the estimate is relative (scale-free): feed it intensities in a range whose FFT cannot overflow
        scale = magnitude_scale(float(b.max()), np.float64)
        supp = autocorrelation_support(inten * (scale * scale) if scale != 1.0 else inten, known_arr,
                                       threshold=support_threshold, mode=support_mode)
        supp = check_support(supp, inten.shape, where="estimated support")
    else:
        supp = check_support(support, inten.shape)
    return _build(b, known_arr, supp, dtype, device, estimated)


def problem_from_host(data: dict, device: Any = None) -> PhaseProblem:
    """Rebuild a :class:`PhaseProblem` from :meth:`PhaseProblem.host_data` on ``device`` (no
    validation: the data were validated when first prepared). Identical arrays, so identical
    iterates."""
    return _build(np.asarray(data["magnitudes"]), np.asarray(data["known"], bool), np.asarray(data["support"], bool),
                  np.dtype(data["dtype"]), device, bool(data.get("support_estimated", False)))


def _build(b, known_arr, supp, dtype, device, estimated) -> PhaseProblem:
    """Lay out validated host data (``b`` float64, ``known``, ``supp``: centred) on ``device``."""
    dev = backend.resolve_device(device)
    rdt = np.float32 if dtype == np.complex64 else np.float64
    scale = magnitude_scale(float(np.max(b, where=known_arr, initial=0.0)), rdt)
    bs = b * scale if scale != 1.0 else b  # a power of two: exact
    if scale != 1.0:
        import warnings

        from ..io.validate import DataWarning

        warnings.warn(f"intensities: magnitudes up to {float(np.max(b)):.3g} are outside the safe range of "
                      f"{np.dtype(rdt).name} arithmetic; computing on them scaled by 2^{int(np.log2(scale))} "
                      f"(exact) and scaling the images back", DataWarning, stacklevel=3)
    sum_b = float(bs[known_arr].sum())
    bk_host = np.fft.ifftshift(np.where(known_arr, bs, -1.0)).astype(rdt)
    bh, bm = half_spectrum_weights(bk_host)
    prob = PhaseProblem(shape=tuple(b.shape), dtype=dtype, device=dev, magnitudes=b, known=known_arr,
                        support=supp, bk=None, bh=None, bm=None, support_fft=np.fft.ifftshift(supp),
                        sum_b=sum_b, support_estimated=estimated, magnitude_scale=scale)
    prob.bk = prob.to_device(bk_host)
    prob.bh = prob.to_device(bh)
    prob.bm = prob.to_device(bm)
    return prob
