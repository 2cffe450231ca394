"""What the iterative reconstructions (RESIRE, SIRT) share: state, loop, progress, checkpoints.

Progress is reported, never drawn: :meth:`IterativeReconstruction.run` tells a ``progress``
object (anything with ``update(n)``, e.g. a tqdm bar the CLI made) after every iteration, as
:mod:`fastem.phase` does; only ``fastem tomo`` draws a bar (docs/architecture.md).

A solver holds the volume and every work buffer on the problem's device from construction to
the end; :meth:`IterativeReconstruction.iterate` runs one iteration without allocating (the
kernels write into the buffers in place; only the scalar R-factor comes back to the host).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from .. import backend
from ..errors import InputError, NonFiniteResultError
from ._validate import as_array, as_bool, as_float, as_int
from .problem import TomoProblem

__all__ = ["IterativeReconstruction", "ReconstructionResult", "DIVERGED", "as_progress"]

#: an R-factor this many times above the starting one (and at least this large) means divergence
DIVERGED = 1e3


def as_progress(progress, name: str = "progress"):
    """The progress sink to report to, or ``None``.

    ``progress`` is ``None``/``False`` (no reporting) or an object with ``update(n)`` (and
    optionally ``set_postfix(**kw, refresh=False)``, as a tqdm bar has). ``True`` asked, before,
    for a bar drawn by the library: it is deprecated and ignored (the library draws no bars; the
    CLI does), with a :class:`DeprecationWarning`. Anything else is a one-line
    :class:`~fastem.errors.InputError` naming ``name``.
    """
    if progress is None or progress is False:
        return None
    if progress is True:
        warnings.warn(f"{name}=True is deprecated and ignored: fastem.tomo draws no progress bar; pass an object "
                      "with update() (e.g. a tqdm bar) to be told of every iteration", DeprecationWarning, stacklevel=3)
        return None
    if not callable(getattr(progress, "update", None)):
        raise InputError(f"{name} must be an object with update() (e.g. a tqdm bar), None or False, "
                         f"got {type(progress).__name__}")
    return progress


@dataclass
class ReconstructionResult:
    """A finished reconstruction.

    Attributes
    ----------
    volume : ndarray (nz, ny, nx) float32 (host)
    r_factor_history : ndarray (iterations,)
        R-factor (eq. 3.9, measured pixels) of the iterate entering each iteration.
    r_factor : float
        R-factor of the returned volume.
    iterations : int
        Iterations done in total (including those before a resume).
    algorithm : str
    config : dict
        Every resolved parameter (for provenance).
    seconds : float
        Wall time of this call.
    """

    volume: np.ndarray
    r_factor_history: np.ndarray
    r_factor: float
    iterations: int
    algorithm: str
    config: dict = field(default_factory=dict)
    seconds: float = 0.0


class IterativeReconstruction:
    """Base class: subclasses set :attr:`algorithm`, build their buffers and define ``_step``.

    Parameters
    ----------
    problem : TomoProblem
    projector : operator from :mod:`fastem.tomo.operators`
    positivity : bool
    support : array_like of bool (nz, ny, nx), optional
        Updates are restricted to it (the volume is 0 outside when starting from zeros).
    initial : array_like (nz, ny, nx), optional
        Starting volume (default zeros).
    """

    algorithm = "iterative"
    #: what to try when the iteration diverges (the error message ends with it)
    divergence_hint = "check the data and the angles"

    def __init__(self, problem: TomoProblem, projector, *, positivity: bool = True, support=None, initial=None):
        if not isinstance(problem, TomoProblem):
            raise InputError(f"problem must be a TomoProblem, got {type(problem).__name__}")
        self.problem = problem
        self.op = projector
        self.positivity = as_bool(positivity, "positivity")
        self.scale = float(getattr(problem, "scale", 1.0))
        geo = problem.geometry
        xp = problem.device.xp
        with problem.device.use():
            self.volume = projector.empty_volume()
            if initial is not None:
                init = as_array(initial, "initial")
                if init.shape != geo.volume_shape:
                    raise InputError(f"initial volume has shape {init.shape} but the reconstruction is {geo.volume_shape}")
                if not np.all(np.isfinite(init)):
                    raise InputError(f"initial volume has {int((~np.isfinite(init)).sum())} non-finite value(s)")
                init = np.asarray(init, dtype=np.float32)
                self.volume[...] = xp.asarray(init * np.float32(self.scale) if self.scale != 1.0 else init)
            self.support = None
            if support is not None:
                sup = as_array(support, "support")
                if sup.shape != geo.volume_shape:
                    raise InputError(f"support has shape {sup.shape} but the reconstruction is {geo.volume_shape}")
                self.support = backend.to_device(np.ascontiguousarray(sup != 0, dtype=np.float32), problem.device)
                if initial is None:
                    self.volume *= self.support
            self.residual = projector.bordered_images()
            self.l1 = xp.zeros(problem.n_projections, dtype=np.float64)
        self.history: list[float] = []
        self.iteration = 0
        self.stopped: str | None = None  # why the last run() ended early ("rtol", "discrepancy", "rfree"), else None

    # ---- one iteration -----------------------------------------------------------------------
    def _step(self) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def iterate(self) -> float:
        """One iteration; returns the R-factor of the iterate it started from.

        Raises
        ------
        NonFiniteResultError
            The R-factor is NaN/inf or :data:`DIVERGED` times above the starting one: the
            iteration diverged (the message says what to try).
        """
        with self.problem.device.use():
            rf = self._step()
        self._check_diverged(rf, self.iteration)
        self.history.append(rf)
        self.iteration += 1
        return rf

    def _should_stop(self) -> str | None:
        """A solver's own stopping rule, asked after every iteration of :meth:`run`: the reason
        (recorded in :attr:`stopped`) to stop now, or None (none here)."""
        return None

    def _check_diverged(self, rf: float, iteration: int) -> None:
        start = self.history[0] if self.history else rf
        limit = DIVERGED * max(1.0, start if math.isfinite(start) else 1.0)
        if not math.isfinite(rf) or rf > limit:
            raise NonFiniteResultError(
                f"{self.algorithm} diverged at iteration {iteration + 1}: R-factor {rf:.3g}"
                f"{'' if math.isfinite(rf) else ' (the volume holds NaN/inf)'}; {self.divergence_hint}")

    def current_r_factor(self) -> float:
        """R-factor of the current volume (one forward projection, no update)."""
        p = self.problem
        with p.device.use():
            self.op.residual(self.volume, p.data, self._residual_weights, self.residual, self.l1)
            return p.r_factor(self.l1)

    @property
    def _residual_weights(self):
        return self.problem.mask

    # ---- the loop ----------------------------------------------------------------------------
    def run(self, iterations: int, *, progress=None, callback=None, callback_every: int = 0,
            rtol: float | None = None, window: int = 20, noise_level: float | None = None,
            tau: float = 1.1) -> ReconstructionResult:
        """Iterate until ``iterations`` have been done in total (counting those before a resume).

        ``callback(self)`` runs every ``callback_every`` iterations (checkpoints). ``rtol`` stops
        early once the R-factor changed by less than ``rtol`` (relative) over ``window``
        iterations. ``progress`` (an object with ``update(n)``, e.g. a tqdm bar; see
        :func:`as_progress`) is told ``update(1)`` after every iteration and, when it has
        ``set_postfix``, the R-factor (``R_F``) of the iterate that iteration started from; the
        solver draws nothing itself.

        ``noise_level`` (sigma of additive Gaussian noise, in the data's units) stops at the
        discrepancy principle, the thesis' remedy for over-fitting noisy data: once the mean
        absolute residual over the measured pixels of the iterate entering an iteration is at
        most ``tau * sigma * sqrt(2/pi)`` (the mean absolute value of the noise itself), that
        iteration is the last. :attr:`stopped` then says ``"discrepancy"``. ``tau`` (default 1.1,
        Morozov's safety factor) leaves room for the forward model's own error: with none, a
        projector that cannot fit the data exactly would never reach the noise level.
        """
        iterations = as_int(iterations, "iterations", minimum=0)
        callback_every = as_int(callback_every, "callback_every", minimum=0)
        window = as_int(window, "window", minimum=1)
        if rtol is not None:
            rtol = as_float(rtol, "rtol", minimum=0.0)
        if callback is not None and not callable(callback):
            raise InputError(f"callback must be callable, got {type(callback).__name__}")
        threshold = None
        if noise_level is not None:
            noise_level = as_float(noise_level, "noise_level", minimum=0.0)
            tau = as_float(tau, "tau", positive=True)
            measured = float(self.problem.device.xp.sum(self.problem.mask))
            threshold = tau * noise_level * self.scale * math.sqrt(2.0 / math.pi) * measured
        sink = as_progress(progress)
        postfix = getattr(sink, "set_postfix", None)
        self.stopped = None
        t0 = time.perf_counter()
        todo = max(0, iterations - self.iteration)
        for _ in range(todo):
            rf = self.iterate()
            reason = self._should_stop()     # before the checkpoint, so that a checkpoint holds its outcome
            if sink is not None:
                sink.update(1)
                if callable(postfix):
                    postfix(R_F=f"{rf:.4f}", refresh=False)
            if callback is not None and callback_every and self.iteration % callback_every == 0:
                callback(self)
            if reason is not None:
                self.stopped = reason
                break
            if rtol is not None and len(self.history) > window:
                old = self.history[-1 - window]
                if abs(old - rf) <= rtol * rf:
                    self.stopped = "rtol"
                    break
            if threshold is not None and float(self.problem.device.xp.sum(self.l1)) <= threshold:
                self.stopped = "discrepancy"
                break
        return self.result(seconds=time.perf_counter() - t0)

    def host_volume(self) -> np.ndarray:
        """The current volume on the host, in the data's units (a new float32 array)."""
        vol = np.asarray(backend.to_device(self.volume, "cpu")).copy()
        if self.scale != 1.0:
            vol *= np.float32(1.0 / self.scale)  # a power of two: exact
        return vol

    def result(self, seconds: float = 0.0) -> ReconstructionResult:
        """The current state as a :class:`ReconstructionResult` (volume copied to the host).

        Raises :class:`~fastem.errors.NonFiniteResultError` when the volume or its R-factor is
        not finite (a diverged run never returns garbage).
        """
        final = self.current_r_factor()
        volume = self.host_volume()
        if not math.isfinite(final) or not np.all(np.isfinite(volume)):
            raise NonFiniteResultError(f"{self.algorithm}: the reconstructed volume holds NaN/inf after "
                                       f"{self.iteration} iteration(s) (R-factor {final:.3g}); {self.divergence_hint}")
        return ReconstructionResult(volume=volume,
                                    r_factor_history=np.asarray(self.history, dtype=np.float64),
                                    r_factor=final, iterations=self.iteration, algorithm=self.algorithm,
                                    config=self.config(), seconds=seconds)

    # ---- checkpoints -------------------------------------------------------------------------
    def config(self) -> dict:
        """Resolved parameters (JSON-friendly)."""
        geo = self.problem.geometry
        return {"algorithm": self.algorithm, "projector": self.op.name, "positivity": self.positivity,
                "volume_shape": list(geo.volume_shape), "detector_shape": list(geo.detector_shape),
                "n_projections": geo.n_projections, "support": self.support is not None,
                "mask": self.problem.has_mask, "device": str(self.problem.device), "data_scale": self.scale,
                "center": geo.center, "angles_convention": geo.convention}

    def state(self) -> dict:
        """Everything needed to continue: iteration, volume (host copy), R-factor history, config."""
        return {"algorithm": self.algorithm, "iteration": int(self.iteration),
                "volume": self.host_volume(),
                "r_factor_history": np.asarray(self.history, dtype=np.float64), "config": self.config()}

    def restore(self, state: dict) -> None:
        """Continue from :meth:`state` output (same algorithm and volume shape)."""
        if not isinstance(state, dict):
            raise InputError(f"state must be a dict from state(), got {type(state).__name__}")
        if state.get("algorithm") != self.algorithm:
            raise InputError(f"checkpoint is for {state.get('algorithm')!r}, not {self.algorithm!r}")
        if "volume" not in state or "iteration" not in state:
            raise InputError("state lacks 'volume' or 'iteration' (not a state() dict)")
        vol = as_array(state["volume"], "state['volume']")
        if vol.shape != self.problem.geometry.volume_shape:
            raise InputError(f"checkpoint volume has shape {vol.shape} but the reconstruction is "
                             f"{self.problem.geometry.volume_shape}")
        vol = np.array(vol, dtype=np.float32)
        if not np.all(np.isfinite(vol)):
            raise InputError("checkpoint volume holds NaN/inf; start a new run")
        if self.scale != 1.0:
            vol *= np.float32(self.scale)  # exact: a power of two
        with self.problem.device.use():
            self.volume[...] = backend.to_device(vol, self.problem.device)
        iteration = as_int(state["iteration"], "state['iteration']", minimum=0)
        try:
            history = [float(v) for v in np.asarray(state.get("r_factor_history", []), dtype=np.float64).reshape(-1)]
        except (TypeError, ValueError):
            raise InputError("state['r_factor_history'] must be an array of numbers") from None
        self.history = history
        self.iteration = iteration
