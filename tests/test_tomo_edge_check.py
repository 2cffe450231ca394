"""The R-free search's edge check (issue 20): the outermost projections held out in the search, the
last pairing judged by their residual, the final solve's R-free checks from EDGE_SETTLE_ITERATIONS
on with patience EDGE_PATIENCE."""

from __future__ import annotations

import math

import numpy as np
import pytest

import fastem.tomo.regularised as reg
from fastem.data import tilt_angles, tilt_series, vesicle_3d
from fastem.tomo import TomoProblem, relative_error
from fastem.tomo.regularised import (EDGE_PATIENCE, EDGE_SETTLE_ITERATIONS, RegularisedReconstruction,
                                     choose_weight_rfree, edge_projection_pixels, prepare_regularised, regularised)

KW = dict(convention="thesis")


def _series(n=16, step=3.0, max_tilt=60.0, noise=0.03, seed=0):
    truth = vesicle_3d(n, seed=2).astype(np.float64)
    tilts = tilt_angles(-max_tilt, max_tilt, step)
    clean = tilt_series(truth, -tilts, centring="middle")
    rng = np.random.default_rng(seed)
    data = (clean + rng.normal(0.0, noise * float(np.abs(clean).max()), clean.shape)).astype(np.float32)
    return truth, tilts, data


@pytest.fixture(scope="module")
def series41():
    return _series()          # 41 projections: the edge check's default scope


def test_edge_pixels_are_the_measured_pixels_of_the_outermost_projections(series41):
    _, tilts, data = series41
    shuffled = np.random.default_rng(1).permutation(len(tilts))   # order in the file does not matter
    weights = np.random.default_rng(2).uniform(0.5, 2.0, data.shape).astype(np.float32)
    weights[:, :, :3] = 0.0                                       # unmeasured columns
    problem = TomoProblem(data[shuffled], tilts[shuffled], **KW)
    edge = edge_projection_pixels(problem, weights[shuffled])
    ends = {int(np.argmin(tilts[shuffled])), int(np.argmax(tilts[shuffled]))}
    assert {int(k) for k in np.flatnonzero(edge.any(axis=(1, 2)))} == ends
    for k in ends:
        assert np.array_equal(edge[k], weights[shuffled][k] > 0)
    two = edge_projection_pixels(problem, count=2)
    assert two.any(axis=(1, 2)).sum() == 4


def test_edge_pixels_only_where_a_single_axis_series_has_a_wedge(series41):
    _, tilts, data = series41
    few = _series(step=6.0)                                       # 21 projections: not by default
    assert edge_projection_pixels(TomoProblem(few[2], few[1], **KW)) is None
    assert edge_projection_pixels(TomoProblem(few[2], few[1], **KW), count=1) is not None   # asked for: yes
    full = tilt_angles(-88.0, 88.0, 4.0)                          # 176 degrees: no wedge to see towards
    assert edge_projection_pixels(TomoProblem(np.ones((len(full), 16, 16), np.float32), full, **KW)) is None
    euler = np.stack([np.linspace(0, 80, len(tilts)), tilts, np.zeros(len(tilts))], axis=1)   # multi-axis
    assert edge_projection_pixels(TomoProblem(data, euler, **KW)) is None
    w = np.ones(data.shape, np.float32)
    w[[int(np.argmin(tilts)), int(np.argmax(tilts))]] = 0.0       # the ends unmeasured: nothing to judge by
    assert edge_projection_pixels(TomoProblem(data, tilts, **KW), w) is None


def test_excluded_residual_matches_a_float64_reference(series41):
    _, tilts, data = series41
    problem = TomoProblem(data, tilts, **KW)
    solver = RegularisedReconstruction(problem, prior="itv", weight=0.3)
    for _ in range(5):
        solver.iterate()
    edge = edge_projection_pixels(problem)
    solver.exclude_pixels(edge)
    got = solver.excluded_residual()
    projected = np.zeros(data.shape, np.float32)
    solver.op.forward(solver.volume, projected)
    scale = solver.scale
    ref = float(((projected.astype(np.float64) - problem.data.astype(np.float64))[edge] ** 2).sum()) / scale ** 2
    assert got == pytest.approx(ref, rel=1e-5)
    assert ref > 0


