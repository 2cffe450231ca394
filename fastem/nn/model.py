"""Model files: a network's weights with the record of what it was trained for.

A model file is ``torch.save`` of plain containers (read back with ``weights_only=True``, so
loading never runs code from the file)::

    {"format": "fastem-model", "version": 1, "kind": "completion-gan",
     "config": {...architecture...}, "record": {...}, "state_dict": {...}}

``record`` is free-form JSON-able metadata; the completion GAN stores the path type, coverage,
crop, the training command, data seed, steps, device, time and validation metrics. Network
kinds register a builder (``config dict -> nn.Module``) with :func:`register_kind`; issue 13's
networks register theirs the same way. Every failure to read a model is a one-line
:class:`fastem.errors.InputError` (missing, corrupt / not a model, another kind).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

import torch

from fastem.errors import InputError
from fastem.io import atomic_output

__all__ = ["MODEL_FORMAT", "register_kind", "save_model", "load_model", "read_model_record", "check_model_use",
           "ModelUseWarning"]

MODEL_FORMAT = "fastem-model"
MODEL_VERSION = 1

_BUILDERS: dict[str, Callable[[dict], torch.nn.Module]] = {}


class ModelUseWarning(UserWarning):
    """A model is used outside the conditions it was trained for."""


def register_kind(kind: str, builder: Callable[[dict], torch.nn.Module]) -> None:
    """Register ``builder(config_dict) -> nn.Module`` for model files of ``kind``."""
    _BUILDERS[str(kind)] = builder


_WEIGHT_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def save_model(path, module: torch.nn.Module, *, kind: str, config: dict, record: dict | None = None,
               overwrite: bool = False, inputs=(), weights_dtype: str = "float32") -> Path:
    """Write ``module``'s weights with ``config`` and ``record`` atomically (temporary file + rename).

    ``inputs``: files the run read (never overwritten, even with ``overwrite``).
    ``weights_dtype``: ``"float32"`` or ``"float16"`` (floating tensors stored at half size, e.g.
    for a model shipped inside the package; :func:`load_model` loads them into the float32
    network, so only the storage is rounded, to ~3 significant digits).
    """
    if kind not in _BUILDERS:
        raise InputError(f"unknown model kind {kind!r}; known: {', '.join(sorted(_BUILDERS)) or 'none'}")
    if weights_dtype not in _WEIGHT_DTYPES:
        raise InputError(f"weights_dtype must be one of {', '.join(_WEIGHT_DTYPES)}, got {weights_dtype!r}")
    want = _WEIGHT_DTYPES[weights_dtype]
    state = {k: (v.detach().cpu().to(want) if v.is_floating_point() else v.detach().cpu()).clone()
             for k, v in module.state_dict().items()}
    payload = {"format": MODEL_FORMAT, "version": MODEL_VERSION, "kind": kind, "config": _plain(dict(config)),
               "record": _plain(dict(record or {})), "state_dict": state, "weights_dtype": weights_dtype}
    with atomic_output(path, overwrite=overwrite, inputs=inputs) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def _plain(value):
    """``value`` as plain JSON types (NumPy scalars / arrays converted, anything else as text)."""
    import json

    import numpy as np

    def default(v):
        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, np.ndarray):
            return v.tolist()
        return str(v)

    return json.loads(json.dumps(value, default=default))


def _read(path) -> dict:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such model file")
    if p.is_dir():
        raise InputError(f"{p}: is a folder, not a model file")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- any unpickling failure means a bad file
        reason = str(exc).splitlines()[0][:100] if str(exc) else type(exc).__name__
        raise InputError(f"{p}: not a readable fastem model file (corrupt, truncated or another format: "
                         f"{reason})") from None
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise InputError(f"{p}: not a fastem model file (no '{MODEL_FORMAT}' header)")
    for key in ("kind", "config", "state_dict"):
        if key not in payload:
            raise InputError(f"{p}: fastem model file lacks its {key!r} entry (corrupt)")
    return payload


def repack_model(path, output, *, weights_dtype: str = "float16", overwrite: bool = False) -> Path:
    """Copy the model file ``path`` to ``output`` with its weights stored as ``weights_dtype``.

    Config and record are kept; the record gains ``repacked_from`` and ``weights_dtype``.
    """
    module, info = load_model(path)
    record = dict(info.get("record") or {})
    record.update({"repacked_from": Path(path).name, "weights_dtype": weights_dtype})
    return save_model(output, module, kind=info["kind"], config=info["config"], record=record,
                      overwrite=overwrite, inputs=[path], weights_dtype=weights_dtype)


def read_model_record(path) -> dict:
    """``{"kind", "config", "record", "version"}`` of a model file (weights not built)."""
    payload = _read(path)
    return {k: payload.get(k) for k in ("kind", "config", "record", "version")}


def load_model(path, *, kind: str | None = None, device="cpu") -> tuple[torch.nn.Module, dict]:
    """Build the network stored in ``path`` and load its weights; returns ``(module, info)``.

    ``kind``: the expected kind (e.g. ``"completion-gan"``); another kind is refused.
    ``info`` is :func:`read_model_record`'s dict. The module is in eval mode on ``device``.
    """
    from . import completion, ssl_models  # noqa: F401 -- registers the built-in kinds

    p = Path(path)
    payload = _read(p)
    got = payload["kind"]
    if kind is not None and got != kind:
        raise InputError(f"{p}: is a {got!r} model, expected a {kind!r} model")
    builder = _BUILDERS.get(got)
    if builder is None:
        raise InputError(f"{p}: unknown model kind {got!r} (written by a newer fastem?)")
    try:
        module = builder(payload["config"])
        module.load_state_dict(payload["state_dict"])
    except InputError as exc:
        raise InputError(f"{p}: {exc}") from None
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{p}: the weights do not fit the recorded architecture (corrupt model file: "
                         f"{str(exc).splitlines()[0][:100]})") from None
    module.to(device).eval()
    return module, {k: payload.get(k) for k in ("kind", "config", "record", "version")}


def check_model_use(info: dict, *, path: str | None = None, coverage: float | None = None, rtol: float = 0.25,
                    where: str = "model") -> list[str]:
    """Warn (:class:`ModelUseWarning`) when a model is applied outside what it was trained for.

    Compares the requested scan ``path`` type and ``coverage`` with the model's record
    (``record["path"]``, ``record["coverage"]``); returns the warning texts.
    """
    rec = info.get("record") or {}
    notes = []
    if path is not None and rec.get("path") not in (None, path):
        notes.append(f"{where}: trained on {rec['path']} scans, applied to {path} scans")
    if coverage is not None and rec.get("coverage"):
        c0 = float(rec["coverage"])
        if abs(float(coverage) - c0) > rtol * c0:
            notes.append(f"{where}: trained at coverage {c0:.4g}, applied at {float(coverage):.4g}")
    for n in notes:
        warnings.warn(n, ModelUseWarning, stacklevel=2)
    return notes
