"""Checkpoints of long runs, stored inside the output file.

The pattern used by phase retrieval and tomography:

1. A long run writes its output every N iterations (``--checkpoint-every N``): the current best
   result *and* the state needed to continue (iteration counter, iterates, step sizes, the
   random generator, the R-factor history) under ``<process group>/checkpoint``. Each write
   rewrites the whole output atomically (temporary copy + rename, :func:`save_checkpoint_file`
   or the domain writer called with ``overwrite=True, checkpoint=state``), so a crash or a
   kill leaves either the previous complete file or the new one, never a corrupt file.
2. ``--resume`` opens that output, :func:`load_checkpoint_file` returns the state dict, and the
   run continues from it; the restored ``numpy.random.Generator`` continues the same stream,
   so a resumed run produces what the uninterrupted run would have.
3. The final write drops the checkpoint (or keeps it when asked).

State values may be NumPy arrays (any dtype and shape, CuPy arrays are copied to the host),
Python / NumPy scalars (int, float, bool, complex), strings, ``None``, lists / tuples of plain
values (stored as JSON), nested dicts (subgroups) and ``numpy.random.Generator`` objects
(their ``bit_generator.state`` stored as JSON; read back as a Generator in the same state).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..errors import DatasetNotFoundError, InputError

__all__ = [
    "write_checkpoint",
    "read_checkpoint",
    "save_checkpoint_file",
    "load_checkpoint_file",
    "generator_from_state",
    "array_digest",
    "run_fingerprint",
    "check_fingerprint",
]

_KIND = "fastem_kind"
_INT64 = np.iinfo(np.int64)


def _json_default(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in a checkpoint")


def generator_from_state(state: dict) -> np.random.Generator:
    """A ``numpy.random.Generator`` whose bit generator is in ``state`` (``bit_generator.state``)."""
    name = state.get("bit_generator")
    cls = getattr(np.random, str(name), None)
    if cls is None or not isinstance(cls, type) or not issubclass(cls, np.random.BitGenerator):
        raise InputError(f"checkpoint: unknown bit generator {name!r}")
    bitgen = cls()
    if name == "MT19937":
        state = {**state, "state": {**state["state"], "key": np.asarray(state["state"]["key"], dtype=np.uint32)}}
    bitgen.state = state
    return np.random.Generator(bitgen)


def _check_key(key) -> str:
    if not isinstance(key, str) or not key or "/" in key or key in (".", ".."):
        raise InputError(f"checkpoint: invalid key {key!r} (non-empty strings without '/')")
    return key


def write_checkpoint(h5group, state: dict) -> None:
    """Write ``state`` into the open h5py group ``h5group`` (existing members are replaced).

    Each entry becomes a dataset or a subgroup with an attribute ``fastem_kind`` that tells
    :func:`read_checkpoint` how to rebuild it. See the module docstring for the accepted types.
    """
    from ..backend import is_cupy_array, to_device

    if not isinstance(state, dict):
        raise InputError(f"checkpoint: state must be a dict, got {type(state).__name__}")
    for key, value in state.items():
        key = _check_key(key)
        if key in h5group:
            del h5group[key]
        if isinstance(value, dict):
            sub = h5group.create_group(key)
            sub.attrs[_KIND] = "dict"
            write_checkpoint(sub, value)
            continue
        if isinstance(value, np.random.Generator):
            ds = h5group.create_dataset(key, data=json.dumps(value.bit_generator.state, default=_json_default))
            ds.attrs[_KIND] = "generator"
            continue
        if is_cupy_array(value):
            value = to_device(value, "cpu")
        if value is None:
            ds = h5group.create_dataset(key, data="")
            ds.attrs[_KIND] = "none"
        elif isinstance(value, str):
            ds = h5group.create_dataset(key, data=value)
            ds.attrs[_KIND] = "str"
        elif isinstance(value, bool):
            ds = h5group.create_dataset(key, data=np.bool_(value))
            ds.attrs[_KIND] = "bool"
        elif isinstance(value, int):
            if _INT64.min <= value <= _INT64.max:
                ds = h5group.create_dataset(key, data=np.int64(value))
                ds.attrs[_KIND] = "int"
            else:
                ds = h5group.create_dataset(key, data=str(value))
                ds.attrs[_KIND] = "bigint"
        elif isinstance(value, float):
            ds = h5group.create_dataset(key, data=np.float64(value))
            ds.attrs[_KIND] = "float"
        elif isinstance(value, complex):
            ds = h5group.create_dataset(key, data=np.complex128(value))
            ds.attrs[_KIND] = "complex"
        elif isinstance(value, np.generic):
            ds = h5group.create_dataset(key, data=value)
            ds.attrs[_KIND] = "numpy_scalar"
        elif isinstance(value, np.ndarray):
            if value.dtype.kind in "OUS":
                ds = h5group.create_dataset(key, data=json.dumps(value.tolist()))
                ds.attrs[_KIND] = "json"
            else:
                ds = h5group.create_dataset(key, data=value)
                ds.attrs[_KIND] = "array"
        elif isinstance(value, (list, tuple)):
            try:
                text = json.dumps(value, default=_json_default)
            except TypeError as exc:
                raise InputError(f"checkpoint: entry {key!r}: {exc}") from None
            ds = h5group.create_dataset(key, data=text)
            ds.attrs[_KIND] = "tuple" if isinstance(value, tuple) else "json"
        else:
            raise InputError(f"checkpoint: entry {key!r} has unsupported type {type(value).__name__}")


def _decode_text(raw) -> str:
    return raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)


def _kind(obj) -> str:
    kind = obj.attrs.get(_KIND, None)
    return _decode_text(kind) if kind is not None else ""


def read_checkpoint(h5group) -> dict:
    """Rebuild the dict written by :func:`write_checkpoint` from the open h5py group."""
    import h5py

    out: dict[str, Any] = {}
    for key in h5group.keys():
        obj = h5group[key]
        kind = _kind(obj)
        if isinstance(obj, h5py.Group):
            out[key] = read_checkpoint(obj)
            continue
        raw = obj[()]
        if kind == "none":
            out[key] = None
        elif kind == "str":
            out[key] = _decode_text(raw)
        elif kind == "bool":
            out[key] = bool(raw)
        elif kind == "int":
            out[key] = int(raw)
        elif kind == "bigint":
            out[key] = int(_decode_text(raw))
        elif kind == "float":
            out[key] = float(raw)
        elif kind == "complex":
            out[key] = complex(raw)
        elif kind == "numpy_scalar":
            out[key] = obj.dtype.type(raw)
        elif kind == "generator":
            out[key] = generator_from_state(json.loads(_decode_text(raw)))
        elif kind == "json":
            out[key] = json.loads(_decode_text(raw))
        elif kind == "tuple":
            out[key] = tuple(json.loads(_decode_text(raw)))
        else:  # "array" or a dataset written by something else
            out[key] = np.asarray(raw) if not isinstance(raw, bytes) else _decode_text(raw)
    return out


def save_checkpoint_file(path, group: str, state: dict, *, inputs=()) -> None:
    """Store ``state`` under ``group`` of the HDF5 file ``path``, rewriting the file atomically.

    The file is copied to a temporary file in the same folder, the group is replaced there and
    the copy is renamed onto ``path``: an interrupted save leaves the previous file intact. A
    missing file is created. ``inputs`` guards against writing into an input file.
    """
    from .atomic import atomic_update

    with atomic_update(path, inputs=inputs) as f:
        name = "/" + group.strip("/")
        if name in f:
            del f[name]
        write_checkpoint(f.require_group(name), state)


def load_checkpoint_file(path, group: str) -> dict:
    """Read the checkpoint stored under ``group`` of ``path`` (one-line error if absent)."""
    import h5py

    from .hdf5 import list_members, open_h5

    name = "/" + group.strip("/")
    with open_h5(path) as f:
        obj = f.get(name)
        if not isinstance(obj, h5py.Group):
            parent = f.get(name.rsplit("/", 1)[0] or "/")
            listing = list_members(parent) if isinstance(parent, h5py.Group) else "missing"
            raise DatasetNotFoundError(f"{path}: no checkpoint at '{name}' (the run was not checkpointed; "
                                       f"'{parent.name if isinstance(parent, h5py.Group) else name}' holds: {listing})")
        return read_checkpoint(obj)


# --------------------------------------------------------------------------------------------
# fingerprints: resume only with identical inputs and parameters
# --------------------------------------------------------------------------------------------
def default_checkpoint(output):
    """Where a training job keeps its checkpoint: ``OUTPUT.ckpt`` beside the model file ``OUTPUT``."""
    from pathlib import Path

    out = Path(output)
    return out.with_name(out.name + ".ckpt")


def file_digest(path) -> str:
    """SHA-256 hex digest of a file's bytes, read in 1 MiB blocks (model files, inputs in provenance)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def array_digest(arr) -> str:
    """SHA-256 of an array's dtype, shape and contents (C order; CuPy arrays are copied to the host)."""
    import hashlib

    from ..backend import is_cupy_array, to_device

    if is_cupy_array(arr):
        arr = to_device(arr, "cpu")
    a = np.ascontiguousarray(np.asarray(arr))
    h = hashlib.sha256()
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(memoryview(a).cast("B") if a.size else b"")
    return h.hexdigest()


