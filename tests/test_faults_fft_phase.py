"""Fault cases of the FFT layer and the phase solvers (issue 11).

* shared work buffers: solvers of one shape interleaved or run in threads, FFTs from several
  threads, the deprecated shared ``buffer``;
* fastmath: no kernel assumes "no NaN / no inf"; NaN reaches the divergence checks;
* diverged runs are never kept; all diverged -> ``NonFiniteResultError``; huge or tiny
  intensities are scaled internally and give the unscaled problem's results;
* API misuse of ``retrieve`` / ``prepare_problem`` / ``PhaseConfig`` / ``fastem.fft``: one-line
  ``InputError`` naming the parameter;
* FFTW wisdom: never unpickled, untrusted folders and files ignored, corrupt files ignored,
  failed saves and dead processes leave no temporaries;
* the CLI: a planted pickle in ``$FASTEM_CACHE_DIR`` never runs during ``fastem phase``, and
  ``fastem phase`` on intensities of 1e300 writes a finite result.
"""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

from fastem import fft as F
from fastem.config import settings
from fastem.data import cdi_intensities, vesicle_2d
from fastem.errors import InputError, NonFiniteResultError
from fastem.phase import PhaseConfig, initial_phases, make_solver, prepare_problem, retrieve
from fastem.phase import multistart as ms

from fault_tools import assert_clean_error, run_cli

KERNELS = Path(__file__).resolve().parents[1] / "kernels"


@pytest.fixture(scope="module")
def cdi():
    return cdi_intensities(vesicle_2d(24, seed=1), r_noise=0.05, beamstop_radius=1.5, seed=3)


def _solve(problem, seed, config, runs=2):
    sol = make_solver(problem, runs, config)
    sol.initialise(initial_phases(seed, range(runs), problem.shape))
    return sol


# ---- shared work buffers ---------------------------------------------------------------------
def test_interleaved_solvers_of_one_shape_equal_each_alone(cdi):
    cfg = PhaseConfig(algorithm="hio", iterations=30, rfactor_every=3)
    prob = prepare_problem(cdi.intensities, cdi.known, cdi.support)
    alone = _solve(prob, 0, cfg).run()
    first = _solve(prob, 0, cfg)
    second = _solve(prob, 1, cfg)  # created (and initialised) before the first one runs
    for stop in range(5, 31, 5):  # alternate: a few iterations of each
        first.run(stop_at=stop)
        second.run(stop_at=stop)
    other = _solve(prob, 1, cfg).run()
    np.testing.assert_array_equal(first.history()[1], alone.history()[1])
    np.testing.assert_array_equal(first.best_images_centred(), alone.best_images_centred())
    np.testing.assert_array_equal(second.history()[1], other.history()[1])
    assert not np.array_equal(first.history()[1], second.history()[1])  # they did differ
    assert first.plan is not second.plan and first.buf is not second.buf


@pytest.mark.parametrize("algorithm", ["gps-r", "oss"])
def test_solvers_in_threads_equal_sequential_runs(cdi, algorithm):
    cfg = PhaseConfig(algorithm=algorithm, iterations=24, stages=2, rfactor_every=4)
    prob = prepare_problem(cdi.intensities, cdi.known, cdi.support)
    seeds = [0, 1, 2]
    sequential = [retrieve(problem=prob, config=cfg, runs=2, keep=2, seed=s) for s in seeds]
    results: dict = {}
    errors: list = []

    def work(s):
        try:
            results[s] = retrieve(problem=prob, config=cfg, runs=2, keep=2, seed=s)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in seeds]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for s, ref in zip(seeds, sequential):
        np.testing.assert_array_equal(results[s].final_rf, ref.final_rf)
        np.testing.assert_array_equal(results[s].image, ref.image)


def test_chunks_do_not_serialise_on_a_process_lock():
    assert not hasattr(ms, "_CHUNK_LOCK")


