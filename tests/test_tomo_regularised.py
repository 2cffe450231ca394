"""Regularised RESIRE (issue 20): FISTA on weighted least squares + a convex prior.

Tiny noisy missing-wedge cases (seconds): the objective decreases, zero-weight pixels holding
arbitrary values change nothing, the automatic strength lands within 2x of the best fixed one,
and the prior beats plain least squares at 5 % noise.
"""

import numpy as np
import pytest

from fastem.errors import InputError
from fastem.tomo import TomoProblem, relative_error
from fastem.tomo.regularised import RegularisedReconstruction, estimate_noise, regularised

KW = dict(convention="thesis")


def _case(n=16, noise=0.05, seed=0, step=6.0):
    from fastem.data import tilt_angles, tilt_series, vesicle_3d

    truth = vesicle_3d(n, seed=0).astype(np.float64)
    tilts = tilt_angles(-60.0, 60.0, step)
    clean = tilt_series(truth, -tilts, centring="middle")
    rng = np.random.default_rng(seed)
    sigma = noise * float(np.abs(clean).max())
    return truth, tilts, clean + rng.normal(0.0, sigma, clean.shape), sigma


@pytest.fixture(scope="module")
def case():
    return _case()


@pytest.mark.parametrize("prior", ["tv", "itv", "huber", "qggmrf", "none"])
def test_objective_decreases(case, prior):
    truth, tilts, data, _ = case
    s = RegularisedReconstruction(TomoProblem(data, tilts, **KW), prior=prior, weight=0.5)
    values = [s.objective()]
    for _ in range(6):
        for _ in range(5):
            s.iterate()
        values.append(s.objective())
    assert values[-1] < 0.2 * values[0]
    # FISTA with gradient restart: near-monotone at this checkpoint spacing
    assert all(b <= a * (1 + 1e-3) for a, b in zip(values, values[1:])), values
    data_term, prior_value = s.objective_terms()
    assert data_term > 0 and (prior_value > 0 or prior == "none")


def test_lipschitz_estimate_bounds_the_operator(case):
    _, tilts, data, _ = case
    s = RegularisedReconstruction(TomoProblem(data, tilts, **KW), prior="none")
    rng = np.random.default_rng(3)
    for _ in range(3):
        v = rng.standard_normal(s.problem.geometry.volume_shape).astype(np.float32)
        av = s.op.project(v)
        assert float(np.sum(av.astype(np.float64) ** 2)) <= s.lipschitz_data * float(np.sum(v.astype(np.float64) ** 2))


def test_power_iteration_stops_once_settled_at_the_long_run_value(case, monkeypatch):
    """The power method stops when its estimate changes by < POWER_TOLERANCE: on the plain
    series in fewer than 30 products, within 1e-4 of the estimate after 200; with uneven weights
    (slow convergence) it runs all 30, and L_data still bounds the operator."""
    import fastem.tomo.regularised as reg

    _, tilts, data, _ = case
    weights = np.random.default_rng(4).uniform(0.2, 3.0, data.shape).astype(np.float32)
    calls = []
    for w in (None, weights):
        problem = TomoProblem(data, tilts, **KW)
        real_back = type(RegularisedReconstruction(problem, prior="none", lipschitz=1.0).op).back

        def counting_back(self, *a, **k):
            calls.append(1)
            return real_back(self, *a, **k)

        monkeypatch.setattr(type(RegularisedReconstruction(problem, prior="none", lipschitz=1.0).op), "back",
                            counting_back)
        calls.clear()
        settled = RegularisedReconstruction(problem, prior="none", weights=w).lipschitz_data
        products = len(calls)
        monkeypatch.undo()
        monkeypatch.setattr(reg, "POWER_TOLERANCE", 0.0)
        long_run = RegularisedReconstruction(problem, prior="none", weights=w, power_iterations=200).lipschitz_data
        monkeypatch.undo()
        # with 1.05 x the estimate, L_data still bounds the operator (long_run / 1.05 ~ its norm)
        assert long_run / 1.05 < settled <= long_run * (1 + 1e-9)
        if w is None:       # settles fast: stops early, at the long-run value
            assert 3 <= products < 30 and settled >= long_run * (1 - 1e-4)
        else:               # uneven weights converge slowly (1e-3 per product): no early stop
            assert products == 30