def _canonical(value) -> str:
    if isinstance(value, np.ndarray):
        return "array:" + array_digest(value)
    if isinstance(value, float) and value != value:
        return "nan"
    return json.dumps(value, sort_keys=True, default=_json_default)


def run_fingerprint(inputs: dict, params: dict) -> dict:
    """What a checkpoint must match to be resumed: digests of the inputs and every parameter.

    Parameters
    ----------
    inputs : dict of str -> array-like
        The arrays the run computes from (data, support, mask, angles, ...), *after* loading;
        ``None`` values are recorded as absent. Content counts, not the file name: a renamed
        copy of the same data resumes, an edited file does not.
    params : dict of str -> JSON-able value
        Every parameter that affects the result (not the iteration count or the checkpoint
        cadence, which may change between runs).

    Returns
    -------
    dict
        ``{"inputs": {name: sha256 or "absent"}, "params": {name: canonical JSON text}}``; store
        it in the checkpoint state under ``"fingerprint"``.
    """
    return {
        "inputs": {str(k): ("absent" if v is None else array_digest(v)) for k, v in sorted(inputs.items())},
        "params": {str(k): _canonical(v) for k, v in sorted(params.items())},
    }


def check_fingerprint(stored, current: dict, *, where: str, names: dict | None = None) -> None:
    """Refuse to resume when the checkpoint was made with other inputs or parameters.

    Parameters
    ----------
    stored : dict or None
        The ``"fingerprint"`` entry of the loaded checkpoint (``None`` for a checkpoint written
        before fingerprints existed: refused, since nothing can be checked).
    current : dict
        :func:`run_fingerprint` of the run being started.
    where : str
        The checkpoint file, for the message.
    names : dict, optional
        Display names (for example CLI flags) of parameters and inputs; default the keys.

    Raises
    ------
    InputError
        One line naming every input and parameter that differs, with both values.
    """
    names = names or {}
    if not isinstance(stored, dict) or "inputs" not in stored or "params" not in stored:
        raise InputError(f"{where}: the checkpoint records no fingerprint of its inputs and parameters (written by an "
                         f"older fastem), so a resume cannot be checked; start a new run")
    diffs = []
    s_in, c_in = dict(stored.get("inputs", {})), current["inputs"]
    for key in sorted(set(s_in) | set(c_in)):
        if s_in.get(key) != c_in.get(key):
            diffs.append(f"input {names.get(key, key)} differs")
    s_par, c_par = dict(stored.get("params", {})), current["params"]
    for key in sorted(set(s_par) | set(c_par)):
        if s_par.get(key) != c_par.get(key):
            old = s_par.get(key, "unset")
            new = c_par.get(key, "unset")
            if str(old).startswith("array:") or str(new).startswith("array:"):
                diffs.append(f"{names.get(key, key)} differs")
            else:
                diffs.append(f"{names.get(key, key)} was {old} in the checkpoint, now {new}")
    if diffs:
        raise InputError(f"{where}: cannot resume: " + "; ".join(diffs)
                         + " (resume with the same inputs and parameters, or start a new run)")
