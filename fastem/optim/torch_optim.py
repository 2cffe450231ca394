"""Laplacian-smoothing optimizers for PyTorch: :class:`LSSGD`, :class:`LSRMSprop`, :class:`LSAdam`.

Each is a ``torch.optim.Optimizer`` whose update is the one of its torch counterpart
(``SGD``, ``RMSprop``, ``Adam``; same hyper-parameter names and defaults) applied to the
*smoothed* gradient ``d = (I + (-1)^n sigma L^n)^{-1} g`` (thesis chapter 5, eq. 5.9 and
section 5.2.4), computed layer-wise: each parameter tensor, flattened row-major, is one periodic
signal. Smoothing acts on the raw gradient, before weight decay, momentum and the running
averages (LS-RMSProp, thesis 5.3.4: the averages are taken of the smoothed gradient).

* ``sigma`` and ``order`` are per parameter group (``sigma=0`` is the plain optimizer).
* Tensors with fewer than ``2 * order + 1`` elements (biases of tiny layers, scalars) are passed
  through unsmoothed.
* Parameters whose ``.grad`` is ``None`` are skipped (no state is created for them).
* Batched: gradients are grouped by (length, sigma, order, dtype, device), copied into one
  cached aligned ``(B, m)`` buffer per group and smoothed by one batched real FFT (pyFFTW on the
  CPU through zero-copy NumPy views, cuFFT through DLPack/CuPy on CUDA, ``torch.fft`` elsewhere),
  so many equal-sized tensors cost one transform, not one each.
* float16/bfloat16 gradients are smoothed in float32 and cast back.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch.optim import Optimizer

from .. import backend, interop
from .. import fft as F
from ..errors import InputError
from .smoothing import _check_order_sigma, _smooth_rows_torch, _torch_via_arrays, min_length, smooth_rows

__all__ = ["LSSGD", "LSRMSprop", "LSAdam", "smooth_gradients"]

_NP_DTYPE = {torch.float32: np.float32, torch.float64: np.float64}


class _Workspace:
    """Aligned ``(B, m)`` buffers, one per group key, reused from step to step."""

    def __init__(self):
        self._bufs: dict[tuple, Any] = {}

    def get(self, key, b: int, m: int, tdtype, tdevice):
        k = (key, b)
        hit = self._bufs.get(k)
        if hit is not None:
            return hit
        if tdevice.type == "cpu":
            arr = F.empty_aligned((b, m), _NP_DTYPE[tdtype])
            t = torch.from_numpy(arr)
        else:  # CUDA with CuPy: a CuPy buffer viewed as a tensor through DLPack
            dev = backend.Device(f"cuda:{tdevice.index if tdevice.index is not None else torch.cuda.current_device()}")
            arr = F.empty_aligned((b, m), _NP_DTYPE[tdtype], dev)
            t = interop.to_torch(arr)
        self._bufs[k] = (arr, t)
        return arr, t

    def clear(self):
        self._bufs.clear()


def smooth_gradients(grads, sigmas, orders, workspace: _Workspace | None = None, planner: str | None = None,
                     threads: int | None = None) -> list:
    """Smooth a list of tensors, each with its own ``sigma``/``order``, batching equal lengths.

    Parameters
    ----------
    grads : list of torch.Tensor (real, dense)
    sigmas, orders : list of float / list of int, same length as ``grads``
    workspace : optional buffer cache (the optimizers keep one)
    planner, threads : FFTW planning effort and threads, see :func:`fastem.optim.smooth_rows`

    Returns
    -------
    list of torch.Tensor
        Smoothed tensors (shape and dtype of the inputs). Pass-through entries are the input
        tensors themselves, the others are views into the workspace (valid until the next call
        with the same workspace): treat all of them as read-only.
    """
    ws = workspace if workspace is not None else _Workspace()
    out: list = [None] * len(grads)
    buckets: dict[tuple, list[int]] = {}
    for i, (g, s, n) in enumerate(zip(grads, sigmas, orders)):
        m = g.numel()
        if s == 0.0 or m < min_length(n):
            out[i] = g
            continue
        wdt = g.dtype if g.dtype in (torch.float32, torch.float64) else torch.float32
        buckets.setdefault((m, float(s), int(n), wdt, g.device), []).append(i)
    for key, idx in buckets.items():
        m, s, n, wdt, dev = key
        flat = [grads[i].reshape(-1) for i in idx]
        if _torch_via_arrays(grads[idx[0]]):
            arr, tbuf = ws.get(key, len(idx), m, wdt, dev)
            if len(idx) == 1 and flat[0].dtype == wdt and flat[0].is_contiguous() and not flat[0].requires_grad:
                # one tensor: transform straight from the gradient's memory (no gather copy)
                smooth_rows(interop.from_torch(flat[0]).reshape(1, m), s, n, out=arr, planner=planner, threads=threads)
                out[idx[0]] = tbuf[0].view(grads[idx[0]].shape)
                continue
            if len(idx) == 1:
                tbuf[0].copy_(flat[0])
            elif all(f.dtype == wdt for f in flat):
                torch.stack(flat, out=tbuf)
            else:
                for r, f in enumerate(flat):
                    tbuf[r].copy_(f)
            smooth_rows(arr, s, n, out=arr, planner=planner, threads=threads)
            rows = tbuf
        else:
            rows = _smooth_rows_torch(torch.stack([f.to(wdt) for f in flat]), s, n)
        for r, i in enumerate(idx):
            g = grads[i]
            d = rows[r].view(g.shape)
            out[i] = d if d.dtype == g.dtype else d.to(g.dtype)
    return out


def _check_common(lr, weight_decay, sigma, order, name):
    if not (lr >= 0.0):
        raise InputError(f"{name}: invalid learning rate {lr}")
    if not (weight_decay >= 0.0):
        raise InputError(f"{name}: invalid weight_decay {weight_decay}")
    _check_order_sigma(order, sigma, name)


class _LSBase(Optimizer):
    """Shared machinery: collect gradients of every group, smooth them in batches."""

    def __init__(self, params, defaults, planner: str | None, fft_threads: int | None):
        super().__init__(params, defaults)
        self.planner = planner          # FFTW planning effort (None = fastem's setting)
        self.fft_threads = fft_threads  # FFTW threads for the smoothing transforms

    def _step_state(self, p, *buffers: str) -> dict:
        """The optimizer state of ``p``, created on first use: ``step`` 0 and a zero tensor like
        ``p`` for every name in ``buffers``; ``step`` is incremented on every call."""
        state = self.state[p]
        if len(state) == 0:
            state["step"] = 0
            for name in buffers:
                state[name] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["step"] += 1
        return state

    def _smoothed(self):
        """``[(group, p, d)]`` for every parameter with a gradient, ``d`` the smoothed gradient."""
        if not hasattr(self, "_ls_ws"):
            self._ls_ws = _Workspace()
        items, grads, sig, ords = [], [], [], []
        for group in self.param_groups:
            _check_order_sigma(group["order"], group["sigma"], type(self).__name__)
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise InputError(f"{type(self).__name__} does not support sparse gradients")
                if p.grad.is_complex():
                    raise InputError(f"{type(self).__name__}: complex parameters are not supported")
                items.append((group, p))
                grads.append(p.grad)
                sig.append(float(group["sigma"]))
                ords.append(int(group["order"]))
        ds = smooth_gradients(grads, sig, ords, self._ls_ws, getattr(self, "planner", None),
                              getattr(self, "fft_threads", 1))
        return [(g, p, d) for (g, p), d in zip(items, ds)]

    def _closure(self, closure):
        if closure is None:
            return None
        with torch.enable_grad():
            return closure()


class LSSGD(_LSBase):
    """SGD with Laplacian-smoothed gradients (LS-SGD, thesis Algorithm 5, with momentum).

    Update per parameter (``torch.optim.SGD`` semantics applied to ``d``)::

        d = A_sigma^{-1} g                      # smoothing first, on the raw gradient
        d = d + weight_decay * p
        buf = momentum * buf + (1 - dampening) * d   (buf = d at the first step)
        d = d + momentum * buf if nesterov else buf
        p = p - lr * d

    Parameters
    ----------
    params : iterable of tensors or dicts (parameter groups; each may set its own
        ``sigma``/``order`` and any other hyper-parameter)
    lr : float
    momentum, dampening, weight_decay : float
    nesterov : bool
    sigma : float >= 0
        Smoothing strength (thesis default 1.0; 0 gives plain SGD).
    order : int >= 1
        Order ``n`` of the operator ``I + (-1)^n sigma L^n``.
    planner : {None, "FFTW_ESTIMATE", "FFTW_MEASURE"}
        FFTW planning effort (all three optimizers take it; not saved in ``state_dict``).
        ``None``: fastem's global setting (FFTW_MEASURE): fastest steps, but the first step
        plans each new gradient length (seconds to minutes for multi-million-element tensors
        on a busy machine; the wisdom is then cached under ``~/.cache/fastem``).
        ``"FFTW_ESTIMATE"`` plans instantly at some cost per step.
    fft_threads : int or None
        FFTW threads for the smoothing transforms (default 1; ``None``: fastem's global
        ``settings.threads``). One thread by default because the transforms run between torch's
        own multi-threaded kernels: on the 2-core test machine under load, smoothing LeNet-5's
        gradients took a median 5.2 ms with one FFTW thread and 84 ms with two
        (``fastem bench train``, row "smoothing only, 2 FFTW threads"; docs/optim.md).
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, sigma: float = 1.0, order: int = 1,
                 planner: str | None = None, fft_threads: int | None = 1):
        _check_common(lr, weight_decay, sigma, order, "LSSGD")
        if momentum < 0.0:
            raise InputError(f"LSSGD: invalid momentum {momentum}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise InputError("LSSGD: Nesterov momentum requires a momentum and zero dampening")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, sigma=sigma, order=order)
        super().__init__(params, defaults, planner, fft_threads)

    @torch.no_grad()
    def step(self, closure=None):
        loss = self._closure(closure)
        for group, p, d in self._smoothed():
            wd, mom = group["weight_decay"], group["momentum"]
            if wd != 0:
                d = d.add(p, alpha=wd)
            if mom != 0:
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = torch.clone(d).detach()
                    state["momentum_buffer"] = buf
                else:
                    buf.mul_(mom).add_(d, alpha=1 - group["dampening"])
                d = d.add(buf, alpha=mom) if group["nesterov"] else buf
            p.add_(d, alpha=-group["lr"])
        return loss


class LSRMSprop(_LSBase):
    """RMSprop on Laplacian-smoothed gradients (LS-RMSProp, thesis section 5.3.4).

    The running averages are computed from the smoothed gradient ``d`` (``torch.optim.RMSprop``
    semantics otherwise)::

        d = A_sigma^{-1} g + weight_decay * p
        v = alpha * v + (1 - alpha) * d^2
        (centered: m = alpha * m + (1 - alpha) * d;  v_hat = v - m^2)
        a = sqrt(v_hat) + eps
        momentum > 0: buf = momentum * buf + d / a;  p -= lr * buf
        else:         p -= lr * d / a
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
                 sigma: float = 1.0, order: int = 1, planner: str | None = None, fft_threads: int | None = 1):
        _check_common(lr, weight_decay, sigma, order, "LSRMSprop")
        if not (0.0 <= alpha <= 1.0) or eps < 0 or momentum < 0:
            raise InputError(f"LSRMSprop: invalid alpha/eps/momentum {alpha}/{eps}/{momentum}")
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, sigma=sigma, order=order)
        super().__init__(params, defaults, planner, fft_threads)

    @torch.no_grad()
    def step(self, closure=None):
        loss = self._closure(closure)
        for group, p, d in self._smoothed():
            state = self._step_state(p, "square_avg", *(["momentum_buffer"] if group["momentum"] > 0 else []),
                                     *(["grad_avg"] if group["centered"] else []))
            alpha = group["alpha"]
            if group["weight_decay"] != 0:
                d = d.add(p, alpha=group["weight_decay"])
            sq = state["square_avg"]
            sq.mul_(alpha).addcmul_(d, d, value=1 - alpha)
            if group["centered"]:
                ga = state["grad_avg"]
                ga.lerp_(d, 1 - alpha)
                avg = sq.addcmul(ga, ga, value=-1).sqrt_().add_(group["eps"])
            else:
                avg = sq.sqrt().add_(group["eps"])
            if group["momentum"] > 0:
                buf = state["momentum_buffer"]
                buf.mul_(group["momentum"]).addcdiv_(d, avg)
                p.add_(buf, alpha=-group["lr"])
            else:
                p.addcdiv_(d, avg, value=-group["lr"])
        return loss


class LSAdam(_LSBase):
    """Adam (or AdamW with ``decoupled_weight_decay=True``) on Laplacian-smoothed gradients.

    ``torch.optim.Adam`` semantics applied to ``d = A_sigma^{-1} g``; with coupled weight decay
    the decay term is added after smoothing (``d + weight_decay * p``)::

        m = beta1 m + (1 - beta1) d;   v = beta2 v + (1 - beta2) d^2   (amsgrad: v_max = max(v_max, v))
        p -= lr / (1 - beta1^t) * m / (sqrt(v / (1 - beta2^t)) + eps)
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, decoupled_weight_decay: bool = False,
                 sigma: float = 1.0, order: int = 1, planner: str | None = None, fft_threads: int | None = 1):
        _check_common(lr, weight_decay, sigma, order, "LSAdam")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0) or eps < 0:
            raise InputError(f"LSAdam: invalid betas/eps {betas}/{eps}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        decoupled_weight_decay=decoupled_weight_decay, sigma=sigma, order=order)
        super().__init__(params, defaults, planner, fft_threads)

    @torch.no_grad()
    def step(self, closure=None):
        loss = self._closure(closure)
        for group, p, d in self._smoothed():
            state = self._step_state(p, "exp_avg", "exp_avg_sq", *(["max_exp_avg_sq"] if group["amsgrad"] else []))
            t = state["step"]
            b1, b2 = group["betas"]
            lr, wd = group["lr"], group["weight_decay"]
            if wd != 0:
                if group["decoupled_weight_decay"]:
                    p.mul_(1 - lr * wd)
                else:
                    d = d.add(p, alpha=wd)
            m, v = state["exp_avg"], state["exp_avg_sq"]
            m.lerp_(d, 1 - b1)
            v.mul_(b2).addcmul_(d, d, value=1 - b2)
            if group["amsgrad"]:
                vm = state["max_exp_avg_sq"]
                torch.maximum(vm, v, out=vm)
                v = vm
            bc1 = 1 - b1 ** t
            bc2 = 1 - b2 ** t
            denom = (v.sqrt() / math.sqrt(bc2)).add_(group["eps"])
            p.addcdiv_(m, denom, value=-lr / bc1)
        return loss
