"""Regularised RESIRE: weighted least squares plus a convex edge-preserving prior, solved by FISTA.

Minimises (issue 20; docs/tomo_regularised.md)

    F(x) = 1/2 sum_k || W_k^(1/2) (P_k(x) - b_k) ||^2 + lambda R(x)      subject to x >= 0, x = 0 off the support

with RESIRE's projectors ``P_k`` (``linear``: exact adjoint pair, the default; ``fst``: the
thesis' Fourier-slice forward projection with the bilinear back projection, an approximate
gradient), per-pixel weights ``W`` (0 = unmeasured; otherwise relative inverse variances,
normalised to mean 1 over the measured pixels) and ``R`` one of the smoothed priors of
:mod:`fastem.kernels.volume_prior` (``tv``, ``itv``, ``huber``, ``qggmrf``). The default is
``itv`` (isotropic TV): on issue 20's noisy vesicle and cell cases from 48^3 to 128^3 its error
is below TV's (at 256^3 TV's is 0.4 % lower; docs/tomo_regularised.md, "Fair pairings; isotropic
TV the default").

Method: FISTA (Beck & Teboulle 2009) on the smooth part with the constraint set's projection as
the proximal step, a fixed step ``1 / (L_data + lambda L_prior)`` (``L_data`` from a power
iteration on ``A^T W A``, ``L_prior`` the kernel's analytic bound) and O'Donoghue & Candes'
gradient restart (momentum reset when ``<y - x_new, x_new - x_old> > 0``), which keeps the
objective close to monotone without an extra projection per iteration. Per iteration: one
forward projection fused with the residual, one back projection, one fused prior pass and a
few in-place vector updates; nothing is allocated.

Automatic strength (``prior_weight="auto"``): the noise sigma is estimated from the measured
pixels only (:func:`estimate_noise`: robust MAD of a 5-point Laplacian over pixels whose whole
stencil is measured) and recorded; ``lambda`` is chosen by R-free by default
(:func:`choose_weight_rfree`: the weight whose reconstruction best predicts held-out measured
pixels, 2 % by default (:func:`held_out_pixels`), as GENFIRE's R-free) or by Morozov's discrepancy
principle (:func:`choose_weight`: the largest ``lambda`` with ``sum W r^2 <= tau * N_measured *
sigma^2``). Zero-weight pixels influence nothing: not the gradient, not the noise estimate, not
the strength (their values are never read).

Edge check (default on single-axis series of at least 40 projections with a missing wedge): the
search also holds out the outermost projection at each end of the tilt range, the measured data
nearest to the missing wedge, and its last pairing (the chosen strength against half of it) is
decided by their residual, which sees how the prior extrapolates towards the wedge where the
random R-free pixels cannot; those projections are then returned to the fit
(:func:`choose_weight_rfree`).

R-free early stop (default with the R-free strength): the final iterations go on with the R-free
pixels held out and stop once their residual has not improved for 3 checks (every 10 iterations),
returning the volume with the lowest R-free. The search's trials run 25 iterations each, so the
strength they pick is the best for a partly converged solve; a weak one then over-fits the noise
as the final solve converges, which the stop prevents (``bench/tomo_rfree_stop.py``). After an
edge check the checks count from iteration 60 (90 when the weaker strength was taken) on, with
patience 1 (:data:`EDGE_SETTLE_ITERATIONS`, :data:`EDGE_PATIENCE`).
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import numpy as np

from .. import backend
from ..errors import InputError
from ..kernels._dispatch import KERNEL_ENGINES
from ..kernels.fista_step import fista_extrapolate, fista_update
from ..kernels.volume_prior import PRIORS, pair_derivative, prior_lipschitz, prior_parameters, volume_prior
from ._validate import as_array, as_float, as_int
from .operators import BORDER, make_projector
from .problem import TomoProblem
from .solver import IterativeReconstruction, ReconstructionResult

__all__ = ["RegularisedReconstruction", "regularised", "prepare_regularised", "choose_weight_rfree", "estimate_noise",
           "choose_weight", "default_prior_parameters"]

#: the power iteration for L_data stops when its estimate changes by less than this (relative)
POWER_TOLERANCE = 1e-4

#: default prior parameters as fractions of the volume's value scale ``x_ref`` (see :func:`default_prior_parameters`)
DEFAULT_FRACTIONS = {"eps": 0.05, "delta": 0.05, "sigma": 0.2}


def estimate_noise(data, weights=None) -> float:
    """Standard deviation of additive white noise in projections, from the measured pixels only.

    Parameters
    ----------
    data : array_like (n, rows, cols)
        Projections (any units; NumPy or CuPy).
    weights : array_like (n, rows, cols), optional
        Per-pixel weights; pixels with weight 0 (or non-finite data) are never read. Non-zero
        weights are treated as relative inverse variances: each Laplacian value is whitened by
        ``sqrt(w / mean(w))`` at its centre pixel, so the result is the sigma of a weight-1 pixel.

    Returns
    -------
    float
        ``1.4826 * MAD(L) / sqrt(1.25)`` of the 5-point Laplacian ``L = b_c - mean(4 neighbours)``
        over pixels whose whole stencil is measured (for white noise ``var L = 1.25 sigma^2``;
        the median ignores the few large values at the projections' edges).

    Raises
    ------
    InputError
        fewer than 50 pixels with a fully measured stencil (give the noise level instead).
    """
    data = backend.to_device(data, "cpu")
    if np.ndim(data) != 3:
        raise InputError(f"data must be (n, rows, cols), got shape {np.shape(data)}")
    if weights is not None:
        weights = backend.to_device(weights, "cpu")
        if np.shape(weights) != np.shape(data):
            raise InputError(f"weights have shape {np.shape(weights)} but the data have shape {np.shape(data)}")

    # one projection at a time in float64 (the temporaries are images, not stacks: this runs
    # beside a solver's volumes, issue 20's memory at 256^3)
    def image(k):
        b = np.asarray(data[k], dtype=np.float64)
        w = np.ones(b.shape) if weights is None else np.asarray(weights[k], dtype=np.float64)
        ok = (w > 0) & np.isfinite(b) & np.isfinite(w)
        return b, w, ok

    c = (slice(1, -1), slice(1, -1))
    nb = [(slice(0, -2), slice(1, -1)), (slice(2, None), slice(1, -1)), (slice(1, -1), slice(0, -2)),
          (slice(1, -1), slice(2, None))]

    def stencil(ok):
        return ok[c] & ok[nb[0]] & ok[nb[1]] & ok[nb[2]] & ok[nb[3]]

    total, count, n_valid = 0.0, 0, 0
    for k in range(len(data)):
        _, w, ok = image(k)
        total += float(w[ok].sum())
        count += int(ok.sum())
        n_valid += int(stencil(ok).sum())
    if count == 0:
        raise InputError("estimate_noise: no measured pixel (every weight is 0)")
    if n_valid < 50:
        raise InputError(f"estimate_noise: only {n_valid} pixels have a fully measured 3x3 cross; "
                         "give the noise level instead")
    wm = total / count
    vals = np.empty(n_valid)
    at = 0
    for k in range(len(data)):
        b, w, ok = image(k)
        b = np.where(ok, b, 0.0)
        valid = stencil(ok)
        lap = b[c] - 0.25 * (b[nb[0]] + b[nb[1]] + b[nb[2]] + b[nb[3]])
        part = lap[valid] * np.sqrt(w[c][valid] / wm)
        vals[at:at + part.size] = part
        at += part.size
    vals -= np.median(vals, overwrite_input=True)      # reorders vals: the MAD does not mind
    np.abs(vals, out=vals)
    mad = float(np.median(vals, overwrite_input=True))
    return 1.4826 * mad / math.sqrt(1.25)


def _sum_squares(images) -> float:
    """``sum images^2`` accumulated in float64. On the CPU one image at a time (no float64 copy of
    the stack beside the solver's volumes: two such copies were the R-free check's peak)."""
    if backend.is_cupy_array(images):
        return float((images.astype(np.float64) ** 2).sum())
    from ..kernels._workspace import thread_buffer

    sq = thread_buffer("rfree_image_f64", images.shape[1:], lambda: np.empty(images.shape[1:], np.float64))
    total = 0.0
    for image in images:            # no BLAS dot: its thread pool spins after a call and takes the
        sq[...] = image             # cores from the Numba kernels that follow
        sq *= sq                    # one float64 image per thread, kept: the checks allocate nothing
        total += float(sq.sum())
    return total


def _volume_scale(problem: TomoProblem, weights_host) -> float:
    """A value scale of the volume: 99th percentile of the measured data over the beam length."""
    data = np.asarray(backend.to_device(problem.data, "cpu"))
    vals = np.abs(data[weights_host > 0])
    ref = float(np.percentile(vals, 99)) if vals.size else 0.0
    return ref / max(1, int(problem.geometry.beam_length)) if ref > 0 else 1.0


def default_prior_parameters(prior: str, x_ref: float) -> dict:
    """The parameters used when none are given, relative to the volume scale ``x_ref``.

    TV smoothing ``eps = 0.05 x_ref``; Huber ``delta = 0.05 x_ref``; qGGMRF as svmbir's defaults
    (``p = 1.2, q = 2, T = 1``) with ``sigma_x = 0.2 x_ref``.
    """
    prior_parameters(prior)
    if prior in ("tv", "itv"):
        return {"eps": DEFAULT_FRACTIONS["eps"] * x_ref}
    if prior == "huber":
        return {"delta": DEFAULT_FRACTIONS["delta"] * x_ref}
    return {"sigma": DEFAULT_FRACTIONS["sigma"] * x_ref, "p": 1.2, "q": 2.0, "t": 1.0}


class RegularisedReconstruction(IterativeReconstruction):
    """FISTA on weighted least squares plus ``weight * prior`` (see the module docstring).

    Parameters
    ----------
    problem : TomoProblem
    prior : {"itv", "tv", "huber", "qggmrf", "none"}
        Default ``"itv"`` (isotropic TV); ``"none"``: plain weighted least squares by FISTA.
    weight : float >= 0
        The prior strength ``lambda`` (in the problem's units: data^2 per prior unit). Change it
        later with :meth:`set_weight` (warm start).
    weights : array_like (n, rows, cols), optional
        Per-pixel data weights (>= 0, finite); multiplied by the problem's mask and normalised to
        mean 1 over the pixels left non-zero.
    prior_params : dict, optional
        ``eps`` / ``delta`` / ``sigma, p, q, t`` (volume units); defaults from
        :func:`default_prior_parameters` with the volume scale estimated from the data.
    projector : {"linear", "fst"}
    oversampling, max_chunk_bytes, engine : see :class:`~fastem.tomo.Resire`
    positivity, support, initial : see :class:`~fastem.tomo.solver.IterativeReconstruction`
    power_iterations : int
        At most this many iterations of the power method for ``L_data`` (done once, at
        construction; it stops earlier once the estimate settles, see :data:`POWER_TOLERANCE`).
    lipschitz : float, optional
        ``L_data`` given instead of estimated.
    momentum : {"restart", "fista", "none"}
        FISTA with gradient restart (default), plain FISTA, or none (projected gradient, ISTA);
        the latter two for the convergence comparison (docs/tomo_regularised.md).
    held_out : array_like bool (n, rows, cols), optional
        The R-free pixels: weight 0 in the data term, their residual measured by :meth:`rfree`
        and, every ``rfree_every`` iterations, by the R-free early stop of :meth:`run` (which stops
        after ``rfree_patience`` checks without improvement).
    rfree_start : int
        The R-free checks count from this iteration on (earlier iterates are not candidates);
        default 0. The final solve after the R-free search's edge check starts them late
        (:func:`prepare_regularised`); kept in :meth:`state`, so a resumed run does the same.

    Attributes
    ----------
    objective_terms() : (data term, prior value) of the current volume.
    lipschitz_data, lipschitz_prior : float
    """

    algorithm = "regularised"
    divergence_hint = "check the data and the angles (the step comes from a power iteration; pass a larger lipschitz)"

    def __init__(self, problem: TomoProblem, *, prior: str = "itv", weight: float = 0.0, weights=None,
                 prior_params: dict | None = None, projector: str = "linear", oversampling=2.0,
                 positivity: bool = True, support=None, initial=None, power_iterations: int = 30,
                 lipschitz: float | None = None, engine: str | None = None, max_chunk_bytes: int | None = None,
                 momentum: str = "restart", held_out=None, rfree_every: int = 10, rfree_patience: int = 3,
                 rfree_start: int = 0):
        if momentum not in ("restart", "fista", "none"):
            raise InputError(f"momentum must be 'restart', 'fista' or 'none', got {momentum!r}")
        self.momentum = momentum
        if not isinstance(problem, TomoProblem):
            raise InputError(f"problem must be a TomoProblem, got {type(problem).__name__}")
        if not isinstance(prior, str) or (prior != "none" and prior not in PRIORS):
            raise InputError(f"prior must be one of none, {', '.join(PRIORS)}, got {prior!r}")
        if not isinstance(projector, str):
            raise InputError(f"projector must be one of 'linear', 'fst', got {projector!r}")
        power_iterations = as_int(power_iterations, "power_iterations", minimum=1)
        op = make_projector(projector, problem.geometry, device=problem.device, oversampling=oversampling,
                            max_chunk_bytes=max_chunk_bytes, engine=engine)
        super().__init__(problem, op, positivity=positivity, support=support, initial=initial)
        self.prior = prior
        self.engine = engine
        # the fused FISTA updates' engine: the solver's own, or the device default where they lack it (numba-cuda)
        self._vector_engine = engine if engine is None or engine in KERNEL_ENGINES["fista_update"] else None
        xp = problem.device.xp
        mask_host = np.asarray(backend.to_device(problem.mask, "cpu"), dtype=np.float64)
        if weights is not None:
            w = as_array(weights, "weights")
            if w.shape != problem.geometry.projections_shape:
                raise InputError(f"weights have shape {w.shape} but the projections have shape "
                                 f"{problem.geometry.projections_shape}")
            w = np.asarray(w, dtype=np.float64)
            if not np.all(np.isfinite(w)) or (w < 0).any():
                raise InputError("weights must be finite and >= 0 (0 = unmeasured)")
            w = w * mask_host
        else:
            w = mask_host
        held_host = None
        if held_out is not None:
            held_host = np.asarray(as_array(held_out, "held_out")) != 0
            if held_host.shape != problem.geometry.projections_shape:
                raise InputError(f"held_out has shape {held_host.shape} but the projections have shape "
                                 f"{problem.geometry.projections_shape}")
            held_host &= w > 0                       # an unmeasured pixel is never held out (never read)
            if not held_host.any():
                raise InputError("held_out: no measured pixel is held out")
            w = np.where(held_host, 0.0, w)
        if not (w > 0).any():
            raise InputError("weights: every pixel has weight 0; nothing to reconstruct")
        self.weight_mean = float(w[w > 0].mean())   # the normalisation (a bound for a held-out subset)
        w = w / self.weight_mean
        self.measured = int((w > 0).sum())
        self.weights_host = w.astype(np.float32)
        del w, mask_host       # float64 images: not held through the power iteration below
        self.x_ref = _volume_scale(problem, self.weights_host)
        params = {} if prior == "none" else default_prior_parameters(prior, self.x_ref)
        if prior_params:
            if not isinstance(prior_params, dict):
                raise InputError(f"prior_params must be a dict, got {type(prior_params).__name__}")
            params.update(prior_params)
        if prior != "none":
            prior_parameters(prior, **params)      # validates, naming the parameter
        self.prior_params = params
        with problem.device.use():
            self.w = backend.to_device(self.weights_host, problem.device)
            self._sqrt_w = None                     # sqrt(w), made when first needed (the objective's monitoring)
            self.x_prev = self.volume.copy()
            self.y = self.volume.copy()
            self.g = self.op.empty_volume()
            self.held = None if held_host is None else backend.to_device(held_host.astype(np.float32), problem.device)
            # the R-free stop's best volume: allocated when first written (:meth:`_best_buffer`), so
            # that the search, which runs this solver without the stop, does not hold it
            self.best_volume = None
        self.held_count = 0 if held_host is None else int(held_host.sum())
        self.rfree_every = as_int(rfree_every, "rfree_every", minimum=0)
        self.rfree_patience = as_int(rfree_patience, "rfree_patience", minimum=1)
        self.rfree_start = as_int(rfree_start, "rfree_start", minimum=0)
        self._excluded = None            # (host bool mask, device float32 0/1 mask, saved weights) of exclude_pixels
        self.rfree_best = math.inf              # R-free of best_volume
        self.rfree_best_iteration = -1
        self.rfree_rises = 0                    # checks since the best one
        self.rfree_history: list[tuple[int, float]] = []
        self.t = 1.0
        self.restarts = 0
        self.lipschitz_prior = 0.0 if prior == "none" else prior_lipschitz(prior, **params)
        if lipschitz is None:
            self.lipschitz_data = self._power_iteration(power_iterations)
        else:
            self.lipschitz_data = as_float(lipschitz, "lipschitz", positive=True)
        self.weight = 0.0
        self.set_weight(weight)

    # ---- set-up ----------------------------------------------------------------------------------
    def _power_iteration(self, iterations: int) -> float:
        """Largest eigenvalue of ``A^T W A`` (times 1.05 for the power method's underestimate).

        Stops once the estimate changes by less than :data:`POWER_TOLERANCE` (relative; at least
        3 and at most ``iterations`` products): from the positive start vector a plain tilt series
        settles in fewer than 30 products, to within 1e-4 of a 200-product run, while uneven
        weights converge slowly and run all of them (``test_power_iteration_stops_once_settled_...``).
        """
        p = self.problem
        xp = p.device.xp
        with p.device.use():
            zeros = xp.zeros(p.geometry.projections_shape, dtype=np.float32)
            # the start vector lives in y (scratch until the first iteration): no volume is allocated
            v = self.y
            if xp is np:
                np.random.default_rng(0).random(out=v, dtype=np.float32)
                v += np.float32(0.5)
            else:
                v[...] = backend.to_device(np.random.default_rng(0).random(p.geometry.volume_shape, dtype=np.float32)
                                           + 0.5, p.device)
            if self.support is not None:
                v *= self.support
            lam = 0.0
            for k in range(iterations):
                nv = float(xp.linalg.norm(v))
                if nv == 0.0:
                    break
                v *= np.float32(1.0 / nv)
                self.op.residual(v, zeros, self.w, self.residual, self.l1)
                self.op.back(self.residual, self.g, alpha=1.0, beta=0.0, weights=self.support, border=BORDER)
                lam, previous = float(xp.linalg.norm(self.g)), lam
                v, self.g = self.g, v
                if k >= 2 and abs(lam - previous) <= POWER_TOLERANCE * lam:
                    break
            self.y = v                                  # y and g: the two buffers, in either order
            self.g[...] = 0
            del zeros
        if not (math.isfinite(lam) and lam > 0):
            raise InputError("the projector maps the volume to zero over the measured pixels: nothing to reconstruct")
        return 1.05 * lam

    def set_weight(self, weight: float, *, keep_momentum: bool = False) -> None:
        """Change ``lambda`` (keeps the volume: a warm start).

        The momentum is reset unless ``keep_momentum``: the R-free search's fine phase keeps it,
        so that the two strengths of a pairing continue from the same state and momentum (see
        :func:`choose_weight_rfree`); with the default ``momentum="restart"`` a step that goes
        uphill after the change resets it anyway (the gradient restart of :meth:`iterate`)."""
        self.weight = as_float(weight, "weight", minimum=0.0)
        self.step_size = 1.0 / (self.lipschitz_data + self.weight * self.lipschitz_prior)
        if not keep_momentum:
            self.restart()

    def restart(self) -> None:
        """Reset the momentum (``x_prev = x``, ``t = 1``)."""
        with self.problem.device.use():
            self.x_prev[...] = self.volume
        self.t = 1.0

    # ---- one iteration -------------------------------------------------------------------------
    def _step(self) -> float:
        p = self.problem
        x, x_prev, y, g = self.volume, self.x_prev, self.y, self.g
        t_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * self.t * self.t))
        m = (self.t - 1.0) / t_next if self.momentum != "none" else 0.0
        fista_extrapolate(x, x_prev, y, m, engine=self._vector_engine)   # y = x + m (x - x_prev)
        # g = A^T W (A y - b) + lambda grad R(y)
        self.op.residual(y, p.data, self.w, self.residual, self.l1)
        rf = p.r_factor(self.l1)
        self.op.back(self.residual, g, alpha=1.0, beta=0.0, border=BORDER)
        if self.prior != "none" and self.weight > 0:
            volume_prior(y, g, self.prior, alpha=self.weight, beta=1.0, engine=self.engine, **self.prior_params)
        # x_new = proj_C(y - step g) into g, x_prev <- x; gradient restart: <y - x_new, x_new - x> > 0
        s = fista_update(y, g, x, x_prev, self.step_size, positivity=self.positivity, support=self.support,
                         engine=self._vector_engine)
        restart = self.momentum == "restart" and s > 0.0
        self.volume, self.g = g, x                   # x <- x_new; the old x buffer becomes scratch
        if restart:
            self.restarts += 1
            self.t = 1.0
        else:
            self.t = t_next
        return rf

    # ---- R-free early stop ----------------------------------------------------------------------
    def rfree(self) -> float:
        """``sum (P x - b)^2`` over the held-out pixels of the current volume (data units squared;
        one forward projection). Requires ``held_out``."""
        if self.held is None:
            raise InputError("rfree: the solver holds no pixels out (pass held_out)")
        p = self.problem
        with p.device.use():
            self.op.residual(self.volume, p.data, self.held, self.residual, self.l1)
            return _sum_squares(self.residual) / self.scale ** 2

    def exclude_pixels(self, pixels) -> None:
        """Give the measured ``pixels`` (bool, the projections' shape) weight 0 in the data term until
        :meth:`include_pixels`: a second held-out set beside the R-free one, whose residual
        :meth:`excluded_residual` measures (the R-free search's edge check holds out the outermost
        projections this way). R-free pixels are not among them (they have weight 0 already and
        stay in the R-free set), so the two residuals read disjoint pixels. The weight
        normalisation and ``L_data`` stay those of the full set (removing terms only lowers
        ``A^T W A``, so the step stays safe)."""
        p = self.problem
        mask = np.asarray(as_array(pixels, "pixels")) != 0
        if mask.shape != p.geometry.projections_shape:
            raise InputError(f"pixels has shape {mask.shape} but the projections have shape "
                             f"{p.geometry.projections_shape}")
        if self._excluded is not None:
            raise InputError("exclude_pixels: pixels are excluded already (call include_pixels first)")
        mask &= self.weights_host > 0                   # measured, and not an R-free pixel
        if not mask.any():
            raise InputError("exclude_pixels: no measured pixel to exclude")
        saved = self.weights_host[mask].copy()
        w = self.weights_host.copy()
        w[mask] = 0.0
        with p.device.use():
            # on the CPU self.w is weights_host itself (no copy), which this zeroes too; saved restores it
            self.w[...] = backend.to_device(w, p.device)
            self._excluded = (mask, backend.to_device(mask.astype(np.float32), p.device), saved)

    def include_pixels(self) -> None:
        """Return the pixels of :meth:`exclude_pixels` to the data term (their weights as before)."""
        if self._excluded is None:
            return
        mask, _, saved = self._excluded
        w = self.weights_host.copy()
        w[mask] = saved
        with self.problem.device.use():
            self.w[...] = backend.to_device(w, self.problem.device)
        self._excluded = None

    def excluded_residual(self) -> float:
        """``sum (P x - b)^2`` over the pixels of :meth:`exclude_pixels` (data units squared; one
        forward projection), like :meth:`rfree` for the R-free pixels."""
        if self._excluded is None:
            raise InputError("excluded_residual: no pixels are excluded (call exclude_pixels)")
        p = self.problem
        with p.device.use():
            self.op.residual(self.volume, p.data, self._excluded[1], self.residual, self.l1)
            return _sum_squares(self.residual) / self.scale ** 2

    @property
    def sqrt_w(self):
        """``sqrt(w)``, for :meth:`objective_terms`; allocated on first use (the default R-free
        path never evaluates the objective, so its solvers never hold it)."""
        if self._sqrt_w is None:
            with self.problem.device.use():
                self._sqrt_w = self.problem.device.xp.sqrt(self.w)
        return self._sqrt_w

    def _best_buffer(self):
        """:attr:`best_volume`, allocated on first use (held-out solvers only)."""
        if self.best_volume is None:
            with self.problem.device.use():
                self.best_volume = self.problem.device.xp.empty_like(self.volume)
        return self.best_volume

    def _check_rfree(self) -> bool:
        """Record the R-free of the current volume; keep it when it is the best so far. True once
        ``rfree_patience`` checks in a row have not improved on the best."""
        value = self.rfree()
        self.rfree_history.append((self.iteration, value))
        if value < self.rfree_best:
            self.rfree_best, self.rfree_best_iteration, self.rfree_rises = value, self.iteration, 0
            with self.problem.device.use():
                self._best_buffer()[...] = self.volume
            return False
        self.rfree_rises += 1
        return self.rfree_rises >= self.rfree_patience

    def _should_stop(self) -> str | None:
        if (self.held is None or not self.rfree_every or self.iteration % self.rfree_every
                or self.iteration < self.rfree_start):
            return None
        return "rfree" if self._check_rfree() else None

    def run(self, iterations: int, **kwargs) -> ReconstructionResult:
        """:meth:`IterativeReconstruction.run`; with ``held_out`` pixels, also the R-free early stop.

        Every ``rfree_every`` iterations the residual over the held-out pixels (which the data
        term never sees) is measured; the iteration stops once ``rfree_patience`` checks in a row
        have not improved on the best one (:attr:`stopped` = ``"rfree"``), and the result holds the
        volume with the lowest R-free of all checks: cross-validated early stopping, against the
        over-fitting of noise that a weak automatic strength leaves. The solver itself keeps its
        last iterate (:attr:`volume`; the best is :attr:`best_volume`), so that a continued or
        resumed run goes on exactly as an uninterrupted one.
        """
        t0 = time.perf_counter()
        done = self.held is not None and self.rfree_every and self.rfree_rises >= self.rfree_patience
        result = super().run(self.iteration if done else iterations, **kwargs)   # a resumed stopped run: done
        if self.held is None or not self.rfree_every:
            return result
        if done:
            self.stopped = "rfree"
        if self.rfree_best_iteration >= 0 and self.rfree_best_iteration != self.iteration:
            # return the best cross-validated volume; the solver's own state (volume, momentum) stays
            # as it is, so a continued run goes on exactly as an uninterrupted one
            self.volume, self.best_volume = self.best_volume, self.volume
            try:
                result = self.result(seconds=time.perf_counter() - t0)
            finally:
                self.volume, self.best_volume = self.best_volume, self.volume
        return result

    # ---- monitoring ------------------------------------------------------------------------------
    def objective_terms(self) -> tuple[float, float]:
        """``(1/2 sum W (P x - b)^2, R(x))`` of the current volume (one forward projection)."""
        p = self.problem
        xp = p.device.xp
        with p.device.use():
            self.op.residual(self.volume, p.data, self.sqrt_w, self.residual, self.l1)
            data = 0.5 * float(xp.sum(self.residual.astype(np.float64) ** 2))
            prior = 0.0
            if self.prior != "none":
                prior = float(volume_prior(self.volume, self.g, self.prior, engine=self.engine, **self.prior_params))
        return data, prior

    def objective(self) -> float:
        """``F(x)`` of the current volume (data term + weight * prior)."""
        data, prior = self.objective_terms()
        return data + self.weight * prior

    def discrepancy(self) -> float:
        """``sum W (P x - b)^2`` over the measured pixels (twice the data term)."""
        return 2.0 * self.objective_terms()[0]

    def state(self) -> dict:
        """:meth:`IterativeReconstruction.state` plus the momentum (``x_prev``, ``t``, restarts), so a
        resumed run continues exactly as an uninterrupted one."""
        st = super().state()
        x_prev = np.asarray(backend.to_device(self.x_prev, "cpu")).copy()
        if self.scale != 1.0:
            x_prev *= np.float32(1.0 / self.scale)  # a power of two: exact
        st.update(momentum_x_prev=x_prev, momentum_t=float(self.t), momentum_restarts=int(self.restarts))
        if self.held is not None:
            best = np.asarray(backend.to_device(self._best_buffer() if self.rfree_best_iteration >= 0 else self.volume,
                                                "cpu")).copy()
            if self.scale != 1.0:
                best *= np.float32(1.0 / self.scale)
            st.update(rfree_best_volume=best, rfree_best=float(self.rfree_best),
                      rfree_best_iteration=int(self.rfree_best_iteration), rfree_rises=int(self.rfree_rises),
                      rfree_start=int(self.rfree_start), rfree_patience=int(self.rfree_patience),
                      rfree_history=np.asarray(self.rfree_history, dtype=np.float64).reshape(-1, 2))
        return st

    def restore(self, state: dict) -> None:
        """Continue from :meth:`state` output: exactly when it holds the momentum (a checkpoint);
        otherwise (a finished run's output) the momentum restarts from the restored volume. The
        R-free stop's record (and ``rfree_start``) comes from the state when it holds one."""
        super().restore(state)
        if self.held is not None and state.get("rfree_best_volume") is not None:
            best = np.array(as_array(state["rfree_best_volume"], "state['rfree_best_volume']"), dtype=np.float32)
            if best.shape != self.problem.geometry.volume_shape or not np.all(np.isfinite(best)):
                raise InputError("checkpoint R-free volume does not match the volume (or holds NaN/inf); "
                                 "start a new run")
            if self.scale != 1.0:
                best *= np.float32(self.scale)
            with self.problem.device.use():
                self._best_buffer()[...] = backend.to_device(best, self.problem.device)
            self.rfree_best = float(state.get("rfree_best", math.inf))
            self.rfree_best_iteration = int(state.get("rfree_best_iteration", -1))
            self.rfree_rises = int(state.get("rfree_rises", 0))
            self.rfree_start = as_int(state.get("rfree_start", self.rfree_start), "state['rfree_start']", minimum=0)
            self.rfree_patience = as_int(state.get("rfree_patience", self.rfree_patience), "state['rfree_patience']",
                                         minimum=1)
            hist = np.asarray(state.get("rfree_history", np.zeros((0, 2))), dtype=np.float64).reshape(-1, 2)
            self.rfree_history = [(int(i), float(v)) for i, v in hist]
        x_prev = state.get("momentum_x_prev")
        if x_prev is None:
            self.restart()
            return
        x_prev = np.array(as_array(x_prev, "state['momentum_x_prev']"), dtype=np.float32)
        if x_prev.shape != self.problem.geometry.volume_shape or not np.all(np.isfinite(x_prev)):
            raise InputError("checkpoint momentum does not match the volume (or holds NaN/inf); start a new run")
        if self.scale != 1.0:
            x_prev *= np.float32(self.scale)
        with self.problem.device.use():
            self.x_prev[...] = backend.to_device(x_prev, self.problem.device)
        self.t = as_float(state.get("momentum_t", 1.0), "state['momentum_t']", minimum=1.0)
        self.restarts = as_int(state.get("momentum_restarts", 0), "state['momentum_restarts']", minimum=0)

    def config(self) -> dict:
        cfg = super().config()
        cfg.update(prior=self.prior, prior_weight=self.weight, prior_params=dict(self.prior_params),
                   lipschitz_data=self.lipschitz_data, lipschitz_prior=self.lipschitz_prior, step_size=self.step_size,
                   volume_scale=self.x_ref, measured_pixels=self.measured, restarts=self.restarts,
                   method={"restart": "fista-gradient-restart", "fista": "fista", "none": "projected-gradient"}[
                       self.momentum])
        if self.op.name == "fst":
            cfg.update(oversampling=[float(o) for o in self.op.oversampling])
        if self.held is not None:
            cfg.update(rfree_stop={"held_out_pixels": self.held_count, "every": self.rfree_every,
                                   "patience": self.rfree_patience, "start": self.rfree_start,
                                   "best_iteration": self.rfree_best_iteration,
                                   "best_rfree": self.rfree_best if math.isfinite(self.rfree_best) else None})
        return cfg


def _weight_ceiling(solver: RegularisedReconstruction) -> float:
    """A ``lambda`` at which the prior dominates: ``max |A^T W b|`` over the prior's largest gradient
    at differences up to ``2 x_ref``."""
    p = solver.problem
    with p.device.use():
        solver.y[...] = 0                        # scratch until the first iteration: no volume allocated
        solver.op.residual(solver.y, p.data, solver.w, solver.residual, solver.l1)
        solver.op.back(solver.residual, solver.g, alpha=1.0, beta=0.0, border=BORDER)
        top = max(float(solver.g.max()), -float(solver.g.min()))   # max |g| without an |g| volume
    d = np.linspace(0, 2 * solver.x_ref, 201)[1:]
    rmax = float(np.abs(pair_derivative(solver.prior, d, **solver.prior_params)).max())
    neighbours = 1.0 if solver.prior == "qggmrf" else 6.0
    return top / max(rmax * neighbours, 1e-30)


def choose_weight(solver: RegularisedReconstruction, sigma: float, *, tau: float = 1.0, factor: float = 4.0,
                  steps: int = 14, inner: int = 40, bisections: int = 3, callback=None) -> dict:
    """Discrepancy principle: the largest ``lambda`` with ``sum W r^2 <= tau * N * sigma^2``.

    Sweeps ``lambda`` down from :func:`_weight_ceiling` by ``factor`` (warm starts, ``inner``
    FISTA iterations each) until the discrepancy falls below the target, then bisects
    ``log lambda`` ``bisections`` times between the last two. Leaves ``solver`` at the chosen
    weight with the last iterate. ``callback(dict)`` is called after every trial (``weight``,
    ``discrepancy``, ``target``).

    Returns
    -------
    dict
        ``weight``, ``sigma``, ``target``, ``trials`` (list of (weight, discrepancy)), ``bracketed``
        (False when even the smallest tried weight stays above the target: then the smallest).
    """
    sigma = as_float(sigma, "noise_level", positive=True)
    tau = as_float(tau, "tau", positive=True)
    target = tau * solver.measured * sigma ** 2
    trials = []

    def trial(lam):
        solver.set_weight(lam)
        for _ in range(inner):
            solver.iterate()
        dsc = solver.discrepancy()
        trials.append((lam, dsc))
        if callback is not None:
            callback({"stage": "auto-weight", "weight": lam, "discrepancy": dsc, "target": target})
        return dsc

    lam = _weight_ceiling(solver)
    hi = lo = None
    for _ in range(steps):
        if trial(lam) <= target:
            lo = lam
            break
        hi = lam
        lam /= factor
    if lo is None:
        return {"weight": hi, "sigma": sigma, "target": target, "trials": trials, "bracketed": False}
    if hi is None:           # already below at the ceiling: the ceiling (strongest tried)
        return {"weight": lo, "sigma": sigma, "target": target, "trials": trials, "bracketed": False}
    for _ in range(bisections):
        mid = math.sqrt(hi * lo)
        if trial(mid) <= target:
            lo = mid
        else:
            hi = mid
    solver.set_weight(lo)
    return {"weight": lo, "sigma": sigma, "target": target, "trials": trials, "bracketed": True}


#: R-free pixels held out by default: this fraction of the measured pixels, but at least RFREE_MIN_PIXELS
#: (for a stable estimate) and at most RFREE_MAX_FRACTION (every held-out pixel is data the solve does not use)
RFREE_FRACTION, RFREE_MIN_PIXELS, RFREE_MAX_FRACTION = 0.02, 1000, 0.05


class _DataBound(NamedTuple):
    """What a held-out solver borrows from the full one (:func:`held_out_solver`, ``full``): its
    ``L_data`` bound and the mean weight it was normalised by."""

    lipschitz_data: float
    weight_mean: float


def held_out_pixels(problem: TomoProblem, weights=None, *, fraction: float | None = None, seed: int = 0) -> np.ndarray:
    """The R-free pixels: a seeded random ``fraction`` of the measured pixels (mask and ``weights``
    non-zero; never an unmeasured one), bool (n, rows, cols). The same problem, weights, fraction
    and seed give the same set (a resumed run holds out the same pixels).

    ``fraction`` None: :data:`RFREE_FRACTION` (2 %) of the measured pixels, at least
    :data:`RFREE_MIN_PIXELS` (1000) of them, at most :data:`RFREE_MAX_FRACTION` (5 %; GENFIRE's
    R-free holds out 5 %). Fewer held out means less data lost to the final solve with the R-free
    stop (measured: ``bench/tomo_rfree_stop.py``).
    """
    mask_host = np.asarray(backend.to_device(problem.mask, "cpu"), dtype=np.float32)
    w_all = mask_host if weights is None else np.asarray(weights, dtype=np.float32) * mask_host
    if fraction is None:
        measured = max(int((w_all > 0).sum()), 1)
        fraction = min(RFREE_MAX_FRACTION, max(RFREE_FRACTION, RFREE_MIN_PIXELS / measured))
    fraction = as_float(fraction, "fraction", positive=True)
    held = (np.random.default_rng(seed).random(w_all.shape) < fraction) & (w_all > 0)
    if not held.any():
        raise InputError("R-free: no pixel to hold out (too few measured pixels)")
    return held


#: the edge check by default (see :func:`choose_weight_rfree`): single-axis series with at least this many
#: projections (the pair held out in the search is then at most 5 % of the data, as GENFIRE's R-free) and a
#: tilt span below EDGE_MAX_SPAN degrees (a missing wedge to see towards)
EDGE_MIN_PROJECTIONS, EDGE_MAX_SPAN = 40, 170.0
#: after an edge check the final solve's R-free checks count from iteration EDGE_SETTLE_ITERATIONS[kept]
#: on (kept: the search's strength stayed; weaker: the edge check took half of it) and it stops at the
#: first check that does not improve (patience EDGE_PATIENCE): the outermost projections, returned to the
#: fit, take this long to be absorbed, and the random R-free cannot see the wedge filling that a weaker
#: strength is chosen for (measured: docs/tomo_regularised.md, "The edge check")
EDGE_SETTLE_ITERATIONS = {"kept": 60, "weaker": 90}
EDGE_PATIENCE = 1
#: the R-free search keeps a second snapshot (two volumes) for volumes of at most this many bytes, and
#: reruns a pairing's winning weaker trial instead for larger ones (see choose_weight_rfree)
SECOND_SNAPSHOT_MAX_BYTES = 32 * 2 ** 20
#: the edge check takes the weaker strength only when its edge residual is lower by more than this many
#: standard deviations of the noise's share in the difference (see :func:`choose_weight_rfree`)
EDGE_MIN_Z = 1.0


def edge_projection_pixels(problem: TomoProblem, weights=None, count: int | None = None) -> np.ndarray | None:
    """The measured pixels (bool, the projections' shape) of the ``count`` projections at each end of
    a single-axis tilt range (the largest negative and positive tilts): the measured data nearest
    to the missing wedge. ``None`` where there is no wedge to see towards: a multi-axis geometry,
    a tilt span of :data:`EDGE_MAX_SPAN` degrees or more, fewer than ``4 count`` projections, or no
    measured pixel in those projections. ``count`` None: 1, and ``None`` also below
    :data:`EDGE_MIN_PROJECTIONS` projections (the default's scope)."""
    automatic = count is None
    count = 1 if automatic else as_int(count, "count", minimum=1)
    tilts = problem.geometry.single_axis_tilts()
    n = problem.geometry.n_projections
    if (tilts is None or n < 4 * count or (automatic and n < EDGE_MIN_PROJECTIONS)
            or np.ptp(tilts) >= EDGE_MAX_SPAN):
        return None
    w_all = np.asarray(backend.to_device(problem.mask, "cpu"), dtype=np.float32)
    if weights is not None:
        w_all = np.asarray(weights, dtype=np.float32) * w_all
    order = np.argsort(tilts, kind="stable")
    edge = np.zeros(w_all.shape, bool)
    edge[order[:count]] = True
    edge[order[-count:]] = True
    edge &= w_all > 0
    return edge if edge.any() else None


def held_out_solver(problem: TomoProblem, solver_kwargs: dict, *,
                    full: RegularisedReconstruction | _DataBound | None = None,
                    fraction: float | None = None, seed: int = 0) -> RegularisedReconstruction:
    """A :class:`RegularisedReconstruction` with ``solver_kwargs`` whose :func:`held_out_pixels`
    are held out (weight 0, measured by :meth:`~RegularisedReconstruction.rfree`).

    ``full``: the solver on all the measured pixels (or just its ``lipschitz_data`` and
    ``weight_mean``), when there is one. Its ``L_data`` bounds this
    solver's (holding pixels out only removes terms of ``A^T W A``; the ratio of the two weight
    normalisations is applied), so no second power iteration is run.
    """
    base = solver_kwargs.get("weights")
    held = held_out_pixels(problem, base, fraction=fraction, seed=seed)
    kwargs = dict(solver_kwargs, held_out=held)
    w_all = np.asarray(backend.to_device(problem.mask, "cpu"), dtype=np.float32)
    if base is not None:
        w_all = np.asarray(base, dtype=np.float32) * w_all
    kept = w_all[(w_all > 0) & ~held]
    if full is not None and kwargs.get("lipschitz") is None and kept.size:
        # W_held / mean_held <= (W / mean_full) * mean_full / mean_held, elementwise
        kwargs["lipschitz"] = full.lipschitz_data * full.weight_mean / float(kept.astype(np.float64).mean())
    return RegularisedReconstruction(problem, **kwargs)


def choose_weight_rfree(problem: TomoProblem, solver_kwargs: dict, *, fraction: float | None = None,
                        factor: float = 2.0, steps: int = 12, inner: int = 25, big_drop: float = 0.1, seed: int = 0,
                        callback=None, full: RegularisedReconstruction | _DataBound | None = None, coarse: int | None = None,
                        coarse_drop: float = 0.5, edge: int | None = None, noise: float | None = None) -> dict:
    """R-free: the ``lambda`` whose reconstruction best predicts held-out measured pixels (as GENFIRE).

    A random ``fraction`` (default: see :func:`held_out_pixels`) of the pixels with non-zero
    weight (never an unmeasured one) is held out (weight 0) in a search solver, and ``lambda``
    descends from :func:`_weight_ceiling` by ``factor^2``, warm started, ``inner`` FISTA
    iterations per trial:

    - first, coarse: from the ceiling, short trials of ``coarse`` iterations (default
      ``inner // 5``) while each step down more than halves the held-out residual
      (``coarse_drop``: a fall that strong is the prior's bias going, not convergence). The first
      short trial that falls less is undone (state and momentum restored) and the strength
      before it is run for ``inner`` iterations, from where the fine descent below starts.
      ``coarse=0`` (or ``>= inner``) skips this (every trial ``inner`` iterations);
    - a step down whose held-out residual falls by more than ``big_drop`` (10 %) is taken;
    - a smaller fall is not enough: the solve is still converging, so any further ``inner``
      iterations lower the residual, whatever the strength. The step down is then paired with
      ``inner`` more iterations at the current strength from the same state, and taken only
      when it predicts the held-out pixels better than staying. Otherwise the descent stops
      (``bracketed``).
    - Last, the same pairing between the current strength and one ``factor`` weaker. With the
      edge check (below) this last pairing is judged by the residual on the outermost projections
      instead of the random R-free pixels; when the descent has just bracketed, it starts from the
      state the bracketing pairing started from, and its stronger side is that pairing's stay
      trial, not run again (``inner`` iterations fewer; the two sides still have equal numbers of
      iterations behind them).

    Edge check (``edge``: projections at each end of the tilt range; default ``None``: one, where
    :func:`edge_projection_pixels` finds a single-axis series of at least 40 projections with a
    missing wedge; 0: off). The random R-free pixels lie among measured ones, so their residual
    cannot see how the prior extrapolates towards the missing wedge, and on textured objects it
    picks a strength about 2x stronger than the one with the best error and FSC there
    (``bench/tomo_weight_sweep.py --held-out edge``). The outermost projections are the measured
    data nearest to the wedge: the search solver also holds them out
    (:meth:`RegularisedReconstruction.exclude_pixels`; every decision but the last still by the
    random R-free), the last pairing is decided by their residual, and they are returned to the
    fit before the solver is handed back. The weaker strength must win that pairing by more than
    :data:`EDGE_MIN_Z` standard deviations of the noise's share in the difference, ``z = (E_1 -
    E_2) / (2 sigma ||r_1 - r_2||)`` (``E`` the edge residuals, ``r`` the residual images,
    ``sigma`` :func:`estimate_noise`): both residuals hold the same noise ``n``, which enters
    their difference as ``-2 <r_1 - r_2, n>``. Measured on issue 20's cases
    (docs/tomo_regularised.md, "The edge check").

    In this fine phase a trial at a new strength keeps the FISTA momentum it starts from (the
    coarse phase's short trials reset it), so both sides of a pairing continue from the same
    volume *and* momentum and differ in the strength alone. Measured (issue 20's bench cases,
    docs/tomo_regularised.md): with the weaker side's momentum reset while the stronger one kept
    its own, the pairing favoured the stronger strength; at 128^3 x 60 isotropic TV stayed at a
    strength 4x TV's (error 1.06x TV's) where the fair pairing takes TV's.

    Measured (``bench/tomo_weight_sweep.py``): comparing trials that had unequal numbers of
    iterations behind them let the search descend to ever weaker strengths on a slowly
    converging object (Shepp-Logan 48^3: 0.00029, where the R-free of solves run to convergence
    is lowest near 0.29).

    ``full``: the solver on all the measured pixels, when there is one (see :func:`held_out_solver`).
    ``noise``: the noise sigma in data units for the edge check's z (default: :func:`estimate_noise`
    of the measured pixels; an automatic run passes the estimate it has made already).

    Returns
    -------
    dict
        ``weight``, ``trials`` (list of (weight, R-free in data units squared), in the order run),
        ``reruns`` (trials run again from the snapshot to restore a pairing's winner: the weaker
        strength's where it won, or after a bracket the stay trial where it won the edge check; only
        on volumes above :data:`SECOND_SNAPSHOT_MAX_BYTES`),
        ``bracketed`` (the descent stopped because a weaker strength predicted worse, not at
        ``steps``), ``held_out`` (pixel count), ``edge`` (None without the edge check, else
        ``projections`` held out, ``pixels``, the last pairing's ``weights`` (current, weaker),
        their edge ``residuals`` (data units squared), ``z`` (None on noise-free data) and the noise
        ``sigma`` (data units)), ``lipschitz_data`` and ``solver`` (the search solver, its R-free
        pixels still held out and the edge pixels returned to the fit, at the chosen strength and
        state: its :meth:`~RegularisedReconstruction.host_volume` is a ready ``initial``).
    """
    big_drop = as_float(big_drop, "big_drop", minimum=0.0)
    inner = as_int(inner, "inner", minimum=1)
    coarse = inner // 5 if coarse is None else as_int(coarse, "coarse", minimum=0)
    coarse_drop = as_float(coarse_drop, "coarse_drop", minimum=0.0)
    if coarse_drop >= 1.0:
        raise InputError(f"coarse_drop must be < 1 (a fraction of the held-out residual), got {coarse_drop}")
    solver = held_out_solver(problem, solver_kwargs, full=full, fraction=fraction, seed=seed)
    held = solver.held_count
    edge_pixels = None if edge == 0 else edge_projection_pixels(problem, solver_kwargs.get("weights"), edge)
    if edge_pixels is not None:
        edge_pixels &= solver.weights_host > 0          # not the R-free pixels among them (disjoint sets)
    edge_record = None
    edge_judge = None
    if edge_pixels is not None and edge_pixels.any():
        solver.exclude_pixels(edge_pixels)
        edge_record = {"projections": 2 * (1 if edge is None else int(edge)), "pixels": int(edge_pixels.sum())}
        edge_index = np.flatnonzero(edge_pixels.any(axis=(1, 2)))
        # in the solver's scaled data units, as its residual images
        edge_sigma = (estimate_noise(problem.data, solver.w) if noise is None
                      else as_float(noise, "noise", minimum=0.0) * solver.scale)

        def edge_judge():
            """(edge residual in data units squared, the residual images of the edge projections)."""
            value = solver.excluded_residual()
            with problem.device.use():
                return value, solver.residual[edge_index].copy()
    trials = []
    xp = problem.device.xp
    # snapshots (volume, x_prev, t), allocated once: the state a pairing starts from, and for a volume of
    # at most SECOND_SNAPSHOT_MAX_BYTES the weaker side's end state too (see paired)
    second = solver.volume.nbytes <= SECOND_SNAPSHOT_MAX_BYTES
    with problem.device.use():
        snaps = [[xp.empty_like(solver.volume), xp.empty_like(solver.volume), 1.0] for _ in range(1 + second)]

    reruns = [0]
    fine = [False]                               # the fine phase: a new strength keeps the momentum

    def save(k):
        with problem.device.use():
            snaps[k][0][...] = solver.volume
            snaps[k][1][...] = solver.x_prev
        snaps[k][2] = solver.t

    def load(k, lam):
        solver.set_weight(lam)
        with problem.device.use():
            solver.volume[...] = snaps[k][0]
            solver.x_prev[...] = snaps[k][1]
        solver.t = snaps[k][2]

    def trial(lam, stay=False, n=None, record=True):
        if not stay:
            solver.set_weight(lam, keep_momentum=fine[0])
        for _ in range(inner if n is None else n):
            solver.iterate()
        rfree = solver.rfree()
        if record:
            trials.append((lam, rfree))
            if callback is not None:
                callback({"stage": "auto-weight-rfree", "weight": lam, "rfree": rfree})
        return rfree

    def edge_decides(lam, lower, stay, weaker):
        """The edge check's verdict between ``lam`` continued and ``lower`` (each ``(edge residual,
        edge residual images)`` at the end of its trial): True when ``lower`` wins by more than
        :data:`EDGE_MIN_Z`; recorded in ``edge_record``."""
        (j_stay, v_stay), (j_lower, v_lower) = stay, weaker
        # the noise n in the data enters the difference of the two residuals as -2 <P x_1 - P x_2, n>:
        # standard deviation 2 sigma ||r_1 - r_2||; z = the difference in those units
        with problem.device.use():
            spread = 2.0 * edge_sigma * float(problem.device.xp.linalg.norm((v_lower - v_stay).ravel()))
        diff = (j_stay - j_lower) * solver.scale ** 2
        # noise-free data (sigma 0): any difference is the strengths' own
        z = diff / spread if spread > 0 else math.copysign(math.inf, diff) if diff else 0.0
        edge_record.update(weights=[float(lam), float(lower)], residuals=[float(j_stay), float(j_lower)],
                           z=float(z) if math.isfinite(z) else None,      # None: noise-free (sigma 0)
                           sigma=float(edge_sigma / solver.scale))
        return z > EDGE_MIN_Z

    def edge_from_bracket(lam, r_stay):
        """The edge check when the descent has just bracketed: ``lam`` continued is the pairing's
        winning trial (the current state) and snapshot 0 still holds the state it started from, so
        ``lam / factor`` runs from that same state and the edge residuals of the two decide (the
        stay trial is not run a second time: ``inner`` iterations fewer than :func:`paired`).
        Returns (weight, R-free) of the winner, the solver at its end state."""
        weaker = lam / factor
        stay = edge_judge()
        if second:
            save(1)
        load(0, weaker)
        r_weaker = trial(weaker, stay=True)           # load set the weight; the snapshot's momentum kept
        if edge_decides(lam, weaker, stay, edge_judge()):
            return weaker, r_weaker
        del stay
        if second:
            load(1, lam)
            return lam, r_stay
        load(0, lam)
        restarts = solver.restarts
        r_stay = trial(lam, stay=True, record=False)   # the stay trial again, to the same bits on the CPU
        solver.restarts = restarts
        reruns[0] += 1
        return lam, r_stay

    def paired(lam, lower, r_lower=None, judge=None):
        """``lower`` for ``inner`` iterations against ``lam`` continued (momentum kept), both from
        the current state (``r_lower``: that trial already run from snapshot 0). Leaves the solver
        at the better one by ``judge()`` (default: the R-free); returns (weight, R-free).

        Snapshot 0 holds the state both start from. When ``lower`` wins, the solver goes back to
        its end state: from snapshot 1 where there is one (volumes of at most
        :data:`SECOND_SNAPSHOT_MAX_BYTES`), else by running its trial again from snapshot 0, which
        spares two volumes at the search's peak (large volumes) for ``inner`` iterations more. The
        CPU kernels are deterministic, so the rerun reproduces the trial's state bit for bit
        (``test_a_pairing_won_by_the_weaker_strength_reruns_it_to_the_same_bits``); on a GPU, whose
        projectors sum with atomics, to rounding (the rerun's own R-free is returned)."""
        if r_lower is None:
            save(0)
            r_lower = trial(lower)
        if second:
            save(1)
        if judge is None:
            lower_wins = None
        else:
            j_lower, v_lower = judge()
        load(0, lam)
        r_stay = trial(lam, stay=True)
        if judge is None:
            lower_wins = r_lower < r_stay
        else:
            lower_wins = edge_decides(lam, lower, judge(), (j_lower, v_lower))
            del v_lower
        if lower_wins and second:
            load(1, lower)
            return lower, r_lower
        if lower_wins:
            load(0, lam)
            restarts = solver.restarts           # the first run of this trial counted them already
            r_lower = trial(lower, record=False)
            solver.restarts = restarts
            reruns[0] += 1
            return lower, r_lower
        return lam, r_stay

    lam = _weight_ceiling(solver)
    steps_left = steps
    if 0 < coarse < inner:
        r = trial(lam, n=coarse)
        while steps_left > 0:
            steps_left -= 1
            lower = lam / (factor * factor)
            save(0)
            r_lower = trial(lower, n=coarse)
            if r_lower < r * (1.0 - coarse_drop):
                lam, r = lower, r_lower
                continue
            load(0, lam)                         # undone: back to lam's state and momentum
            break
        r = trial(lam, stay=True)                # lam converged as far as a fine trial before the descent
    else:
        r = trial(lam)
    bracketed = False
    fine[0] = True
    for _ in range(steps_left):
        lower = lam / (factor * factor)
        save(0)
        r_lower = trial(lower)
        if r_lower < r * (1.0 - big_drop):       # a fall no convergence alone would give: go on down
            lam, r = lower, r_lower
            continue
        lam, r = paired(lam, lower, r_lower)
        if lam != lower:
            bracketed = True
            break
    if bracketed and edge_judge is not None:
        lam, r = edge_from_bracket(lam, r)
    else:
        lam, r = paired(lam, lam / factor, judge=edge_judge)
    with problem.device.use():
        snaps.clear()
    if edge_record is not None:
        solver.include_pixels()
    return {"weight": float(lam), "rfree": float(r), "trials": trials, "reruns": reruns[0], "bracketed": bracketed,
            "held_out": held, "edge": edge_record, "lipschitz_data": solver.lipschitz_data, "solver": solver}


def prepare_regularised(problem: TomoProblem, *, prior: str = "itv", prior_weight="auto",
                        prior_params: dict | None = None, weights=None, noise_level: float | None = None,
                        tau: float = 1.0, projector: str = "linear", oversampling=2.0, positivity: bool = True,
                        support=None, initial=None, engine: str | None = None, auto: str = "rfree",
                        auto_inner: int = 25, search_callback=None, max_chunk_bytes: int | None = None,
                        rfree_stop: bool | None = None, edge: int | None = None):
    """A ready :class:`RegularisedReconstruction` for ``problem``, with the automatic strength resolved.

    What a job (``fastem tomo --prior ...``) calls before ``solver.run(iterations, ...)``: builds the
    solver, and for ``prior_weight="auto"`` estimates the noise and runs the search (see
    :func:`regularised` for the parameters), leaving the solver at the chosen weight, warm started,
    with its iteration count at 0.

    ``rfree_stop`` (default: on for ``auto="rfree"``, off otherwise): the returned solver keeps the
    R-free pixels out (:func:`held_out_solver`, the search's own solver after an automatic search)
    and its :meth:`~RegularisedReconstruction.run` stops by R-free. With a fixed weight it builds
    the same held-out solver as an automatic run would (a resumed automatic run passes its
    weight and ``rfree_stop=True``).

    ``edge``: the search's edge check (:func:`choose_weight_rfree`; default on for a single-axis
    series with a missing wedge, 0: off). When it ran, the final solve's R-free checks count from
    iteration :data:`EDGE_SETTLE_ITERATIONS` on (60 with the search's strength kept, 90 with the
    weaker one taken; the search's last state is not a candidate) and stop at the first that does
    not improve (:data:`EDGE_PATIENCE`): the outermost projections, returned to the fit, take that
    long to be absorbed, and the random R-free pixels cannot see the wedge filling that the edge
    check chose a weaker strength for (it rises along such a solve; docs/tomo_regularised.md,
    "The edge check").

    Returns
    -------
    (RegularisedReconstruction, dict)
        The solver and the record to merge into the output's config: ``noise_estimate`` (data
        units, or None for a fixed weight) and ``auto`` (the search: ``method``, ``weight``,
        ``bracketed``, ``trials``, ...; None for a fixed weight).
    """
    is_auto = isinstance(prior_weight, str)
    if is_auto and prior_weight != "auto":
        raise InputError(f"prior_weight must be a number >= 0 or 'auto', got {prior_weight!r}")
    solver_kwargs = dict(prior=prior, weights=weights, prior_params=prior_params, projector=projector,
                         oversampling=oversampling, positivity=positivity, support=support, initial=initial,
                         engine=engine, max_chunk_bytes=max_chunk_bytes)
    solver = RegularisedReconstruction(problem, weight=0.0 if is_auto else prior_weight, **solver_kwargs)
    if rfree_stop is None:
        rfree_stop = is_auto and auto == "rfree" and prior != "none"
    rfree_stop = bool(rfree_stop)
    if rfree_stop and prior == "none":
        raise InputError("rfree_stop needs a prior (prior='none' has no strength to cross-validate)")
    record = None
    sigma_data = None
    if auto_mode := (auto if isinstance(prior_weight, str) else None):
        if auto_mode not in ("rfree", "discrepancy"):
            raise InputError(f"auto must be 'rfree' or 'discrepancy', got {auto_mode!r}")
    if is_auto:
        if noise_level is None:
            sigma_data = estimate_noise(problem.data, solver.w) / solver.scale
        else:
            sigma_data = as_float(noise_level, "noise_level", positive=True)
    full = solver
    if rfree_stop and auto_mode in ("rfree", None):
        # the solver that runs is a held-out one (the search's, or one at the fixed weight): of the
        # full solver only its L_data bound is needed, so its arrays are freed before the held-out
        # solver and the search's snapshots are allocated (about 4 volumes less at the peak: 1347 -> 1098 MiB
        # at 256^3, bench/results/tomo_regularised_scale*.md)
        full = _DataBound(solver.lipschitz_data, solver.weight_mean)
        solver = None
    if is_auto and prior != "none":
        inner = as_int(auto_inner, "auto_inner", minimum=1)
        if auto_mode == "rfree":
            record = choose_weight_rfree(problem, solver_kwargs, inner=inner, callback=search_callback, full=full,
                                         edge=edge, noise=sigma_data)
            search = record.pop("solver")
            if rfree_stop:
                # go on with the search solver as it stands (chosen weight, state and momentum), its
                # pixels held out, stopping by R-free; the search's last state is the first candidate
                solver = search
            else:
                solver.set_weight(record["weight"])
                with problem.device.use():
                    solver.volume[...] = search.volume       # same problem, same scale: the search's state
                solver.restart()
                del search
            record["sigma"] = sigma_data
        else:
            record = choose_weight(solver, sigma_data * solver.scale, tau=tau, inner=inner, callback=search_callback)
        solver.iteration = 0
        solver.history = []
    elif rfree_stop:
        solver = held_out_solver(problem, dict(solver_kwargs, weight=prior_weight), full=full)
    if rfree_stop and solver.held is None:   # discrepancy search asked to stop by R-free as well
        full = solver
        solver = held_out_solver(problem, dict(solver_kwargs, weight=full.weight), full=full)
        with problem.device.use():
            solver.volume[...] = full.volume
        solver.restart()
    if solver.held is not None:
        solver.rfree_best, solver.rfree_best_iteration, solver.rfree_rises = math.inf, -1, 0
        solver.rfree_history = []
        if record is not None and record.get("edge") is not None:
            # the search's states lack the outermost projections, which the final solve fits again:
            # no candidates before they are absorbed (see the docstring)
            weaker = record["weight"] != record["edge"]["weights"][0]
            solver.rfree_start = EDGE_SETTLE_ITERATIONS["weaker" if weaker else "kept"]
            solver.rfree_patience = EDGE_PATIENCE
        elif record is not None and record.get("rfree") is not None:   # the search's last state: iteration 0
            solver.rfree_best, solver.rfree_best_iteration = record["rfree"], 0
            solver.rfree_history = [(0, record["rfree"])]
            with problem.device.use():
                solver._best_buffer()[...] = solver.volume
    info = {"noise_estimate": sigma_data, "auto": None if record is None else
            {"method": auto_mode, "weight": record["weight"], "bracketed": record["bracketed"],
             "target": record.get("target"), "tau": tau if auto_mode == "discrepancy" else None,
             "held_out": record.get("held_out"), "reruns": record.get("reruns"), "edge": record.get("edge"),
             "trials": [[float(a), float(b)] for a, b in record["trials"]]}}
    return solver, info


def regularised(projections, angles, *, prior: str = "itv", prior_weight="auto", prior_params: dict | None = None,
                iterations: int = 100, weights=None, mask=None, noise_level: float | None = None, tau: float = 1.0,
                projector: str = "linear", oversampling=2.0, positivity: bool = True, support=None,
                volume_shape=None, thickness=None, initial=None, device=None, engine: str | None = None,
                progress: bool | None = False, callback=None, callback_every: int = 0, center=None,
                convention: str = "fastem", shifts=None, auto: str = "rfree", auto_inner: int = 25,
                search_callback=None, rfree_stop: bool | None = None, edge: int | None = None) -> ReconstructionResult:
    """Regularised reconstruction (FISTA on weighted least squares + ``prior_weight * prior``).

    Parameters
    ----------
    projections : array_like (n, rows, cols)
    angles : array_like (n, 3) Euler ZYX degrees, or (n,) tilts about y
    prior : {"itv", "tv", "huber", "qggmrf", "none"}
        Default ``"itv"``, isotropic TV (see the module docstring).
    prior_weight : float >= 0 or "auto"
        ``"auto"``: chosen from the data alone by ``auto`` (below); the noise estimate (from the
        measured pixels, :func:`estimate_noise`, or ``noise_level``) and the chosen weight are
        recorded in ``config``.
    prior_params : dict, optional
        See :class:`RegularisedReconstruction`.
    iterations : int
        FISTA iterations at the final weight (after the automatic search, warm started).
    weights : array_like (n, rows, cols), optional
        Per-pixel weights (0 = unmeasured). Pixels with weight 0 are masked: their values are
        never read (they may hold anything, NaN included).
    mask, volume_shape, thickness, device, center, convention, shifts : see :class:`~fastem.tomo.TomoProblem`
    noise_level : float, optional
        Noise sigma in data units (skips the estimate).
    tau : float
        Discrepancy safety factor (target ``tau * N * sigma^2``).
    projector, oversampling, positivity, support, initial, engine : see :class:`RegularisedReconstruction`
    progress : bool
        Progress bar (off by default; the CLI turns it on).
    callback, callback_every : ``callback(solver)`` every ``callback_every`` final iterations.
    auto : {"rfree", "discrepancy"}
        ``"rfree"`` (default): minimise the residual on held-out measured pixels (2 %)
        (:func:`choose_weight_rfree`; the search's best volume starts the final solve);
        ``"discrepancy"``: Morozov's principle with the noise estimate (:func:`choose_weight`).
    auto_inner : int
        FISTA iterations per trial weight of the automatic search.
    search_callback : callable, optional
        ``search_callback(dict)`` after each trial of the automatic search (see :func:`choose_weight`).
    rfree_stop : bool, optional
        Default: on with ``auto="rfree"``. The final iterations keep the R-free pixels out and
        stop once their residual has not improved for 3 checks (every 10 iterations), returning
        the volume with the lowest R-free (``config["stopped"] == "rfree"`` when it stopped early;
        ``config["rfree_stop"]`` holds the record). ``iterations`` is then the most it runs.
    edge : int, optional
        The R-free search's edge check (:func:`choose_weight_rfree`): the projections at each end
        of a single-axis tilt range held out in the search, and the search's last pairing (the
        chosen strength against half of it) decided by their residual. Default: one at each end
        where there is a missing wedge (:func:`edge_projection_pixels`); 0: off (the search before
        session 2026-12-07, third). Recorded in ``config["auto"]["edge"]``.

    Returns
    -------
    ReconstructionResult
        ``config`` holds ``prior``, ``prior_weight``, ``noise_estimate`` (data units, or None),
        ``auto`` (the search record) and the solver's parameters.
    """
    if mask is not None and weights is not None:
        w = as_array(weights, "weights")
        m = as_array(mask, "mask")
        if m.shape != w.shape:
            raise InputError(f"mask has shape {m.shape} but weights have shape {w.shape}")
        mask = (m != 0) & (np.asarray(w) > 0)
    elif weights is not None:
        w = as_array(weights, "weights")
        if not np.all(np.isfinite(w)) or (np.asarray(w) < 0).any():
            raise InputError("weights must be finite and >= 0 (0 = unmeasured)")
        mask = np.asarray(w) > 0
    t0 = time.perf_counter()
    problem = TomoProblem(projections, angles, volume_shape=volume_shape, thickness=thickness, mask=mask,
                          device=device, center=center, convention=convention, shifts=shifts)
    solver, info = prepare_regularised(problem, prior=prior, prior_weight=prior_weight, prior_params=prior_params,
                                       weights=weights, noise_level=noise_level, tau=tau, projector=projector,
                                       oversampling=oversampling, positivity=positivity, support=support,
                                       initial=initial, engine=engine, auto=auto, auto_inner=auto_inner,
                                       search_callback=search_callback, rfree_stop=rfree_stop, edge=edge)
    result = solver.run(iterations, progress=progress, callback=callback, callback_every=callback_every)
    result.config.update(info)
    if solver.stopped:
        result.config["stopped"] = solver.stopped
    result.seconds = time.perf_counter() - t0
    return result
