"""Fault injection for readers, ``info``, the CLI shell, ``bench`` and ``demo``.

Disk full (``ulimit -f`` in a child), warnings, unreadable files, garbage and truncated MRC
files, HDF5 external links and virtual datasets, ``bench --out-dir``, interrupted demos
(SIGKILL, then a rerun without ``--overwrite``) and misuse of the public ``fastem.io``
functions. Every case expects a one-line error naming what and where, never a traceback.
"""

from __future__ import annotations

import builtins
import json
import os
import signal
import subprocess
import time
import types
import warnings
from pathlib import Path

import click
import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from fastem import demo, io
from fastem.cli.main import app
from fastem.config import settings
from fastem.errors import FastemError, InputError, OutputExistsError

from fault_tools import FASTEM, assert_clean_error, leftover_temporaries, run_cli


def invoke(*args):
    """Run the CLI in this process; the result quacks like a CompletedProcess for assert_clean_error."""
    r = CliRunner().invoke(app, [str(a) for a in args])
    return types.SimpleNamespace(returncode=r.exit_code, stderr=r.stderr, stdout=r.stdout, exception=r.exception)


# ------------------------------------------------------------------------------------------
# small inputs
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("faults_io")
    rng = np.random.default_rng(7)
    with h5py.File(d / "secret.h5", "w") as f:
        f["x"] = rng.random((4, 5))
    with h5py.File(d / "extlink.h5", "w") as f:
        f["plain"] = rng.random((3, 3))
        f["lnk"] = h5py.ExternalLink("secret.h5", "/x")
    layout = h5py.VirtualLayout(shape=(4, 5), dtype="f8")
    layout[:] = h5py.VirtualSource(str(d / "secret.h5"), "x", shape=(4, 5))
    with h5py.File(d / "vds.h5", "w") as f:
        f.create_virtual_dataset("v", layout)
    local = h5py.VirtualLayout(shape=(6,), dtype="f8")
    local[:] = h5py.VirtualSource(".", "a", shape=(6,))
    with h5py.File(d / "vds_local.h5", "w") as f:
        f["a"] = rng.random(6)
        f.create_virtual_dataset("v", local)
    good = rng.random((4, 5, 6)).astype(np.float32)
    io.write_mrc(d / "good.mrc", good, 1.5)
    raw = (d / "good.mrc").read_bytes()
    (d / "truncated.mrc").write_bytes(raw[:-100])
    (d / "text.mrc").write_text("this is a text file, not a map\n" * 60)
    (d / "short.mrc").write_bytes(b"MAP " * 10)
    bad_mode = bytearray(raw)
    bad_mode[12:16] = np.int32(77).tobytes()  # map mode 77 does not exist
    (d / "badmode.mrc").write_bytes(bytes(bad_mode))
    (d / "good.tlt").write_text("".join(f"{a}\n" for a in (-10.0, 0.0, 10.0, 20.0)))
    io.write_tiff(d / "good.tif", rng.random((5, 6)).astype(np.float32))
    return types.SimpleNamespace(dir=d, good=good)


# ------------------------------------------------------------------------------------------
# disk full: one line, no temporaries, an existing output intact
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tilt_input(tmp_path_factory):
    from fastem.data import save_tilt_series, tilt_angles, tilt_series, vesicle_3d

    d = tmp_path_factory.mktemp("tilt")
    theta = tilt_angles(-60.0, 60.0, 10.0)
    save_tilt_series(d / "t.h5", tilt_series(vesicle_3d(24, seed=0), theta, noise_sigma=0.01, seed=0), theta)
    return d / "t.h5"


@pytest.fixture(scope="module")
def cxi_input(tmp_path_factory):
    from fastem.data import cdi_intensities, save_cdi, vesicle_2d

    d = tmp_path_factory.mktemp("cxi")
    save_cdi(d / "p.cxi", cdi_intensities(vesicle_2d(64, seed=0), r_noise=0.06, beamstop_radius=1.5, seed=0))
    return d / "p.cxi"


