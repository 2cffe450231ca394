"""Convex edge-preserving priors on a 3D volume: value and gradient fused in one pass.

``R(x)`` sums a potential of the differences between neighbouring voxels (free boundary: only
pairs inside the volume count). Four priors (docs/tomo_regularised.md "Priors"; issue 20):

``"tv"``  anisotropic TV, smoothed
    ``sum over the 6-neighbour pairs of sqrt(d^2 + eps^2) - eps``;
``"itv"``  isotropic TV, smoothed
    ``sum_i sqrt(|D x|_i^2 + eps^2) - eps`` with forward differences ``D`` (0 at the far faces);
``"huber"``
    ``sum over the 6-neighbour pairs of h(d)``, ``h = d^2/2`` for ``|d| <= delta``, else
    ``delta (|d| - delta/2)``;
``"qggmrf"``  the q-generalised Gaussian MRF of MBIR (Thibault et al. 2007; svmbir's prior)
    ``sum over the 26-neighbour pairs of b_d rho(d)``, ``rho(d) = |d|^p / (p sigma^p) *
    u / (1 + u)``, ``u = |d / (T sigma)|^(q - p)``, ``b_d ~ 1/|offset|`` normalised so the 26
    weights of a voxel sum to 1. Convex for ``1 <= p <= q <= 2`` (svmbir's names: ``p`` the
    edge exponent, default 1.2, ``q = 2``).

Every engine writes ``grad <- beta*grad + alpha*dR/dx`` into a preallocated array (nothing is
allocated per call on the CPU engines beyond Numba's scalars) and returns ``R(x)``, accumulated
in float64. The NumPy engine (float64 on whole shifted arrays) is the test oracle; the CUDA C
and Numba CUDA engines share one gather-form per-voxel routine (no write conflicts); the Numba CPU
engine runs TV, Huber and isotropic TV in vectorised passes (isotropic TV in gather form) and
qGGMRF in a pair pass (each pair once, scattered in even/odd slice sweeps)
(``_volume_prior_numba.py``).

Proximal steps are *not* provided: the solver (:mod:`fastem.tomo.regularised`) uses the smoothed
priors' gradients, which serve all four priors with one kernel (qGGMRF has no closed-form prox).
"""

from __future__ import annotations

import contextlib
import math

import numpy as np

from fastem import backend
from fastem.errors import InputError
from fastem.interop import accepts_torch

from ._dispatch import KernelDispatcher, as_numba_cuda, numba_cuda_stream, require_arrays

_VOLUME_PRIOR = KernelDispatcher("volume_prior", ("numpy", "numba", "cuda", "numba-cuda"))

__all__ = ["volume_prior", "prior_lipschitz", "PRIORS", "prior_parameters", "pair_derivative"]

#: prior names -> kernel kind codes (``_volume_prior_common``)
PRIORS = {"tv": 0, "itv": 1, "huber": 2, "qggmrf": 3}
_SUPPORTED = (np.dtype(np.float32), np.dtype(np.float64))


def prior_parameters(prior: str, *, eps: float = 1e-3, delta: float = 1e-2, p: float = 1.2, q: float = 2.0,
                     t: float = 1.0, sigma: float = 1.0) -> tuple[int, float, float, float, float, float]:
    """Validate a prior's parameters; returns ``(kind, a, p, q, t, sigma)`` for the kernels.

    ``a`` is ``eps`` for the TVs and ``delta`` for Huber. Raises a one-line
    :class:`~fastem.errors.InputError` naming the bad parameter.
    """
    if not isinstance(prior, str) or prior not in PRIORS:
        raise InputError(f"prior must be one of {', '.join(PRIORS)}, got {prior!r}")

    def _pos(name, v):
        try:
            v = float(v)
        except (TypeError, ValueError):
            raise InputError(f"{name} must be a number, got {v!r}") from None
        if not (math.isfinite(v) and v > 0):
            raise InputError(f"{name} must be a finite number > 0, got {v}")
        return v

    kind = PRIORS[prior]
    a = _pos("eps", eps) if kind in (0, 1) else _pos("delta", delta) if kind == 2 else 0.0
    p, q, t, sigma = _pos("p", p), _pos("q", q), _pos("t", t), _pos("sigma", sigma)
    if kind == 3 and not (1.0 <= p <= q <= 2.0 and q > 1.0):
        raise InputError(f"qggmrf needs 1 <= p <= q <= 2 and q > 1 (convex, differentiable), got p={p}, q={q}")
    return kind, a, p, q, t, sigma


