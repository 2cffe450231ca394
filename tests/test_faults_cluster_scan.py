"""Fault injection for ``fastem cluster``, ``fastem scan simulate`` and ``fastem scan complete``.

CLI cases run the real command line in a child process on small data (200 points x 8 dims,
3 scans of 64x64): usage errors name the flag (exit 2), bad input and diverged results are one
line (exit 1), handled defects warn and write finite results, a full disk (``ulimit -f``) is one
line with no temporaries and the existing output intact (it used to segfault), a concurrent
writer is refused, an input is never the output. API cases call the public functions directly
and expect a :class:`~fastem.errors.FastemError` naming the parameter. Streaming: the chunked
simulate output equals the one-shot output bit for bit, with memory independent of N.
"""

from __future__ import annotations

import hashlib
import tracemalloc
import warnings

import h5py
import numpy as np
import pytest

from fastem import io
from fastem.errors import FastemError, InputError

from fault_tools import assert_clean_error, leftover_temporaries, run_cli


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from fastem.scan.job import simulate_to_file

    d = tmp_path_factory.mktemp("faults_cluster_scan")
    rng = np.random.default_rng(11)
    pts = rng.standard_normal((200, 8)) + np.repeat(rng.normal(0, 6, (4, 8)), 50, axis=0)
    with h5py.File(d / "pts.h5", "w") as f:
        f["data"] = pts
        f["huge"] = (np.abs(pts) + 1.0) * 1e300
        f["f32big"] = (pts * 1e30).astype(np.float32)
        f["complex"] = pts + 1j * pts
    imgs = rng.random((3, 64, 64)).astype(np.float32)
    with h5py.File(d / "img.h5", "w") as f:
        f["images"] = imgs
        f["complex"] = imgs * (1 + 1j)
        nan = imgs.copy()
        nan[0, 3, 4], nan[1, 5, 6], nan[2, 7, 8] = np.nan, np.inf, np.nan
        f["nan"] = nan
        f["huge"] = (imgs.astype(np.float64) + 1.0) * 1e300
    simulate_to_file(d / "scans.h5", imgs, "spiral", 0.1, seed=1)
    for name, change in (("scans_complex.h5", "complex"), ("scans_truth.h5", "truth"), ("scans_nan.h5", "nan"),
                         ("scans_huge.h5", "huge")):
        with h5py.File(d / "scans.h5", "r") as src, h5py.File(d / name, "w") as f:
            partial, path, truth = (src[f"scan/{k}"][()] for k in ("partial", "path", "truth"))
            if change == "complex":
                partial = partial * (1 + 1j)
            if change == "truth":
                truth = truth[:, :32, :]
            if change == "huge":
                partial = partial * np.float32(1e38)
            if change == "nan":
                sampled = np.argwhere(path[0] >= 0.5)
                partial[0][tuple(sampled[:5].T)] = np.nan
            f["scan/partial"], f["scan/path"], f["scan/truth"] = partial, path, truth
    return d


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _all_finite(path) -> bool:
    ok = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.dtype.kind in "fc" and obj.size:
            ok.append(bool(np.all(np.isfinite(obj[()]))))

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return bool(ok) and all(ok)


CLUSTER = ["cluster", "{d}/pts.h5:/data", "-k", "4", "--outer", "5", "--inner", "3", "--batch", "50"]
SIMULATE = ["scan", "simulate", "{d}/img.h5:/images", "--coverage", "0.1"]
COMPLETE = ["scan", "complete", "{d}/scans.h5", "--method", "nearest"]


def _argv(template, d, out, *extra):
    return [a.format(d=d) for a in template] + ["-o", str(out), *extra]


# --------------------------------------------------------------------------------------------
# usage errors: exit 2, the flag named
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command, extra, flag", [
    (CLUSTER, ["--seed", "-1"], "--seed"),
    (CLUSTER, ["--gamma0", "nan"], "--gamma0"),
    (CLUSTER, ["--gamma0", "-1"], "--gamma0"),
    (SIMULATE, ["--seed", "-1"], "--seed"),
    (SIMULATE, ["--dose", "inf"], "--dose"),
], ids=["cluster-seed", "cluster-gamma0-nan", "cluster-gamma0-neg", "simulate-seed", "simulate-dose-inf"])
def test_bad_options_are_usage_errors_naming_the_flag(data, tmp_path, command, extra, flag):
    out = tmp_path / "out.h5"
    proc = run_cli(_argv(command, data, out, *extra))
    assert_clean_error(proc, flag, status=2)
    assert not out.exists()


