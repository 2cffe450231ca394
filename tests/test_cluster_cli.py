"""``fastem cluster`` through click's CliRunner, and its job module ``fastem.cluster.job``."""

import re

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from fastem.cli.main import app
from fastem.cluster import SBEKMeans
from fastem.data.mixture import gaussian_mixture
from fastem.data.writers import save_mixture
from fastem.io import read_provenance



def run(*args):
    return CliRunner().invoke(app, ["--device", "cpu", "--quiet", *args])


@pytest.fixture
def points(tmp_path):
    X, labels, centres = gaussian_mixture(300, 4, 3, seed=2)
    path = tmp_path / "pts.h5"
    save_mixture(path, X, labels, centres)
    return path, X


@pytest.mark.parametrize("algorithm", ["sbe", "lloyd", "minibatch"])
@pytest.mark.parametrize("stream", ["--stream", "--load"])
def test_cluster_writes_what_the_library_computes(tmp_path, points, algorithm, stream):
    path, X = points
    out = tmp_path / "out.h5"
    r = run("cluster", f"{path}:/data", "-k", "3", "-o", str(out), "--algorithm", algorithm, "--batch", "50",
            "--runs", "3", "--seed", "5", "--init", "k-means++", "--outer", "6", "--inner", "4", stream)
    assert r.exit_code == 0, r.output
    with h5py.File(out, "r") as f:
        g = f["cluster"]
        C, labels, phi = g["centroids"][()], g["labels"][()], float(g["objective"][()])
        objs, inertia = g["objectives"][()], float(g["inertia"][()])
        prov = read_provenance(f["process/fastem"])
    lib = SBEKMeans(3, algorithm=algorithm, init="k-means++", n_init=3, batch_size=50, n_outer=6, n_inner=4,
                    random_state=5).fit(X)
    np.testing.assert_array_equal(C, lib.cluster_centers_)
    np.testing.assert_array_equal(labels, lib.labels_)
    np.testing.assert_array_equal(objs, lib.objectives_)
    assert phi == lib.objective_ and inertia == pytest.approx(2 * 300 * phi)
    assert prov["configuration"]["algorithm"] == algorithm and prov["configuration"]["k"] == 3


def test_cluster_images_and_errors(tmp_path, rng):
    imgs = rng.standard_normal((20, 3, 5)).astype(np.float32)
    src = tmp_path / "imgs.h5"
    with h5py.File(src, "w") as f:
        f["stack"] = imgs
    out = tmp_path / "o.h5"
    r = run("cluster", f"{src}:/stack", "-k", "2", "-o", str(out), "--algorithm", "lloyd")
    assert r.exit_code == 0, r.output
    with h5py.File(out, "r") as f:
        assert f["cluster/centroids"].shape == (2, 15) and f["cluster/centroids"].dtype == np.float32
        assert list(f["cluster/centroids"].attrs["image_shape"]) == [3, 5]
    r = run("cluster", f"{src}:/stack", "-k", "2", "-o", str(out))
    assert r.exit_code == 1 and "exists" in r.output
    r = run("cluster", f"{src}:/stack", "-k", "21", "-o", str(tmp_path / "p.h5"))
    assert r.exit_code == 1 and "larger than the number of points N = 20" in r.output
    with h5py.File(src, "a") as f:
        bad = imgs.copy()
        bad[4, 1, 1] = np.nan
        f["bad"] = bad
        f["flat"] = np.zeros(5)
    r = run("cluster", f"{src}:/bad", "-k", "2", "-o", str(tmp_path / "q.h5"))
    assert r.exit_code == 1 and "row 4 contains NaN" in r.output and "bad" in r.output
    r = run("cluster", f"{src}:/flat", "-k", "2", "-o", str(tmp_path / "q.h5"))
    assert r.exit_code == 1 and "expected (N, d) points" in r.output
    r = run("cluster", f"{src}:/missing", "-k", "2", "-o", str(tmp_path / "q.h5"))
    assert r.exit_code == 1 and "missing" in r.output


def test_demo_job_quick(tmp_path):
    from fastem.cluster import demo

    rows = demo.run(tmp_path, quick=True)
    assert [r["output"] for r in rows] == ["cluster/mixture.h5", "cluster/sbe.h5", "cluster/objectives.png"]
    assert (tmp_path / "cluster" / "objectives.png").stat().st_size > 1000
    with h5py.File(tmp_path / "cluster" / "sbe.h5", "r") as f:
        objs = f["cluster/objectives"][()]
        assert objs.shape == (6,) and float(f["cluster/objective"][()]) == objs.min()


