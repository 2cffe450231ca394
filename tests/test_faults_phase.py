"""Fault injection for ``fastem phase`` (CLI in a child process on 32x32 patterns) and the misuse
of the phase API (``phase_file``, ``autocorrelation_support``, ``r_factor``, ``r_real``, ``align``).

Covered: inputs never overwritten (data, support, FILE:/dataset), one writer per output
(a held lock, a second live process), resume safety (every changed parameter or input refused
by name, a renamed copy accepted and exact, SIGKILL at a random moment then resume = the
uninterrupted run bit for bit, the killed output always readable), no non-finite result written,
complex data refused, FILE:/dataset input, memory (budget beyond the machine, one run beyond the
budget, histories beyond the host, estimate printed), disk full, usage errors naming flags.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from fastem import io
from fastem.data import cdi_intensities, save_cdi, vesicle_2d
from fastem.errors import InputError, NonFiniteResultError
from fastem.phase import align, autocorrelation_support, r_factor, r_real
from fastem.phase import job as phase_job
from fastem.phase.job import phase_file

from fault_tools import FASTEM, assert_clean_error, leftover_temporaries, run_cli

SUPPORT_DS = "/entry_1/sample_1/support"
SMALL = ["--iterations", "20", "--runs", "2", "--seed", "1"]


@pytest.fixture(scope="module")
def cdi():
    return cdi_intensities(vesicle_2d(32, seed=0), r_noise=0.06, beamstop_radius=1.5, seed=0)


@pytest.fixture(scope="module")
def src(tmp_path_factory, cdi):
    """A folder with in.cxi (data, mask, truth, support) and sup.h5:/s (the support)."""
    folder = tmp_path_factory.mktemp("phase-faults")
    save_cdi(folder / "in.cxi", cdi)
    with h5py.File(folder / "sup.h5", "w") as f:
        f["s"] = cdi.support.astype(np.uint8)
    return folder


@pytest.fixture
def work(src, tmp_path):
    for p in src.iterdir():
        shutil.copy(p, tmp_path / p.name)
    return tmp_path


def _bytes(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def _image(path):
    with h5py.File(path, "r") as f:
        return f["/entry_1/image_1/data"][()], f["/entry_1/image_1/process_1/final_rf"][()]


# --------------------------------------------------------------------------------------------
# inputs are never overwritten
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, victim", [
    pytest.param(["in.cxi", "-o", "sup.h5", "--support", "sup.h5:/s", "--overwrite"], "sup.h5", id="support-file"),
    pytest.param(["in.cxi", "-o", "in.cxi", "--overwrite"], "in.cxi", id="data-file"),
    pytest.param(["in.cxi:/entry_1/instrument_1/detector_1/data", "-o", "in.cxi", "--overwrite"], "in.cxi",
                 id="data-as-FILE:/dataset"),
    pytest.param(["in.cxi", "-o", "sup.h5", "--support", "sup.h5:/s", "--resume"], "sup.h5", id="support-on-resume"),
    pytest.param(["in.cxi", "-o", "./sub/../in.cxi", "--overwrite"], "in.cxi", id="data-other-spelling"),
])
def test_no_input_is_ever_overwritten(work, argv, victim):
    before = _bytes(work)
    proc = run_cli(["phase", *argv, *SMALL], cwd=work)
    assert_clean_error(proc, "overwrite the input", victim)
    assert _bytes(work) == before
    assert not leftover_temporaries(work)


# --------------------------------------------------------------------------------------------
# one writer per output
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("extra", [[], ["--overwrite"], ["--checkpoint-every", "5"]])
def test_a_second_writer_fails_at_once_while_the_output_is_locked(work, extra):
    with io.output_lock(work / "out.cxi"):
        proc = run_cli(["phase", "in.cxi", "-o", "out.cxi", *SMALL, *extra], cwd=work)
    assert_clean_error(proc, "another fastem process", str(os.getpid()), "out.cxi")
    assert not (work / "out.cxi").exists() and not leftover_temporaries(work)


def _wait_for(path, proc, timeout=60.0):
    end = time.time() + timeout
    while time.time() < end and not path.exists() and proc.poll() is None:
        time.sleep(0.02)
    return path.exists()


@pytest.mark.parametrize("extra, words", [(["--overwrite"], ["another fastem process"]),
                                          ([], ["exists"])])
def test_two_live_runs_to_one_output_one_fails_clearly(work, extra, words):
    env = dict(os.environ, FASTEM_FFT_PLANNER="FFTW_ESTIMATE")
    first = subprocess.Popen([*FASTEM, "-q", "phase", "in.cxi", "-o", "out.cxi", "--iterations", "200000",
                              "--runs", "2", "--checkpoint-every", "50"], cwd=work, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert _wait_for(work / "out.cxi", first), first.stderr.read().decode() if first.poll() is not None else ""
        proc = run_cli(["phase", "in.cxi", "-o", "out.cxi", *SMALL, *extra], cwd=work)
        assert first.poll() is None, "the first run must still be running for this test to mean anything"
        assert_clean_error(proc, *words)
    finally:
        first.kill()
        first.wait()
        first.stderr.close()
    rec = io.read_cxi_reconstruction(work / "out.cxi")  # the first run's checkpointed output is intact
    assert rec.checkpoint is not None and np.all(np.isfinite(rec.image))


# --------------------------------------------------------------------------------------------
# resume safety
# --------------------------------------------------------------------------------------------
BASE = dict(algorithm="gps-f", iterations=40, runs=2, keep=2, seed=1, checkpoint_every=10)


class _Killed(Exception):
    pass


class _KillAfter:
    """A progress stand-in that aborts the run after ``n`` iterations (a crash mid-run)."""

    def __init__(self, n):
        self.n, self.done = n, 0

    def update(self, k):
        self.done += k
        if self.done >= self.n:
            raise _Killed

    def set_postfix(self, **kw):
        pass


@pytest.fixture(scope="module")
def partial(src):
    """An output checkpointed at iteration 20 of BASE (with --support sup.h5:/s) and the
    uninterrupted run's output."""
    folder = src.parent / (src.name + "-partial")
    folder.mkdir(exist_ok=True)
    kw = dict(BASE, support=f"{src / 'sup.h5'}:/s")
    phase_file(src / "in.cxi", folder / "full.cxi", **kw)
    with pytest.raises(_Killed):
        phase_file(src / "in.cxi", folder / "part.cxi", progress=_KillAfter(25), **kw)
    assert io.load_checkpoint_file(folder / "part.cxi", io.CXI_CHECKPOINT)["iteration"] == 20
    return folder