@pytest.mark.parametrize("command, extra, flag", [
    (CLUSTER, ["--gamma0", "inf"], "--gamma0"),
    (CLUSTER, ["--gamma0", "0"], "--gamma0"),
    (SIMULATE, ["--dose", "nan"], "--dose"),
    (SIMULATE, ["--dose", "-5"], "--dose"),
    (SIMULATE, ["--dose", "1e300"], "--dose"),
    (SIMULATE, ["--coverage", "nan"], "--coverage"),
    (SIMULATE, ["--coverage", "2"], "--coverage"),
    (SIMULATE, ["--chunk", "0"], "--chunk"),
], ids=["cluster-gamma0-inf", "cluster-gamma0-0", "simulate-dose-nan", "simulate-dose-neg", "simulate-dose-huge",
        "simulate-coverage-nan", "simulate-coverage-2", "simulate-chunk-0"])
def test_more_bad_options_in_process(data, tmp_path, command, extra, flag):
    """The same flag checks, through click in this process (they fail before any work)."""
    from click.testing import CliRunner

    from fastem.cli.main import app

    out = tmp_path / "out.h5"
    result = CliRunner().invoke(app, _argv(command, data, out, *extra))
    assert result.exit_code == 2 and flag in result.output and "Traceback" not in result.output, result.output
    assert not out.exists()


# --------------------------------------------------------------------------------------------
# bad data, diverged results: exit 1, one line, nothing written
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, words", [
    (["cluster", "{d}/pts.h5:/huge", "-k", "4"], ["pts.h5:/huge", "overflow"]),
    (["cluster", "{d}/pts.h5:/complex", "-k", "4"], ["pts.h5:/complex", "real"]),
    (["cluster", "{d}/pts.h5:/data", "-k", "4", "--gamma0", "1e200"], ["pts.h5:/data", "diverged", "gamma0"]),
    (["scan", "simulate", "{d}/img.h5:/complex"], ["img.h5:/complex", "complex"]),
    (["scan", "complete", "{d}/scans_complex.h5"], ["scans_complex.h5:/scan/partial", "complex"]),
    (["scan", "complete", "{d}/scans_truth.h5"], ["/scan/truth", "(3, 32, 64)", "(3, 64, 64)"]),
], ids=["cluster-1e300", "cluster-complex", "cluster-diverged", "simulate-complex",
        "complete-complex", "complete-truth-shape"])
def test_bad_data_is_one_line(data, tmp_path, argv, words):
    out = tmp_path / "out.h5"
    proc = run_cli([a.format(d=data) for a in argv] + ["-o", str(out)])
    assert_clean_error(proc, *words)
    assert not out.exists() and not leftover_temporaries(tmp_path)


# --------------------------------------------------------------------------------------------
# handled defects: a warning, a finite result
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, warning", [
    (["scan", "simulate", "{d}/img.h5:/nan", "--coverage", "0.1"], "3 NaN or infinite"),
    (["scan", "simulate", "{d}/img.h5:/huge", "--coverage", "0.1"], "divided by"),
    (["scan", "complete", "{d}/scans_nan.h5", "--method", "linear"], "5 NaN or infinite"),
    (["scan", "complete", "{d}/scans_huge.h5", "--method", "linear"], "outside [-1, 1]"),
    (["cluster", "{d}/pts.h5:/f32big", "-k", "4", "--outer", "5"], "float64"),
], ids=["simulate-nan", "simulate-1e300", "complete-nan", "complete-1e38", "cluster-float32-overflow"])
def test_handled_defects_warn_and_write_finite_results(data, tmp_path, argv, warning):
    out = tmp_path / "out.h5"
    proc = run_cli(["-q", *[a.format(d=data) for a in argv], "-o", str(out)])
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and warning in proc.stderr
    assert _all_finite(out)