@pytest.mark.parametrize("stream", ["--stream", "--load"])
def test_cluster_compressed_4d_scan_end_to_end(tmp_path, stream):
    """A small bitshuffle/LZ4-compressed 4D-STEM file (as detectors write them), with a detector
    mask, binning, sqrt and normalisation: the label map, centroid patterns, per-cluster stats and
    the recorded preprocessing equal the library's fit of the same array."""
    hdf5plugin = pytest.importorskip("hdf5plugin")
    from fastem.cluster.synthetic import stem4d_phases

    X, phase_map, _ = stem4d_phases(12, 10, 16, 16, 3, noise=0.3, seed=8)
    path = tmp_path / "scan.h5"
    mask = np.zeros((16, 16), np.uint8)
    mask[7:9, 7:9] = 1
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("data", data=X, chunks=(2, 10, 16, 16), **hdf5plugin.Bitshuffle(cname="lz4"))
        ds.attrs["scan_step_nm"] = 0.5
        f["mask"] = mask
    with h5py.File(path, "r") as f:
        assert "32008" in f["data"]._filters  # the bitshuffle filter
    out = tmp_path / "out.h5"
    r = run("cluster", f"{path}:/data", "-k", "3", "-o", str(out), "--algorithm", "minibatch", "--batch", "24",
            "--steps", "20", "--seed", "2", "--init", "k-means++", "--transform", "sqrt", "--bin", "2",
            "--detector-mask", f"{path}:/mask", "--normalize", "l2", stream)
    assert r.exit_code == 0, r.output
    with h5py.File(out, "r") as f:
        g = f["cluster"]
        label_map, patterns, counts = g["label_map"][()], g["patterns"][()], g["counts"][()]
        labels, md, C = g["labels"][()], g["mean_distance"][()], g["centroids"][()]
        attrs = dict(g.attrs)
        hidden = g["detector_mask"][()]
        assert g["input"].attrs["scan_step_nm"] == 0.5
        np.testing.assert_array_equal(g["input"].attrs["shape"], [12, 10, 16, 16])
        prov = read_provenance(f["process/fastem"])
    assert label_map.shape == (12, 10) and patterns.shape == (3, 8, 8) and C.shape == (3, 64)
    np.testing.assert_array_equal(label_map.ravel(), labels)
    np.testing.assert_array_equal(hidden, mask)
    assert (attrs["transform"], attrs["binning"], attrs["normalize"]) == ("sqrt", 2, "l2")
    assert prov["configuration"]["bin"] == 2 and prov["configuration"]["detector_mask"] == f"{path}:/mask"
    lib = SBEKMeans(3, algorithm="minibatch", init="k-means++", batch_size=24, n_steps=20, random_state=2,
                    transform="sqrt", binning=2, detector_mask=mask, normalize="l2",
                    sampling="chunks" if stream == "--stream" else "auto",
                    sampling_chunks=(2, 10, 16, 16) if stream == "--stream" else None).fit(X)
    np.testing.assert_array_equal(label_map, lib.label_map_)
    np.testing.assert_array_equal(patterns, lib.cluster_patterns_)
    np.testing.assert_array_equal(counts, lib.counts_)
    np.testing.assert_allclose(md, lib.mean_distance_, rtol=1e-12)
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(phase_map.ravel(), labels) == pytest.approx(1.0)


# ---- the job module: fastem.cluster.job (issue 18: one orchestration shape) ----------------------
@pytest.fixture
def patterns(tmp_path):
    rng = np.random.default_rng(11)
    path = tmp_path / "pat.h5"
    with h5py.File(path, "w") as f:
        f["data"] = rng.random((40, 6, 6)).astype(np.float32)
        f["mask"] = np.zeros((8, 8), np.uint8)
    return path