def _base_argv(data="in.cxi", support="sup.h5:/s"):
    argv = ["phase", data, "-o", "part.cxi", "--algorithm", "gps-f", "--iterations", "40", "--runs", "2", "--keep", "2",
            "--seed", "1", "--checkpoint-every", "10", "--resume"]
    return argv + (["--support", support] if support else [])


def _replace(argv, flag, value):
    argv = list(argv)
    argv[argv.index(flag) + 1] = value
    return argv


def _other_data(folder, fn):
    with h5py.File(folder / "in.cxi", "r") as f:
        inten = f["/entry_1/instrument_1/detector_1/data"][()]
        mask = f["/entry_1/instrument_1/detector_1/mask"][()]
    inten, mask = fn(inten, mask)
    io.write_cxi(folder / "other.cxi", inten, mask=mask)
    return "other.cxi"


@pytest.mark.parametrize("change, words", [
    (lambda w: _replace(_base_argv(), "--seed", "7"), ["--seed", "was 1", "now 7"]),
    (lambda w: _replace(_base_argv(), "--algorithm", "hio"), ["--algorithm"]),
    (lambda w: _replace(_base_argv(), "--runs", "3"), ["--runs"]),
    (lambda w: _replace(_base_argv(), "--keep", "1"), ["--keep"]),
    (lambda w: _base_argv() + ["--sigma-schedule", "0:0.1,0.5:1"], ["--sigma-schedule"]),
    (lambda w: _base_argv() + ["--shrink-wrap"], ["--shrink-wrap"]),
    (lambda w: _base_argv() + ["--gamma-scale", "3"], ["--gamma-scale"]),
    (lambda w: _base_argv(support=None), ["--support"]),
    (lambda w: _base_argv(data=_other_data(w, lambda i, m: (i * 1.01, m))), ["data", "other.cxi"]),
    (lambda w: _base_argv(data=_other_data(w, lambda i, m: (i, m | (np.arange(m.size).reshape(m.shape) % 97 == 0)))),
     ["detector mask"]),
], ids=["seed", "algorithm", "runs", "keep", "sigma-schedule", "shrink-wrap", "gamma-scale", "support", "data",
        "mask"])
def test_resume_with_a_changed_parameter_or_input_is_refused_by_name(partial, tmp_path, src, change, words):
    for name in ("in.cxi", "sup.h5"):
        shutil.copy(src / name, tmp_path / name)
    shutil.copy(partial / "part.cxi", tmp_path / "part.cxi")
    argv = change(tmp_path)
    before = (tmp_path / "part.cxi").read_bytes()
    proc = run_cli(argv, cwd=tmp_path)
    assert_clean_error(proc, "cannot resume", *words)
    assert (tmp_path / "part.cxi").read_bytes() == before  # the checkpoint is untouched
    assert not leftover_temporaries(tmp_path)