def test_huge_simulate_values_give_the_same_scans_as_ordinary_ones(data, tmp_path):
    """Images of 1e300 are rescaled before normalising: same partial scans as the 1 + image data."""
    from fastem.scan.job import ImageStack, simulate_images

    with ImageStack(f"{data}/img.h5:/huge") as stack, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        big = simulate_images(stack, "spiral", 0.1, seed=3)
    with h5py.File(data / "img.h5", "r") as f:
        plain = simulate_images(f["images"][()].astype(np.float64) + 1.0, "spiral", 0.1, seed=3)
    for a, b in zip(big[:3], plain[:3]):
        np.testing.assert_allclose(a, b, atol=1e-5)


# --------------------------------------------------------------------------------------------
# outputs: disk full, concurrent writers, inputs never overwritten
# --------------------------------------------------------------------------------------------
def _output_kb(command, data, tmp_path) -> int:
    """Size of the command's normal output (run in this process, through click)."""
    from click.testing import CliRunner

    from fastem.cli.main import app

    ref = tmp_path / "reference.h5"
    result = CliRunner().invoke(app, ["-q", *_argv(command, data, ref)])
    assert result.exit_code == 0, result.output
    size = ref.stat().st_size // 1024
    ref.unlink()
    return size


@pytest.mark.parametrize("command, fraction", [(CLUSTER, 0.5), (SIMULATE, 0.1), (SIMULATE, 0.6), (COMPLETE, 0.5)],
                         ids=["cluster", "simulate-early", "simulate-late", "complete"])
def test_disk_full_is_one_line_and_keeps_the_existing_output(data, tmp_path, command, fraction):
    """``ulimit -f`` below the output's size: used to segfault (HDF5 closing after a failed write)."""
    fsize_kb = max(4, int(fraction * _output_kb(command, data, tmp_path)))
    out = tmp_path / "out.h5"
    out.write_bytes(b"previous result")
    proc = run_cli(_argv(command, data, out, "--overwrite"), fsize_kb=fsize_kb)
    assert_clean_error(proc, "no space left", "out.h5")
    assert out.read_bytes() == b"previous result"
    assert not leftover_temporaries(tmp_path)


def test_huge_simulate_request_is_refused_before_any_work(tmp_path):
    out = tmp_path / "out.h5"
    proc = run_cli(["scan", "simulate", "--synthetic", "5000", "-o", str(out)], fsize_kb=200, timeout=60)
    assert_clean_error(proc, "5000 partial scans", "file size limit")
    assert not out.exists()


@pytest.mark.parametrize("command", [CLUSTER, SIMULATE, COMPLETE], ids=["cluster", "simulate", "complete"])
def test_a_second_writer_of_the_same_output_is_refused(data, tmp_path, command):
    out = tmp_path / "out.h5"
    with io.output_lock(out):   # another fastem run holds the output
        proc = run_cli(_argv(command, data, out))
    assert_clean_error(proc, "another fastem process", "out.h5")
    assert not out.exists()


@pytest.mark.parametrize("command, src", [(CLUSTER, "pts.h5"), (SIMULATE, "img.h5"), (COMPLETE, "scans.h5")],
                         ids=["cluster", "simulate", "complete"])
def test_the_input_is_never_the_output(data, command, src):
    before = _digest(data / src)
    proc = run_cli(_argv(command, data, data / src, "--overwrite"))
    assert_clean_error(proc, "would overwrite the input")
    assert _digest(data / src) == before


# --------------------------------------------------------------------------------------------
# streaming: bounded memory, chunked == one-shot
# --------------------------------------------------------------------------------------------
def _simulate_peak(tmp_path, n: int, chunk: int, name: str, dose=None) -> int:
    from fastem.scan.job import simulate_to_file

    imgs = np.random.default_rng(n).random((n, 64, 64)).astype(np.float32)
    with h5py.File(tmp_path / f"in_{name}.h5", "w") as f:
        f["images"] = imgs
    from fastem.scan.job import ImageStack

    tracemalloc.start()
    try:
        with ImageStack(f"{tmp_path}/in_{name}.h5:/images") as stack:
            simulate_to_file(tmp_path / name, stack, "spiral", 0.1, seed=5, dose=dose, chunk=chunk)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_simulate_streams_with_memory_bounded_by_the_chunk(tmp_path):
    _simulate_peak(tmp_path, 8, 8, "warm.h5")                      # compile and cache first
    small = _simulate_peak(tmp_path, 16, 8, "n16.h5")
    large = _simulate_peak(tmp_path, 64, 8, "n64.h5")
    one_output = 3 * 64 * 64 * 64 * 4                               # the N = 64 datasets in memory
    assert large < 1.5 * small + 256 * 1024, (small, large)       # not growing with N
    assert large < one_output, (large, one_output)


