"""``fastem phase``: CXI in, CXI out, provenance, results, overwrite rules, checkpoint / resume."""

import numpy as np
import pytest
from click.testing import CliRunner

from fastem.cli.main import app
from fastem.data import cdi_intensities, save_cdi, vesicle_2d
from fastem.io import CXI_CHECKPOINT, load_checkpoint_file, read_cxi_reconstruction
from fastem.phase.job import phase_file


@pytest.fixture(scope="module")
def cxi_in(tmp_path_factory):
    path = tmp_path_factory.mktemp("phase") / "in.cxi"
    save_cdi(path, cdi_intensities(vesicle_2d(32, seed=0), r_noise=0.06, beamstop_radius=1.5, seed=0))
    return path


def run(*args):
    return CliRunner().invoke(app, ["--quiet", *map(str, args)])


def test_phase_command_writes_cxi_with_provenance_and_results(cxi_in, tmp_path):
    out = tmp_path / "out.cxi"
    r = run("phase", cxi_in, "-o", out, "--algorithm", "gps-r", "--iterations", 30, "--runs", 3, "--keep", 2,
            "--seed", 5, "--support", f"{cxi_in}:/entry_1/sample_1/support", "--sigma-schedule", "0:0.01,0.5:0.1")
    assert r.exit_code == 0, r.output
    rec = read_cxi_reconstruction(out)
    assert rec.image.shape == (32, 32) and rec.support.shape == (32, 32) and rec.support.any()
    assert rec.provenance["program"] == "fastem" and rec.provenance["command"].startswith("fastem")
    cfg = rec.provenance["configuration"]
    assert cfg["algorithm"] == "gps-r" and cfg["runs"] == 3 and cfg["seed"] == 5 and cfg["iterations"] == 30
    assert cfg["sigma_schedule"] == "0:0.01,0.5:0.1" and cfg["support"].endswith("/entry_1/sample_1/support")
    res = rec.results
    assert res["final_rf"].shape == (3,) and res["rf_history"].shape[1] == 3
    assert res["kept_runs"].shape == (2,) and res["kept_variance"].shape == (32, 32)
    assert res["best_rf"] == pytest.approx(res["final_rf"].min())
    assert 0 < res["r_real"] < 2  # the input holds a ground truth
    assert rec.checkpoint is None  # the final write drops it
    # the mean of the kept runs is the image; re-running with the same seed gives the same numbers
    out2 = tmp_path / "out2.cxi"
    assert run("phase", cxi_in, "-o", out2, "--algorithm", "gps-r", "--iterations", 30, "--runs", 3, "--keep", 2,
               "--seed", 5, "--support", f"{cxi_in}:/entry_1/sample_1/support",
               "--sigma-schedule", "0:0.01,0.5:0.1").exit_code == 0
    np.testing.assert_array_equal(read_cxi_reconstruction(out2).results["final_rf"], res["final_rf"])


def test_overwrite_and_input_rules(cxi_in, tmp_path):
    out = tmp_path / "o.cxi"
    assert run("phase", cxi_in, "-o", out, "--iterations", 5).exit_code == 0
    r = run("phase", cxi_in, "-o", out, "--iterations", 5)
    assert r.exit_code == 1 and "--overwrite" in r.output and len(r.output.strip().splitlines()) == 1
    assert run("phase", cxi_in, "-o", out, "--iterations", 5, "--overwrite").exit_code == 0
    r = run("phase", cxi_in, "-o", cxi_in, "--iterations", 5, "--overwrite")
    assert r.exit_code == 1 and "input" in r.output


def test_errors_are_one_line(cxi_in, tmp_path):
    r = run("phase", tmp_path / "missing.cxi", "-o", tmp_path / "x.cxi")
    assert r.exit_code == 1 and r.output.startswith("fastem: error:") and "missing.cxi" in r.output
    r = run("phase", cxi_in, "-o", tmp_path / "x.cxi", "--sigma-schedule", "nonsense")
    assert r.exit_code == 1 and "--sigma-schedule" in r.output
    r = run("phase", cxi_in, "-o", tmp_path / "x.cxi", "--runs", 2, "--keep", 3)
    assert r.exit_code == 1 and "--keep 3" in r.output
    r = run("phase", cxi_in, "-o", tmp_path / "x.cxi", "--support", f"{cxi_in}:/entry_1/nothing")
    assert r.exit_code == 1 and "/entry_1/nothing" in r.output
    assert run("phase", cxi_in, "-o", tmp_path / "x.cxi", "--algorithm", "raar").exit_code == 2
    r = run("phase", cxi_in, "-o", tmp_path / "y.cxi", "--resume")
    assert r.exit_code == 1 and "checkpoint" in r.output


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


