"""Partial-scan formation: normalisation, blur, noise model, exact nearest infill, augmentation."""

import warnings

import numpy as np
import pytest
from scipy import ndimage

from fastem import backend
from fastem.errors import InputError
from fastem.kernels import nearest_sampled, normalise_blur, sample_infill
from fastem.kernels import _hash_rng as H
from fastem.scan import (PartialScanPipeline, dihedral, dihedral_index, form_partial_scans, make_partial_scans,
                         spiral_path)
from fastem.scan import _reference as ref

from conftest import to_numpy

SIZES = [(1, 5, 5), (2, 16, 16), (3, 33, 20), (2, 64, 65)]


def _images(rng, shape, dtype=np.float32):
    x = (rng.standard_normal(shape) * 3.0 + 1.5).astype(dtype)
    return x


def _random_path(rng, shape, p=0.1):
    m = np.zeros(shape, np.float32)
    s = rng.random(shape) < p
    m[s] = np.minimum(1.0, rng.random(int(s.sum())) + 0.02)
    return m


# ---------------------------------------------------------------------------------------------
# stage A: cleanup, normalisation, blur, augmentation
# ---------------------------------------------------------------------------------------------
def test_normalisation_is_the_spec_definition(rng):
    x = _images(rng, (2, 12, 9))
    x[0, 3, 4], x[0, 5, 5], x[1, 0, 0] = np.nan, np.inf, -np.inf
    img, blur = np.empty_like(x), np.empty_like(x)
    normalise_blur(x, img, blur)
    for b in range(2):
        clean = np.where(np.isfinite(x[b]), x[b], 0.0).astype(np.float64)
        expect = 2 * (clean - clean.min()) / (clean.max() - clean.min()) - 1
        np.testing.assert_allclose(img[b], expect, atol=2e-7)
        assert img[b].min() == -1.0 and img[b].max() == pytest.approx(1.0, abs=1e-7)


def test_blur_matches_scipy_gaussian_filter(rng):
    """5x5 Gaussian, sigma 2.5, reflect: scipy's gaussian_filter with truncate 0.8 (radius 2)."""
    for shape in [(1, 5, 7), (2, 32, 33), (1, 3, 4)]:
        x = _images(rng, shape)
        img, blur = np.empty_like(x), np.empty_like(x)
        normalise_blur(x, img, blur)
        for b in range(shape[0]):
            expect = ndimage.gaussian_filter(img[b].astype(np.float64), 2.5, mode="reflect", truncate=0.8)
            np.testing.assert_allclose(blur[b], expect, atol=3e-7)
            assert np.abs(blur[b] - img[b]).max() > 0.05   # it does blur


def test_blur_weights_are_5_taps_sigma_2_5():
    w = ref.blur_weights()
    assert w.size == 5 and w.sum() == pytest.approx(1.0)
    assert w[0] / w[2] == pytest.approx(np.exp(-4 / (2 * 2.5 ** 2)))


@pytest.mark.parametrize("fill_value", [0.0, 7.5, np.nan])
def test_constant_and_nan_images_become_zeros(fill_value):
    x = np.full((2, 10, 10), fill_value, np.float32)
    x[1, 2, 2] = x[1, 2, 2] + 1e-8 if np.isfinite(fill_value) else np.inf  # near-constant / all non-finite
    out = make_partial_scans(x, "spiral", 0.3, seed=1)
    assert np.all(out.image == 0) and np.all(out.target == 0) and np.all(out.partial == 0)
    assert np.isfinite(out.partial).all()


def test_near_constant_threshold():
    x = np.zeros((2, 8, 8))
    x[0, 0, 0] = 0.9e-6   # below 1e-6: zeros
    x[1, 0, 0] = 2e-6     # above: normalised
    img, blur = np.empty((2, 8, 8), np.float32), np.empty((2, 8, 8), np.float32)
    normalise_blur(x, img, blur)
    assert np.all(img[0] == 0) and img[1].max() == 1.0 and img[1].min() == -1.0