@pytest.mark.parametrize("dose", [None, 50.0])
def test_chunked_simulate_equals_the_one_shot_run_bit_for_bit(tmp_path, dose):
    from fastem.scan.job import simulate_to_file

    imgs = np.random.default_rng(8).random((20, 48, 48)).astype(np.float32)
    simulate_to_file(tmp_path / "chunked.h5", imgs, "grid", 0.2, seed=2, dose=dose, chunk=6)
    simulate_to_file(tmp_path / "oneshot.h5", imgs, "grid", 0.2, seed=2, dose=dose, chunk=20)
    with h5py.File(tmp_path / "chunked.h5", "r") as a, h5py.File(tmp_path / "oneshot.h5", "r") as b:
        for name in ("partial", "path", "truth"):
            np.testing.assert_array_equal(a[f"scan/{name}"][()], b[f"scan/{name}"][()])
            assert np.ptp(a[f"scan/{name}"][()]) > 0
        np.testing.assert_array_equal(a["scan"].attrs["measured_coverage"], b["scan"].attrs["measured_coverage"])


def test_synthetic_images_with_noise_do_not_depend_on_the_batch_split():
    from fastem.data.stem import generate_stem

    whole = generate_stem(4, 32, seed=3, dose=100.0)
    parts = np.concatenate([generate_stem(1, 32, seed=3, index_base=0, dose=100.0),
                            generate_stem(3, 32, seed=3, index_base=1, dose=100.0)])
    np.testing.assert_array_equal(whole, parts)
    assert whole.std() > 0


def test_cluster_streams_an_hdf5_dataset_without_loading_it(tmp_path):
    from fastem.cluster import SBEKMeans

    X = np.random.default_rng(4).standard_normal((20000, 32))
    with h5py.File(tmp_path / "big.h5", "w") as f:
        f["data"] = X
    with h5py.File(tmp_path / "small.h5", "w") as f:
        f["data"] = X[:1000]
    # compile first, on the streaming path too: with a cold Numba cache its kernels' signatures
    # (not the in-memory path's) would otherwise be compiled inside the traced window
    SBEKMeans(3, n_outer=2, n_inner=2, batch_size=64, chunk_rows=500).fit(X[:1000])
    SBEKMeans(3, n_outer=2, n_inner=2, batch_size=64, chunk_rows=500).fit(f"{tmp_path}/small.h5:/data")
    tracemalloc.start()
    try:
        model = SBEKMeans(3, n_outer=2, n_inner=2, batch_size=64, chunk_rows=500, random_state=1)
        model.fit(f"{tmp_path}/big.h5:/data")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert model.labels_.shape == (20000,)
    assert peak < X.nbytes / 4, (peak, X.nbytes)


# --------------------------------------------------------------------------------------------
# API misuse: FastemError naming the parameter
# --------------------------------------------------------------------------------------------
def _km(**kw):
    from fastem.cluster import SBEKMeans

    return SBEKMeans(**{"n_clusters": 2, "n_outer": 2, **kw})


_X = np.random.default_rng(0).standard_normal((50, 4))
_IMG = np.random.default_rng(1).random((32, 32)).astype(np.float32)
_PATH = np.ones((32, 32), np.float32)