@pytest.mark.parametrize("existing", [True, False], ids=["existing-output", "new-output"])
@pytest.mark.parametrize("command", ["tomo", "phase"])
def test_disk_full_is_one_line_and_leaves_outputs_intact(tmp_path, tilt_input, cxi_input, command, existing):
    src, suffix = (tilt_input, ".h5") if command == "tomo" else (cxi_input, ".cxi")
    out = tmp_path / f"out{suffix}"
    if existing:
        out.write_bytes(b"the previous result")
    args = ["--quiet", command, src, "-o", out, "--iterations", 2] + (["--overwrite"] if existing else [])
    proc = run_cli(args, fsize_kb=50, timeout=120)
    assert_clean_error(proc, "no space left", str(out))
    assert proc.returncode == 1  # no SIGSEGV / SIGBUS from HDF5 closing the failed file again
    assert not leftover_temporaries(tmp_path)
    if existing:
        assert out.read_bytes() == b"the previous result"
    else:
        assert not out.exists()


def test_disk_full_during_demo_then_rerun_completes(tmp_path):
    out = tmp_path / "demo"
    proc = run_cli(["--quiet", "demo", "--quick", "--only", "data", "--out", out], fsize_kb=50, timeout=120)
    msg = assert_clean_error(proc, "no space left", "data")
    assert "again" in msg  # says how to finish
    assert not leftover_temporaries(out)
    proc = run_cli(["--quiet", "demo", "--quick", "--only", "data", "--out", out], timeout=120)  # no --overwrite
    assert proc.returncode == 0, proc.stderr
    assert (out / "data" / "vesicle_cdi.cxi").exists() and (out / "data" / "preview.png").exists()
    assert "data" in json.loads((out / demo.MANIFEST).read_text())["jobs"]


def test_sigxfsz_is_ignored_by_the_cli(tmp_path):
    """A plain Python write past ``ulimit -f`` inside the CLI process fails with EFBIG (reported as
    one line), instead of SIGXFSZ killing the process."""
    big = tmp_path / "big.bin"
    code = ("import sys; from fastem.cli.main import ignore_sigxfsz; ignore_sigxfsz()\n"
            f"try:\n    open({str(big)!r}, 'wb').write(b'x' * 200_000)\n"
            "except OSError as exc:\n    print('errno', exc.errno)\n")
    import resource
    import sys

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (50 * 1024, 50 * 1024))

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, preexec_fn=limit, timeout=60)
    assert proc.returncode == 0 and "errno 27" in proc.stdout, proc.stderr


@pytest.mark.parametrize("exc, words", [
    (OSError(28, "No space left on device", "out.h5"), ("no space left", "out.h5")),
    (OSError(27, "File too large", "d/.out.h5.123-abcd1234.tmp"), ("no space left", "d/out.h5")),
    (RuntimeError("Can't decrement id ref count (file write failed: errno = 28, error message = 'x')"),
     ("no space left",)),
    (PermissionError(13, "Permission denied", "/root/x.h5"), ("/root/x.h5", "permission denied")),
], ids=["ENOSPC", "EFBIG-temporary", "h5py-wrapped", "EACCES"])
def test_os_errors_escaping_a_command_are_one_line(exc, words):
    from fastem.cli.main import os_error_message

    msg = os_error_message(exc, [])
    assert msg is not None and "\n" not in msg
    for w in words:
        assert w.lower() in msg.lower()
    assert os_error_message(ValueError("a bug"), []) is None  # bugs keep their traceback


# ------------------------------------------------------------------------------------------
# warnings: one line, no Python source line (verbose with --debug)
# ------------------------------------------------------------------------------------------
@click.command("warn-test")
def _warning_command():
    from fastem.io.validate import DataWarning

    warnings.warn("data.h5:/exchange/data: 3 non-finite values\nset to 0", DataWarning)
    click.echo("done")


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
def test_warnings_are_one_line(debug):
    app.add_command(_warning_command)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            r = invoke(*(["--debug"] if debug else []), "warn-test")
    finally:
        app.commands.pop("warn-test", None)
    assert r.returncode == 0 and "done" in r.stdout
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    if debug:  # Python's own format (pytest records it here), not the one-line form
        assert not any(ln.startswith("fastem: warning:") for ln in lines)
    else:
        assert lines == ["fastem: warning: data.h5:/exchange/data: 3 non-finite values set to 0"]


# ------------------------------------------------------------------------------------------
# unreadable files: "permission denied", naming the file
# ------------------------------------------------------------------------------------------
_READERS = {
    "read_dataset": lambda p: io.read_dataset(f"{p}:/x"),
    "read_images": lambda p: io.read_images(p),
    "describe": lambda p: io.describe(p),
    "read_mrc": lambda p: io.read_mrc(p),
    "read_tiff": lambda p: io.read_tiff(p),
    "read_tlt": lambda p: io.read_tlt(p),
    "read_cxi": lambda p: io.read_cxi(p),
    "read_dxchange": lambda p: io.read_dxchange(p),
}
_READER_FILES = {"read_dataset": "secret.h5", "read_images": "secret.h5", "describe": "secret.h5",
                 "read_mrc": "good.mrc", "read_tiff": "good.tif", "read_tlt": "good.tlt", "read_cxi": "secret.h5",
                 "read_dxchange": "secret.h5"}


