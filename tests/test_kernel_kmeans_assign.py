"""k-means assignment kernel: every engine against the float64 NumPy reference."""

import numpy as np
import pytest

from fastem import backend
from fastem.errors import InputError
from fastem.kernels import assign_accumulate

from conftest import to_numpy

SIZES = [(1, 1, 1), (7, 3, 2), (33, 5, 4), (257, 17, 9), (1000, 64, 31), (129, 784, 10)]


def _data(rng, M, d, K, dtype):
    X = rng.standard_normal((M, d)).astype(dtype)
    C = rng.standard_normal((K, d)).astype(dtype)
    return X, C


def _check_against_reference(X, C, labels, dist, sums, counts, exact):
    ref_l, ref_d, ref_s, ref_c = assign_accumulate(X.astype(np.float64), C.astype(np.float64), engine="numpy")
    labels, dist, sums, counts = map(to_numpy, (labels, dist, sums, counts))
    if exact:
        np.testing.assert_array_equal(labels, ref_l)
    else:
        # float32 expanded distances: a different label only on a near-tie, and then the chosen
        # centroid's exact distance is within float32 rounding of the minimum
        D = ((X.astype(np.float64)[:, None] - C.astype(np.float64)[None]) ** 2).sum(-1)
        chosen = D[np.arange(len(labels)), labels]
        np.testing.assert_allclose(chosen, ref_d, rtol=1e-4, atol=1e-4 * (1 + np.abs(D).max()))
        assert np.mean(labels == ref_l) > 0.99
    # dist is the direct float64 distance to the chosen centroid
    X64, C64 = X.astype(np.float64), C.astype(np.float64)
    np.testing.assert_allclose(dist, ((X64 - C64[labels]) ** 2).sum(1), rtol=1e-12, atol=1e-12)
    # sums / counts are exactly those of the labels the kernel chose
    exp_s = np.zeros_like(ref_s)
    np.add.at(exp_s, labels, X64)
    np.testing.assert_array_equal(counts, np.bincount(labels, minlength=C.shape[0]))
    np.testing.assert_allclose(sums, exp_s, rtol=1e-10, atol=1e-9)
    if exact:
        np.testing.assert_allclose(dist, ref_d, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(sums, ref_s, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("M,d,K", SIZES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("engine", [None, "numba", "numpy"])
def test_cpu_engines_match_reference(rng, M, d, K, dtype, engine):
    X, C = _data(rng, M, d, K, dtype)
    out = assign_accumulate(X, C, engine=engine)
    assert out[0].dtype == np.int64 and out[1].dtype == np.float64
    _check_against_reference(X, C, *out, exact=dtype == np.float64)


def test_reference_is_the_definition():
    X = np.array([[0.0, 0.0], [3.0, 0.0], [10.0, 1.0]])
    C = np.array([[1.0, 0.0], [9.0, 0.0]])
    labels, dist, sums, counts = assign_accumulate(X, C, engine="numpy")
    np.testing.assert_array_equal(labels, [0, 0, 1])
    np.testing.assert_allclose(dist, [1.0, 4.0, 2.0])
    np.testing.assert_allclose(sums, [[3.0, 0.0], [10.0, 1.0]])
    np.testing.assert_array_equal(counts, [2, 1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_ties_go_to_lowest_index_and_empty_clusters(rng, dtype, engine):
    # integer data: the expanded and the direct distances are exact in float32 too
    X = rng.integers(-4, 5, size=(301, 3)).astype(dtype)
    # centroid 1 duplicates centroid 0 (every tie), centroid 3 is far away (empty)
    C = np.array([[1, 0, 0], [1, 0, 0], [-1, 0, 0], [100, 100, 100]], dtype=dtype)
    labels, dist, sums, counts = assign_accumulate(X, C, engine=engine)
    assert not np.any(labels == 1)          # exact duplicate: always the lower index
    assert counts[1] == 0 and counts[3] == 0
    np.testing.assert_array_equal(sums[[1, 3]], 0)
    # points at x = 0 are equidistant from centroids 0 and 2: they go to 0
    eq = X[:, 0] == 0
    assert eq.any() and np.all(labels[eq] == 0)
    _check_against_reference(X, C, labels, dist, sums, counts, exact=True)


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_accumulates_into_given_arrays_and_skips(rng, engine):
    X, C = _data(rng, 50, 6, 5, np.float64)
    s0, c0 = rng.standard_normal((5, 6)), rng.integers(0, 9, 5).astype(np.int64)
    sums, counts = s0.copy(), c0.copy()
    labels, _, sums2, counts2 = assign_accumulate(X, C, sums=sums, counts=counts, engine=engine)
    assert sums2 is sums and counts2 is counts
    np.testing.assert_array_equal(counts - c0, np.bincount(labels, minlength=5))
    l2, d2, s3, c3 = assign_accumulate(X, C, accumulate=False, engine=engine)
    np.testing.assert_array_equal(l2, labels)
    assert not s3.any() and not c3.any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_skipping_distances_keeps_labels_sums_counts(rng, dtype):
    """distances=False (mini-batch steps): the same labels, sums and counts as the full kernel."""
    X, C = _data(rng, 700, 33, 7, dtype)
    full = assign_accumulate(X, C, engine="numba")
    part = assign_accumulate(X, C, engine="numba", distances=False)
    np.testing.assert_array_equal(part[0], full[0])
    np.testing.assert_array_equal(part[2], full[2])
    np.testing.assert_array_equal(part[3], full[3])
    ref = assign_accumulate(X, C, engine="numpy")
    np.testing.assert_allclose(part[2], ref[2], rtol=1e-6 if dtype == np.float32 else 1e-12)


def test_empty_batch():
    X = np.zeros((0, 3))
    labels, dist, sums, counts = assign_accumulate(X, np.ones((2, 3)))
    assert labels.shape == (0,) and dist.shape == (0,) and not counts.any()


def test_bad_input(rng):
    X, C = _data(rng, 5, 3, 2, np.float64)
    with pytest.raises(InputError, match="features"):
        assign_accumulate(X, C[:, :2].copy())
    with pytest.raises(InputError, match="float32 or float64"):
        assign_accumulate(X, C.astype(np.float32))
    with pytest.raises(InputError, match="float32 or float64"):
        assign_accumulate(X.astype(np.int64), C.astype(np.int64))
    with pytest.raises(InputError, match="contiguous"):
        assign_accumulate(np.asfortranarray(rng.standard_normal((5, 3))), C)
    with pytest.raises(InputError, match="K >= 1"):
        assign_accumulate(X, np.zeros((0, 3)))
    with pytest.raises(InputError, match="sums must be"):
        assign_accumulate(X, C, sums=np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="GPU"):
        assign_accumulate(X, C, engine="cuda")


@pytest.mark.gpu
@pytest.mark.parametrize("engine", ["cuda", "numba-cuda"])
@pytest.mark.parametrize("M,d,K", [(1, 1, 1), (257, 17, 9), (4099, 784, 10), (5000, 64, 256)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_engines_match_reference(rng, engine, M, d, K, dtype):
    cp = backend.Device("cuda").xp
    X, C = _data(rng, M, d, K, dtype)
    out = assign_accumulate(cp.asarray(X), cp.asarray(C), engine=engine)
    assert all(backend.is_cupy_array(a) for a in out)
    _check_against_reference(X, C, *out, exact=dtype == np.float64)


@pytest.mark.gpu
def test_gpu_ties_and_empty(rng):
    cp = backend.Device("cuda").xp
    X = rng.integers(-4, 5, size=(301, 3)).astype(np.float32)
    C = np.array([[1, 0, 0], [1, 0, 0], [-1, 0, 0], [100, 100, 100]], dtype=np.float32)
    out = assign_accumulate(cp.asarray(X), cp.asarray(C))
    _check_against_reference(X, C, *out, exact=True)
    assert int(out[3][1]) == 0 and int(out[3][3]) == 0


@pytest.mark.cudasim
@pytest.mark.parametrize("M,d,K", [(1, 1, 1), (37, 5, 3), (130, 9, 7)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numba_cuda_kernel_in_simulator(rng, M, d, K, dtype):
    X, C = _data(rng, M, d, K, dtype)
    out = assign_accumulate(X, C, engine="numba-cuda")
    _check_against_reference(X, C, *out, exact=dtype == np.float64)


@pytest.mark.cudasim
def test_numba_cuda_ties_in_simulator(rng):
    X = rng.integers(-4, 5, size=(61, 3)).astype(np.float64)
    C = np.array([[1, 0, 0], [1, 0, 0], [-1, 0, 0], [100, 100, 100]], dtype=np.float64)
    out = assign_accumulate(X, C, engine="numba-cuda")
    _check_against_reference(X, C, *out, exact=True)
    assert out[3][1] == 0 and out[3][3] == 0
