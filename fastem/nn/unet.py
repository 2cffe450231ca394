"""U-Net_B_RF: the residual U-Nets of seed 002 (section 4.1) with their receptive fields.

Seed 002 uses, as Pix2Pix generator and fine-tuned network, "the same network as that used by
Sytwu et al." (its ref. 46): a U-Net whose every resolution level holds one residual block
(:class:`~fastem.nn.blocks.ProjectedResidualBlock`: two 3x3 convolutions with batch norm and
ReLU, and a 1x1 projection skip), ``B`` levels, max pooling between levels, a bottleneck block,
nearest-neighbour upsampling, concatenated skips and a 1x1 output convolution. ``B`` is the
number of residual blocks on the contracting path; the receptive field (RF) is set by the
max-pool sizes (Sytwu et al. vary them per level, "m22", "m24", ...). The paper names the
variants U-Net_B_RF: B = 2 with RF 44, 84, 116; B = 3 with 96, 176, 240; B = 4 with 200, 360,
424. :data:`UNET_VARIANTS` holds the pool sizes that give exactly those RFs.

Receptive field (:func:`receptive_field`). The paper's numbers are the usual theoretical RF,
``1 + sum_layers (k_eff - 1) * jump`` along the deepest path (encoder blocks, pools,
bottleneck, decoder blocks; a ``p x p`` max pool adds ``(p - 1) * jump`` and multiplies the
jump by ``p``, nearest upsampling divides it by ``p``): with 2x2 pools everywhere this gives
44, 96 and 200 for B = 2, 3, 4, the paper's smallest RF per B. ``exact=True`` instead returns
the true support of one output pixel (largest over output positions), which nearest
upsampling makes slightly different (e.g. 100 for ``unet-3-96``); it is what the gradient of an
output pixel with respect to the input shows, and the tests check both.

Widths: level ``l`` has ``min(features * 2**l, max_features)`` channels (``features = 16`` by
default; Sytwu et al. use 4, 8, 16, ...; the paper does not give its widths). Any input size:
the input is padded (reflect) to a multiple of the product of the pools and the output cropped
back. Tensors are float32 ``(N, C, H, W)``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import torch
from torch import nn

from fastem.errors import InputError

from .blocks import NORMS, ProjectedResidualBlock, pad_to_multiple
from .netconfig import TupleFieldsConfig

__all__ = ["UNET_VARIANTS", "UNetConfig", "UNet", "receptive_field", "parse_unet_name"]

#: U-Net_B_RF name -> max-pool size per level (B = number of entries); the theoretical RF of the
#: built network equals the name's number (see the module docstring)
UNET_VARIANTS: dict[str, tuple[int, ...]] = {
    "unet-2-44": (2, 2), "unet-2-84": (2, 6), "unet-2-116": (6, 2),
    "unet-3-96": (2, 2, 2), "unet-3-176": (2, 2, 6), "unet-3-240": (2, 6, 2),
    "unet-4-200": (2, 2, 2, 2), "unet-4-360": (2, 2, 2, 6), "unet-4-424": (2, 2, 4, 3),
}


def parse_unet_name(name: str) -> str:
    """``"U-Net_2_44"``, ``"unet_2_44"``, ``"unet-2-44"`` -> ``"unet-2-44"`` (one-line error if unknown)."""
    m = re.fullmatch(r"u-?net[_\-.]?(\d+)[_\-.](\d+)", str(name).strip().lower())
    key = f"unet-{m.group(1)}-{m.group(2)}" if m else str(name)
    if key not in UNET_VARIANTS:
        raise InputError(f"unknown U-Net variant {name!r}; known: {', '.join(UNET_VARIANTS)}")
    return key


@dataclass
class UNetConfig(TupleFieldsConfig):
    """Architecture of a :class:`UNet` (JSON-able).

    ``pools``: max-pool size after each of the ``B = len(pools)`` encoder blocks;
    ``features``: channels of level 0 (doubling per level, at most ``max_features``);
    ``norm``: ``"batch"``, ``"instance"`` or ``"none"``; ``in_channels``, ``out_channels``.
    """

    pools: tuple = (2, 2)
    features: int = 16
    max_features: int = 256
    norm: str = "batch"
    in_channels: int = 1
    out_channels: int = 1
    name: str = field(default="")

    TUPLE_FIELDS = ("pools",)  # a class attribute, not a field

    def __post_init__(self):
        self.pools = tuple(int(p) for p in self.pools)
        if not self.pools or any(p < 1 for p in self.pools):
            raise InputError(f"U-Net pools must be >= 1 per level, got {self.pools}")
        if int(self.features) < 1 or int(self.max_features) < 1:
            raise InputError(f"U-Net features must be >= 1, got {self.features} / {self.max_features}")
        if self.norm not in NORMS:
            raise InputError(f"norm must be one of {', '.join(NORMS)}, got {self.norm!r}")

    @classmethod
    def named(cls, name: str, **overrides) -> "UNetConfig":
        key = parse_unet_name(name)
        return cls(pools=UNET_VARIANTS[key], name=key, **overrides)



class UNet(nn.Module):
    """Sytwu et al.'s residual U-Net (see the module docstring).

    ``forward(x)``: ``(N, in_channels, H, W) -> (N, out_channels, H, W)`` for any ``H, W``.
    :meth:`features` returns the last decoder features (before the 1x1 ``head``), so a task
    head can be swapped (:mod:`fastem.nn.ssl_train`). :meth:`encoder_modules` lists the
    contracting path and the bottleneck (for freezing policies).
    """

    def __init__(self, config: UNetConfig | None = None):
        super().__init__()
        c = self.config = config or UNetConfig()
        b = len(c.pools)
        widths = [min(int(c.features) * 2 ** level, int(c.max_features)) for level in range(b + 1)]
        self.widths = widths
        self.downs = nn.ModuleList()
        cin = c.in_channels
        for level in range(b):
            self.downs.append(ProjectedResidualBlock(cin, widths[level], norm=c.norm))
            cin = widths[level]
        self.pools = nn.ModuleList([nn.MaxPool2d(p, p) for p in c.pools])
        self.bottleneck = ProjectedResidualBlock(widths[b - 1], widths[b], norm=c.norm)
        # decoder, deepest level first
        self.upsamples = nn.ModuleList([nn.Upsample(scale_factor=p, mode="nearest") for p in reversed(c.pools)])
        self.ups = nn.ModuleList([ProjectedResidualBlock(widths[level] + widths[level + 1], widths[level], norm=c.norm)
                                  for level in reversed(range(b))])
        self.head = nn.Conv2d(widths[0], c.out_channels, 1)
        self.multiple = math.prod(c.pools)
        self.feature_channels = widths[0]

    def encoder_modules(self) -> list[nn.Module]:
        return [*self.downs, self.bottleneck]

    def features(self, x):
        """Padded input -> the last decoder block's features (same padded size)."""
        skips = []
        for block, pool in zip(self.downs, self.pools):
            x = block(x)
            skips.append(x)
            x = pool(x)
        x = self.bottleneck(x)
        for up, block, skip in zip(self.upsamples, self.ups, reversed(skips)):
            x = block(torch.cat([skip, up(x)], dim=1))
        return x

    def forward(self, x):
        x, (h, w) = pad_to_multiple(x, self.multiple)
        return self.head(self.features(x))[..., :h, :w]