@pytest.mark.parametrize("reader", sorted(_READERS))
def test_unreadable_file_says_permission_denied(files, monkeypatch, reader):
    target = files.dir / _READER_FILES[reader]
    real_open = builtins.open

    def refusing_open(file, *args, **kwargs):
        if os.fspath(file) == os.fspath(target):
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refusing_open)
    with pytest.raises(InputError, match="permission denied") as info:
        _READERS[reader](target)
    assert str(target) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="permissions do not apply to root")
def test_unreadable_file_cli(files, tmp_path):
    p = tmp_path / "locked.h5"
    p.write_bytes((files.dir / "secret.h5").read_bytes())
    p.chmod(0)
    try:
        assert_clean_error(invoke("info", p), "permission denied", str(p))
    finally:
        p.chmod(0o644)


# ------------------------------------------------------------------------------------------
# MRC: garbage, truncated, unknown mode -> one line from info and from every reader
# ------------------------------------------------------------------------------------------
_BAD_MRC = {"text.mrc": "not an mrc file", "truncated.mrc": "truncated", "short.mrc": "mrc",
            "badmode.mrc": "map mode 77"}


@pytest.mark.parametrize("name", sorted(_BAD_MRC))
@pytest.mark.parametrize("reader", ["info", "read_mrc", "read_images", "read_tilt_series"])
def test_bad_mrc_is_refused_everywhere(files, name, reader):
    path = files.dir / name
    if reader == "info":
        assert_clean_error(invoke("info", path), _BAD_MRC[name], str(path))
        return
    fn = {"read_mrc": io.read_mrc, "read_images": io.read_images,
          "read_tilt_series": lambda p: io.read_tilt_series(p, tlt=files.dir / "good.tlt")}[reader]
    with pytest.raises(InputError, match=_BAD_MRC[name].split()[0]) as info:
        fn(path)
    assert str(path) in str(info.value)


def test_good_mrc_still_reads_and_describes(files):
    data, voxel = io.read_mrc(files.dir / "good.mrc")
    np.testing.assert_array_equal(data, files.good)
    assert voxel == (1.5, 1.5, 1.5)
    r = invoke("info", files.dir / "good.mrc")
    assert r.returncode == 0 and "(4, 5, 6)" in r.stdout


# ------------------------------------------------------------------------------------------
# HDF5 external links and virtual datasets mapping other files
# ------------------------------------------------------------------------------------------
_LINK_CASES = {
    "read_dataset-link": (lambda d, **kw: io.read_dataset(f"{d}/extlink.h5:/lnk", **kw), "secret.h5:/x"),
    "read_dataset-plain": (lambda d, **kw: io.read_dataset(f"{d}/extlink.h5:/plain", **kw), "secret.h5:/x"),
    "read_dataset-vds": (lambda d, **kw: io.read_dataset(f"{d}/vds.h5", **kw), "secret.h5"),
    "read_images-vds": (lambda d, **kw: io.read_images(f"{d}/vds.h5:/v", **kw), "secret.h5"),
    "read_array-link": (lambda d, **kw: io.read_array(f"{d}/extlink.h5:/lnk", **kw), "secret.h5:/x"),
    "read_emd": (lambda d, **kw: io.read_emd(f"{d}/extlink.h5", **kw), "secret.h5:/x"),
}


@pytest.mark.parametrize("case", sorted(_LINK_CASES))
def test_external_links_refused_unless_allowed(files, case):
    fn, target = _LINK_CASES[case]
    with pytest.raises(InputError, match="allow-external-links") as info:
        fn(files.dir)
    assert target in str(info.value) and "\n" not in str(info.value)
    if case.startswith(("read_dataset-link", "read_dataset-vds", "read_images", "read_array")):
        np.testing.assert_array_equal(fn(files.dir, allow_external_links=True),
                                      h5py.File(files.dir / "secret.h5", "r")["x"][()])


def test_virtual_dataset_within_its_own_file_is_fine(files):
    with h5py.File(files.dir / "vds_local.h5", "r") as f:
        expected = f["a"][()]
    np.testing.assert_array_equal(io.read_dataset(f"{files.dir}/vds_local.h5:/v"), expected)