def test_dihedral_transforms_are_the_8_distinct_group_elements(rng):
    x = rng.standard_normal((6, 6))
    outs = [dihedral(x, t) for t in range(8)]
    assert len({o.tobytes() for o in map(np.ascontiguousarray, outs)}) == 8
    expect = [x, np.flipud(x), np.fliplr(x), np.rot90(x, 2), x.T, np.rot90(x, 1), np.rot90(x, -1), np.rot90(x.T, 2)]
    for o, e in zip(outs, expect):
        np.testing.assert_array_equal(o, e)
    # closed under composition
    keys = {np.ascontiguousarray(o).tobytes() for o in outs}
    for a in range(8):
        for b in range(8):
            assert np.ascontiguousarray(dihedral(dihedral(x, a), b)).tobytes() in keys
    with pytest.raises(ValueError):
        dihedral(x, 8)


def test_augmentation_uses_all_8_transforms_and_matches_reference(rng):
    idx = dihedral_index(3, np.arange(400))
    assert set(np.unique(idx)) == set(range(8)) and np.bincount(idx).min() > 25
    x = _images(rng, (8, 17, 17))
    img, blur = np.empty_like(x), np.empty_like(x)
    normalise_blur(x, img, blur, seed=3, example_base=100, augment=True)
    for b in range(8):
        t = int(dihedral_index(3, 100 + b))
        np.testing.assert_allclose(img[b], ref.normalise(dihedral(x[b], t)), atol=2e-7)


# ---------------------------------------------------------------------------------------------
# nearest sampled pixel
# ---------------------------------------------------------------------------------------------
def _tie_masks(rng):
    yield np.zeros((7, 9), bool) | (np.arange(63).reshape(7, 9) % 4 == 0)     # regular: many ties
    m = np.zeros((9, 9), bool)
    m[0, 0] = m[0, 8] = m[8, 0] = m[8, 8] = True                               # centre ties 4 ways
    yield m
    m = np.zeros((10, 10), bool)
    m[2, 5] = m[7, 5] = m[5, 2] = m[5, 7] = True
    yield m
    for shape, p in [((13, 11), 0.05), ((16, 16), 0.2), ((31, 8), 0.02), ((1, 17), 0.2), ((17, 1), 0.2)]:
        m = rng.random(shape) < p
        m.flat[rng.integers(m.size)] = True
        yield m


def test_nearest_equals_bruteforce_with_tie_rule(rng):
    for mask in _tie_masks(rng):
        expect, d2 = ref.nearest_sampled_bruteforce(mask)
        path = mask[None].astype(np.float32)
        for engine in ("numba", "numpy"):
            got = nearest_sampled(path, engine=engine)[0]
            np.testing.assert_array_equal(got, expect, err_msg=f"{engine} {mask.shape}")
        ref_idx, ref_d2 = ref.nearest_sampled(mask)
        np.testing.assert_array_equal(ref_d2, d2)


def test_tie_rule_prefers_smaller_column_then_row():
    m = np.zeros((9, 9), bool)
    m[0, 0] = m[0, 8] = m[8, 0] = m[8, 8] = True
    idx = nearest_sampled(m[None].astype(np.float32))[0]
    assert idx[4, 4] == 0 * 9 + 0          # four at distance sqrt(32): column 0, row 0
    m = np.zeros((5, 5), bool)
    m[0, 2] = m[4, 2] = True                # same column: the smaller row
    assert nearest_sampled(m[None].astype(np.float32))[0][2, 2] == 0 * 5 + 2
    m = np.zeros((5, 5), bool)
    m[2, 0] = m[2, 4] = True                # same row: the smaller column
    assert nearest_sampled(m[None].astype(np.float32))[0][2, 2] == 2 * 5 + 0


def test_nearest_distances_equal_scipy_edt(rng):
    path = spiral_path((96, 80), spacing=13.0, batch=2, seed=5)
    idx = nearest_sampled(path)
    for b in range(2):
        r, c = np.divmod(idx[b].astype(np.int64), 80)
        rr, cc = np.mgrid[0:96, 0:80]
        d = np.sqrt((r - rr) ** 2 + (c - cc) ** 2)
        edt = ndimage.distance_transform_edt(path[b] == 0)
        np.testing.assert_allclose(d, edt, atol=1e-12)


