"""Rendering synthetic HAADF-STEM micrographs: Gaussian atom columns through scan distortions.

Engines: ``numpy`` (dense reference, small images only), ``numba`` (CPU, parallel over rows),
``cuda`` (``cuda/stem_render.cu``, one thread per pixel). The scene (atom columns, cell list,
distortions, background) is built on the host by :mod:`fastem.data.stem`; see
``_stem_render_numba.py`` for the formula.
"""

from __future__ import annotations

import math

import numpy as np

from fastem import backend
from fastem.errors import InputError

from ._dispatch import KernelDispatcher

_RENDER = KernelDispatcher("render_stem", ("numpy", "numba", "cuda"))

__all__ = ["render_stem", "SCENE_FIELDS"]

#: arrays of a packed scene, in the order the kernels take them
SCENE_FIELDS = ("ax", "ay", "amp", "inv2s2", "cutoff2", "cell_start", "meta", "jitter", "drift", "bg")


@_RENDER.register("numpy")
def _render_numpy(out, s, bg_step):
    nb, h, w = out.shape
    r, c = np.mgrid[0:h, 0:w].astype(np.float64)
    for b in range(nb):
        aoff, coff, ncx, ncy = (int(v) for v in s["meta"][b, :4])
        tt = (r * w + c) / (h * w)
        xs = c + s["jitter"][b][:, None] + s["drift"][b, 0] * tt
        ys = r + s["drift"][b, 1] * tt
        gy, gx = r / bg_step, c / bg_step
        iy = np.minimum(gy.astype(int), s["bg"].shape[1] - 2)
        ix = np.minimum(gx.astype(int), s["bg"].shape[2] - 2)
        fy, fx = gy - iy, gx - ix
        g = s["bg"][b].astype(np.float64)
        acc = ((1 - fy) * ((1 - fx) * g[iy, ix] + fx * g[iy, ix + 1]) + fy * ((1 - fx) * g[iy + 1, ix] + fx * g[iy + 1, ix + 1]))
        n_atoms = int(s["cell_start"][coff + ncx * ncy])
        for i in range(aoff, aoff + n_atoms):
            d2 = (xs - s["ax"][i]) ** 2 + (ys - s["ay"][i]) ** 2
            acc += np.where(d2 < s["cutoff2"][i], s["amp"][i] * np.exp(-d2 * s["inv2s2"][i]), 0.0)
        out[b] = acc
    return out


@_RENDER.register("numba")
def _render_numba(out, s, bg_step):
    from ._stem_render_numba import render_numba

    render_numba(out, s["ax"], s["ay"], s["amp"], s["inv2s2"], s["cutoff2"], s["cell_start"], s["meta"],
                 s["jitter"], s["drift"], s["bg"], float(bg_step))
    return out


@_RENDER.register("cuda")
def _render_cuda(out, s, bg_step):
    from . import _cuda

    nb, h, w = out.shape
    dev = backend.get_device(out)
    threads = 256
    with dev.use():
        _cuda.get_function("stem_render", "stem_render", dev)(
            (math.ceil(h * w / threads), nb), (threads,),
            (out, np.int32(h), np.int32(w), s["ax"], s["ay"], s["amp"], s["inv2s2"], s["cutoff2"], s["cell_start"],
             s["meta"], s["jitter"], s["drift"], s["bg"], np.int32(s["bg"].shape[1]), np.int32(s["bg"].shape[2]),
             np.float64(bg_step)))
    return out


def render_stem(out, scene: dict, bg_step: float, engine: str | None = None):
    """Render a packed scene into ``out``.

    Parameters
    ----------
    out : (B, H, W) float32, NumPy or CuPy
    scene : dict of arrays (:data:`SCENE_FIELDS`) on the same device as ``out``:
        ``ax, ay`` (N,) float32 column positions (px; x along columns), ``amp`` (N,) float32 peak
        intensities, ``inv2s2`` (N,) float32 ``1 / (2 sigma^2)``, ``cutoff2`` (N,) float32 squared
        cut-off radii, ``cell_start`` (sum of cells + 1,) int64 per-image CSR offsets (atoms of
        image ``b`` sorted by cell, relative to its atom offset), ``meta`` (B, 7) float64
        ``(atom_offset, cell_offset, ncx, ncy, x0, y0, cell)``, ``jitter`` (B, H) float32 line
        shifts (px), ``drift`` (B, 2) float64 drift over the frame (px), ``bg`` (B, gh, gw)
        float32 coarse background.
    bg_step : float
        Pixels per background grid step.
    """
    if getattr(out, "ndim", 0) != 3 or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise InputError("render_stem: out must be a C-contiguous float32 (batch, rows, cols) array")
    missing = [f for f in SCENE_FIELDS if f not in scene]
    if missing:
        raise InputError(f"render_stem: scene lacks {', '.join(missing)}")
    return _RENDER(engine, (out, *(scene[f] for f in SCENE_FIELDS)), out, scene, bg_step)
