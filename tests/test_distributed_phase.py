"""Phase multi-start on 2 single-threaded Dask worker processes (issue 17): the inline result
bit for bit, also when a worker process dies while it runs a chunk."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("distributed")

from dask_support import cluster, first_worker, is_gone, kill_worker  # noqa: E402,F401  (cluster: a fixture)

from fastem.data import cdi_intensities, vesicle_2d  # noqa: E402
from fastem.executor import InlineExecutor  # noqa: E402
from fastem.phase import PhaseConfig, prepare_problem, retrieve  # noqa: E402


@pytest.fixture(scope="module")
def problem():
    cdi = cdi_intensities(vesicle_2d(32, seed=0), r_noise=0.06, beamstop_radius=1.5, seed=0)
    return prepare_problem(cdi.intensities, cdi.known, cdi.support)


def _same(a, b):
    for name in ("final_rf", "history_rf", "kept_runs", "image", "variance"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_worker_processes_give_the_inline_result(problem, cluster):
    cfg = PhaseConfig(algorithm="gps-f", iterations=60, stages=2)
    inline = retrieve(problem=problem, config=cfg, runs=5, keep=3, seed=2, executor=InlineExecutor())
    spread = retrieve(problem=problem, config=cfg, runs=5, keep=3, seed=2, executor=cluster)
    assert spread.extra["chunks"] == [[0, 2], [2, 5]]
    _same(spread, inline)


def test_worker_processes_give_the_inline_result_for_a_complex_object(cluster):
    """A complex object's R-factor runs one more FFT (out of place, image -> spectrum): it is in
    the client's wisdom too, so the workers reproduce the inline result bit for bit."""
    from fastem.data import complex_particle, embed_centred

    obj = embed_centred(complex_particle(16, seed=2), (32, 32))
    cdi = cdi_intensities(obj, r_noise=0.03, beamstop_radius=1.5, seed=0)
    prob = prepare_problem(cdi.intensities, cdi.known, cdi.support)
    cfg = PhaseConfig(algorithm="oss", iterations=60, stages=2, complex_object=True, phase_range=(-1.5, 1.5))
    inline = retrieve(problem=prob, config=cfg, runs=5, keep=3, seed=2, executor=InlineExecutor())
    spread = retrieve(problem=prob, config=cfg, runs=5, keep=3, seed=2, executor=cluster)
    assert np.iscomplexobj(spread.image)
    _same(spread, inline)


def test_worker_killed_while_running_a_chunk(problem, cluster):
    """One worker process dies (os._exit) while the scheduler shows it processing a chunk: Dask
    reruns that chunk elsewhere and the result is still the inline one, bit for bit."""
    cfg = PhaseConfig(algorithm="gps-f", iterations=10000, stages=2)   # a chunk runs about 1.5 s
    inline = retrieve(problem=problem, config=cfg, runs=4, keep=2, seed=3, executor=InlineExecutor())
    victim = first_worker(cluster)
    killed = []

    def kill_when_busy():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            if cluster.client.processing().get(victim):
                time.sleep(0.2)                      # well inside the chunk
                killed.append(victim)
                kill_worker(cluster, victim)
            time.sleep(0.01)

    killer = threading.Thread(target=kill_when_busy)
    killer.start()
    try:
        spread = retrieve(problem=problem, config=cfg, runs=4, keep=2, seed=3, executor=cluster)
    finally:
        killer.join()
    assert killed
    assert is_gone(cluster, victim)       # it really died (its nanny starts a new one)
    _same(spread, inline)


def test_an_executor_without_worker_threads_still_runs(problem):
    """A duck-typed executor (``map`` and ``slots`` only) gets the client's plans at this
    process's thread count."""

    class MapOnly:
        slots = 2

        def map(self, fn, items):
            return [fn(item) for item in items]

    cfg = PhaseConfig(algorithm="er", iterations=20)
    inline = retrieve(problem=problem, config=cfg, runs=3, keep=2, seed=1, executor=InlineExecutor())
    _same(retrieve(problem=problem, config=cfg, runs=3, keep=2, seed=1, executor=MapOnly()), inline)