def _rho_np(kind, d, a, p, q, t, sigma):
    ad = np.abs(d)
    if kind == 0:
        return np.sqrt(d * d + a * a) - a
    if kind == 2:
        return np.where(ad <= a, 0.5 * d * d, a * (ad - 0.5 * a))
    u = (ad / (t * sigma)) ** (q - p)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ad > 0, ad ** p / (p * sigma ** p) * u / (1.0 + u), 0.0)


def _drho_np(kind, d, a, p, q, t, sigma):
    if kind == 0:
        return d / np.sqrt(d * d + a * a)
    if kind == 2:
        return np.clip(d, -a, a)
    ad = np.abs(d)
    u = (ad / (t * sigma)) ** (q - p)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = ad ** (p - 1.0) / (p * sigma ** p) * u / (1.0 + u) * (p + (q - p) / (1.0 + u))
    return np.where(ad > 0, np.sign(d) * g, 0.0)


def _offsets(kind):
    """The neighbour offsets with a lexicographically positive first non-zero entry, and weights."""
    out = []
    for oz in (-1, 0, 1):
        for oy in (-1, 0, 1):
            for ox in (-1, 0, 1):
                o = (oz, oy, ox)
                m = sum(abs(v) for v in o)
                if m == 0 or o <= (0, 0, 0):
                    continue
                if kind != 3 and m != 1:
                    continue
                out.append((o, 1.0 if kind != 3 else 1.0 / math.sqrt(m)))
    if kind == 3:
        norm = 6.0 + 12.0 / math.sqrt(2.0) + 8.0 / math.sqrt(3.0)
        out = [(o, w / norm) for o, w in out]
    return out


def _sl(o, n):
    """Slices of the voxels i (first) and i + o (second) inside an axis of length n, offset o."""
    if o == 1:
        return slice(0, n - 1), slice(1, n)
    if o == -1:
        return slice(1, n), slice(0, n - 1)
    return slice(0, n), slice(0, n)


def _volume_prior_numpy(x, kind, a, p, q, t, sigma):
    """(R(x), dR/dx) in float64 on whole arrays (the oracle; allocates)."""
    x = np.asarray(x, dtype=np.float64)
    g = np.zeros_like(x)
    if kind == 1:
        d = np.zeros((3,) + x.shape)
        d[0, :-1] = x[1:] - x[:-1]
        d[1, :, :-1] = x[:, 1:] - x[:, :-1]
        d[2, :, :, :-1] = x[:, :, 1:] - x[:, :, :-1]
        n = np.sqrt((d * d).sum(axis=0) + a * a)
        u = d / n
        g -= u.sum(axis=0)
        g[1:] += u[0, :-1]
        g[:, 1:] += u[1, :, :-1]
        g[:, :, 1:] += u[2, :, :, :-1]
        return float((n - a).sum()), g
    value = 0.0
    for o, w in _offsets(kind):
        s = [_sl(oi, ni) for oi, ni in zip(o, x.shape)]
        a_idx = tuple(si[0] for si in s)
        b_idx = tuple(si[1] for si in s)
        d = x[b_idx] - x[a_idx]       # x_{i+o} - x_i
        value += w * float(_rho_np(kind, d, a, p, q, t, sigma).sum())
        r = w * _drho_np(kind, d, a, p, q, t, sigma)
        g[b_idx] += r
        g[a_idx] -= r
    return value, g