@pytest.mark.parametrize("func,make", [
    ("fftn", lambda r: r.standard_normal((6, 24, 20)) + 1j * r.standard_normal((6, 24, 20))),
    ("ifft2", lambda r: r.standard_normal((6, 24, 20)) + 1j * r.standard_normal((6, 24, 20))),
    ("rfftn", lambda r: r.standard_normal((6, 24, 20))),
    ("irfftn", lambda r: np.fft.rfftn(r.standard_normal((6, 24, 20)))),
])
def test_fft_functions_from_many_threads_are_correct(rng, func, make):
    ref_f = getattr(np.fft, func)
    inputs = [make(np.random.default_rng(k)) for k in range(8)]
    kwargs = {"s": (6, 24, 20), "axes": (0, 1, 2)} if func == "irfftn" else {}
    expected = [ref_f(x, **kwargs) for x in inputs]
    barrier = threading.Barrier(len(inputs))
    got: dict = {}

    def work(k):
        barrier.wait()
        for _ in range(5):
            got[k] = getattr(F, func)(inputs[k], **kwargs)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, ref in enumerate(expected):
        np.testing.assert_allclose(got[k], ref, rtol=1e-10, atol=1e-9)


def test_smooth_rows_from_many_threads_equals_sequential():
    from fastem.optim.smoothing import smooth_rows

    inputs = [np.random.default_rng(k).standard_normal((16, 96)) for k in range(6)]
    expected = [smooth_rows(x, sigma=2.0) for x in inputs]
    barrier = threading.Barrier(len(inputs))
    got: dict = {}

    def work(k):
        barrier.wait()
        for _ in range(10):
            got[k] = smooth_rows(inputs[k], sigma=2.0)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, ref in enumerate(expected):
        np.testing.assert_array_equal(got[k], ref)


def test_shared_plan_buffer_is_deprecated_private_buffer_is_not(rng):
    shared = F.get_plan((10, 12), np.complex128)
    assert shared.shared
    with pytest.warns(DeprecationWarning, match="new_plan"):
        shared.buffer
    with pytest.warns(DeprecationWarning, match="new_plan"):
        shared.forward()
    own = F.new_plan((10, 12), np.complex128)
    assert not own.shared and own is not F.new_plan((10, 12), np.complex128)
    x = rng.standard_normal((10, 12)) + 1j * rng.standard_normal((10, 12))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        own.buffer[...] = x
        np.testing.assert_allclose(own.forward(), np.fft.fft2(x), rtol=1e-12, atol=1e-10)
        out = np.empty_like(x)
        shared.forward(x.copy(), out)  # own arrays on a shared plan: no warning
    np.testing.assert_allclose(out, np.fft.fft2(x), rtol=1e-12, atol=1e-10)


# ---- fastmath -----------------------------------------------------------------------------------
def test_no_kernel_assumes_finite_math():
    offenders = [p.name for p in KERNELS.glob("*.py") if re.search(r"fastmath\s*=\s*True", p.read_text())]
    assert offenders == []
    from kernels._numba_flags import FASTMATH

    assert not FASTMATH & {"fast", "nnan", "ninf"}


def test_nan_iterate_reaches_the_rfactor(cdi):
    prob = prepare_problem(cdi.intensities, cdi.known, cdi.support)
    sol = _solve(prob, 0, PhaseConfig(algorithm="gps-f", iterations=6, stages=1, rfactor_every=1))
    sol.run(stop_at=2)
    sol.z[1] = np.inf
    sol.buf[1] = np.nan
    with pytest.warns(RuntimeWarning, match="1 of 2 runs diverged"):
        sol.run()
    assert sol.diverged.tolist() == [False, True]
    assert np.isfinite(sol.final_rf()[0]) and sol.final_rf()[1] == np.inf


# ---- diverged runs and huge data ------------------------------------------------------------
def _nan_phases(bad_runs):
    def phases(seed, run_indices, shape):
        out = initial_phases(seed, run_indices, shape)
        for j, r in enumerate(run_indices):
            if r in bad_runs:
                out[j] = np.nan
        return out
    return phases


def test_a_diverged_run_is_never_kept(cdi, monkeypatch):
    monkeypatch.setattr(ms, "initial_phases", _nan_phases({0}))
    with pytest.warns(RuntimeWarning, match="diverged"):
        res = retrieve(cdi.intensities, cdi.known, cdi.support, algorithm="hio", iterations=12, runs=3, keep=3,
                       keep_tolerance=None)   # divergence alone: the consistency filter is tested elsewhere
    assert res.final_rf[0] == np.inf and 0 not in res.kept_runs.tolist()
    assert len(res.kept_runs) == 2 and np.all(np.isfinite(res.kept_rf))
    assert np.all(np.isfinite(res.image)) and np.all(np.isfinite(res.best))


