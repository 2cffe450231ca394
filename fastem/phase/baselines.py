r"""Baselines on the GPS machinery: ER, HIO (Fienup, Appl. Opt. 21, 2758 (1982)) and OSS
(Rodriguez et al., J. Appl. Cryst. 46, 312 (2013)).

All three keep a real iterate ``g`` (real space) and carry ``G = F(g)`` in the one complex work
array, so that each iteration starts in Fourier space like GPS::

    G' = P_M(G)              magnitudes replaced by b on known pixels (phase of 0 taken as 1)
    g' = Re F^{-1}(G')       one inverse FFT (1/N folded into the Fourier kernel)
    good = (x in S) and g' >= 0

    ER : g_new = g' on good, 0 elsewhere
    HIO: g_new = g' on good, g - beta g' elsewhere                              (beta = 0.9)
    OSS: h = g - beta g' (everywhere);  g_new = HIO value inside S,
         and outside S the low-pass filtered h:  Re F^{-1}(W_l . F(h))          (2 more FFTs)
    G = F(g_new)             one forward FFT

ER and HIO cost two FFTs and two fused passes per iteration; OSS four FFTs and four passes (its
filter needs the HIO update in real space, masked, before and after filtering). OSS runs 10
stages with the Fourier filter ``W_l = exp(-k^2 / (2 alpha_l^2))``, ``alpha_l = (11 - l) 0.2 N``,
and each stage restarts from the best iterate of the previous one; ER and HIO run one stage.

Initialisation (same random phases as GPS for the same seed): ``G = z0 = b exp(i phi)`` and
``g = Re F^{-1} z0`` (the "previous" iterate of the first HIO step). The image whose R-factor is
monitored and returned is ``g'`` projected onto support and positivity (``g'`` on good, else 0).
"""

from __future__ import annotations

import numpy as np

from fastem.fft import empty_aligned
from fastem.kernels import phase_fourier as _pf
from fastem.kernels import phase_real as _pr
from fastem.kernels.phase_fourier import bind_phase_fourier_update
from fastem.kernels.phase_real import bind_phase_real_update
from fastem.kernels.phase_complex import bind_phase_complex_update

from .solver import Solver
from .schedules import oss_filter

__all__ = ["ERSolver", "HIOSolver", "OSSSolver"]


class _RealIterateSolver(Solver):
    """Shared parts of ER / HIO / OSS: the real iterate ``u`` and its stage best."""

    real_mode = _pr.MODE_ER
    needs_iterate = False

    def __init__(self, problem, runs, config):
        super().__init__(problem, runs, config)
        dev = self.device
        self.udtype = problem.dtype if self.complex_object else problem.rdtype  # the iterate's dtype
        self.u = empty_aligned(self.full_shape, self.udtype, dev) if self.needs_iterate else None
        if self.restarts:
            self.u_best = empty_aligned(self.full_shape, self.udtype, dev)
        self._scale = 1.0 / self.n
        self._bind_kernels()

    @classmethod
    def _arrays_per_run(cls, restarts: bool) -> tuple[float, float]:
        real = 1.0 if cls.needs_iterate else 0.0  # u
        if restarts:
            real = 2.0  # u and u_best (ER keeps an iterate only to restart from)
        return 1.0, real

    def _bind_kernels(self) -> None:
        self._project = bind_phase_fourier_update(_pf.MODE_PROJECT, None, self.buf, self.problem.bk,
                                                  scale=self._scale)
        self._real = self._bind_real(self.real_mode, self.u, self.img)

    def _bind_real(self, mode, u, image):
        """The real-space kernel for ``mode``: :mod:`~fastem.kernels.phase_real` (real object) or
        :mod:`~fastem.kernels.phase_complex` (complex object, with the phase range)."""
        if self.complex_object:
            return bind_phase_complex_update(mode, self.buf, self.wsup, u, image, beta=self.config.beta,
                                             phase_range=self.config.phase_range)
        return bind_phase_real_update(mode, self.buf, self.wsup, u, image, beta=self.config.beta)

    def _initialise(self, phases) -> None:
        z0 = self.z0(phases)
        if self.u is not None:
            self.buf[...] = z0
            self.plan.backward(self.buf, self.buf, normalise=True)
            self.u[...] = self.buf if self.complex_object else self.buf.real
        self.buf[...] = z0

    def _set_stage_filters(self, stage: int) -> None:
        pass

    def _project_and_invert(self) -> None:
        self._project()
        self.plan.backward(self.buf, self.buf, normalise=False)

    def step(self, sigma: float, want_image: bool = False) -> None:
        self._project_and_invert()
        self._real(want_image)
        self.plan.forward(self.buf, self.buf)

    def _image_ready(self) -> None:
        pass  # written by the real-space kernel of the step

    def _save_stage_best(self, runs: np.ndarray) -> None:
        self._copy_runs(self.u_best, self.u, runs)

    def _restore_stage_best(self) -> None:
        self.u[...] = self.u_best
        self.buf[...] = self.u
        self.plan.forward(self.buf, self.buf)

    def _state_arrays(self) -> dict:
        arrays = {"G": self.buf}
        if self.u is not None:
            arrays["u"] = self.u
        if self.restarts:
            arrays["u_best"] = self.u_best
        return arrays


class ERSolver(_RealIterateSolver):
    """Error reduction (alternating projections onto magnitudes and support + positivity)."""

    real_mode = _pr.MODE_ER

    def __init__(self, problem, runs, config):
        super().__init__(problem, runs, config)
        if self.restarts:
            # ER keeps no iterate besides G; a stage restart re-seeds from the best image
            self.u = empty_aligned(self.full_shape, self.udtype, self.device)
            self._bind_kernels()

    def _save_stage_best(self, runs: np.ndarray) -> None:
        self._copy_runs(self.u_best, self.img, runs)


class HIOSolver(_RealIterateSolver):
    """Hybrid input-output with feedback ``beta``."""

    real_mode = _pr.MODE_HIO
    needs_iterate = True


class OSSSolver(_RealIterateSolver):
    """Oversampling smoothness: HIO with a staged Gaussian low-pass outside the support."""

    needs_iterate = True

    real_mode = _pr.MODE_OSS_SPLIT

    def __init__(self, problem, runs, config):
        super().__init__(problem, runs, config)
        self.filt = problem.to_device(np.ones(self.grid), problem.rdtype)
        self._filter = bind_phase_fourier_update(_pf.MODE_FILTER, None, self.buf, problem.bk, self.filt,
                                                 scale=self._scale)
        self._merge = self._bind_real(_pr.MODE_OSS_MERGE, self.u, None)

    def _set_stage_filters(self, stage: int) -> None:
        w = oss_filter(self.grid, stage + 1, len(self.bounds))
        self.filt[...] = self.xp.asarray(w.astype(self.problem.rdtype))

    def step(self, sigma: float, want_image: bool = False) -> None:
        self._project_and_invert()
        self._real(want_image)  # OSS split: HIO value kept in u, h = u - beta x to be filtered
        self.plan.forward(self.buf, self.buf)
        self._filter()
        self.plan.backward(self.buf, self.buf, normalise=False)
        self._merge()
        self.plan.forward(self.buf, self.buf)
