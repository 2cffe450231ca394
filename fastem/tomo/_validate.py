"""Argument checks at the public tomography functions: one-line :class:`InputError` naming the parameter."""

from __future__ import annotations

import math
import numbers

import numpy as np

from .. import backend
from ..errors import InputError

__all__ = ["as_array", "as_int", "as_float", "as_bool"]


def _describe(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def as_array(value, name: str, *, ndim=None, kinds: str = "biuf", allow_none: bool = False):
    """``value`` as a host NumPy array (CuPy arrays are copied), or ``None`` when allowed.

    Raises a one-line :class:`InputError` naming ``name`` for ``None``, ragged nested lists,
    non-numeric or complex values (``kinds``) and a rank other than ``ndim`` (int or tuple).
    """
    if value is None:
        if allow_none:
            return None
        raise InputError(f"{name} is required (an array), got None")
    if backend.is_cupy_array(value):
        value = backend.to_device(value, "cpu")
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be an array of numbers, got {type(value).__name__} "
                         f"({str(exc).splitlines()[0][:80]})") from None
    if arr.dtype.kind == "c" and "c" not in kinds:
        raise InputError(f"{name} must be real numbers, got complex values (dtype {arr.dtype}); take the real "
                         "part, modulus or phase first")
    if arr.dtype.kind not in kinds:
        raise InputError(f"{name} must be an array of real numbers, got {type(value).__name__} of dtype {arr.dtype}")
    if ndim is not None:
        allowed = tuple(ndim) if isinstance(ndim, (tuple, list)) else (int(ndim),)
        if arr.ndim not in allowed:
            want = " or ".join(f"{d}D" for d in allowed)
            raise InputError(f"{name} must be a {want} array, got shape {arr.shape}")
    return arr


def as_int(value, name: str, *, minimum: int | None = None) -> int:
    """An integer (no bool, no fractional float) of at least ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, numbers.Real)):
        raise InputError(f"{name} must be an integer, got {_describe(value)}")
    if isinstance(value, numbers.Integral):
        out = int(value)
    else:
        f = float(value)
        if not math.isfinite(f) or f != int(f):
            raise InputError(f"{name} must be an integer, got {_describe(value)}")
        out = int(f)
    if minimum is not None and out < minimum:
        raise InputError(f"{name} must be >= {minimum}, got {out}")
    return out


def as_float(value, name: str, *, positive: bool = False, minimum: float | None = None) -> float:
    """A finite float (``positive``: > 0; ``minimum``: >= it)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise InputError(f"{name} must be a number, got {_describe(value)}")
    out = float(value)
    if not math.isfinite(out):
        raise InputError(f"{name} must be a finite number, got {out}")
    if positive and out <= 0:
        raise InputError(f"{name} must be > 0, got {out}")
    if minimum is not None and out < minimum:
        raise InputError(f"{name} must be >= {minimum}, got {out}")
    return out


def as_bool(value, name: str) -> bool:
    """``True``/``False`` (or 0/1), nothing else."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral) and int(value) in (0, 1):
        return bool(value)
    raise InputError(f"{name} must be True or False, got {_describe(value)}")
