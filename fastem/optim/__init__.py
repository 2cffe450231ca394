"""Laplacian smoothing of gradients and LS optimizers (``fastem.optim``).

Functional smoothing (NumPy / CuPy / torch in, same type out; imports without torch):

* :func:`laplacian_smooth` -- ``(I + (-1)^n sigma L^n)^{-1} g`` along an axis, batched;
* :func:`smooth_rows` -- the same on a C-contiguous ``(B, m)`` array, one batched transform;
* :func:`laplacian_denominator`, :func:`laplacian_stencil`, :func:`laplacian_coefficients`.

PyTorch optimizers (``torch.optim.Optimizer`` subclasses, resolved lazily so that importing
``fastem.optim`` never imports torch): :class:`LSSGD`, :class:`LSRMSprop`, :class:`LSAdam`, and
:func:`smooth_gradients` (the batched, grouped smoothing they use).

See ``docs/optim.md``; method: thesis chapter 5 (Osher et al., arXiv 1806.06317).
"""

from .smoothing import (clear_denominator_cache, laplacian_coefficients, laplacian_denominator,
                        laplacian_smooth, laplacian_stencil, min_length, smooth_rows)

_TORCH_NAMES = ("LSSGD", "LSRMSprop", "LSAdam", "smooth_gradients")

__all__ = ["laplacian_smooth", "smooth_rows", "laplacian_denominator", "laplacian_stencil",
           "laplacian_coefficients", "min_length", "clear_denominator_cache", *_TORCH_NAMES]


def __getattr__(name):
    if name in _TORCH_NAMES:
        from .. import interop

        interop.require_torch()
        from . import torch_optim

        return getattr(torch_optim, name)
    raise AttributeError(f"module 'fastem.optim' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_TORCH_NAMES))
