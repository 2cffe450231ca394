"""Complex-valued objects in phase retrieval (issue 15): the solvers with ``complex_object=True``
and a phase-range constraint, the ambiguities of a complex object (constant phase, conjugate
twin) in alignment, R_real and the kept average, checkpoints, and ``fastem phase --complex``
end to end (2D and 3D, estimated support)."""

import numpy as np
import pytest
from click.testing import CliRunner

from fastem.cli.main import app
from fastem.data import cdi_intensities, complex_particle, embed_centred, save_cdi, vesicle_2d
from fastem.errors import InputError
from fastem.io import read_cxi_reconstruction
from fastem.phase import PhaseConfig, initial_phases, keep_consistent, make_solver, prepare_problem, r_real
from fastem.phase.metrics import align, twin


def run_cli(*args):
    return CliRunner().invoke(app, ["--quiet", *map(str, args)])


@pytest.fixture(scope="module")
def complex_data():
    """A 24 px complex particle (phases -1..1 rad) in a 48x48 array, almost noise-free."""
    obj = embed_centred(complex_particle(24, seed=3, phase_range=(-1.0, 1.0)), (48, 48))
    return cdi_intensities(obj, flux=1e12, read_noise=0.0, beamstop_radius=0, support_dilation=1, seed=0)


@pytest.fixture(scope="module")
def real_data():
    obj = embed_centred(vesicle_2d(24, seed=1), (48, 48))
    return cdi_intensities(obj, r_noise=0.03, beamstop_radius=1.5, support_dilation=2, seed=0)


def _solve(cdi, algorithm, iterations, runs=2, seed=0, **options):
    prob = prepare_problem(cdi.intensities, cdi.known, cdi.support, dtype=np.complex128)
    cfg = PhaseConfig(algorithm=algorithm, iterations=iterations, **options)
    return make_solver(prob, runs, cfg).initialise(initial_phases(seed, range(runs), prob.shape)).run()


def test_complex_particle_phantom_and_its_intensities():
    obj = complex_particle(20, seed=2, phase_range=(-0.5, 0.8))
    inside = np.abs(obj) > 0
    assert obj.dtype == np.complex128 and inside.sum() > 40 and not inside[0, 0]
    ph = np.angle(obj[inside])
    assert ph.min() == pytest.approx(-0.5) and ph.max() == pytest.approx(0.8)
    assert np.abs(obj).max() == pytest.approx(1.0)
    np.testing.assert_array_equal(obj, complex_particle(20, seed=2, phase_range=(-0.5, 0.8)))  # deterministic
    assert complex_particle(10, ndim=3, seed=0).shape == (10, 10, 10)
    cdi = cdi_intensities(embed_centred(obj, (40, 40)), r_noise=0.05, beamstop_radius=1, seed=0)
    assert np.iscomplexobj(cdi.object) and cdi.support.sum() >= inside.sum()
    # |F u|^2 of a complex object is not centro-symmetric (a real object's is)
    p = np.abs(np.fft.fftn(obj)) ** 2
    assert not np.allclose(p, twin(p), rtol=1e-3)
    with pytest.raises(InputError, match="ndim"):
        complex_particle(10, ndim=4)


@pytest.mark.parametrize("algorithm,shrink_wrap", [("er", False), ("gps-f", False), ("gps-r", False),
                                                   ("gps-f", True)])
def test_a_zero_width_phase_range_gives_the_real_engine(real_data, algorithm, shrink_wrap):
    """A real non-negative object is the sector of width 0 at phase 0: ER and GPS with the polar
    dual step (real-space steps that are projections) follow the real engine's iterates, through a
    different R-factor path (the full complex spectrum instead of the real FFT's half)."""
    kw = dict(shrink_wrap=shrink_wrap, shrink_wrap_every=10) if shrink_wrap else {}
    real = _solve(real_data, algorithm, 60, **kw)
    if algorithm.startswith("gps"):
        kw["gps_dual"] = "polar"
    cplx = _solve(real_data, algorithm, 60, complex_object=True, phase_range=(0.0, 0.0), **kw)
    assert cplx.best_image.dtype == np.complex128 and real.best_image.dtype == np.float64
    np.testing.assert_allclose(np.stack(cplx.history_rf), np.stack(real.history_rf), rtol=1e-7, atol=1e-12)
    img_c, img_r = cplx.best_images_centred(), real.best_images_centred()
    np.testing.assert_allclose(img_c.real, img_r, atol=1e-9 * np.abs(img_r).max())
    assert np.abs(img_c.imag).max() <= 1e-9 * np.abs(img_r).max()


