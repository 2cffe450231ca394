"""fastem.phase: the batched engine against the literal float64 NumPy reference, recovery of a
noise-free object, schedules, support, metrics, multi-start, checkpoint / resume, bad input."""

import warnings

import numpy as np
import pytest

from fastem import backend
from fastem.data import cdi_intensities, vesicle_2d, vesicle_3d
from fastem.errors import InputError
from fastem.phase import (PhaseConfig, align, autocorrelation_support, check_support, initial_phases, keep_best,
                          make_solver, prepare_problem, r_factor, r_real, retrieve, twin)
from fastem.phase import _reference as ref
from fastem.phase import schedules

ALGS = ["gps-f", "gps-r", "oss", "hio", "er"]


def two_vesicles(n=64):
    """Two different vesicles side by side: a support without a centre of symmetry (no twin)."""
    u = np.zeros((n, n))
    c = n // 2
    u[c - 16:c + 8, c - 14:c + 10] += vesicle_2d(24, seed=1)
    u[c + 4:c + 18, c + 6:c + 20] += vesicle_2d(14, seed=2)
    return u


@pytest.fixture(scope="module")
def noisy2d():
    return cdi_intensities(vesicle_2d(32, seed=0), r_noise=0.06, beamstop_radius=1.5, seed=0)


def _reference_runs(cdi, phases, **cfg):
    b = np.fft.ifftshift(np.sqrt(cdi.intensities))
    kn, sp = np.fft.ifftshift(cdi.known), np.fft.ifftshift(cdi.support)
    return [ref.reference_run(b, kn, sp, ph, **cfg) for ph in phases]


@pytest.mark.parametrize("algorithm,project", [(a, True) for a in ALGS] + [("gps-f", False)])
def test_engine_matches_literal_reference_2d(noisy2d, algorithm, project):
    """complex128 engine (2 FFTs + 2 fused kernels, dual carried in Fourier space) == the spec's
    six steps written out with numpy.fft, including stage restarts and best-iterate tracking."""
    cfg = dict(algorithm=algorithm, iterations=24, stages=3 if algorithm in ("gps-f", "gps-r", "oss") else 1,
               rfactor_every=2, sigma_schedule="0:0.01,0.5:0.3", project_output=project)
    prob = prepare_problem(noisy2d.intensities, noisy2d.known, noisy2d.support, dtype=np.complex128)
    phases = initial_phases(11, range(2), prob.shape)
    sol = make_solver(prob, 2, PhaseConfig(**cfg)).initialise(phases).run()
    its, rfs = sol.history()
    cfg["sigma_schedule"] = ((0.0, 0.01), (0.5, 0.3))
    for r, out in enumerate(_reference_runs(noisy2d, phases, **cfg)):
        assert np.array_equal(out["history_iterations"], its)
        np.testing.assert_allclose(rfs[:, r], out["history_rf"], rtol=1e-9)
        np.testing.assert_allclose(sol.best_image[r], out["best_image"], rtol=1e-8, atol=1e-9 * out["best_image"].max())
        assert sol.best_rf[r] == pytest.approx(out["best_rf"], rel=1e-9)


@pytest.mark.parametrize("algorithm", ["gps-f", "gps-r", "hio"])
def test_engine_matches_reference_3d_complex64(algorithm):
    cdi = cdi_intensities(vesicle_3d(12, seed=1, support_fraction=0.5), r_noise=0.05, beamstop_radius=1, seed=1)
    cfg = dict(algorithm=algorithm, iterations=12, stages=2 if algorithm != "hio" else 1, rfactor_every=3)
    prob = prepare_problem(cdi.intensities, cdi.known, cdi.support, dtype=np.complex64)
    phases = initial_phases(5, range(2), prob.shape)
    sol = make_solver(prob, 2, PhaseConfig(**cfg)).initialise(phases).run()
    _, rfs = sol.history()
    for r, out in enumerate(_reference_runs(cdi, phases, **cfg)):
        np.testing.assert_allclose(rfs[:, r], out["history_rf"], rtol=2e-4)
        np.testing.assert_allclose(sol.best_image[r], out["best_image"], atol=2e-4 * out["best_image"].max())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gps_f_recovers_noise_free_object(seed):
    u = two_vesicles()
    cdi = cdi_intensities(u, flux=1e12, read_noise=0.0, beamstop_radius=0, support_dilation=1, seed=0)
    res = retrieve(cdi.intensities, cdi.known, cdi.support, algorithm="gps-f", iterations=300, runs=24, keep=1,
                   seed=seed)
    assert res.final_rf.min() < 1e-3
    assert r_real(res.best, cdi.object) < 0.01


