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

import functools

from fastem import backend
from fastem.errors import InputError
from fastem.interop import as_numba_cuda  # noqa: F401  (re-exported for kernel modules)

CPU_ENGINES = ("numba", "numpy")
GPU_ENGINES = ("cuda", "numba-cuda")
ENGINES = CPU_ENGINES + GPU_ENGINES

#: the kernel registry: public kernel name -> the engines it implements (declared once, in its module)
KERNEL_ENGINES: dict[str, tuple[str, ...]] = {}


class UnsupportedEngineError(InputError):
    """A known engine that this kernel does not implement (one error for every kernel)."""


def declare_engines(kernel: str, engines: tuple[str, ...], *, cpu_default: str = "numba",
                    gpu_default: str = "cuda") -> str:
    """Register the engines ``kernel`` implements; returns ``kernel`` (the key for :func:`select_engine`).

    Called once at import of the kernel's module. The defaults :func:`select_engine` would pick
    must be among the engines, so a default never lands on a missing implementation.
    """
    engines = tuple(engines)
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or not engines:
        raise ValueError(f"{kernel}: unknown engines {unknown} (known: {', '.join(ENGINES)})")
    for d in (cpu_default, gpu_default):
        if d not in engines and not (d == gpu_default and not any(e in GPU_ENGINES for e in engines)):
            raise ValueError(f"{kernel}: default engine {d!r} is not among its engines {engines}")
    if KERNEL_ENGINES.get(kernel, engines) != engines:
        raise ValueError(f"{kernel}: engines declared twice, differently")
    KERNEL_ENGINES[kernel] = engines
    return kernel


class KernelDispatcher:
    """One public kernel's engines and their implementations: the registry entry it dispatches through.

    Each kernel module builds one per public kernel, registers one implementation per engine
    with :meth:`register`, and its public function validates the inputs and calls
    ``dispatcher(engine, arrays, *args)``: :func:`select_engine` resolves ``engine`` for the
    arrays' device (refusing an engine the kernel lacks with :class:`UnsupportedEngineError`)
    and the registered implementation runs. No public kernel compares engine names itself.

    Examples
    --------
    >>> _SCALE = KernelDispatcher("scale_demo", ("numpy", "numba"))      # doctest: +SKIP
    >>> @_SCALE.register("numpy")
    ... def _scale_numpy(x, a): x *= a
    >>> def scale(x, a, engine=None):
    ...     return _SCALE(engine, (x,), x, a)
    """

    def __init__(self, kernel: str, engines: tuple[str, ...], *, cpu_default: str = "numba",
                 gpu_default: str = "cuda"):
        self.kernel = declare_engines(kernel, engines, cpu_default=cpu_default, gpu_default=gpu_default)
        self.engines = KERNEL_ENGINES[kernel]
        self.cpu_default, self.gpu_default = cpu_default, gpu_default
        self._impls: dict[str, object] = {}
        DISPATCHERS[kernel] = self

    def register(self, *engines: str, with_engine: bool = False):
        """Decorator: ``fn`` implements this kernel for ``engines`` (each declared, each once).

        With ``with_engine=True`` the resolved engine name is passed to ``fn`` as the keyword
        ``engine`` (for one body shared by two engines, e.g. the CuPy set-up of ``cuda`` and
        ``numba-cuda``).
        """
        for e in engines:
            if e not in self.engines:
                raise ValueError(f"{self.kernel}: cannot register engine {e!r}; declared engines are {self.engines}")
            if e in self._impls:
                raise ValueError(f"{self.kernel}: engine {e!r} registered twice")

        def deco(fn):
            for e in engines:
                self._impls[e] = functools.partial(fn, engine=e) if with_engine else fn
            return fn

        return deco

    def missing(self) -> tuple[str, ...]:
        """Declared engines with no registered implementation (empty for a complete kernel)."""
        return tuple(e for e in self.engines if e not in self._impls)

    def select(self, engine: str | None, *arrays) -> str:
        """The engine that would run for ``engine`` and ``arrays`` (see :func:`select_engine`)."""
        return select_engine(engine, *arrays, kernel=self.kernel, cpu_default=self.cpu_default,
                             gpu_default=self.gpu_default)

    def implementation(self, engine: str):
        """The function registered for a resolved ``engine``."""
        try:
            return self._impls[engine]
        except KeyError:   # declared but never registered: a bug in the kernel module, not the caller's input
            raise NotImplementedError(f"{self.kernel}: engine {engine!r} is declared but has no implementation") from None

    def __call__(self, engine: str | None, arrays: tuple, *args, **kwargs):
        """Resolve ``engine`` for ``arrays`` (``None`` entries ignored) and run its implementation."""
        return self.implementation(self.select(engine, *arrays))(*args, **kwargs)

    def __repr__(self) -> str:
        return f"KernelDispatcher({self.kernel!r}, engines={self.engines})"


#: public kernel name -> its dispatcher (kernels still declaring through :func:`declare_engines` alone are absent)
DISPATCHERS: dict[str, KernelDispatcher] = {}


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


def select_engine(engine: str | None, *arrays, kernel: str | None = None, cpu_default: str = "numba",
                  gpu_default: str = "cuda") -> str:
    """Resolve ``engine`` (``None`` = default for the arrays' device) and check it fits them.

    ``kernel`` names the calling kernel in :data:`KERNEL_ENGINES` (see :func:`declare_engines`):
    an engine it does not implement is refused with :class:`UnsupportedEngineError`, the same
    message for every kernel, instead of a per-kernel ``ValueError`` or a silent switch.

    Raises
    ------
    InputError (a ValueError)
        unknown engine, arrays on different devices, or a CPU engine asked for GPU arrays (and
        vice versa; ``numba-cuda`` accepts NumPy arrays only under the CUDA simulator);
        :class:`UnsupportedEngineError` for an engine the kernel lacks.
    """
    if kernel is not None:
        engine = _select(engine, arrays, cpu_default, gpu_default)
        have = KERNEL_ENGINES[kernel]
        if engine not in have:
            raise UnsupportedEngineError(f"{kernel}: engine {engine!r} is not implemented; "
                                         f"this kernel has {', '.join(have)}")
        return engine
    return _select(engine, arrays, cpu_default, gpu_default)


def _select(engine, arrays, cpu_default, gpu_default) -> str:
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