def test_cluster_file_is_the_command_without_the_command_line(tmp_path, points):
    from fastem.cluster.job import cluster_file

    path, X = points
    steps = []
    model = cluster_file(f"{path}:/data", tmp_path / "api.h5", n_clusters=3, batch_size=50, n_init=2,
                         random_state=5, n_outer=6, n_inner=4, progress=steps.append)
    assert len(steps) == 12
    r = run("cluster", f"{path}:/data", "-k", "3", "-o", str(tmp_path / "cli.h5"), "--batch", "50", "--runs", "2",
            "--seed", "5", "--outer", "6", "--inner", "4")
    assert r.exit_code == 0, r.output
    with h5py.File(tmp_path / "api.h5", "r") as a, h5py.File(tmp_path / "cli.h5", "r") as c:
        np.testing.assert_array_equal(a["cluster/centroids"][()], c["cluster/centroids"][()])
        np.testing.assert_array_equal(a["cluster/labels"][()], model.labels_)
        assert read_provenance(a["process/fastem"])["configuration"]["k"] == 3


def test_a_progress_bar_without_total_gets_the_step_count(tmp_path, points):
    from fastem.cluster.job import cluster_file

    class Bar:
        total = None

        def __init__(self):
            self.n = 0

        def update(self, n=1):
            self.n += n

    bar = Bar()
    cluster_file(f"{points[0]}:/data", tmp_path / "o.h5", n_clusters=3, n_init=3, algorithm="minibatch",
                 n_steps=4, batch_size=30, progress=bar)
    assert bar.total == 12 and bar.n == 12


@pytest.mark.parametrize("kw,api,cli", [
    (dict(binning=4), r"^binning 4 does not divide the pattern shape \(6, 6\)", "--bin 4 does not divide"),
    (dict(detector_mask="MASK"), r"^detector_mask .*pat.h5:/mask: shape \(8, 8\) but the patterns",
     "--detector-mask"),
    (dict(n_clusters=41), r"^n_clusters = 41 is larger than the number of points N = 40", "-k/--clusters = 41"),
    (dict(out_format="png"), r"^out_format must be one of", None),
])
def test_job_errors_name_parameters_and_the_cli_names_flags(tmp_path, patterns, kw, api, cli):
    from fastem.cluster.job import cli_message, cluster_file
    from fastem.errors import InputError

    kw = {"n_clusters": 2, **kw}
    if kw.get("detector_mask") == "MASK":
        kw["detector_mask"] = f"{patterns}:/mask"
    with pytest.raises(InputError) as err:
        cluster_file(f"{patterns}:/data", tmp_path / "o.h5", **kw)
    message = cli_message(str(err.value))
    assert re.search(api, str(err.value).removeprefix("cluster_file: ")), str(err.value)
    assert "--" not in str(err.value) and "-k/" not in str(err.value)
    if cli is None:
        return
    assert cli in message
    flags = {"binning": ["--bin", "4"], "detector_mask": ["--detector-mask", f"{patterns}:/mask"],
             "n_clusters": []}
    name = next(k for k in kw if k != "n_clusters") if len(kw) > 1 else "n_clusters"
    r = run("cluster", f"{patterns}:/data", "-k", str(kw["n_clusters"]), "-o", str(tmp_path / "c.h5"), *flags[name])
    assert r.exit_code == 1 and cli in r.output and "Traceback" not in r.output, r.output


def test_cli_message_translates_only_parameter_words():
    from fastem.cluster.job import cli_message

    assert cli_message("cluster_file: binning 3 must divide; see /data/binning.h5") == \
        "--bin 3 must divide; see /data/binning.h5"
    assert cli_message("a.h5:/x: n_clusters = 9 is larger") == "a.h5:/x: -k/--clusters = 9 is larger"
    assert cli_message("a.h5:/x: expected a real numeric array, got dtype complex64") == \
        "a.h5:/x: expected a real numeric array, got dtype complex64"
    assert "lower --gamma0" in cli_message("x diverged; lower gamma0 (SBE's initial step) or rescale the data")


def test_renamed_cluster_job_module_still_imports_with_a_warning():
    import subprocess
    import sys

    code = ("import warnings\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    import fastem.cluster.files as old\n"
            "import fastem.cluster.job as new\n"
            "assert old.write_clusters is new.write_clusters and old.cluster_file is new.cluster_file\n"
            "assert old._load_mask is new._load_mask\n"
            "print(any(issubclass(x.category, DeprecationWarning) and 'fastem.cluster.job' in str(x.message) "
            "for x in w))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "True"
