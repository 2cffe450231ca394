"""fastem.phase multi-start: chunks under a memory budget give the one-batch result, chunks on
Dask workers too, checkpoint / resume across chunks, shrink-wrap support refinement."""

import numpy as np
import pytest
from scipy import ndimage

from fastem.data import cdi_intensities, vesicle_2d
from fastem.errors import InputError
from fastem.executor import DaskExecutor, InlineExecutor, make_executor
from fastem.phase import PhaseConfig, make_solver, prepare_problem, retrieve, twin
from fastem.phase.metrics import align
from fastem.phase.multistart import split_runs


@pytest.fixture(scope="module")
def noisy():
    return cdi_intensities(vesicle_2d(32, seed=0), r_noise=0.06, beamstop_radius=1.5, seed=0)


def _same(a, b):
    np.testing.assert_array_equal(a.final_rf, b.final_rf)
    np.testing.assert_array_equal(a.history_rf, b.history_rf)
    np.testing.assert_array_equal(a.kept_runs, b.kept_runs)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.variance, b.variance)


def test_split_runs():
    assert split_runs(10, 100, 1000) == [(0, 10)]
    assert split_runs(5, 100, 200) == [(0, 1), (1, 3), (3, 5)]  # 2 per chunk at most -> 3 near-equal chunks
    assert split_runs(5, 100, 10) == [(k, k + 1) for k in range(5)]  # one run always goes
    assert split_runs(7, 1, 1 << 30, min_chunks=3) == [(0, 2), (2, 4), (4, 7)]
    assert split_runs(2, 1, 1 << 30, min_chunks=4) == [(0, 1), (1, 2)]


@pytest.mark.parametrize("algorithm,shrink_wrap", [("gps-f", False), ("hio", False), ("gps-r", True)])
def test_chunks_under_a_memory_budget_equal_one_batch(noisy, algorithm, shrink_wrap):
    prob = prepare_problem(noisy.intensities, noisy.known, noisy.support)
    cfg = PhaseConfig(algorithm=algorithm, iterations=40, stages=2 if algorithm != "hio" else 1,
                      shrink_wrap=shrink_wrap, shrink_wrap_every=10)
    one = retrieve(problem=prob, config=cfg, runs=5, keep=3, seed=3)
    per_run = make_solver(prob, 1, cfg).bytes_per_run(prob, cfg)
    chunked = retrieve(problem=prob, config=cfg, runs=5, keep=3, seed=3, max_batch_bytes=2 * per_run)
    assert one.extra["chunks"] == [[0, 5]] and chunked.extra["chunks"] == [[0, 1], [1, 3], [3, 5]]
    _same(chunked, one)
    if shrink_wrap:
        np.testing.assert_array_equal(chunked.extra["best_support"], one.extra["best_support"])


def test_bytes_per_run_covers_the_solver_arrays(noisy):
    prob = prepare_problem(noisy.intensities, noisy.known, noisy.support)
    for alg in ("gps-f", "gps-r", "oss", "hio", "er"):
        cfg = PhaseConfig(algorithm=alg, iterations=10)
        sol = make_solver(prob, 4, cfg)
        per_run_arrays = [a for a in vars(sol).values() if hasattr(a, "nbytes") and getattr(a, "ndim", 0) == 3
                          and a.shape[0] == 4]
        used = sum(a.nbytes for a in per_run_arrays) / 4
        assert used <= sol.bytes_per_run(prob, cfg) <= 1.3 * used, alg


def test_checkpoint_and_resume_across_chunks(noisy):
    prob = prepare_problem(noisy.intensities, noisy.known, noisy.support)
    cfg = PhaseConfig(algorithm="gps-f", iterations=30, stages=3)
    budget = 2 * make_solver(prob, 1, cfg).bytes_per_run(prob, cfg)
    full = retrieve(problem=prob, config=cfg, runs=5, keep=2, seed=4, max_batch_bytes=budget)
    states = []
    with pytest.raises(RuntimeError, match="stop"):
        def crash(state):
            states.append(state)
            if state.get("chunk") == 1 and state["iteration"] == 20:
                raise RuntimeError("stop")
        retrieve(problem=prob, config=cfg, runs=5, keep=2, seed=4, max_batch_bytes=budget, checkpoint_every=10,
                 on_checkpoint=crash)
    last = states[-1]
    assert last["chunk"] == 1 and last["done_final_rf"].shape == (1,) and last["done_kept_images"].shape[0] == 1
    resumed = retrieve(problem=prob, config=cfg, runs=5, keep=2, seed=4, resume_state=last)  # no budget: from state
    _same(resumed, full)