def test_external_links_cli_flag(files):
    spec = f"{files.dir}/extlink.h5:/lnk"
    assert_clean_error(invoke("info", spec), "external link", "secret.h5:/x", "--allow-external-links")
    r = invoke("--allow-external-links", "info", spec)
    assert r.returncode == 0 and "(4, 5)" in r.stdout
    assert settings.allow_external_links is False  # the flag lasts one command
    r = invoke("info", files.dir / "extlink.h5")  # the tree shows the link without following it
    assert r.returncode == 0 and "lnk -> secret.h5:/x  (external link)" in r.stdout
    r = invoke("info", files.dir / "vds.h5")
    assert r.returncode == 0 and "virtual dataset mapping" in r.stdout


def test_external_link_in_a_command_input(files, tmp_path):
    """A command's reader refuses the link before any work (here: tomo on a linked file)."""
    out = tmp_path / "o.h5"
    assert_clean_error(invoke("--quiet", "tomo", files.dir / "extlink.h5", "-o", out), "external link",
                       "secret.h5")
    assert not out.exists()


# ------------------------------------------------------------------------------------------
# bench --out-dir: checked and created before anything runs; never inside site-packages
# ------------------------------------------------------------------------------------------
def test_bench_creates_a_new_out_dir_first(tmp_path, monkeypatch):
    import fastem.bench

    seen = []

    def fake_run(ctx):
        seen.append(os.path.isdir(tmp_path / "new" / "sub"))  # already there while the case runs
        ctx.measure("fake", "1", "fastem", lambda: None, role="fastem")

    monkeypatch.setattr(fastem.bench, "discover_cases",
                        lambda: {"fake": types.SimpleNamespace(NAME="fake", run=fake_run)})
    r = invoke("--quiet", "bench", "fake", "--quick", "--out-dir", tmp_path / "new" / "sub")
    assert r.returncode == 0, r.stderr
    assert seen == [True] and len(list((tmp_path / "new" / "sub").glob("fake-*.json"))) == 1


def test_bench_bad_out_dir_fails_before_running(tmp_path, monkeypatch):
    import fastem.bench

    ran = []
    monkeypatch.setattr(fastem.bench, "discover_cases",
                        lambda: {"fake": types.SimpleNamespace(NAME="fake", run=lambda ctx: ran.append(1))})
    (tmp_path / "afile").write_text("x")
    r = invoke("--quiet", "bench", "fake", "--out-dir", tmp_path / "afile" / "sub")
    assert_clean_error(r, "--out-dir", "cannot create")
    assert not ran


def test_bench_results_never_inside_an_installed_package(tmp_path, monkeypatch):
    from fastem import benchmark

    monkeypatch.setattr(benchmark, "_PACKAGE_PARENT", Path("/usr/lib/python3/site-packages"))
    monkeypatch.chdir(tmp_path)
    assert benchmark.results_dir() == tmp_path
    assert benchmark.prepare_results_dir() == tmp_path


# ------------------------------------------------------------------------------------------
# demo: interrupted runs are completed by a rerun without --overwrite
# ------------------------------------------------------------------------------------------
def _job(order, calls, fail=False):
    mod = types.ModuleType(f"job{order}")
    mod.ORDER = order

    def run(out_dir, *, overwrite=True, quick=False):
        calls.append(order)
        if fail:
            raise RuntimeError("interrupted")
        (out_dir / f"job{order}.txt").write_text("x")
        return [{"output": f"job{order}.txt", "result": f"r{order}"}]

    mod.run = run
    return mod


def test_demo_rerun_skips_completed_jobs(tmp_path, monkeypatch):
    calls = []
    jobs = [("a", _job(1, calls)), ("b", _job(2, calls, fail=True))]
    monkeypatch.setattr(demo, "discover_jobs", lambda: jobs)
    out = tmp_path / "d"
    assert_clean_error(invoke("--quiet", "demo", "--out", out), "failed: b", "again")
    assert calls == [1, 2]
    jobs[1] = ("b", _job(2, calls))
    r = invoke("demo", "--out", out)  # no --overwrite: completes what is missing (the table: not --quiet)
    assert r.returncode == 0, r.stderr
    assert calls == [1, 2, 2] and "r1" in r.stdout and "r2" in r.stdout
    (out / "job1.txt").unlink()  # a completed job whose output vanished runs again
    assert invoke("--quiet", "demo", "--out", out).returncode == 0 and calls == [1, 2, 2, 1]
    assert invoke("--quiet", "demo", "--out", out, "--overwrite").returncode == 0 and calls[-2:] == [1, 2]