@pytest.mark.parametrize("algorithm", ["hio", "oss", "gps-f", "gps-r", "er"])
def test_complex_objects_are_reconstructed_and_the_real_engine_cannot(complex_data, algorithm):
    """16 starts x 1000 iterations on a noise-free 24 px particle: the run with the lowest R_F of
    HIO, OSS and GPS-F is the object (R_real < 5 %; measured 0.1 %, 0.7 %, 0.0 % on an AMD EPYC
    VM). Only some starts get there (3 of these 16 HIO starts on that VM), and which ones depends
    on the CPU's floating-point rounding (4 starts sufficed on the earlier VM and none did on the
    EPYC; `bench/phase_start_spread.py` prints every start), hence 16. GPS-R's best run
    fits the data (R_F < 1.5 %) but stays a mixture (R_real 12 %), ER stagnates: both are only
    required to fit and to respect the constraints."""
    its = 300 if algorithm == "er" else 1000
    runs = 4 if algorithm in ("er", "gps-r") else 16
    cplx = _solve(complex_data, algorithm, its, runs=runs, complex_object=True, phase_range=(-1.2, 1.2))
    imgs = cplx.best_images_centred()
    best = int(np.argmin(cplx.final_rf()))
    err = r_real(imgs[best], complex_data.object)
    rf = float(cplx.final_rf()[best])
    assert np.iscomplexobj(imgs) and np.all(np.isfinite(imgs))
    if algorithm in ("hio", "oss", "gps-f"):
        assert err < 0.05 and rf < 0.005, (err, rf)
    elif algorithm == "gps-r":
        assert rf < 0.015, rf
    # inside the support every phase respects the constraint (to round-off), outside it is 0
    supp = complex_data.support
    ph = np.angle(imgs[best][supp & (np.abs(imgs[best]) > 1e-9 * np.abs(imgs[best]).max())])
    assert ph.min() >= -1.2 - 1e-9 and ph.max() <= 1.2 + 1e-9
    assert np.all(imgs[best][~supp] == 0)
    if algorithm == "hio":  # a real, non-negative model cannot fit a complex object's data
        real = _solve(complex_data, algorithm, its, runs=4)
        rr = min(r_real(im, complex_data.object) for im in real.best_images_centred())
        assert rr > 2 * err and rr > 0.3 and real.final_rf().min() > 3 * rf


def test_without_a_phase_range_the_support_alone_is_used(complex_data):
    free = _solve(complex_data, "hio", 300, runs=3, complex_object=True)
    imgs = free.best_images_centred()
    best = int(np.argmin(free.final_rf()))
    assert free.final_rf()[best] < 0.05
    assert np.all(imgs[best][~complex_data.support] == 0)
    assert np.abs(np.angle(imgs[best][complex_data.support])).max() > 1.2  # phases are not confined