def test_rfree_search_lipschitz_bound_from_the_full_solver(case):
    # the R-free search reuses the full solver's L_data (scaled by the weight normalisations): a
    # valid bound of its own operator, with uneven weights too, so the search skips a power iteration
    from fastem.tomo.regularised import choose_weight_rfree

    _, tilts, data, _ = case
    problem = TomoProblem(data, tilts, **KW)
    weights = (0.2 + np.random.default_rng(5).random(problem.geometry.projections_shape)).astype(np.float32)
    full = RegularisedReconstruction(problem, prior="tv", weights=weights)
    kwargs = dict(prior="tv", weights=weights)
    rec = choose_weight_rfree(problem, kwargs, inner=2, steps=2, full=full)
    own = choose_weight_rfree(problem, kwargs, inner=2, steps=2)
    assert rec["lipschitz_data"] != full.lipschitz_data
    assert own["lipschitz_data"] <= rec["lipschitz_data"] <= 1.5 * own["lipschitz_data"]
    rng = np.random.default_rng(3)
    for _ in range(3):   # the bound holds for the held-out solver's operator A^T W_held A
        v = rng.standard_normal(problem.geometry.volume_shape).astype(np.float32)
        held = RegularisedReconstruction(problem, prior="tv", weights=np.where(
            np.random.default_rng(0).random(weights.shape) < 0.05, 0.0, weights).astype(np.float32),
            lipschitz=rec["lipschitz_data"])
        av = held.op.project(v).astype(np.float64)
        energy = float(np.sum(held.weights_host * av ** 2))
        assert energy <= rec["lipschitz_data"] * float(np.sum(v.astype(np.float64) ** 2))


def test_zero_weight_pixels_change_nothing(case):
    truth, tilts, data, _ = case
    rng = np.random.default_rng(7)
    weights = (rng.random(data.shape) > 0.2).astype(np.float32) * rng.uniform(0.5, 2.0, data.shape).astype(np.float32)
    weights[3, 2:9, 4:12] = 0                        # a blocked rectangle too
    bad = data.copy()
    zero = weights == 0
    bad[zero] = rng.uniform(-1e6, 1e6, int(zero.sum()))
    bad[zero & (rng.random(data.shape) < 0.1)] = np.nan
    a = regularised(data, tilts, prior="tv", weights=weights, iterations=20, auto_inner=10, **KW)
    b = regularised(bad, tilts, prior="tv", weights=weights, iterations=20, auto_inner=10, **KW)
    assert np.array_equal(a.volume, b.volume)
    assert a.config["noise_estimate"] == b.config["noise_estimate"]
    assert a.config["auto"]["weight"] == b.config["auto"]["weight"]
    assert a.r_factor == b.r_factor
    assert estimate_noise(data, weights) == estimate_noise(bad, weights)
    # and the weights matter where they are non-zero (the test can fail)
    c = regularised(data, tilts, prior="tv", weights=np.ones_like(weights), iterations=20, auto_inner=10, **KW)
    assert not np.array_equal(a.volume, c.volume)


def test_noise_estimate_reads_measured_pixels_only():
    rng = np.random.default_rng(1)
    noise = rng.normal(0.0, 0.3, (12, 40, 40))
    assert estimate_noise(noise) == pytest.approx(0.3, rel=0.05)
    w = np.ones(noise.shape)
    w[:, :, :20] = 0
    spoiled = noise.copy()
    spoiled[:, :, :20] = rng.normal(0.0, 50.0, (12, 40, 20))
    assert estimate_noise(spoiled, w) == pytest.approx(0.3, rel=0.08)
    assert estimate_noise(spoiled) > 3     # without the weights the spoiled half is read


