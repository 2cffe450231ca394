"""Kept-run averaging (issue 15): runs aligned to the best (translation, twin), outliers such as
twin mixtures detected and not averaged, the reason recorded for every candidate."""

from __future__ import annotations

import numpy as np
import pytest

from fastem.data import cdi_intensities, save_cdi, vesicle_2d
from fastem.phase import keep_best, keep_consistent, r_factor, retrieve, twin


@pytest.fixture(scope="module")
def obj():
    u = np.zeros((48, 48))
    u[12:36, 10:34] = vesicle_2d(24, seed=3)
    return u


def test_twins_and_shifts_are_aligned_and_a_twin_mixture_is_set_aside(obj):
    rng = np.random.default_rng(0)
    noise = lambda: 0.002 * rng.random(obj.shape)  # noqa: E731
    candidates = np.stack([
        obj + noise(),                                  # 0: the best
        0.5 * (obj + np.roll(twin(obj), (1, 2), (0, 1))),  # 1: a twin mixture (good R_F, wrong image)
        np.roll(twin(obj), (5, -3), (0, 1)) + noise(),  # 2: the twin, shifted
        np.roll(obj, (-4, 7), (0, 1)) + noise(),        # 3: the object, shifted
        np.roll(obj, (2, 2), (0, 1)) * 3.0,             # 4: not needed (keep 3)
    ])
    rf = np.array([0.10, 0.11, 0.12, 0.13, 0.14])
    sel = keep_consistent(candidates, rf, keep=3, tolerance=0.3)
    assert list(sel.indices) == [0, 2, 3]
    by = {e["index"]: e for e in sel.report}
    assert set(by) == {0, 1, 2, 3}  # 4 was never needed
    assert not by[1]["kept"] and "outlier" in by[1]["reason"] and by[1]["difference"] > 0.3
    assert by[2]["kept"] and by[2]["flipped"] and by[2]["difference"] < 0.05
    assert by[3]["kept"] and not by[3]["flipped"] and tuple(by[3]["shift"]) == (4, -7)
    np.testing.assert_allclose(sel.mean, obj, atol=0.0021)  # aligned copies average to the object
    # without the check the mixture is averaged in, and the mean is far from the object
    kept, idx, mean, _ = keep_best(candidates, rf, 3)
    assert list(idx) == [0, 1, 2]
    assert np.abs(mean - obj).sum() > 0.2 * obj.sum()


def test_only_the_best_when_every_other_run_disagrees(obj):
    c = np.stack([obj, np.roll(obj, 3, 0) + 0.5 * np.roll(twin(obj), 1, 1), 0.1 + 0 * obj])
    sel = keep_consistent(c, np.array([0.1, 0.2, 0.3]), keep=3, tolerance=0.3)
    assert list(sel.indices) == [0] and [e["kept"] for e in sel.report] == [True, False, False]
    np.testing.assert_array_equal(sel.mean, obj)


def test_a_run_that_looks_right_but_fits_far_worse_is_set_aside(obj):
    """R_F criterion: a candidate 2 % off the best image (inside the image tolerance) whose R_F is
    more than twice the best's and 0.1 % above it is not averaged; at the numerical floor of a
    noise-free case (R_F 1e-5 against 3e-5) nothing is rejected; no tolerance: no check."""
    rng = np.random.default_rng(1)
    close = np.stack([obj + 0.02 * obj.mean() * rng.standard_normal(obj.shape) for _ in range(4)])
    rf = np.array([0.00011, 0.00012, 0.0034, 0.00013])         # the noise-free cell: 0.34 % vs 0.011 %
    sel = keep_consistent(close, rf, keep=4, tolerance=0.3)
    assert list(sel.indices) == [0, 1, 3]
    (bad,) = [e for e in sel.report if e["index"] == 2]
    assert not bad["kept"] and "R_F" in bad["reason"] and "x the best" in bad["reason"] and bad["difference"] < 0.3
    at_floor = keep_consistent(close, np.array([1e-5, 3e-5, 2e-5, 4e-5]), keep=4, tolerance=0.3)
    assert sorted(at_floor.indices) == [0, 1, 2, 3]
    noisy = keep_consistent(close, np.array([0.056, 0.0561, 0.0575, 0.0562]), keep=4, tolerance=0.3)
    assert sorted(noisy.indices) == [0, 1, 2, 3]                # converged noisy runs: within 3 %
    worse = keep_consistent(close, np.array([0.056, 0.0561, 0.113, 0.0562]), keep=4, tolerance=0.3)
    assert sorted(worse.indices) == [0, 1, 3]                   # 2.02x and 5.7 % above
    assert sorted(keep_consistent(close, rf, keep=4, tolerance=None).indices) == [0, 1, 2, 3]


def test_retrieve_reports_the_kept_candidates_and_the_rf_of_the_mean(obj):
    cdi = cdi_intensities(obj, r_noise=0.05, beamstop_radius=1, seed=1)
    res = retrieve(cdi.intensities, cdi.known, cdi.support, algorithm="hio", iterations=60, runs=8, keep=3, seed=0)
    rep = res.extra["kept_report"]
    assert [e["run"] for e in rep if e["kept"]] == list(res.kept_runs)
    assert res.extra["rejected_runs"] == [e["run"] for e in rep if not e["kept"]]
    assert all(e["difference"] <= 0.3 for e in rep if e["kept"])
    assert res.extra["mean_rf"] == pytest.approx(r_factor(res.image, np.sqrt(cdi.intensities), cdi.known))
    loose = retrieve(cdi.intensities, cdi.known, cdi.support, algorithm="hio", iterations=60, runs=8, keep=3, seed=0,
                     keep_tolerance=None)
    assert len(loose.kept_runs) == 3 and loose.extra["rejected_runs"] == []
    with pytest.raises(Exception, match="keep_tolerance"):
        retrieve(cdi.intensities, cdi.known, cdi.support, iterations=5, keep_tolerance=-1)


def test_guided_generations_breed_towards_the_best_run(obj):
    """Guided multi-start: equal total iterations, children are sqrt(a b) of the aligned images."""
    from fastem.phase import PhaseConfig, prepare_problem
    from fastem.phase.generations import breed_sqrt_ab, retrieve_generations

    shifted_twin = np.roll(twin(obj), (3, -2), (0, 1))
    np.testing.assert_allclose(breed_sqrt_ab(shifted_twin, obj), obj, atol=1e-12)  # aligned first
    np.testing.assert_allclose(breed_sqrt_ab(0.25 * obj, obj), 0.5 * obj, atol=1e-12)
    cdi = cdi_intensities(obj, r_noise=0.05, beamstop_radius=1, seed=1)
    prob = prepare_problem(cdi.intensities, cdi.known, cdi.support)
    cfg = PhaseConfig(algorithm="gps-f", iterations=60)
    sel, rf, images = retrieve_generations(prob, cfg, runs=4, generations=3, keep=2, seed=0)
    assert images.shape == (4, 48, 48) and np.all(np.isfinite(rf)) and 1 <= len(sel.indices) <= 2
    one, rf1, _ = retrieve_generations(prob, cfg, runs=4, generations=1, keep=2, seed=0)
    assert not np.allclose(rf, rf1)  # the generations changed the runs
    with pytest.raises(Exception, match="generations"):
        retrieve_generations(prob, cfg, runs=4, generations=61)