def test_resume_below_the_checkpoint_iteration_or_without_a_fingerprint_is_refused(partial, tmp_path, src):
    for name in ("in.cxi", "sup.h5"):
        shutil.copy(src / name, tmp_path / name)
    shutil.copy(partial / "part.cxi", tmp_path / "part.cxi")
    assert_clean_error(run_cli(_replace(_base_argv(), "--iterations", "15"), cwd=tmp_path), "--iterations 15",
                       "iteration 20")
    with h5py.File(tmp_path / "part.cxi", "r+") as f:  # a checkpoint of an older fastem
        del f[io.CXI_CHECKPOINT + "/fingerprint"]
    assert_clean_error(run_cli(_base_argv(), cwd=tmp_path), "no fingerprint")


def test_resume_from_a_renamed_copy_of_the_input_is_exact(partial, tmp_path, src):
    shutil.copy(src / "in.cxi", tmp_path / "renamed.cxi")
    shutil.copy(src / "sup.h5", tmp_path / "other-support.h5")
    shutil.copy(partial / "part.cxi", tmp_path / "part.cxi")
    res, _ = phase_file(tmp_path / "renamed.cxi", tmp_path / "part.cxi", resume=True,
                        **dict(BASE, checkpoint_every=7, support=f"{tmp_path / 'other-support.h5'}:/s"))
    full, full_rf = _image(partial / "full.cxi")
    image, final_rf = _image(tmp_path / "part.cxi")
    np.testing.assert_array_equal(final_rf, full_rf)
    np.testing.assert_array_equal(image, full)
    assert io.read_cxi_reconstruction(tmp_path / "part.cxi").checkpoint is None


