"""Devices and array modules (modelled on SigPy's ``backend.py``).

A :class:`Device` is ``cpu`` or ``cuda:N``. Arrays on the CPU are NumPy arrays; arrays on a GPU
are CuPy arrays. Library functions follow the device of their input arrays; the CLI picks a
device from ``--device auto|cpu|cuda[:N]``.

Optional dependencies (CuPy with a visible CUDA device, PyTorch, Dask, Numba CUDA) are probed
once, lazily, and cached; everything falls back cleanly to the CPU, and asking explicitly for a
GPU that is not there raises :class:`~fastem.errors.DeviceUnavailableError` with the reason.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
from typing import Any

import numpy as np

from .errors import DeviceUnavailableError, InputError


def available_cores() -> int:
    """Number of CPU cores this process may run on (affinity-aware)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)

__all__ = [
    "Device",
    "cpu_device",
    "resolve_device",
    "get_device",
    "get_array_module",
    "to_device",
    "is_cupy_array",
    "cupy_available",
    "gpu_unavailable_reason",
    "torch_available",
    "dask_available",
    "numba_cuda_available",
    "synchronize",
    "optional_module",
]


# --------------------------------------------------------------------------------------------
# optional dependencies, probed once
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def optional_module(name: str):
    """Import ``name`` once; return the module or ``None`` if it is not importable."""
    try:
        return importlib.import_module(name)
    except Exception:  # ImportError, or a broken install raising something else
        return None


@functools.lru_cache(maxsize=None)
def _probe_cupy() -> tuple[Any, str]:
    cp = optional_module("cupy")
    if cp is None:
        return None, "CuPy is not installed (pip install 'fastem[gpu]')"
    try:
        n = cp.cuda.runtime.getDeviceCount()
    except Exception as exc:  # no driver, no device
        return None, f"CuPy is installed but sees no CUDA device ({type(exc).__name__}: {exc})"
    if n < 1:
        return None, "CuPy is installed but sees no CUDA device"
    return cp, ""


def cupy_available() -> bool:
    """True when CuPy is importable and at least one CUDA device is visible."""
    return _probe_cupy()[0] is not None


def gpu_unavailable_reason() -> str:
    """Why no GPU can be used ('' when one can)."""
    return _probe_cupy()[1]


def torch_available() -> bool:
    return optional_module("torch") is not None


def dask_available() -> bool:
    return optional_module("dask") is not None and optional_module("distributed") is not None


@functools.lru_cache(maxsize=None)
def numba_cuda_available() -> bool:
    """True when Numba CUDA kernels can run: a real device, or the simulator is enabled."""
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:
        return False


def _cupy():
    cp, why = _probe_cupy()
    if cp is None:
        raise DeviceUnavailableError(f"a GPU was requested but {why}")
    return cp


