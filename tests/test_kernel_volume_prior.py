"""The volume priors (issue 20): gradient against finite differences, every engine against the
float64 NumPy reference, value/convexity checks, the Lipschitz bound, registry and errors."""

import numpy as np
import pytest

from fastem import backend
from fastem.errors import InputError
from fastem.kernels._dispatch import KERNEL_ENGINES
from fastem.kernels.volume_prior import PRIORS, prior_lipschitz, volume_prior

from conftest import to_numpy

PARAMS = dict(eps=0.3, delta=0.4, sigma=0.7, p=1.2, q=2.0, t=1.0)
SHAPES = [(4, 5, 6), (5, 5, 5), (3, 4, 2)]      # even, odd and mixed sizes


def _value(x, prior, **kw):
    return volume_prior(x, np.zeros_like(x), prior, engine="numpy", **{**PARAMS, **kw})


def _grad(x, prior, engine="numpy", **kw):
    g = np.zeros_like(x)
    v = volume_prior(x, g, prior, engine=engine, **{**PARAMS, **kw})
    return v, g


@pytest.mark.parametrize("prior", sorted(PRIORS))
@pytest.mark.parametrize("shape", SHAPES)
def test_gradient_matches_finite_differences(rng, prior, shape):
    x = rng.standard_normal(shape)
    _, g = _grad(x, prior)
    h = 1e-6
    for _ in range(12):
        idx = tuple(int(rng.integers(0, n)) for n in shape)
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        fd = (_value(xp, prior) - _value(xm, prior)) / (2 * h)
        assert g[idx] == pytest.approx(fd, rel=1e-5, abs=1e-7), (prior, idx)


@pytest.mark.parametrize("prior", ["tv", "huber", "qggmrf"])
def test_anisotropic_value_is_the_pair_sum(rng, prior):
    """The reference against a plain loop over every neighbour pair (independent of its slicing)."""
    from fastem.kernels._volume_prior_common import rho

    x = rng.standard_normal((3, 4, 3))
    kind = PRIORS[prior]
    expect = 0.0
    idx = list(np.ndindex(x.shape))
    for i in idx:
        for j in idx:
            off = np.subtract(j, i)
            m = int(np.abs(off).sum())
            if i >= j or np.abs(off).max() > 1 or (kind != 3 and m != 1):
                continue
            w = 1.0
            if kind == 3:
                w = (1 / np.sqrt(m)) / (6 + 12 / np.sqrt(2) + 8 / np.sqrt(3))
            a = PARAMS["eps"] if kind == 0 else PARAMS["delta"]
            expect += w * rho(kind, x[i] - x[j], a, PARAMS["p"], PARAMS["q"], PARAMS["t"], PARAMS["sigma"])
    assert _value(x, prior) == pytest.approx(expect, rel=1e-12)


def test_isotropic_tv_value_is_the_definition(rng):
    x = rng.standard_normal((4, 3, 5))
    dz = np.zeros_like(x)
    dy = np.zeros_like(x)
    dx = np.zeros_like(x)
    dz[:-1] = np.diff(x, axis=0)
    dy[:, :-1] = np.diff(x, axis=1)
    dx[:, :, :-1] = np.diff(x, axis=2)
    eps = PARAMS["eps"]
    expect = float(np.sum(np.sqrt(dz ** 2 + dy ** 2 + dx ** 2 + eps ** 2) - eps))
    assert _value(x, "itv") == pytest.approx(expect, rel=1e-12)


@pytest.mark.parametrize("prior", sorted(PRIORS))
def test_constant_volume_has_zero_value_and_gradient_and_priors_are_convex(rng, prior):
    c = np.full((4, 5, 3), 2.5)
    v, g = _grad(c, prior)
    assert v == 0.0 and not g.any()
    x, y = rng.standard_normal((2, 4, 5, 3))
    for t in (0.25, 0.5, 0.8):
        mid = _value(t * x + (1 - t) * y, prior)
        assert mid <= t * _value(x, prior) + (1 - t) * _value(y, prior) + 1e-12
    # first-order condition R(y) >= R(x) + <grad R(x), y - x>
    vx, gx = _grad(x, prior)
    assert _value(y, prior) >= vx + float(np.sum(gx * (y - x))) - 1e-10
    assert vx > 0