def test_iteration_count_and_history():
    cdi = cdi_intensities(vesicle_2d(16, seed=0), r_noise=0.05, beamstop_radius=1, seed=0)
    res = retrieve(cdi.intensities, cdi.known, cdi.support, algorithm="gps-r", iterations=40, stages=4,
                   rfactor_every=3, runs=3, keep=2, seed=4)
    # evaluations every 3 iterations inside each 10-iteration stage, plus each stage's last iteration
    expect = [i + 1 for a in range(0, 40, 10) for i in range(a, a + 10) if (i - a + 1) % 3 == 0 or i == a + 9]
    assert res.history_iterations.tolist() == expect
    assert res.history_rf.shape == (len(expect), 3)
    np.testing.assert_allclose(res.final_rf, res.history_rf.min(axis=0))
    assert res.kept.shape == (2, 16, 16) and res.kept_runs[0] == np.argmin(res.final_rf)


def test_same_seed_same_starts_for_every_batch_size():
    a = initial_phases(3, range(5), (6, 7))
    b = initial_phases(3, [3, 4], (6, 7))
    np.testing.assert_array_equal(a[3:], b)
    assert not np.allclose(a[0], a[1])


def test_checkpoint_resume_reproduces_uninterrupted_run(noisy2d):
    cfg = PhaseConfig(algorithm="gps-r", iterations=30, stages=3, rfactor_every=4)
    prob = prepare_problem(noisy2d.intensities, noisy2d.known, noisy2d.support)
    phases = initial_phases(2, range(2), prob.shape)
    full = make_solver(prob, 2, cfg).initialise(phases).run()
    states = []
    part = make_solver(prob, 2, cfg).initialise(phases)
    part.run(checkpoint_every=7, on_checkpoint=states.append, stop_at=17)
    assert [s["iteration"] for s in states] == [7, 14]
    resumed = make_solver(prob, 2, cfg).load_state_dict(states[-1]).run()
    np.testing.assert_array_equal(resumed.best_rf, full.best_rf)
    np.testing.assert_array_equal(resumed.best_image, full.best_image)
    np.testing.assert_array_equal(resumed.history()[1], full.history()[1])
    with pytest.raises(InputError, match="checkpoint is for"):
        make_solver(prob, 3, cfg).load_state_dict(states[-1])


