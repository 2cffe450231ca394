"""Generic network building blocks (PyTorch), shared by every ``fastem.nn`` network.

The completion GAN (seed 000, section 2.3 and appendix B) uses the generator pieces; the
self-supervised U-Net / HRNet / PatchGAN of issue 13 reuse the same blocks.

* :class:`WNConv2d`, :class:`WNConvTranspose2d` -- weight-normalised convolutions
  ``W = g * V / ||V||`` (Salimans & Kingma 2016; seed 000 "Weight normalization"), no bias,
  ``V ~ N(0, 0.05)``, optional data-dependent initialisation of ``g`` (:func:`data_init`).
* :class:`MeanOnlyBatchNorm` -- running-mean-only batch normalisation: subtract the batch
  channel means in training (tracking them with an EMA, decay 0.99), the running means in
  evaluation and once frozen (:func:`freeze_batch_norm`; seed 000 freezes it in the second
  half of training). No bias (seed 000: "There are no biases in the generator").
* :class:`GenConv` -- WN conv + mean-only BN + ReLU, the generator's unit.
* :class:`ResidualBlock` -- ``x + f(x)`` with ``f`` a stack of ``GenConv`` (seed 000's
  skip-3 blocks: three 3x3 convolutions).
* :class:`SNConv2d` -- spectrally normalised convolution (one power iteration per training
  forward), the discriminators' unit; init ``N(0, 0.03)``, zero bias.
* :func:`init_normal` -- ``N(0, std)`` weights and zero biases for any module tree.
* :class:`ConvNormAct` -- a plain convolution (``same`` padding, optional dilation) ->
  batch / instance / no norm -> ReLU / leaky ReLU 0.2 / nothing: the unit of the
  self-supervised U-Net, HRNet and PatchGAN (issue 13, seed 002), which use ordinary
  batch-normalised convolutions as Pix2Pix and Sytwu et al. do.
* :class:`ProjectedResidualBlock` -- ``act(f(x) + P x)`` with ``f`` two ``ConvNormAct`` and
  ``P`` a 1x1 convolution when the channel count changes (identity otherwise); Sytwu et al.'s
  U-Net block and HRNet's basic block.
* :func:`norm_layer` -- the norm layer by name; :func:`pad_to_multiple` -- reflect-pad the
  bottom/right of a batch to a multiple of a network's total downsampling.

All tensors are float32 ``(N, C, H, W)`` unless stated.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["WNConv2d", "WNConvTranspose2d", "MeanOnlyBatchNorm", "GenConv", "GenDeconv", "ResidualBlock",
           "SNConv2d", "init_normal", "data_init", "freeze_batch_norm", "count_parameters", "norm_layer",
           "ConvNormAct", "ProjectedResidualBlock", "NORMS", "pad_to_multiple"]

GEN_INIT_STD = 0.05   # seed 000: generator weights ~ N(0, 0.05)
DISC_INIT_STD = 0.03  # seed 000: discriminator weights ~ N(0, 0.03), zero biases


class _WeightNorm(nn.Module):
    """Shared parts of the weight-normalised convolutions (``g`` per output channel, ``V``)."""

    out_dim = 0  # axis of the output channels in ``v``

    def _init_wn(self, shape, std: float):
        self.v = nn.Parameter(torch.randn(shape) * std)
        dims = [d for d in range(len(shape)) if d != self.out_dim]
        self._dims = dims
        self.g = nn.Parameter(self.v.detach().pow(2).sum(dim=dims).sqrt().clone())
        self._init_pending = False

    def weight(self) -> torch.Tensor:
        """``g * V / ||V||`` (norm over every axis but the output channels)."""
        norm = self.v.pow(2).sum(dim=self._dims, keepdim=True).add(1e-12).sqrt()
        shape = [1] * self.v.dim()
        shape[self.out_dim] = -1
        return self.g.view(shape) * self.v / norm

    def _maybe_init(self, out: torch.Tensor) -> torch.Tensor:
        """Data-dependent init (see :func:`data_init`): scale ``g`` so the output channels have unit std."""
        if not self._init_pending:
            return out
        self._init_pending = False
        with torch.no_grad():
            std = out.std(dim=(0, 2, 3), unbiased=False)
            # a channel without spread (one value per channel: batch 1 on a 1x1 map, or a dead
            # channel) keeps its scale instead of being blown up by 1 / ~0
            std = torch.where(std > 1e-6, std, torch.ones_like(std))
            self.g.div_(std)
        return out / std.view(1, -1, 1, 1)


class WNConv2d(_WeightNorm):
    """Weight-normalised 2D convolution without bias, ``same`` zero padding.

    Parameters
    ----------
    cin, cout : int
        Input and output channels.
    kernel : int
        Square kernel width (odd).
    stride : int
    std : float
        Init of ``V ~ N(0, std)`` (seed 000: 0.05); ``g`` starts at ``||V||`` (so ``W = V``).

    Shapes: ``(N, cin, H, W) -> (N, cout, ceil(H/stride), ceil(W/stride))``, dtype of the input.
    """

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, std: float = GEN_INIT_STD):
        super().__init__()
        self.stride, self.padding = int(stride), int(kernel) // 2
        self._init_wn((cout, cin, kernel, kernel), std)

    def forward(self, x):
        return self._maybe_init(F.conv2d(x, self.weight(), None, self.stride, self.padding))


class WNConvTranspose2d(_WeightNorm):
    """Weight-normalised transposed convolution (upsampling by ``stride``), no bias.

    Shapes: ``(N, cin, H, W) -> (N, cout, stride*H, stride*W)`` (kernel 2*stride-ish: ``kernel``
    must be >= stride; padding chosen so the size is exactly multiplied).
    """

    out_dim = 1

    def __init__(self, cin: int, cout: int, kernel: int = 4, stride: int = 2, std: float = GEN_INIT_STD):
        super().__init__()
        if kernel < stride or (kernel - stride) % 2:
            raise ValueError(f"WNConvTranspose2d: kernel {kernel} must be >= stride {stride} with even difference")
        self.stride, self.padding = int(stride), (int(kernel) - int(stride)) // 2
        self._init_wn((cin, cout, kernel, kernel), std)

    def forward(self, x):
        return self._maybe_init(F.conv_transpose2d(x, self.weight(), None, self.stride, self.padding))


class MeanOnlyBatchNorm(nn.Module):
    """Running-mean-only batch normalisation (no scale, no bias).

    Training (not frozen): ``y = x - mean_{N,H,W}(x)`` and ``running_mean <- d*running_mean +
    (1-d)*mean`` (``d`` = ``decay``, 0.99). Evaluation or frozen: ``y = x - running_mean``.

    Shapes: ``(N, C, H, W) -> (N, C, H, W)``; ``running_mean`` is a float32 buffer (C,).
    """

    def __init__(self, channels: int, decay: float = 0.99):
        super().__init__()
        self.decay = float(decay)
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("frozen", torch.zeros((), dtype=torch.bool))

    def forward(self, x):
        if self.training and not bool(self.frozen):
            mean = x.mean(dim=(0, 2, 3))
            with torch.no_grad():
                self.running_mean.mul_(self.decay).add_((1.0 - self.decay) * mean.detach())
            return x - mean.view(1, -1, 1, 1)
        return x - self.running_mean.view(1, -1, 1, 1)


class GenConv(nn.Sequential):
    """Generator unit: :class:`WNConv2d` -> :class:`MeanOnlyBatchNorm` -> ReLU.

    ``norm=False, act=False`` gives a bare WN convolution (the generators' output layers).
    """

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, *, norm: bool = True,
                 act: bool = True, decay: float = 0.99):
        layers = [WNConv2d(cin, cout, kernel, stride)]
        if norm:
            layers.append(MeanOnlyBatchNorm(cout, decay))
        if act:
            layers.append(nn.ReLU())
        super().__init__(*layers)


class GenDeconv(nn.Sequential):
    """Generator upsampling unit: :class:`WNConvTranspose2d` (x2) -> mean-only BN -> ReLU."""

    def __init__(self, cin: int, cout: int, decay: float = 0.99):
        super().__init__(WNConvTranspose2d(cin, cout, 4, 2), MeanOnlyBatchNorm(cout, decay), nn.ReLU())


class ResidualBlock(nn.Module):
    """``x + f(x)``, ``f`` = ``n_convs`` :class:`GenConv` (3x3, ``features`` channels).

    Seed 000 appendix B: "skip-3" residual blocks. Shapes: ``(N, F, H, W) -> (N, F, H, W)``.
    """

    def __init__(self, features: int, n_convs: int = 3, kernel: int = 3, decay: float = 0.99):
        super().__init__()
        self.body = nn.Sequential(*[GenConv(features, features, kernel, decay=decay) for _ in range(n_convs)])

    def forward(self, x):
        return x + self.body(x)


class SNConv2d(nn.Module):
    """Spectrally normalised convolution with bias (discriminators).

    ``torch.nn.utils.parametrizations.spectral_norm`` with one power iteration per training
    forward (seed 000 "Spectral normalization"); weights ``N(0, std)``, zero bias.
    Shapes: ``(N, cin, H, W) -> (N, cout, floor((H + 2p - k)/s) + 1, ...)``.
    """

    def __init__(self, cin: int, cout: int, kernel: int = 4, stride: int = 2, padding: int | None = None,
                 std: float = DISC_INIT_STD, bias: bool = True):
        super().__init__()
        conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2 if padding is None else padding, bias=bias)
        init_normal(conv, std)
        self.conv = nn.utils.parametrizations.spectral_norm(conv, n_power_iterations=1)

    def forward(self, x):
        return self.conv(x)


def init_normal(module: nn.Module, std: float = GEN_INIT_STD) -> nn.Module:
    """Weights of every conv / linear in ``module`` ~ ``N(0, std)``, biases 0 (in place; returns it)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            with torch.no_grad():
                m.weight.normal_(0.0, std)
                if m.bias is not None:
                    m.bias.zero_()
    return module


@torch.no_grad()
def data_init(model: nn.Module, *example) -> None:
    """Data-dependent init of the weight-normalised layers (seed 000 "Initialization").

    Propagates ``example`` once; every :class:`WNConv2d` / :class:`WNConvTranspose2d`, in
    forward order, divides its ``g`` by the std of its output channels so each layer's output
    has unit variance. Layers with ``skip_data_init = True`` (the generators' output
    convolutions, which keep their ``N(0, 0.05)`` scale so the first completions are small)
    are left alone. Mean-only BN running means are left at their initial values.
    """
    wn = [m for m in model.modules() if isinstance(m, _WeightNorm) and not getattr(m, "skip_data_init", False)]
    for m in wn:
        m._init_pending = True
    was = model.training
    model.train()
    saved = {n: b.clone() for n, b in model.named_buffers()}
    try:
        model(*example)
    finally:
        for m in wn:
            m._init_pending = False
        for n, b in model.named_buffers():
            b.copy_(saved[n])
        model.train(was)


def freeze_batch_norm(module: nn.Module, frozen: bool = True) -> None:
    """Freeze (use and keep the running means) or unfreeze every :class:`MeanOnlyBatchNorm`."""
    for m in module.modules():
        if isinstance(m, MeanOnlyBatchNorm):
            m.frozen.fill_(bool(frozen))


def count_parameters(module: nn.Module) -> int:
    """Number of trainable scalars in ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


#: norm layers :func:`norm_layer` knows
NORMS = ("batch", "instance", "none")


def norm_layer(kind: str, channels: int) -> nn.Module:
    """``"batch"`` -> ``BatchNorm2d``, ``"instance"`` -> affine ``InstanceNorm2d``, ``"none"`` -> identity."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {kind!r}")