@pytest.mark.parametrize("prior", ["itv", "tv"])
def test_auto_strength_within_2x_of_best_fixed(case, prior):
    truth, tilts, data, _ = case
    auto = regularised(data, tilts, prior=prior, iterations=60, **KW)
    lam = auto.config["auto"]["weight"]
    assert auto.config["auto"]["bracketed"]
    factors = [1 / 4, 1 / 2, 1, 2, 4]
    errors = [relative_error(regularised(data, tilts, prior=prior, prior_weight=lam * f, iterations=120, **KW).volume,
                             truth) for f in factors]
    best = int(np.argmin(errors))
    assert factors[best] in (1 / 2, 1, 2), (lam, errors)
    assert relative_error(auto.volume, truth) <= 1.1 * min(errors)


def test_prior_beats_plain_least_squares_at_5_percent_noise(case):
    truth, tilts, data, sigma = case
    ls = regularised(data, tilts, prior="none", prior_weight=0.0, iterations=100, **KW)
    tv = regularised(data, tilts, prior="tv", iterations=100, **KW)
    e_ls, e_tv = relative_error(ls.volume, truth), relative_error(tv.volume, truth)
    assert e_tv < 0.85 * e_ls, (e_tv, e_ls)
    cfg = tv.config
    assert cfg["prior"] == "tv" and cfg["prior_weight"] == cfg["auto"]["weight"] > 0
    assert 0.5 * sigma < cfg["noise_estimate"] < 2 * sigma


def test_discrepancy_mode_and_support(case):
    truth, tilts, data, sigma = case
    support = np.zeros(truth.shape, bool)
    support[2:-2, 2:-2, 2:-2] = True
    r = regularised(data, tilts, prior="huber", auto="discrepancy", noise_level=sigma, support=support,
                    iterations=20, auto_inner=15, **KW)
    assert r.config["auto"]["method"] == "discrepancy" and r.config["noise_estimate"] == sigma
    assert not r.volume[~support].any() and r.volume.min() >= 0
    assert np.isfinite(r.volume).all()


def test_errors_name_the_parameter(case):
    _, tilts, data, _ = case
    p = TomoProblem(data, tilts, **KW)
    with pytest.raises(InputError, match="prior must be one of"):
        RegularisedReconstruction(p, prior="l2")
    with pytest.raises(InputError, match="weight must be >= 0"):
        RegularisedReconstruction(p, prior="tv", weight=-1.0)
    with pytest.raises(InputError, match="weights have shape"):
        RegularisedReconstruction(p, prior="tv", weights=np.ones((2, 2, 2)))
    with pytest.raises(InputError, match="weights must be finite and >= 0"):
        regularised(data, tilts, weights=-np.ones(data.shape), **KW)
    with pytest.raises(InputError, match="prior_weight must be a number >= 0 or 'auto'"):
        regularised(data, tilts, prior_weight="strong", **KW)
    with pytest.raises(InputError, match="auto must be 'rfree' or 'discrepancy'"):
        regularised(data, tilts, auto="gcv", **KW)
    with pytest.raises(InputError, match="^eps must be a finite number > 0"):
        RegularisedReconstruction(p, prior="tv", prior_params={"eps": 0.0})


def test_prepare_and_resume(case):
    """What the CLI hook calls: prepare_regularised, run, state -> restore continues (momentum restarted)."""
    from fastem.tomo.regularised import prepare_regularised

    truth, tilts, data, _ = case
    p = TomoProblem(data, tilts, **KW)
    solver, info = prepare_regularised(p, prior="qggmrf", prior_weight="auto", auto_inner=10)
    assert solver.iteration == 0 and solver.weight == info["auto"]["weight"] > 0
    assert info["noise_estimate"] > 0 and len(info["auto"]["trials"]) >= 3
    solver.run(10)
    state = solver.state()
    before = solver.objective()
    # an automatic run keeps its R-free pixels out and stops by R-free: resumed with its weight likewise
    assert solver.held is not None and solver.held_count > 0
    other, _ = prepare_regularised(TomoProblem(data, tilts, **KW), prior="qggmrf", prior_weight=solver.weight,
                                   prior_params=solver.prior_params, rfree_stop=True)
    assert other.held_count == solver.held_count and other.lipschitz_data == solver.lipschitz_data
    other.restore(state)
    assert other.iteration == 10 and other.objective() == pytest.approx(before, rel=1e-6)
    rfree_before = other.rfree()
    res = other.run(20)
    # it went on to 20; it returns the volume with the lowest R-free of the search's last state
    # (iteration 0, carried in the state) and the checks at 10 and 20
    assert res.iterations == 20 and res.config["rfree_stop"]["best_iteration"] in (0, 10, 20)
    other.volume[...] = res.volume
    assert other.rfree() <= rfree_before * (1 + 1e-6)
    assert res.config["prior"] == "qggmrf" and res.config["prior_weight"] == solver.weight


