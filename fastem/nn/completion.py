"""The partial-scan completion GAN's networks (seed 000 section 2.2 and appendix B).

* :class:`InnerGenerator` -- works on the half-size input (bilinear 2x downsample of the
  ``(partial scan, path)`` channels): a first convolution, four stride-2 convolutions,
  ``inner_blocks`` skip-3 residual blocks, four stride-2 transposed convolutions back to half
  size; returns half-size features.
* :class:`AuxiliaryTrainer` -- a small head on the inner features producing a half-size
  completion (eq. 7), trained against the bilinearly downsampled blurred truth.
* :class:`OuterGenerator` -- embeds the full-size input (a first convolution, a stride-2
  convolution), concatenates the inner generator's features, ``outer_blocks`` residual
  blocks, a stride-2 transposed convolution back to full size, a convolution and the output
  convolution (no norm, no activation).
* :class:`CompletionGenerator` -- inner + outer (+ the auxiliary trainer); fully
  convolutional: any input size (reflect-padded internally to a multiple of 32, cropped back).
* :class:`Discriminator`, :class:`MultiScaleDiscriminator` -- spectral-normalised strided
  4x4 convolutions with leaky ReLU 0.2 and a scalar least-squares score per crop, applied to
  coverage-isotropic random crops at three scales (:mod:`fastem.nn.crops`), each resized to
  ``disc_input`` px.

Generator convolutions are weight-normalised, followed by running-mean-only batch norm and
ReLU, with no biases, ``V ~ N(0, 0.05)`` (:mod:`fastem.nn.blocks`). The authors' code combines
the inner features with the outer embedding at half size (the outer generator's last
transposed convolution does the upsampling); this follows it, with a concatenation.

:class:`CompletionConfig` holds every width; the default ``width = 0.25`` scales the paper's
channel counts (inner 64/128/256/512/768, outer 32/64/64/32, discriminators 64/128/256/512)
by 1/4 and uses 3 inner residual blocks (paper: 6), so a CPU trains a useful model on 64-128 px
crops; ``CompletionConfig.paper()`` is the full-size network.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fastem.errors import InputError

from .blocks import (DISC_INIT_STD, GenConv, GenDeconv, ResidualBlock, SNConv2d, WNConv2d)
from .crops import DEFAULT_SPREAD, sample_crop_starts, scaled_crop_sizes
from .model import register_kind

__all__ = ["CompletionConfig", "InnerGenerator", "AuxiliaryTrainer", "OuterGenerator", "CompletionGenerator",
           "Discriminator", "MultiScaleDiscriminator", "PAD_MULTIPLE"]

#: input sides are padded to a multiple of this (half size, then four stride-2 convolutions)
PAD_MULTIPLE = 32


@dataclass
class CompletionConfig:
    """Architecture and training hyper-parameters of the completion GAN (JSON-able).

    Architecture: ``width`` multiplies every channel count below (rounded, at least 4);
    ``inner_features`` (first conv + four strided convs), ``inner_blocks``, ``outer_features``
    (embed, strided embed, residual width, output-side width), ``outer_blocks``, first-kernel
    sizes ``inner_kernel`` / ``outer_kernel`` (seed 000 fig. 8: 3 and 7), ``aux_features``,
    ``disc_features``, ``disc_input`` (side the crops are resized to), ``disc_crops`` (crop
    sides at ``disc_reference`` px; scaled to the training crop), ``bn_decay``.

    Losses (eqs. 6-10): ``mse_scale`` (the Huberised MSE is ``h(mse_scale * MSE)``),
    ``lambda_adv``, ``lambda_aux``, ALRC settings ``alrc_n``, ``alrc_beta``, ``alrc_mu1``,
    ``alrc_mu2``. Replay (eqs. 11-15): ``replay_size``, ``replay_prob``. Schedule: ``lr_stage1``,
    ``lr_stage2``, ``lr_disc``, ``beta1_start``, ``beta1_end``, ``decay_steps``. Switches for
    ablations: ``adversarial``, ``alrc``, ``replay``, ``auxiliary``.
    """

    width: float = 0.25
    inner_features: tuple = (64, 128, 256, 512, 768)
    inner_blocks: int = 3
    outer_features: tuple = (32, 64, 64, 32)
    outer_blocks: int = 3
    inner_kernel: int = 3
    outer_kernel: int = 7
    aux_features: int = 64
    disc_features: tuple = (64, 128, 256, 512)
    disc_input: int = 32
    disc_crops: tuple = (70, 140, 280)
    disc_reference: int = 512
    crop_spread: float = DEFAULT_SPREAD
    bn_decay: float = 0.99
    mse_scale: float = 200.0
    lambda_adv: float = 2.0
    lambda_aux: float = 1.0
    alrc_n: float = 3.0
    alrc_beta: float = 0.999
    alrc_mu1: float = 25.0
    alrc_mu2: float = 900.0
    replay_size: int = 50
    replay_prob: float = 0.2
    lr_stage1: float = 2e-4
    lr_stage2: float = 1e-4
    lr_disc: float = 1e-4
    beta1_start: float = 0.9
    beta1_end: float = 0.5
    decay_steps: int = 8
    adversarial: bool = True
    alrc: bool = True
    replay: bool = True
    auxiliary: bool = True

    @classmethod
    def paper(cls, **overrides) -> "CompletionConfig":
        """The full-size network of seed 000 (70 px discriminator inputs, 6 inner residual blocks)."""
        return cls(**{"width": 1.0, "inner_blocks": 6, "disc_input": 70, **overrides})

    def ch(self, n: int) -> int:
        """A channel count scaled by ``width``."""
        return max(4, int(round(n * self.width)))

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "CompletionConfig":
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise InputError(f"completion config: unknown entries {', '.join(unknown)}")
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()}
        return cls(**kw)

    def __post_init__(self):
        if not self.width > 0:
            raise InputError(f"width must be > 0, got {self.width}")
        for name in ("lr_stage1", "lr_stage2", "lr_disc"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 < value <= 1):
                raise InputError(f"{name} must be a finite learning rate in (0, 1], got {value}")
        if len(self.inner_features) != 5 or len(self.outer_features) != 4 or len(self.disc_features) < 1:
            raise InputError("inner_features needs 5 entries, outer_features 4, disc_features at least 1")


class InnerGenerator(nn.Module):
    """Half-size generator. ``(N, 2, H/2, W/2) -> (N, C, H/2, W/2)``, ``C = ch(outer_features[1])``.

    ``H/2`` and ``W/2`` must be multiples of 16.
    """

    def __init__(self, cfg: CompletionConfig, cin: int = 2):
        super().__init__()
        f = [cfg.ch(n) for n in cfg.inner_features]
        out = cfg.ch(cfg.outer_features[1])
        d = cfg.bn_decay
        self.head = GenConv(cin, f[0], cfg.inner_kernel, decay=d)
        self.down = nn.Sequential(*[GenConv(f[i], f[i + 1], 3, 2, decay=d) for i in range(4)])
        self.blocks = nn.Sequential(*[ResidualBlock(f[4], 3, decay=d) for _ in range(cfg.inner_blocks)])
        ups = [f[3], f[2], f[1], out]
        self.up = nn.Sequential(*[GenDeconv(a, b, d) for a, b in zip([f[4]] + ups[:-1], ups)])
        self.out_channels = out

    def forward(self, x):
        return self.up(self.blocks(self.down(self.head(x))))


class AuxiliaryTrainer(nn.Module):
    """Auxiliary head (eq. 7): inner features ``(N, C, h, w)`` -> half-size completion ``(N, 1, h, w)``."""

    def __init__(self, cfg: CompletionConfig, cin: int):
        super().__init__()
        self.body = GenConv(cin, cfg.ch(cfg.aux_features), 3, decay=cfg.bn_decay)
        self.out = WNConv2d(cfg.ch(cfg.aux_features), 1, 3)
        self.out.skip_data_init = True

    def forward(self, feats):
        return self.out(self.body(feats))


class OuterGenerator(nn.Module):
    """Full-size generator: ``(N, 2, H, W)`` and inner features ``(N, C, H/2, W/2)`` -> ``(N, 1, H, W)``."""

    def __init__(self, cfg: CompletionConfig, inner_channels: int, cin: int = 2):
        super().__init__()
        g = [cfg.ch(n) for n in cfg.outer_features]
        d = cfg.bn_decay
        self.embed = GenConv(cin, g[0], cfg.outer_kernel, decay=d)
        self.down = GenConv(g[0], g[1], 3, 2, decay=d)
        self.fuse = GenConv(g[1] + inner_channels, g[2], 3, decay=d)
        self.blocks = nn.Sequential(*[ResidualBlock(g[2], 3, decay=d) for _ in range(cfg.outer_blocks)])
        self.up = GenDeconv(g[2], g[3], d)
        self.tail = GenConv(g[3], g[3], 3, decay=d)
        self.out = WNConv2d(g[3], 1, 3)
        self.out.skip_data_init = True

    def forward(self, x, inner_feats):
        e = self.down(self.embed(x))
        e = self.fuse(torch.cat([e, inner_feats], dim=1))
        return self.out(self.tail(self.up(self.blocks(e))))


def _pad_to(x, multiple: int):
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    mode = "reflect" if (ph < h and pw < w) else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (h, w)


class CompletionGenerator(nn.Module):
    """Inner + outer generator and the auxiliary trainer (seed 000 fig. 2).

    ``forward(x)`` with ``x`` float32 ``(N, 2, H, W)`` -- channel 0 the partial scan in [-1, 1]
    (nearest infill), channel 1 the path dwell in [0, 1] -- returns ``(completion (N, 1, H, W),
    auxiliary half-size completion (N, 1, ceil(H/2), ceil(W/2)))``, both in the target's
    [-1, 1] scale. Any ``H, W >= 2``: the input is reflect-padded to a multiple of 32 and the
    outputs are cropped back. :meth:`complete` returns the completion only.
    """

    def __init__(self, cfg: CompletionConfig | None = None):
        super().__init__()
        self.config = cfg or CompletionConfig()
        self.inner = InnerGenerator(self.config)
        self.outer = OuterGenerator(self.config, self.inner.out_channels)
        self.aux = AuxiliaryTrainer(self.config, self.inner.out_channels)

    def forward(self, x):
        if x.dim() != 4 or x.shape[1] != 2:
            raise InputError(f"generator input must be (batch, 2, rows, cols), got {tuple(x.shape)}")
        xp, (h, w) = _pad_to(x, PAD_MULTIPLE)
        small = F.interpolate(xp, scale_factor=0.5, mode="bilinear", align_corners=False)
        feats = self.inner(small)
        out = self.outer(xp, feats)[..., :h, :w]
        aux = self.aux(feats)[..., :(h + 1) // 2, :(w + 1) // 2]
        return out, aux

    def complete(self, x):
        """Completion only (``(N, 1, H, W)``); the auxiliary head is skipped."""
        xp, (h, w) = _pad_to(x, PAD_MULTIPLE)
        small = F.interpolate(xp, scale_factor=0.5, mode="bilinear", align_corners=False)
        return self.outer(xp, self.inner(small))[..., :h, :w]

    def generator_parameters(self):
        """Parameters of the inner and outer generators (not the auxiliary trainer)."""
        return list(self.inner.parameters()) + list(self.outer.parameters())


class Discriminator(nn.Module):
    """Spectral-normalised discriminator: ``(N, 1, S, S) -> (N,)`` least-squares scores.

    ``len(features)`` stride-2 4x4 convolutions with leaky ReLU 0.2, a 3x3 convolution to one
    channel and the spatial mean (seed 000 fig. 22; the authors sum the last features).
    Weights ``N(0, 0.03)``, zero biases.
    """

    def __init__(self, features=(16, 32, 64, 128)):
        super().__init__()
        layers, cin = [], 1
        for f in features:
            layers += [SNConv2d(cin, f, 4, 2, padding=1), nn.LeakyReLU(0.2)]
            cin = f
        layers.append(SNConv2d(cin, 1, 3, 1, padding=1, std=DISC_INIT_STD))
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x).mean(dim=(1, 2, 3))


class MultiScaleDiscriminator(nn.Module):
    """One :class:`Discriminator` per crop scale (seed 000: 70, 140 and 280 px of 512 px images).

    :meth:`crop` cuts coverage-isotropic crops (same places for every tensor given) and resizes
    them to ``disc_input``; ``forward(crops)`` returns a list of ``(N,)`` scores per scale.
    """

    def __init__(self, cfg: CompletionConfig | None = None):
        super().__init__()
        self.config = cfg or CompletionConfig()
        feats = tuple(self.config.ch(n) for n in self.config.disc_features)
        self.nets = nn.ModuleList([Discriminator(feats) for _ in self.config.disc_crops])

    def crop_sizes(self, image_size: int) -> tuple:
        c = self.config
        return scaled_crop_sizes(image_size, c.disc_crops, c.disc_reference)

    def crop(self, rng: np.random.Generator, *images):
        """Per scale, crops of each of ``images`` (``(N, 1, H, W)``) at shared random places.

        Returns a list (one entry per scale) of tuples (one per image) of ``(N, 1, d, d)`` tensors.
        """
        n, _, h, w = images[0].shape
        size = min(h, w)
        out = []
        d = self.config.disc_input
        for s in self.crop_sizes(size):
            starts = sample_crop_starts(rng, (h, w), s, n, self.config.crop_spread)
            per = []
            for img in images:
                crops = torch.stack([img[b, :, r:r + s, c:c + s] for b, (r, c) in enumerate(starts.tolist())])
                if s != d:
                    crops = F.interpolate(crops, size=(d, d), mode="bilinear", align_corners=False,
                                          antialias=s > d)
                per.append(crops)
            out.append(tuple(per))
        return out

    def forward(self, crops_per_scale):
        return [net(c) for net, c in zip(self.nets, crops_per_scale)]


#: model-file kind of the completion generator (:mod:`fastem.nn.model`)
MODEL_KIND = "completion-gan"
register_kind(MODEL_KIND, lambda cfg: CompletionGenerator(CompletionConfig.from_dict(cfg)))