@pytest.mark.parametrize("max_batch_bytes", [None, 1])  # one chunk; one run per chunk
def test_all_runs_diverged_raise(cdi, monkeypatch, max_batch_bytes):
    monkeypatch.setattr(ms, "initial_phases", _nan_phases({0, 1}))
    with pytest.warns(RuntimeWarning, match="diverged"), \
            pytest.raises(NonFiniteResultError, match=r"^phase retrieval diverged: all 2 run\(s\) of er .*try"):
        retrieve(cdi.intensities, cdi.known, cdi.support, algorithm="er", iterations=8, runs=2,
                 max_batch_bytes=max_batch_bytes)


@pytest.mark.parametrize("factor_log2,dtype", [
    (1000, np.complex64), (1000, np.complex128),  # intensities ~1e300: b^2 overflows any float
    (140, np.complex64),  # intensities ~1e42: float32 overflows
    (-1000, np.complex64), (-200, np.complex64),  # intensities ~1e-300, ~1e-60: underflow
])
def test_huge_and_tiny_intensities_scale_exactly(cdi, factor_log2, dtype):
    kw = dict(algorithm="gps-f", iterations=20, stages=2, rfactor_every=5, runs=2, keep=2, dtype=dtype)
    ref = retrieve(cdi.intensities, cdi.known, cdi.support, **kw)
    res = retrieve(cdi.intensities * 2.0**factor_log2, cdi.known, cdi.support, **kw)
    assert np.all(np.isfinite(res.final_rf)) and np.all(np.isfinite(res.image))
    np.testing.assert_allclose(res.final_rf, ref.final_rf, rtol=1e-5)
    np.testing.assert_allclose(res.image * 2.0**(-factor_log2 / 2), ref.image, rtol=1e-4,
                               atol=1e-5 * np.abs(ref.image).max())


def test_checkpoint_best_is_in_data_units_and_skips_diverged(cdi):
    prob = prepare_problem(cdi.intensities * 2.0**900, cdi.known, cdi.support)
    assert prob.magnitude_scale != 1.0
    sol = _solve(prob, 0, PhaseConfig(algorithm="er", iterations=6, rfactor_every=2)).run()
    state = sol.state_dict()
    image, rf = ms.checkpoint_best(state)
    best = int(np.argmin(sol.best_rf))
    np.testing.assert_array_equal(image, sol.best_images_centred([best])[0])
    state["diverged"] = np.array([best == 0, best == 1], np.uint8)
    assert ms.checkpoint_best(state)[1] == float(sol.best_rf[1 - best])


# ---- API misuse ---------------------------------------------------------------------------------
def _I(cdi):
    return cdi.intensities


