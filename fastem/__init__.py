"""fastem: a high-performance numerical engine for computational electron microscopy.

``import fastem`` is cheap and has no process-wide side effects: the subpackages (``phase``,
``tomo``, ``scan``, ``cluster``, ``optim``, ``train``, ``io``, ``data``, ``fft``, ...) and the
names re-exported here load on first use (PEP 562), so NumPy is the only heavy import until a
solver is touched; Numba, SciPy, pyFFTW and h5py come with the modules that use them.
"""
from __future__ import annotations

import importlib

from ._version import __version__

_SUBMODULES = ("backend", "config", "errors", "fft", "data", "io", "scan", "phase", "tomo", "cluster", "optim",
               "train")
_NAMES = {"Device": "backend", "get_array_module": "backend", "get_device": "backend", "to_device": "backend",
          "set_threads": "config"}

__all__ = ["__version__", *_SUBMODULES, *_NAMES]


def __getattr__(name: str):
    if name in _SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    if name in _NAMES:
        value = getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
