"""Test infrastructure shared by every fastem test module.

Markers (declared in pyproject.toml):

``gpu``
    needs CuPy and a CUDA device; skipped cleanly otherwise.
``cudasim``
    Numba CUDA kernels under the CUDA simulator. They only run when ``NUMBA_ENABLE_CUDASIM=1``
    is set for the whole process (``make test-cudasim`` does that in a separate pytest run), so
    the simulator never leaks into the CPU suite; in the CPU run they are skipped.
``slow``
    reproduction-scale runs (``make test-slow``).

Fixtures: ``rng`` (seeded NumPy generator), ``xp`` / ``device`` (run one test body on every
available backend: ``numpy`` always, ``cupy`` when a GPU is present, else skipped), ``tmp_h5``.
"""

from __future__ import annotations

import os

# FFTW_MEASURE planning costs seconds per new shape and the suite plans hundreds of shapes;
# the tests check results, not speed, so plan with FFTW_ESTIMATE unless told otherwise.
os.environ.setdefault("FASTEM_FFT_PLANNER", "FFTW_ESTIMATE")
# ... and with no FFTW wisdom but the suite's own: a user's cache holds FFTW_MEASURE plans (benches
# save them), which FFTW then uses instead of the estimated ones, and their other rounding changed the
# outcome of a chaotic phase-retrieval test (the complex HIO run with an estimated support: 0.39
# instead of < 0.25 after this machine's benches had filled the cache). A private folder per session.
if "FASTEM_CACHE_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["FASTEM_CACHE_DIR"] = tempfile.mkdtemp(prefix="fastem-test-cache-")
    atexit.register(shutil.rmtree, os.environ["FASTEM_CACHE_DIR"], ignore_errors=True)  # leave no folder behind
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does (fastem.config.use_passive_openmp)
os.environ.setdefault("GOMP_SPINCOUNT", "1000")  # fastem.config.OPENMP_SPIN_COUNT (conftest must not import fastem yet)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from fastem import backend  # noqa: E402

CUDASIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason=f"no GPU: {backend.gpu_unavailable_reason()}")
    skip_sim = pytest.mark.skip(reason="Numba CUDA simulator test: run with NUMBA_ENABLE_CUDASIM=1 (make test-cudasim)")
    skip_not_sim = pytest.mark.skip(reason="CPU test skipped inside the CUDA-simulator run")
    gpu_ok = (not CUDASIM) and backend.cupy_available()
    for item in items:
        if "gpu" in item.keywords and not gpu_ok:
            item.add_marker(skip_gpu)
        if "cudasim" in item.keywords and not CUDASIM:
            item.add_marker(skip_sim)
        if CUDASIM and "cudasim" not in item.keywords:
            item.add_marker(skip_not_sim)


@pytest.fixture
def rng():
    """A seeded generator: tests are reproducible, inputs are random (never zeros)."""
    return np.random.default_rng(20261122)


def _backend_params():
    return [
        pytest.param("cpu", id="numpy"),
        pytest.param("cuda", id="cupy", marks=pytest.mark.gpu),
    ]


@pytest.fixture(params=_backend_params())
def device(request):
    """Run the test once per available backend (``cpu``; ``cuda`` when a GPU is present)."""
    return backend.Device(request.param)


@pytest.fixture
def xp(device):
    """The array module of the ``device`` fixture (numpy or cupy)."""
    return device.xp


def to_numpy(a):
    """Host copy of a NumPy/CuPy array (for comparisons)."""
    return a.get() if backend.is_cupy_array(a) else np.asarray(a)


def random_complex(rng, shape, dtype=np.complex128):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)


@pytest.fixture(autouse=True)
def _restore_fastem_settings():
    """The CLI's global options write process-wide settings: every test leaves them as it found them."""
    from fastem.config import settings

    saved = (settings.quiet, settings.debug, settings.device, settings.threads, settings.allow_external_links)
    yield
    (settings.quiet, settings.debug, settings.device, settings.threads, settings.allow_external_links) = saved
