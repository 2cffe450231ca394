"""Pretext corruptions of seed 002 (section 4.1): Gaussian noise, blur, flips, rotations, mixed.

"For training, random Gaussian noise, blurring, flipping, and rotations were applied to the
images used as input to the generator. The generator was trained to predict images
indistinguishable from the original 'clean' images." The paper gives no magnitudes or mixing
rule; :class:`CorruptionConfig` holds ours:

* **noise**: additive Gaussian noise of std ``U(noise[0], noise[1])`` times the image's std
  (images are standardised, so in absolute units), with probability ``p_noise``;
* **blur**: Gaussian blur of std ``U(blur[0], blur[1])`` px (reflect padding, kernel
  ``2 ceil(3 sigma) + 1``), with probability ``p_blur``;
* **flip** (left-right, probability ``p_flip``) and **rotation** by 90, 180 or 270 degrees
  (probability ``p_rot``): lossless, so no interpolation blur leaks into the target;
* ``mix``: ``"paper"`` (each of the four independently, at least one of noise / blur),
  ``"noise"``, ``"blur"``, ``"noise+blur"`` (both always), ``"none"``.

``geometric`` says where flips / rotations go: ``"both"`` (default: the input *and* the target
are flipped / rotated, i.e. augmentation; the generator learns to remove noise and blur) or
``"input"`` (the paper read literally: only the input, so the generator must also undo the
flip / rotation -- ill-posed for isotropic textures).

Determinism: every draw for example ``index`` comes from
``numpy.random.default_rng([seed, index, 0x5C0])`` (noise fields included, drawn on the
host), so a corrupted example depends only on ``(seed, index)`` and the clean image, not on
the batch it is in, the device or a resume.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch.nn import functional as F

from fastem.errors import InputError

__all__ = ["CorruptionConfig", "MIXES", "corruption_params", "corrupt", "corrupt_batch", "gaussian_blur"]

MIXES = ("paper", "noise", "blur", "noise+blur", "none")
_STREAM = 0x5C0


@dataclass(frozen=True)
class CorruptionConfig:
    """Pretext corruption settings (see the module docstring). Lengths in px, noise in image stds."""

    mix: str = "paper"
    noise: tuple = (0.1, 0.6)
    blur: tuple = (0.6, 2.0)
    p_noise: float = 0.8
    p_blur: float = 0.5
    p_flip: float = 0.5
    p_rot: float = 0.75
    geometric: str = "both"

    def __post_init__(self):
        if self.mix not in MIXES:
            raise InputError(f"corruption mix must be one of {', '.join(MIXES)}, got {self.mix!r}")
        if self.geometric not in ("both", "input"):
            raise InputError(f"geometric must be 'both' or 'input', got {self.geometric!r}")
        for name in ("noise", "blur"):
            lo, hi = getattr(self, name)
            if not (0 <= lo <= hi and math.isfinite(hi)):
                raise InputError(f"corruption {name} range must be 0 <= low <= high, got {(lo, hi)}")
        for name in ("p_noise", "p_blur", "p_flip", "p_rot"):
            if not 0 <= getattr(self, name) <= 1:
                raise InputError(f"{name} must be a probability in [0, 1], got {getattr(self, name)}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["noise"], d["blur"] = list(self.noise), list(self.blur)
        return d


def corruption_params(seed: int, index: int, config: CorruptionConfig = CorruptionConfig()) -> dict:
    """The draws for example ``index``: ``{"noise_std", "blur_sigma", "flip", "rot", "rng"}``.

    ``noise_std`` / ``blur_sigma`` are 0 when not applied; ``rot`` is the number of 90 degree
    turns; ``rng`` is the example's generator, positioned for drawing its noise field.
    """
    rng = np.random.default_rng([int(seed), int(index), _STREAM])
    u = rng.random(4)
    c = config
    use_noise = use_blur = False
    if c.mix == "paper":
        use_noise, use_blur = u[0] < c.p_noise, u[1] < c.p_blur
        if not (use_noise or use_blur):
            use_noise, use_blur = (u[2] < 0.5), (u[2] >= 0.5)
    elif c.mix in ("noise", "noise+blur"):
        use_noise = True
        use_blur = c.mix == "noise+blur"
    elif c.mix == "blur":
        use_blur = True
    noise_std = float(rng.uniform(*c.noise)) if use_noise else 0.0
    blur_sigma = float(rng.uniform(*c.blur)) if use_blur else 0.0
    geo = c.mix != "none"
    flip = bool(geo and rng.random() < c.p_flip)
    rot = int(rng.integers(1, 4)) if (geo and rng.random() < c.p_rot) else 0
    return {"noise_std": noise_std, "blur_sigma": blur_sigma, "flip": flip, "rot": rot, "rng": rng}


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a (N, C, H, W) tensor (reflect padding; replicate if too small)."""
    if sigma <= 0:
        return x
    r = int(math.ceil(3.0 * sigma))
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).to(x.dtype).to(x.device)
    c = x.shape[1]
    mode = "reflect" if r < min(x.shape[-2:]) else "replicate"
    y = F.pad(x, (r, r, r, r), mode=mode)
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _geometric(x: torch.Tensor, flip: bool, rot: int) -> torch.Tensor:
    if flip:
        x = torch.flip(x, dims=(-1,))
    if rot:
        x = torch.rot90(x, rot, dims=(-2, -1))
    return x


def corrupt(image: torch.Tensor, seed: int, index: int, config: CorruptionConfig = CorruptionConfig()):
    """Corrupt one clean (C, H, W) image; returns ``(input, target)`` (both (C, H, W)).

    Rotations need square images when ``config.geometric == "input"`` (otherwise the two
    would differ in shape); with ``"both"`` non-square images are rotated alike.
    """
    p = corruption_params(seed, index, config)
    x = image.unsqueeze(0)
    target = x
    if config.geometric == "both":
        x = target = _geometric(x, p["flip"], p["rot"])
    else:
        if p["rot"] % 2 and x.shape[-1] != x.shape[-2]:
            raise InputError(f"rotating only the input needs square images, got {tuple(x.shape[-2:])}")
        x = _geometric(x, p["flip"], p["rot"])
    if p["blur_sigma"] > 0:
        x = gaussian_blur(x, p["blur_sigma"])
    if p["noise_std"] > 0:
        noise = p["rng"].standard_normal(tuple(x.shape[1:]), dtype=np.float32)
        x = x + p["noise_std"] * torch.from_numpy(noise).to(x.device, x.dtype).unsqueeze(0)
    return x[0], target[0]


def corrupt_batch(clean: torch.Tensor, seed: int, indices, config: CorruptionConfig = CorruptionConfig()):
    """Corrupt a (N, C, H, W) batch; example ``b`` uses ``indices[b]``. Returns ``(inputs, targets)``."""
    if clean.dim() != 4:
        raise InputError(f"clean images must be (N, C, H, W), got shape {tuple(clean.shape)}")
    indices = [int(i) for i in indices]
    if len(indices) != clean.shape[0]:
        raise InputError(f"{len(indices)} indices for {clean.shape[0]} images")
    pairs = [corrupt(clean[b], seed, i, config) for b, i in enumerate(indices)]
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
