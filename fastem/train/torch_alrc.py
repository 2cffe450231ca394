"""PyTorch bridge for ALRC: an autograd function and an ``nn.Module`` around the fused kernels.

Imported on first use of ``fastem.train.ALRCLoss`` / ``alrc_loss_torch`` / ``alrc_loss_reference``
(torch is optional). The forward returns the clipped mean loss; the backward is exactly the
scaled gradient ``c_b / B * dL_b / d pred`` (the clip factor ``c_b`` is a stop-gradient). CPU
tensors run the Numba kernels on zero-copy NumPy views; CUDA tensors run the CUDA C kernels on
zero-copy CuPy views (DLPack), launched on torch's current stream, with the moments held in a
float64 CUDA buffer and updated on the device (no ``.item()``, no host synchronisation). Without
CuPy a CUDA tensor falls back to :func:`alrc_loss_reference` (torch ops, also on the device).
"""

from __future__ import annotations

import contextlib

import torch

from fastem import backend
from fastem.errors import InputError
from fastem.interop import from_torch, to_torch
from fastem.kernels.alrc_loss import LOSSES, alrc_loss, alrc_loss_grad, check_moments

from .alrc import DEFAULT_BETA, DEFAULT_MU1, DEFAULT_MU2, DEFAULT_N

__all__ = ["ALRCLoss", "alrc_loss_torch", "alrc_loss_reference"]

_DTYPES = (torch.float32, torch.float64)


def _check(pred, target, weight, moments, loss, clip, where):
    if not (isinstance(pred, torch.Tensor) and isinstance(target, torch.Tensor)):
        raise InputError(f"{where}: pred and target must be torch tensors")
    if pred.shape != target.shape:
        raise InputError(f"{where}: pred has shape {tuple(pred.shape)} but target has shape {tuple(target.shape)}")
    if pred.dtype != target.dtype or pred.dtype not in _DTYPES:
        raise InputError(f"{where}: pred and target must both be float32 or float64, got {pred.dtype} and {target.dtype}")
    if pred.device != target.device:
        raise InputError(f"{where}: pred is on {pred.device} but target is on {target.device}")
    if loss not in LOSSES:
        raise InputError(f"{where}: unknown loss {loss!r}; choose from {', '.join(LOSSES)}")
    if weight is not None and (weight.device != pred.device or weight.dtype != pred.dtype):
        raise InputError(f"{where}: weight must have pred's dtype and device ({pred.dtype}, {pred.device})")
    if clip:
        if moments is None or tuple(moments.shape) != (2,) or moments.dtype != torch.float64:
            raise InputError(f"{where}: moments must be a float64 tensor of shape (2,) = [mu1, mu2]")
        if moments.device != pred.device:
            raise InputError(f"{where}: moments are on {moments.device} but pred is on {pred.device}")


def _stream(t):
    """Run CuPy launches on torch's current stream for CUDA tensor ``t`` (no-op on the CPU)."""
    if t.device.type != "cuda":
        return contextlib.nullcontext()
    import cupy as cp

    stack = contextlib.ExitStack()
    stack.enter_context(cp.cuda.Device(t.device.index or 0))
    stack.enter_context(cp.cuda.ExternalStream(torch.cuda.current_stream(t.device).cuda_stream))
    return stack


class _ALRCFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pred, target, weight, moments, loss, scale, n, beta, clip, update, engine):
        p, t = pred.detach().contiguous(), target.detach().contiguous()
        w = None if weight is None else weight.detach().contiguous()
        with _stream(p):
            res = alrc_loss(from_torch(p), from_torch(t), from_torch(moments) if clip else None, loss=loss,
                            weight=None if w is None else from_torch(w), scale=scale, n=n, beta=beta, clip=clip,
                            update=update, engine=engine)
        if p.device.type == "cpu":
            mean = torch.tensor(res.loss, dtype=p.dtype)
            nonfinite = torch.tensor(int(res.nonfinite))
        else:
            mean = to_torch(res.loss.reshape(1)).reshape(()).to(p.dtype)
            nonfinite = to_torch(res.nonfinite).reshape(())
        gscale = to_torch(res.gscale)
        losses, clipped = to_torch(res.losses), to_torch(res.clipped)
        ctx.save_for_backward(p, t, w, gscale)
        ctx.loss, ctx.engine = loss, engine
        ctx.mark_non_differentiable(losses, clipped, nonfinite)
        return mean, losses, clipped, nonfinite

    @staticmethod
    def backward(ctx, gmean, *_unused):
        p, t, w, gscale = ctx.saved_tensors
        need_p, need_t = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if not (need_p or need_t):
            return (None,) * 11
        if p.device.type == "cpu":
            gout = float(gmean)
        else:
            gout = from_torch(gmean.detach().to(torch.float64).reshape(1).contiguous())
        with _stream(p):
            g = alrc_loss_grad(from_torch(p), from_torch(t), from_torch(gscale), loss=ctx.loss,
                               weight=None if w is None else from_torch(w), gout=gout, engine=ctx.engine)
        grad = to_torch(g)
        return (grad if need_p else None, -grad if need_t else None) + (None,) * 9