# ---- schedules -----------------------------------------------------------------------------------
def test_filter_schedule_matches_oss_widths():
    widths = [schedules.oss_width_factor(l, 10) for l in range(1, 11)]
    np.testing.assert_allclose(widths, [(11 - l) * 0.2 for l in range(1, 11)])
    n = 64
    w = schedules.oss_filter((n, n), 10, 10, fft_layout=False)
    k = np.arange(n) - n // 2
    np.testing.assert_allclose(w[n // 2], np.exp(-k**2 / (2 * (0.2 * n) ** 2)))
    # the GPS-R filter is the OSS filter of width alpha / sqrt(s); GPS-F uses the same gamma_l
    s = 0.9
    np.testing.assert_allclose(schedules.gps_r_filter((n, n), 4, 10, s), schedules.oss_filter((n, n), 4, 10) ** s)
    g = schedules.gps_gamma(4, 10)
    wf = schedules.gps_f_weight((n, n), 4, 10, s, fft_layout=False)
    np.testing.assert_allclose(wf[n // 2], np.exp(-s * g * (k / n) ** 2))
    assert np.all(np.diff([schedules.gps_gamma(l, 10) for l in range(1, 11)]) > 0)  # stronger stage by stage


def test_schedules_match_reference_filters():
    for alg, fn in (("gps-f", schedules.gps_f_weight), ("gps-r", schedules.gps_r_filter)):
        for shape in ((16, 12), (7, 9, 5)):
            np.testing.assert_allclose(fn(shape, 3, 10, 0.9, 2.0), ref._filters(alg, shape, 3, 10, 0.9, 2.0))
    np.testing.assert_allclose(schedules.oss_filter((9, 8), 2, 10), ref._filters("oss", (9, 8), 2, 10, 0.9, 1.0))


def test_per_algorithm_defaults_of_gamma_scale_and_sigma():
    """None resolves to the algorithm's default (GPS-R: sigma 0.3 in the last 30 %; GPS-F and the
    rest: the thesis' schedule; filter x1 for both); explicit values win; the engine's defaults
    are the reference's (the reference writes them out on its own), iteration by iteration."""
    r, f = PhaseConfig(), PhaseConfig(algorithm="gps-f")
    assert r.algorithm == "gps-r" and r.gamma_scale == 1.0 and str(r.sigma_schedule) == "0:0.01,0.4:0.1,0.7:0.3"
    assert f.gamma_scale == 1.0 and str(f.sigma_schedule) == "0:0.01,0.4:0.1,0.7:1"
    assert PhaseConfig(algorithm="hio").gamma_scale == 1.0
    e = PhaseConfig(algorithm="gps-r", gamma_scale=0.5, sigma_schedule="0:0.2")
    assert e.gamma_scale == 0.5 and str(e.sigma_schedule) == "0:0.2"
    assert PhaseConfig(**{k: v for k, v in r.as_dict().items()}).as_dict() == r.as_dict()  # round trip
    cdi = cdi_intensities(vesicle_2d(20, seed=4), r_noise=0.04, beamstop_radius=1, seed=2)
    prob = prepare_problem(cdi.intensities, cdi.known, cdi.support, dtype=np.complex128)
    phases = initial_phases(3, range(1), prob.shape)
    for alg in ("gps-r", "gps-f"):
        # 20 iterations over 4 stages: the last 30 % runs at the final sigma
        sol = make_solver(prob, 1, PhaseConfig(algorithm=alg, iterations=20, stages=4, rfactor_every=1))
        sol.initialise(phases).run()
        out = _reference_runs(cdi, phases, algorithm=alg, iterations=20, stages=4, rfactor_every=1)[0]
        np.testing.assert_allclose(sol.history()[1][:, 0], out["history_rf"], rtol=1e-9)
    with pytest.raises(InputError, match="gamma_scale"):
        PhaseConfig(gamma_scale=-1.0)


def test_sigma_schedule_and_stages():
    sch = schedules.parse_sigma_schedule("0:0.01,0.4:0.1,0.7:1")
    assert [sch.value(i, 1000) for i in (0, 399, 400, 699, 700, 999)] == [0.01, 0.01, 0.1, 0.1, 1.0, 1.0]
    assert str(sch) == "0:0.01,0.4:0.1,0.7:1"
    assert schedules.parse_sigma_schedule("0.5").value(10, 20) == 0.5
    assert schedules.stage_bounds(25, 10)[:3] == [(0, 2), (2, 5), (5, 7)]
    for bad in ("0.2:0.1", "0:0.1,0.5", "0:-1", "x"):
        with pytest.raises(InputError):
            schedules.parse_sigma_schedule(bad)


# ---- support -----------------------------------------------------------------------------------
def test_autocorrelation_support_contains_the_object():
    obj = vesicle_2d(64, seed=3, support_fraction=0.45)
    cdi = cdi_intensities(obj, r_noise=0.05, beamstop_radius=2, seed=0)
    est = autocorrelation_support(cdi.intensities, cdi.known)
    truth = cdi.object > 0
    assert np.all(est[truth]), "estimated support misses object pixels"
    assert est.sum() < 2.5 * truth.sum()  # loose: the 3 px margin is wide at 64 px
    check_support(est, est.shape)


def test_check_support_errors():
    s = np.zeros((16, 16), bool)
    with pytest.raises(InputError, match="empty support"):
        check_support(s, s.shape)
    with pytest.raises(InputError, match="does not match"):
        check_support(s, (16, 15))
    big = np.ones((16, 16), bool)
    big[:, :7] = False
    with pytest.raises(InputError, match="larger than half the array"):
        check_support(big, big.shape)
    with pytest.raises(InputError, match="0/1 mask"):
        check_support(np.full((16, 16), 0.5), (16, 16))


# ---- metrics -----------------------------------------------------------------------------------
def test_alignment_removes_translation_and_twin(rng):
    u = two_vesicles()
    moved = np.roll(twin(u), (5, -3), axis=(0, 1)) * 2.5
    aligned, shift, flipped = align(moved, u)
    assert flipped
    np.testing.assert_allclose(aligned, 2.5 * u, atol=1e-12)
    assert r_real(moved, u) < 1e-12
    assert r_real(moved, u, remove_ambiguities=False) > 0.5
    noisy = u + 0.01 * rng.standard_normal(u.shape)
    direct = np.abs(noisy - u).sum() / u.sum()  # no shift, twin or scale to remove here
    assert r_real(noisy, u) == pytest.approx(direct, rel=0.02)


def test_r_factor_definition():
    u = two_vesicles()
    b = np.abs(np.fft.fftshift(np.fft.fftn(u)))
    assert r_factor(np.roll(u, 4, axis=1), b) < 1e-12
    assert r_factor(1.1 * u, b) == pytest.approx(0.1, rel=1e-9)
    known = np.ones(b.shape, bool)
    known[32, 32] = False
    assert r_factor(u + 1.0, b, known) < 1e-12  # a constant only changes the (unknown) zero frequency
    assert r_factor(u + 1.0, b) > 0.1


def test_keep_best_aligns_to_the_best_run():
    u = two_vesicles()
    imgs = np.stack([np.roll(u, 3, axis=0), twin(u), u * 1.0])
    kept, idx, mean, var = keep_best(imgs, np.array([0.3, 0.1, 0.2]), 2)
    assert idx.tolist() == [1, 2]
    np.testing.assert_allclose(kept[1], kept[0], atol=1e-12)
    np.testing.assert_allclose(var, 0, atol=1e-20)
    np.testing.assert_allclose(mean, twin(u), atol=1e-12)


# ---- bad input ---------------------------------------------------------------------------------
def test_bad_input():
    cdi = cdi_intensities(vesicle_2d(16, seed=0), r_noise=0.05, seed=0)
    inten = cdi.intensities.copy()
    inten[3, 4] = np.nan
    with pytest.raises(InputError, match=r"1 non-finite .*\(3, 4\)"):
        prepare_problem(inten, None, cdi.support)
    known = np.ones(inten.shape, bool)
    known[3, 4] = False
    prepare_problem(inten, known, cdi.support)  # a NaN on an unknown pixel is fine
    neg = cdi.intensities.copy()
    neg[0, 0] = -5
    with pytest.warns(UserWarning, match="1 negative intensities set to 0"):
        prepare_problem(neg, None, cdi.support)
    with pytest.raises(InputError, match="mask: shape"):
        prepare_problem(cdi.intensities, np.ones((16, 15), bool), cdi.support)
    with pytest.raises(InputError, match="support: shape"):
        prepare_problem(cdi.intensities, None, np.ones((15, 16), bool))
    with pytest.raises(InputError, match="2D or 3D"):
        prepare_problem(np.ones(16), None, None)
    with pytest.raises(InputError, match="no measured pixel"):
        prepare_problem(cdi.intensities, np.zeros((16, 16), bool), cdi.support)
    with pytest.raises(InputError, match="all measured intensities are zero"):
        prepare_problem(np.zeros((16, 16)), None, cdi.support)
    with pytest.raises(InputError, match="^algorithm 'raar'"):
        PhaseConfig(algorithm="raar")
    with pytest.raises(InputError, match="^t must be > 0, got 0"):
        PhaseConfig(t=0)
    with pytest.raises(InputError, match="^keep must be >= 1, got 0"):
        retrieve(cdi.intensities, support=cdi.support, keep=0)


def test_diverged_runs_are_ignored_with_a_warning(noisy2d):
    prob = prepare_problem(noisy2d.intensities, noisy2d.known, noisy2d.support)
    sol = make_solver(prob, 2, PhaseConfig(algorithm="hio", iterations=4, rfactor_every=1))
    sol.initialise(initial_phases(0, range(2), prob.shape))
    sol.run(stop_at=2)
    sol.buf[1] = np.nan
    sol.u[1] = np.nan
    with pytest.warns(RuntimeWarning, match="1 of 2 runs diverged"):
        sol.run()
    assert np.isfinite(sol.best_rf[0]) and np.isfinite(sol.best_rf[1])  # run 1's pre-divergence best is recorded
    assert sol.history()[1][-1, 1] == np.inf
    assert sol.diverged.tolist() == [False, True]  # ... but run 1 is never a result
    assert sol.final_rf()[0] == sol.best_rf[0] and sol.final_rf()[1] == np.inf


def test_all_runs_diverged_stop_early_with_a_full_history(noisy2d):
    prob = prepare_problem(noisy2d.intensities, noisy2d.known, noisy2d.support)
    sol = make_solver(prob, 2, PhaseConfig(algorithm="er", iterations=40, rfactor_every=4))
    sol.initialise(initial_phases(0, range(2), prob.shape))
    sol.run(stop_at=8)
    sol.buf[...] = np.nan
    with pytest.warns(RuntimeWarning, match="2 of 2 runs diverged"):
        sol.run()
    its, rfs = sol.history()
    assert sol.iteration == 40 and its.tolist() == list(range(4, 41, 4))
    assert np.all(np.isinf(rfs[2:])) and np.all(np.isfinite(rfs[:2]))


# ---- GPU ---------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("algorithm", ALGS)
def test_gpu_engine_matches_cpu(noisy2d, algorithm):
    cfg = PhaseConfig(algorithm=algorithm, iterations=12, stages=2 if algorithm in ("gps-f", "gps-r", "oss") else 1,
                      rfactor_every=2)
    results = []
    for dev in ("cpu", "cuda"):
        prob = prepare_problem(noisy2d.intensities, noisy2d.known, noisy2d.support, dtype=np.complex128, device=dev)
        sol = make_solver(prob, 3, cfg).initialise(initial_phases(0, range(3), prob.shape)).run()
        results.append((sol.history()[1], sol.best_images_centred()))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-6)
    np.testing.assert_allclose(results[1][1], results[0][1], atol=1e-6 * np.abs(results[0][1]).max())
    assert backend.cupy_available()


def test_r_noise_matches_the_simulation():
    from fastem.phase import r_noise

    cdi = cdi_intensities(vesicle_2d(32, seed=0), r_noise=0.08, beamstop_radius=1.5, seed=0)
    assert r_noise(cdi.magnitudes, cdi.b_true, cdi.known) == pytest.approx(cdi.r_noise, rel=1e-12)
    assert r_noise(cdi.magnitudes, cdi.b_true) > 0


def test_engine_module_is_a_deprecated_alias_of_solver():
    """Issue 18: ``fastem.phase.engine`` was renamed ``fastem.phase.solver``; the old name still
    imports, warns, and forwards every name (public and private) to the same objects."""
    import importlib
    import sys

    from fastem.phase import solver

    sys.modules.pop("fastem.phase.engine", None)
    with pytest.warns(DeprecationWarning, match="fastem.phase.solver"):
        old = importlib.import_module("fastem.phase.engine")
    for name in solver.__all__:
        assert getattr(old, name) is getattr(solver, name), name
    assert old._integer is solver._integer and old._half_q2 is solver._half_q2
    import fastem.phase as phase

    assert phase.Solver is solver.Solver and phase.PhaseConfig is solver.PhaseConfig


def test_metrics_does_not_import_the_synthetic_data_package():
    """Issue 18: ``fastem.phase.metrics`` (library) no longer imports ``fastem.data``; its
    ``r_noise`` is the same formula as ``fastem.data.r_noise_of``."""
    import ast
    from pathlib import Path

    from fastem.data import r_noise_of
    from fastem.phase import metrics

    tree = ast.parse(Path(metrics.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m and (m == "fastem.data" or m.startswith("fastem.data.")) for m in imported), imported
    r = np.random.default_rng(7)
    clean = r.random((12, 10)) + 0.5
    noisy = clean + 0.1 * r.standard_normal(clean.shape)
    known = r.random(clean.shape) > 0.2
    assert metrics.r_noise(noisy, clean, known) == pytest.approx(r_noise_of(noisy, clean, known), rel=1e-14)
    assert metrics.r_noise(noisy, clean) == pytest.approx(r_noise_of(noisy, clean, np.ones(clean.shape, bool)),
                                                          rel=1e-14)
    assert metrics.r_noise(noisy, clean) > 0.01
    assert np.isnan(metrics.r_noise(noisy, np.zeros_like(clean)))
