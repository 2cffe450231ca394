r"""GPS: generalized proximal smoothing (Pham et al., Opt. Express 27, 2792 (2019); thesis ch. 2).

The algorithm (spec ``gps.md``; thesis eq. 2.13-2.28)
----------------------------------------------------
Primal ``z`` (Fourier space), dual ``y`` (real space), steps ``t, s > 0``, fidelity ``sigma``.
PDHG on ``min_z max_{y in S*} ||z| - b|^2 / (2 sigma) - ||y||_G^2 / 2 + Re<z, F y>``::

    1. w      = z - t F(y)
    2. z'     = (b e^{i arg w} + (sigma/t) w) / (1 + sigma/t)   known pixels;  w  unknown  (2.14, 2.28)
    3. v      = y + s F^{-1}(2 z' - z)
    4. p      = proj_{S*}(v):  Re -> min(Re, 0) inside S, Im kept;  v outside S     (2.19)
                (a complex object, beyond the thesis: ``v - P(v)``, or by default the feedback
                step ``0`` where ``v`` is in the support / phase sector and ``v`` elsewhere,
                :mod:`fastem.kernels.phase_complex`, ``PhaseConfig.gps_dual``)
    5. y'     = G_gamma * p          (GPS-R, a Fourier multiply W_R, 2.18/2.20)
              = W_F . p              (GPS-F, W_F = exp(-s gamma r^2), 2.26/2.27)
    6. output u = max(Re F^{-1} z_best, 0)

Normalisation. Only ``F^{-1} F = I`` is assumed. With ``F -> c F`` (and ``F^{-1} -> F^{-1}/c``)
the iteration maps onto itself under ``y -> y / c``, and it is positively homogeneous in
``(z, b, y)`` jointly; so the unitary and the unnormalised DFT give the same iterates ``z`` (and
``sigma`` is dimensionless). fastem uses the unnormalised forward FFT, ``F^{-1} = ifftn``.

Two FFTs per iteration: carry ``Y = F(y)``
------------------------------------------
Keep the dual in Fourier space. Step 1 needs ``F(y) = Y`` -- no transform. Step 3 in Fourier
space is ``V = Y + s (2 z' - z)``, and ``v = F^{-1} V`` -- ONE inverse FFT. Steps 4-5 are
real-space elementwise (GPS-F) or elementwise plus a Fourier multiply (GPS-R); then ONE forward
FFT gives the next ``Y``:

* GPS-F: ``Y' = F(W_F . proj(v))``.
* GPS-R: ``Y' = W_R . F(proj(v))``. The multiply by ``W_R`` is folded into the NEXT Fourier-space
  kernel (the buffer holds ``F(proj(v))``; the kernel forms ``Ye = W_R . buf`` as it reads it).

Per iteration, therefore (``N`` = pixels of the grid, ``buf`` the one complex work array)::

    phase_fourier_update(GPS):  Ye = [W_R .] buf;  w = z - t Ye;  z <- prox(w);
                                buf <- (Ye + s (2 z_new - z_old)) / N           (1/N of the IFFT folded in)
    IFFT (unnormalised, in place)                                  -> buf = v
    phase_real_update(GPS):     buf <- W_F . proj_{S*}(buf)         (W_F = 1 for GPS-R)
    FFT (in place)                                                 -> buf = F(W_F proj v)

two FFTs and two fused elementwise passes; the support and ``W_F`` share one array
(``wsup = -W_F`` inside ``S``, ``+W_F`` outside) and ``b`` and the ``known`` mask share another
(``bk = -1`` on unknown pixels). Nothing is allocated in the loop.

Stages and restarts. The stage best ``(z, Y)`` is saved as the TRUE dual ``Y = W_R . buf`` for
GPS-R; right after a restart the buffer already holds the true ``Y``, so the first Fourier kernel
of a stage skips the multiply.

The image monitored by the R-factor (and returned) is the output of step 6 for the current
``z``, ``max(Re F^{-1} z, 0)``, set to 0 outside the support (``PhaseConfig.project_output``,
default True -- the same support + positivity projection as the baselines' images; the relaxed
support of GPS leaves a few per cent of the density outside ``S``, which would otherwise count
against GPS in ``R_real``; ``project_output=False`` is step 6 as written). It is computed every
``rfactor_every`` iterations without a complex inverse FFT: ``Re F^{-1} z`` is the
complex-to-real inverse FFT of the Hermitian part of ``z`` (:func:`fastem.kernels.hermitian_half`),
and its real-to-complex FFT gives ``R_F``.
"""

from __future__ import annotations

import numpy as np

from fastem.fft import empty_aligned
from fastem.kernels import hermitian_half
from fastem.kernels.phase_fourier import bind_phase_fourier_update
from fastem.kernels.phase_real import bind_phase_real_update
from fastem.kernels.phase_complex import bind_phase_complex_update
from fastem.kernels.phase_complex import MODE_GPS_FEEDBACK as COMPLEX_GPS_FEEDBACK
from fastem.kernels.phase_fourier import MODE_GPS as FOURIER_GPS
from fastem.kernels.phase_real import MODE_ER as REAL_ER, MODE_GPS as REAL_GPS

from .solver import Solver
from .schedules import gps_f_weight, gps_gamma_relax, gps_r_filter

__all__ = ["GPSSolver"]