def test_the_search_never_sees_the_outermost_projections(series41):
    """Other values in the outermost projections change no trial of the search (its states never
    fit those projections), only the edge residuals of the last pairing. The R-free pixels among
    them keep their values (the random R-free reads them); the others are permuted among
    themselves: the same values, so the data's scale and the prior's parameters (from the measured
    data's percentiles) stay the same, and the trials must agree bit for bit."""
    from fastem.tomo.regularised import held_out_pixels

    _, tilts, data = series41
    ends = [int(np.argmin(tilts)), int(np.argmax(tilts))]
    edge = np.zeros(data.shape, bool)
    edge[ends] = True
    edge &= ~held_out_pixels(TomoProblem(data, tilts, **KW))
    bad = data.copy()
    bad[edge] = np.random.default_rng(3).permutation(data[edge])
    records = [choose_weight_rfree(TomoProblem(d, tilts, **KW), {"prior": "itv"}) for d in (data, bad)]
    assert records[0]["edge"]["projections"] == 2
    assert records[0]["trials"] == records[1]["trials"]
    assert records[0]["edge"]["residuals"] != records[1]["edge"]["residuals"]
    # and the solver handed back fits them again
    solver = records[0]["solver"]
    w, held = np.asarray(solver.w), np.asarray(solver.held) > 0
    assert np.array_equal(w[ends] > 0, ~held[ends])          # all but the R-free pixels among them
    assert records[0]["edge"]["pixels"] == int(edge.sum())   # the edge set: those, without the R-free ones


@pytest.mark.parametrize("threshold, weaker", [(-math.inf, True), (math.inf, False)])
def test_the_last_pairing_follows_the_edge_z(series41, monkeypatch, threshold, weaker):
    _, tilts, data = series41
    monkeypatch.setattr(reg, "EDGE_MIN_Z", threshold)
    rec = choose_weight_rfree(TomoProblem(data, tilts, **KW), {"prior": "itv"})
    stronger, lower = rec["edge"]["weights"]
    assert lower == pytest.approx(stronger / 2)
    assert rec["weight"] == (lower if weaker else stronger)
    assert math.isfinite(rec["edge"]["z"]) and rec["edge"]["sigma"] > 0
    residual_stronger, residual_weaker = rec["edge"]["residuals"]
    assert (rec["edge"]["z"] > 0) == (residual_weaker < residual_stronger)   # z > 0: the weaker predicts better


def test_the_edge_check_after_a_bracket_reuses_its_stay_trial(series41, monkeypatch):
    """When the descent brackets (a strength 4x weaker lost its R-free pairing to the current one
    continued), the edge check's weaker strength (2x) runs from the state that pairing started
    from, against the stay trial it ran already: trials ..., (lam/4), (lam), (lam/2), no second
    stay trial. Where the stay wins, a large volume (no second snapshot) runs the stay trial again
    from the snapshot (one rerun more than where the weaker wins, the descent being the same): the
    same search and end state, bit for bit, as the small-volume path that keeps it."""
    _, tilts, data = series41
    records = {}
    for threshold in (-math.inf, math.inf):                         # the weaker strength taken / kept
        monkeypatch.setattr(reg, "EDGE_MIN_Z", threshold)
        for snapshot_bytes in (2 ** 40, 0):                         # second snapshot kept / rerun
            monkeypatch.setattr(reg, "SECOND_SNAPSHOT_MAX_BYTES", snapshot_bytes)
            records[threshold, snapshot_bytes] = choose_weight_rfree(TomoProblem(data, tilts, **KW),
                                                                     {"prior": "itv"})
    for threshold in (-math.inf, math.inf):
        kept, rerun = records[threshold, 2 ** 40], records[threshold, 0]
        assert kept["bracketed"]                                    # the case exercises the path
        stronger, weaker = kept["edge"]["weights"]
        assert [w for w, _ in kept["trials"][-3:]] == pytest.approx([stronger / 4, stronger, weaker])
        assert weaker == pytest.approx(stronger / 2)
        chosen = weaker if threshold < 0 else stronger
        assert kept["weight"] == chosen and kept["solver"].weight == chosen
        r_chosen = kept["trials"][-1 if threshold < 0 else -2][1]
        assert kept["rfree"] == r_chosen and kept["solver"].rfree() == r_chosen   # left at that trial's end
        assert kept["reruns"] == 0
        assert rerun["trials"] == kept["trials"] and rerun["weight"] == kept["weight"]
        assert rerun["edge"] == kept["edge"]
        np.testing.assert_array_equal(rerun["solver"].host_volume(), kept["solver"].host_volume())
        np.testing.assert_array_equal(np.asarray(rerun["solver"].x_prev), np.asarray(kept["solver"].x_prev))
        assert rerun["solver"].t == kept["solver"].t and rerun["solver"].restarts == kept["solver"].restarts
    assert records[math.inf, 0]["reruns"] == records[-math.inf, 0]["reruns"] + 1
    assert records[math.inf, 0]["trials"] == records[-math.inf, 0]["trials"]      # the same descent and trials


