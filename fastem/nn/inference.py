"""Tiled, batched inference of image-to-image networks on images of any size (no grad).

:func:`tiled_apply` cuts each (H, W) image into ``tile`` x ``tile`` tiles overlapping by at
least ``overlap`` px, runs them through the network in batches of ``batch`` on ``device``, and
blends the overlaps with separable linear ramps (weights fall to ~0 at tile borders that are
inside the image, so seams vanish). Images no larger than ``tile`` run whole (fully
convolutional networks pad internally). :func:`complete_partial_scans` applies a completion
generator to partial scans.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from fastem import backend
from fastem.errors import InputError

__all__ = ["tile_starts", "tiled_apply", "complete_partial_scans"]


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Tile origins along one axis: step ``tile - overlap``, the last tile flush with the end."""
    if size <= tile:
        return [0]
    step = max(1, tile - overlap)
    starts = list(range(0, size - tile, step))
    starts.append(size - tile)
    return sorted(set(starts))


def _ramp(n: int, overlap: int, lo_inside: bool, hi_inside: bool) -> np.ndarray:
    w = np.ones(n, dtype=np.float64)
    if overlap > 0:
        r = (np.arange(overlap) + 0.5) / overlap
        if lo_inside:
            w[:overlap] = np.minimum(w[:overlap], r)
        if hi_inside:
            w[n - overlap:] = np.minimum(w[n - overlap:], r[::-1])
    return w


@torch.no_grad()
def tiled_apply(fn: Callable[[torch.Tensor], torch.Tensor], inputs, *, tile: int = 512, overlap: int = 32,
                batch: int = 4, device=None, out_channels: int = 1) -> np.ndarray:
    """Apply ``fn`` ((n, C, t, t) tensor -> (n, out_channels, t, t)) to (B, C, H, W) ``inputs`` by tiles.

    Parameters
    ----------
    fn : callable
        The network (already in eval mode on ``device``).
    inputs : (B, C, H, W) float32 array or tensor
    tile, overlap : int
        Tile side and minimum overlap in px (``overlap < tile``).
    batch : int
        Tiles per forward pass.
    device : str or torch.device, optional
        Where ``fn`` runs (default: CPU).

    Returns
    -------
    (B, out_channels, H, W) float32 NumPy array.
    """
    x = torch.as_tensor(np.asarray(inputs) if not isinstance(inputs, torch.Tensor) else inputs)
    if x.dim() != 4:
        raise InputError(f"inputs must be (batch, channels, rows, cols), got shape {tuple(x.shape)}")
    tile, overlap, batch = int(tile), int(overlap), int(batch)
    if tile < 8 or not 0 <= overlap < tile or batch < 1:
        raise InputError(f"need tile >= 8, 0 <= overlap < tile and batch >= 1 (got {tile}, {overlap}, {batch})")
    dev = torch.device(device or "cpu")
    b, _, h, w = x.shape
    th, tw = min(tile, h), min(tile, w)
    ys, xs = tile_starts(h, th, overlap), tile_starts(w, tw, overlap)
    out = np.zeros((b, out_channels, h, w), dtype=np.float64)
    norm = np.zeros((h, w), dtype=np.float64)
    jobs = [(i, r, c) for i in range(b) for r in ys for c in xs]
    weights = {}
    for r in ys:
        for c in xs:
            wy = _ramp(th, overlap, r > 0, r + th < h)
            wx = _ramp(tw, overlap, c > 0, c + tw < w)
            weights[r, c] = np.outer(wy, wx)
            norm[r:r + th, c:c + tw] += weights[r, c]
    for k in range(0, len(jobs), batch):
        chunk = jobs[k:k + batch]
        xb = torch.stack([x[i, :, r:r + th, c:c + tw] for i, r, c in chunk]).to(dev, torch.float32)
        yb = fn(xb).detach().to("cpu", torch.float64).numpy()
        for (i, r, c), y in zip(chunk, yb):
            out[i, :, r:r + th, c:c + tw] += y * weights[r, c]
    out /= norm
    return out.astype(np.float32)


def complete_partial_scans(model, partial, path, *, tile: int = 512, overlap: int = 32, batch: int = 4,
                           device=None, clip: bool = True) -> np.ndarray:
    """Complete partial scans with a :class:`~fastem.nn.completion.CompletionGenerator`.

    Parameters
    ----------
    model : CompletionGenerator
    partial : (B, H, W) or (H, W) float array
        Partial scans in [-1, 1] with nearest infill (as :class:`fastem.scan.PartialScanPipeline` makes).
    path : same shape
        Path dwell in [0, 1].
    tile, overlap, batch, device
        See :func:`tiled_apply`.
    clip : bool
        Clip the completion to [-1, 1].

    Returns
    -------
    (B, H, W) or (H, W) float32 completion in [-1, 1] (the target's scale).
    """
    p = backend.to_host(partial, np.float32)
    m = backend.to_host(path, np.float32)
    single = p.ndim == 2
    if single:
        p, m = p[None], m[None]
    if p.ndim != 3 or p.shape != m.shape:
        raise InputError(f"partial scans {p.shape} and paths {m.shape} must be equal (B, H, W) or (H, W) shapes")
    dev = torch.device(device or "cpu")
    was = model.training
    model.eval().to(dev)
    try:
        y = tiled_apply(model.complete, np.stack([p, m], axis=1), tile=tile, overlap=overlap, batch=batch,
                        device=dev)[:, 0]
    finally:
        model.train(was)
    if clip:
        np.clip(y, -1.0, 1.0, out=y)
    return y[0] if single else y
