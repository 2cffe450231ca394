"""Figures of merit of phase retrieval (thesis eq. 2.21, 2.30, 2.31) and ambiguity removal.

Phase retrieval cannot tell an object from its integer translates (circular, on the FFT grid),
from its twin ``u(-x)`` (complex conjugate in Fourier space), or -- when intensities are in
arbitrary units -- from a scaled copy. :func:`align` removes translation and twin against a
reference by circular cross-correlation; :func:`r_real` additionally removes the scale
(least squares) before comparing with the ground truth.

A complex-valued object has one more ambiguity, a constant phase factor ``e^{i phi}``, and its
twin is ``conj(u(-x))``: for complex images :func:`align` picks the translation and twin by the
modulus of the cross-correlation and removes the constant phase, and :func:`r_real` fits a
complex scale (which absorbs the phase).
"""

from __future__ import annotations

import numpy as np

from fastem.errors import InputError
from fastem.io.validate import as_numeric_array

__all__ = ["r_factor", "r_noise", "twin", "align", "r_real", "as_image"]


def as_image(value, name: str, func: str, *, complex_ok: bool = False, ndim=(2, 3)) -> np.ndarray:
    """``value`` as a 2D or 3D float64 (or complex128 with ``complex_ok``) array, else a one-line
    :class:`~fastem.errors.InputError` naming ``func`` and the parameter ``name``.

    Refuses ``None``, strings, ragged or object arrays, complex values (unless ``complex_ok``),
    non-numeric dtypes and other ranks; nested lists of numbers are accepted (array-like).
    """
    ranks = " or ".join(f"{n}D" for n in ndim)
    arr = as_numeric_array(value, f"{func}: {name}", expected=f"a {ranks} numeric array")
    kind = arr.dtype.kind
    if kind == "c" and not complex_ok:
        raise InputError(f"{func}: {name} is complex (dtype {arr.dtype}); pass a real image (e.g. its real part "
                         f"or modulus)")
    if arr.ndim not in ndim:
        raise InputError(f"{func}: {name} must be a {ranks} array, got shape {arr.shape}")
    return arr.astype(np.complex128 if kind == "c" else np.float64, copy=False)


def _known(known, shape, func: str):
    if known is None:
        return np.ones(shape, bool)
    k = as_numeric_array(known, f"{func}: known", kinds="biuf", expected="a boolean array")
    if k.shape != tuple(shape):
        raise InputError(f"{func}: known has shape {k.shape}, expected {tuple(shape)}")
    return k.astype(bool)


def r_factor(image, magnitudes, known=None) -> float:
    """``R_F = sum_known | |F u| - b | / sum_known b`` (eq. 2.21).

    ``image`` and ``magnitudes`` in the same layout convention as each other: ``magnitudes``
    centred (zero frequency at the centre, as on disk) and ``image`` anywhere (the modulus of the
    transform does not depend on the image's position).
    """
    u = as_image(image, "image", "r_factor", complex_ok=True)
    b = as_image(magnitudes, "magnitudes", "r_factor")
    if u.shape != b.shape:
        raise InputError(f"r_factor: image {u.shape} and magnitudes {b.shape} differ in shape")
    k = _known(known, b.shape, "r_factor")
    denom = float(np.sum(b[k]))
    if not denom > 0 or not np.isfinite(denom):
        raise InputError(f"r_factor: magnitudes must be finite with a positive sum over the known pixels, got sum "
                         f"{denom:g}")
    mag = np.fft.fftshift(np.abs(np.fft.fftn(u)))
    return float(np.sum(np.abs(mag - b)[k]) / denom)


def r_noise(noisy, clean, known=None) -> float:
    """``R_noise = sum |b_noisy - b_true| / sum b_true`` over known pixels (eq. 2.30; all pixels
    when ``known`` is None); ``nan`` when that sum is not positive. The same formula as
    :func:`fastem.data.r_noise_of`, which the synthetic-data generator records; written here so
    that this library module does not import the synthetic-data package (issue 18).
    """
    bn, bt = np.asarray(noisy, np.float64), np.asarray(clean, np.float64)
    k = np.ones(bt.shape, bool) if known is None else np.asarray(known, bool)
    denom = float(bt[k].sum())
    return float(np.abs(bn[k] - bt[k]).sum() / denom) if denom > 0 else float("nan")