def alrc_loss_reference(pred, target, moments=None, *, loss: str = "mse", weight=None, scale: float = 1.0,
                        n: float = DEFAULT_N, beta: float = DEFAULT_BETA, clip: bool = True, update: bool = True):
    """ALRC composed from torch operations (autograd does the backward); the explicit formula.

    Used as the test oracle (in float64), as the bench's "composed" peer and as the fallback for
    CUDA tensors without CuPy. Same arguments and return value as :func:`alrc_loss_torch`
    (``(mean, losses, clipped)``); ``moments`` are updated in place under ``no_grad``.
    """
    b = pred.shape[0]
    d = (pred - target).reshape(b, -1)
    if loss == "quartic":
        e = d ** 4
    elif loss == "mae":
        e = d.abs()
    else:
        e = d * d
    if weight is not None:
        e = e * weight.reshape(-1 if weight.numel() == pred.numel() else 1, d.shape[1])
    x = scale * e.mean(dim=1)
    if loss == "huber":
        per = torch.where(x > 1, torch.sqrt(torch.clamp(x, min=1.0)), x)
    else:
        per = x
    if clip:
        mu1, mu2 = moments[0].detach(), moments[1].detach()
        lmax = (mu1 + n * torch.sqrt(torch.clamp(mu2 - mu1 * mu1, min=0.0) + 1e-8)).to(per.dtype)
        dyn = torch.where(per > lmax, per * (lmax / per).detach(), per)
        if update:
            with torch.no_grad():
                c = dyn.detach().to(torch.float64)
                moments.mul_(beta).add_((1.0 - beta) * torch.stack([c.mean(), (c * c).mean()]))
    else:
        dyn = per
    return dyn.mean(), per.detach(), dyn.detach()


def alrc_loss_torch(pred, target, moments=None, *, loss: str = "mse", weight=None, scale: float = 1.0,
                    n: float = DEFAULT_N, beta: float = DEFAULT_BETA, clip: bool = True, update: bool = True,
                    engine: str | None = None, return_losses: bool = False):
    """Fused ALRC loss on torch tensors (autograd-aware); see :func:`fastem.kernels.alrc_loss.alrc_loss`.

    Parameters
    ----------
    pred, target : Tensor, float32/float64, shape ``(B, ...)``, same device
    moments : Tensor, float64, shape (2,), same device
        ``[mu1, mu2]``, updated in place when ``clip`` and ``update``.
    return_losses : bool
        Also return the per-example ``(losses, clipped)`` (float64, detached).

    Returns
    -------
    Tensor (0-d, dtype of ``pred``)
        Mean clipped loss; its backward is the ALRC-scaled gradient. With ``return_losses``:
        ``(mean, losses, clipped)``. On the CPU a NaN/Inf loss raises :class:`InputError`; on the
        GPU see :class:`ALRCLoss` (counted on the device, moments left unchanged).
    """
    _check(pred, target, weight, moments, loss, clip, "alrc_loss_torch")
    if weight is not None and weight.requires_grad:
        raise InputError("alrc_loss_torch: weight must not require grad (weights are constants)")
    if pred.device.type == "cuda" and not backend.cupy_available():
        out = alrc_loss_reference(pred, target, moments, loss=loss, weight=weight, scale=scale, n=n, beta=beta,
                                  clip=clip, update=update)
        return out if return_losses else out[0]
    mean, losses, clipped, _bad = _ALRCFunction.apply(pred, target, weight, moments if clip else None, loss,
                                                      float(scale), float(n), float(beta), bool(clip), bool(update),
                                                      engine)
    return (mean, losses, clipped) if return_losses else mean