def test_no_sampled_pixel_gives_minus_one():
    idx = nearest_sampled(np.zeros((1, 4, 5), np.float32))
    assert np.all(idx == -1)


# ---------------------------------------------------------------------------------------------
# stage B: noise model and infill
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scan_blurred", [True, False])
@pytest.mark.parametrize("shape,augment", [(s, a) for s in SIZES for a in (False, True) if s[1] == s[2] or not a])
def test_kernels_match_numpy_reference(rng, shape, augment, scan_blurred):
    x = _images(rng, shape, np.float64)
    x[0, 0, -1] = np.nan
    path = _random_path(rng, shape)
    path[:, 0, 0] = 0.7
    outs = {}
    for engine in ("numpy", "numba"):
        img, blur, part = (np.empty(shape, np.float32) for _ in range(3))
        near = np.empty(shape, np.int32)
        normalise_blur(x, img, blur, seed=9, example_base=3, augment=augment, engine=engine)
        sample_infill(blur if scan_blurred else img, blur, path, part, near, seed=9, example_base=3, engine=engine)
        outs[engine] = (img, blur, part, near)
    for a, e in zip(outs["numba"], outs["numpy"]):
        np.testing.assert_allclose(a, e, atol=3e-7, rtol=0)
    # and the whole reference pipeline (SciPy's EDT: equal wherever the nearest sample is unique)
    p_ref, t_ref, i_ref = ref.form_partial_scans(x, path, seed=9, example_base=3, augment=augment,
                                                 scan_blurred=scan_blurred)
    np.testing.assert_allclose(outs["numba"][1], t_ref, atol=3e-7)
    np.testing.assert_allclose(outs["numba"][0], i_ref, atol=3e-7)
    for b in range(shape[0]):
        _, d2 = ref.nearest_sampled_bruteforce(path[b] > 0)
        unique = _unique_nearest(path[b] > 0)
        np.testing.assert_allclose(outs["numba"][2][b][unique], p_ref[b][unique], atol=3e-7)
        assert unique.mean() > 0.5


def _unique_nearest(mask):
    h, w = mask.shape
    rows, cols = np.nonzero(mask)
    rr, cc = np.mgrid[0:h, 0:w]
    d2 = (rr.reshape(-1, 1) - rows) ** 2 + (cc.reshape(-1, 1) - cols) ** 2
    return ((d2 == d2.min(axis=1, keepdims=True)).sum(axis=1) == 1).reshape(h, w)


@pytest.mark.parametrize("scan_blurred", [True, False])
def test_noise_model_formula(rng, scan_blurred):
    """det = m (m s + 2 (1 - m) U blur), s the blurred image (default) or the unblurred one."""
    shape = (2, 24, 24)
    x = _images(rng, shape)
    path = _random_path(rng, shape, 0.3)
    out = form_partial_scans(x, path, seed=4, example_base=7, fill="constant", scan_blurred=scan_blurred)
    for b in range(2):
        img = ref.normalise(x[b])
        blur = ref.gaussian_blur(img)
        u = H.uniform32_np(H.stream_key_np(4, 7 + b, H.NOISE), np.arange(24 * 24)).reshape(24, 24)
        m = path[b].astype(np.float64)
        scanned = blur if scan_blurred else img
        det = m * (m * scanned + 2 * (1 - m) * u * blur)
        expect = 0.5 * (np.where(m > 0, det, -1.0) + 1.0)
        np.testing.assert_allclose(out.partial[b], expect, atol=3e-7)
    assert out.partial.min() >= 0 and out.partial.max() <= 1