def test_the_edge_checks_weaker_trial_starts_where_the_bracketing_pairing_did(series41, monkeypatch):
    """The three last trials of a bracketed search (lam/4, lam continued, lam/2) all start from the
    same state: the volume and momentum before the first iteration of each are identical. (Started
    from the stay trial's end instead, the weaker side would have 25 iterations more behind it.)"""
    import hashlib

    starts = []                                     # (weight, digest of volume, x_prev and t) at each trial start
    real_iterate = RegularisedReconstruction.iterate

    def iterate(self):
        if not starts or starts[-1][2] is not self or self._trial_start:
            state = np.concatenate([np.asarray(self.volume).ravel(), np.asarray(self.x_prev).ravel(), [self.t]])
            starts.append((self.weight, hashlib.sha256(state.tobytes()).hexdigest(), self))
            self._trial_start = False
        return real_iterate(self)

    real_rfree = RegularisedReconstruction.rfree

    def rfree(self):                                # every trial ends with an R-free: the next iteration starts one
        self._trial_start = True
        return real_rfree(self)

    monkeypatch.setattr(RegularisedReconstruction, "_trial_start", True, raising=False)
    monkeypatch.setattr(RegularisedReconstruction, "iterate", iterate)
    monkeypatch.setattr(RegularisedReconstruction, "rfree", rfree)
    _, tilts, data = series41
    rec = choose_weight_rfree(TomoProblem(data, tilts, **KW), {"prior": "itv"})
    assert rec["bracketed"]
    stronger, weaker = rec["edge"]["weights"]
    last = starts[-3:]
    assert [w for w, _, _ in last] == pytest.approx([stronger / 4, stronger, weaker])
    assert last[0][1] == last[1][1] == last[2][1]
    assert starts[-4][1] != last[0][1]              # the digest does tell states apart


def test_default_decision_is_the_z_test(series41):
    _, tilts, data = series41
    rec = choose_weight_rfree(TomoProblem(data, tilts, **KW), {"prior": "itv"})
    took_weaker = rec["weight"] == rec["edge"]["weights"][1]
    assert took_weaker == (rec["edge"]["z"] > reg.EDGE_MIN_Z)
    off = choose_weight_rfree(TomoProblem(data, tilts, **KW), {"prior": "itv"}, edge=0)
    assert off["edge"] is None


def _settle(info):
    edge = info["auto"]["edge"]
    return EDGE_SETTLE_ITERATIONS["weaker" if info["auto"]["weight"] != edge["weights"][0] else "kept"]


