"""Tiled, batched inference of image-to-image networks on images of any size (no grad).

:func:`tiled_apply` cuts each (H, W) image into ``tile`` x ``tile`` tiles overlapping by at
least ``overlap`` px, runs them through the network in batches of ``batch`` on ``device``, and
blends the overlaps with separable linear ramps (weights fall to ~0 at tile borders that are
inside the image, so seams vanish). Images no larger than ``tile`` run whole (fully
convolutional networks pad internally). With ``ensemble=n`` it also averages the network's
output over the first ``n`` of the 8 dihedral transforms of the input (each output mapped back
by the inverse transform): the "self-ensemble" of image restoration (Lim et al. 2017, EDSR+),
valid for networks trained with the dihedral augmentations, as fastem's are; it costs ``n``
forward passes. :func:`complete_partial_scans` applies a completion generator to partial scans.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from fastem import backend
from fastem.errors import InputError

__all__ = ["tile_starts", "tiled_apply", "complete_partial_scans", "ENSEMBLE_SIZES", "dihedral_transform",
           "inverse_dihedral_index", "inverse_dihedral_transform", "check_ensemble"]

#: the allowed ``ensemble`` sizes: transforms ``0 .. n-1`` of :func:`dihedral_transform` (1: the input;
#: 2: and its up-down flip; 4: the four flips, a group; 8: the whole dihedral group)
ENSEMBLE_SIZES = (1, 2, 4, 8)


def dihedral_transform(x: torch.Tensor, t: int) -> torch.Tensor:
    """Dihedral transform ``t`` (0..7) of a tensor's last two axes, in the index convention of
    :func:`fastem.kernels.scan_geometry.dihedral` (the training augmentations'): bit 4 transposes,
    then bit 1 flips up-down, then bit 2 flips left-right."""
    if t & 4:
        x = x.transpose(-1, -2)
    if t & 1:
        x = torch.flip(x, dims=(-2,))
    if t & 2:
        x = torch.flip(x, dims=(-1,))
    return x


def inverse_dihedral_index(t: int) -> int:
    """The index of the inverse of :func:`dihedral_transform` ``t``: the flips alone are their own
    inverses; after a transpose an up-down flip undoes as a left-right one (``5 <-> 6``)."""
    return t if t < 4 else 4 | ((t & 1) << 1) | ((t & 2) >> 1)


def inverse_dihedral_transform(x: torch.Tensor, t: int) -> torch.Tensor:
    """The inverse of :func:`dihedral_transform` ``t``."""
    return dihedral_transform(x, inverse_dihedral_index(t))


def check_ensemble(ensemble) -> int:
    """``ensemble`` as an int in :data:`ENSEMBLE_SIZES`, or an :class:`InputError` naming it."""
    if isinstance(ensemble, bool) or not isinstance(ensemble, (int, np.integer)) or int(ensemble) not in ENSEMBLE_SIZES:
        raise InputError(f"ensemble must be one of {', '.join(map(str, ENSEMBLE_SIZES))} (dihedral transforms "
                         f"averaged), got {ensemble!r}")
    return int(ensemble)


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
                batch: int = 4, device=None, out_channels: int = 1, ensemble: int = 1) -> np.ndarray:
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
    ensemble : {1, 2, 4, 8}
        Average the output over this many dihedral transforms of the input (see
        :func:`dihedral_transform`; 1 = the input as it is). ``ensemble`` times the work.

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
    ensemble = check_ensemble(ensemble)
    dev = torch.device(device or "cpu")
    if ensemble == 1:
        return _tiled_once(fn, x, tile, overlap, batch, dev, out_channels).astype(np.float32)
    total = None
    for t in range(ensemble):
        y = _tiled_once(fn, dihedral_transform(x, t), tile, overlap, batch, dev, out_channels)
        y = inverse_dihedral_transform(torch.from_numpy(y), t).contiguous().numpy()   # a fresh array
        if total is None:
            total = y
        else:
            total += y
    total /= ensemble
    return total.astype(np.float32)


def _tiled_once(fn, x: torch.Tensor, tile: int, overlap: int, batch: int, dev, out_channels: int) -> np.ndarray:
    """One tiled pass of ``fn`` over (B, C, H, W) ``x``: (B, out_channels, H, W) float64."""
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
    return out


def complete_partial_scans(model, partial, path, *, tile: int = 512, overlap: int = 32, batch: int = 4,
                           device=None, clip: bool = True, ensemble: int = 1) -> np.ndarray:
    """Complete partial scans with a :class:`~fastem.nn.completion.CompletionGenerator`.

    Parameters
    ----------
    model : CompletionGenerator
    partial : (B, H, W) or (H, W) float array
        Partial scans in [-1, 1] with nearest infill (as :class:`fastem.scan.PartialScanPipeline` makes).
    path : same shape
        Path dwell in [0, 1].
    tile, overlap, batch, device, ensemble
        See :func:`tiled_apply` (``ensemble=8``: the completion averaged over the 8 dihedral
        transforms of the scan and its path; the models are trained under all 8).
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
                        device=dev, ensemble=ensemble)[:, 0]
    finally:
        model.train(was)
    if clip:
        np.clip(y, -1.0, 1.0, out=y)
    return y[0] if single else y