API_CASES = [
    ("intensities None", lambda c: retrieve(None), r"^intensities must be an array"),
    ("complex intensities", lambda c: retrieve(_I(c).astype(complex), support=c.support), "must be real"),
    ("string intensities", lambda c: retrieve(np.full((8, 8), "a"), support=c.support), "real numeric array"),
    ("1D intensities", lambda c: retrieve(_I(c)[0], support=None), "2D or 3D"),
    ("runs 0", lambda c: retrieve(_I(c), support=c.support, runs=0), r"^runs must be >= 1, got 0"),
    ("runs -1", lambda c: retrieve(_I(c), support=c.support, runs=-1), r"^runs must be >= 1, got -1"),
    ("runs 1.5", lambda c: retrieve(_I(c), support=c.support, runs=1.5), r"^runs must be an integer"),
    ("runs str", lambda c: retrieve(_I(c), support=c.support, runs="3"), r"^runs must be an integer"),
    ("runs None", lambda c: retrieve(_I(c), support=c.support, runs=None), r"^runs must be an integer"),
    ("keep 0", lambda c: retrieve(_I(c), support=c.support, keep=0), r"^keep must be >= 1, got 0"),
    ("seed -1", lambda c: retrieve(_I(c), support=c.support, seed=-1), r"^seed must be >= 0, got -1"),
    ("seed list", lambda c: retrieve(_I(c), support=c.support, seed=[1]), r"^seed must be an integer"),
    ("checkpoint_every -1", lambda c: retrieve(_I(c), support=c.support, checkpoint_every=-1),
     r"^checkpoint_every must be >= 0"),
    ("max_batch_bytes 0", lambda c: retrieve(_I(c), support=c.support, max_batch_bytes=0), r"^max_batch_bytes must"),
    ("config str", lambda c: retrieve(_I(c), support=c.support, config="hio"), r"^config must be a PhaseConfig"),
    ("problem str", lambda c: retrieve(problem="x"), r"^problem must be a PhaseProblem"),
    ("unknown option", lambda c: retrieve(_I(c), support=c.support, iters=5), r"unknown option 'iters'"),
    ("on_checkpoint", lambda c: retrieve(_I(c), support=c.support, on_checkpoint=3), r"^on_checkpoint must be"),
    ("beta nan", lambda c: PhaseConfig(beta=float("nan")), r"^beta must be a finite number"),
    ("t inf", lambda c: PhaseConfig(t=float("inf")), r"^t must be a finite number"),
    ("s str", lambda c: PhaseConfig(s="1"), r"^s must be a finite number"),
    ("iterations None", lambda c: PhaseConfig(iterations=None), r"^iterations must be an integer"),
    ("iterations 0", lambda c: PhaseConfig(iterations=0), r"^iterations must be >= 1, got 0"),
    ("stages 0", lambda c: PhaseConfig(stages=0), r"^stages must be >= 1"),
    ("algorithm None", lambda c: PhaseConfig(algorithm=None), r"^algorithm None"),
    ("shrink_wrap_sigma", lambda c: PhaseConfig(shrink_wrap_sigma=None), r"^shrink_wrap_sigma must be"),
    ("sigma_schedule ints", lambda c: PhaseConfig(sigma_schedule=[1, 2]), r"^sigma_schedule \[1, 2\]: expected"),
    ("sigma_schedule object", lambda c: PhaseConfig(sigma_schedule=object()), r"^sigma_schedule <object"),
    ("executor junk", lambda c: retrieve(_I(c), support=c.support, executor=3), r"^executor must be"),
    ("initial_phases seed", lambda c: initial_phases(-1, range(2), (4, 4)), r"^seed must be an integer >= 0"),
    ("make_solver runs", lambda c: make_solver(prepare_problem(_I(c), support=c.support), 0, PhaseConfig()),
     r"^runs must be >= 1, got 0"),
    ("prepare None", lambda c: prepare_problem(None), r"^intensities must be an array"),
    ("prepare dtype", lambda c: prepare_problem(_I(c), dtype="float32"), r"^dtype must be complex64"),
    ("prepare dtype junk", lambda c: prepare_problem(_I(c), dtype="junk"), r"^dtype must be complex64"),
    ("prepare known str", lambda c: prepare_problem(_I(c), np.full(_I(c).shape, "x")), r"^mask \(known\) must be"),
    ("prepare known object", lambda c: prepare_problem(_I(c), object()), r"^mask \(known\) must be"),
    ("prepare threshold", lambda c: prepare_problem(_I(c), support_threshold=2), r"^support_threshold must be"),
    ("prepare complex", lambda c: prepare_problem(_I(c) + 0j), r"must be real"),
    ("get_plan shape None", lambda c: F.get_plan(None, np.complex64), r"^shape must be"),
    ("get_plan shape 0", lambda c: F.get_plan((0, 4), np.complex64), r"^shape must have every length >= 1"),
    ("get_plan shape float", lambda c: F.get_plan((4.5, 4), np.complex64), r"^shape must be"),
    ("get_plan dtype int", lambda c: F.get_plan((4, 4), np.int32), r"^dtype must be a float or complex"),
    ("get_plan dtype junk", lambda c: F.get_plan((4, 4), "junk"), r"^dtype must be a float or complex"),
    ("get_plan axes range", lambda c: F.get_plan((4, 4), np.complex64, axes=(5,)), r"^axes 5 is out of range"),
    ("get_plan axes repeat", lambda c: F.get_plan((4, 4), np.complex64, axes=(0, -2)), r"^axes has a repeated"),
    ("new_plan axes str", lambda c: F.new_plan((4, 4), np.complex64, axes="x"), r"^axes must"),
    ("fftn None", lambda c: F.fftn(None), r"^fftn: x must be a numeric array, got NoneType"),
    ("fftn str", lambda c: F.fftn(np.array(["a", "b"])), r"^fftn: x must be a numeric array"),
    ("fftn scalar", lambda c: F.fftn(3.0), r"^fftn: x must have at least one dimension"),
    ("fftn empty", lambda c: F.fftn(np.zeros((0, 3))), r"^fftn: x is empty"),
    ("fftn norm", lambda c: F.fftn(np.ones(4), norm="sideways"), r"^norm must be"),
    ("fftn out", lambda c: F.fftn(np.ones(4), out=np.ones(5, complex)), r"^fftn: out must be"),
    ("rfftn complex", lambda c: F.rfftn(np.ones(4, complex)), r"^rfftn: x must be real"),
    ("irfft n 0", lambda c: F.irfft(np.ones(3, complex), n=0), r"^irfft: n must be"),
    ("irfftn s", lambda c: F.irfftn(np.ones((4, 3), complex), s=(4, 9)), r"^irfftn: length"),
    ("plan forward list", lambda c: F.new_plan((4,), np.complex128).forward([1, 2, 3, 4]), r"input must be an array"),
]