class GPSSolver(Solver):
    """Batched GPS-F / GPS-R (``config.algorithm`` ``"gps-f"`` or ``"gps-r"``).

    Arrays (all ``(R, *grid)``, FFT layout): ``z`` (primal), ``buf`` (``Y = F(y)``, GPS-R:
    ``F(proj v)``), and with stages the stage bests ``z_best``, ``y_best`` (true ``Y``).
    """

    def __init__(self, problem, runs, config):
        super().__init__(problem, runs, config)
        self.variant = "R" if config.algorithm == "gps-r" else "F"
        dev = self.device
        self.z = empty_aligned(self.full_shape, problem.dtype, dev)
        if self.restarts:
            self.z_best = empty_aligned(self.full_shape, problem.dtype, dev)
            self.y_best = empty_aligned(self.full_shape, problem.dtype, dev)
        self.filt = problem.to_device(np.ones(self.grid), problem.rdtype) if self.variant == "R" else None
        self.support_mask = None  # the output projection (one per run with shrink-wrap)
        if config.project_output and not self.complex_object:
            mask = problem.support_fft
            self.support_mask = problem.to_device(np.broadcast_to(mask, self.full_shape) if config.shrink_wrap else mask,
                                                  problem.rdtype)
        self._buf_is_true_y = True  # right after initialisation / a restart
        self._scale = 1.0 / self.n
        # the two fused kernels, validated once and bound to the arrays
        self._fourier = bind_phase_fourier_update(FOURIER_GPS, self.z, self.buf, problem.bk, self.filt, t=config.t,
                                                  s=config.s, scale=self._scale)
        if self.complex_object:
            # complex object: the dual step is v - P(v) (the polar cone, gps_dual="polar") or 0 where
            # v is in the set and v elsewhere (Fienup's feedback, "feedback", the default), P the
            # support (+ phase range) projection; the image is P(ifftn(z)) (the ER mode of the same kernel, on the full spectrum
            # buffer, written to img)
            dual = COMPLEX_GPS_FEEDBACK if config.gps_dual == "feedback" else REAL_GPS
            self._real = bind_phase_complex_update(dual, self.buf, self.wsup, phase_range=config.phase_range)
            self._project_image = bind_phase_complex_update(REAL_ER, self.spec, self.wsup, None, self.img,
                                                            phase_range=config.phase_range)
        else:
            self._real = bind_phase_real_update(REAL_GPS, self.buf, self.wsup)

    @classmethod
    def _arrays_per_run(cls, restarts: bool) -> tuple[float, float]:
        return (4.0 if restarts else 2.0), 0.0  # z, buf (+ z_best, y_best)

    def _supports_changed(self, support) -> None:
        if self.support_mask is not None:
            self.support_mask[...] = support

    def _initialise(self, phases) -> None:
        self.z[...] = self.z0(phases)
        self.buf[...] = 0
        self._buf_is_true_y = True

    def _set_stage_filters(self, stage: int) -> None:
        cfg, L = self.config, len(self.bounds)
        gamma = None
        if cfg.gamma_schedule == "relax":
            gamma = gps_gamma_relax(stage + 1, L, cfg.s, self.variant, cfg.gamma_edge)
        if self.variant == "F":
            w = gps_f_weight(self.grid, stage + 1, L, cfg.s, cfg.gamma_scale, gamma=gamma)
            w = np.maximum(w, 1e-30)  # keep the sign bit meaningful
            # new weight, same support (the sign): one support or one per run
            self.xp.copysign(self.xp.asarray(w.astype(self.problem.rdtype)), self.wsup, out=self.wsup)
        else:
            w = gps_r_filter(self.grid, stage + 1, L, cfg.s, cfg.gamma_scale, gamma=gamma)
            self.filt[...] = self.xp.asarray(w.astype(self.problem.rdtype))

    def step(self, sigma: float, want_image: bool = False) -> None:
        self._fourier(sigma, self.variant == "R" and not self._buf_is_true_y)
        self._buf_is_true_y = False
        self.plan.backward(self.buf, self.buf, normalise=False)
        self._real()
        self.plan.forward(self.buf, self.buf)

    def _image_ready(self) -> None:
        if self.complex_object:
            # img = P(ifftn(z)) (support and phase range), or ifftn(z) itself (project_output off)
            self.xp.multiply(self.z, self.problem.rdtype.type(self._scale), out=self.spec)
            self.plan.backward(self.spec, self.spec, normalise=False)
            if self.config.project_output:
                self._project_image(True)
            else:
                self.img[...] = self.spec
            return
        # img = max(Re ifftn(z), 0) [* S]: c2r of the Hermitian part of z (1/N folded in)
        hermitian_half(self.z, self.half, scale=self._scale)
        self.rplan.backward(self.half, out=self.img, normalise=False, overwrite_input=True)
        self.xp.maximum(self.img, 0, out=self.img)
        if self.support_mask is not None:
            self.xp.multiply(self.img, self.support_mask, out=self.img)

    def _save_stage_best(self, runs: np.ndarray) -> None:
        self._copy_runs(self.z_best, self.z, runs)
        filtered = self.variant == "R" and not self._buf_is_true_y
        self._copy_runs(self.y_best, self.buf, runs, factor=self.filt if filtered else None)

    def _restore_stage_best(self) -> None:
        self.z[...] = self.z_best
        self.buf[...] = self.y_best
        self._buf_is_true_y = True

    def _state_arrays(self) -> dict:
        arrays = {"z": self.z, "y": self.buf}
        if self.restarts:
            arrays.update(z_best=self.z_best, y_best=self.y_best)
        return arrays

    def _state_scalars(self) -> dict:
        return {"buf_is_true_y": int(self._buf_is_true_y)}

    def _load_scalars(self, state: dict) -> None:
        self._buf_is_true_y = bool(int(state.get("buf_is_true_y", 0)))
