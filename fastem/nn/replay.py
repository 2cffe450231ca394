"""Experience replay of hard examples (seed 000 section 2.3, eqs. 11-15).

A buffer of ``size`` (50) examples. Each training example is replaced by a buffered one with
probability ``prob`` (0.2), drawn uniformly and not removed. After every fresh example with
conditional loss ``L`` (the generator's Huberised MSE):

    mu1 <- b mu1 + (1 - b) L                        (eq. 11)
    mu2 <- b mu2 + (1 - b) L^2                      (eq. 12)
    sigma = sqrt(max(mu2 - mu1^2, 0))               (eq. 13)

the example enters the buffer (replacing a random slot) when ``L > T``; the admission rate is
tracked as

    r <- b_r r + (1 - b_r) [added]                  (eq. 14)

and the threshold moves towards ``mu1 - k sigma`` when examples are admitted less often than
``prob`` per step and towards ``mu1 + k sigma`` otherwise:

    T <- b T + (1 - b) (mu1 -+ k sigma)             (eq. 15)

(``b = b_r = 0.99``, ``k = 5``, ``T`` starting at 0, ``r`` at ``prob``, ``mu1 = 1.5``, ``mu2 = 4``,
as in the authors' code). Replayed examples update nothing. Until the buffer is full every
fresh example is appended (the authors fill it with ordinary examples before training).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from fastem.errors import InputError

__all__ = ["ExperienceReplay"]


class ExperienceReplay:
    """Buffer of hard examples with EMA-threshold admission.

    Parameters
    ----------
    size : int
        Buffer capacity (seed 000: 50).
    prob : float
        Probability that each training example is replaced by a buffered one (0.2); also the
        target admission rate of eq. 15.
    beta, rate_beta : float
        EMA decays of the loss moments (eqs. 11-12) and of the admission rate (eq. 14).
    n_sigma : float
        ``k`` of eq. 15.

    Items are tuples of CPU tensors (one example each, e.g. ``(input (2, H, W), target (1, H, W))``).
    """

    def __init__(self, size: int = 50, prob: float = 0.2, beta: float = 0.99, rate_beta: float = 0.99,
                 n_sigma: float = 5.0, mu1: float = 1.5, mu2: float = 4.0):
        if int(size) < 1:
            raise InputError(f"replay size must be >= 1, got {size}")
        if not 0.0 <= float(prob) <= 1.0:
            raise InputError(f"replay probability must be in [0, 1], got {prob}")
        self.size, self.prob, self.beta, self.rate_beta, self.n_sigma = (int(size), float(prob), float(beta),
                                                                         float(rate_beta), float(n_sigma))
        self.items: list[tuple] = []
        self.mu1, self.mu2 = float(mu1), float(mu2)
        self.threshold = 0.0
        self.rate = self.prob
        self.added = 0
        self.replayed = 0

    @property
    def full(self) -> bool:
        return len(self.items) >= self.size

    @property
    def sigma(self) -> float:
        """Eq. 13."""
        return math.sqrt(max(self.mu2 - self.mu1 * self.mu1, 0.0))

    def draw(self, rng: np.random.Generator, count: int) -> list:
        """For each of ``count`` examples: the index of the buffered item that replaces it, or None.

        Replay starts once the buffer is full; each example is replaced with probability ``prob``.
        """
        out = []
        for _ in range(int(count)):
            u = rng.random()
            if self.full and self.prob > 0 and u < self.prob:
                out.append(int(rng.integers(len(self.items))))
                self.replayed += 1
            else:
                out.append(None)
        return out

    def observe(self, loss: float, item, rng: np.random.Generator) -> bool:
        """Update eqs. 11-15 with a fresh example's conditional ``loss``; admit ``item`` if hard.

        Returns whether the item entered the buffer as a hard example (filling does not count).
        """
        loss = float(loss)
        if not math.isfinite(loss):
            return False
        b = self.beta
        self.mu1 = b * self.mu1 + (1.0 - b) * loss                      # eq. 11
        self.mu2 = b * self.mu2 + (1.0 - b) * loss * loss               # eq. 12
        if not self.full:
            self.items.append(item)
            return False
        added = loss > self.threshold
        if added:
            self.items[int(rng.integers(self.size))] = item
            self.added += 1
        self.rate = self.rate_beta * self.rate + (1.0 - self.rate_beta) * float(added)   # eq. 14
        sign = -1.0 if self.rate < self.prob else 1.0
        self.threshold = b * self.threshold + (1.0 - b) * (self.mu1 + sign * self.n_sigma * self.sigma)  # eq. 15
        return added

    def state_dict(self) -> dict:
        """Everything needed to continue exactly (items stacked per field as tensors)."""
        fields = {}
        if self.items:
            for k in range(len(self.items[0])):
                fields[f"field{k}"] = torch.stack([it[k] for it in self.items])
        return {"scalars": torch.tensor([self.mu1, self.mu2, self.threshold, self.rate], dtype=torch.float64),
                "counts": torch.tensor([self.added, self.replayed, len(self.items)], dtype=torch.int64),
                "settings": torch.tensor([self.size, self.prob, self.beta, self.rate_beta, self.n_sigma],
                                         dtype=torch.float64),
                "fields": fields}

    def load_state_dict(self, state: dict) -> None:
        s = state["scalars"].tolist()
        self.mu1, self.mu2, self.threshold, self.rate = (float(v) for v in s)
        added, replayed, n = (int(v) for v in state["counts"].tolist())
        self.added, self.replayed = added, replayed
        fields = state.get("fields", {})
        keys = sorted(fields, key=lambda k: int(k[5:]))
        self.items = [tuple(fields[k][i].clone() for k in keys) for i in range(n)] if keys else []
