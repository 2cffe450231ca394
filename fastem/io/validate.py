"""Validation at the boundary: rank, shape, finiteness and angle units, with one-line errors.

Used by every domain (phase retrieval, tomography, clustering, scanning) on the arrays it
reads, so that bad input fails early with a message naming what and where, e.g.::

    data.h5:/exchange/data: 7 non-finite values (NaN 7) in 2 of 41 projections
    (projection 3: 5, projection 17: 2), first at index (3, 10, 12); refusing to continue ...
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping

import numpy as np

from ..errors import InputError

__all__ = [
    "DataWarning",
    "check_finite",
    "check_ndim",
    "check_same_shape",
    "angles_to_degrees",
    "angle_units",
    "require_finite_result",
    "as_numeric_array",
]

#: |angle| below this bound (radians, a little above pi) with no ``units`` attribute looks like radians
_RADIAN_BOUND = np.pi + 1e-3
_RADIAN_WORDS = {"rad", "rads", "radian", "radians"}
_DEGREE_WORDS = {"deg", "degs", "degree", "degrees", "°"}


class DataWarning(UserWarning):
    """Suspicious but usable input (non-finite values replaced, angles that look like radians)."""


def _warn(message: str) -> None:
    warnings.warn(message, DataWarning, stacklevel=3)


def as_numeric_array(value, what: str, *, kinds: str = "biufc", expected: str = "a numeric array", xp=np):
    """``value`` as an array of ``xp`` (NumPy default; CuPy for device arrays), or a one-line error.

    Refuses ``None``, text, objects that are not arrays (ragged lists, ...) and dtypes whose kind
    is not in ``kinds`` (``"biufc"``: bool, ints, floats, complex; ``"biuf"`` for real masks), with
    ``what`` (the parameter name and its role) and ``expected`` in the message, e.g.
    ``array must be a 2D or 3D numeric array, got dtype <U3``. No copy when ``value`` already is one.
    """
    if value is None or isinstance(value, (str, bytes)):
        raise InputError(f"{what} must be {expected}, got {type(value).__name__}")
    try:
        arr = xp.asarray(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what} must be {expected} ({str(exc).splitlines()[0]})") from None
    if arr.dtype.kind not in kinds:
        raise InputError(f"{what} must be {expected}, got dtype {arr.dtype}")
    return arr


def check_ndim(arr, ndim, what: str = "array"):
    """Return ``arr`` if its rank is ``ndim`` (an int or a tuple of accepted ranks).

    Raises :class:`~fastem.errors.InputError` ``"<what>: expected a 3D array, got shape (4, 5)"``.
    """
    try:
        allowed = tuple(int(n) for n in ndim) if isinstance(ndim, (tuple, list, set)) else (int(ndim),)
    except (TypeError, ValueError):
        raise InputError(f"ndim must be an int or a tuple of ints, got {ndim!r}") from None
    if np.ndim(arr) not in allowed:
        from .hdf5 import rank_text

        raise InputError(f"{what}: expected a {rank_text(allowed)} array, got shape {tuple(np.shape(arr))}")
    return arr


def check_same_shape(a, b, names=("a", "b")):
    """Raise :class:`~fastem.errors.InputError` unless ``a`` and ``b`` have the same shape."""
    sa, sb = tuple(np.shape(a)), tuple(np.shape(b))
    if sa != sb:
        raise InputError(f"{names[0]} has shape {sa} but {names[1]} has shape {sb}; they must match")


def check_finite(arr, what: str = "array", *, policy: str = "error", frame_label: str = "frame",
                 frame_axis: int | None = None):
    """Check an array for NaN / inf values and apply ``policy``.

    Parameters
    ----------
    arr : numpy or cupy array
    what : str
        What the array is, for the message (``"data.h5:/exchange/data"``).
    policy : {"error", "zero", "ignore"}
        ``"error"``: raise :class:`~fastem.errors.InputError`; ``"zero"``: return a copy with
        the non-finite values set to 0 (a :class:`DataWarning` says how many); ``"ignore"``:
        return ``arr`` unchanged with a warning.
    frame_label : str
        The name of one slice along ``frame_axis`` (``"projection"``, ``"pattern"``) for the
        per-frame counts.
    frame_axis : int, optional
        Axis along which to count per frame; default axis 0 for arrays of rank >= 3, none else.

    Returns
    -------
    array
        ``arr`` itself when everything is finite (no copy).

    Notes
    -----
    The message gives the number of non-finite values (NaN / +-inf split), where the first is,
    the per-frame counts for stacks (up to 8 frames listed) and what happens next.
    """
    if policy not in ("error", "zero", "ignore"):
        raise InputError(f"policy must be 'error', 'zero' or 'ignore', got {policy!r}")
    if not (hasattr(arr, "dtype") and hasattr(arr, "shape")):
        raise InputError(f"{what}: expected a NumPy or CuPy array, got {type(arr).__name__}")
    from ..backend import get_array_module, to_device

    xp = get_array_module(arr)
    if not (xp.issubdtype(arr.dtype, xp.floating) or xp.issubdtype(arr.dtype, xp.complexfloating)):
        return arr
    bad = ~xp.isfinite(arr)
    count = int(bad.sum())
    if count == 0:
        return arr
    bad_host = to_device(bad, "cpu")
    n_nan = int(np.isnan(to_device(arr, "cpu")).sum())
    kinds = []
    if n_nan:
        kinds.append(f"NaN {n_nan}")
    if count - n_nan:
        kinds.append(f"inf {count - n_nan}")
    first = tuple(int(i) for i in np.argwhere(bad_host)[0])
    first_text = f"first at index {first}" if len(first) != 1 else f"first at index {first[0]}"
    parts = [f"{what}: {count} non-finite value{'s' if count != 1 else ''} ({', '.join(kinds)}) of {bad_host.size}"]
    axis = frame_axis if frame_axis is not None else (0 if bad_host.ndim >= 3 else None)
    if axis is not None:
        other = tuple(i for i in range(bad_host.ndim) if i != axis)
        per = bad_host.sum(axis=other)
        frames = np.flatnonzero(per)
        listed = ", ".join(f"{frame_label} {int(k)}: {int(per[k])}" for k in frames[:8])
        more = f", ... {len(frames) - 8} more" if len(frames) > 8 else ""
        parts.append(f"in {len(frames)} of {per.size} {frame_label}s ({listed}{more})")
    parts.append(first_text)
    head = " ".join(parts[:-1]) + ", " + parts[-1]
    if policy == "error":
        raise InputError(f"{head}; refusing to continue (fix or mask those values)")
    if policy == "zero":
        _warn(f"{head}; they are set to 0")
        out = arr.copy()
        out[bad] = 0
        return out
    _warn(f"{head}; they are left as they are")
    return arr


def _attr_text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)[0] if value.size else ""
        return _attr_text(value)
    return str(value).strip().lower()


def angle_units(attrs: Mapping | None) -> str | None:
    """``"radians"``, ``"degrees"`` or ``None`` (no ``units`` attribute) from HDF5 attributes.

    Raises :class:`~fastem.errors.InputError` for any other ``units`` value.
    """
    if not attrs or "units" not in attrs:
        return None
    text = _attr_text(attrs["units"])
    if text in _RADIAN_WORDS:
        return "radians"
    if text in _DEGREE_WORDS:
        return "degrees"
    raise InputError(f"unknown angle units {text!r}: expected 'degrees' or 'radians'")


def angles_to_degrees(values, attrs: Mapping | None = None, *, what: str = "angles") -> np.ndarray:
    """Return angles in degrees (float64), honouring a ``units`` attribute.

    Parameters
    ----------
    values : array_like
        The angles as stored.
    attrs : mapping, optional
        The dataset's attributes (``h5py`` ``.attrs`` or a dict). ``units`` = ``"radians"``
        (``rad``) converts; ``"degrees"`` (``deg``) or no ``units`` keeps the values.
    what : str
        Names the dataset in messages.

    Notes
    -----
    Angles documented as degrees may exceed 2*pi (that is normal). When there is no ``units``
    attribute and every |angle| <= pi while the set spans more than 0.5, the values look like
    radians: a :class:`DataWarning` says so, and they are still taken as degrees (add
    ``units="radians"`` to the dataset to convert them).

    Raises
    ------
    InputError
        Non-finite angles, or an unknown ``units`` value.
    """
    try:
        a = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{what}: angles must be numbers, got {type(values).__name__}") from None
    if a.size and not np.all(np.isfinite(a)):
        bad = np.flatnonzero(~np.isfinite(a.reshape(-1)))
        raise InputError(f"{what}: {bad.size} non-finite angle(s), first at flat index {int(bad[0])}")
    try:
        units = angle_units(attrs)
    except InputError as exc:
        raise InputError(f"{what}: {exc}") from None
    if units == "radians":
        return np.rad2deg(a)
    if units is None and a.size > 1:
        span = float(a.max() - a.min())
        if float(np.abs(a).max()) <= _RADIAN_BOUND and span > 0.5:
            _warn(f"{what}: all {a.size} angles lie within +-pi (span {span:.3g}) and there is no units "
                  "attribute: they look like radians but are taken as degrees (set units='radians' to convert)")
    return a


def require_finite_result(arr, what: str, *, hint: str = "") -> None:
    """Raise :class:`~fastem.errors.NonFiniteResultError` if ``arr`` holds NaN or inf.

    Called on every result before it is written: a diverged computation fails with a message
    saying what diverged (``what``) and what to try (``hint``) instead of writing garbage with
    exit status 0.
    """
    from ..backend import get_array_module
    from ..errors import NonFiniteResultError

    if arr is None:
        return
    xp = get_array_module(arr)
    a = xp.asarray(arr)
    if a.dtype.kind not in "fc":
        return
    bad = int((~xp.isfinite(a)).sum())
    if bad:
        msg = f"{what}: the computation diverged ({bad} of {a.size} values are NaN or inf); nothing was written"
        if hint:
            msg += f"; {hint}"
        raise NonFiniteResultError(msg)
