"""The 70x70 PatchGAN discriminator of Pix2Pix (Isola et al. 2017), used by seed 002's pretext task.

Five 4x4 convolutions with 64-128-256-512-1 output channels and strides 2, 2, 2, 1, 1 (padding
1), leaky ReLU 0.2 after all but the last, batch norm on the middle three (none on the first,
spec ``ssl_gan.md``). A conditional discriminator: it sees the generator's input and an image
(real or generated) concatenated along the channels, and returns one least-squares score per
70 x 70 px patch: a 256 x 256 input gives a 30 x 30 score map.

``features`` scales the widths (64 = the paper's; smaller on a CPU); ``norm`` may be
``"instance"`` or ``"none"``. :func:`conv_stack_receptive_field` reads the receptive field off
the built layers (70 for this stack). Tensors are float32 ``(N, C, H, W)``.
"""

from __future__ import annotations

from torch import nn

from .blocks import NORMS, ConvNormAct

__all__ = ["PatchGAN", "conv_stack_receptive_field", "patchgan_output_size"]


class PatchGAN(nn.Module):
    """70x70 PatchGAN: ``(N, in_channels, H, W) -> (N, 1, H/8 - 2, W/8 - 2)`` raw scores.

    Parameters
    ----------
    in_channels : int
        Channels of the (condition, image) pair: 2 for single-channel micrographs.
    features : int
        Width of the first layer (64 in Pix2Pix); the next ones double up to ``8 * features``.
    norm : "batch", "instance", "none"
        Norm of layers 2-4 (layer 1 never has one).
    """

    def __init__(self, in_channels: int = 2, features: int = 64, norm: str = "batch"):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
        f = int(features)
        self.config = {"in_channels": int(in_channels), "features": f, "norm": norm}
        self.layers = nn.Sequential(
            ConvNormAct(in_channels, f, 4, 2, padding=1, norm="none", act="lrelu", bias=True),
            ConvNormAct(f, 2 * f, 4, 2, padding=1, norm=norm, act="lrelu"),
            ConvNormAct(2 * f, 4 * f, 4, 2, padding=1, norm=norm, act="lrelu"),
            ConvNormAct(4 * f, 8 * f, 4, 1, padding=1, norm=norm, act="lrelu"),
            nn.Conv2d(8 * f, 1, 4, 1, 1),
        )
        for m in self.modules():   # Pix2Pix init: N(0, 0.02) weights, zero biases, BN weight N(1, 0.02)
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, condition, image):
        import torch

        return self.layers(torch.cat([condition, image], dim=1))


def _convs(module: nn.Module) -> list[nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


def conv_stack_receptive_field(module: nn.Module) -> int:
    """Theoretical receptive field (px) of a plain stack of convolutions, read from its layers.

    ``1 + sum_i (k_i - 1) * d_i * prod_{j < i} s_j`` over the convolutions in module order
    (valid for a sequential stack such as :class:`PatchGAN`; 70 for the Pix2Pix discriminator).
    """
    rf, jump = 1, 1
    for conv in _convs(module):
        rf += (conv.kernel_size[0] - 1) * conv.dilation[0] * jump
        jump *= conv.stride[0]
    return rf


def patchgan_output_size(size: int, module: nn.Module | None = None) -> int:
    """Side of the score map for a ``size`` px input: ``floor((n + 2p - k) / s) + 1`` per layer."""
    convs = _convs(module) if module is not None else None
    spec = [(c.kernel_size[0], c.stride[0], c.padding[0]) for c in convs] if convs else \
        [(4, 2, 1), (4, 2, 1), (4, 2, 1), (4, 1, 1), (4, 1, 1)]
    n = int(size)
    for k, s, p in spec:
        n = (n + 2 * p - k) // s + 1
    return n