@pytest.mark.parametrize("seed", [0, 1])
def test_sigkill_at_a_random_moment_then_resume_equals_the_uninterrupted_run(work, seed):
    rng = np.random.default_rng(seed)
    argv = ["phase", "in.cxi", "--iterations", "600", "--runs", "2", "--checkpoint-every", "20", "--seed", "3",
            "--support", "sup.h5:/s"]
    assert run_cli([*argv, "-o", "whole.cxi"], cwd=work).returncode == 0
    env = dict(os.environ, FASTEM_FFT_PLANNER="FFTW_ESTIMATE")
    proc = subprocess.Popen([*FASTEM, "-q", *argv, "-o", "killed.cxi"], cwd=work, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert _wait_for(work / "killed.cxi", proc)
    time.sleep(float(rng.uniform(0.0, 0.4)))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rec = io.read_cxi_reconstruction(work / "killed.cxi")  # whatever moment: a complete, readable file
    assert np.all(np.isfinite(rec.image))
    if rec.checkpoint is None:
        pytest.skip("the run finished before the kill (machine too fast for this window)")
    proc = run_cli([*argv, "-o", "killed.cxi", "--resume"], cwd=work)
    assert proc.returncode == 0, proc.stderr
    (a, ra), (b, rb) = _image(work / "whole.cxi"), _image(work / "killed.cxi")
    np.testing.assert_array_equal(b, a)
    np.testing.assert_array_equal(rb, ra)
    assert not leftover_temporaries(work)


# --------------------------------------------------------------------------------------------
# never a non-finite result
# --------------------------------------------------------------------------------------------
def _poison_result(kind):
    real = phase_job.retrieve

    def retrieve(*args, **kwargs):
        res = real(*args, **kwargs)
        if kind == "image":
            res.image[3, 4] = np.nan
        elif kind == "best":
            res.best[:] = np.inf
        else:
            res.final_rf[res.kept_runs[-1]] = np.inf
        return res
    return retrieve


@pytest.mark.parametrize("kind", ["image", "best", "kept-run"])
def test_a_diverged_result_is_not_written(work, monkeypatch, kind):
    monkeypatch.setattr(phase_job, "retrieve", _poison_result(kind))
    from fastem.cli.main import app

    r = CliRunner().invoke(app, ["--quiet", "phase", str(work / "in.cxi"), "-o", str(work / "out.cxi"), *SMALL])
    assert r.exit_code == 1, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastem: error:") and "diverged" in lines[0]
    assert "--seed" in lines[0] and "nothing was written" in lines[0]
    assert not (work / "out.cxi").exists() and not leftover_temporaries(work)


def test_every_run_diverged_at_a_checkpoint_stops_without_writing(work, monkeypatch):
    real = phase_job.checkpoint_best

    def checkpoint_best(state):
        state["history_rf"] = np.full_like(np.asarray(state["history_rf"], float), np.inf)
        state["best_rf"] = np.full_like(np.asarray(state["best_rf"], float), np.inf)
        return real(state)[0], float("inf")

    monkeypatch.setattr(phase_job, "checkpoint_best", checkpoint_best)
    with pytest.raises(NonFiniteResultError, match="every run diverged by iteration 10"):
        phase_file(work / "in.cxi", work / "out.cxi", iterations=20, runs=2, keep=1, checkpoint_every=10)
    assert not (work / "out.cxi").exists() and not leftover_temporaries(work)


# --------------------------------------------------------------------------------------------
# complex input, FILE:/dataset input
# --------------------------------------------------------------------------------------------
def test_complex_data_are_refused_naming_file_and_dataset(work, cdi):
    io.write_cxi(work / "c.cxi", cdi.intensities * (1 + 0.5j), mask=io.mask_from_known(cdi.known))
    with h5py.File(work / "csup.h5", "w") as f:
        f["s"] = cdi.support.astype(np.complex64)
        f["I"] = cdi.intensities.astype(np.complex128)
    for argv, words in [(["c.cxi"], ["c.cxi", "/entry_1/", "complex"]),
                        (["csup.h5:/I"], ["csup.h5:/I", "complex"]),
                        (["in.cxi", "--support", "csup.h5:/s"], ["--support", "csup.h5:/s", "complex"])]:
        assert_clean_error(run_cli(["phase", *argv, "-o", "out.cxi", *SMALL], cwd=work), *words)
    assert not (work / "out.cxi").exists()


def test_file_dataset_input_equals_the_cxi_input(work, cdi, monkeypatch):
    mask = io.mask_from_known(cdi.known)
    io.write_cxi(work / "plain.cxi", cdi.intensities, mask=mask)
    with h5py.File(work / "plain.h5", "w") as f:
        f["scan/I"] = cdi.intensities
        f["scan/mask"] = mask
        f["nomask/I"] = cdi.intensities
    io.write_cxi(work / "nomask.cxi", cdi.intensities)
    kw = dict(iterations=20, runs=2, keep=1, seed=2, support=f"{work / 'sup.h5'}:/s")
    monkeypatch.chdir(work)
    for a, b in (("plain.cxi", "plain.h5:/scan/I"), ("nomask.cxi", "plain.h5:/nomask/I")):
        ra, _ = phase_file(work / a, work / f"{a}.out", **kw)
        rb, _ = phase_file(b, work / f"{a}.h5.out", **kw)
        np.testing.assert_array_equal(rb.final_rf, ra.final_rf)
        np.testing.assert_array_equal(rb.image, ra.image)
    proc = run_cli(["phase", "plain.h5:/scan/I", "-o", "cli.cxi", *SMALL], cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert np.all(np.isfinite(io.read_cxi_reconstruction(work / "cli.cxi").image))
    for spec, words in (("plain.h5:/scan/nothing", ["plain.h5", "/scan/nothing", "no dataset"]),
                        ("plain.h5:/scan", ["plain.h5", "group"]),
                        ("missing.h5:/I", ["missing.h5"])):
        assert_clean_error(run_cli(["phase", spec, "-o", "x.cxi", *SMALL], cwd=work), *words)


@pytest.mark.parametrize("layout", ["detector_only", "data_1_link"])
def test_negative_intensity_warning_names_the_dataset_actually_read(work, cdi, layout):
    """Issue 15: the warning named /entry_1/data_1/data when the data came from detector_1/data."""
    inten = cdi.intensities.copy()
    inten[0, :3] = -5.0  # three negative (background-subtracted) pixels on measured positions
    with h5py.File(work / "neg.cxi", "w") as f:
        det = f.create_group("entry_1/instrument_1/detector_1")
        det["data"] = inten
        det["mask"] = io.mask_from_known(cdi.known)
        if layout == "data_1_link":
            f["entry_1/data_1/data"] = h5py.SoftLink("/entry_1/instrument_1/detector_1/data")
    with pytest.warns(Warning) as record:
        phase_file(work / "neg.cxi", work / "neg_out.cxi", iterations=10, runs=1, keep=1,
                   support=f"{work / 'sup.h5'}:/s")
    msgs = [str(w.message) for w in record if "negative intensities" in str(w.message)]
    assert len(msgs) == 1 and "3 negative intensities" in msgs[0]
    read = "/entry_1/data_1/data" if layout == "data_1_link" else "/entry_1/instrument_1/detector_1/data"
    assert f"neg.cxi:{read}" in msgs[0], msgs[0]
    if layout == "detector_only":
        assert "data_1" not in msgs[0]


def test_an_external_link_in_the_input_is_refused_naming_its_target(work, cdi):
    with h5py.File(work / "target.h5", "w") as f:
        f["I"] = cdi.intensities
    with h5py.File(work / "linked.cxi", "w") as f:
        f["/entry_1/data_1/data"] = h5py.ExternalLink("target.h5", "/I")
    assert_clean_error(run_cli(["phase", "linked.cxi", "-o", "out.cxi", *SMALL], cwd=work), "external link",
                       "target.h5")
    assert not (work / "out.cxi").exists()


# --------------------------------------------------------------------------------------------
# memory, disk, usage errors
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("extra, words", [
    (["--batch-memory", "100T"], ["--batch-memory", "available"]),
    (["--batch-memory", "1K"], ["--batch-memory", "one run"]),
    (["--runs", str(10**12)], ["--runs", "host memory", "available"]),
    (["--batch-memory", "-1"], ["--batch-memory"]),
    (["--batch-memory", "inf"], ["--batch-memory"]),
    (["--batch-memory", "lots"], ["--batch-memory"]),
    (["--runs", "2", "--keep", "5"], ["--keep 5", "--runs 2"]),
    (["--sigma-schedule", "nan:1"], ["--sigma-schedule"]),
    (["--sigma-schedule", "0:-1"], ["--sigma-schedule"]),
    (["--gamma-scale", "-1"], ["--gamma-scale", ">= 0"]),
    (["--gamma-scale", "nan"], ["--gamma-scale"]),
    (["--gamma-scale", "inf"], ["--gamma-scale"]),
    (["--shrink-wrap", "--shrink-wrap-sigma", "1:3"], ["--shrink-wrap-sigma"]),
    (["--support", "missing.h5:/s"], ["missing.h5"]),
    (["--support", "in.cxi:/entry_1/sample_1/object"], ["--support", "0/1"]),
])
def test_bad_requests_fail_with_one_line_naming_the_flag(work, extra, words):
    proc = run_cli(["phase", "in.cxi", "-o", "out.cxi", "--iterations", "20", *extra], cwd=work)
    assert_clean_error(proc, *words)
    assert not (work / "out.cxi").exists()


@pytest.mark.parametrize("extra, flag", [(["--seed", "-1"], "--seed"), (["--iterations", "0"], "--iterations"),
                                         (["--runs", "0"], "--runs"), (["--algorithm", "raar"], "--algorithm"),
                                         (["--shrink-wrap-threshold", "2"], "--shrink-wrap-threshold")])
def test_usage_errors_name_the_flag(work, extra, flag):
    assert_clean_error(run_cli(["phase", "in.cxi", "-o", "out.cxi", *extra], cwd=work), flag, status=2)


def test_a_request_split_into_chunks_prints_its_estimate_first(work):
    proc = run_cli(["phase", "in.cxi", "-o", "out.cxi", "--iterations", "20", "--runs", "4", "--batch-memory", "120K"],
                   cwd=work)
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stderr.replace("\r", "\n").splitlines() if "estimate:" in ln)
    assert "per run" in line and "chunk(s)" in line and "roughly" in line and "available" in line


@pytest.mark.parametrize("extra", [[], ["--checkpoint-every", "5"]])
@pytest.mark.parametrize("existing", [False, True])
def test_disk_full_is_one_line_and_keeps_an_existing_output(work, extra, existing):
    if existing:
        (work / "out.cxi").write_bytes(b"previous result")
    proc = run_cli(["phase", "in.cxi", "-o", "out.cxi", *SMALL, *extra, *(["--overwrite"] if existing else [])],
                   cwd=work, fsize_kb=24)
    assert_clean_error(proc, "no space", "out.cxi")
    assert not leftover_temporaries(work)
    if existing:
        assert (work / "out.cxi").read_bytes() == b"previous result"
    else:
        assert not (work / "out.cxi").exists()


# --------------------------------------------------------------------------------------------
# API misuse: one-line InputError naming the parameter
# --------------------------------------------------------------------------------------------
def _api_cases():
    img = np.random.default_rng(0).random((8, 8)) + 0.1
    cases = [
        ("phase_file", dict(in_path=None), "in_path"),
        ("phase_file", dict(out_path=None), "out_path"),
        ("phase_file", dict(out_path=3.5), "out_path"),
        ("phase_file", dict(runs="3"), "runs"),
        ("phase_file", dict(gamma_scale=-0.5), "gamma_scale"),
        ("phase_file", dict(gamma_scale="2"), "gamma_scale"),
        ("phase_file", dict(gamma_scale=float("nan")), "gamma_scale"),
        ("phase_file", dict(runs=0), "runs"),
        ("phase_file", dict(keep=[1]), "keep"),
        ("phase_file", dict(keep=3, runs=2), "keep"),
        ("phase_file", dict(seed=-1), "seed"),
        ("phase_file", dict(seed=1.5), "seed"),
        ("phase_file", dict(iterations=None), "iterations"),
        ("phase_file", dict(iterations=True), "iterations"),
        ("phase_file", dict(algorithm=None), "algorithm"),
        ("phase_file", dict(support=5), "support"),
        ("phase_file", dict(checkpoint_every=-1), "checkpoint_every"),
        ("phase_file", dict(resume="yes"), "resume"),
        ("phase_file", dict(max_batch_bytes="2G"), "max_batch_bytes"),
        ("phase_file", dict(max_batch_bytes=0), "max_batch_bytes"),
        ("phase_file", dict(shrink_wrap_sigma=3), "shrink_wrap_sigma"),
        ("phase_file", dict(shrink_wrap_threshold=None), "shrink_wrap_threshold"),
        ("phase_file", dict(progress=object()), "progress"),
        ("phase_file", dict(scheduler=7), "scheduler"),
        ("autocorrelation_support", dict(intensities=None), "intensities"),
        ("autocorrelation_support", dict(intensities=[1.0, 2.0, 3.0]), "intensities"),
        ("autocorrelation_support", dict(intensities="abc"), "intensities"),
        ("autocorrelation_support", dict(intensities=img * 1j), "intensities"),
        ("autocorrelation_support", dict(intensities=img, known=np.ones((4, 4), bool)), "known"),
        ("autocorrelation_support", dict(intensities=img, threshold=None), "threshold"),
        ("autocorrelation_support", dict(intensities=img, threshold=2), "threshold"),
        ("autocorrelation_support", dict(intensities=img, margin=-1), "margin"),
        ("autocorrelation_support", dict(intensities=img, margin=1.5), "margin"),
        ("r_factor", dict(image=None, magnitudes=img), "image"),
        ("r_factor", dict(image=img, magnitudes=None), "magnitudes"),
        ("r_factor", dict(image=[1.0, 2.0], magnitudes=[1.0, 2.0]), "image"),
        ("r_factor", dict(image=img, magnitudes=img, known="all"), "known"),
        ("r_factor", dict(image=img, magnitudes=img, known=np.ones((3, 3))), "known"),
        ("r_factor", dict(image=img, magnitudes=img[:4]), "shape"),
        ("r_factor", dict(image=img, magnitudes=img * 1j), "magnitudes"),
        ("r_real", dict(image=None, truth=img), "image"),
        ("r_real", dict(image=img, truth="x"), "truth"),
        ("r_real", dict(image=np.array([["a", "b"], ["c", "d"]]), truth=img), "image"),  # complex is valid (issue 15)
        ("r_real", dict(image=img, truth=np.zeros_like(img)), "truth"),
        ("r_real", dict(image=img, truth=img[None, None]), "truth"),
        ("r_real", dict(image=img * 1j, truth=np.zeros_like(img) * 1j), "truth"),
        ("align", dict(image=None, reference=img), "image"),
        ("align", dict(image=img, reference=[[1.0]]), "shape"),
        ("align", dict(image=[1.0, 2.0], reference=[1.0, 2.0]), "image"),
        ("align", dict(image=img, reference={"a": 1}), "reference"),
    ]
    return [pytest.param(*c, id=f"{c[0]}-{c[2]}-{i}") for i, c in enumerate(cases)]


@pytest.mark.parametrize("func, kwargs, word", _api_cases())
def test_api_misuse_is_a_one_line_input_error_naming_the_parameter(src, tmp_path, func, kwargs, word):
    if func == "phase_file":
        kw = dict(in_path=src / "in.cxi", out_path=tmp_path / "out.cxi", iterations=5, runs=2, keep=1)
        kw.update(kwargs)
        call = lambda: phase_file(kw.pop("in_path"), kw.pop("out_path"), **kw)  # noqa: E731
    else:
        fn = {"autocorrelation_support": autocorrelation_support, "r_factor": r_factor, "r_real": r_real,
              "align": align}[func]
        call = lambda: fn(**kwargs)  # noqa: E731
    with pytest.raises(InputError) as info:
        call()
    msg = str(info.value)
    assert "\n" not in msg and word in msg, msg
    assert not (tmp_path / "out.cxi").exists()


def test_shrink_wrap_guard_stops_a_runaway_collapse():
    """Issue 15: from a poor iterate (a box that cuts two separated particles) shrink-wrap kept
    a few bright pixels, the fit got worse, and the next update shrank further (runaway
    collapse). The R_F guard undoes such updates; without it at least one run collapses."""
    from fastem.phase import PhaseConfig, initial_phases, make_solver, prepare_problem

    n = 128
    u = np.zeros((n, n))
    c, a, b = n // 2, 3 * n // 8, 7 * n // 32
    u[c - n // 4:c - n // 4 + a, c - 7 * n // 32:c - 7 * n // 32 + a] += vesicle_2d(a, seed=1)
    u[c + n // 16:c + n // 16 + b, c + 3 * n // 32:c + 3 * n // 32 + b] += vesicle_2d(b, seed=2)
    cdi = cdi_intensities(u, beamstop_radius=1.5, seed=0, r_noise=0.057)
    cdi.known[:, c + 6:c + 7] = False
    cdi.intensities[~cdi.known] = 0
    # a box of 4x the support's area about the centre of its bounding box: cuts the particles
    idx = np.nonzero(cdi.support)
    lo, hi = [int(i.min()) for i in idx], [int(i.max()) + 1 for i in idx]
    g = np.sqrt(4 * cdi.support.sum() / np.prod([h - l for l, h in zip(lo, hi)]))
    box = np.zeros((n, n), bool)
    box[tuple(slice(int(round((l + h) / 2 - (h - l) * g / 2)), int(round((l + h) / 2 + (h - l) * g / 2)))
              for l, h in zip(lo, hi))] = True
    assert (box & (u > 0)).sum() < (u > 0).sum()  # the box cuts the object
    prob = prepare_problem(cdi.intensities, cdi.known, box)
    sizes = {}
    for guard in (0.0, 0.25):
        cfg = PhaseConfig(algorithm="hio", iterations=600, shrink_wrap=True, shrink_wrap_guard=guard)
        sol = make_solver(prob, 3, cfg).initialise(initial_phases(0, range(3), prob.shape)).run()
        sizes[guard] = sol.supports_centred().sum(axis=(1, 2))
        if guard:
            assert sol.sw_rejected.min() >= 1
    obj_px = (u > 0).sum()
    assert sizes[0.0].min() < 0.5 * obj_px  # the fault: a run collapses
    assert sizes[0.25].min() >= obj_px  # fixed: no run shrinks below the object's area


def test_a_twin_mixture_is_not_averaged_into_the_kept_mean():
    """Issue 15: the kept mean averaged runs that disagreed (mean R_F 20 % from runs at 0.5 %)."""
    from fastem.phase import keep_consistent, twin

    u = np.zeros((40, 40))
    u[10:30, 8:28] = vesicle_2d(20, seed=4)
    mixture = 0.5 * (u + np.roll(twin(u), (1, 1), (0, 1)))
    sel = keep_consistent(np.stack([u, mixture, np.roll(twin(u), (3, -2), (0, 1))]), np.array([0.1, 0.1, 0.2]), 2)
    assert list(sel.indices) == [0, 2] and not sel.report[1]["kept"] and "outlier" in sel.report[1]["reason"]
    np.testing.assert_allclose(sel.mean, u, atol=1e-12)


def test_a_same_looking_run_with_a_far_worse_fit_is_not_averaged_into_the_kept_mean():
    """Issue 15 (session 2026-12-07): the robustness grid's cell pair / noise-free / beamstop /
    2x loose box / seed 1 (bench/phase_grid.py, GPS-R with twice the filter and final sigma 0.3):
    one of the five lowest-R_F runs fits far worse than the other four but looks like them (inside
    the 30 % image tolerance), and averaging it in took the kept mean from ~0.005 % to 0.42 %
    R_real. The R_F test of ``keep_consistent`` sets it aside. How many runs converge depends on
    the CPU's floating-point rounding (four on the VM it was found on, three on an AMD EPYC VM,
    where the unchecked mean of the five lowest-R_F runs has 0.87 % R_real), so the count is not
    pinned: at least two agree and every other one is set aside by its R_F
    (`bench/phase_start_spread.py` prints the report on the CPU at hand)."""
    import importlib.util
    from pathlib import Path

    from fastem.phase import (PhaseConfig, initial_phases, keep_consistent, make_solver, prepare_problem)

    spec = importlib.util.spec_from_file_location(
        "phase_grid", Path(__file__).resolve().parents[1] / "bench" / "phase_grid.py")
    grid = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(grid)
    cdi = grid.make_data(grid.make_object("pair", 128), 0.0, "beamstop", 1)
    prob = prepare_problem(cdi.intensities, cdi.known, grid.make_support("loose2", cdi))
    cfg = PhaseConfig(algorithm="gps-r", iterations=1000, shrink_wrap=True, **grid.VARIANTS["g2-sigma0.3"])
    sol = make_solver(prob, 16, cfg).initialise(initial_phases(1, range(16), prob.shape)).run()
    images, rf = sol.best_images_centred(), sol.final_rf()
    sel = keep_consistent(images, rf, 5)
    rejected = [e for e in sel.report if not e["kept"]]
    assert len(sel.indices) >= 2 and rejected                        # 3-4 runs agree; the others fit worse
    assert all("R_F" in e["reason"] and e["difference"] < 0.3 for e in rejected)  # all pass the image test
    bad = rejected[0]                                                # lowest R_F set aside, averaged in before
    assert bad["rf"] > 10 * rf[sel.indices[0]]                       # measured 0.34 % against 0.011 %
    assert rf[sel.indices].max() < 2 * rf[sel.indices[0]]
    assert r_real(sel.mean, cdi.object) < 5e-4                       # measured 0.005 %
    # what the kept mean was before the R_F test: the same runs with the bad one averaged in
    with_bad = np.mean(np.concatenate([sel.images, align(images[bad["index"]], sel.images[0])[0][None]]), axis=0)
    assert r_real(with_bad, cdi.object) > 3e-3                       # measured 0.42 %


def test_the_default_support_estimate_holds_two_separated_particles():
    """Issue 15: the half-scaled autocorrelation estimate kept only the central piece of S - S,
    cutting two separated particles; the default ("auto") contains a translate of the object."""
    u = np.zeros((64, 64))
    u[16:40, 18:42] = vesicle_2d(24, seed=1)
    u[36:50, 38:52] += vesicle_2d(14, seed=2)
    cdi = cdi_intensities(u, r_noise=0.06, beamstop_radius=1.5, seed=0)
    est = autocorrelation_support(cdi.intensities, cdi.known, mode="auto")
    obj = (u > 0).astype(float)
    cover = np.fft.ifftn(np.fft.fftn(est.astype(float)) * np.conj(np.fft.fftn(obj))).real.max()
    assert cover >= obj.sum() - 0.5 and 2 * est.sum() <= est.size


@pytest.mark.parametrize("fmt", ["mrc", "tiff"])
def test_non_hdf5_input_runs_without_ground_truth(work, cdi, fmt):
    """Issue 16: a DM/MRC/TIFF/SER input used to fail with h5py's raw ``OSError`` ("file signature
    not found") after the run, when the job looked for a ground-truth object in the input. Such
    inputs carry none: the run finishes, exit 0, a finite image and no ``r_real`` in the output."""
    intens = np.asarray(cdi.intensities, np.float32)
    name = f"in.{'mrc' if fmt == 'mrc' else 'tif'}"
    if fmt == "mrc":
        io.write_mrc(work / name, intens)
    else:
        io.write_tiff(work / name, intens)
    before = _bytes(work)
    proc = run_cli(["phase", name, "-o", "out.h5", *SMALL, "--keep", "1"], cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "OSError" not in proc.stderr
    with h5py.File(work / "out.h5", "r") as f:
        names = []
        f.visit(names.append)
        images = [n for n in names if n.endswith("image") and isinstance(f[n], h5py.Dataset)]
        assert images, names
        assert all(np.all(np.isfinite(f[n][()])) for n in images)
        assert not any(n.endswith("r_real") for n in names)
    assert {k: v for k, v in _bytes(work).items() if k in before} == before   # the input is untouched
    assert not leftover_temporaries(work)


def test_the_beamstop_fill_survives_a_least_squares_solver_that_does_not_converge(monkeypatch):
    """scipy's nnls raised "Maximum number of iterations reached" on a 128^2 complex particle with
    detector gaps (the robustness grid, found while recording it): the support estimate must not
    fail. A solver that never converges leaves the Gaussian fill, and the estimate is still made."""
    import scipy.optimize

    from fastem.phase.support import _fill_missing_centre

    cdi = cdi_intensities(vesicle_2d(48, seed=0), r_noise=0.03, beamstop_radius=3, shape=(128, 128), seed=0)
    gauss = _fill_missing_centre(cdi.intensities.astype(np.float64), cdi.known, refine=False)

    def no_convergence(*args, **kwargs):
        raise RuntimeError("Maximum number of iterations reached.")

    monkeypatch.setattr(scipy.optimize, "nnls", no_convergence)
    filled = _fill_missing_centre(cdi.intensities.astype(np.float64), cdi.known)
    np.testing.assert_array_equal(filled, gauss)
    supp = autocorrelation_support(cdi.intensities, cdi.known, mode="auto")
    assert 0 < supp.sum() <= supp.size // 2