# ------------------------------------------------------------------------------------------
# receptive field
# ------------------------------------------------------------------------------------------
def _span(module: nn.Module) -> int:
    """Sum of ``(k - 1) * dilation`` over the main path's convolutions (rows axis)."""
    convs = module.convs() if hasattr(module, "convs") else [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    total = 0
    for conv in convs:
        if conv.stride[0] != 1:
            raise InputError("receptive_field: strided convolutions inside a U-Net block are not supported")
        total += (conv.kernel_size[0] - 1) * conv.dilation[0]
    return total


def _pool_size(pool: nn.MaxPool2d) -> int:
    k = pool.kernel_size if isinstance(pool.kernel_size, int) else pool.kernel_size[0]
    s = pool.stride if isinstance(pool.stride, int) else pool.stride[0]
    if k != s:
        raise InputError(f"receptive_field: pool kernel {k} differs from its stride {s}")
    return int(k)


def receptive_field(net: UNet, *, exact: bool = False) -> int:
    """Receptive field (px, one axis) of the built ``net``, read from its layers.

    ``exact=False``: the theoretical RF (the paper's convention, see the module docstring).
    ``exact=True``: the largest support, over output positions, of one output pixel on an
    unbounded input (interval propagation through every path, nearest upsampling and max
    pooling taken exactly; equals the extent of a gradient of that pixel with positive weights).
    """
    pools = [_pool_size(p) for p in net.pools]
    enc = [_span(b) for b in net.downs]
    bott = _span(net.bottleneck)
    dec = [_span(b) for b in net.ups][::-1]          # index = level
    head = (net.head.kernel_size[0] - 1) * net.head.dilation[0]
    b = len(pools)
    if not exact:
        rf, jump = 1 + head, 1
        for level in range(b):
            rf += enc[level] * jump + dec[level] * jump + (pools[level] - 1) * jump
            jump *= pools[level]
        return rf + bott * jump

    def encoder(level: int, lo: int, hi: int) -> tuple[int, int]:
        """Input interval feeding encoder block ``level``'s output interval (level b: bottleneck)."""
        r = bott if level == b else enc[level]
        lo, hi = lo - r // 2, hi + (r - r // 2)
        if level == 0:
            return lo, hi
        p = pools[level - 1]
        return encoder(level - 1, lo * p, hi * p + p - 1)

    def decoder(level: int, lo: int, hi: int) -> tuple[int, int]:
        r = dec[level]
        lo, hi = lo - r // 2, hi + (r - r // 2)
        skip = encoder(level, lo, hi)
        p = pools[level]
        ulo, uhi = lo // p, hi // p
        up = decoder(level + 1, ulo, uhi) if level + 1 < b else encoder(b, ulo, uhi)
        return min(skip[0], up[0]), max(skip[1], up[1])

    best = 0
    hr = head // 2
    for x in range(math.prod(pools)):
        lo, hi = decoder(0, x - hr, x + (head - hr))
        best = max(best, hi - lo + 1)
    return best