def test_binary_path_detects_the_image(rng):
    shape = (2, 20, 20)
    x = _images(rng, shape)
    path = _random_path(rng, shape, 0.2)
    out = form_partial_scans(x, path, binary=True, scan_blurred=False)
    s = out.path > 0
    assert set(np.unique(out.path)) == {0.0, 1.0}
    np.testing.assert_allclose(out.partial[s], out.image[s], atol=1e-7)
    # by default the beam scans the blurred image: on the path the partial scan is the target
    out = form_partial_scans(x, path, binary=True)
    np.testing.assert_allclose(out.partial[s], out.target[s], atol=1e-7)


def test_default_simulation_is_the_papers(rng):
    """Default: 1-px binary path, coverage = dose fraction, on-path samples equal the target."""
    x = _images(rng, (2, 128, 128))
    for kind in ("spiral", "grid"):
        out = make_partial_scans(x, kind, 1 / 20, seed=3)
        assert set(np.unique(out.path).tolist()) == {0.0, 1.0}
        s = out.path > 0
        np.testing.assert_allclose(out.partial[s], out.target[s], atol=1e-6)
        assert abs(float(out.path.mean()) * 20 - 1) < 0.15


def test_infill_equals_value_at_nearest_sampled_pixel(rng):
    shape = (3, 40, 37)
    out = make_partial_scans(_images(rng, shape), "spiral", 0.15, seed=2)
    for b in range(3):
        mask = out.path[b] > 0
        expect, _ = ref.nearest_sampled_bruteforce(mask)
        np.testing.assert_array_equal(out.nearest[b], expect)
        np.testing.assert_array_equal(out.partial[b].reshape(-1), out.partial[b].reshape(-1)[expect.reshape(-1)])
        assert np.all(mask.reshape(-1)[expect.reshape(-1)])


def test_uniform_noise_is_uniform():
    u = ref.noise_uniform(1, 2, (256, 256))
    assert u.min() >= 0 and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    assert np.abs(np.corrcoef(u[:, :-1].ravel(), u[:, 1:].ravel())[0, 1]) < 0.01


def test_shot_noise_is_unbiased_poisson():
    img = np.full((1, 64, 64), 0.2, np.float32)
    img[0, 0, 0] = -1.0   # keep a range so normalisation maps 0.2 -> +1.0
    path = np.ones((1, 64, 64), np.float32)
    dose = 50.0
    outs = [make_partial_scans(img, "spiral", 1.0, seed=s, dose=dose, binary=True).partial for s in range(6)]
    vals = np.stack(outs)[:, 0, 1:, 1:]            # normalised image is +1 there: lambda = dose
    counts = (vals + 1.0) * dose / 2.0
    assert np.allclose(counts, np.round(counts), atol=1e-3)                # integer counts
    assert counts.mean() == pytest.approx(dose, rel=0.01)
    assert counts.var() == pytest.approx(dose, rel=0.05)
    assert path.shape == img.shape


def test_pipeline_reuses_its_buffers(rng):
    pipe = PartialScanPipeline(2, (32, 32), "spiral", 0.2, seed=1, augment=True, device="cpu")
    a = pipe(_images(rng, (2, 32, 32)), example_base=0)
    ptr = a.partial.ctypes.data
    b = pipe(_images(rng, (2, 32, 32)), example_base=2)
    assert b.partial.ctypes.data == ptr and b.path.ctypes.data == a.path.ctypes.data


def test_bad_input_is_rejected(rng):
    x = _images(rng, (2, 16, 16))
    with pytest.raises(InputError, match="coverage"):
        make_partial_scans(x, "spiral", 0.0)
    with pytest.raises(InputError, match="coverage"):
        make_partial_scans(x, "grid", 1.2)
    with pytest.raises(InputError, match="square"):
        make_partial_scans(_images(rng, (1, 16, 20)), "spiral", 0.2, augment=True)
    with pytest.raises(InputError, match="real"):
        make_partial_scans(x.astype(np.complex64), "spiral", 0.2)
    with pytest.raises(InputError, match="shape"):
        make_partial_scans(np.zeros((2, 3, 4, 5)), "spiral", 0.2)
    with pytest.raises(InputError, match="path has shape"):
        form_partial_scans(x, np.ones((2, 16, 15), np.float32))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        form_partial_scans(x, np.full((2, 16, 16), 1.5, np.float32))
    with pytest.raises(InputError, match="dose"):
        make_partial_scans(x, "spiral", 0.2, dose=-1.0)
    with pytest.raises(InputError, match="fill"):
        make_partial_scans(x, "spiral", 0.2, fill="zeros")
    with pytest.raises(InputError, match="float32 or float64"):
        normalise_blur(x.astype(np.int32), np.empty((2, 16, 16), np.float32), np.empty((2, 16, 16), np.float32))


