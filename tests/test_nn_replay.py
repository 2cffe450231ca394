"""Experience replay (seed 000 eqs. 11-15) against a scripted loss sequence."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fastem.nn import ExperienceReplay  # noqa: E402


class ScriptedRng:
    """Stands in for numpy's Generator: scripted ``random()`` values, ``integers`` cycles 0, 1, 2, ..."""

    def __init__(self, uniforms=()):
        self.uniforms = list(uniforms)
        self.k = 0

    def random(self):
        return self.uniforms.pop(0)

    def integers(self, n):
        self.k += 1
        return (self.k - 1) % n


def reference(losses, size, prob=0.2, b=0.99, br=0.99, k=5.0, mu1=1.5, mu2=4.0):
    """Eqs. 11-15 written out independently; returns the admitted step indices and the final state."""
    thr, rate, filled, admitted = 0.0, prob, 0, []
    for i, L in enumerate(losses):
        mu1 = b * mu1 + (1 - b) * L
        mu2 = b * mu2 + (1 - b) * L * L
        if filled < size:
            filled += 1
            continue
        add = L > thr
        if add:
            admitted.append(i)
        rate = br * rate + (1 - br) * add
        sigma = math.sqrt(max(mu2 - mu1 ** 2, 0))
        target = mu1 - k * sigma if rate < prob else mu1 + k * sigma
        thr = b * thr + (1 - b) * target
    return admitted, (mu1, mu2, thr, rate)


def test_admission_follows_the_equations():
    losses = [1.0, 2.0, 3.0] + [1.0] * 40 + [50.0, 0.5, 60.0] + [1.0] * 200 + [1.2, 80.0, 0.9]
    rep = ExperienceReplay(size=3, prob=0.2)
    rng = ScriptedRng()
    admitted = [i for i, L in enumerate(losses) if rep.observe(L, (torch.tensor([float(i)]),), rng)]
    ref_admitted, (mu1, mu2, thr, rate) = reference(losses, 3)
    assert admitted == ref_admitted
    assert (rep.mu1, rep.mu2, rep.threshold, rep.rate) == pytest.approx((mu1, mu2, thr, rate), rel=1e-12)
    # the threshold starts at 0, so early ordinary examples enter; once the admission rate
    # falls below 0.2 it rises towards mu1 + 5 sigma, and only outliers get in afterwards
    assert 3 in admitted and len(admitted) < len(losses) - 3
    assert len(losses) - 2 in admitted                # the late outlier (80)
    assert len(losses) - 1 not in admitted            # the easy example after it (0.9)
    held = {float(it[0]) for it in rep.items}
    assert float(len(losses) - 2) in held


def test_buffer_fills_first_then_replays_with_probability():
    rep = ExperienceReplay(size=2, prob=0.2)
    rng = ScriptedRng([0.1, 0.1])
    assert rep.draw(rng, 2) == [None, None]           # not full: no replay yet
    rep.observe(1.0, ("a",), rng)
    rep.observe(1.0, ("b",), rng)
    assert rep.full and rep.added == 0
    rng = ScriptedRng([0.1, 0.5, 0.19999, 0.2])
    picks = rep.draw(rng, 4)
    assert [p is not None for p in picks] == [True, False, True, False]
    assert rep.replayed == 2


def test_replay_rate_is_about_prob_with_numpy_generator():
    rep = ExperienceReplay(size=5, prob=0.2)
    rng = np.random.default_rng(0)
    for i in range(5):
        rep.observe(1.0, (i,), rng)
    picks = rep.draw(rng, 20000)
    frac = np.mean([p is not None for p in picks])
    assert frac == pytest.approx(0.2, abs=0.01)


def test_state_round_trip():
    rep = ExperienceReplay(size=3)
    rng = np.random.default_rng(1)
    for i, L in enumerate([1.0, 2.0, 3.0, 9.0, 0.1]):
        rep.observe(L, (torch.full((2, 4, 4), float(i)), torch.full((1, 4, 4), -float(i))), rng)
    other = ExperienceReplay(size=3)
    other.load_state_dict(rep.state_dict())
    assert (other.mu1, other.mu2, other.threshold, other.rate, other.added) == \
        (rep.mu1, rep.mu2, rep.threshold, rep.rate, rep.added)
    for a, b in zip(rep.items, other.items):
        assert all(torch.equal(u, v) for u, v in zip(a, b))


def test_nonfinite_loss_is_ignored_and_bad_settings_refused():
    rep = ExperienceReplay(size=1)
    assert rep.observe(float("nan"), ("x",), ScriptedRng()) is False and not rep.items
    with pytest.raises(ValueError):
        ExperienceReplay(size=0)
    with pytest.raises(ValueError):
        ExperienceReplay(prob=1.5)