def test_state_and_restore_continue_exactly():
    """A solver restored from state() after k iterations ends bit for bit where an uninterrupted
    one does (FISTA's momentum is part of the state); without the momentum it does not (the test
    can fail)."""
    from fastem.data import tilt_angles, tilt_series, vesicle_3d
    from fastem.tomo import TomoProblem
    from fastem.tomo.regularised import RegularisedReconstruction

    vol = vesicle_3d(11, seed=1).astype(np.float32)
    ang = tilt_angles(-60, 60, 10.0)
    proj = tilt_series(vol, ang, centring="middle").astype(np.float32)
    proj += np.random.default_rng(0).normal(0, 0.05, proj.shape).astype(np.float32)

    def solver():
        return RegularisedReconstruction(TomoProblem(proj, ang), prior="tv", weight=0.3, projector="linear")

    straight = solver().run(12, progress=False).volume
    first = solver()
    first.run(5, progress=False)
    state = first.state()
    resumed = solver()
    resumed.restore(state)
    np.testing.assert_array_equal(resumed.run(12, progress=False).volume, straight)
    no_momentum = {k: v for k, v in state.items() if not k.startswith("momentum_")}
    restarted = solver()
    restarted.restore(no_momentum)
    assert not np.array_equal(restarted.run(12, progress=False).volume, straight)


def test_rfree_early_stop_returns_the_best_cross_validated_volume():
    """A weak fixed strength over-fits the noise: the R-free stop ends the run early, returns the
    volume with the lowest held-out residual, and that volume is closer to the truth than the
    over-fitted end of an unstopped run (the test can fail)."""
    from fastem.tomo.regularised import prepare_regularised

    truth, tilts, data, _ = _case(n=16, noise=0.08, seed=2, step=6.0)
    stopped, _ = prepare_regularised(TomoProblem(data, tilts, **KW), prior="tv", prior_weight=1e-4,
                                     rfree_stop=True)
    res = stopped.run(400)
    assert stopped.stopped == "rfree" and res.iterations < 400
    hist = stopped.rfree_history
    best_it, best_val = min(hist, key=lambda t: t[1])
    assert best_it == stopped.rfree_best_iteration and best_val == stopped.rfree_best
    stopped.volume[...] = res.volume                      # the volume returned is the best one
    assert stopped.rfree() == pytest.approx(best_val, rel=1e-5)
    assert res.config["rfree_stop"]["best_iteration"] == best_it
    plain, _ = prepare_regularised(TomoProblem(data, tilts, **KW), prior="tv", prior_weight=1e-4)
    assert plain.held is None
    over = plain.run(400)
    assert relative_error(res.volume, truth) < 0.97 * relative_error(over.volume, truth)


def test_rfree_stop_resumes_exactly():
    """A checkpoint holds the R-free record (best volume, best value, checks since): a resumed run
    ends bit for bit where an uninterrupted one does, early stop included."""
    from fastem.tomo.regularised import prepare_regularised

    _, tilts, data, _ = _case(n=12, noise=0.08, seed=3, step=10.0)

    def solver():
        s, _ = prepare_regularised(TomoProblem(data, tilts, **KW), prior="tv", prior_weight=1e-4, rfree_stop=True)
        return s

    straight = solver()
    end = straight.run(300)
    assert straight.stopped == "rfree"
    first = solver()
    first.run(35)
    state = first.state()
    resumed = solver()
    resumed.restore(state)
    again = resumed.run(300)
    assert resumed.stopped == "rfree" and again.iterations == end.iterations
    np.testing.assert_array_equal(again.volume, end.volume)


