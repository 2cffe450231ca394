"""Figures of merit of phase retrieval (thesis eq. 2.21, 2.30, 2.31) and ambiguity removal.

Phase retrieval cannot tell an object from its integer translates (circular, on the FFT grid),
from its twin ``u(-x)`` (complex conjugate in Fourier space), or -- when intensities are in
arbitrary units -- from a scaled copy. :func:`align` removes translation and twin against a
reference by circular cross-correlation; :func:`r_real` additionally removes the scale
(least squares) before comparing with the ground truth.
"""

from __future__ import annotations

import numpy as np

from fastem.errors import InputError

__all__ = ["r_factor", "r_noise", "twin", "align", "r_real"]


def r_factor(image, magnitudes, known=None) -> float:
    """``R_F = sum_known | |F u| - b | / sum_known b`` (eq. 2.21).

    ``image`` and ``magnitudes`` in the same layout convention as each other: ``magnitudes``
    centred (zero frequency at the centre, as on disk) and ``image`` anywhere (the modulus of the
    transform does not depend on the image's position).
    """
    u = np.asarray(image, np.float64)
    b = np.asarray(magnitudes, np.float64)
    if u.shape != b.shape:
        raise InputError(f"r_factor: image {u.shape} and magnitudes {b.shape} differ in shape")
    k = np.ones(b.shape, bool) if known is None else np.asarray(known, bool)
    mag = np.fft.fftshift(np.abs(np.fft.fftn(u)))
    return float(np.sum(np.abs(mag - b)[k]) / np.sum(b[k]))


def r_noise(noisy, clean, known=None) -> float:
    """``R_noise = sum |b_noisy - b_true| / sum b_true`` over known pixels (eq. 2.30; all pixels
    when ``known`` is None). Same as :func:`fastem.data.r_noise_of`."""
    from fastem.data import r_noise_of

    bn, bt = np.asarray(noisy, np.float64), np.asarray(clean, np.float64)
    return r_noise_of(bn, bt, np.ones(bt.shape, bool) if known is None else np.asarray(known, bool))


def twin(image) -> np.ndarray:
    """The twin image ``u(-x)`` on the circular grid (index ``i -> -i mod N`` on every axis)."""
    u = np.asarray(image)
    for ax, n in enumerate(u.shape):
        u = np.take(u, (-np.arange(n)) % n, axis=ax)
    return u


def _best_shift(image, reference) -> tuple[float, tuple[int, ...]]:
    xc = np.fft.ifftn(np.fft.fftn(reference) * np.conj(np.fft.fftn(image))).real
    idx = np.unravel_index(int(np.argmax(xc)), xc.shape)
    return float(xc[idx]), tuple(int(i) for i in idx)


def align(image, reference) -> tuple[np.ndarray, tuple[int, ...], bool]:
    """Translate (circularly, integer pixels) and possibly flip ``image`` to best match ``reference``.

    Returns
    -------
    aligned : ndarray
        ``image`` or its twin, rolled by ``shift``.
    shift : tuple of int
    flipped : bool
        True when the twin matched better.
    """
    u = np.asarray(image, np.float64)
    ref = np.asarray(reference, np.float64)
    if u.shape != ref.shape:
        raise InputError(f"align: image {u.shape} and reference {ref.shape} differ in shape")
    best = None
    for flipped, cand in ((False, u), (True, twin(u))):
        peak, shift = _best_shift(cand, ref)
        if best is None or peak > best[0]:
            best = (peak, shift, flipped, cand)
    _, shift, flipped, cand = best
    return np.roll(cand, shift, axis=tuple(range(u.ndim))), shift, flipped


def r_real(image, truth, *, remove_ambiguities: bool = True, fit_scale: bool = True) -> float:
    """``R_real = sum |u - u_true| / sum u_true`` (eq. 2.31) after removing the ambiguities.

    Parameters
    ----------
    image, truth : ndarray, same shape (truth non-negative, not all zero)
    remove_ambiguities : bool
        Align ``image`` to ``truth`` (translation, twin) first.
    fit_scale : bool
        Scale ``image`` by the least-squares factor ``<u, u_true> / <u, u>`` first.
    """
    u = np.asarray(image, np.float64)
    t = np.asarray(truth, np.float64)
    if u.shape != t.shape:
        raise InputError(f"r_real: image {u.shape} and truth {t.shape} differ in shape")
    denom = float(np.sum(np.abs(t)))
    if not denom > 0:
        raise InputError("r_real: the ground truth is all zero")
    if remove_ambiguities:
        u = align(u, t)[0]
    if fit_scale:
        uu = float(np.sum(u * u))
        if uu > 0:
            u = u * (float(np.sum(u * t)) / uu)
    return float(np.sum(np.abs(u - t)) / denom)