@pytest.mark.parametrize("prior", sorted(PRIORS))
def test_lipschitz_bound_holds(rng, prior):
    L = prior_lipschitz(prior, **PARAMS)
    worst = 0.0
    for _ in range(20):
        x = rng.standard_normal((4, 4, 5)) * rng.uniform(0.05, 3)
        y = x + rng.standard_normal(x.shape) * 10.0 ** rng.uniform(-3, 0)
        (_, gx), (_, gy) = _grad(x, prior), _grad(y, prior)
        worst = max(worst, np.linalg.norm(gx - gy) / np.linalg.norm(x - y))
    assert worst <= L
    assert worst > L / 50    # not a uselessly loose bound


def test_qggmrf_lipschitz_closed_form_at_q2():
    p, sigma, t = 1.2, 0.7, 1.3
    expect = 2 * 2 / (p * sigma ** 2 * t ** (2 - p))
    assert prior_lipschitz("qggmrf", p=p, q=2.0, sigma=sigma, t=t) == pytest.approx(expect, rel=0.02)


@pytest.mark.parametrize("prior", sorted(PRIORS))
@pytest.mark.parametrize("shape", SHAPES + [(1, 1, 1), (1, 7, 2), (9, 8, 7)])
@pytest.mark.parametrize("dtype,rtol", [(np.float32, 2e-5), (np.float64, 1e-12)])
def test_numba_matches_reference_and_accumulates(rng, prior, shape, dtype, rtol):
    x = rng.standard_normal(shape).astype(dtype)
    v_ref, g_ref = _grad(x.astype(np.float64), prior)
    g0 = rng.standard_normal(shape).astype(dtype)
    g = g0.copy()
    v = volume_prior(x, g, prior, alpha=0.7, beta=-1.5, engine="numba", **PARAMS)
    assert g.dtype == dtype
    expect = -1.5 * g0.astype(np.float64) + 0.7 * g_ref
    np.testing.assert_allclose(g, expect, rtol=rtol, atol=rtol * np.abs(expect).max())
    assert v == pytest.approx(v_ref, rel=rtol, abs=1e-12)
    g[...] = np.nan                     # beta == 0: the old gradient is not read
    volume_prior(x, g, prior, engine="numba", **PARAMS)
    np.testing.assert_allclose(g, g_ref, rtol=rtol, atol=rtol * max(1.0, np.abs(g_ref).max()))


def test_errors_name_the_parameter(rng):
    x = rng.standard_normal((3, 3, 3))
    with pytest.raises(InputError, match="prior must be one of"):
        volume_prior(x, np.zeros_like(x), "l1")
    with pytest.raises(InputError, match="^eps must be a finite number > 0"):
        volume_prior(x, np.zeros_like(x), "tv", eps=0)
    with pytest.raises(InputError, match="^delta must be"):
        volume_prior(x, np.zeros_like(x), "huber", delta=-1)
    with pytest.raises(InputError, match="^sigma must be"):
        volume_prior(x, np.zeros_like(x), "qggmrf", sigma=float("nan"))
    with pytest.raises(InputError, match="qggmrf needs 1 <= p <= q <= 2"):
        volume_prior(x, np.zeros_like(x), "qggmrf", p=2.0, q=1.5)
    with pytest.raises(InputError, match="3D volume"):
        volume_prior(x[0], np.zeros_like(x[0]), "tv")
    with pytest.raises(InputError, match="grad has shape"):
        volume_prior(x, np.zeros((3, 3, 4)), "tv")
    with pytest.raises(InputError, match="float32 or float64"):
        volume_prior(x, np.zeros_like(x, dtype=np.float32), "tv")
    with pytest.raises(InputError, match="grad must not share memory"):
        volume_prior(x, x, "tv")
    with pytest.raises(InputError, match="x must be a NumPy or CuPy array"):
        volume_prior([[1.0]], np.zeros((1, 1, 1)), "tv")
    with pytest.raises(InputError, match="C-contiguous"):
        volume_prior(np.asfortranarray(rng.standard_normal((2, 3, 4))), np.zeros((2, 3, 4)), "tv")