def test_align_r_real_and_the_kept_average_remove_the_constant_phase_and_the_conjugate_twin():
    rng = np.random.default_rng(0)
    truth = np.zeros((20, 22), complex)
    truth[5:13, 6:15] = rng.uniform(0.2, 1, (8, 9)) * np.exp(1j * rng.uniform(-1, 1, (8, 9)))
    copy = np.exp(0.7j) * np.roll(twin(truth), (3, -2), axis=(0, 1))
    aligned, shift, flipped = align(copy, truth)
    assert flipped and np.allclose(aligned, truth, atol=1e-12)
    assert r_real(copy, truth) == pytest.approx(0.0, abs=1e-12)
    assert r_real(copy * 2.5, truth) == pytest.approx(0.0, abs=1e-12)  # complex scale fitted
    assert r_real(copy, truth, remove_ambiguities=False) > 0.5
    # the plain twin u(-x) without the conjugate is NOT an ambiguity of a complex object
    assert r_real(np.roll(truth[::-1, ::-1], (1, 1), axis=(0, 1)), truth) > 0.1
    noise = rng.standard_normal(truth.shape) + 1j * rng.standard_normal(truth.shape)
    images = np.stack([truth, np.exp(-1.1j) * np.roll(truth, (1, 4), axis=(0, 1)), copy, noise])
    sel = keep_consistent(images, np.array([0.010, 0.011, 0.012, 0.013]), keep=4)
    assert list(sel.indices) == [0, 1, 2]
    assert [e["kept"] for e in sel.report] == [True, True, True, False]
    assert sel.report[2]["flipped"] and sel.report[1]["difference"] < 1e-12
    np.testing.assert_allclose(sel.mean, truth, atol=1e-12)
    assert sel.variance.dtype == np.float64 and sel.variance.max() < 1e-20


def test_real_images_keep_their_real_alignment():
    rng = np.random.default_rng(1)
    u = np.zeros((16, 16))
    u[4:10, 3:9] = rng.uniform(0, 1, (6, 6))
    aligned, _, flipped = align(np.roll(twin(u), (2, 5), axis=(0, 1)), u)
    assert flipped and aligned.dtype == np.float64 and np.allclose(aligned, u)


def test_checkpoint_resume_of_a_complex_run_is_exact(complex_data):
    prob = prepare_problem(complex_data.intensities, complex_data.known, complex_data.support, dtype=np.complex128)
    cfg = PhaseConfig(algorithm="gps-f", iterations=60, complex_object=True, phase_range=(-1.2, 1.2),
                      shrink_wrap=True, shrink_wrap_every=10)
    phases = initial_phases(4, range(2), prob.shape)
    full = make_solver(prob, 2, cfg).initialise(phases).run()
    part = make_solver(prob, 2, cfg).initialise(phases).run(stop_at=33)
    resumed = make_solver(prob, 2, cfg).load_state_dict(part.state_dict()).run()
    np.testing.assert_array_equal(resumed.best_image, full.best_image)
    np.testing.assert_array_equal(np.stack(resumed.history_rf), np.stack(full.history_rf))


def test_memory_model_counts_the_complex_arrays(complex_data):
    prob = prepare_problem(complex_data.intensities, complex_data.known, complex_data.support)
    for alg in ("gps-f", "hio", "oss"):
        cls = type(make_solver(prob, 1, PhaseConfig(algorithm=alg)))
        real = cls.bytes_per_run(prob, PhaseConfig(algorithm=alg))
        cplx = cls.bytes_per_run(prob, PhaseConfig(algorithm=alg, complex_object=True))
        # complex images (img, best_image), iterates and the full spectrum: more than the real arrays
        assert cplx > real + 2 * prob.npix * np.dtype(prob.rdtype).itemsize


def test_config_checks_name_the_parameter():
    with pytest.raises(InputError, match="phase_range .*complex_object=True"):
        PhaseConfig(phase_range=(-1, 1))
    with pytest.raises(InputError, match="complex_object must be True or False"):
        PhaseConfig(complex_object="yes")
    for bad in [(1.0, 0.0), (-2.0, 2.0), (0.0, float("nan")), (1.0,), "a"]:
        with pytest.raises(InputError, match="phase_range"):
            PhaseConfig(complex_object=True, phase_range=bad)
    cfg = PhaseConfig(complex_object=True, phase_range=(-np.pi / 2, np.pi / 2))
    assert cfg.as_dict()["phase_range"] == [-np.pi / 2, np.pi / 2] and cfg.as_dict()["complex_object"] is True