def test_dask_workers_give_the_inline_result(noisy):
    distributed = pytest.importorskip("distributed")
    prob = prepare_problem(noisy.intensities, noisy.known, noisy.support)
    cfg = PhaseConfig(algorithm="gps-f", iterations=30, stages=3)
    inline = retrieve(problem=prob, config=cfg, runs=5, keep=3, seed=2, executor=InlineExecutor())
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
    with DaskExecutor(distributed.Client(cluster), close_cluster=True) as ex:
        assert ex.slots == 2
        spread = retrieve(problem=prob, config=cfg, runs=5, keep=3, seed=2, executor=ex)
        with pytest.raises(InputError, match="in-process"):
            retrieve(problem=prob, config=cfg, runs=5, seed=2, executor=ex, checkpoint_every=10,
                     on_checkpoint=lambda s: None)
    assert spread.extra["chunks"] == [[0, 2], [2, 5]]  # at least one chunk per worker thread
    _same(spread, inline)
    assert cluster.status.name == "closed"


def test_make_executor():
    assert isinstance(make_executor(None), InlineExecutor) and isinstance(make_executor("inline"), InlineExecutor)
    assert InlineExecutor().map(lambda x: x * x, [1, 2, 3]) == [1, 4, 9]
    pytest.importorskip("distributed")
    with pytest.raises(InputError, match="cannot connect"):
        DaskExecutor.connect("tcp://127.0.0.1:9", timeout=1)


def _support_in_object_frame(support, image, truth):
    """The run's support moved like its image is moved onto the truth (translation, twin)."""
    _, shift, flipped = align(image, truth)
    s = twin(support) if flipped else support
    return np.roll(s, shift, axis=tuple(range(s.ndim)))


@pytest.mark.parametrize("algorithm", ["gps-f", "hio"])
def test_shrink_wrap_tightens_a_loose_support(algorithm):
    obj = vesicle_2d(64, seed=0)
    cdi = cdi_intensities(obj, r_noise=0.05, beamstop_radius=1, seed=0)
    truth = cdi.object > 0
    loose = ndimage.binary_dilation(truth, iterations=5)  # 75 % more pixels than the object
    prob = prepare_problem(cdi.intensities, cdi.known, loose)
    res = {}
    for sw in (False, True):
        cfg = PhaseConfig(algorithm=algorithm, iterations=400, shrink_wrap=sw)
        res[sw] = retrieve(problem=prob, config=cfg, runs=6, keep=1, seed=0)
    supp = _support_in_object_frame(res[True].extra["best_support"], res[True].best, cdi.object)
    extra_before, extra_after = int((loose & ~truth).sum()), int((supp & ~truth).sum())
    assert extra_after < 0.5 * extra_before  # most of the slack is gone ...
    assert (truth & ~supp).sum() < 0.03 * truth.sum()  # ... without cutting into the object
    assert supp.sum() < loose.sum()
    # and the data are still fitted as well (within 5 %) as with the loose support
    assert res[True].final_rf.min() < 1.05 * res[False].final_rf.min()


def test_shrink_wrap_options_are_checked():
    with pytest.raises(InputError, match="shrink_wrap_threshold"):
        PhaseConfig(shrink_wrap=True, shrink_wrap_threshold=1.5)
    with pytest.raises(InputError, match="shrink_wrap_sigma"):
        PhaseConfig(shrink_wrap=True, shrink_wrap_sigma=(1.0, 2.0))
    cfg = PhaseConfig(shrink_wrap=True)
    assert cfg.shrink_wrap_width(0) == 3.0 and cfg.shrink_wrap_width(10) == pytest.approx(3 * 0.99**10)
    assert cfg.shrink_wrap_width(1000) == 1.5
