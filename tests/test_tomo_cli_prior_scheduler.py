"""fastem tomo --prior/--prior-weight (issue 20) and --scheduler (issue 17), end to end on tiny data."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from fastem.cli.main import app
from fastem.data import tilt_angles, tilt_series, vesicle_3d


def _write_series(tmp_path_factory, name, sign):
    vol = vesicle_3d(16, seed=2).astype(np.float32)
    ang = tilt_angles(-60, 60, 6.0)
    proj = tilt_series(vol, sign * ang, centring="middle").astype(np.float32)
    proj += np.random.default_rng(0).normal(0, 0.03 * float(proj.max()), proj.shape).astype(np.float32)
    path = tmp_path_factory.mktemp(name) / "series.h5"
    with h5py.File(path, "w") as f:
        f["/exchange/data"] = proj
        f["/exchange/theta"] = ang
    return path, vol


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    return _write_series(tmp_path_factory, "tomo", 1.0)


@pytest.fixture(scope="module")
def thesis_series(tmp_path_factory):
    """A series in the thesis' angle sign (what `fastem tomo` reads by default; the `series`
    fixture above is mirrored, fine for smoke tests, not for judging errors)."""
    return _write_series(tmp_path_factory, "tomo_thesis", -1.0)


def _volume(path):
    with h5py.File(path, "r") as f:
        return f["/exchange/data"][()] if "exchange/data" in f else None


def _run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_prior_tv_auto_prints_and_records_the_weight(series, tmp_path):
    src, vol = series
    r = _run("tomo", src, "-o", tmp_path / "tv.h5", "--iterations", "30", "--projector", "linear", "--prior", "tv")
    assert r.exit_code == 0, r.output
    assert "prior tv: noise estimate" in r.output and "weight" in r.output
    import json

    with h5py.File(tmp_path / "tv.h5", "r") as f:
        cfg = json.loads(f["/process/fastem/configuration"][()])
    assert cfg["prior"] == "tv" and cfg["prior_weight"] > 0 and cfg["noise_estimate"] > 0


def _config(path):
    import json

    with h5py.File(path, "r") as f:
        return json.loads(f["/process/fastem/configuration"][()])


def test_default_is_itv_auto_with_rfree_stop_and_plain_options_keep_resire(thesis_series, tmp_path):
    """No --prior: isotropic TV with the automatic strength, the linear projector and the R-free
    stop (issue 20's default), said on the terminal; plain RESIRE's own options, --algorithm sirt/fbp
    keep the unregularised methods; --prior none runs the thesis' RESIRE (fst)."""
    src, vol = thesis_series
    r = _run("tomo", src, "-o", tmp_path / "d.h5", "--iterations", "40")
    assert r.exit_code == 0, r.output
    assert "prior itv (the default; --prior none runs the thesis' plain RESIRE)" in r.output
    cfg = _config(tmp_path / "d.h5")
    assert cfg["prior"] == "itv" and cfg["projector"] == "linear" and cfg["prior_weight"] > 0
    assert cfg["rfree_stop"]["held_out_pixels"] > 0 and cfg["rfree_stop"]["best_iteration"] >= 0
    plain = _run("tomo", src, "-o", tmp_path / "p.h5", "--iterations", "40", "--prior", "none")
    assert plain.exit_code == 0 and "prior" not in plain.output.split("resire:")[0]
    cfg_plain = _config(tmp_path / "p.h5")
    assert cfg_plain["projector"] == "fst" and "prior" not in cfg_plain
    err = [float(np.linalg.norm(_volume(tmp_path / f) - vol) / np.linalg.norm(vol)) for f in ("d.h5", "p.h5")]
    assert err[0] < 0.8 * err[1]         # 3 % noise: the default beats plain RESIRE (can fail)
    for flags in (["--step", "1.5"], ["--step-normalisation", "global"], ["--noise-level", "0.01"],
                  ["--algorithm", "sirt"]):
        out = tmp_path / f"plain{len(flags[0])}.h5"
        r = _run("tomo", src, "-o", out, "--iterations", "3", *flags)
        assert r.exit_code == 0, (flags, r.output)
        assert "prior" not in _config(out) and "prior itv" not in r.output, flags


def test_default_run_checkpoints_and_resumes_exactly(series, tmp_path):
    """The default (isotropic TV auto, R-free stop) with --checkpoint-every: interrupted in its final
    iterations and resumed, it ends where a straight run does (the search is not redone)."""
    from fastem.tomo.solver import IterativeReconstruction

    src, _ = series
    straight, crashed = tmp_path / "s.h5", tmp_path / "c.h5"
    assert _run("tomo", src, "-o", straight, "--iterations", "30", "--checkpoint-every", "10").exit_code == 0
    original = IterativeReconstruction.iterate

    def crash(self):
        # only the final solve counts from 0 with the R-free record reset; the search's trials do not
        if getattr(self, "held", None) is not None and self.rfree_history and self.iteration == 20:
            raise RuntimeError("killed")
        return original(self)

    IterativeReconstruction.iterate = crash
    try:
        with pytest.raises(RuntimeError, match="killed"):
            CliRunner().invoke(app, ["tomo", str(src), "-o", str(crashed), "--iterations", "30", "--checkpoint-every",
                                     "10"], catch_exceptions=False)
    finally:
        IterativeReconstruction.iterate = original
    r = _run("tomo", src, "-o", crashed, "--iterations", "30", "--checkpoint-every", "10", "--resume")
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(_volume(crashed), _volume(straight))


def test_prior_fixed_weight_and_refusals(series, tmp_path):
    src, _ = series
    r = _run("tomo", src, "-o", tmp_path / "h.h5", "--iterations", "10", "--projector", "linear", "--prior", "huber",
             "--prior-weight", "0.5")
    assert r.exit_code == 0, r.output
    bad = _run("tomo", src, "-o", tmp_path / "x.h5", "--prior", "tv", "--prior-weight", "-1")
    assert bad.exit_code == 2 and "--prior-weight" in bad.output
    bad = _run("tomo", src, "-o", tmp_path / "y.h5", "--algorithm", "sirt", "--prior", "tv")
    assert bad.exit_code != 0 and "--prior 'tv' regularises RESIRE: use --algorithm resire" in bad.output and not (tmp_path / "y.h5").exists()


def test_scheduler_local_equals_one_process(series, tmp_path):
    pytest.importorskip("distributed")
    src, _ = series
    base = ["tomo", src, "--algorithm", "sirt", "--iterations", "8"]
    r1 = _run(*base, "-o", tmp_path / "one.h5")
    r2 = _run(*base, "-o", tmp_path / "dask.h5", "--scheduler", "local")
    assert r1.exit_code == 0 and r2.exit_code == 0, r2.output
    np.testing.assert_array_equal(_volume(tmp_path / "one.h5"), _volume(tmp_path / "dask.h5"))
    bad = _run("tomo", src, "-o", tmp_path / "z.h5", "--projector", "fst", "--scheduler", "local")
    assert bad.exit_code != 0 and "fst" in bad.output and not (tmp_path / "z.h5").exists()


def test_api_names_parameters_and_the_cli_names_flags(series, tmp_path):
    from fastem.errors import InputError
    from fastem.tomo.job import cli_message, tomo_file

    src, _ = series
    with pytest.raises(InputError) as exc:
        tomo_file(src, tmp_path / "a.h5", algorithm="fbp", refine_angles=1)
    assert "refine_angles needs an iterative algorithm" in str(exc.value) and "--" not in str(exc.value)
    assert cli_message(str(exc.value)).startswith("--refine-angles needs an iterative --algorithm")
    with pytest.raises(InputError, match="center must be a finite detector column"):
        tomo_file(src, tmp_path / "b.h5", center=float("inf"))


def test_slabs_in_process_equal_the_whole_volume(series, tmp_path, monkeypatch):
    """`fastem tomo --slabs`: slab by slab in this process (thin slabs forced here: 4 rows each),
    written by region, SIRT and RESIRE (linear) bitwise equal to the whole; refusals name --slabs."""
    from fastem.tomo import distributed
    from fastem.tomo.job import tomo_file

    monkeypatch.setattr(distributed, "SLAB_BYTES", 1)
    monkeypatch.setattr(distributed, "SLAB_MIN_ROWS", 4)
    src, _ = series
    for extra in (["--algorithm", "sirt"], ["--algorithm", "resire", "--projector", "linear", "--prior", "none"]):
        base = ["tomo", src, "--iterations", "6", *extra]
        whole = _run(*base, "-o", tmp_path / "whole.h5", "--overwrite")
        slabs = _run(*base, "-o", tmp_path / "slabs.h5", "--overwrite", "--slabs")
        assert whole.exit_code == 0 and slabs.exit_code == 0, slabs.output
        np.testing.assert_array_equal(_volume(tmp_path / "whole.h5"), _volume(tmp_path / "slabs.h5"))
        axis = [r.output.split("axis at column ")[1].split(",")[0] for r in (whole, slabs)]
        assert axis[0] == axis[1] == "7.50"                     # the axis used: the detector middle
    _, cfg = tomo_file(src, tmp_path / "api.h5", algorithm="sirt", iterations=2, in_process_slabs=True)
    assert cfg["scheduler"] == "slabs in this process" and len(cfg["slabs"]) == 4      # 16 rows in 4-row slabs
    bad = _run("tomo", src, "-o", tmp_path / "z.h5", "--algorithm", "resire", "--projector", "fst", "--slabs")
    assert bad.exit_code != 0 and "fst" in bad.output and not (tmp_path / "z.h5").exists()
    bad = _run("tomo", src, "-o", tmp_path / "z.h5", "--algorithm", "sirt", "--slabs", "--resume")
    assert bad.exit_code != 0 and "--slabs (slabs) cannot be combined with --resume" in bad.output
    from fastem.errors import InputError
    from fastem.executor import Executor
    from fastem.tomo.job import cli_message

    class Workers(Executor):                      # any executor but the inline one
        slots = 1

    with pytest.raises(InputError) as exc:
        tomo_file(src, tmp_path / "w.h5", algorithm="sirt", in_process_slabs=True, executor=Workers())
    assert cli_message(str(exc.value)) == ("--slabs runs the slabs in this process and --scheduler on workers: "
                                           "pass one of them")
    with pytest.raises(InputError, match="in_process_slabs"):
        tomo_file(src, tmp_path / "v.h5", algorithm="sirt", in_process_slabs="yes")
