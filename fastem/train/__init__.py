"""Training kernels: adaptive learning rate clipping (ALRC) of per-example losses.

Spec: docs/train_alrc.md; seed 000 appendix A. The NumPy/CuPy API
(:class:`ALRC`, :func:`alrc_loss`, :func:`per_example_loss`) needs no torch; the PyTorch bridge
(:class:`ALRCLoss`, :func:`alrc_loss_torch`, :func:`alrc_loss_reference`) lives in
:mod:`fastem.train.torch_alrc` and is imported on first use.
"""

from .alrc import (DEFAULT_BETA, DEFAULT_MU1, DEFAULT_MU2, DEFAULT_N, ALRC, LOSSES, ALRCResult, alrc_loss,
                   alrc_loss_grad, alrc_threshold, check_moments, per_example_loss)

__all__ = ["ALRC", "ALRCResult", "LOSSES", "alrc_loss", "alrc_loss_grad", "alrc_threshold", "check_moments",
           "per_example_loss", "DEFAULT_MU1", "DEFAULT_MU2", "DEFAULT_BETA", "DEFAULT_N",
           "ALRCLoss", "alrc_loss_torch", "alrc_loss_reference"]

_TORCH_NAMES = ("ALRCLoss", "alrc_loss_torch", "alrc_loss_reference")


def __getattr__(name):  # the torch bridge is imported on first use (torch is optional)
    if name in _TORCH_NAMES:
        from . import torch_alrc

        return getattr(torch_alrc, name)
    raise AttributeError(f"module 'fastem.train' has no attribute {name!r}")