def test_cli_complex_3d_end_to_end_with_an_estimated_support(tmp_path):
    obj = embed_centred(complex_particle(10, ndim=3, seed=1, phase_range=(-0.8, 0.8), support_fraction=0.6),
                        (20, 20, 20))
    src = tmp_path / "in3d.cxi"
    save_cdi(src, cdi_intensities(obj, r_noise=0.02, beamstop_radius=0, seed=0))
    out = tmp_path / "out3d.cxi"
    r = run_cli("phase", src, "-o", out, "--complex", "--phase-range=-1.57:1.57", "--algorithm", "hio",
                "--iterations", 80, "--runs", 2, "--keep", 2)
    assert r.exit_code == 0, r.output
    rec = read_cxi_reconstruction(out)
    assert rec.image.shape == (20, 20, 20) and np.iscomplexobj(rec.image) and np.all(np.isfinite(rec.image))
    cfg = rec.provenance["configuration"]
    assert cfg["complex_object"] is True or cfg["complex_object"] == 1
    assert list(cfg["phase_range"]) == [-1.57, 1.57] and cfg["support"] == "autocorrelation estimate"
    assert cfg["shrink_wrap"] in (True, 1)  # the estimated support is refined by default
    assert np.isfinite(rec.results["r_real"])  # R_real against the complex ground truth


def test_cli_complex_2d_reconstructs_with_an_estimated_support(tmp_path, complex_data):
    src = tmp_path / "in.cxi"
    save_cdi(src, complex_data)
    out = tmp_path / "out.cxi"
    r = run_cli("phase", src, "-o", out, "--complex", "--phase-range=-1.2:1.2", "--algorithm", "hio",
                "--iterations", 300, "--runs", 16, "--keep", 2)
    assert r.exit_code == 0, r.output
    rec = read_cxi_reconstruction(out)
    assert rec.results["r_real_best"] < 0.25, rec.results["r_real_best"]


def test_cli_phase_range_errors_name_the_flags(tmp_path, complex_data):
    src = tmp_path / "in.cxi"
    save_cdi(src, complex_data)
    for args, needle in [(["--phase-range=-1:1"], "--complex"), (["--complex", "--phase-range", "1:0"], "--phase-range"),
                         (["--complex", "--phase-range=-2:2"], "--phase-range"),
                         (["--complex", "--phase-range", "x"], "--phase-range")]:
        r = run_cli("phase", src, "-o", tmp_path / "o.cxi", "--iterations", 3, *args)
        assert r.exit_code != 0 and needle in r.output, (args, r.output)
        assert not (tmp_path / "o.cxi").exists()