def test_registry(monkeypatch):
    assert KERNEL_ENGINES["volume_prior"] == ("numpy", "numba", "cuda", "numba-cuda")
    x = np.ones((2, 2, 2))
    with pytest.raises(InputError, match="engine 'cuda' needs CuPy arrays"):
        volume_prior(x, np.zeros_like(x), "tv", engine="cuda")
    with pytest.raises(InputError, match="unknown engine"):
        volume_prior(x, np.zeros_like(x), "tv", engine="fortran")


@pytest.mark.gpu
@pytest.mark.parametrize("engine", ["cuda", "numba-cuda"])
@pytest.mark.parametrize("prior", sorted(PRIORS))
@pytest.mark.parametrize("shape", [(5, 6, 7), (16, 17, 18)])
@pytest.mark.parametrize("dtype,rtol", [(np.float32, 2e-5), (np.float64, 1e-12)])
def test_gpu_engines_match_reference(rng, engine, prior, shape, dtype, rtol):
    cp = backend.Device("cuda").xp
    x = rng.standard_normal(shape).astype(dtype)
    v_ref, g_ref = _grad(x.astype(np.float64), prior)
    g0 = rng.standard_normal(shape).astype(dtype)
    xd, gd = cp.asarray(x), cp.asarray(g0)
    v = volume_prior(xd, gd, prior, alpha=0.5, beta=2.0, engine=engine, **PARAMS)
    assert backend.is_cupy_array(v)
    expect = 2.0 * g0.astype(np.float64) + 0.5 * g_ref
    np.testing.assert_allclose(to_numpy(gd), expect, rtol=rtol, atol=rtol * np.abs(expect).max())
    assert float(v) == pytest.approx(v_ref, rel=rtol * 10)


@pytest.mark.cudasim
@pytest.mark.parametrize("prior", sorted(PRIORS))
@pytest.mark.parametrize("shape", [(2, 3, 4), (3, 3, 3)])
def test_numba_cuda_kernel_in_simulator(rng, prior, shape):
    x = rng.standard_normal(shape)
    v_ref, g_ref = _grad(x, prior)
    g0 = rng.standard_normal(shape)
    g = g0.copy()
    v = volume_prior(x, g, prior, alpha=0.5, beta=2.0, engine="numba-cuda", **PARAMS)
    np.testing.assert_allclose(g, 2.0 * g0 + 0.5 * g_ref, rtol=1e-12, atol=1e-12)
    assert v == pytest.approx(v_ref, rel=1e-12)


