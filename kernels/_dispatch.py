"""Choosing a kernel engine for the arrays at hand (PyLops-style ``engine=`` argument).

Engines:

``"numpy"``
    plain NumPy, any device-free array; the float64 test oracle and the fallback.
``"numba"``
    Numba ``@njit(parallel=True, cache=True)`` CPU kernels (the CPU default).
``"cuda"``
    CUDA C kernels from ``kernels/cuda/*.cu`` through ``cupy.RawModule`` (the GPU default).
``"numba-cuda"``
    Numba CUDA kernels (GPU; also runnable under ``NUMBA_ENABLE_CUDASIM=1`` on NumPy arrays).
"""

from __future__ import annotations

from fastem import backend
from fastem.errors import InputError
from fastem.interop import as_numba_cuda  # noqa: F401  (re-exported for kernel modules)

CPU_ENGINES = ("numba", "numpy")
GPU_ENGINES = ("cuda", "numba-cuda")
ENGINES = CPU_ENGINES + GPU_ENGINES


def _is_array(a) -> bool:
    import numpy as np

    return isinstance(a, np.ndarray) or backend.is_cupy_array(a)


def require_arrays(where: str, optional: tuple[str, ...] = (), **arrays) -> None:
    """Raise a one-line :class:`~fastem.errors.InputError` unless every named argument is a
    NumPy or CuPy array (names in ``optional`` may also be ``None``).

    Kernels take arrays as they are (no hidden copies or conversions), so a list, a scalar or
    ``None`` where an array belongs is refused here, naming the parameter, instead of failing
    deep inside with an ``AttributeError``.
    """
    for name, value in arrays.items():
        if value is None and name in optional:
            continue
        if not _is_array(value):
            raise InputError(f"{where}: {name} must be a NumPy or CuPy array, got {type(value).__name__}")


def select_engine(engine: str | None, *arrays, cpu_default: str = "numba", gpu_default: str = "cuda") -> str:
    """Resolve ``engine`` (``None`` = default for the arrays' device) and check it fits them.

    Raises
    ------
    InputError (a ValueError)
        unknown engine, arrays on different devices, or a CPU engine asked for GPU arrays (and
        vice versa; ``numba-cuda`` accepts NumPy arrays only under the CUDA simulator).
    """
    devices = {backend.get_device(a) for a in arrays if a is not None and hasattr(a, "shape")}
    if len(devices) > 1:
        raise InputError(f"arrays live on different devices: {sorted(map(str, devices))}")
    on_gpu = bool(devices) and next(iter(devices)).is_gpu
    if engine is None:
        return gpu_default if on_gpu else cpu_default
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    if on_gpu and engine in CPU_ENGINES:
        raise InputError(f"engine {engine!r} runs on the CPU but the arrays are on {next(iter(devices))}")
    if not on_gpu and engine == "cuda":
        raise InputError("engine 'cuda' needs CuPy arrays on a GPU")
    if not on_gpu and engine == "numba-cuda":
        import os

        if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
            raise InputError("engine 'numba-cuda' needs GPU arrays (or NUMBA_ENABLE_CUDASIM=1 for NumPy arrays)")
    return engine


def numba_cuda_stream():
    """The current CuPy stream wrapped for Numba CUDA launches (0 = default under the simulator)."""
    from numba import cuda

    if backend.cupy_available():
        import cupy as cp

        return cuda.external_stream(cp.cuda.get_current_stream().ptr)
    return 0