class ALRCLoss(torch.nn.Module):
    """ALRC-clipped per-example loss as a module (moments in a float64 buffer).

    ``forward(pred, target, weight=None)`` returns the clipped mean loss; the moments update in
    training mode only (``module.eval()`` clips with the frozen moments). ``state_dict`` holds the
    ``moments`` buffer and the settings; ``load_state_dict`` checks ``mu2 > mu1^2``. After each
    forward, ``last_losses`` / ``last_clipped`` hold the per-example values (detached, on the device)
    and ``nonfinite`` counts the steps skipped because a loss was NaN/Inf (GPU: read it, or call
    :meth:`check`, when a host sync is acceptable; CPU: a NaN/Inf loss raises at once).
    """

    def __init__(self, loss: str = "mse", mu1: float = DEFAULT_MU1, mu2: float = DEFAULT_MU2,
                 beta: float = DEFAULT_BETA, n: float = DEFAULT_N, scale: float = 1.0, clip: bool = True,
                 engine: str | None = None):
        super().__init__()
        if loss not in LOSSES:
            raise InputError(f"ALRCLoss: unknown loss {loss!r}; choose from {', '.join(LOSSES)}")
        check_moments(mu1, mu2, "ALRCLoss")
        if not (0.0 <= float(beta) < 1.0):
            raise InputError(f"ALRCLoss: beta must be in [0, 1), got {beta}")
        self.loss, self.beta, self.n, self.scale, self.clip, self.engine = (loss, float(beta), float(n), float(scale),
                                                                            bool(clip), engine)
        self.register_buffer("moments", torch.tensor([float(mu1), float(mu2)], dtype=torch.float64))
        self.register_buffer("nonfinite", torch.zeros((), dtype=torch.int64))
        self.last_losses = None
        self.last_clipped = None

    def forward(self, pred, target, weight=None):
        if self.moments.dtype != torch.float64:  # e.g. after module.half(): the moments stay float64
            self.moments = self.moments.to(torch.float64)
        _check(pred, target, weight, self.moments, self.loss, self.clip, "ALRCLoss")
        update = self.training
        if pred.device.type == "cuda" and not backend.cupy_available():
            mean, losses, clipped = alrc_loss_reference(pred, target, self.moments, loss=self.loss, weight=weight,
                                                        scale=self.scale, n=self.n, beta=self.beta, clip=self.clip,
                                                        update=update)
        else:
            mean, losses, clipped, bad = _ALRCFunction.apply(
                pred, target, weight, self.moments if self.clip else None, self.loss, self.scale, self.n, self.beta,
                self.clip, update, self.engine)
            if pred.device.type == "cuda":
                self.nonfinite.add_(bad.to(self.nonfinite.device, torch.int64))  # device op, no sync
        self.last_losses, self.last_clipped = losses, clipped
        return mean

    def check(self) -> None:
        """Raise :class:`InputError` if any step met a NaN/Inf loss (synchronises on the GPU)."""
        bad = int(self.nonfinite)
        if bad:
            raise InputError(f"ALRCLoss: {bad} training step(s) had NaN/Inf per-example losses; "
                             "their moment updates were skipped")

    def threshold(self):
        """Current clipping threshold ``L_max`` (0-d float64 tensor on the moments' device)."""
        mu1, mu2 = self.moments[0], self.moments[1]
        return mu1 + self.n * torch.sqrt(torch.clamp(mu2 - mu1 * mu1, min=0.0) + 1e-8)

    def get_extra_state(self):
        return {"loss": self.loss, "beta": self.beta, "n": self.n, "scale": self.scale, "clip": self.clip}

    def set_extra_state(self, state):
        self.loss = state.get("loss", self.loss)
        self.beta = float(state.get("beta", self.beta))
        self.n = float(state.get("n", self.n))
        self.scale = float(state.get("scale", self.scale))
        self.clip = bool(state.get("clip", self.clip))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "moments"
        if key in state_dict:
            m = state_dict[key]
            if tuple(m.shape) != (2,):
                raise InputError(f"ALRCLoss.load_state_dict: {key} must have shape (2,), got {tuple(m.shape)}")
            m = m.detach().to("cpu", torch.float64)
            check_moments(float(m[0]), float(m[1]), "ALRCLoss.load_state_dict")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"loss={self.loss!r}, n={self.n}, beta={self.beta}, scale={self.scale}, clip={self.clip}"
