"""``import fastem`` is cheap and has no process-wide side effects (issue 18)."""

import os
import subprocess
import sys

import pytest

HEAVY = ("numba", "scipy", "pyfftw", "h5py", "torch", "cupy", "dask", "click")


def _run(code: str, env_extra=None) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(env_extra or {})
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_import_loads_no_heavy_module_and_leaves_the_environment_alone():
    out = _run("import os, sys, fastem\n"
               f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
               "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))")
    loaded, policy = out.splitlines()
    assert loaded == "[]", f"import fastem loaded {loaded}"
    assert policy == "None None", "import fastem changed OMP_WAIT_POLICY or GOMP_SPINCOUNT"


def test_public_names_resolve_lazily():
    out = _run("import sys, fastem\n"
               "assert 'fastem.phase' not in sys.modules\n"
               "p = fastem.phase; d = fastem.Device\n"
               "assert p is sys.modules['fastem.phase'] and d.__module__ == 'fastem.backend'\n"
               "from fastem import tomo, set_threads\n"
               "assert set(['phase', 'tomo', 'Device', 'set_threads']) <= set(dir(fastem))\n"
               "print('ok')")
    assert out == "ok"


def test_unknown_attribute_is_an_attribute_error():
    import fastem

    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        fastem.nonexistent  # noqa: B018


def test_passive_openmp_is_asked_for_and_a_user_choice_wins():
    code = ("import os; from fastem.config import use_passive_openmp\n"
            "print(use_passive_openmp(), os.environ['OMP_WAIT_POLICY'], os.environ['GOMP_SPINCOUNT'])")
    assert _run(code) == "True PASSIVE 1000"
    assert _run(code, {"OMP_WAIT_POLICY": "ACTIVE"}) == "False ACTIVE 1000"
    assert _run(code, {"GOMP_SPINCOUNT": "0"}) == "True PASSIVE 0"      # each variable: the user's value wins


def test_the_test_process_runs_openmp_as_the_cli_does():
    """conftest sets the variables before fastem is imported; they must be the CLI's."""
    from fastem.config import OPENMP_SPIN_COUNT

    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    assert os.environ["GOMP_SPINCOUNT"] == str(OPENMP_SPIN_COUNT)


def test_threaded_fft_plan_warns_once_when_openmp_would_spin():
    """A library user who never set OMP_WAIT_POLICY is told, once, how to avoid the spin-wait
    slowdown (``import fastem`` itself changes nothing); a policy the user set silences it."""
    code = ("import warnings, numpy as np\n"
            "from fastem import fft, config\n"
            "config.set_threads(2)\n"
            "if fft.provider('cpu') != 'pyfftw':\n"
            "    print('skip'); raise SystemExit\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    fft.FFTPlan((2, 16, 16), np.float32, axes=(1, 2), real=True)\n"
            "    fft.FFTPlan((2, 8, 8), np.float32, axes=(1, 2), real=True)\n"
            "print(sum(x.category.__name__ == 'PerformanceWarning' and 'use_passive_openmp' in str(x.message) "
            "for x in w))")
    out = _run(code)
    if out == "skip":
        pytest.skip("pyFFTW is not installed")
    assert out == "1"
    assert _run(code, {"OMP_WAIT_POLICY": "PASSIVE"}) == "0"


def test_the_cli_asks_for_passive_openmp():
    out = _run("import os\nfrom click.testing import CliRunner\nfrom fastem.cli.main import app\n"
               "r = CliRunner().invoke(app, ['info'])\n"
               "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))")
    assert out.splitlines()[-1] == "PASSIVE 1000"


def test_renamed_scan_job_module_still_imports_with_a_warning():
    out = _run("import warnings\n"
               "with warnings.catch_warnings(record=True) as w:\n"
               "    warnings.simplefilter('always')\n"
               "    import fastem.scan.files as old\n"
               "import fastem.scan.job as new\n"
               "assert old.simulate_to_file is new.simulate_to_file and old._complete_block is new._complete_block\n"
               "print(any(issubclass(x.category, DeprecationWarning) and 'fastem.scan.job' in str(x.message) "
               "for x in w))")
    assert out == "True"


def test_machine_info_records_the_openmp_settings():
    """Bench records carry the OpenMP settings they ran under (they change timings)."""
    out = _run("import json\nfrom fastem.config import use_passive_openmp\nuse_passive_openmp()\n"
               "from fastem.benchmark import machine_info\nprint(json.dumps(machine_info()['openmp']))")
    assert out == '{"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "1000"}'
    out = _run("import json\nfrom fastem.benchmark import machine_info\nprint(json.dumps(machine_info()['openmp']))",
               {"GOMP_SPINCOUNT": "7"})
    assert out == '{"OMP_WAIT_POLICY": null, "GOMP_SPINCOUNT": "7"}'