@pytest.mark.parametrize("name,call,match", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_misuse_is_a_one_line_input_error(cdi, name, call, match):
    with pytest.raises(InputError, match=match) as info:
        call(cdi)
    assert "\n" not in str(info.value)


# ---- FFTW wisdom ------------------------------------------------------------------------------
class _Payload:
    """Unpickling this creates a marker file: it must never happen."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    if F.provider("cpu") != "pyfftw":
        pytest.skip("pyFFTW not installed")
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    monkeypatch.setattr(settings, "cache_dir", folder)
    monkeypatch.setitem(F._wisdom_state, "loaded", False)
    monkeypatch.setitem(F._wisdom_state, "warned", set())
    imported = []
    monkeypatch.setattr(F._pyfftw, "import_wisdom", lambda w: imported.append(w) or (True, True, True))
    return folder, imported


def _valid_wisdom():
    return F.encode_wisdom(F._pyfftw.export_wisdom())


def test_planted_pickle_never_runs(cache, tmp_path):
    folder, imported = cache
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Payload(marker))
    (folder / F._wisdom_path().name.replace(".bin", ".pickle")).write_bytes(payload)
    F._wisdom_path().write_bytes(payload)
    F._wisdom_path().chmod(0o600)
    F.new_plan((12, 14), np.complex64)
    F.fftn(np.ones((12, 14)))
    assert not marker.exists() and imported == []


@pytest.mark.parametrize("corrupt", [
    lambda w: w[:-7],  # truncated
    lambda w: w[:-3] + b"xyz",  # checksum mismatch
    lambda w: b"NOT-FASTEM" + w[10:],  # wrong magic
    lambda w: b"",  # empty
    lambda w: os.urandom(300),  # garbage
])
def test_corrupt_wisdom_is_ignored(cache, corrupt):
    folder, imported = cache
    F._wisdom_path().write_bytes(corrupt(_valid_wisdom()))
    F._wisdom_path().chmod(0o600)
    plan = F.new_plan((10, 6), np.complex64)
    assert imported == [] and plan.n == 60


def test_valid_wisdom_is_imported(cache):
    folder, imported = cache
    F._wisdom_path().write_bytes(_valid_wisdom())
    F._wisdom_path().chmod(0o600)
    F.new_plan((10, 6), np.complex64)
    assert len(imported) == 1 and len(imported[0]) == 3


@pytest.mark.parametrize("target,mode,why", [("folder", 0o777, "writable by others"),
                                             ("folder", 0o770, "writable by its group"),
                                             ("file", 0o666, "writable by others")])
def test_writable_by_others_is_ignored(cache, target, mode, why):
    folder, imported = cache
    F._wisdom_path().write_bytes(_valid_wisdom())
    F._wisdom_path().chmod(0o600)
    (folder if target == "folder" else F._wisdom_path()).chmod(mode)
    with pytest.warns(F.UntrustedCacheWarning, match=why):
        F.new_plan((10, 6), np.complex64)
    assert imported == []
    if target == "folder":  # nothing is written into an untrusted folder either
        before = F._wisdom_path().read_bytes()
        F._wisdom_path().chmod(0o600)
        F._wisdom_state["dirty"] = True
        F.save_wisdom()
        assert F._wisdom_path().read_bytes() == before


def test_symlinked_wisdom_is_ignored(cache, tmp_path):
    folder, imported = cache
    real = tmp_path / "elsewhere.bin"
    real.write_bytes(_valid_wisdom())
    F._wisdom_path().symlink_to(real)
    F.new_plan((10, 6), np.complex64)
    assert imported == []


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_failed_save_and_dead_processes_leave_no_temporaries(cache, monkeypatch):
    folder, _ = cache
    name = F._wisdom_path().name
    stale = [folder / f"{name}.{_dead_pid()}.tmp", folder / f"{name.replace('.bin', '.pickle')}.{_dead_pid()}.tmp"]
    live = folder / f"{name}.{os.getppid()}.tmp"
    for p in stale + [live]:
        p.write_bytes(b"partial")

    def disk_full(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(F.os, "replace", disk_full)
    F._wisdom_state["dirty"] = True
    F.save_wisdom()  # no exception: planning just repeats next time
    left = sorted(p.name for p in folder.iterdir())
    assert left == [live.name]
    monkeypatch.undo()


# ---- the command line -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cxi_huge(tmp_path_factory):
    from fastem.data import save_cdi

    folder = tmp_path_factory.mktemp("huge")
    data = cdi_intensities(vesicle_2d(16, seed=2), r_noise=0.05, beamstop_radius=1.0, seed=4)
    data.intensities = data.intensities * 1e295
    save_cdi(folder / "huge.cxi", data)
    return folder / "huge.cxi"


def test_cli_planted_pickle_does_not_run_and_huge_data_is_finite(cxi_huge, tmp_path):
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir(mode=0o700)
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Payload(marker))
    import platform

    for suffix in ("pickle", "bin"):
        (cache_dir / f"fftw-wisdom-{platform.machine()}.{suffix}").write_bytes(payload)
    out = tmp_path / "out.cxi"
    proc = run_cli(["--quiet", "phase", cxi_huge, "-o", out, "--algorithm", "hio", "--iterations", 20],
                   env={"FASTEM_CACHE_DIR": str(cache_dir), "FASTEM_FFT_PLANNER": "FFTW_ESTIMATE",
                        "PYTHONPATH": os.pathsep.join(sys.path)}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not marker.exists()
    from fastem.io import read_cxi_reconstruction

    rec = read_cxi_reconstruction(out)
    assert np.all(np.isfinite(rec.image)) and np.abs(rec.image).max() > 1e140


def test_cli_all_runs_diverged_is_one_line(tmp_path):
    from fastem.data import save_cdi

    data = cdi_intensities(vesicle_2d(16, seed=2), r_noise=0.05, beamstop_radius=1.0, seed=4)
    save_cdi(tmp_path / "in.cxi", data)
    # a sitecustomize makes every starting phase NaN in the child: every run diverges
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import numpy as np\n"
        "import fastem.phase.multistart as ms\n"
        "_orig = ms.initial_phases\n"
        "ms.initial_phases = lambda s, r, shape: _orig(s, r, shape) * np.nan\n")
    out = tmp_path / "out.cxi"
    proc = run_cli(["phase", tmp_path / "in.cxi", "-o", out, "--algorithm", "er", "--iterations", 10],
                   env={"PYTHONPATH": os.pathsep.join([str(hook), *sys.path])}, timeout=120)
    assert_clean_error(proc, "diverged", "try")
    assert not out.exists()


# ---- FFT plans across processes ----------------------------------------------------------------
def _client_and_worker_results(cdi, monkeypatch, tmp_path, ship_wisdom: bool):
    """The in-process result of a GPS-F multi-start planned with FFTW_PATIENT here, and the same
    job on a worker process that would plan for itself with FFTW_ESTIMATE (another algorithm
    for these 30^2 transforms, hence other rounding) from an empty wisdom cache of its own."""
    distributed = pytest.importorskip("distributed")
    from fastem.config import set_threads
    from fastem.executor import DaskExecutor

    if F.provider("cpu") != "pyfftw":
        pytest.skip("pyFFTW not installed: SciPy's FFT has no planner to disagree")
    if not ship_wisdom:
        monkeypatch.setattr(ms, "_client_wisdom", lambda *a: None)
    monkeypatch.setattr(settings, "fft_planner", "FFTW_PATIENT")
    before = settings.threads
    set_threads(1)
    try:
        prob = prepare_problem(cdi.intensities, cdi.known, cdi.support)
        cfg = PhaseConfig(algorithm="gps-f", iterations=40, stages=2)
        here = retrieve(problem=prob, config=cfg, runs=3, keep=3, seed=5)
        cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                                           env={"FASTEM_FFT_PLANNER": "FFTW_ESTIMATE", "FASTEM_THREADS": "1",
                                                "FASTEM_CACHE_DIR": str(tmp_path / "worker-cache")})
        with DaskExecutor(distributed.Client(cluster), close_cluster=True) as ex:
            assert ex.worker_threads() == [1]
            there = retrieve(problem=prob, config=cfg, runs=3, keep=3, seed=5, executor=ex)
    finally:
        set_threads(before)
    return here, there


def test_workers_run_the_clients_fft_plans(monkeypatch, tmp_path):
    """Fault: each Dask worker measured its own FFTW plans, so a phase multi-start on workers
    could differ in the last bits from the same job in one process (and grow apart over the
    iterations); once seen in bench/distributed_scaling.py. The client now plans the chunks'
    transforms and ships its wisdom: a worker told to plan otherwise still runs the client's."""
    cdi = cdi_intensities(vesicle_2d(30, seed=1), r_noise=0.03, seed=3)
    here, there = _client_and_worker_results(cdi, monkeypatch, tmp_path, ship_wisdom=True)
    np.testing.assert_array_equal(there.image, here.image)
    np.testing.assert_array_equal(there.final_rf, here.final_rf)


def test_a_worker_planning_for_itself_rounds_differently(monkeypatch, tmp_path):
    """The control for the test above: without the client's wisdom this worker's own plans give
    another result (so the test above can fail)."""
    cdi = cdi_intensities(vesicle_2d(30, seed=1), r_noise=0.03, seed=3)
    here, there = _client_and_worker_results(cdi, monkeypatch, tmp_path, ship_wisdom=False)
    assert not np.array_equal(there.final_rf, here.final_rf)


def test_adopted_wisdom_replaces_the_processes_own(tmp_path):
    """export_wisdom / adopt_wisdom between two processes: the adopter's transform equals the
    exporter's bit for bit although it asks for another planner; junk bytes are refused."""
    if F.provider("cpu") != "pyfftw":
        pytest.skip("pyFFTW not installed")
    script = r'''
import sys, numpy as np
from fastem import fft
from fastem.config import settings
settings.fft_planner = sys.argv[1]
if len(sys.argv) > 3:
    fft.adopt_wisdom(open(sys.argv[3], "rb").read())
plan = fft.new_plan((3, 30, 30), np.complex64, axes=(1, 2), threads=1)
plan.buffer[...] = np.random.default_rng(0).normal(size=(3, 30, 30))
np.save(sys.argv[2] + ".npy", plan.forward())
open(sys.argv[2] + ".w", "wb").write(fft.export_wisdom())
'''

    def run(*args):   # each process with an empty wisdom cache of its own
        env = dict(os.environ, FASTEM_CACHE_DIR=str(tmp_path / f"cache-{args[1]}"))
        subprocess.run([sys.executable, "-c", script, *args], check=True, env=env, cwd=tmp_path)

    run("FFTW_PATIENT", "patient")
    run("FFTW_ESTIMATE", "estimate")
    run("FFTW_ESTIMATE", "adopted", "patient.w")
    patient, estimate, adopted = (np.load(tmp_path / f"{k}.npy") for k in ("patient", "estimate", "adopted"))
    assert not np.array_equal(estimate, patient)      # the two planners pick different algorithms here
    np.testing.assert_array_equal(adopted, patient)
    with pytest.raises(ValueError, match="wisdom"):
        F.adopt_wisdom(b"not wisdom")
    with pytest.raises(InputError, match="threads"):
        F.new_plan((4, 4), np.complex64, threads=0)


def test_the_suite_reads_no_user_fftw_wisdom():
    """The suite plans with FFTW_ESTIMATE and a private wisdom cache (conftest): FFTW_MEASURE plans
    from the user's cache (benches save them) once changed a chaotic phase-retrieval test's result."""
    import os

    from fastem.config import cache_dir

    assert os.environ["FASTEM_FFT_PLANNER"] == "FFTW_ESTIMATE"
    folder = cache_dir(create=False)
    assert folder != Path.home() / ".cache" / "fastem"
    if "fastem-test-cache-" not in str(folder):    # a folder the user chose for the run on purpose
        pytest.skip(f"FASTEM_CACHE_DIR set by the caller: {folder}")
