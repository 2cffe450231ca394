"""`fastem show`: a PNG for every kind of input/output, with the right number of panels."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from fastem import io
from fastem.cli.main import app
from fastem.errors import InputError
from fastem.io.show import show


def panels_in(png) -> int:
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > 100
        return int(im.text["fastem-panels"])


def test_show_every_output_kind(tmp_path, rng):
    d = tmp_path
    cases = {}
    # CXI diffraction (2D, log scale) and a 3D CXI reconstruction with its R-factor history
    io.write_cxi(d / "in.cxi", rng.random((16, 16)) * 1e4)
    cases["in.cxi"] = (1, "CXI diffraction (log scale)")
    io.write_cxi_reconstruction(d / "rec.cxi", rng.random((8, 8, 8)) + 1j * rng.random((8, 8, 8)),
                                results={"r_factor_history": rng.random(20) + 0.1})
    cases["rec.cxi"] = (7, "CXI reconstruction")       # three slices of |u|, three of arg u + one curve
    # Data Exchange volume (+ history) and projections (montage)
    io.write_dxchange_volume(d / "vol.h5", rng.random((6, 7, 8)), results={"r_factor_history": rng.random(5) + 0.1})
    cases["vol.h5"] = (4, "Data Exchange volume")
    io.write_dxchange(d / "proj.h5", rng.random((5, 6, 7)).astype(np.float32), theta=np.linspace(-40, 40, 5))
    cases["proj.h5"] = (5, "Data Exchange projections")
    # scan and cluster outputs
    with h5py.File(d / "scan.h5", "w") as f:
        f["/scan/partial"] = rng.random((20, 8, 8)).astype(np.float32)
        f["/scan/path"] = rng.random((20, 8, 8)).astype(np.float32)
    cases["scan.h5"] = (16, "partial scans")             # montage capped at 16
    with h5py.File(d / "clusters.h5", "w") as f:
        f["/cluster/centroids"] = rng.random((3, 30))
        f["/cluster/centroids"].attrs["image_shape"] = np.array([5, 6])
    cases["clusters.h5"] = (3, "cluster centroids")
    # MRC volume vs MRC stack, EMD stack, a 1D dataset
    io.write_mrc(d / "v.mrc", rng.random((4, 5, 6)))
    cases["v.mrc"] = (3, "MRC volume")
    io.write_mrc(d / "s.mrc", rng.random((2, 5, 6)), stack=True)
    cases["s.mrc"] = (2, "MRC image/stack")
    io.write_emd(d / "e.emd", {"img": rng.random((3, 5, 6))}, {"img": [(np.arange(3.0), "image", ""),
                                                                       (np.arange(5.0), "y", "nm"),
                                                                       (np.arange(6.0), "x", "nm")]})
    cases["e.emd"] = (3, "fastem")
    cases["vol.h5:/process/fastem/r_factor_history"] = (1, "dataset /process/fastem/r_factor_history")
    for spec, (n, what) in cases.items():
        out = d / (spec.replace("/", "_").replace(":", "_") + ".png")
        result = show(f"{d}/{spec}", out)
        assert len(result.panels) == n, spec
        assert result.description == what, spec
        assert panels_in(out) == n, spec
    kinds = [p.kind for p in show(f"{d}/rec.cxi", d / "again.png").panels]
    assert kinds == ["image"] * 6 + ["curve"]
    assert all(p.log for p in show(f"{d}/in.cxi", d / "diff.png").panels)


def test_show_cli_and_errors(tmp_path, rng):
    io.write_tiff(tmp_path / "s.tif", rng.random((3, 6, 7)).astype(np.float32))
    r = CliRunner().invoke(app, ["show", str(tmp_path / "s.tif"), "-o", str(tmp_path / "s.png"), "--max-images", "2"])
    assert r.exit_code == 0, r.output
    assert "2 panel(s)" in r.output and panels_in(tmp_path / "s.png") == 2
    r = CliRunner().invoke(app, ["show", str(tmp_path / "s.tif"), "-o", str(tmp_path / "s.png")])
    assert r.exit_code == 1 and "exists" in r.output
    with pytest.raises(InputError, match=r"a picture name ending in .png"):
        show(tmp_path / "s.tif", tmp_path / "s.h5")


def test_show_cluster_scan_output_draws_the_label_map_beside_the_centroids(tmp_path, rng):
    """A 4D-STEM ``fastem cluster`` output: one label-map panel (qualitative colours) + K centroid
    patterns; the montage cap applies to the centroids only."""
    labels = rng.integers(0, 5, size=(7, 9))
    with h5py.File(tmp_path / "scan_clusters.h5", "w") as f:
        f["/cluster/centroids"] = rng.random((5, 4 * 6))
        f["/cluster/centroids"].attrs["image_shape"] = np.array([4, 6])
        f["/cluster/label_map"] = labels
    result = show(f"{tmp_path}/scan_clusters.h5", tmp_path / "sc.png")
    assert len(result.panels) == 6 and panels_in(tmp_path / "sc.png") == 6
    assert result.description == "cluster label map and centroids"
    first = result.panels[0]
    assert first.kind == "image" and first.cmap == "tab10" and first.title.startswith("label map 7x9, K=5")
    np.testing.assert_array_equal(first.data, labels)
    assert [p.data.shape for p in result.panels[1:]] == [(4, 6)] * 5
    assert all(p.cmap is None for p in result.panels[1:])
    capped = show(f"{tmp_path}/scan_clusters.h5", tmp_path / "sc2.png", max_images=2)
    assert len(capped.panels) == 3 and panels_in(tmp_path / "sc2.png") == 3


def test_show_real_cluster_command_output(tmp_path):
    """End to end: ``fastem cluster`` on a small 4D scan, then ``fastem show`` of its output."""
    from fastem.cluster.job import cluster_file
    from fastem.cluster.synthetic import stem4d_phases

    X, _, _ = stem4d_phases(6, 5, 8, 8, 3, noise=0.2, seed=4)
    with h5py.File(tmp_path / "scan.h5", "w") as f:
        f["data"] = X
    cluster_file(f"{tmp_path}/scan.h5:/data", tmp_path / "out.h5", n_clusters=3, n_outer=3, n_inner=2,
                 batch_size=10)
    r = CliRunner().invoke(app, ["show", str(tmp_path / "out.h5"), "-o", str(tmp_path / "out.png")])
    assert r.exit_code == 0, r.output
    assert panels_in(tmp_path / "out.png") == 1 + 3 and "4 panel(s)" in r.output


def test_show_complex_reconstruction_draws_modulus_and_phase(tmp_path):
    """A complex phase-retrieval result (``fastem phase --complex``) shows its phase too (the
    quantity of interest in Bragg CDI), not the modulus alone."""
    yy, xx = np.mgrid[:20, :24]
    obj = np.where((yy - 10) ** 2 + (xx - 12) ** 2 < 30, 1.0, 0.0) * np.exp(1j * 0.05 * (xx - 12))
    io.write_cxi_reconstruction(tmp_path / "c.cxi", obj, support=np.abs(obj) > 0)
    result = show(f"{tmp_path}/c.cxi", tmp_path / "c.png")
    titles = [p.title for p in result.panels if p.kind == "image"]
    assert any(t.startswith("|object|") for t in titles) and any(t.startswith("arg object") for t in titles)
    phase = next(p for p in result.panels if p.title.startswith("arg object"))
    np.testing.assert_allclose(phase.data[10, 12:17], 0.05 * np.arange(5), atol=1e-12)
    assert phase.data[0, 0] == 0  # outside the object
