"""An HRNet-style image-to-image generator (Wang et al. 2020; seed 002's largest generator).

Seed 002 uses HRNet (its ref. 45/50) as a Pix2Pix generator and fine-tunes it; it gives no
configuration. This follows HRNet-W18's layout, scaled by ``width``:

* stem: two stride-2 3x3 convolutions (batch norm, ReLU) to 1/4 resolution, then
  ``stem_blocks`` residual blocks;
* stages 2-4: each adds a branch at half the resolution of the previous lowest one (a stride-2
  3x3 convolution from it) and runs ``modules[i]`` high-resolution modules; a module runs
  ``blocks`` basic residual blocks per branch, then fuses every branch into every other one
  (1x1 convolution + bilinear upsampling from lower resolutions, chains of stride-2 3x3
  convolutions from higher ones, summed, ReLU). Branch ``i`` has ``width * 2**i`` channels;
* head: every branch upsampled to 1/4 resolution and concatenated, a 1x1 convolution, bilinear
  upsampling to full resolution, a 3x3 convolution and the 1x1 output convolution (the
  ``head``; :meth:`HRNet.features` stops before it).

Unlike the U-Net, no full-resolution feature reaches the output except through the 1/4
resolution branches (seed 002 section 4.1 discusses this). Any input size: padded (reflect)
to a multiple of 32 and cropped back. Tensors are float32 ``(N, C, H, W)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from fastem.errors import InputError

from .blocks import NORMS, ConvNormAct, ProjectedResidualBlock, pad_to_multiple
from .netconfig import TupleFieldsConfig

__all__ = ["HRNetConfig", "HRNet"]


@dataclass
class HRNetConfig(TupleFieldsConfig):
    """HRNet generator architecture (JSON-able).

    ``width``: channels of the highest-resolution branch (18 = HRNet-W18); ``stem_features``:
    channels of the stem; ``stem_blocks``: residual blocks after the stem; ``modules``:
    high-resolution modules in stages 2, 3, 4 (HRNet-W18: 1, 4, 3; default 1, 1, 1 for CPUs);
    ``blocks``: residual blocks per branch in a module (HRNet: 4; default 2); ``head_features``;
    ``norm``; ``in_channels``, ``out_channels``.
    """

    width: int = 18
    stem_features: int = 32
    stem_blocks: int = 1
    modules: tuple = (1, 1, 1)
    blocks: int = 2
    head_features: int = 32
    norm: str = "batch"
    in_channels: int = 1
    out_channels: int = 1

    TUPLE_FIELDS = ("modules",)  # a class attribute, not a field

    def __post_init__(self):
        self.modules = tuple(int(m) for m in self.modules)
        if len(self.modules) != 3 or any(m < 1 for m in self.modules):
            raise InputError(f"HRNet modules must be 3 counts >= 1 (stages 2-4), got {self.modules}")
        if min(int(self.width), int(self.stem_features), int(self.head_features), int(self.blocks) + 1) < 1:
            raise InputError("HRNet widths and block counts must be >= 1")
        if self.norm not in NORMS:
            raise InputError(f"norm must be one of {', '.join(NORMS)}, got {self.norm!r}")


class _Fuse(nn.Module):
    """Exchange unit: output branch ``j`` = ReLU(sum_i T_ij(x_i))."""

    def __init__(self, widths: list[int], norm: str):
        super().__init__()
        n = len(widths)
        self.paths = nn.ModuleList()
        for j in range(n):
            row = nn.ModuleList()
            for i in range(n):
                if i == j:
                    row.append(nn.Identity())
                elif i > j:   # lower resolution -> 1x1 conv, upsampled in forward
                    row.append(ConvNormAct(widths[i], widths[j], 1, norm=norm, act="none"))
                else:         # higher resolution -> (j - i) stride-2 convolutions
                    steps = []
                    for k in range(j - i):
                        last = k == j - i - 1
                        steps.append(ConvNormAct(widths[i], widths[j] if last else widths[i], 3, 2, norm=norm,
                                                 act="none" if last else "relu"))
                    row.append(nn.Sequential(*steps))
            self.paths.append(row)

    def forward(self, xs):
        out = []
        for j, row in enumerate(self.paths):
            size = xs[j].shape[-2:]
            acc = None
            for i, path in enumerate(row):
                y = path(xs[i])
                if i > j:
                    y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
                acc = y if acc is None else acc + y
            out.append(F.relu(acc))
        return out


class _HRModule(nn.Module):
    def __init__(self, widths: list[int], blocks: int, norm: str):
        super().__init__()
        self.branches = nn.ModuleList([nn.Sequential(*[ProjectedResidualBlock(w, w, norm=norm) for _ in range(blocks)])
                                       for w in widths])
        self.fuse = _Fuse(widths, norm)

    def forward(self, xs):
        return self.fuse([b(x) for b, x in zip(self.branches, xs)])


class HRNet(nn.Module):
    """HRNet-style generator (see the module docstring).

    ``forward(x)``: ``(N, in_channels, H, W) -> (N, out_channels, H, W)`` for any ``H, W``.
    """

    multiple = 32

    def __init__(self, config: HRNetConfig | None = None):
        super().__init__()
        c = self.config = config or HRNetConfig()
        w = int(c.width)
        self.stem = nn.Sequential(ConvNormAct(c.in_channels, c.stem_features, 3, 2, norm=c.norm),
                                  ConvNormAct(c.stem_features, c.stem_features, 3, 2, norm=c.norm),
                                  *[ProjectedResidualBlock(c.stem_features, c.stem_features, norm=c.norm)
                                    for _ in range(c.stem_blocks)],
                                  ConvNormAct(c.stem_features, w, 3, norm=c.norm))
        self.transitions = nn.ModuleList()
        self.stages = nn.ModuleList()
        widths = [w]
        for count in c.modules:
            self.transitions.append(ConvNormAct(widths[-1], 2 * widths[-1], 3, 2, norm=c.norm))
            widths = widths + [2 * widths[-1]]
            self.stages.append(nn.Sequential(*[_HRModule(widths, c.blocks, c.norm) for _ in range(count)]))
        self.widths = widths
        self.merge = ConvNormAct(sum(widths), c.head_features, 1, norm=c.norm)
        self.refine = ConvNormAct(c.head_features, c.head_features, 3, norm=c.norm)
        self.head = nn.Conv2d(c.head_features, c.out_channels, 1)
        self.feature_channels = c.head_features

    def encoder_modules(self) -> list[nn.Module]:
        return [self.stem, *self.transitions, *self.stages]

    def features(self, x):
        size = x.shape[-2:]
        xs = [self.stem(x)]
        for transition, stage in zip(self.transitions, self.stages):
            xs = stage(xs + [transition(xs[-1])])
        quarter = xs[0].shape[-2:]
        up = [xs[0]] + [F.interpolate(t, size=quarter, mode="bilinear", align_corners=False) for t in xs[1:]]
        y = self.merge(torch.cat(up, dim=1))
        y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return self.refine(y)

    def forward(self, x):
        x, (h, w) = pad_to_multiple(x, self.multiple)
        return self.head(self.features(x))[..., :h, :w]