def test_guided_multistart_breeds_complex_images(complex_data):
    """The generations' breeding of complex runs: the geometric mean of the aligned images (a
    copy with another constant phase, shifted, or its conjugate twin breeds back the image)."""
    from fastem.phase.generations import breed_sqrt_ab, retrieve_generations

    u = complex_data.object
    for other in (np.exp(0.9j) * np.roll(u, (2, -3), axis=(0, 1)), np.exp(-2.0j) * twin(u)):
        np.testing.assert_allclose(breed_sqrt_ab(other, u), u, atol=1e-12)
    # phases 0.4 rad apart on one half of the object: the child's phase is half-way
    ramp = np.where(np.arange(u.shape[1]) < u.shape[1] // 2, 0.4, 0.0)[None, :]
    other = np.abs(u) * np.exp(1j * (np.angle(u) + ramp))
    a = align(other, u)[0]
    child = breed_sqrt_ab(other, u)
    inside = np.abs(u) > 0.1
    np.testing.assert_allclose(np.abs(child), np.abs(u), atol=1e-12)
    np.testing.assert_allclose(np.angle(child[inside] * np.conj(u[inside])),
                               0.5 * np.angle(a[inside] * np.conj(u[inside])), atol=1e-12)
    assert np.ptp(np.angle(a[inside] * np.conj(u[inside]))) == pytest.approx(0.4)
    prob = prepare_problem(complex_data.intensities, complex_data.known, complex_data.support)
    sel, rf, images = retrieve_generations(prob, PhaseConfig(algorithm="hio", iterations=60, complex_object=True,
                                                             phase_range=(-1.2, 1.2)), runs=3, generations=2)
    assert np.iscomplexobj(images) and np.all(np.isfinite(rf)) and np.iscomplexobj(sel.mean)


def test_generations_through_retrieve_and_the_cli(tmp_path, real_data):
    """``retrieve(..., generations=G)`` / ``fastem phase --generations G``: the same kept average
    as ``retrieve_generations`` and an R_F history over every generation."""
    from fastem.phase import retrieve
    from fastem.phase.generations import retrieve_generations

    prob = prepare_problem(real_data.intensities, real_data.known, real_data.support)
    cfg = PhaseConfig(algorithm="hio", iterations=40)
    res = retrieve(problem=prob, config=cfg, runs=3, keep=2, seed=1, generations=2)
    sel, rf, _ = retrieve_generations(prob, cfg, runs=3, generations=2, keep=2, seed=1)
    np.testing.assert_array_equal(res.image, sel.mean)
    np.testing.assert_array_equal(res.final_rf, rf)
    assert res.history_iterations[-1] == 40 and res.history_rf.shape == (len(res.history_iterations), 3)
    assert res.extra["generations"] == 2 and np.isfinite(res.extra["mean_rf"])
    with pytest.raises(InputError, match="runs must be >= 2"):
        retrieve(problem=prob, config=cfg, runs=1, generations=2)
    with pytest.raises(InputError, match="generations must be"):
        retrieve(problem=prob, config=cfg, runs=2, generations=0)

    src = tmp_path / "in.cxi"
    save_cdi(src, real_data)
    out = tmp_path / "g.cxi"
    r = run_cli("phase", src, "-o", out, "--algorithm", "hio", "--iterations", 40, "--runs", 3, "--keep", 2,
                "--seed", 1, "--support", f"{src}:/entry_1/sample_1/support", "--generations", 2)
    assert r.exit_code == 0, r.output
    rec = read_cxi_reconstruction(out)
    assert rec.provenance["configuration"]["generations"] == 2
    np.testing.assert_allclose(rec.image, res.image)
    assert rec.results["rf_history"].shape == res.history_rf.shape
    for args, flag in [(["--runs", 1], "--runs"), (["--runs", 2, "--scheduler", "local"], "--scheduler")]:
        r = run_cli("phase", src, "-o", tmp_path / "bad.cxi", "--iterations", 10, "--generations", 2, *args)
        assert r.exit_code != 0 and flag in r.output and "--generations" in r.output, r.output
        assert not (tmp_path / "bad.cxi").exists()


def test_cli_complex_default_is_gps_r_with_the_feedback_dual(tmp_path, complex_data):
    """`fastem phase --complex` runs the default GPS-R with the feedback dual step (recorded in the
    output's configuration; `--gps-dual polar` is recorded too) and reconstructs the 24 px particle
    from its tight support (R_real of the lowest-R_F run < 5 %; measured 0.3 %). Eight starts: with
    four, this small noise-free case is a lottery (a large share of the starts stagnate, with GPS-R's
    earlier settings too)."""
    src = tmp_path / "in.cxi"
    save_cdi(src, complex_data)
    supp = f"{src}:/entry_1/sample_1/support"
    r = run_cli("phase", src, "-o", tmp_path / "o.cxi", "--complex", "--phase-range=-1.2:1.2", "--support", supp,
                "--iterations", 600, "--runs", 8, "--keep", 2)
    assert r.exit_code == 0, r.output
    rec = read_cxi_reconstruction(tmp_path / "o.cxi")
    cfg = rec.provenance["configuration"]
    assert cfg["algorithm"] == "gps-r" and cfg["gps_dual"] == "feedback"
    assert rec.results["r_real_best"] < 0.05, rec.results["r_real_best"]
    r = run_cli("phase", src, "-o", tmp_path / "p.cxi", "--complex", "--phase-range=-1.2:1.2", "--support", supp,
                "--iterations", 20, "--gps-dual", "polar")
    assert r.exit_code == 0, r.output
    assert read_cxi_reconstruction(tmp_path / "p.cxi").provenance["configuration"]["gps_dual"] == "polar"
    r = run_cli("phase", src, "-o", tmp_path / "q.cxi", "--iterations", 5, "--gps-dual", "feedback")
    assert r.exit_code == 2 and "--gps-dual applies to complex-valued objects" in r.output
    assert not (tmp_path / "q.cxi").exists()


@pytest.mark.parametrize("algorithm,phase_range,shrink_wrap,gps_dual", [
    ("er", None, False, None), ("hio", None, False, None), ("oss", None, False, None), ("gps-f", None, False, None),
    ("gps-r", None, False, None), ("er", (-1.1, 0.9), False, None), ("hio", (-1.1, 0.9), False, None),
    ("oss", (-1.1, 0.9), False, None), ("gps-f", (-1.1, 0.9), False, None), ("gps-r", (-1.1, 0.9), False, None),
    ("gps-f", (-1.1, 0.9), True, None), ("hio", None, True, None), ("gps-f", (-1.1, 0.9), False, "polar"),
    ("gps-r", (-1.1, 0.9), False, "polar"), ("gps-f", (-1.1, 0.9), True, "polar")])
def test_complex_engine_matches_the_float64_reference(algorithm, phase_range, shrink_wrap, gps_dual):
    """complex128 engine (fused kernels, dual carried in Fourier space, full-spectrum R-factor)
    == the plain NumPy transcription with the constraint projection written with angles
    (``fastem.phase._reference``), with stage restarts, best-iterate tracking and shrink-wrap,
    on a noisy complex particle with a beamstop."""
    from fastem.phase import _reference as ref

    obj = embed_centred(complex_particle(14, seed=5, phase_range=(-0.9, 0.8)), (28, 28))
    cdi = cdi_intensities(obj, r_noise=0.05, beamstop_radius=1.5, support_dilation=2, seed=2)
    cfg = dict(algorithm=algorithm, iterations=24, stages=3 if algorithm in ("gps-f", "gps-r", "oss") else 1,
               rfactor_every=2, sigma_schedule="0:0.01,0.5:0.3", complex_object=True, phase_range=phase_range,
               gps_dual=gps_dual)
    if shrink_wrap:
        cfg.update(shrink_wrap=True, shrink_wrap_every=5)
    prob = prepare_problem(cdi.intensities, cdi.known, cdi.support, dtype=np.complex128)
    phases = initial_phases(7, range(2), prob.shape)
    sol = make_solver(prob, 2, PhaseConfig(**cfg)).initialise(phases).run()
    its, rfs = sol.history()
    cfg["sigma_schedule"] = ((0.0, 0.01), (0.5, 0.3))
    b = np.fft.ifftshift(np.sqrt(cdi.intensities))
    kn, sp = np.fft.ifftshift(cdi.known), np.fft.ifftshift(cdi.support)
    for r in range(2):
        out = ref.reference_run(b, kn, sp, phases[r], **cfg)
        assert np.array_equal(out["history_iterations"], its)
        np.testing.assert_allclose(rfs[:, r], out["history_rf"], rtol=1e-8)
        scale = np.abs(out["best_image"]).max()
        np.testing.assert_allclose(sol.best_image[r], out["best_image"], rtol=1e-7, atol=1e-8 * scale)
        if shrink_wrap:
            np.testing.assert_array_equal(np.fft.ifftshift(sol.supports_centred()[r]), out["support"])


def test_cli_resume_of_a_complex_run_is_exact_and_refuses_other_object_settings(tmp_path, complex_data):
    from test_phase_cli import _Killed, _KillAfter

    from fastem.phase.job import phase_file

    src = tmp_path / "in.cxi"
    save_cdi(src, complex_data)
    kw = dict(algorithm="oss", iterations=40, runs=2, keep=2, seed=1, checkpoint_every=10, complex_object=True,
              phase_range=(-1.2, 1.2), support=f"{src}:/entry_1/sample_1/support")
    full, _ = phase_file(src, tmp_path / "full.cxi", **kw)
    out = tmp_path / "part.cxi"
    with pytest.raises(_Killed):
        phase_file(src, out, progress=_KillAfter(25), **kw)
    base = ["phase", src, "-o", out, "--algorithm", "oss", "--iterations", 40, "--runs", 2, "--keep", 2, "--seed", 1,
            "--checkpoint-every", 10, "--support", f"{src}:/entry_1/sample_1/support", "--resume"]
    for extra, flag in [(["--complex", "--phase-range=-1:1"], "--phase-range"), ([], "--complex")]:
        r = run_cli(*base, *extra)
        assert r.exit_code != 0 and "cannot resume" in r.output and flag in r.output, r.output
    r = run_cli(*base, "--complex", "--phase-range=-1.2:1.2")
    assert r.exit_code == 0, r.output
    res = read_cxi_reconstruction(out)
    np.testing.assert_array_equal(res.results["final_rf"], full.final_rf)
    np.testing.assert_array_equal(res.image, full.image)


def test_complex_runs_split_into_chunks_give_the_single_batch_result(complex_data):
    from fastem.phase import retrieve

    prob = prepare_problem(complex_data.intensities, complex_data.known, complex_data.support)
    cfg = PhaseConfig(algorithm="hio", iterations=30, complex_object=True, phase_range=(-1.2, 1.2))
    whole = retrieve(problem=prob, config=cfg, runs=5, keep=3, seed=4)
    per_run = type(make_solver(prob, 1, cfg)).bytes_per_run(prob, cfg)
    split = retrieve(problem=prob, config=cfg, runs=5, keep=3, seed=4, max_batch_bytes=2 * per_run)
    assert len(split.extra["chunks"]) == 3 and len(whole.extra["chunks"]) == 1
    np.testing.assert_array_equal(split.final_rf, whole.final_rf)
    np.testing.assert_array_equal(split.image, whole.image)
    assert np.iscomplexobj(split.kept) and split.kept.shape == (len(split.kept_runs), 48, 48)


def test_gps_dual_defaults_and_errors():
    assert PhaseConfig().gps_dual == "polar"
    assert PhaseConfig(complex_object=True).gps_dual == "feedback"
    assert PhaseConfig(complex_object=True, gps_dual="polar").gps_dual == "polar"
    assert PhaseConfig(complex_object=True).as_dict()["gps_dual"] == "feedback"
    with pytest.raises(InputError, match="gps_dual must be 'feedback' or 'polar'"):
        PhaseConfig(complex_object=True, gps_dual="moreau")
    with pytest.raises(InputError, match="gps_dual='feedback' is for complex-valued objects"):
        PhaseConfig(gps_dual="feedback")


def test_the_feedback_dual_lets_gps_reconstruct_where_the_polar_one_stagnates():
    """Noise-free 64^2 complex particle (the grid's, phases -1..1 rad), tight support, phase range
    (-pi/2, pi/2), 8 starts x 600 iterations: with the polar dual step the starts stagnate in
    mixtures (kept mean R_real 50 % when this was written), with the feedback step the kept mean
    is the object (measured 0.08 %)."""
    from bench.phase_grid import make_data, make_object, make_support

    cdi = make_data(make_object("complex", 64), 0.0, "none", 0)
    prob = prepare_problem(cdi.intensities, cdi.known, make_support("tight", cdi))
    phases = initial_phases(0, range(8), prob.shape)
    errs = {}
    for dual in ("polar", "feedback"):
        cfg = PhaseConfig(algorithm="gps-f", iterations=600, complex_object=True, phase_range=(-np.pi / 2, np.pi / 2),
                          gps_dual=dual)
        sol = make_solver(prob, 8, cfg).initialise(phases).run()
        sel = keep_consistent(sol.best_images_centred(), sol.final_rf(), 3)
        errs[dual] = r_real(sel.mean, cdi.object)
    assert errs["feedback"] < 0.02 and errs["polar"] > 0.1, errs