def _api(name):
    import fastem.scan as scan

    return {
        "fit-None": (lambda: _km().fit(None), "X"),
        "fit-rank5": (lambda: _km().fit(np.ones((5, 2, 2, 2, 2))), "shape"),
        "fit-object": (lambda: _km().fit(np.array([{}, {}], dtype=object)), "dtype"),
        "fit-nan": (lambda: _km().fit(np.full((5, 2), np.nan)), "NaN"),
        "fit-missing-file": (lambda: _km().fit("nofile.h5:/x"), "nofile.h5"),
        "K>N": (lambda: _km(n_clusters=100).fit(_X), "n_clusters"),
        "K-float": (lambda: _km(n_clusters=2.5).fit(_X), "n_clusters"),
        "K-None": (lambda: _km(n_clusters=None).fit(_X), "n_clusters"),
        "batch-0": (lambda: _km(batch_size=0).fit(_X), "batch_size"),
        "n_init-0": (lambda: _km(n_init=0).fit(_X), "n_init"),
        "n_outer-0": (lambda: _km(n_outer=0).fit(_X), "n_outer"),
        "gamma0-nan": (lambda: _km(gamma0=float("nan")).fit(_X), "gamma0"),
        "gamma0-neg": (lambda: _km(gamma0=-1.0).fit(_X), "gamma0"),
        "gamma0-str": (lambda: _km(gamma0="1").fit(_X), "gamma0"),
        "alpha-1": (lambda: _km(alpha=1.0).fit(_X), "alpha"),
        "tol-nan": (lambda: _km(algorithm="lloyd", tol=float("nan")).fit(_X), "tol"),
        "random_state-neg": (lambda: _km(random_state=-1).fit(_X), "random_state"),
        "algorithm-None": (lambda: _km(algorithm=None).fit(_X), "algorithm"),
        "init-bogus": (lambda: _km(init="bogus").fit(_X), "init"),
        "init-shape": (lambda: _km(init=np.ones((3, 4))).fit(_X), "init"),
        "dtype-bogus": (lambda: _km(dtype="bogus").fit(_X), "dtype"),
        "chunk_rows-0": (lambda: _km(chunk_rows=0).fit(_X), "chunk_rows"),
        "set_params-unknown": (lambda: _km().set_params(bogus=1), "bogus"),
        "predict-unfitted": (lambda: _km().predict(_X), "fit"),
        "predict-None": (lambda: _km().fit(_X).predict(None), "X"),
        "predict-features": (lambda: _km().fit(_X).predict(np.ones((3, 5))), "features"),
        "mps-None": (lambda: scan.make_partial_scans(None), "images"),
        "mps-complex": (lambda: scan.make_partial_scans(_IMG.astype(complex)), "real"),
        "mps-coverage-nan": (lambda: scan.make_partial_scans(_IMG, "spiral", float("nan")), "coverage"),
        "mps-kind": (lambda: scan.make_partial_scans(_IMG, None), "kind"),
        "mps-seed-neg": (lambda: scan.make_partial_scans(_IMG, seed=-1), "seed"),
        "mps-seed-float": (lambda: scan.make_partial_scans(_IMG, seed=1.5), "seed"),
        "mps-dose-inf": (lambda: scan.make_partial_scans(_IMG, dose=float("inf")), "dose"),
        "mps-example_base": (lambda: scan.make_partial_scans(_IMG, example_base=-1), "example_base"),
        "pipe-batch-0": (lambda: scan.PartialScanPipeline(0, (32, 32)), "batch"),
        "pipe-batch-None": (lambda: scan.PartialScanPipeline(None, (32, 32)), "batch"),
        "pipe-shape-None": (lambda: scan.PartialScanPipeline(1, None), "shape"),
        "pipe-images-shape": (lambda: scan.PartialScanPipeline(1, (32, 32))(np.ones((2, 32, 32))), "shape"),
        "pipe-spacing-neg": (lambda: scan.PartialScanPipeline(1, (32, 32), spacing=-1.0), "spacing"),
        "spiral-shape-str": (lambda: scan.spiral_path("ab"), "shape"),
        "spiral-batch-None": (lambda: scan.spiral_path((32, 32), batch=None), "batch"),
        "spiral-seed-neg": (lambda: scan.spiral_path((32, 32), seed=-1), "seed"),
        "spiral-offset-nan": (lambda: scan.spiral_path((32, 32), max_offset=float("nan")), "max_offset"),
        "spiral-out": (lambda: scan.spiral_path((32, 32), out=np.empty((1, 8, 8), np.float32)), "out"),
        "grid-u-str": (lambda: scan.grid_path((64, 64), u="x"), "u"),
        "grid-amp-neg": (lambda: scan.grid_path((64, 64), 0.3, amp=-1.0), "amp"),
        "scan_path-kind": (lambda: scan.scan_path(None), "kind"),
        "solve-samples-0": (lambda: scan.solve_coverage("spiral", 0.1, (32, 32), samples=0), "samples"),
        "coverage-None": (lambda: scan.measured_coverage(None), "path"),
        "complete-None": (lambda: scan.complete(None, _PATH), "partial"),
        "complete-str": (lambda: scan.complete("a", "b"), "partial"),
        "complete-method": (lambda: scan.complete(_IMG, _PATH, None), "method"),
        "complete-shapes": (lambda: scan.complete(_IMG, np.ones((8, 8))), "shape"),
        "complete-min_dwell": (lambda: scan.complete(_IMG, _PATH, min_dwell=float("nan")), "min_dwell"),
        "stem-seed-neg": (lambda: __import__("fastem.data.stem", fromlist=["x"]).StemGenerator(32, seed=-1), "seed"),
        "stem-dose-inf": (lambda: __import__("fastem.data.stem", fromlist=["x"]).StemGenerator(32, dose=np.inf),
                          "dose"),
    }[name]