@pytest.mark.parametrize("threshold", [-math.inf, math.inf])   # the weaker strength taken / the search's kept
def test_final_solve_counts_rfree_from_the_settle_iteration(series41, monkeypatch, threshold):
    truth, tilts, data = series41
    monkeypatch.setattr(reg, "EDGE_MIN_Z", threshold)
    solver, info = prepare_regularised(TomoProblem(data, tilts, **KW), prior="itv")
    settle = _settle(info)
    assert settle == EDGE_SETTLE_ITERATIONS["weaker" if threshold < 0 else "kept"]
    assert solver.rfree_start == settle and solver.rfree_patience == EDGE_PATIENCE
    assert solver.rfree_best_iteration == -1 and not solver.rfree_history   # the search's state: no candidate
    result = solver.run(settle + 60)
    checks = [i for i, _ in solver.rfree_history]
    assert checks and min(checks) == settle
    assert result.config["rfree_stop"]["start"] == settle
    assert result.config["rfree_stop"]["best_iteration"] >= settle
    if solver.stopped == "rfree":                              # stopped at the first check that did not improve
        assert len(checks) >= 2 and solver.rfree_history[-1][1] >= solver.rfree_best
    short = regularised(data, tilts, iterations=30, **KW)     # fewer than the settle: the last iterate
    assert short.iterations == 30 and short.config["rfree_stop"]["best_iteration"] == -1
    assert relative_error(result.volume, truth) < 0.5


def test_zero_weight_pixels_stay_unread_by_the_edge_check(series41):
    _, tilts, data = series41
    w = np.ones(data.shape, np.float32)
    w[:, :, -4:] = 0.0
    spoiled = data.copy()
    spoiled[:, :, -4:] = 1e6                                   # huge values where the weight is 0
    a = regularised(data, tilts, weights=w, iterations=100, **KW)
    b = regularised(spoiled, tilts, weights=w, iterations=100, **KW)
    assert a.config["auto"]["edge"] is not None
    assert a.config["auto"]["edge"] == b.config["auto"]["edge"]
    assert np.array_equal(a.volume, b.volume)


def test_state_keeps_the_rfree_start_for_an_exact_resume(series41):
    _, tilts, data = series41
    problem = TomoProblem(data, tilts, **KW)
    straight, info = prepare_regularised(problem, prior="itv")
    settle = _settle(info)
    weight = straight.weight
    straight.run(settle + 60)
    first, _ = prepare_regularised(problem, prior="itv")
    first.run(settle - 20)
    state = first.state()
    assert state["rfree_start"] == settle and state["rfree_patience"] == EDGE_PATIENCE
    resumed, _ = prepare_regularised(problem, prior="itv", prior_weight=weight, rfree_stop=True)
    assert resumed.rfree_start == 0 and resumed.rfree_patience == 3
    resumed.restore(state)
    assert resumed.rfree_start == settle and resumed.rfree_patience == EDGE_PATIENCE
    resumed.run(settle + 60)
    assert resumed.iteration == straight.iteration
    np.testing.assert_array_equal(resumed.host_volume(), straight.host_volume())
    assert resumed.rfree_history == straight.rfree_history


def test_cli_prints_and_records_the_edge_check(series41, tmp_path):
    import json

    import h5py
    from click.testing import CliRunner

    from fastem.cli.main import app

    _, tilts, data = series41
    src = tmp_path / "series.h5"
    with h5py.File(src, "w") as f:
        f["/exchange/data"] = data
        f["/exchange/theta"] = tilts
    r = CliRunner().invoke(app, ["tomo", str(src), "-o", str(tmp_path / "out.h5"), "--iterations", "100"])
    assert r.exit_code == 0, r.output
    assert "edge check (outermost 2 projections held out in the search): weights" in r.output
    with h5py.File(tmp_path / "out.h5", "r") as f:
        cfg = json.loads(f["/process/fastem/configuration"][()])
    edge = cfg["prior_auto"]["edge"]
    assert edge["projections"] == 2 and len(edge["weights"]) == 2 and len(edge["residuals"]) == 2
    assert cfg["prior_weight"] in edge["weights"]
    assert cfg["rfree_stop"]["start"] in EDGE_SETTLE_ITERATIONS.values()


