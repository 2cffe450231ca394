"""``scan simulate`` on Dask workers (issue 17): the same file as in one process, a worker lost
mid-run recomputed, images read by the workers themselves."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

distributed = pytest.importorskip("distributed")

from dask_support import cluster, first_worker, is_gone, kill_worker  # noqa: E402,F401  (cluster: a fixture)

from fastem.cli.main import app  # noqa: E402
from fastem.executor import InlineExecutor  # noqa: E402
from fastem.scan.job import ImageStack, SyntheticStack, simulate_to_file  # noqa: E402

NAMES = ("partial", "path", "truth")


def _read(path):
    with h5py.File(path, "r") as f:
        return {k: f["scan"][k][()] for k in NAMES}, dict(f["scan"].attrs)


def _same(a, b):
    (da, attrs_a), (db, attrs_b) = _read(a), _read(b)
    for k in NAMES:
        np.testing.assert_array_equal(da[k], db[k], err_msg=k)
    for k in ("coverage_measure", "antialias", "scan_blurred", "measured_coverage", "dwell_fraction"):
        np.testing.assert_array_equal(attrs_a[k], attrs_b[k], err_msg=k)


def test_file_input_equals_one_process(cluster, tmp_path, rng):
    src = tmp_path / "imgs.h5"
    with h5py.File(src, "w") as f:
        f["images"] = rng.standard_normal((7, 40, 33)).astype(np.float32)   # odd sizes, a short last block
    with ImageStack(f"{src}:/images") as st:
        simulate_to_file(tmp_path / "one.h5", st, "spiral", 0.1, seed=4, chunk=3, dose=50.0)
    with ImageStack(f"{src}:/images") as st:
        assert st.source(0, 3) == ("file", f"{src}:/images")          # workers open the file themselves
        simulate_to_file(tmp_path / "dask.h5", st, "spiral", 0.1, seed=4, chunk=3, dose=50.0, executor=cluster)
    _same(tmp_path / "one.h5", tmp_path / "dask.h5")


def test_array_and_grid_paths_equal_one_process(cluster, tmp_path, rng):
    imgs = rng.random((5, 32, 32))
    simulate_to_file(tmp_path / "one.h5", imgs, "grid", 0.3, seed=2, chunk=2, executor=InlineExecutor())
    simulate_to_file(tmp_path / "dask.h5", imgs, "grid", 0.3, seed=2, chunk=2, executor=cluster)
    _same(tmp_path / "one.h5", tmp_path / "dask.h5")


def test_worker_killed_mid_run_is_recomputed(cluster, tmp_path):
    """After the first block arrives, one worker process dies (os._exit): Dask reruns its tasks on the
    other (and on the restarted one); the file is still complete and equal to the one-process file."""
    simulate_to_file(tmp_path / "one.h5", SyntheticStack(8, 32, seed=1), "spiral", 0.1, seed=3, chunk=1)
    victim = first_worker(cluster)
    killed = []

    class KillOnFirstBlock:
        def update(self, k):
            if not killed:
                killed.append(victim)
                kill_worker(cluster, victim)

    simulate_to_file(tmp_path / "dask.h5", SyntheticStack(8, 32, seed=1), "spiral", 0.1, seed=3, chunk=1,
                     executor=cluster, bar=KillOnFirstBlock())
    assert killed
    assert is_gone(cluster, victim)     # it really died (its nanny restarts a new one)
    _same(tmp_path / "one.h5", tmp_path / "dask.h5")


def test_cli_scheduler_local_equals_plain(tmp_path):
    runner = CliRunner()
    base = ["scan", "simulate", "--synthetic", "3", "--chunk", "2", "--seed", "5"]
    r1 = runner.invoke(app, ["-q", *base, "-o", str(tmp_path / "plain.h5")])
    assert r1.exit_code == 0, r1.output
    r2 = runner.invoke(app, ["-q", *base, "-o", str(tmp_path / "dask.h5")], env={"FASTEM_SCHEDULER": "local"})
    assert r2.exit_code == 0, r2.output
    _same(tmp_path / "plain.h5", tmp_path / "dask.h5")
    with h5py.File(tmp_path / "dask.h5", "r") as f:
        config = json.loads(f["process/fastem/configuration"][()])
    assert config["scheduler"] == "local"


def test_cli_unreachable_scheduler_is_a_clear_error(tmp_path):
    r = CliRunner().invoke(app, ["scan", "simulate", "--synthetic", "2", "-o", str(tmp_path / "x.h5"),
                                 "--scheduler", "tcp://127.0.0.1:1"])
    assert r.exit_code != 0
    assert "scheduler tcp://127.0.0.1:1 (--scheduler): cannot connect" in r.output and not (tmp_path / "x.h5").exists()


def _completed(path):
    with h5py.File(path, "r") as f:
        return f["scan/completed"][()], json.loads(f["process/fastem/configuration"][()])


def test_complete_baselines_on_workers_equal_one_process(cluster, tmp_path):
    from fastem.scan.job import complete_file

    simulate_to_file(tmp_path / "scans.h5", SyntheticStack(7, 40, seed=2), "spiral", 0.1, seed=1, chunk=3)
    for method in ("linear", "nearest"):
        r1 = complete_file(tmp_path / "scans.h5", tmp_path / f"{method}1.h5", method, chunk=2)
        r2 = complete_file(tmp_path / "scans.h5", tmp_path / f"{method}2.h5", method, chunk=2, executor=cluster)
        np.testing.assert_array_equal(_completed(tmp_path / f"{method}1.h5")[0], _completed(tmp_path / f"{method}2.h5")[0])
        np.testing.assert_array_equal(r1["rmse"], r2["rmse"])     # per image, in image order
        np.testing.assert_array_equal(r1["ssim"], r2["ssim"])
        assert len(r1["rmse"]) == 7


def test_cli_complete_with_scheduler(tmp_path):
    runner = CliRunner()
    assert runner.invoke(app, ["-q", "scan", "simulate", "--synthetic", "2", "-o", str(tmp_path / "s.h5")]).exit_code == 0
    plain = runner.invoke(app, ["-q", "scan", "complete", str(tmp_path / "s.h5"), "-o", str(tmp_path / "a.h5")])
    dask = runner.invoke(app, ["-q", "scan", "complete", str(tmp_path / "s.h5"), "-o", str(tmp_path / "b.h5"),
                               "--scheduler", "local"])
    assert plain.exit_code == 0 and dask.exit_code == 0, dask.output
    (a, _), (b, config) = _completed(tmp_path / "a.h5"), _completed(tmp_path / "b.h5")
    np.testing.assert_array_equal(a, b)
    assert config["scheduler"] == "local"
    bad = runner.invoke(app, ["scan", "complete", str(tmp_path / "s.h5"), "-o", str(tmp_path / "c.h5"),
                              "--method", "model", "--scheduler", "local"])
    assert bad.exit_code != 0 and "--scheduler" in bad.output and not (tmp_path / "c.h5").exists()