API_CASES = ["fit-None", "fit-rank5", "fit-object", "fit-nan", "fit-missing-file", "K>N", "K-float", "K-None",
             "batch-0", "n_init-0", "n_outer-0", "gamma0-nan", "gamma0-neg", "gamma0-str", "alpha-1", "tol-nan",
             "random_state-neg", "algorithm-None", "init-bogus", "init-shape", "dtype-bogus", "chunk_rows-0",
             "set_params-unknown", "predict-unfitted", "predict-None", "predict-features", "mps-None",
             "mps-complex", "mps-coverage-nan", "mps-kind", "mps-seed-neg", "mps-seed-float", "mps-dose-inf",
             "mps-example_base", "pipe-batch-0", "pipe-batch-None", "pipe-shape-None", "pipe-images-shape",
             "pipe-spacing-neg", "spiral-shape-str", "spiral-batch-None", "spiral-seed-neg", "spiral-offset-nan",
             "spiral-out", "grid-u-str", "grid-amp-neg", "scan_path-kind", "solve-samples-0", "coverage-None",
             "complete-None", "complete-str", "complete-method", "complete-shapes", "complete-min_dwell",
             "stem-seed-neg", "stem-dose-inf"]


@pytest.mark.parametrize("case", API_CASES)
def test_api_misuse_is_a_one_line_error_naming_the_parameter(case):
    call, word = _api(case)
    with pytest.raises(FastemError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and word.lower() in message.lower(), message


def test_a_diverged_fit_is_refused_not_returned():
    from fastem.errors import NonFiniteResultError

    with pytest.raises(NonFiniteResultError, match="gamma0"):
        _km(gamma0=1e200, n_outer=5).fit(_X)
    with pytest.raises(InputError, match="overflow"):
        _km().fit(_X * 1e300)


def test_cluster_job_errors_name_parameters_not_flags(tmp_path):
    """Was: API code of the cluster domain wrote CLI flags into its messages ("--gamma0",
    "--bin", "--detector-mask", "fastem cluster --load"); the job module now names parameters and
    only the CLI translates (issue 18)."""
    import h5py

    from fastem.cluster.job import cluster_file

    with h5py.File(tmp_path / "p.h5", "w") as f:
        f["data"] = np.random.default_rng(2).random((30, 6, 6))
        f["pts"] = np.random.default_rng(3).random((30, 4))
        f["mask"] = np.zeros((5, 5))
    cases = [(dict(in_ref=f"{tmp_path}/p.h5:/data", binning=4), "binning"),
             (dict(in_ref=f"{tmp_path}/p.h5:/data", detector_mask=f"{tmp_path}/p.h5:/mask"), "detector_mask"),
             (dict(in_ref=f"{tmp_path}/p.h5:/pts", binning=2), "binning"),
             (dict(in_ref=f"{tmp_path}/p.h5:/data", detector_mask=f"{tmp_path}/p.h5:/nomask"), "detector_mask"),
             (dict(in_ref=f"{tmp_path}/p.h5:/data", stream="yes"), "stream"),
             (dict(in_ref=f"{tmp_path}/p.h5:/data", progress=7), "progress")]
    for kw, word in cases:
        with pytest.raises(InputError) as info:
            cluster_file(out_path=tmp_path / "o.h5", n_clusters=2, **kw)
        message = str(info.value)
        assert word in message and "--" not in message and "\n" not in message, message
        assert not (tmp_path / "o.h5").exists()