def test_checkpoint_and_resume_give_the_uninterrupted_result(cxi_in, tmp_path):
    kw = dict(algorithm="gps-f", iterations=40, runs=2, keep=2, seed=1, checkpoint_every=10)
    full, _ = phase_file(cxi_in, tmp_path / "full.cxi", **kw)
    out = tmp_path / "part.cxi"
    with pytest.raises(_Killed):
        phase_file(cxi_in, out, progress=_KillAfter(25), **kw)
    state = load_checkpoint_file(out, CXI_CHECKPOINT)
    assert state["iteration"] == 20 and state["seed"] == 1
    rec = read_cxi_reconstruction(out)  # the in-progress file is a valid reconstruction
    assert rec.results["in_progress_iteration"] == 20 and rec.image.shape == (32, 32)
    r = run("phase", cxi_in, "-o", out, "--algorithm", "gps-f", "--iterations", 40, "--runs", 2, "--keep", 2,
            "--seed", 1, "--checkpoint-every", 10, "--resume")
    assert r.exit_code == 0, r.output
    res = read_cxi_reconstruction(out).results
    np.testing.assert_array_equal(res["final_rf"], full.final_rf)
    np.testing.assert_array_equal(res["rf_history"], full.history_rf)
    r = run("phase", cxi_in, "-o", tmp_path / "part2.cxi", "--iterations", 40, "--runs", 2, "--keep", 2, "--seed", 2,
            "--checkpoint-every", 10)
    assert r.exit_code == 0


