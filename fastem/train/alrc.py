"""Adaptive learning rate clipping (ALRC) for NumPy/CuPy training loops.

Spec: docs/train_alrc.md "What is computed"; seed 000 appendix A; Ede & Beanland, Mach. Learn.:
Sci. Technol. 1, 015011 (2020), algorithm 1. The fused kernels are in
:mod:`fastem.kernels.alrc_loss`; the PyTorch module is :class:`fastem.train.ALRCLoss`
(``fastem.train.torch_alrc``, imported on first use).
"""

from __future__ import annotations

import numpy as np

from fastem import backend
from fastem.errors import InputError
from fastem.kernels.alrc_loss import LOSSES, ALRCResult, alrc_loss, alrc_loss_grad, alrc_threshold, check_moments

__all__ = ["ALRC", "ALRCResult", "LOSSES", "alrc_loss", "alrc_loss_grad", "alrc_threshold", "check_moments",
           "per_example_loss", "DEFAULT_MU1", "DEFAULT_MU2", "DEFAULT_BETA", "DEFAULT_N"]

DEFAULT_MU1 = 25.0
DEFAULT_MU2 = 900.0
DEFAULT_BETA = 0.999
DEFAULT_N = 3.0


def per_example_loss(pred, target, loss: str = "mse", weight=None, scale: float = 1.0, engine=None):
    """Per-example losses ``L_b`` (float64, shape ``(B,)``) without clipping (see :func:`alrc_loss`)."""
    return alrc_loss(pred, target, None, loss=loss, weight=weight, scale=scale, clip=False, engine=engine).losses


class ALRC:
    """ALRC state and step for NumPy (CPU) or CuPy (GPU) arrays.

    Parameters
    ----------
    loss : {"mse", "huber", "quartic", "mae"}
        Per-example loss (see :mod:`fastem.kernels.alrc_loss` for the formulas).
    mu1, mu2 : float
        Initial running raw moments (overestimates; ``mu2 > mu1^2`` required). Defaults 25, 900.
    beta : float
        Moment decay (default 0.999).
    n : float
        Clip at ``n`` running standard deviations above the running mean (default 3).
    scale : float
        Loss scale ``s`` (the Huberised MSE is ``h(s * MSE)``).
    device : "cpu", "cuda", "cuda:N" or a :class:`fastem.Device`
        Where the moments live (a float64 array of shape (2,)).
    engine : str, optional
        Kernel engine (default: ``numba`` on the CPU, ``cuda`` on the GPU).

    Examples
    --------
    >>> alrc = ALRC("quartic")
    >>> res = alrc(pred, target, grad=True)    # doctest: +SKIP
    >>> params -= lr * backprop(res.grad)      # doctest: +SKIP
    """

    def __init__(self, loss: str = "mse", *, mu1: float = DEFAULT_MU1, mu2: float = DEFAULT_MU2,
                 beta: float = DEFAULT_BETA, n: float = DEFAULT_N, scale: float = 1.0, device="cpu",
                 engine: str | None = None):
        if loss not in LOSSES:
            raise InputError(f"ALRC: unknown loss {loss!r}; choose from {', '.join(LOSSES)}")
        check_moments(mu1, mu2, "ALRC")
        if not (0.0 <= float(beta) < 1.0):
            raise InputError(f"ALRC: beta must be in [0, 1), got {beta}")
        if not (np.isfinite(float(n)) and float(n) >= 0):
            raise InputError(f"ALRC: n must be a non-negative finite number, got {n}")
        self.loss, self.beta, self.n, self.scale, self.engine = loss, float(beta), float(n), float(scale), engine
        self.device = backend.Device(device)
        with self.device.use():
            self.moments = self.device.xp.asarray(np.array([mu1, mu2], dtype=np.float64))
        self.steps = 0

    # ------------------------------------------------------------------------------------
    @property
    def mu1(self) -> float:
        """Running mean (a host float: synchronises on the GPU)."""
        return float(self.moments[0])

    @property
    def mu2(self) -> float:
        """Running raw second moment (a host float: synchronises on the GPU)."""
        return float(self.moments[1])

    def threshold(self):
        """The current clipping threshold ``L_max`` (0-d array on the moments' device)."""
        return alrc_threshold(self.moments, self.n)

    def __call__(self, pred, target, weight=None, *, grad: bool = False, update: bool = True, gout=None,
                 check_finite: bool | None = None) -> ALRCResult:
        """One step: clipped mean loss, per-example values, moment update; the gradient if ``grad``."""
        res = alrc_loss(pred, target, self.moments, loss=self.loss, weight=weight, scale=self.scale, n=self.n,
                        beta=self.beta, update=update, grad=grad, gout=gout, check_finite=check_finite,
                        engine=self.engine)
        if update:
            self.steps += 1
        return res

    # ------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """``{"mu1", "mu2", "beta", "n", "scale", "loss", "steps"}`` as host values (for checkpoints)."""
        m = backend.to_device(self.moments, "cpu")
        return {"mu1": float(m[0]), "mu2": float(m[1]), "beta": self.beta, "n": self.n, "scale": self.scale,
                "loss": self.loss, "steps": int(self.steps)}

    def load_state_dict(self, state: dict) -> None:
        """Restore the moments (and settings) saved by :meth:`state_dict`; checks ``mu2 > mu1^2``."""
        try:
            mu1, mu2 = float(state["mu1"]), float(state["mu2"])
        except KeyError as exc:
            raise InputError(f"ALRC.load_state_dict: missing key {exc.args[0]!r}") from None
        check_moments(mu1, mu2, "ALRC.load_state_dict")
        self.beta = float(state.get("beta", self.beta))
        self.n = float(state.get("n", self.n))
        self.scale = float(state.get("scale", self.scale))
        self.loss = state.get("loss", self.loss)
        self.steps = int(state.get("steps", self.steps))
        with self.device.use():
            self.moments[...] = self.device.xp.asarray(np.array([mu1, mu2], dtype=np.float64))

    def __repr__(self) -> str:
        return (f"ALRC(loss={self.loss!r}, n={self.n}, beta={self.beta}, scale={self.scale}, "
                f"device={self.device}, steps={self.steps})")