@pytest.mark.parametrize("case", ["foreign-folder", "other-quick", "file"])
def test_demo_refuses_what_it_cannot_resume(tmp_path, monkeypatch, case):
    calls = []
    monkeypatch.setattr(demo, "discover_jobs", lambda: [("a", _job(1, calls))])
    out = tmp_path / "d"
    if case == "foreign-folder":
        out.mkdir()
        (out / "thesis.tex").write_text("keep me")
        words = ("not a fastem demo folder", "--overwrite")
    elif case == "other-quick":
        assert invoke("--quiet", "demo", "--out", out).returncode == 0
        words = ("without --quick", "--overwrite")
    else:
        out.write_text("a file")
        words = ("--out", "is a file")
    n = len(calls)
    assert_clean_error(invoke("--quiet", "demo", "--out", out, *(["--quick"] if case == "other-quick" else [])),
                       *words, status=2 if case == "file" else 1)
    assert len(calls) == n
    if case == "foreign-folder":
        assert (out / "thesis.tex").read_text() == "keep me"
    with pytest.raises((OutputExistsError, InputError)):
        demo.run_demo(out, quick=case == "other-quick", echo=lambda s: None)


def test_demo_killed_midway_is_completed_by_a_rerun(tmp_path):
    out = tmp_path / "demo"
    env = dict(os.environ, FASTEM_FFT_PLANNER="FFTW_ESTIMATE")
    child = subprocess.Popen([*FASTEM, "--quiet", "demo", "--quick", "--only", "data", "--out", str(out)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    first = out / "data" / "vesicle_cdi.cxi"
    deadline = time.monotonic() + 120
    while not first.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    manifest = json.loads((out / demo.MANIFEST).read_text())
    if "data" in manifest["jobs"]:
        pytest.skip("the job finished before it could be killed")
    proc = run_cli(["--quiet", "demo", "--quick", "--only", "data", "--out", out], timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert not leftover_temporaries(out) and not list(out.glob(".*.lock"))
    assert "data" in json.loads((out / demo.MANIFEST).read_text())["jobs"]
    for name in ("vesicle_cdi.cxi", "vesicle_3d.mrc", "vesicle_tilt.h5", "vesicle_tilt.tlt", "mixture.h5"):
        assert (out / "data" / name).stat().st_size > 0
    assert io.read_mrc(out / "data" / "vesicle_3d.mrc")[0].shape == (32, 32, 32)


# ------------------------------------------------------------------------------------------
# API misuse of the public io functions: one-line FastemErrors naming the parameter
# ------------------------------------------------------------------------------------------
_MISUSE = [
    ("read_dataset", lambda b: io.read_dataset(b), "spec_or_path"),
    ("read_dataset-dataset", lambda b: io.read_dataset("x.h5", b), "dataset"),
    ("parse_ref", lambda b: io.parse_ref(b), "spec"),
    ("format_ref", lambda b: io.format_ref(b), "path"),
    ("read_mrc", lambda b: io.read_mrc(b), "path"),
    ("write_mrc-array", lambda b: io.write_mrc("never.mrc", b), "array"),
    ("write_mrc-path", lambda b: io.write_mrc(b, np.ones((3, 3))), "path"),
    ("read_tlt", lambda b: io.read_tlt(b), "path"),
    ("write_tlt-path", lambda b: io.write_tlt(b, [1.0, 2.0]), "path"),
    ("read_tilt_series", lambda b: io.read_tilt_series(b), "path"),
    ("describe", lambda b: io.describe(b), "path"),
    ("detect_format", lambda b: io.detect_format(b), "path"),
    ("read_images", lambda b: io.read_images(b), "spec"),
    ("read_array", lambda b: io.read_array(b), "spec"),
    ("read_tiff", lambda b: io.read_tiff(b), "path"),
    ("write_tiff-array", lambda b: io.write_tiff("never.tif", b), "array"),
    ("write_tiff-path", lambda b: io.write_tiff(b, np.ones((3, 3))), "path"),
    ("read_emd", lambda b: io.read_emd(b), "path"),
    ("write_emd-arrays", lambda b: io.write_emd("never.emd", b), "arrays"),
    ("write_emd-path", lambda b: io.write_emd(b, {"a": np.ones(3)}), "path"),
    ("list_emd_arrays", lambda b: io.list_emd_arrays(b), "path"),
    ("open_h5", lambda b: io.open_h5(b).__enter__(), "path"),
    ("write_provenance", lambda b: io.write_provenance(b), "h5group"),
    ("read_provenance", lambda b: io.read_provenance(b), "h5group"),
    ("write_process_group", lambda b: io.write_process_group(b, None), "group"),
    ("read_process_group", lambda b: io.read_process_group(b), "group"),
    ("check_finite", lambda b: io.check_finite(b, "arr"), "arr"),
]


@pytest.mark.parametrize("bad", [None, 123, [1, 2], 3.5], ids=["None", "int", "list", "float"])
@pytest.mark.parametrize("name, call, param", _MISUSE, ids=[m[0] for m in _MISUSE])
def test_io_api_misuse_names_the_parameter(tmp_path, monkeypatch, name, call, param, bad):
    monkeypatch.chdir(tmp_path)
    if name == "read_dataset-dataset" and bad is None:
        pytest.skip("dataset=None is valid (the file's only dataset)")
    with pytest.raises(FastemError) as info:
        call(bad)
    msg = str(info.value)
    assert "\n" not in msg and param in msg, msg
    assert not list(tmp_path.glob("never.*")), "nothing is written on misuse"


@pytest.mark.parametrize("call, words", [
    (lambda: io.read_dataset("x.h5", ndim="three"), "ndim"),
    (lambda: io.read_images("x.h5", dtype="not-a-dtype"), "dtype"),
    (lambda: io.write_mrc("never.mrc", np.ones((3, 3)), voxel_size="big"), "voxel_size"),
    (lambda: io.write_mrc("never.mrc", np.ones((3, 3)), voxel_size=-1.0), "voxel_size"),
    (lambda: io.write_tlt("never.tlt", {"a": 1}), "angles"),
    (lambda: io.write_tlt("never.tlt", [0.0, float("nan")]), "non-finite"),
    (lambda: io.check_ndim(np.ones(3), None), "ndim"),
    (lambda: io.check_finite(np.ones(3), policy="drop"), "policy"),
    (lambda: io.angles_to_degrees({"a": 1}), "angles"),
    (lambda: io.read_emd("x.emd", name=5), "name"),
    (lambda: io.write_emd("never.emd", {"a/b": np.ones(3)}), "array name"),
    (lambda: io.write_emd("never.emd", {"a": "text"}), "arrays['a']"),
], ids=["ndim", "dtype", "voxel-text", "voxel-negative", "angles-dict", "angles-nan", "check_ndim",
        "policy", "angles_to_degrees", "emd-name", "emd-array-name", "emd-array-text"])
def test_io_api_bad_values_are_named(tmp_path, monkeypatch, call, words):
    monkeypatch.chdir(tmp_path)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["d"] = np.ones((3, 3))
    io.write_emd(tmp_path / "x.emd", {"img": np.ones((2, 2))})
    with pytest.raises(FastemError) as info:
        call()
    assert words in str(info.value)
    assert not list(tmp_path.glob("never.*"))


def test_read_tilt_series_refuses_a_complex_mrc_stack(tmp_path):
    import mrcfile

    from fastem import io as fio
    from fastem.errors import InputError

    stack = tmp_path / "series.mrc"
    rng = np.random.default_rng(3)
    with mrcfile.new(stack) as mrc:
        mrc.set_data((rng.random((3, 8, 8)) + 1j * rng.random((3, 8, 8))).astype(np.complex64))
    (tmp_path / "series.tlt").write_text("-10\n0\n10\n")
    with pytest.raises(InputError, match="complex values"):
        fio.read_tilt_series(stack)
    assert fio.find_tlt(stack) == tmp_path / "series.tlt"


def test_demo_discovery_survives_a_package_that_needs_an_optional_extra(monkeypatch):
    """Fault case: without torch, looking for ``fastem.nn.demo`` imported ``fastem.nn``, which
    requires torch, and every ``fastem demo`` failed with an ImportError."""
    import importlib.util

    real = importlib.util.find_spec

    def find_spec(name, *a, **k):
        if name.startswith("fastem.nn"):
            raise ImportError("this feature needs PyTorch")
        return real(name, *a, **k)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    names = [n for n, _ in demo.discover_jobs()]
    assert "nn" not in names and {"data", "scan", "tomo"} <= set(names)
