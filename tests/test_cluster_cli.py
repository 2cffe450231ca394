"""``fastem cluster`` through click's CliRunner."""

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from fastem.cli.main import app
from fastem.cluster import SBEKMeans
from fastem.data.mixture import gaussian_mixture
from fastem.data.writers import save_mixture
from fastem.io import read_provenance

from test_cli import _restore_settings  # noqa: F401


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