def test_held_out_pixels_fraction_and_never_unmeasured(case):
    from fastem.tomo.regularised import RFREE_MAX_FRACTION, held_out_pixels

    _, tilts, data, _ = case
    p = TomoProblem(data, tilts, **KW)
    n = data.size
    held = held_out_pixels(p)               # small problem: at least 1000 pixels, at most 5 %
    assert 0.8 * min(1000, RFREE_MAX_FRACTION * n) <= held.sum() <= 1.2 * RFREE_MAX_FRACTION * n
    np.testing.assert_array_equal(held, held_out_pixels(p))      # seeded: a resume holds out the same
    weights = np.ones(data.shape, np.float32)
    weights[:, :, :5] = 0.0
    held = held_out_pixels(p, weights, fraction=0.2)
    assert not held[:, :, :5].any() and 0.15 < held[:, :, 5:].mean() < 0.25


def test_a_pairing_won_by_the_weaker_strength_reruns_it_to_the_same_bits(monkeypatch, case):
    """The R-free search keeps one snapshot (volume and momentum): when a pairing's weaker strength
    wins, its trial is run again from that snapshot. On the CPU the rerun must reproduce the
    trial bit for bit: the chosen strength's R-free equals the one recorded for its first run.

    The real held-out solver, with its R-free scaled by ``weight^0.3`` so that weaker strengths
    always look better: the descent runs to its last step and the last pairing is won by the
    weaker strength on any machine (the path does not hang on the kernels' last bits)."""
    import fastem.tomo.regularised as reg

    real_held_out_solver = reg.held_out_solver

    def biased(*a, **k):
        solver = real_held_out_solver(*a, **k)
        real = solver.rfree
        solver.rfree = lambda: real() * solver.weight ** 0.3
        return solver
    monkeypatch.setattr(reg, "held_out_solver", biased)
    _, tilts, data, _ = case
    problem = TomoProblem(data.astype(np.float32), tilts, **KW)
    monkeypatch.setattr(reg, "SECOND_SNAPSHOT_MAX_BYTES", 0)        # the large-volume path: rerun
    rec = reg.choose_weight_rfree(problem, {"prior": "tv"}, inner=10, steps=6)
    assert rec["reruns"] >= 1                          # the case exercises the rerun
    (lower, r_lower), (stay, r_stay) = rec["trials"][-2:]   # the last pairing, won by the weaker strength
    assert lower < stay and r_lower < r_stay
    assert rec["weight"] == lower and rec["rfree"] == r_lower
    assert rec["solver"].rfree() == r_lower            # the solver is left at that state, same bits
    assert rec["solver"].weight == lower
    # the small-volume path keeps the weaker side's end state instead: the same search, bit for bit
    monkeypatch.setattr(reg, "SECOND_SNAPSHOT_MAX_BYTES", 2 ** 40)
    kept = reg.choose_weight_rfree(problem, {"prior": "tv"}, inner=10, steps=6)
    assert kept["reruns"] == 0 and kept["trials"] == rec["trials"] and kept["weight"] == rec["weight"]
    np.testing.assert_array_equal(kept["solver"].host_volume(), rec["solver"].host_volume())
    np.testing.assert_array_equal(np.asarray(kept["solver"].x_prev), np.asarray(rec["solver"].x_prev))
    assert kept["solver"].t == rec["solver"].t and kept["solver"].restarts == rec["solver"].restarts


def test_trials_from_the_same_state_are_bit_identical(case):
    """What the search's rerun relies on: the same iterations from a restored state (volume,
    momentum, strength) give the same volume, momentum and R-factor, bit for bit."""
    from fastem.tomo.regularised import held_out_solver

    _, tilts, data, _ = case
    problem = TomoProblem(data.astype(np.float32), tilts, **KW)
    solver = held_out_solver(problem, {"prior": "tv"})
    solver.set_weight(0.3)
    for _ in range(7):
        solver.iterate()
    x0, p0, t0 = solver.volume.copy(), solver.x_prev.copy(), solver.t
    runs = []
    for _ in range(2):
        solver.set_weight(0.1)
        solver.volume[...], solver.x_prev[...], solver.t = x0, p0, t0
        for _ in range(9):
            solver.iterate()
        runs.append((solver.volume.copy(), solver.x_prev.copy(), solver.t, solver.rfree()))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert runs[0][2:] == runs[1][2:]
