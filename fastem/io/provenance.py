"""Provenance records: who wrote an output, when, how, on which device, with which settings.

Every output file written by fastem carries a provenance record (docs/io.md, "Writing outputs safely"):

========== ========================================================================
program    ``"fastem"``
version    ``fastem.__version__``
command    the full command line (``sys.argv`` joined, shell-quoted)
date       UTC, ISO 8601 (``2026-01-31T12:00:00Z``)
device     e.g. ``"cpu (2 cores)"`` or ``"cuda:0 (NVIDIA H100)"``
configuration  every resolved parameter, as a JSON string
========== ========================================================================

:func:`write_provenance` stores them as scalar string datasets in an HDF5 group (the CXI /
NeXus ``NXprocess`` layout: ``/entry_1/image_1/process_1``, Data Exchange ``/process/fastem``);
:func:`read_provenance` reads them back (``configuration`` decoded to a dict).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import shlex
import sys
from pathlib import Path, PurePath
from typing import Any

import numpy as np

__all__ = ["provenance", "write_provenance", "read_provenance", "to_jsonable", "PROVENANCE_FIELDS"]

PROVENANCE_FIELDS = ("program", "version", "command", "date", "device", "configuration")


def to_jsonable(value: Any) -> Any:
    """Convert ``value`` to plain JSON types (NumPy scalars/arrays, paths, dataclasses, devices).

    Arrays become (nested) lists; use it for configurations, not for bulk data.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, float) and not np.isfinite(value):
            return repr(value)  # JSON has no nan/inf
        return value
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, complex):
        return {"real": value.real, "imag": value.imag}
    if isinstance(value, (PurePath, Path)):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return np.dtype(value).name
    return str(value)


def _default_command() -> str:
    argv = list(sys.argv) or ["python"]
    prog = Path(argv[0]).name or "python"
    return shlex.join([prog, *argv[1:]])


def _default_device() -> str:
    try:
        from ..backend import resolve_device

        return resolve_device().name
    except Exception as exc:  # a provenance record must never fail a run
        from ..config import settings

        return f"{settings.device} (unresolved: {exc})"


def provenance(*, command: str | None = None, config: Any = None, device: Any = None) -> dict:
    """Build a provenance record for an output file.

    Parameters
    ----------
    command : str, optional
        The command line; default ``sys.argv`` joined (shell-quoted).
    config : mapping or dataclass, optional
        The resolved configuration (every parameter in effect); converted with
        :func:`to_jsonable`.
    device : Device, str, optional
        The compute device; default the global ``--device`` setting, resolved
        (``fastem.backend.resolve_device().name``).

    Returns
    -------
    dict
        ``program``, ``version``, ``command``, ``date`` (UTC ISO 8601), ``device`` (str) and
        ``configuration`` (a JSON-serialisable dict).
    """
    from .. import __version__

    if device is None:
        device_text = _default_device()
    else:
        device_text = getattr(device, "name", None) or str(device)
    return {
        "program": "fastem",
        "version": __version__,
        "command": command if command is not None else _default_command(),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "device": str(device_text),
        "configuration": to_jsonable(config if config is not None else {}),
    }


def _require_group(h5group, name: str = "h5group") -> None:
    """One-line :class:`~fastem.errors.InputError` unless ``h5group`` is an open h5py group."""
    import h5py

    from ..errors import InputError

    if not isinstance(h5group, h5py.Group):
        raise InputError(f"{name} must be an open h5py group or file, got {type(h5group).__name__}")


def write_provenance(h5group, prov: dict | None = None) -> None:
    """Write a provenance record into an open h5py group as scalar string datasets.

    ``configuration`` is stored as a JSON string (attribute ``format="json"``). Missing fields
    are filled by :func:`provenance`; extra keys are written as strings too. Existing fields of
    the group are replaced.
    """
    from ..errors import InputError

    _require_group(h5group)
    if prov is not None and not isinstance(prov, dict):
        raise InputError(f"prov must be a dict (see fastem.io.provenance()), got {type(prov).__name__}")
    record = provenance() if prov is None else dict(prov)
    missing = [k for k in PROVENANCE_FIELDS if k not in record]
    if missing:
        defaults = provenance()
        record.update({k: defaults[k] for k in missing})
    for key, value in record.items():
        if key in h5group:
            del h5group[key]
        if key == "configuration":
            text = value if isinstance(value, str) else json.dumps(to_jsonable(value), sort_keys=True)
            ds = h5group.create_dataset(key, data=text)
            ds.attrs["format"] = "json"
        else:
            h5group.create_dataset(key, data=str(value))


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _text(value[()])
    return str(value)


def read_provenance(h5group) -> dict:
    """Read a record written by :func:`write_provenance` (datasets or attributes).

    ``configuration`` is decoded from JSON to a dict; absent fields are absent from the result.
    """
    import h5py

    _require_group(h5group)
    out: dict = {}
    for key in PROVENANCE_FIELDS:
        raw = None
        if key in h5group and isinstance(h5group[key], h5py.Dataset):
            raw = h5group[key][()]
        elif key in h5group.attrs:
            raw = h5group.attrs[key]
        if raw is None:
            continue
        text = _text(raw)
        if key == "configuration":
            try:
                out[key] = json.loads(text)
            except ValueError:
                out[key] = text
        else:
            out[key] = text
    return out
