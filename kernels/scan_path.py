"""Batched scan-path dwell maps: Archimedean spirals and jittered grids as 1-px lines.

A line is rasterised, at each integer position of its major axis, into the nearer pixel with
dwell 1 (the paper's rasterisation, a binary map: the default) or, with ``antialias=True``,
shared between the two pixels it passes between (weights ``1 - f`` and ``f``).

Engines: ``numpy`` (``fastem.scan._reference``, the float64 oracle), ``numba`` (CPU, parallel
over the batch), ``cuda`` (CUDA C ``cuda/scan_path.cu``: one thread per spiral segment or grid
channel, float atomics, then a clip pass). Every engine draws the same counter-based random
numbers (``_hash_rng``), so example ``e`` of seed ``s`` has the same path on every device.
"""

from __future__ import annotations

import numpy as np

from fastem import backend
from fastem.interop import accepts_torch
from fastem.errors import InputError

from . import _hash_rng as R
from ._dispatch import KernelDispatcher, require_arrays

_SPIRAL = KernelDispatcher("spiral_dwell", ("numpy", "numba", "cuda"))
_GRID = KernelDispatcher("grid_dwell", ("numpy", "numba", "cuda"))

__all__ = ["spiral_dwell", "grid_dwell"]


def _check_out(out, name: str):
    if getattr(out, "ndim", 0) != 3 or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise InputError(f"{name}: out must be a C-contiguous float32 (batch, rows, cols) array, got "
                         f"{getattr(out, 'dtype', type(out).__name__)} shape {getattr(out, 'shape', None)}")
    if out.shape[1] < 1 or out.shape[2] < 1:
        raise InputError(f"{name}: empty image shape {out.shape[1:]}")


@_SPIRAL.register("numpy")
def _spiral_dwell_numpy(out, spacing, seed, example_base, rotate, max_offset, antialias):
    from . import _scan_reference as ref

    nb, h, w = out.shape
    for b in range(nb):
        out[b] = ref.spiral_dwell((h, w), spacing, seed, example_base + b, rotate, max_offset, antialias)
    return out


@_SPIRAL.register("numba")
def _spiral_dwell_numba(out, spacing, seed, example_base, rotate, max_offset, antialias):
    from ._scan_path_numba import spiral_dwell_numba

    spiral_dwell_numba(out, float(spacing), R.seed_u64(seed), int(example_base), bool(rotate), float(max_offset),
                       bool(antialias))
    return out


@_SPIRAL.register("cuda")
def _spiral_dwell_cuda(out, spacing, seed, example_base, rotate, max_offset, antialias):
    from . import _cuda

    nb, h, w = out.shape
    dev = backend.get_device(out)
    with dev.use():
        out.fill(0)
        kernel = _cuda.get_function("scan_path", "spiral_deposit", dev)
        kernel((64, nb), (256,), (out, np.int32(h), np.int32(w), np.float64(spacing), R.seed_u64(seed),
                                  np.int64(example_base), np.int32(bool(rotate)), np.float64(max_offset),
                                  np.int32(bool(antialias))))
        _finish_cuda(out, dev)
    return out


@_GRID.register("numpy")
def _grid_dwell_numpy(out, u, amp, seed, example_base, random_place, antialias):
    from . import _scan_reference as ref

    nb, h, w = out.shape
    for b in range(nb):
        out[b] = ref.grid_dwell((h, w), u, amp, seed, example_base + b, random_place, antialias)
    return out


@_GRID.register("numba")
def _grid_dwell_numba(out, u, amp, seed, example_base, random_place, antialias):
    from ._scan_path_numba import grid_dwell_numba
    from .scan_geometry import grid_channel_width

    width = grid_channel_width(u)
    grid_dwell_numba(out, float(width), float(amp), R.seed_u64(seed), int(example_base), bool(random_place),
                     bool(antialias))
    return out


@_GRID.register("cuda")
def _grid_dwell_cuda(out, u, amp, seed, example_base, random_place, antialias):
    from . import _cuda
    from .scan_geometry import grid_channel_width

    nb, h, w = out.shape
    width = grid_channel_width(u)
    dev = backend.get_device(out)
    canvas = int(1.2 * max(h, w))
    nch = int(np.ceil(canvas / width))
    with dev.use():
        out.fill(0)
        kernel = _cuda.get_function("scan_path", "grid_walk", dev)
        kernel(((nch + 31) // 32, nb), (32,), (out, np.int32(h), np.int32(w), np.float64(width), np.float64(amp),
                                               R.seed_u64(seed), np.int64(example_base), np.int32(bool(random_place)),
                                               np.int32(bool(antialias))))
        _finish_cuda(out, dev)
    return out


@accepts_torch
def spiral_dwell(out, spacing: float, seed: int = 0, example_base: int = 0, rotate: bool = True,
                 max_offset: float = 0.0, antialias: bool = False, engine: str | None = None):
    """Fill ``out[b]`` with the spiral dwell map of example ``example_base + b``.

    Parameters
    ----------
    out : (B, H, W) float32, NumPy or CuPy, C-contiguous; overwritten, dwell in [0, 1]
    spacing : float
        Arm spacing in px (``1 / nominal coverage``), > 0.
    seed, example_base : int
        Random streams: rotation angle and centre offset of example ``e`` depend only on
        ``(seed, e)``.
    rotate : bool
        Random rotation in [0, 2 pi) (else the spiral starts along +x).
    max_offset : float
        Random centre offset, uniform in ``[-max_offset, max_offset]`` px on each axis.
    antialias : bool
        Share the line between the two pixels it passes (else the nearer one gets dwell 1).
    engine : {None, "numpy", "numba", "cuda"}

    Returns
    -------
    out
    """
    require_arrays("spiral_dwell", (), out=out)
    _check_out(out, "spiral_dwell")
    if not spacing > 0:
        raise InputError(f"spiral_dwell: spacing must be > 0 px, got {spacing}")
    return _SPIRAL(engine, (out,), out, spacing, seed, example_base, rotate, max_offset, antialias)


@accepts_torch
def grid_dwell(out, u: float, amp: float = 1.0, seed: int = 0, example_base: int = 0, random_place: bool = True,
               antialias: bool = False, engine: str | None = None):
    """Fill ``out[b]`` with the jittered-grid dwell map of example ``example_base + b``.

    Parameters
    ----------
    out : (B, H, W) float32, NumPy or CuPy, C-contiguous; overwritten, dwell in [0, 1]
    u : float
        Fraction per direction, in (0, 0.25]; channel spacing ``(2 + sqrt(4 - 16 u)) / (2 u)``.
    amp : float
        Random-walk amplitude (px), > 0.
    random_place : bool
        Random crop offset in ``[0, 0.2 n]`` and random flips (else the spec's fixed crop at 0.1 n).
    antialias : bool
        Share each walk step between the two nearest rows (else the nearer row gets dwell 1).
    engine : {None, "numpy", "numba", "cuda"}
    """
    require_arrays("grid_dwell", (), out=out)
    _check_out(out, "grid_dwell")
    if not 0.0 < u <= 0.25:
        raise InputError(f"grid_dwell: u must be in (0, 0.25], got {u}")
    if not amp > 0:
        raise InputError(f"grid_dwell: amp must be > 0, got {amp}")
    return _GRID(engine, (out,), out, u, amp, seed, example_base, random_place, antialias)


def _finish_cuda(out, dev) -> None:
    from . import _cuda

    kernel = _cuda.get_function("scan_path", "dwell_finish", dev)
    grid, block = _cuda.launch_config(out.size)
    kernel(grid, block, (out, np.int64(out.size)))
