"""Loading CUDA C kernels (``kernels/cuda/*.cu``) through ``cupy.RawModule``.

Sources are compiled by NVRTC once per (source, device, options) and memoised here; CuPy also
keeps the compiled binaries in its on-disk kernel cache (``~/.cupy/kernel_cache``), so a new
process skips compilation too. Every source must also compile with ``nvcc -ptx -arch=sm_90``
(checked in CI by ``tests/test_nvcc.py``): no host headers, ``extern "C"`` entry points.
"""

from __future__ import annotations

import functools
from pathlib import Path

from fastem import backend

CUDA_DIR = Path(__file__).resolve().parent / "cuda"
DEFAULT_OPTIONS = ("--std=c++17", f"-I{CUDA_DIR}")


def source_path(name: str) -> Path:
    """Path of ``kernels/cuda/<name>.cu`` (``name`` without the suffix)."""
    path = CUDA_DIR / f"{name}.cu"
    if not path.is_file():
        raise FileNotFoundError(f"no CUDA source {path}")
    return path


def list_sources() -> list[Path]:
    """Every ``.cu`` file shipped with fastem (compiled by the nvcc check)."""
    return sorted(CUDA_DIR.glob("*.cu"))


@functools.lru_cache(maxsize=None)
def get_module(name: str, device_id: int = 0, options: tuple = DEFAULT_OPTIONS):
    """The compiled ``cupy.RawModule`` for ``kernels/cuda/<name>.cu`` on GPU ``device_id``."""
    cp = backend.Device(device_id).xp
    code = source_path(name).read_text()
    with cp.cuda.Device(device_id):
        module = cp.RawModule(code=code, options=options)
        module.compile()
    return module


def get_function(name: str, function: str, device=None):
    """A kernel function ``function`` from ``kernels/cuda/<name>.cu`` for ``device``.

    ``device`` defaults to the current CuPy device. The module behind it is compiled once per
    device and cached.
    """
    if device is None:
        cp = backend.Device(0).xp
        device_id = cp.cuda.runtime.getDevice()
    else:
        device_id = backend.Device(device).id
    return get_module(name, device_id).get_function(function)


def launch_config(n: int, threads: int = 256, max_blocks: int = 65535 * 4) -> tuple[tuple[int], tuple[int]]:
    """(grid, block) for a grid-stride loop over ``n`` elements."""
    blocks = max(1, min((n + threads - 1) // threads, max_blocks))
    return (blocks,), (threads,)