@_VOLUME_PRIOR.register("numpy")
def _volume_prior_numpy_engine(x, grad, kind, a, p, q, t, sigma, alpha, beta):
    xp = backend.get_array_module(x)
    value, g = _volume_prior_numpy(backend.to_device(x, "cpu"), kind, a, p, q, t, sigma)
    new = alpha * g if beta == 0.0 else beta * backend.to_device(grad, "cpu").astype(np.float64) + alpha * g
    grad[...] = xp.asarray(new.astype(grad.dtype))
    return value


@_VOLUME_PRIOR.register("numba")
def _volume_prior_numba(x, grad, kind, a, p, q, t, sigma, alpha, beta):
    from ._volume_prior_numba import (FACE_HUBER, FACE_ITV, FACE_TV, face_prior_numba, qggmrf_prior_numba,
                                      volume_prior_numba)

    face = {PRIORS["tv"]: FACE_TV, PRIORS["huber"]: FACE_HUBER, PRIORS["itv"]: FACE_ITV}.get(kind)
    if face is not None:
        return float(face_prior_numba(x, grad, face, a, alpha, beta))
    if kind == PRIORS["qggmrf"]:
        from ._volume_prior_common import W_CORNER, W_EDGE, W_FACE

        return float(qggmrf_prior_numba(x, grad, p, q, t, sigma, alpha, beta, W_FACE, W_EDGE, W_CORNER))
    return float(volume_prior_numba(x, grad, kind, a, p, q, t, sigma, alpha, beta))


@_VOLUME_PRIOR.register("cuda", "numba-cuda", with_engine=True)
def _volume_prior_gpu(x, grad, kind, a, p, q, t, sigma, alpha, beta, engine):
    xp = backend.get_array_module(x)
    with backend.get_device(x).use() if backend.is_cupy_array(x) else contextlib.nullcontext():
        out = xp.zeros(1, dtype=np.float64)
        nz, ny, nx = x.shape
        if engine == "cuda":
            from . import _cuda

            name = "volume_prior_f32" if x.dtype == np.float32 else "volume_prior_f64"
            kernel = _cuda.get_function("volume_prior", name, backend.get_device(x))
            grid, block = _cuda.launch_config(x.size, threads=256, max_blocks=65535)
            kernel(grid, block, (x, grad, np.int64(nz), np.int64(ny), np.int64(nx), np.int32(kind), np.float64(a),
                                 np.float64(p), np.float64(q), np.float64(t), np.float64(sigma), np.float64(alpha),
                                 np.float64(beta), out))
        else:  # numba-cuda
            from ._volume_prior_numba_cuda import volume_prior_numba_cuda

            volume_prior_numba_cuda(as_numba_cuda(x), as_numba_cuda(grad), kind, a, p, q, t, sigma, alpha, beta,
                                    as_numba_cuda(out), stream=numba_cuda_stream())
        return out[0] if backend.is_cupy_array(x) else float(out[0])