def _activation(kind: str) -> nn.Module:
    if kind == "relu":
        return nn.ReLU()
    if kind == "lrelu":
        return nn.LeakyReLU(0.2)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"act must be relu, lrelu or none, got {kind!r}")


class ConvNormAct(nn.Sequential):
    """``Conv2d`` -> norm -> activation.

    Parameters
    ----------
    cin, cout : int
        Input and output channels.
    kernel, stride, dilation : int
        Square kernel; ``padding`` defaults to ``dilation * (kernel - 1) // 2`` (``same`` for odd
        kernels at stride 1).
    norm : "batch", "instance", "none"
    act : "relu", "lrelu" (slope 0.2), "none"
    padding : int, optional
    bias : bool, optional
        Default: a bias only without norm (a norm's shift makes it redundant).

    Shapes: ``(N, cin, H, W) -> (N, cout, floor((H + 2p - d(k-1) - 1)/s) + 1, ...)``, float32.
    """

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, *, dilation: int = 1,
                 norm: str = "batch", act: str = "relu", padding: int | None = None, bias: bool | None = None):
        pad = dilation * (kernel - 1) // 2 if padding is None else int(padding)
        conv = nn.Conv2d(cin, cout, kernel, stride, pad, dilation=dilation,
                         bias=(norm == "none") if bias is None else bool(bias))
        super().__init__(conv, norm_layer(norm, cout), _activation(act))

    @property
    def conv(self) -> nn.Conv2d:
        return self[0]