def twin(image) -> np.ndarray:
    """The twin image on the circular grid (index ``i -> -i mod N`` on every axis): ``u(-x)``,
    and ``conj(u(-x))`` for a complex image (the object with the same Fourier modulus)."""
    u = np.asarray(image)
    for ax, n in enumerate(u.shape):
        u = np.take(u, (-np.arange(n)) % n, axis=ax)
    return np.conj(u) if np.iscomplexobj(u) else u


def _best_shift(image, reference) -> tuple[float, tuple[int, ...], complex]:
    """``(peak, shift, phase)``: the circular shift maximising the cross-correlation (its real
    part for real images, its modulus for complex ones, with the unit ``phase`` factor that
    best aligns the shifted image to ``reference``)."""
    xc = np.fft.ifftn(np.fft.fftn(reference) * np.conj(np.fft.fftn(image)))
    if np.iscomplexobj(image) or np.iscomplexobj(reference):
        mag = np.abs(xc)
        idx = np.unravel_index(int(np.argmax(mag)), xc.shape)
        peak = float(mag[idx])
        return peak, tuple(int(i) for i in idx), (complex(xc[idx]) / peak if peak > 0 else 1.0 + 0j)
    xc = xc.real
    idx = np.unravel_index(int(np.argmax(xc)), xc.shape)
    return float(xc[idx]), tuple(int(i) for i in idx), 1.0 + 0j


def align(image, reference) -> tuple[np.ndarray, tuple[int, ...], bool]:
    """Translate (circularly, integer pixels) and possibly flip ``image`` to best match ``reference``.

    Complex images (either argument complex) are also multiplied by the constant phase factor
    that best matches ``reference``; their twin is ``conj(u(-x))``.

    Returns
    -------
    aligned : ndarray
        ``image`` or its twin, rolled by ``shift`` (complex: times the phase factor).
    shift : tuple of int
    flipped : bool
        True when the twin matched better.
    """
    u = as_image(image, "image", "align", complex_ok=True)
    ref = as_image(reference, "reference", "align", complex_ok=True)
    if u.shape != ref.shape:
        raise InputError(f"align: image {u.shape} and reference {ref.shape} differ in shape")
    if np.iscomplexobj(ref) and not np.iscomplexobj(u):
        u = u.astype(np.complex128)
    best = None
    for flipped, cand in ((False, u), (True, twin(u))):
        peak, shift, phase = _best_shift(cand, ref)
        if best is None or peak > best[0]:
            best = (peak, shift, flipped, cand, phase)
    _, shift, flipped, cand, phase = best
    out = np.roll(cand, shift, axis=tuple(range(u.ndim)))
    if np.iscomplexobj(out):
        out = out * phase
    return out, shift, flipped


def r_real(image, truth, *, remove_ambiguities: bool = True, fit_scale: bool = True) -> float:
    """``R_real = sum |u - u_true| / sum u_true`` (eq. 2.31) after removing the ambiguities.

    Parameters
    ----------
    image, truth : ndarray, same shape (truth not all zero; complex for a complex object)
    remove_ambiguities : bool
        Align ``image`` to ``truth`` (translation, twin; for complex images also the constant
        phase) first.
    fit_scale : bool
        Scale ``image`` by the least-squares factor ``<u, u_true> / <u, u>`` first (complex for
        complex images: it absorbs a constant phase).
    """
    u = as_image(image, "image", "r_real", complex_ok=True)
    t = as_image(truth, "truth", "r_real", complex_ok=True)
    if u.shape != t.shape:
        raise InputError(f"r_real: image {u.shape} and truth {t.shape} differ in shape")
    denom = float(np.sum(np.abs(t)))
    if not denom > 0 or not np.isfinite(denom):
        raise InputError(f"r_real: truth must be finite and not all zero (sum |truth| = {denom:g})")
    if remove_ambiguities:
        u = align(u, t)[0]
    if fit_scale and (np.iscomplexobj(u) or np.iscomplexobj(t)):
        uu = float(np.vdot(u, u).real)
        if uu > 0:
            u = u * (np.vdot(u, t) / uu)
    elif fit_scale:
        uu = float(np.sum(u * u))
        if uu > 0:
            u = u * (float(np.sum(u * t)) / uu)
    return float(np.sum(np.abs(u - t)) / denom)