@accepts_torch
def volume_prior(x, grad, prior: str = "tv", *, eps: float = 1e-3, delta: float = 1e-2, p: float = 1.2,
                 q: float = 2.0, t: float = 1.0, sigma: float = 1.0, alpha: float = 1.0, beta: float = 0.0,
                 engine: str | None = None):
    """Fused value and gradient of a convex prior: ``grad <- beta*grad + alpha*dR/dx``; returns ``R(x)``.

    Parameters
    ----------
    x : ndarray (nz, ny, nx), float32 or float64, C-contiguous
        The volume (NumPy or CuPy); not modified.
    grad : ndarray, same shape, dtype and device as ``x``, C-contiguous
        Updated in place (``beta == 0`` overwrites it without reading it). Must not be ``x``.
    prior : {"tv", "itv", "huber", "qggmrf"}
        See the module docstring.
    eps : float > 0
        TV smoothing (volume units; ``"tv"``, ``"itv"``).
    delta : float > 0
        Huber threshold (volume units).
    p, q, t, sigma : float
        qGGMRF exponents (``1 <= p <= q <= 2``, ``q > 1``), threshold ``T`` (units of ``sigma``)
        and scale ``sigma_x`` (volume units).
    alpha, beta : float
        Scale of the gradient and of the old ``grad`` (e.g. ``alpha=lambda, beta=1`` adds the
        weighted prior gradient to a data gradient).
    engine : {None, "numpy", "numba", "cuda", "numba-cuda"}

    Returns
    -------
    float (host) or cupy 0-d float64
        ``R(x)`` (without ``alpha``), accumulated in float64; on the GPU it stays on the device.
    """
    require_arrays("volume_prior", (), x=x, grad=grad)
    if x.ndim != 3:
        raise InputError(f"volume_prior: x must be a 3D volume (nz, ny, nx), got shape {tuple(x.shape)}")
    if x.shape != grad.shape:
        raise InputError(f"volume_prior: x has shape {tuple(x.shape)} but grad has shape {tuple(grad.shape)}")
    if x.dtype != grad.dtype or x.dtype not in _SUPPORTED:
        raise InputError(f"volume_prior: x and grad must both be float32 or float64, got {x.dtype} and {grad.dtype}")
    if not (x.flags.c_contiguous and grad.flags.c_contiguous):
        raise InputError("volume_prior: x and grad must be C-contiguous")
    if x is grad or (isinstance(x, np.ndarray) and np.shares_memory(x, grad)):
        raise InputError("volume_prior: grad must not share memory with x")
    kind, a, p, q, t, sigma = prior_parameters(prior, eps=eps, delta=delta, p=p, q=q, t=t, sigma=sigma)
    alpha, beta = float(alpha), float(beta)
    if not (math.isfinite(alpha) and math.isfinite(beta)):
        raise InputError(f"volume_prior: alpha and beta must be finite, got {alpha}, {beta}")
    return _VOLUME_PRIOR(engine, (x, grad), x, grad, kind, a, p, q, t, sigma, alpha, beta)


def pair_derivative(prior: str, d, **params) -> np.ndarray:
    """``rho'(d)`` of the prior's pair potential at the differences ``d`` (float64, host).

    For ``"itv"`` the anisotropic TV's (the same ``eps``): the isotropic term has no pair form;
    its gradient per axis is bounded by the same value.
    """
    kind, a, p, q, t, sigma = prior_parameters(prior, **params)
    return _drho_np(0 if kind == 1 else kind, np.asarray(d, dtype=np.float64), a, p, q, t, sigma)


def prior_lipschitz(prior: str, **params) -> float:
    """An upper bound on the Lipschitz constant of ``dR/dx`` (for the prior weight 1).

    ``sup rho'' * ||D^T D||`` with the difference operator's bound ``||D^T D|| <= 2 * sum of a
    voxel's neighbour weights``: 12 for the 6-neighbour priors (``"tv"``, ``"itv"``, ``"huber"``)
    and 2 for qGGMRF (its 26 weights sum to 1). ``sup rho''`` is ``1/eps`` (TVs), 1 (Huber), and
    for qGGMRF the largest slope of ``rho'`` sampled on a log grid of ``|d|`` from ``1e-6 T sigma``
    to ``1e4 T sigma`` (at ``q = 2`` it is ``2 / (p sigma^2 T^(2-p))``, reached at ``d = 0``).
    """
    kind, a, p, q, t, sigma = prior_parameters(prior, **params)
    if kind in (0, 1):
        return 12.0 / a
    if kind == 2:
        return 12.0
    d = t * sigma * np.logspace(-6, 4, 4001)
    r = _drho_np(kind, d, a, p, q, t, sigma)
    slopes = np.concatenate([r / d, np.diff(r) / np.diff(d)])
    return 2.0 * float(np.max(slopes)) * 1.01
