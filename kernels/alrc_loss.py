"""Fused per-example losses with adaptive learning rate clipping (ALRC).

Spec: docs/train_alrc.md "What is computed"; seed 000 appendix A (Ede & Beanland) and
Ede & Beanland, Mach. Learn.: Sci. Technol. 1, 015011 (2020), algorithm 1.

For a batch of B examples of P pixels (``pred`` and ``target`` of shape ``(B, ...)``), with
``d = pred - target`` and optional per-pixel weights ``w`` (default 1):

* weighted mean error ``m_b = (1/P) sum_p w_p e(d_bp)`` with ``e(d) = d^2`` (``"mse"`` and
  ``"huber"``), ``d^4`` (``"quartic"``) or ``|d|`` (``"mae"``);
* per-example loss ``L_b = h(s * m_b)`` where ``s`` is ``scale`` and ``h`` is the identity, or for
  ``"huber"`` the Huberisation ``h(x) = x if x <= 1 else sqrt(x)`` (applied to the scaled
  per-example MSE, as in the paper's Huberised MSE);
* ALRC threshold ``L_max = mu1 + n * sqrt(max(mu2 - mu1^2, 0) + 1e-8)`` from the running raw
  moments ``moments = [mu1, mu2]`` *before* this step's update;
* clip factor ``c_b = L_max / L_b`` where ``L_b > L_max``, else 1; ``L_dyn_b = c_b L_b`` (its value
  is ``L_max``, its gradient is ``c_b dL_b``: ``c_b`` is a stop-gradient factor);
* returned loss ``mean_b L_dyn_b``; gradient
  ``d loss / d pred_bp = (c_b / B) * s * h'(s m_b) * w_p e'(d_bp) / P``;
* moment update from the clipped losses:
  ``mu1 <- beta mu1 + (1 - beta) mean_b L_dyn_b``, ``mu2 <- beta mu2 + (1 - beta) mean_b L_dyn_b^2``.

One forward pass reads ``pred``/``target`` once (partial sums per ``(example, chunk)`` tile) and a
tiny finalisation computes losses, clip factors, the mean and the moment update; the backward
pass reads them once more and writes the scaled gradient. On the GPU every step stays on the
device: the moments are a float64 device array updated by the finalisation kernel, and the
mean loss is returned as a 0-d device array.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from fastem import backend
from fastem.interop import accepts_torch
from fastem.errors import InputError

from ._dispatch import KernelDispatcher, require_arrays, as_numba_cuda, numba_cuda_stream

_LOSS = KernelDispatcher("alrc_loss", ("numpy", "numba", "cuda", "numba-cuda"))
_GRAD = KernelDispatcher("alrc_loss_grad", ("numpy", "numba", "cuda", "numba-cuda"))

__all__ = ["LOSSES", "ALRCResult", "alrc_loss", "alrc_loss_grad", "alrc_threshold", "check_moments"]

LOSSES = {"mse": 0, "huber": 1, "quartic": 2, "mae": 3}
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_THREADS = 256


class ALRCResult(NamedTuple):
    """What :func:`alrc_loss` returns (per-example arrays are float64, shape ``(B,)``)."""

    loss: Any  #: mean clipped loss: a float on the CPU, a 0-d float64 device array on the GPU
    losses: Any  #: unclipped per-example losses ``L_b``
    clipped: Any  #: clipped per-example losses ``L_dyn_b``
    factor: Any  #: clip factors ``c_b`` (1 where not clipped)
    gscale: Any  #: gradient scale per example ``c_b s h'(s m_b) / (P B)`` (input of :func:`alrc_loss_grad`)
    grad: Any  #: ``d loss / d pred`` (same shape/dtype as ``pred``) when ``grad=True``, else None
    nonfinite: Any  #: number of non-finite losses: int on the CPU, int32 device array (1,) on the GPU


def check_moments(mu1: float, mu2: float, where: str = "alrc") -> None:
    """Raise :class:`InputError` unless ``mu1``, ``mu2`` are finite and ``mu2 > mu1^2``."""
    mu1, mu2 = float(mu1), float(mu2)
    if not (np.isfinite(mu1) and np.isfinite(mu2)):
        raise InputError(f"{where}: moments must be finite, got mu1={mu1}, mu2={mu2}")
    if mu2 <= mu1 * mu1:
        raise InputError(f"{where}: need mu2 > mu1^2 (a positive initial variance), got mu1={mu1}, mu2={mu2} "
                         f"(mu1^2={mu1 * mu1}); use overestimates such as mu1=25, mu2=900")


def alrc_threshold(moments, n: float = 3.0):
    """``L_max = mu1 + n sqrt(max(mu2 - mu1^2, 0) + 1e-8)`` for ``moments = [mu1, mu2]`` (same array type)."""
    xp = backend.get_array_module(moments)
    mu1, mu2 = moments[0], moments[1]
    return mu1 + n * xp.sqrt(xp.maximum(mu2 - mu1 * mu1, 0.0) + 1e-8)


def _flat(a, name):
    return a.reshape(a.shape[0], -1) if a.ndim > 1 else a.reshape(a.shape[0], 1)


def _validate(pred, target, weight, where):
    if not hasattr(pred, "shape") or not hasattr(target, "shape"):
        raise InputError(f"{where}: pred and target must be NumPy or CuPy arrays")
    if pred.shape != target.shape:
        raise InputError(f"{where}: pred has shape {pred.shape} but target has shape {target.shape}")
    if pred.ndim < 1 or pred.size == 0:
        raise InputError(f"{where}: pred must have shape (B, ...) with B >= 1 and at least one pixel, got {pred.shape}")
    if pred.dtype != target.dtype or pred.dtype not in _FLOATS:
        raise InputError(f"{where}: pred and target must both be float32 or float64, got {pred.dtype} and {target.dtype}")
    if not (pred.flags.c_contiguous and target.flags.c_contiguous):
        raise InputError(f"{where}: pred and target must be C-contiguous")
    if weight is not None:
        if not hasattr(weight, "shape"):
            raise InputError(f"{where}: weight must be an array")
        if weight.shape not in (pred.shape, pred.shape[1:]):
            raise InputError(f"{where}: weight has shape {weight.shape}; expected {pred.shape} (per example) "
                             f"or {pred.shape[1:]} (shared by the batch)")
        if weight.dtype != pred.dtype:
            raise InputError(f"{where}: weight dtype {weight.dtype} differs from pred dtype {pred.dtype}")
        if not weight.flags.c_contiguous:
            raise InputError(f"{where}: weight must be C-contiguous")


def _kind(loss, where):
    if loss not in LOSSES:
        raise InputError(f"{where}: unknown loss {loss!r}; choose from {', '.join(LOSSES)}")
    return LOSSES[loss]


def _weight2d(weight, pred2d):
    if weight is None:
        return pred2d[:1, :1], False
    return weight.reshape(-1 if weight.size == pred2d.size else 1, pred2d.shape[1]), True


def _e(d, kind, xp):
    if kind == 2:
        d2 = d * d
        return d2 * d2
    if kind == 3:
        return xp.abs(d)
    return d * d


def _de(d, kind, xp):
    if kind == 2:
        return 4.0 * d * d * d
    if kind == 3:
        return xp.sign(d)
    return 2.0 * d


def _forward_numpy(p2, t2, w2, has_w, kind, scale, n, beta, clip, update, moments):
    """The float64 NumPy reference of the whole step (also the test oracle)."""
    d = p2.astype(np.float64) - t2.astype(np.float64)
    e = _e(d, kind, np)
    if has_w:
        e = e * w2.astype(np.float64)
    b, npix = p2.shape
    x = scale * e.sum(axis=1) / npix
    with np.errstate(invalid="ignore", over="ignore"):
        huber = (kind == 1) & (x > 1.0)
        losses = np.where(huber, np.sqrt(np.where(huber, x, 1.0)), x)
        hp = np.where(huber, 0.5 / losses, 1.0)
        if clip:
            lmax = float(alrc_threshold(np.asarray(moments, dtype=np.float64), n))
            factor = np.where(losses > lmax, lmax / losses, 1.0)
        else:
            factor = np.ones(b)
        clipped = factor * losses
        gscale = factor * scale * hp / (npix * b)
    bad = int(np.count_nonzero(~np.isfinite(losses)))
    mean = float(clipped.mean())
    if clip and update and bad == 0:
        m1, m2 = float(moments[0]), float(moments[1])
        moments[0] = beta * m1 + (1.0 - beta) * float(clipped.mean())
        moments[1] = beta * m2 + (1.0 - beta) * float(np.mean(clipped * clipped))
    return mean, losses, clipped, factor, gscale, bad


def _grad_numpy(p2, t2, w2, has_w, kind, gscale, gout, out2):
    d = p2.astype(np.float64) - t2.astype(np.float64)
    g = _de(d, kind, np)
    if has_w:
        g = g * w2.astype(np.float64)
    out2[...] = (gout * gscale[:, None]) * g


def _grid(npix, nb):
    bx = max(1, min((npix + _THREADS - 1) // _THREADS, max(1, 8192 // max(nb, 1))))
    return bx, min(nb, 65535)


def _suffix(dtype):
    return "f32" if dtype == np.float32 else "f64"


@accepts_torch
def alrc_loss(pred, target, moments=None, *, loss: str = "mse", weight=None, scale: float = 1.0,
              n: float = 3.0, beta: float = 0.999, clip: bool = True, update: bool = True, grad: bool = False,
              gout=None, check_finite: bool | None = None, engine: str | None = None) -> ALRCResult:
    """One ALRC loss step: per-example losses, clipping, mean, moment update (and the gradient).

    Parameters
    ----------
    pred, target : ndarray, float32 or float64, shape ``(B, ...)``, C-contiguous
        Network output and ground truth (NumPy or CuPy, same device); axis 0 is the batch. A
        single example is ``(1, H, W)``. Units: whatever the images are in; losses are in those
        units squared (``"mse"``), to the fourth power (``"quartic"``) or linear (``"mae"``).
    moments : ndarray, float64, shape (2,), same device
        Running raw moments ``[mu1, mu2]``, updated in place (when ``clip`` and ``update``).
        Required when ``clip`` is true. Create them with ``fastem.train.ALRC`` or check a hand-made
        pair with :func:`check_moments` (``mu2 > mu1^2``).
    loss : {"mse", "huber", "quartic", "mae"}
    weight : ndarray, optional
        Per-pixel weights, shape ``pred.shape`` or ``pred.shape[1:]`` (shared by the batch), dtype
        of ``pred``; treated as constants (no gradient).
    scale : float
        ``s`` in ``L_b = h(s m_b)`` (the Huberisation threshold is at ``s m_b = 1``).
    n : float
        Threshold in standard deviations above the running mean (paper: 2, 3 or 4).
    beta : float
        Decay of the moments' exponential moving averages.
    clip : bool
        False: plain mean of the per-example losses, no clipping, moments unused.
    update : bool
        False: clip with the current moments but leave them unchanged (evaluation).
    grad : bool
        Also compute ``d loss / d pred`` (times ``gout``).
    gout : float or 1-element float64 device array, optional
        Upstream gradient of the mean loss (default 1).
    check_finite : bool, optional
        Raise :class:`InputError` when a loss is NaN/Inf (default on the CPU). On the GPU the check
        would synchronise with the host, so by default it is deferred: the moments are then left
        unchanged and ``result.nonfinite`` (a device counter) says how many losses were bad.
    engine : {None, "numpy", "numba", "cuda", "numba-cuda"}

    Returns
    -------
    ALRCResult
    """
    require_arrays("alrc_loss", ("weight",), pred=pred, target=target, weight=weight)
    where = "alrc_loss"
    _validate(pred, target, weight, where)
    kind = _kind(loss, where)
    scale, n, beta = float(scale), float(n), float(beta)
    if not (np.isfinite(scale) and scale > 0):
        raise InputError(f"{where}: scale must be a positive finite number, got {scale}")
    if not (np.isfinite(n) and n >= 0):
        raise InputError(f"{where}: n must be a non-negative finite number, got {n}")
    if not (0.0 <= beta < 1.0):
        raise InputError(f"{where}: beta must be in [0, 1), got {beta}")
    if clip:
        if moments is None:
            raise InputError(f"{where}: clip=True needs moments=[mu1, mu2] (float64 array of shape (2,))")
        if getattr(moments, "shape", None) != (2,) or moments.dtype != np.float64:
            raise InputError(f"{where}: moments must be a float64 array of shape (2,), got "
                             f"{getattr(moments, 'dtype', type(moments).__name__)} {getattr(moments, 'shape', '')}")
    # resolved first: the gradient below runs on the same engine
    engine = _LOSS.select(engine, pred, target, weight, moments if clip else None)
    on_gpu = backend.is_cupy_array(pred)   # (a resolved engine for CuPy arrays is a GPU one)
    if check_finite is None:
        check_finite = not on_gpu
    p2, t2 = _flat(pred, "pred"), _flat(target, "target")
    w2, has_w = _weight2d(weight, p2)
    nb = p2.shape[0]
    result = _LOSS.implementation(engine)(p2, t2, w2, has_w, kind, scale, n, beta, clip, update, moments)

    if check_finite:
        bad = int(result.nonfinite) if not on_gpu else int(result.nonfinite[0])
        if bad:
            xp = backend.get_array_module(result.losses)
            idx = [int(i) for i in xp.nonzero(~xp.isfinite(result.losses))[0][:8]]
            raise InputError(f"{where}: {bad} of {nb} per-example losses are NaN/Inf (examples {idx}); "
                             "pred or target holds non-finite values; moments were not updated")
    if grad:
        g = alrc_loss_grad(pred, target, result.gscale, loss=loss, weight=weight, gout=gout, engine=engine)
        result = result._replace(grad=g)
    return result


# --- forward implementations: (p2, t2, w2, has_w, kind, scale, n, beta, clip, update, moments) -> ALRCResult,
# with the arrays flattened to (B, P) (w2: (B or 1, P), or a 1x1 dummy when not has_w) ------------------

@_LOSS.register("numpy")
def _alrc_loss_numpy(p2, t2, w2, has_w, kind, scale, n, beta, clip, update, moments):
    mean, losses, clipped, factor, gscale, bad = _forward_numpy(p2, t2, w2, has_w, kind, scale, n, beta,
                                                                clip, update, moments if clip else None)
    return ALRCResult(mean, losses, clipped, factor, gscale, None, bad)


@_LOSS.register("numba")
def _alrc_loss_numba(p2, t2, w2, has_w, kind, scale, n, beta, clip, update, moments):
    from . import _alrc_loss_numba as K

    nb, npix = p2.shape
    nchunk = (npix + K.CHUNK - 1) // K.CHUNK
    partial = np.empty((nb, nchunk), dtype=np.float64)
    sums = K.alrc_partial_sums_serial if p2.size < K.SERIAL_BELOW else K.alrc_partial_sums_numba
    sums(p2, t2, w2, has_w, kind, K.CHUNK, partial)
    losses, clipped, factor, gscale = (np.empty(nb) for _ in range(4))
    mom = moments if clip else np.zeros(2)
    mean, bad = K.alrc_finalize_numba(partial, npix, kind, scale, n, beta, clip, update, mom, losses, clipped,
                                      factor, gscale)
    return ALRCResult(float(mean), losses, clipped, factor, gscale, None, int(bad))


@_LOSS.register("cuda", "numba-cuda", with_engine=True)
def _forward_gpu(p2, t2, w2, has_w, kind, scale, n, beta, clip, update, moments, engine):
    xp = backend.get_array_module(p2)
    nb, npix = p2.shape
    dev = backend.get_device(p2)
    with dev.use():
        sums = xp.zeros(nb, dtype=np.float64)
        losses, clipped, factor, gscale = (xp.empty(nb, dtype=np.float64) for _ in range(4))
        mean = xp.zeros(1, dtype=np.float64)
        bad = xp.zeros(1, dtype=np.int32)
        mom = moments if clip else xp.zeros(2, dtype=np.float64)
        bx, by = _grid(npix, nb)
        if engine == "cuda":
            from . import _cuda

            sfx = _suffix(p2.dtype)
            k_sums = _cuda.get_function("alrc_loss", f"alrc_sums_{sfx}", dev)
            k_fin = _cuda.get_function("alrc_loss", "alrc_finalize", dev)
            k_sums((bx, by), (_THREADS,), (p2, t2, w2, np.int32(has_w), np.int64(w2.shape[0] > 1), np.int32(kind),
                                            np.int64(nb), np.int64(npix), sums))
            k_fin((1,), (_THREADS,), (sums, np.int64(nb), np.int64(npix), np.int32(kind), np.float64(scale),
                                      np.float64(n), np.float64(beta), np.int32(clip), np.int32(update), mom,
                                      losses, clipped, factor, gscale, mean, bad))
        else:
            from ._alrc_loss_numba_cuda import THREADS, alrc_finalize_kernel, alrc_sums_kernel

            st = numba_cuda_stream()
            a = as_numba_cuda
            alrc_sums_kernel[(bx, by), THREADS, st](a(p2), a(t2), a(w2), has_w, kind, a(sums))
            alrc_finalize_kernel[1, THREADS, st](a(sums), npix, kind, scale, n, beta, clip, update, a(mom),
                                                 a(losses), a(clipped), a(factor), a(gscale), a(mean), a(bad))
    on_gpu = backend.is_cupy_array(p2)
    if on_gpu:
        return ALRCResult(mean[0], losses, clipped, factor, gscale, None, bad)
    return ALRCResult(float(mean[0]), losses, clipped, factor, gscale, None, int(bad[0]))  # simulator


@accepts_torch
def alrc_loss_grad(pred, target, gscale, *, loss: str = "mse", weight=None, gout=None, out=None,
                   engine: str | None = None):
    """The backward pass: ``out[b, ...] = gout * gscale[b] * w * e'(pred - target)``.

    ``gscale`` (float64, shape ``(B,)``) comes from :func:`alrc_loss`; ``gout`` is the upstream
    gradient (float, or a 1-element float64 array on the arrays' device, so that a GPU step never
    synchronises). ``out`` (same shape/dtype as ``pred``) is written when given; returns it.
    """
    require_arrays("alrc_loss_grad", ("weight", "out"), pred=pred, target=target, weight=weight, out=out)
    where = "alrc_loss_grad"
    _validate(pred, target, weight, where)
    kind = _kind(loss, where)
    nb = pred.shape[0]
    if getattr(gscale, "shape", None) != (nb,):
        raise InputError(f"{where}: gscale must have shape ({nb},), got {getattr(gscale, 'shape', None)}")
    impl = _GRAD.implementation(_GRAD.select(engine, pred, target, weight, gscale))
    xp = backend.get_array_module(pred)
    if out is None:
        out = xp.empty_like(pred)
    elif out.shape != pred.shape or out.dtype != pred.dtype or not out.flags.c_contiguous:
        raise InputError(f"{where}: out must be a C-contiguous {pred.dtype} array of shape {pred.shape}")
    p2, t2, o2 = _flat(pred, "pred"), _flat(target, "target"), _flat(out, "out")
    w2, has_w = _weight2d(weight, p2)
    impl(p2, t2, w2, has_w, kind, gscale, gout, o2)
    return out


# --- backward implementations: write gout * gscale[b] * w * e'(d) into o2 (arrays flattened as above) ---

def _host_gout(gout) -> float:
    return 1.0 if gout is None else float(np.asarray(gout).reshape(-1)[0])


@_GRAD.register("numpy")
def _alrc_loss_grad_numpy(p2, t2, w2, has_w, kind, gscale, gout, o2) -> None:
    _grad_numpy(p2, t2, w2, has_w, kind, np.asarray(gscale, dtype=np.float64), _host_gout(gout), o2)


@_GRAD.register("numba")
def _alrc_loss_grad_numba(p2, t2, w2, has_w, kind, gscale, gout, o2) -> None:
    from . import _alrc_loss_numba as K

    fn = K.alrc_grad_serial if p2.size < K.SERIAL_BELOW else K.alrc_grad_numba
    fn(p2, t2, w2, has_w, kind, np.ascontiguousarray(gscale, dtype=np.float64), _host_gout(gout), K.CHUNK, o2)


@_GRAD.register("cuda", "numba-cuda", with_engine=True)
def _alrc_loss_grad_gpu(p2, t2, w2, has_w, kind, gscale, gout, o2, engine) -> None:
    xp = backend.get_array_module(p2)
    nb, npix = p2.shape
    dev = backend.get_device(p2)
    with dev.use():
        if gout is None or np.isscalar(gout):
            gd = xp.full(1, 1.0 if gout is None else float(gout), dtype=np.float64)
        else:
            gd = gout.reshape(1)
            if gd.dtype != np.float64:
                gd = gd.astype(np.float64)
        bx, by = _grid(npix, nb)
        if engine == "cuda":
            from . import _cuda

            k = _cuda.get_function("alrc_loss", f"alrc_grad_{_suffix(p2.dtype)}", dev)
            k((bx, by), (_THREADS,), (p2, t2, w2, np.int32(has_w), np.int64(w2.shape[0] > 1), np.int32(kind),
                                      np.int64(nb), np.int64(npix), gscale, gd, o2))
        else:
            from ._alrc_loss_numba_cuda import THREADS, alrc_grad_kernel

            a = as_numba_cuda
            alrc_grad_kernel[(bx, by), THREADS, numba_cuda_stream()](a(p2), a(t2), a(w2), has_w, kind, a(gscale),
                                                                     a(gd), a(o2))