class ProjectedResidualBlock(nn.Module):
    """``act(norm(conv(act(norm(conv(x))))) + P x)``: two 3x3 convolutions and a skip.

    ``P`` is a 1x1 convolution when ``cin != cout`` (or ``project=True``), else the identity.
    Sytwu et al. 2022 (seed 002 ref. 46) build their U-Net from these blocks; HRNet's basic
    block is the same with ``cin == cout``. ``dilation`` dilates both 3x3 convolutions.

    Shapes: ``(N, cin, H, W) -> (N, cout, H, W)``.
    """

    def __init__(self, cin: int, cout: int, *, kernel: int = 3, dilation: int = 1, norm: str = "batch",
                 act: str = "relu", project: bool | None = None):
        super().__init__()
        self.body = nn.Sequential(ConvNormAct(cin, cout, kernel, dilation=dilation, norm=norm, act=act),
                                  ConvNormAct(cout, cout, kernel, dilation=dilation, norm=norm, act="none"))
        need = cin != cout if project is None else bool(project)
        self.skip = nn.Conv2d(cin, cout, 1) if need else nn.Identity()
        self.act = _activation(act)

    def convs(self) -> list[nn.Conv2d]:
        """The main path's convolutions, in order (for receptive-field bookkeeping)."""
        return [m.conv for m in self.body]

    def forward(self, x):
        return self.act(self.body(x) + self.skip(x))


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad the bottom and right of ``x`` (N, C, H, W) so H and W are multiples of ``multiple``.

    Reflection padding where the image is large enough, edge replication otherwise. Returns
    ``(padded, (H, W))``; crop a network's output back with ``y[..., :H, :W]``.
    """
    h, w = int(x.shape[-2]), int(x.shape[-1])
    ph, pw = (-h) % int(multiple), (-w) % int(multiple)
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)
