"""Fault injection for the output layer every command writes through (``fastem.io.atomic``,
fingerprints in ``fastem.io.checkpoint``, ``require_finite_result``).

The command-level drills (each command under disk full, SIGKILL, concurrency) live in the
``test_faults_<domain>.py`` files; these cases pin the shared mechanisms they rely on.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from fastem import io
from fastem.errors import NonFiniteResultError, OutputBusyError, OutputExistsError, InputError

from fault_tools import leftover_temporaries


def _child(code: str, *, fsize_kb: int | None = None) -> subprocess.CompletedProcess:
    prelude = "import resource, signal\n"
    if fsize_kb is not None:
        prelude += (f"resource.setrlimit(resource.RLIMIT_FSIZE, ({fsize_kb * 1024}, {fsize_kb * 1024}))\n"
                    "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n")
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120)


def test_output_lock_refuses_a_second_process_and_is_released(tmp_path):
    out = tmp_path / "out.h5"
    code = f"""
        from fastem import io
        from fastem.errors import OutputBusyError
        try:
            with io.output_lock({str(out)!r}):
                print("got it")
        except OutputBusyError as exc:
            print("busy:", exc)
    """
    with io.output_lock(out):
        proc = _child(code)
        assert proc.stdout.startswith("busy:"), proc.stderr
        assert str(os.getpid()) in proc.stdout and str(out) in proc.stdout
        with io.output_lock(out):  # re-entrant in the holding process
            pass
    assert _child(code).stdout.strip() == "got it"
    assert not list(tmp_path.iterdir()), "the lock file is removed after the run"


def test_no_overwrite_never_clobbers_a_file_created_meanwhile(tmp_path):
    out = tmp_path / "out.h5"
    with pytest.raises(OutputExistsError, match="another process created it"):
        with io.atomic_output(out) as tmp:
            tmp.write_bytes(b"mine")
            out.write_bytes(b"theirs")  # a concurrent writer finishes first
    assert out.read_bytes() == b"theirs"
    assert not leftover_temporaries(tmp_path)


def test_overwrite_replaces_and_inputs_are_refused(tmp_path):
    out = tmp_path / "out.h5"
    out.write_bytes(b"old")
    with io.atomic_output(out, overwrite=True) as tmp:
        tmp.write_bytes(b"new")
    assert out.read_bytes() == b"new"
    support = tmp_path / "support.h5"
    support.write_bytes(b"support")
    with pytest.raises(InputError, match="would overwrite the input"):
        with io.atomic_output(support, overwrite=True, inputs=[f"{support}:/s"]):
            pass
    assert support.read_bytes() == b"support"


def test_stale_temporaries_of_dead_processes_are_removed_when_the_output_is_locked(tmp_path):
    out = tmp_path / "out.h5"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".out.h5.{dead_pid}-0badc0de.tmp"
    live = tmp_path / f".out.h5.{os.getppid()}-0123abcd.tmp"  # our parent is alive
    other = tmp_path / f".other.h5.{dead_pid}-0badc0de.tmp"
    for p in (stale, live, other):
        p.write_bytes(b"x" * 100)
    with io.output_lock(out):
        pass
    assert not stale.exists()
    assert live.exists() and other.exists()


def test_disk_full_is_one_error_with_no_temporary_and_the_old_output_intact(tmp_path):
    out = tmp_path / "out.h5"
    with h5py.File(out, "w") as f:
        f["data"] = np.arange(10.0)
    code = f"""
        import numpy as np, h5py
        from fastem import io
        from fastem.errors import OutputWriteError
        try:
            with io.atomic_output({str(out)!r}, overwrite=True) as tmp:
                with h5py.File(tmp, "w") as f:
                    f["data"] = np.random.default_rng(0).random(1_000_000)
        except OutputWriteError as exc:
            print("error:", exc)
    """
    proc = _child(code, fsize_kb=100)
    assert proc.stdout.startswith("error:"), proc.stdout + proc.stderr
    assert "no space left" in proc.stdout and str(out) in proc.stdout
    assert len(proc.stdout.strip().splitlines()) == 1
    assert not leftover_temporaries(tmp_path)
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["data"][()], np.arange(10.0))


def test_checkpoint_update_under_disk_full_keeps_the_previous_checkpoint(tmp_path):
    out = tmp_path / "run.h5"
    io.save_checkpoint_file(out, "/process/checkpoint", {"iteration": 5, "x": np.arange(4.0)})
    code = f"""
        import numpy as np
        from fastem import io
        from fastem.errors import OutputWriteError
        try:
            io.save_checkpoint_file({str(out)!r}, "/process/checkpoint",
                                    {{"iteration": 9, "x": np.random.default_rng(1).random(2_000_000)}})
        except OutputWriteError as exc:
            print("error:", exc)
    """
    proc = _child(code, fsize_kb=200)
    assert proc.stdout.startswith("error:"), proc.stdout + proc.stderr
    state = io.load_checkpoint_file(out, "/process/checkpoint")
    assert state["iteration"] == 5
    assert not leftover_temporaries(tmp_path)


@pytest.mark.parametrize("change, words", [
    ({"params": {"step": 1.0}}, ["--step was 0.5", "now 1.0"]),
    ({"params": {"projector": "linear"}}, ["--projector was \"fst\"", "now \"linear\""]),
    ({"params": {"positivity": False}}, ["--positivity was true", "now false"]),
    ({"inputs": {"data": 1}}, ["input data differs"]),
    ({"inputs": {"mask": None}}, ["input mask differs"]),
    ({"params": {"extra": 3}}, ["extra was unset"]),
])
def test_resume_refuses_each_changed_input_or_parameter_by_name(rng, change, words):
    data, mask = rng.random((3, 4, 5)), rng.random((3, 4, 5)) > 0.5
    params = {"step": 0.5, "projector": "fst", "positivity": True}
    stored = io.run_fingerprint({"data": data, "mask": mask}, params)
    io.check_fingerprint(stored, io.run_fingerprint({"data": data.copy(), "mask": mask.copy()}, dict(params)),
                         where="out.h5")  # same content: accepted
    inputs = {"data": data, "mask": mask}
    for key, val in change.get("inputs", {}).items():
        inputs[key] = None if val is None else data + 1e-12
    new_params = {**params, **change.get("params", {})}
    names = {"step": "--step", "projector": "--projector", "positivity": "--positivity"}
    with pytest.raises(InputError) as info:
        io.check_fingerprint(stored, io.run_fingerprint(inputs, new_params), where="out.h5", names=names)
    msg = str(info.value)
    assert msg.startswith("out.h5: cannot resume") and "\n" not in msg
    for w in words:
        assert w in msg, msg


def test_resume_without_a_fingerprint_is_refused():
    current = io.run_fingerprint({"data": np.ones(3) * 2.5}, {"step": 1.0})
    with pytest.raises(InputError, match="no fingerprint"):
        io.check_fingerprint(None, current, where="old.h5")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_results_are_refused(rng, bad):
    a = rng.random((5, 7)).astype(np.float32)
    io.require_finite_result(a, "volume")
    a[2, 3] = bad
    with pytest.raises(NonFiniteResultError, match=r"volume: the computation diverged \(1 of 35 values.*try a smaller step"):
        io.require_finite_result(a, "volume", hint="try a smaller step")
    c = (rng.random(4) + 1j * rng.random(4)).astype(np.complex64)
    c[0] = complex(0, bad)
    with pytest.raises(NonFiniteResultError):
        io.require_finite_result(c, "image")


def test_an_output_folder_that_is_a_file_is_refused_before_any_work(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder is expected")
    with pytest.raises(InputError, match="blocker is a file, not a folder"):
        io.check_output(blocker / "sub" / "out.h5")
    assert blocker.read_text().startswith("a file")


@pytest.mark.parametrize("bad", [None, 3, ["out.h5"], ""])
def test_non_path_outputs_are_refused(bad):
    with pytest.raises(InputError, match="output path must be"):
        io.check_output(bad)