def test_cli_default_run_with_the_edge_check_resumes_exactly(series41, tmp_path):
    """Interrupted in its final solve (5 iterations past the checkpoint at the earlier settle
    iteration, before any R-free stop can come) and resumed from that checkpoint: the volume of a
    straight run, bit for bit (the checkpoint holds the R-free start and patience)."""
    import h5py
    from click.testing import CliRunner

    from fastem.cli.main import app
    from fastem.tomo.solver import IterativeReconstruction

    _, tilts, data = series41
    src = tmp_path / "series.h5"
    with h5py.File(src, "w") as f:
        f["/exchange/data"] = data
        f["/exchange/theta"] = tilts
    straight, crashed = tmp_path / "s.h5", tmp_path / "c.h5"
    args = ["--iterations", "140", "--checkpoint-every", "10"]
    r = CliRunner().invoke(app, ["tomo", str(src), "-o", str(straight), *args])
    assert r.exit_code == 0, r.output
    original = IterativeReconstruction.iterate
    crash_at = min(EDGE_SETTLE_ITERATIONS.values()) + 5      # past a checkpoint, before any stop

    def crash(self):
        if getattr(self, "rfree_start", 0) and self.iteration == crash_at:
            raise RuntimeError("killed")
        return original(self)

    IterativeReconstruction.iterate = crash
    try:
        with pytest.raises(RuntimeError, match="killed"):
            CliRunner().invoke(app, ["tomo", str(src), "-o", str(crashed), *args], catch_exceptions=False)
    finally:
        IterativeReconstruction.iterate = original
    r = CliRunner().invoke(app, ["tomo", str(src), "-o", str(crashed), *args, "--resume"])
    assert r.exit_code == 0, r.output
    with h5py.File(straight, "r") as a, h5py.File(crashed, "r") as b:
        np.testing.assert_array_equal(a["/exchange/data"][()], b["/exchange/data"][()])


def test_edge_check_pieces_on_every_backend(series41, device):
    """One body for NumPy and CuPy (the ``gpu`` parameter skips without a device): the excluded
    pixels' residual against a float64 host reference, the weights restored by ``include_pixels``
    bit for bit, and a whole search with the edge check leaving the outermost projections fitted."""
    from fastem import backend

    _, tilts, data = series41
    problem = TomoProblem(data, tilts, device=device, **KW)
    solver = RegularisedReconstruction(problem, prior="itv", weight=0.3)
    for _ in range(5):
        solver.iterate()
    before = np.array(backend.to_device(solver.w, "cpu"), copy=True)
    edge = edge_projection_pixels(problem)
    solver.exclude_pixels(edge)
    got = solver.excluded_residual()
    volume = np.asarray(backend.to_device(solver.volume, "cpu"), dtype=np.float32)
    host = RegularisedReconstruction(TomoProblem(data, tilts, **KW), prior="itv", weight=0.3)
    projected = np.zeros(data.shape, np.float32)
    host.op.forward(volume, projected)
    host_data = np.asarray(backend.to_device(problem.data, "cpu"), dtype=np.float64)
    ref = float(((projected.astype(np.float64) - host_data)[edge] ** 2).sum()) / solver.scale ** 2
    assert got == pytest.approx(ref, rel=1e-4) and ref > 0
    solver.include_pixels()
    np.testing.assert_array_equal(np.asarray(backend.to_device(solver.w, "cpu")), before)
    rec = choose_weight_rfree(problem, {"prior": "itv"})
    assert rec["edge"]["pixels"] > 0 and len(rec["edge"]["residuals"]) == 2
    assert all(math.isfinite(v) and v > 0 for v in rec["edge"]["residuals"])
    w = np.asarray(backend.to_device(rec["solver"].w, "cpu"))
    ends = [int(np.argmin(tilts)), int(np.argmax(tilts))]
    assert (w[ends] > 0).sum() == rec["edge"]["pixels"]         # returned to the fit