# --------------------------------------------------------------------------------------------
# devices
# --------------------------------------------------------------------------------------------
class Device:
    """A compute device: ``cpu`` (id -1) or ``cuda:N`` (id N).

    Parameters
    ----------
    device : Device, int, str or None
        ``None``, ``-1``, ``"cpu"`` -> CPU; ``N >= 0``, ``"cuda"``, ``"cuda:N"``, ``"gpu"`` -> GPU N;
        ``"auto"`` -> GPU 0 when CuPy sees one, else the CPU. A ``cupy.cuda.Device`` is accepted.

    Examples
    --------
    >>> dev = Device("cpu"); dev.xp is np
    True
    """

    __slots__ = ("id",)

    def __init__(self, device: Any = None):
        if isinstance(device, Device):
            self.id = device.id
            return
        if device is None:
            self.id = -1
            return
        if isinstance(device, (int, np.integer)):
            did = int(device)
        elif isinstance(device, str):
            spec = device.strip().lower()
            if spec == "auto":
                did = 0 if cupy_available() else -1
            elif spec == "cpu":
                did = -1
            elif spec in ("cuda", "gpu"):
                did = 0
            elif spec.startswith(("cuda:", "gpu:")):
                try:
                    did = int(spec.split(":", 1)[1])
                except ValueError:
                    raise InputError(f"bad device {device!r}: expected cpu, cuda, cuda:N or auto") from None
                if did < 0:
                    raise InputError(f"bad device {device!r}: GPU index must be >= 0")
            else:
                raise InputError(f"bad device {device!r}: expected cpu, cuda, cuda:N or auto")
        elif hasattr(device, "id") and type(device).__module__.startswith("cupy"):
            did = int(device.id)
        else:
            raise InputError(f"device: cannot interpret {device!r} as a device (expected cpu, cuda, cuda:N, auto, an int or a Device)")
        if did < -1:
            raise InputError(f"bad device id {did}")
        if did >= 0:
            cp = _cupy()
            n = cp.cuda.runtime.getDeviceCount()
            if did >= n:
                raise DeviceUnavailableError(f"GPU {did} was requested but only {n} CUDA device(s) are visible")
        self.id = did

    # ---- properties ------------------------------------------------------------------------
    @property
    def is_cpu(self) -> bool:
        return self.id < 0

    @property
    def is_gpu(self) -> bool:
        return self.id >= 0

    @property
    def xp(self):
        """The array module of this device: ``numpy`` or ``cupy``."""
        return np if self.id < 0 else _cupy()

    @property
    def cupy_device(self):
        return _cupy().cuda.Device(self.id)

    @property
    def name(self) -> str:
        """A human-readable description, e.g. ``'cpu (2 cores)'`` or ``'cuda:0 (NVIDIA H100)'``."""
        if self.id < 0:
            return f"cpu ({available_cores()} cores)"
        props = _cupy().cuda.runtime.getDeviceProperties(self.id)
        name = props["name"]
        name = name.decode() if isinstance(name, bytes) else name
        return f"cuda:{self.id} ({name})"

    def use(self):
        """Context manager making this the current CuPy device (a no-op on the CPU)."""
        if self.id < 0:
            return contextlib.nullcontext()
        return self.cupy_device

    def synchronize(self) -> None:
        if self.id >= 0:
            self.cupy_device.synchronize()

    # ---- dunder ----------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        try:
            return self.id == Device(other).id
        except Exception:
            return False

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return "cpu" if self.id < 0 else f"cuda:{self.id}"

    __str__ = __repr__


cpu_device = Device(-1)


_default_device_spec: Any = "auto"


def set_default_device(spec: Any) -> None:
    """The device :func:`resolve_device` gives for ``None`` (set through ``fastem.config.settings.device``)."""
    global _default_device_spec
    _default_device_spec = spec


def resolve_device(spec: Any = None) -> Device:
    """Resolve a device specification; ``None`` means the global setting (``--device``)."""
    return Device(_default_device_spec if spec is None else spec)


def is_cupy_array(x: Any) -> bool:
    """True for a CuPy ndarray (without importing CuPy when it is not already loaded)."""
    mod = type(x).__module__
    return mod.startswith("cupy") and hasattr(x, "device") and hasattr(x, "__cuda_array_interface__")


def get_device(array: Any) -> Device:
    """The device holding ``array`` (NumPy -> cpu, CuPy -> its GPU)."""
    if is_cupy_array(array):
        return Device(int(array.device.id))
    return cpu_device


def get_array_module(*arrays: Any):
    """``cupy`` if any argument is a CuPy array, else ``numpy`` (like ``cupy.get_array_module``)."""
    for a in arrays:
        if is_cupy_array(a):
            return _cupy()
    return np


def to_device(array: Any, device: Any = cpu_device, copy: bool = False):
    """Return ``array`` on ``device``; no copy when it is already there (unless ``copy``).

    NumPy -> GPU uses ``cupy.asarray`` on that device; GPU -> CPU uses ``.get()``; GPU -> other
    GPU uses a peer copy.
    """
    device = Device(device)
    src = get_device(array)
    if src == device:
        return array.copy() if copy else array
    if device.is_cpu:
        return array.get()
    cp = _cupy()
    with device.cupy_device:
        return cp.array(array, copy=True) if src.is_gpu else cp.asarray(array)


def to_host(array: Any, dtype: Any = None, copy: bool = False) -> np.ndarray:
    """A NumPy array of ``array`` (CuPy: copied to the host; NumPy and array-likes: no copy unless
    ``copy`` or a ``dtype`` change needs one). The one host-copy idiom of the code base."""
    if is_cupy_array(array):
        array = array.get()
        copy = False                           # .get() made a fresh host array already
    out = np.asarray(array, dtype=dtype)
    return out.copy() if copy and out is array else out


def synchronize(device: Any = None) -> None:
    """Wait for all work queued on ``device`` (or the current CuPy device) to finish."""
    if device is None:
        if cupy_available():
            _cupy().cuda.get_current_stream().synchronize()
        return
    Device(device).synchronize()
