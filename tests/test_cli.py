"""The click app: global options, error handling, command discovery, bench and demo plumbing."""

import types

import pytest
from click.testing import CliRunner

from fastem import __version__, backend, demo
from fastem.cli.main import app
from fastem.config import settings


def run(*args):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_version():
    r = run("--version")
    assert r.exit_code == 0 and __version__ in r.output


def test_help_lists_discovered_commands():
    r = run("--help")
    assert r.exit_code == 0
    for name in ("bench", "demo"):
        assert name in r.output


def test_unknown_command_is_a_usage_error():
    assert run("no-such-command").exit_code == 2


def test_bad_device_is_a_usage_error():
    r = run("--device", "tpu", "bench", "--list")
    assert r.exit_code == 2 and "--device" in r.output


@pytest.mark.skipif(backend.cupy_available(), reason="a GPU is present")
def test_gpu_requested_without_gpu_is_one_line_exit_1():
    r = CliRunner().invoke(app, ["--device", "cuda", "bench", "--list"])
    assert r.exit_code == 1
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("fastem: error:") and "GPU" in lines[0]


def test_threads_option_sets_threads():
    r = run("--threads", "1", "bench", "--list")
    assert r.exit_code == 0 and settings.threads == 1


def test_bench_list_and_unknown_case():
    r = run("bench", "--list")
    assert r.exit_code == 0 and "fft" in r.output
    r = CliRunner().invoke(app, ["bench", "nope"])
    assert r.exit_code == 1 and "unknown bench case" in r.output


def test_bench_quick_writes_json(tmp_path):
    r = run("--quiet", "bench", "fft", "--quick", "--out-dir", str(tmp_path))
    assert r.exit_code == 0, r.output
    files = list(tmp_path.glob("fft-cpu-*.json"))
    assert len(files) == 1
    import json

    data = json.loads(files[0].read_text())
    assert data["machine"]["cores_available"] >= 1
    impls = {m["impl"] for m in data["measurements"]}
    assert any(i.startswith("fastem") for i in impls) and "numpy.fft.fftn" in impls
    assert all(m["median_s"] > 0 for m in data["measurements"])


def _fake_job(order, result=None, fail=False):
    mod = types.ModuleType("fake_demo")
    mod.ORDER = order

    def run_job(out_dir, *, overwrite=True, quick=False):
        if fail:
            raise RuntimeError("boom")
        (out_dir / f"job{order}.txt").write_text("x")
        return [{"output": f"job{order}.txt", "result": result}]

    mod.run = run_job
    return mod


def test_demo_runs_jobs_in_order_and_reports_failures(tmp_path, monkeypatch):
    jobs = [("b", _fake_job(2, "second")), ("a", _fake_job(1, "first")), ("c", _fake_job(3, fail=True))]
    monkeypatch.setattr(demo, "discover_jobs", lambda: sorted(jobs, key=lambda j: j[1].ORDER))
    r = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "d")])   # the summary table (not --quiet)
    assert r.exit_code == 1
    assert r.output.index("first") < r.output.index("second")
    assert "FAILED: RuntimeError: boom" in r.output and "c" in r.output
    assert (tmp_path / "d" / "job1.txt").exists() and (tmp_path / "d" / "job2.txt").exists()


def test_demo_refuses_non_empty_folder_without_overwrite(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "discover_jobs", lambda: [("a", _fake_job(1, "ok"))])
    out = tmp_path / "d"
    out.mkdir()
    (out / "old.txt").write_text("keep me")
    r = CliRunner().invoke(app, ["demo", "--out", str(out)])
    assert r.exit_code == 1 and "--overwrite" in r.output
    assert (out / "old.txt").read_text() == "keep me"
    r = CliRunner().invoke(app, ["demo", "--out", str(out), "--overwrite"])
    assert r.exit_code == 0 and "ok" in r.output


def test_demo_only_unknown_job(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "discover_jobs", lambda: [("a", _fake_job(1, "ok"))])
    r = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "d"), "--only", "zzz"])
    assert r.exit_code == 1 and "unknown demo job" in r.output