@pytest.mark.parametrize("prior", ["tv", "huber", "qggmrf"])
def test_pair_derivative_is_the_potentials_slope(prior):
    from fastem.kernels._volume_prior_common import rho
    from fastem.kernels.volume_prior import pair_derivative

    kind = PRIORS[prior]
    a = PARAMS["eps"] if kind == 0 else PARAMS["delta"]
    d = np.array([-2.1, -0.37, -0.05, 0.013, 0.21, 0.9, 3.3])
    h = 1e-6
    fd = [(rho(kind, v + h, a, 1.2, 2.0, 1.0, 0.7) - rho(kind, v - h, a, 1.2, 2.0, 1.0, 0.7)) / (2 * h) for v in d]
    np.testing.assert_allclose(pair_derivative(prior, d, **PARAMS), fd, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("p,q", [(1.2, 2.0), (1.1, 1.8), (1.5, 1.5), (1.0, 2.0)])
@pytest.mark.parametrize("shape", [(5, 4, 7), (2, 1, 3), (6, 6, 6)])
@pytest.mark.parametrize("dtype,rtol", [(np.float32, 2e-5), (np.float64, 1e-12)])
def test_qggmrf_pair_kernel_matches_reference_at_every_exponent(rng, p, q, shape, dtype, rtol):
    """The CPU engine's qGGMRF pass (each pair once, scattered to both voxels; the q = 2 shortcut
    and the general power) against the float64 reference, with repeated values (d = 0 pairs)."""
    x = rng.standard_normal(shape)
    x[..., ::3] = 0.25                  # some equal neighbours: pairs with d = 0 add nothing
    _check_cpu_pass_accumulates(rng, x.astype(dtype), "qggmrf", {**PARAMS, "p": p, "q": q, "t": 1.3}, rtol)


def _check_cpu_pass_accumulates(rng, x, prior, kw, rtol):
    """``grad <- grad + 0.7 dR/dx`` and ``R`` of the CPU engine against the float64 reference."""
    g_ref = np.zeros(x.shape)
    v_ref = volume_prior(x.astype(np.float64), g_ref, prior, engine="numpy", **kw)
    assert np.abs(g_ref).max() > 0 and v_ref > 0       # not a comparison on zeros
    g0 = rng.standard_normal(x.shape).astype(x.dtype)
    g = g0.copy()
    v = volume_prior(x, g, prior, alpha=0.7, beta=1.0, engine="numba", **kw)
    expect = g0.astype(np.float64) + 0.7 * g_ref
    np.testing.assert_allclose(g, expect, rtol=rtol, atol=rtol * np.abs(expect).max())
    assert v == pytest.approx(v_ref, rel=rtol)


@pytest.mark.parametrize("prior", ["qggmrf", "itv", "tv", "huber"])
def test_cpu_prior_passes_give_the_same_bits_at_any_thread_count(rng, prior):
    """qGGMRF's even/odd slice sweeps and the face priors' gather rows: every voxel's gradient
    sum has a fixed order, whatever the thread count, so the gradient (what the iterates depend
    on) is bit-identical; the value R is a parallel reduction over slices, equal to rounding."""
    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one Numba thread: no other thread count to compare")
    x = rng.standard_normal((9, 10, 21)).astype(np.float32)
    out = []
    before = numba.get_num_threads()
    try:
        for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(threads)
            g = np.empty_like(x)
            v = volume_prior(x, g, prior, engine="numba", **PARAMS)
            out.append((v, g))
    finally:
        numba.set_num_threads(before)
    v, g = out[1]
    np.testing.assert_array_equal(g, out[0][1])
    assert v == pytest.approx(out[0][0], rel=1e-13)


@pytest.mark.parametrize("shape", [(9, 8, 17), (5, 1, 7), (1, 6, 9), (4, 5, 1), (2, 2, 2)])
@pytest.mark.parametrize("dtype,rtol", [(np.float32, 2e-5), (np.float64, 1e-12)])
def test_isotropic_tv_pass_matches_reference(rng, shape, dtype, rtol):
    """The CPU engine's vectorised isotropic-TV pass (clamped rows, x edges apart, backward terms
    with zero numerators at the faces) against the float64 reference: shapes long enough for the
    vector body, single-voxel axes, and equal neighbours (zero differences)."""
    x = rng.standard_normal(shape)
    x[::3, ::2] = 0.5                   # every other row of every third slice equal: zero differences
    x[1::2, 1::2, ::4] = 0.5            # there, and elsewhere random (no shape is left all equal)
    assert np.ptp(x) > 0
    _check_cpu_pass_accumulates(rng, x.astype(dtype), "itv", PARAMS, rtol)
