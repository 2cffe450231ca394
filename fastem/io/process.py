"""The process group of an output file: provenance + results (+ an optional checkpoint).

Layout (CXI ``/entry_1/image_1/process_1``, Data Exchange ``/process/fastem``, clustering
``/clustering/process`` ...)::

    <process group>/
        program, version, command, date, device     scalar strings (write_provenance)
        configuration                               JSON string, attr format="json"
        <result name>                               arrays / scalars / strings (e.g.
                                                    r_factor_history (n_iter,), r_factors (runs,))
        <result dict>/...                           nested results as subgroups
        checkpoint/                                 state for --resume (fastem.io.checkpoint)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .checkpoint import read_checkpoint, write_checkpoint
from .provenance import PROVENANCE_FIELDS, _require_group, read_provenance, write_provenance

__all__ = ["write_process_group", "read_process_group", "CHECKPOINT_NAME", "PROCESS_GROUP"]

CHECKPOINT_NAME = "checkpoint"
#: Where fastem puts its process group in files without a format-specific place for it
#: (Data Exchange, clustering / scan outputs, point clouds).
PROCESS_GROUP = "/process/fastem"


def _plain(results: dict) -> dict:
    out: dict[str, Any] = {}
    for key, value in results.items():
        if value is None:
            continue
        if isinstance(value, dict):
            out[key] = _plain(value)
        elif isinstance(value, (list, tuple)):
            arr = np.asarray(value)
            out[key] = arr if arr.dtype.kind in "biufc" else value
        else:
            out[key] = value
    return out


def write_process_group(group, prov: dict | None, results: dict | None = None,
                        checkpoint: dict | None = None) -> None:
    """Fill an open h5py group with provenance, results and (optionally) a checkpoint.

    Lists / tuples of numbers in ``results`` are stored as arrays; ``None`` values are skipped.
    Result names must not collide with the provenance fields.
    """
    from ..errors import InputError

    _require_group(group, "group")
    if results is not None and not isinstance(results, dict):
        raise InputError(f"results must be a dict name -> value, got {type(results).__name__}")
    if checkpoint is not None and not isinstance(checkpoint, dict):
        raise InputError(f"checkpoint must be a dict name -> value, got {type(checkpoint).__name__}")
    write_provenance(group, prov)
    if results:
        clash = set(results) & (set(PROVENANCE_FIELDS) | {CHECKPOINT_NAME})
        if clash:
            raise InputError(f"result names {sorted(clash)} are reserved in the process group")
        write_checkpoint(group, _plain(results))
    if checkpoint is not None:
        if CHECKPOINT_NAME in group:
            del group[CHECKPOINT_NAME]
        write_checkpoint(group.create_group(CHECKPOINT_NAME), checkpoint)


def read_process_group(group) -> tuple[dict, dict, dict | None]:
    """``(provenance, results, checkpoint or None)`` from a group written by :func:`write_process_group`."""
    import h5py

    _require_group(group, "group")
    prov = read_provenance(group)
    results = {k: v for k, v in read_checkpoint(group).items() if k not in PROVENANCE_FIELDS and k != CHECKPOINT_NAME}
    ck = group.get(CHECKPOINT_NAME)
    checkpoint = read_checkpoint(ck) if isinstance(ck, h5py.Group) else None
    return prov, results, checkpoint
