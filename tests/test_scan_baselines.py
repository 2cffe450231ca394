"""Completion baselines, metrics (checked against scikit-image), error-vs-distance, torch dataset."""

import numpy as np
import pytest

from fastem.errors import InputError
from fastem.scan import (METHODS, complete, complete_methods, distance_to_path, error_vs_distance, make_partial_scans,
                         psnr, rmse, spiral_path, squared_error_map, ssim)
from fastem.scan.baselines import sample_values


def _smooth(shape, kind="plane"):
    r, c = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    if kind == "plane":
        return 0.8 * (r / shape[0] - 0.5) + 0.6 * (c / shape[1] - 0.5)
    return 0.5 * np.sin(r / 9.0) * np.cos(c / 11.0)


def test_rmse_and_psnr_definitions(rng):
    a, b = rng.uniform(-1, 1, (2, 20, 30)), rng.uniform(-1, 1, (2, 20, 30))
    e = np.sqrt(np.mean(((a + 1) / 2 - (b + 1) / 2) ** 2, axis=(1, 2)))
    np.testing.assert_allclose(rmse(a, b), e, rtol=1e-12)
    np.testing.assert_allclose(psnr(a, b), -20 * np.log10(e), rtol=1e-12)
    assert rmse(a[0], b[0]) == pytest.approx(e[0]) and rmse(a[0] * 0.5, b[0] * 0.5, unit=False) == pytest.approx(e[0])


def test_ssim_matches_scikit_image(rng):
    skm = pytest.importorskip("skimage.metrics")
    t = _smooth((64, 70), "wave") + 0.1 * rng.standard_normal((64, 70))
    p = t + 0.2 * rng.standard_normal((64, 70))
    expect = skm.structural_similarity((p + 1) / 2, (t + 1) / 2, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False)
    assert ssim(p, t) == pytest.approx(expect, abs=1e-10)
    assert ssim(t, t) == pytest.approx(1.0)
    np.testing.assert_allclose(ssim(np.stack([p, t]), np.stack([t, t])), [expect, 1.0], atol=1e-10)
    assert psnr(p, t) == pytest.approx(skm.peak_signal_noise_ratio((t + 1) / 2, (p + 1) / 2, data_range=1.0))


