"""The self-supervised generators by name, and their model-file kind (issue 13, seed 002).

Names: the U-Net_B_RF variants of :data:`fastem.nn.unet.UNET_VARIANTS` (``unet-2-44``, ...,
``unet-4-424``) and ``hrnet``. A generator's *config* is a JSON-able dict
``{"arch": name, "net": {...UNetConfig or HRNetConfig...}}``; :func:`build_generator` turns it
into the network. Model files of kind :data:`MODEL_KIND` (``"ssl-generator"``) hold such a
config, the weights and a record whose ``task`` says what the weights do: ``"pretext"``
(restoring corrupted micrographs; the pretrained generator), ``"segment"``, ``"denoise"``,
``"background"`` or ``"superres"``. Every task keeps the architecture (one output channel; a
segmentation model's output is a logit), so a pretrained file initialises any fine-tuning.
"""

from __future__ import annotations

from fastem.errors import InputError

from .hrnet import HRNet, HRNetConfig
from .model import register_kind
from .unet import UNET_VARIANTS, UNet, UNetConfig, parse_unet_name

__all__ = ["MODEL_KIND", "GENERATORS", "TASKS", "generator_config", "build_generator", "canonical_generator",
           "describe_generator"]

MODEL_KIND = "ssl-generator"
#: generator names (the CLI's --generator choices)
GENERATORS = tuple(UNET_VARIANTS) + ("hrnet",)
#: what a model file's weights do
TASKS = ("pretext", "segment", "denoise", "background", "superres")


def canonical_generator(name: str) -> str:
    """``"U-Net_3_176"`` -> ``"unet-3-176"``, ``"HRNet"`` -> ``"hrnet"`` (one-line error if unknown)."""
    if str(name).strip().lower() == "hrnet":
        return "hrnet"
    try:
        return parse_unet_name(name)
    except InputError:
        raise InputError(f"unknown generator {name!r}; known: {', '.join(GENERATORS)}") from None


def generator_config(name: str, *, width: int | None = None, norm: str = "batch", **net) -> dict:
    """The config dict of generator ``name``.

    ``width``: U-Net level-0 channels (default 16) or HRNet's highest-resolution branch width
    (default 18); ``norm``; further ``net`` keywords go to :class:`~fastem.nn.unet.UNetConfig`
    or :class:`~fastem.nn.hrnet.HRNetConfig`.
    """
    arch = canonical_generator(name)
    if width is not None and int(width) < 1:
        raise InputError(f"generator width must be >= 1, got {width}")
    if arch == "hrnet":
        if width is not None:
            net["width"] = int(width)
            net.setdefault("stem_features", max(8, 2 * int(width) - 4))
            net.setdefault("head_features", max(8, 2 * int(width) - 4))
        cfg = HRNetConfig(norm=norm, **net).to_dict()
    else:
        if width is not None:
            net["features"] = int(width)
        cfg = UNetConfig.named(arch, norm=norm, **net).to_dict()
    return {"arch": arch, "net": cfg}


def build_generator(config: dict):
    """``config`` (see :func:`generator_config`) -> the network (random initialisation)."""
    if not isinstance(config, dict) or "arch" not in config or "net" not in config:
        raise InputError("generator config must be {'arch': name, 'net': {...}}")
    arch = canonical_generator(config["arch"])
    try:
        if arch == "hrnet":
            return HRNet(HRNetConfig.from_dict(dict(config["net"])))
        return UNet(UNetConfig.from_dict(dict(config["net"])))
    except TypeError as exc:
        raise InputError(f"generator config does not fit {arch}: {exc}") from None


def describe_generator(config: dict) -> str:
    """``"unet-2-44 (width 16)"`` -- for messages and model cards."""
    net = config.get("net", {})
    width = net.get("features", net.get("width"))
    return f"{config.get('arch')} (width {width})"


register_kind(MODEL_KIND, build_generator)