# ---------------------------------------------------------------------------------------------
# GPU engines (CuPy RawKernels and Numba CUDA on a real device)
# ---------------------------------------------------------------------------------------------
def _run_engine(engine, xp, x, path, augment):
    shape = path.shape
    xd, pd = xp.asarray(x), xp.asarray(path)
    img, blur, part = (xp.empty(shape, np.float32) for _ in range(3))
    near = xp.empty(shape, np.int32)
    normalise_blur(xd, img, blur, seed=2, example_base=5, augment=augment, engine=engine)
    sample_infill(img, blur, pd, part, near, seed=2, example_base=5, engine=engine)
    return [to_numpy(a) for a in (img, blur, part, near)]


@pytest.mark.gpu
@pytest.mark.parametrize("engine", ["cuda", "numba-cuda"])
@pytest.mark.parametrize("shape", [(2, 16, 16), (3, 33, 33), (2, 512, 512), (1, 64, 65)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_engines_match_cpu(rng, engine, shape, dtype):
    cp = backend.Device("cuda").xp
    augment = shape[1] == shape[2]
    x = _images(rng, shape, dtype)
    x[0, 1, 1] = np.nan
    path = spiral_path(shape[1:], spacing=9.0, batch=shape[0], seed=3)
    gpu = _run_engine(engine, cp, x, path, augment)
    cpu = _run_engine("numba", np, x, path, augment)
    for g, c in zip(gpu, cpu):
        np.testing.assert_allclose(g, c, atol=2e-6, rtol=0)


@pytest.mark.gpu
@pytest.mark.parametrize("kind", ["spiral", "grid"])
def test_gpu_pipeline_stays_on_device_and_matches_cpu(rng, kind):
    cp = backend.Device("cuda").xp
    x = _images(rng, (4, 128, 128))
    gpu = PartialScanPipeline(4, (128, 128), kind, 0.1, seed=1, augment=True, device="cuda")(cp.asarray(x), 8)
    assert all(backend.is_cupy_array(a) for a in (gpu.partial, gpu.path, gpu.target, gpu.image, gpu.nearest))
    cpu = PartialScanPipeline(4, (128, 128), kind, 0.1, seed=1, augment=True, device="cpu")(x, 8)
    for g, c in zip((gpu.path, gpu.target, gpu.partial), (cpu.path, cpu.target, cpu.partial)):
        np.testing.assert_allclose(to_numpy(g), c, atol=2e-5)


# ---------------------------------------------------------------------------------------------
# Numba CUDA kernels under the simulator
# ---------------------------------------------------------------------------------------------
@pytest.mark.cudasim
@pytest.mark.parametrize("shape,augment", [((2, 6, 6), True), ((1, 7, 10), False)])
def test_numba_cuda_kernels_in_simulator(rng, shape, augment):
    x = _images(rng, shape)
    x[0, 0, 0] = np.inf
    path = _random_path(rng, shape, 0.2)
    path[:, -1, -1] = 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # uint64 wrap-around in the simulator's NumPy scalars
        sim = _run_engine("numba-cuda", np, x, path, augment)
        idx = nearest_sampled(path, engine="numba-cuda")
    cpu = _run_engine("numpy", np, x, path, augment)
    for s, c in zip(sim, cpu):
        np.testing.assert_allclose(s, c, atol=3e-7, rtol=0)
    np.testing.assert_array_equal(idx, cpu[3])