@pytest.mark.parametrize("kill_at", [7, 27])     # inside the first generation, inside the second
def test_generations_checkpoint_and_resume_give_the_uninterrupted_result(cxi_in, tmp_path, kill_at):
    """``--generations`` with ``--checkpoint-every``: killed in either generation and resumed, the
    result equals the uninterrupted run bit for bit; the checkpoint counts iterations over all
    generations; a resume with other generations or iterations is refused, naming the flag."""
    kw = dict(algorithm="hio", iterations=40, runs=3, keep=2, seed=1, checkpoint_every=5, generations=2,
              support=f"{cxi_in}:/entry_1/sample_1/support")
    full, _ = phase_file(cxi_in, tmp_path / "full.cxi", **kw)
    plain, _ = phase_file(cxi_in, tmp_path / "plain.cxi", **dict(kw, checkpoint_every=0))
    np.testing.assert_array_equal(full.image, plain.image)          # checkpoints change nothing
    out = tmp_path / "part.cxi"
    with pytest.raises(_Killed):
        phase_file(cxi_in, out, progress=_KillAfter(kill_at), **kw)
    state = load_checkpoint_file(out, CXI_CHECKPOINT)
    assert state["iteration"] == 5 * (kill_at // 5) and state["generation"] == kill_at // 20
    assert state["generation_start"] == 20 * (kill_at // 20)
    assert np.asarray(state["history_iterations"]).max() == state["iteration"]
    args = ["--algorithm", "hio", "--runs", 3, "--keep", 2, "--seed", 1, "--checkpoint-every", 5,
            "--support", f"{cxi_in}:/entry_1/sample_1/support", "--resume"]
    for bad, flag in ((["--iterations", 40, "--generations", 4], "--generations"),
                      (["--iterations", 60, "--generations", 2], "--iterations")):
        r = run("phase", cxi_in, "-o", out, *bad, *args)
        assert r.exit_code != 0 and flag in r.output, r.output
    r = run("phase", cxi_in, "-o", out, "--iterations", 40, "--generations", 2, *args)
    assert r.exit_code == 0, r.output
    rec = read_cxi_reconstruction(out)
    np.testing.assert_array_equal(rec.results["final_rf"], full.final_rf)
    np.testing.assert_array_equal(rec.results["rf_history"], full.history_rf)
    np.testing.assert_array_equal(rec.image, read_cxi_reconstruction(tmp_path / "full.cxi").image)


def test_a_plain_run_does_not_resume_a_generations_checkpoint(cxi_in, tmp_path):
    from fastem.errors import InputError
    from fastem.phase import PhaseConfig, prepare_problem, retrieve
    from fastem.io import read_cxi, read_dataset

    data = read_cxi(str(cxi_in))
    prob = prepare_problem(data.intensities, data.known, read_dataset(f"{cxi_in}:/entry_1/sample_1/support") > 0)
    states = []

    def keep_state(state):
        states.append(state)
        raise _Killed

    cfg = PhaseConfig(algorithm="hio", iterations=20)
    with pytest.raises(_Killed):
        retrieve(problem=prob, config=cfg, runs=2, keep=1, seed=0, generations=2, checkpoint_every=5,
                 on_checkpoint=keep_state)
    with pytest.raises(InputError, match="generations=2"):
        retrieve(problem=prob, config=cfg, runs=2, keep=1, seed=0, resume_state=states[0])
    with pytest.raises(InputError, match="generations 4 does not match"):
        retrieve(problem=prob, config=cfg, runs=2, keep=1, seed=0, generations=4, resume_state=states[0])
    resumed = retrieve(problem=prob, config=cfg, runs=2, keep=1, seed=0, generations=2, resume_state=states[0])
    whole = retrieve(problem=prob, config=cfg, runs=2, keep=1, seed=0, generations=2)
    np.testing.assert_array_equal(resumed.image, whole.image)
    np.testing.assert_array_equal(resumed.history_rf, whole.history_rf)


def test_shrink_wrap_and_batch_memory_options(cxi_in, tmp_path):
    args = ["--algorithm", "hio", "--iterations", 40, "--runs", 3, "--keep", 2, "--seed", 1,
            "--support", f"{cxi_in}:/entry_1/sample_1/support", "--shrink-wrap", "--shrink-wrap-every", 10,
            "--shrink-wrap-sigma", "2:1"]
    assert run("phase", cxi_in, "-o", tmp_path / "a.cxi", *args).exit_code == 0
    r = run("phase", cxi_in, "-o", tmp_path / "b.cxi", *args, "--batch-memory", "40K")
    assert r.exit_code == 0, r.output
    a, b = read_cxi_reconstruction(tmp_path / "a.cxi"), read_cxi_reconstruction(tmp_path / "b.cxi")
    assert a.results["chunks"].tolist() == [[0, 3]] and len(b.results["chunks"]) == 3  # ~30 kB per run
    np.testing.assert_array_equal(b.results["final_rf"], a.results["final_rf"])
    np.testing.assert_array_equal(b.image, a.image)
    assert b.provenance["configuration"]["shrink_wrap"] is True
    assert b.provenance["configuration"]["shrink_wrap_sigma"] == [2.0, 1.0]
    initial = b.results["initial_support"].astype(bool)
    assert b.support.sum() < initial.sum()  # the written support is the best run's shrunk one
    r = run("phase", cxi_in, "-o", tmp_path / "c.cxi", "--batch-memory", "lots")
    assert r.exit_code == 1 and "--batch-memory" in r.output
    r = run("phase", cxi_in, "-o", tmp_path / "c.cxi", "--shrink-wrap-sigma", "3")
    assert r.exit_code == 1 and "--shrink-wrap-sigma" in r.output


def test_parse_size():
    from fastem.cli.cmd_phase import parse_size

    assert parse_size("2G") == 2 << 30 and parse_size("512M") == 512 << 20 and parse_size("1.5KiB") == 1536
    assert parse_size("1000") == 1000


def test_api_messages_name_parameters_and_the_cli_names_flags(cxi_in, tmp_path):
    """Issue 18: the library's messages name parameters (``runs must be >= 1``); only the CLI
    (``cli_message``) turns them into flags."""
    from fastem.errors import InputError
    from fastem.phase import retrieve
    from fastem.phase.job import _HINT, cli_message

    rng = np.random.default_rng(3)
    intens = rng.random((16, 16)) + 0.1
    for kw, param in ((dict(runs=0), "runs"), (dict(keep=0), "keep"), (dict(seed=-1), "seed"),
                      (dict(iterations=0), "iterations")):
        args = dict(runs=2, keep=1, iterations=5, seed=0)
        args.update(kw)
        with pytest.raises(InputError) as info:
            retrieve(intens, **args)
        msg = str(info.value)
        assert "--" not in msg and param in msg, msg
        assert cli_message(msg).startswith(f"--{param} "), cli_message(msg)
    # the other API messages that name parameters in prose (an empty support estimate, a diverged
    # result, a missing checkpoint, a refused resume): no flag in the API text, flags on the CLI
    for msg in ("support estimate from the autocorrelation is empty; lower threshold, or pass a support",
                f"out.cxi: 2 of the 2 kept run(s) diverged; use a smaller keep or more runs, or {_HINT}",
                "out.cxi: no such file, so no checkpoint to resume from",
                "out.cxi: cannot resume: input support differs; runs was 2 in the checkpoint, now 3; "
                "sigma_schedule differs; input detector mask differs (resume with the same inputs)"):
        assert "--" not in msg
        cli = cli_message(msg)
        assert "--" in cli and cli != msg, cli
    assert "--seed or --algorithm" in cli_message(_HINT) and "--support" in cli_message(_HINT)
    assert cli_message("out.cxi: cannot resume: input support differs; runs was 2 in the checkpoint, now 3; "
                       "sigma_schedule differs; input detector mask differs") == (
        "out.cxi: cannot resume: input --support differs; --runs was 2 in the checkpoint, now 3; "
        "--sigma-schedule differs; input detector mask differs")
    # no flag leaks into the API's own messages (the phase library source has no "--name" in a message)
    import re
    from pathlib import Path

    import fastem.phase as phase

    for py in Path(phase.__file__).parent.glob("*.py"):
        for line in py.read_text().splitlines():
            if "raise " in line or "Error(" in line or "_HINT" in line:
                assert not re.search(r"\s--[a-z]", line), f"{py.name}: {line.strip()}"