def test_metrics_reject_bad_input(rng):
    with pytest.raises(InputError, match="shape"):
        rmse(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(InputError, match="non-finite"):
        rmse(np.full((4, 4), np.nan), np.zeros((4, 4)))
    with pytest.raises(InputError, match="12x12"):
        ssim(np.zeros((8, 8)), np.zeros((8, 8)))


@pytest.mark.parametrize("method", ["linear", "cubic", "biharmonic"])
def test_smooth_field_is_recovered_from_a_binary_path(method):
    if method == "biharmonic":
        pytest.importorskip("skimage")
    truth = _smooth((48, 48), "plane")
    path = (spiral_path((48, 48), spacing=6.0, seed=1)[0] > 0.5).astype(np.float32)
    partial = np.where(path > 0, truth, 0.0)
    out = complete(partial, path, method)
    inner = (slice(6, -6), slice(6, -6))
    # linear and Clough-Tocher reproduce a plane; scikit-image's biharmonic stencil to about 0.5 %
    tol = {"linear": 1e-9, "cubic": 1e-5, "biharmonic": 1e-2}[method]
    assert np.abs(out - truth)[inner].max() < tol
    assert np.abs(truth[inner]).max() > 0.5


def test_closed_form_transforms_equal_scipys(rng):
    from scipy.interpolate import griddata
    from scipy.spatial import Delaunay

    from fastem.scan.baselines import barycentric_transforms, closed_form_delaunay

    pts = np.unique(rng.integers(0, 60, (400, 2)), axis=0).astype(np.float64)
    pts = np.vstack([pts, [[0, 0], [0, 30], [0, 59]]])          # collinear points on the hull
    pts = np.unique(pts, axis=0)
    tri = Delaunay(pts)
    mine = barycentric_transforms(tri)
    scipys = tri.transform
    np.testing.assert_array_equal(np.isnan(mine), np.isnan(scipys))
    np.testing.assert_allclose(mine[~np.isnan(mine)], scipys[~np.isnan(scipys)], rtol=1e-12, atol=1e-12)
    # and the completion equals griddata's
    vals = rng.standard_normal(len(pts))
    path = np.zeros((60, 60), np.float32)
    partial = np.zeros((60, 60))
    path[pts[:, 0].astype(int), pts[:, 1].astype(int)] = 1.0
    partial[pts[:, 0].astype(int), pts[:, 1].astype(int)] = np.clip(vals, -1, 1)
    rr, cc = np.mgrid[0:60, 0:60]
    for method in ("linear", "cubic"):
        expect = griddata(pts, np.clip(vals, -1, 1), (rr, cc), method=method)
        got = complete(partial, path, method)
        inside = np.isfinite(expect)
        np.testing.assert_allclose(got[inside], np.clip(expect[inside], -1, 1), atol=1e-10)
    fast = closed_form_delaunay(pts)       # public subclass, nothing private of SciPy's is set
    assert isinstance(fast, Delaunay) and vars(fast).get("_transform") is None   # SciPy's cache untouched
    np.testing.assert_array_equal(fast.transform, mine)
    np.testing.assert_array_equal(fast.find_simplex(pts[:50] + 0.25), tri.find_simplex(pts[:50] + 0.25))


def test_nearest_baseline_is_the_nearest_sample(rng):
    truth = _smooth((40, 40), "wave")
    path = (rng.random((40, 40)) < 0.05).astype(np.float32)
    out = complete(np.where(path > 0, truth, 0), path, "nearest")
    from fastem.scan import _reference as ref

    idx, _ = ref.nearest_sampled_bruteforce(path > 0)
    np.testing.assert_array_equal(out.reshape(-1), np.clip(truth.reshape(-1)[idx.reshape(-1)], -1, 1))


def test_dwell_correction_and_min_dwell():
    partial = np.array([[0.2, 0.0], [0.09, 0.5]])
    path = np.array([[0.5, 0.0], [0.3, 1.0]], np.float32)
    s, v = sample_values(partial, path)
    assert s.tolist() == [[True, False], [False, True]]
    assert v[0, 0] == pytest.approx(0.4) and v[1, 1] == pytest.approx(0.5)
    s, v = sample_values(partial, path, dwell_correct=False, min_dwell=0.0)
    assert s.sum() == 3 and v[1, 0] == pytest.approx(0.09)
    with pytest.raises(InputError, match="no pixel"):
        sample_values(partial, np.zeros((2, 2)))
    with pytest.raises(InputError, match="method"):
        complete(partial, path, "kriging")


def test_baselines_on_a_partial_scan_rank_sensibly():
    pytest.importorskip("skimage")
    from fastem.data.stem import generate_stem

    img = generate_stem(1, 96, seed=3, dose=None)
    out = make_partial_scans(img, "spiral", 0.2, seed=1)
    res = complete_methods(out.partial[0], out.path[0])
    assert set(res) == set(METHODS)
    errs = {m: rmse(v, out.target[0]) for m, v in res.items()}
    assert all(np.isfinite(list(errs.values())))
    assert errs["linear"] < errs["nearest"] < 0.2
    for v in res.values():
        assert v.shape == (96, 96) and v.min() >= -1 and v.max() <= 1


def test_error_vs_distance(rng):
    path = np.zeros((1, 32, 32), np.float32)
    path[0, :, 0] = 1.0
    d = distance_to_path(path)
    np.testing.assert_allclose(d[0], np.tile(np.arange(32.0), (32, 1)))
    target = np.zeros((1, 32, 32))
    pred = np.tile(np.arange(32.0) / 31.0, (1, 32, 1)) * 0.5       # error grows with the distance
    edges, err, counts = error_vs_distance(pred, target, path)
    assert edges[0] == 0 and np.all(counts == 32) and np.all(np.diff(err) > 0)
    np.testing.assert_allclose(err, (np.arange(32) / 31.0) * 0.25)
    m = squared_error_map(np.stack([pred[0], pred[0]]), np.stack([target[0], target[0]]))
    assert m.shape == (32, 32) and m[0, 31] == pytest.approx(0.0625)


def test_torch_dataset_yields_device_tensors():
    torch = pytest.importorskip("torch")
    from fastem.scan import PartialScanDataset

    ds = PartialScanDataset(synthetic=3, size=64, batch_size=2, coverage=[0.1, 0.2], steps=3, seed=4, device="cpu")
    batches = list(torch.utils.data.DataLoader(ds, batch_size=None))
    assert len(batches) == 3 == len(ds)
    for x, p, y in batches:
        assert x.shape == p.shape == y.shape == (2, 1, 64, 64) and x.dtype == torch.float32
        assert 0 < float((p > 0).float().mean()) < 0.5 and float(y.abs().max()) <= 1.0
    again = ds.batch(1)
    assert torch.equal(again[0], batches[1][0]) and not torch.equal(batches[0][0], batches[1][0])
    with pytest.raises(InputError, match="either"):
        PartialScanDataset(size=64)
    with pytest.raises(InputError, match="smaller"):
        PartialScanDataset(np.zeros((2, 32, 32), np.float32), size=64)


@pytest.mark.gpu
def test_torch_dataset_on_gpu_is_zero_copy():
    torch = pytest.importorskip("torch")
    from fastem.scan import PartialScanDataset

    ds = PartialScanDataset(synthetic=4, size=128, batch_size=4, steps=2, seed=1, device="cuda", copy=False)
    x, p, y = next(iter(ds))
    assert x.is_cuda and p.is_cuda and y.is_cuda
    pipe = next(iter(ds._pipes.values()))
    assert x.data_ptr() == pipe.partial.data.ptr
