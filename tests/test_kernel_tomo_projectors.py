"""Tomography kernels against float64 NumPy references on random inputs (never zeros).

back_project / forward_project (linear) / projection_residual / central_slice (fst) on every
engine: odd and even sizes, non-square detectors, single- and multi-axis angle sets, bordered
and plain layouts; the dot-product (adjoint) test; Numba CUDA kernels in the simulator; CuPy
kernels against the CPU on a GPU.
"""

import numpy as np
import pytest

from fastem import backend
from fastem.errors import InputError
from fastem.kernels import back_project, forward_project, projection_residual
from fastem.kernels.back_project import BORDER, with_border
from fastem.kernels.central_slice import pad_rows, sample_central_slices, scatter_planes
from fastem.tomo import FourierSliceProjector, ProjectionGeometry
from fastem.tomo import _reference as ref

from conftest import to_numpy

CASES = [  # (volume (nz, ny, nx), detector (rows, cols))
    ((8, 8, 8), (8, 8)),
    ((7, 9, 11), (10, 12)),
    ((5, 13, 6), (15, 9)),
    ((4, 6, 20), (7, 8)),  # thin film: wider than the detector
]


def _angles(rng, kind, n):
    if kind == "tilt":
        return np.linspace(-70, 70, n)
    if kind == "two-axis":
        a = np.zeros((n, 3))
        a[: n // 2, 1] = np.linspace(-60, 60, n // 2)
        a[n // 2:, 0] = 90.0
        a[n // 2:, 1] = np.linspace(-60, 60, n - n // 2)
        return a
    return rng.uniform(-90, 90, (n, 3))


@pytest.mark.parametrize("volume_shape,detector", CASES)
@pytest.mark.parametrize("kind", ["tilt", "two-axis", "euler"])
@pytest.mark.parametrize("subpoints", [1, 4])
def test_numba_projectors_match_float64_reference(rng, volume_shape, detector, kind, subpoints):
    n = 9  # >= 4 x threads on a 2-core machine: the forward kernel takes its branch-free path
    geo = ProjectionGeometry(volume_shape, detector, _angles(rng, kind, n))
    vol = rng.random(volume_shape) + 0.1
    img = rng.random((n, *detector)) + 0.1
    fwd_ref = ref.forward_project_linear(vol, geo, subpoints)
    bp_ref = ref.back_project(img, geo, subpoints)
    for dtype, rtol in ((np.float64, 1e-12), (np.float32, 3e-6)):
        out = np.empty((n, *detector), dtype)
        forward_project(vol.astype(dtype), geo.coefficients, out, subpoints=subpoints, engine="numba")
        np.testing.assert_allclose(out, fwd_ref, rtol=rtol, atol=rtol * np.abs(fwd_ref).max())
        padded = np.full((n, detector[0] + 2 * BORDER, detector[1] + 2 * BORDER), np.nan, dtype)
        forward_project(vol.astype(dtype), geo.coefficients, padded, subpoints=subpoints, border=BORDER,
                        engine="numba")
        np.testing.assert_allclose(padded[:, BORDER:-BORDER, BORDER:-BORDER], fwd_ref, rtol=rtol,
                                   atol=rtol * np.abs(fwd_ref).max())
        back = back_project(img.astype(dtype), geo.coefficients, np.full(volume_shape, np.nan, dtype),
                            subpoints=subpoints, engine="numba")
        np.testing.assert_allclose(back, bp_ref, rtol=rtol, atol=rtol * np.abs(bp_ref).max())
        back = back_project(with_border(img.astype(dtype)), geo.coefficients, np.empty(volume_shape, dtype),
                            subpoints=subpoints, border=BORDER, engine="numba")
        np.testing.assert_allclose(back, bp_ref, rtol=rtol, atol=rtol * np.abs(bp_ref).max())


@pytest.mark.parametrize("volume_shape,detector", [((5, 13, 7), (9, 11)), ((6, 7, 9), (11, 8)), ((3, 8, 5), (14, 5))])
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 3e-6)])
@pytest.mark.parametrize("table", [True, False])
def test_tilt_kernels_with_row_offsets(rng, volume_shape, detector, dtype, rtol, table, monkeypatch):
    # tilts about y with an integral row offset between volume rows and detector rows (fewer and
    # more detector rows than volume rows): the transposed-layout SIMD kernels, against float64,
    # with the taps from the per-geometry table and (a geometry too large for one) computed per call
    import importlib

    from fastem.kernels._projector_taps_numba import tilt_aligned
    from fastem.kernels.back_project import subpoint_shifts

    bp = importlib.import_module("fastem.kernels.back_project")
    if not table:
        monkeypatch.setattr(bp, "TAP_TABLE_MIN_BUDGET", 0)
        monkeypatch.setattr(bp, "TAP_TABLE_VOLUME_FACTOR", 0)
    geo0 = ProjectionGeometry(volume_shape, detector, np.linspace(-66, 71, 10))
    used = bp.tilt_tap_table(geo0.coefficients, subpoint_shifts(geo0.coefficients, 4), volume_shape, detector[1],
                             BORDER, dtype)[0]
    assert used == table

    geo = ProjectionGeometry(volume_shape, detector, np.linspace(-66, 71, 10))
    assert tilt_aligned(geo.coefficients, subpoint_shifts(geo.coefficients, 4))
    assert np.any(geo.coefficients[:, 1, 3] != 0)
    vol = rng.random(volume_shape) + 0.1
    img = rng.random(geo.projections_shape) + 0.1
    w = rng.random(volume_shape)
    start = rng.standard_normal(volume_shape)
    fwd_ref = ref.forward_project_linear(vol, geo, 4)
    padded = np.full((10, detector[0] + 2 * BORDER, detector[1] + 2 * BORDER), np.nan, dtype)
    forward_project(vol.astype(dtype), geo.coefficients, padded, border=BORDER, engine="numba")
    np.testing.assert_allclose(padded[:, BORDER:-BORDER, BORDER:-BORDER], fwd_ref, rtol=rtol,
                               atol=rtol * np.abs(fwd_ref).max())
    expect = np.maximum(0.5 * start - 0.3 * w * ref.back_project(img, geo, 4), 0.0)
    out = start.astype(dtype)
    back_project(with_border(img.astype(dtype)), geo.coefficients, out, alpha=-0.3, beta=0.5, weights=w.astype(dtype),
                 positivity=True, subpoints=4, border=BORDER, engine="numba")
    np.testing.assert_allclose(out, expect, rtol=rtol, atol=rtol * np.abs(expect).max())


def test_projector_scratch_is_per_thread(rng):
    # the CPU kernels keep transposed-layout scratch per calling thread: threads projecting
    # different volumes of one shape at the same time each get their own result
    from concurrent.futures import ThreadPoolExecutor

    geo = ProjectionGeometry((12, 10, 14), (10, 14), np.linspace(-60, 60, 21))
    vols = [rng.random(geo.volume_shape).astype(np.float32) for _ in range(4)]
    imgs = [rng.random(geo.projections_shape).astype(np.float32) for _ in range(4)]

    def work(i):
        fwd = [forward_project(vols[i], geo.coefficients, np.empty(geo.projections_shape, np.float32), engine="numba")
               for _ in range(20)]
        back = [back_project(imgs[i], geo.coefficients, np.empty(geo.volume_shape, np.float32), subpoints=4,
                             engine="numba")
                for _ in range(20)]
        return fwd, back

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, range(4)))
    for i, (fwd, back) in enumerate(results):
        f_ref = ref.forward_project_linear(vols[i].astype(np.float64), geo, 4)
        b_ref = ref.back_project(imgs[i].astype(np.float64), geo, 4)
        for f, b in zip(fwd, back):
            np.testing.assert_allclose(f, f_ref, rtol=3e-6, atol=3e-6 * np.abs(f_ref).max())
            np.testing.assert_allclose(b, b_ref, rtol=3e-6, atol=3e-6 * np.abs(b_ref).max())


@pytest.mark.parametrize("n", [1, 3])
def test_forward_projection_row_bands(rng, n):
    # few projections: the CPU kernel cuts each detector into row bands owned by one thread each
    geo = ProjectionGeometry((9, 10, 11), (13, 12), rng.uniform(-80, 80, (n, 3)))
    vol = rng.random(geo.volume_shape)
    out = np.empty(geo.projections_shape)
    forward_project(vol, geo.coefficients, out, engine="numba")
    np.testing.assert_allclose(out, ref.forward_project_linear(vol, geo), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", [1, 3, 9])
@pytest.mark.parametrize("border", [0, BORDER])
@pytest.mark.parametrize("volume_shape,detector", [((7, 9, 11), (10, 12)), ((5, 13, 6), (15, 9))])
def test_tilt_forward_projection_with_few_projections_and_no_border(rng, n, border, volume_shape, detector):
    """Tilts about y take the SIMD tilt kernel whatever the projection count and border (it used
    to need >= 4 x threads projections and a bordered output, else the generic kernel ran, about
    two orders of magnitude slower): same values as the float64 reference."""
    geo = ProjectionGeometry(volume_shape, detector, np.linspace(-65, 55, n))
    vol = rng.random(volume_shape) + 0.1
    expect = ref.forward_project_linear(vol, geo, 4)
    for dtype, rtol in ((np.float64, 1e-12), (np.float32, 3e-6)):
        out = np.full((n, detector[0] + 2 * border, detector[1] + 2 * border), np.nan, dtype)
        forward_project(vol.astype(dtype), geo.coefficients, out, border=border, engine="numba")
        inner = out[:, border:border + detector[0], border:border + detector[1]]
        np.testing.assert_allclose(inner, expect, rtol=rtol, atol=rtol * np.abs(expect).max())


@pytest.mark.parametrize("engine", ["numba", "numpy"])
@pytest.mark.parametrize("subpoints", [1, 4])
@pytest.mark.parametrize("kind", ["tilt", "euler"])
def test_dot_product_adjoint(rng, subpoints, kind, engine):
    # <P x, y> == <x, B y> to rounding: the linear pair is an exact adjoint (the numpy oracle pair too)
    geo = ProjectionGeometry((9, 12, 10), (11, 14), _angles(rng, kind, 12))
    x = rng.standard_normal(geo.volume_shape)
    y = rng.standard_normal(geo.projections_shape)
    px = forward_project(x, geo.coefficients, np.empty(geo.projections_shape), subpoints=subpoints, engine=engine)
    by = back_project(y, geo.coefficients, np.empty(geo.volume_shape), subpoints=subpoints, engine=engine)
    lhs, rhs = float(np.sum(px * y)), float(np.sum(x * by))
    assert abs(lhs) > 1.0
    assert lhs == pytest.approx(rhs, rel=1e-12)


def test_back_projection_accumulates_weights_and_positivity(rng):
    geo = ProjectionGeometry((6, 7, 8), (9, 10), np.linspace(-50, 50, 5))
    img = rng.standard_normal(geo.projections_shape)
    w = rng.random(geo.volume_shape)
    start = rng.standard_normal(geo.volume_shape)
    plain = ref.back_project(img, geo, 4)
    expect = np.maximum(0.5 * start - 0.3 * w * plain, 0.0)
    for engine in ("numpy", "numba"):
        out = start.copy()
        back_project(img, geo.coefficients, out, alpha=-0.3, beta=0.5, weights=w, positivity=True, subpoints=4,
                     engine=engine)
        np.testing.assert_allclose(out, expect, rtol=1e-12, atol=1e-12)
        assert (out == 0).any() and (out > 0).any()


@pytest.mark.parametrize("engine", ["numpy", "numba"])
@pytest.mark.parametrize("shift,border", [((0, 0), 0), ((-3, -4), 0), ((2, 2), 2), ((4, 6), 1), ((5, 1), 0)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_projection_residual(rng, engine, shift, border, dtype):
    """Inside the source (contiguous rows: (0, 0), (2, 2), (4, 6)) and wrapping around (negative
    shifts, (5, 1) past the last row), float32 and float64, against float64 NumPy."""
    tol = 1e-12 if dtype == np.float64 else 2e-6
    for n, rows, cols in ((4, 7, 9), (3, 11, 37)):
        src = rng.standard_normal((n, rows + 4, cols + 6)).astype(dtype)
        data = rng.standard_normal((n, rows, cols)).astype(dtype)
        weights = ((rng.random((n, rows, cols)) > 0.3) * rng.random((n, rows, cols))).astype(dtype)
        out = np.full((n, rows + 2 * border, cols + 2 * border), np.nan, dtype)
        l1 = np.full(n, np.nan)
        projection_residual(src, data, weights, out, l1, scale=0.7, row_shift=shift[0], col_shift=shift[1],
                            out_border=border, engine=engine)
        ri = (np.arange(rows) + shift[0]) % src.shape[1]
        ci = (np.arange(cols) + shift[1]) % src.shape[2]
        d = 0.7 * src.astype(np.float64)[:, ri][:, :, ci] - data
        expect = np.zeros(out.shape)
        expect[:, border:border + rows, border:border + cols] = d * weights
        np.testing.assert_allclose(out, expect, rtol=tol, atol=tol * 4)
        np.testing.assert_allclose(l1, np.sum(np.abs(d) * (weights != 0), axis=(1, 2)), rtol=tol)


def test_projection_residual_in_place(rng):
    n, rows, cols, b = 3, 6, 5, BORDER
    src = rng.standard_normal((n, rows + 2 * b, cols + 2 * b))
    data, weights = rng.standard_normal((n, rows, cols)), rng.random((n, rows, cols))
    expect = (src[:, b:-b, b:-b] - data) * weights
    l1 = np.empty(n)
    projection_residual(src, data, weights, src, l1, row_shift=b, col_shift=b, out_border=b)
    np.testing.assert_allclose(src[:, b:-b, b:-b], expect, rtol=1e-12)
    assert not src[:, :b].any() and not src[:, :, -b:].any()


@pytest.mark.parametrize("volume_shape,detector", CASES[:3])
@pytest.mark.parametrize("oversampling", [2, 3])
def test_fst_projector_matches_float64_reference(rng, volume_shape, detector, oversampling):
    geo = ProjectionGeometry(volume_shape, detector, _angles(rng, "euler", 5))
    vol = rng.random(volume_shape).astype(np.float32) + 0.1
    expect = ref.forward_project_fst(vol, geo, oversampling)
    got = FourierSliceProjector(geo, oversampling).project(vol)
    np.testing.assert_allclose(got, expect, rtol=2e-5, atol=2e-5 * np.abs(expect).max())


def test_fst_chunking_gives_the_same_projections(rng):
    geo = ProjectionGeometry((8, 9, 10), (9, 10), _angles(rng, "euler", 7))
    vol = rng.random(geo.volume_shape).astype(np.float32)
    whole = FourierSliceProjector(geo, 2)
    small = FourierSliceProjector(geo, 2, max_chunk_bytes=1)  # one projection per batch
    assert whole.chunk == 7 and small.chunk == 1
    np.testing.assert_allclose(small.project(vol), whole.project(vol), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape,full", [((5, 6, 7), (10, 12, 14)), ((4, 4, 4), (8, 8, 8))])
def test_central_slice_kernels_numba_vs_numpy(rng, shape, full):
    vol = rng.random(shape).astype(np.float32)
    a, b = np.empty((shape[0], shape[1], full[2]), np.float32), np.empty((shape[0], shape[1], full[2]), np.float32)
    pad_rows(vol, a, engine="numpy")
    pad_rows(vol, b, engine="numba")
    np.testing.assert_array_equal(a, b)
    rows = (rng.standard_normal((shape[0], shape[1], full[2] // 2 + 1))
            + 1j * rng.standard_normal((shape[0], shape[1], full[2] // 2 + 1))).astype(np.complex64)
    s1 = np.empty((full[0], full[1], full[2] // 2 + 1), np.complex64)
    s2 = np.full_like(s1, np.nan)
    scatter_planes(rows, s1, engine="numpy")
    scatter_planes(rows, s2, engine="numba")
    np.testing.assert_array_equal(s1, s2)
    frames = rng.uniform(-1, 1, (3, 2, 3))
    p1 = np.empty((3, 10, 7), np.complex64)
    p2 = np.full_like(p1, np.nan)
    sample_central_slices(s1, frames, p1, full, engine="numpy")
    sample_central_slices(s1, frames, p2, full, engine="numba")
    np.testing.assert_allclose(p1, p2, rtol=1e-5, atol=1e-5 * np.abs(p1).max())
    assert np.abs(p1).max() > 0


def test_bad_kernel_inputs(rng):
    geo = ProjectionGeometry((4, 5, 6), (5, 6), [0.0, 10.0])
    vol = rng.random(geo.volume_shape).astype(np.float32)
    img = rng.random(geo.projections_shape).astype(np.float32)
    with pytest.raises(InputError, match="same dtype"):
        forward_project(vol, geo.coefficients, img.astype(np.float64))
    with pytest.raises(InputError, match="coeffs must have shape"):
        back_project(img[:1].copy(), geo.coefficients, vol)
    with pytest.raises(InputError, match="subpoints"):
        back_project(img, geo.coefficients, vol, subpoints=2)
    with pytest.raises(InputError, match="C-contiguous"):
        back_project(img[:, :, ::-1], geo.coefficients, vol)
    with pytest.raises(InputError, match="3-D"):
        forward_project(vol[0], geo.coefficients, img)
    with pytest.raises(InputError, match="int32"):
        back_project(img.astype(np.int32), geo.coefficients, vol)


# ---- GPU: Numba CUDA in the simulator, CuPy on a real device ----------------------------------
@pytest.mark.cudasim
@pytest.mark.parametrize("subpoints", [1, 4])
def test_numba_cuda_projectors_in_simulator(rng, subpoints):
    geo = ProjectionGeometry((3, 4, 5), (5, 6), rng.uniform(-60, 60, (2, 3)))
    vol = rng.random(geo.volume_shape).astype(np.float32) + 0.1
    img = rng.random(geo.projections_shape).astype(np.float32) + 0.1
    fwd = forward_project(vol, geo.coefficients, np.empty(geo.projections_shape, np.float32), subpoints=subpoints,
                          engine="numba-cuda")
    np.testing.assert_allclose(fwd, ref.forward_project_linear(vol, geo, subpoints), rtol=1e-5, atol=1e-6)
    bp = back_project(with_border(img, 0, 1), geo.coefficients, np.full(geo.volume_shape, 2.0, np.float32),
                      alpha=0.5, beta=1.0, subpoints=subpoints, border=1, engine="numba-cuda")
    np.testing.assert_allclose(bp, 2.0 + 0.5 * ref.back_project(img, geo, subpoints), rtol=1e-5, atol=1e-6)


@pytest.mark.cudasim
def test_numba_cuda_slice_sampling_in_simulator(rng):
    full = (6, 6, 8)
    spec = (rng.standard_normal((6, 6, 5)) + 1j * rng.standard_normal((6, 6, 5))).astype(np.complex64)
    frames = rng.uniform(-1, 1, (2, 2, 3))
    expect = sample_central_slices(spec, frames, np.empty((2, 4, 3), np.complex64), full, engine="numpy")
    got = sample_central_slices(spec, frames, np.empty((2, 4, 3), np.complex64), full, engine="numba-cuda")
    np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-5)
    assert np.abs(expect).max() > 0


@pytest.mark.gpu
@pytest.mark.parametrize("engine", ["cuda", "numba-cuda"])
@pytest.mark.parametrize("subpoints", [1, 4])
@pytest.mark.parametrize("volume_shape,detector", CASES)
def test_gpu_projectors_match_cpu(rng, engine, subpoints, volume_shape, detector):
    cp = backend.Device("cuda").xp
    geo = ProjectionGeometry(volume_shape, detector, _angles(rng, "euler", 7))
    vol = (rng.random(volume_shape) + 0.1).astype(np.float32)
    img = (rng.random((7, *detector)) + 0.1).astype(np.float32)
    cpu_f = forward_project(vol, geo.coefficients, np.empty((7, *detector), np.float32), subpoints=subpoints)
    gpu_f = forward_project(cp.asarray(vol), cp.asarray(geo.coefficients), cp.empty((7, *detector), cp.float32),
                            subpoints=subpoints, engine=engine)
    np.testing.assert_allclose(to_numpy(gpu_f), cpu_f, rtol=1e-4, atol=1e-4 * np.abs(cpu_f).max())
    w = (rng.random(volume_shape)).astype(np.float32)
    start = rng.standard_normal(volume_shape).astype(np.float32)
    cpu_b = back_project(img, geo.coefficients, start.copy(), alpha=-0.7, beta=1.0, weights=w, positivity=True,
                         subpoints=subpoints)
    gpu_b = back_project(cp.asarray(with_border(img)), cp.asarray(geo.coefficients), cp.asarray(start),
                         alpha=-0.7, beta=1.0, weights=cp.asarray(w), positivity=True, subpoints=subpoints,
                         border=BORDER, engine=engine)
    np.testing.assert_allclose(to_numpy(gpu_b), cpu_b, rtol=1e-4, atol=1e-4 * np.abs(cpu_b).max())


@pytest.mark.gpu
def test_gpu_fst_and_residual_match_cpu(rng):
    geo = ProjectionGeometry((9, 10, 12), (11, 12), _angles(rng, "euler", 6))
    vol = (rng.random(geo.volume_shape) + 0.1).astype(np.float32)
    data = rng.random(geo.projections_shape).astype(np.float32)
    weights = (rng.random(geo.projections_shape) > 0.2).astype(np.float32)
    results = []
    for dev in ("cpu", "cuda"):
        op = FourierSliceProjector(geo, 2, device=dev)
        xp = op.xp
        res, l1 = op.bordered_images(), xp.zeros(6)
        op.residual(xp.asarray(vol), xp.asarray(data), xp.asarray(weights), res, l1)
        results.append((to_numpy(op.project(vol)), to_numpy(res), to_numpy(l1)))
    for a, b in zip(*results):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * np.abs(a).max())


def test_fst_lowers_oversampling_when_memory_is_short(rng, monkeypatch):
    from fastem.tomo import operators

    geo = ProjectionGeometry((16, 16, 16), (16, 16), np.linspace(-60, 60, 5))
    need = {os_: FourierSliceProjector(geo, os_)._spectrum_bytes(np.full(3, float(os_))) for os_ in (2, 4)}
    monkeypatch.setattr(operators, "_available_bytes", lambda device: int((need[2] + need[4]) / 2 / 0.9))
    with pytest.warns(ResourceWarning, match="oversampling"):
        op = FourierSliceProjector(geo, 4)
    assert 2.0 <= op.oversampling[0] < 4.0
    vol = rng.random(geo.volume_shape).astype(np.float32)
    np.testing.assert_allclose(op.project(vol), ref.forward_project_fst(vol, geo, op.oversampling),
                               rtol=2e-5, atol=2e-5 * 16)
    monkeypatch.setattr(operators, "_available_bytes", lambda device: 1000)
    with pytest.raises(InputError, match="linear projector"):
        FourierSliceProjector(geo, 2)


# ---- the numpy engine itself against an independent float64 reference (issue 18) --------------
def _explicit_forward(vol, coeffs, rows, cols, subpoints):
    """Scalar-loop float64 splatting, written from the definition only: every voxel (iz, iy, ix)
    is cut into ``subpoints`` object-space points (the centre, or the 2 x 2 x-z sub-pixels at
    +-1/4), each carrying 1/subpoints of the value, mapped onto the detector by the 2 x 4
    coefficient rows ``u, v = c @ (x, y, z, 1)`` and spread over the 4 pixels around (u, v)
    with bilinear weights; pixels outside the detector are dropped."""
    import math

    offsets = [(0.0, 0.0)] if subpoints == 1 else [(-0.25, -0.25), (-0.25, 0.25), (0.25, -0.25), (0.25, 0.25)]
    out = np.zeros((coeffs.shape[0], rows, cols))
    nz, ny, nx = vol.shape
    for k in range(coeffs.shape[0]):
        cu, cv = coeffs[k]
        for iz in range(nz):
            for iy in range(ny):
                for ix in range(nx):
                    for dx, dz in offsets:
                        p = (ix + dx, iy, iz + dz, 1.0)
                        u = sum(a * b for a, b in zip(cu, p))
                        v = sum(a * b for a, b in zip(cv, p))
                        j0, i0 = math.floor(v), math.floor(u)
                        for j, wv in ((j0, 1 - (v - j0)), (j0 + 1, v - j0)):
                            for i, wu in ((i0, 1 - (u - i0)), (i0 + 1, u - i0)):
                                if 0 <= j < rows and 0 <= i < cols:
                                    out[k, j, i] += wv * wu * vol[iz, iy, ix] / subpoints
    return out


@pytest.mark.parametrize("volume_shape,detector", [((4, 5, 6), (6, 7)), ((5, 4, 5), (5, 8)), ((4, 4, 4), (6, 6))])
@pytest.mark.parametrize("subpoints", [1, 4])
def test_numpy_forward_engine_matches_explicit_reference(rng, volume_shape, detector, subpoints):
    # odd and even volumes and detectors, a tilt series and random Euler angles
    for angles in (np.array([-55.0, -20.0, 0.0, 35.0]), rng.uniform(-80, 80, (3, 3))):
        geo = ProjectionGeometry(volume_shape, detector, angles)
        vol = rng.random(volume_shape) + 0.1
        got = forward_project(vol, geo.coefficients, np.full(geo.projections_shape, np.nan), subpoints=subpoints,
                              engine="numpy")
        expect = _explicit_forward(vol, geo.coefficients, *detector, subpoints)
        assert np.abs(expect).max() > 0.5
        np.testing.assert_allclose(got, expect, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", [5, 6])
def test_numpy_forward_engine_line_integrals(rng, n):
    # a volume well inside a larger detector: every projection keeps the volume's mass (a line
    # integral sums to it); at 0 degrees one voxel of the linear projector covers one row,
    # (1/8, 3/4, 1/8) along u, and the bilinear one its single pixel
    geo = ProjectionGeometry((n, n, n), (n + 6, 2 * n + 6), np.linspace(-70, 70, 5))
    vol = np.zeros((n, n, n))
    vol[1:-1, 1:-1, 1:-1] = rng.random((n - 2, n - 2, n - 2)) + 0.1
    for sub in (1, 4):
        p = forward_project(vol, geo.coefficients, np.empty(geo.projections_shape), subpoints=sub, engine="numpy")
        np.testing.assert_allclose(p.sum(axis=(1, 2)), vol.sum(), rtol=1e-12)
    one = np.zeros((n, n, n))
    one[n // 2, n // 2, n // 2] = 1.0
    g0 = ProjectionGeometry((n, n, n), (n, n), [0.0])
    u0 = float(g0.coefficients[0, 0] @ [n // 2, n // 2, n // 2, 1])
    v0 = float(g0.coefficients[0, 1] @ [n // 2, n // 2, n // 2, 1])
    assert u0 == int(u0) and v0 == int(v0)  # the voxel centre lands on a pixel centre
    lin = forward_project(one, g0.coefficients, np.empty((1, n, n)), subpoints=4, engine="numpy")[0]
    expect = np.zeros((n, n))
    expect[int(v0), int(u0) - 1:int(u0) + 2] = (0.125, 0.75, 0.125)
    np.testing.assert_allclose(lin, expect, atol=1e-15)
    bil = forward_project(one, g0.coefficients, np.empty((1, n, n)), subpoints=1, engine="numpy")[0]
    expect = np.zeros((n, n))
    expect[int(v0), int(u0)] = 1.0
    np.testing.assert_allclose(bil, expect, atol=1e-15)


def test_forward_and_back_tilt_kernels_share_one_transposed_scratch():
    """Memory (issue 20): the tilt kernels' transposed volume and image stack are one pair per
    thread, shared by the forward and the back kernel (each overwrites all of it before reading),
    so a solver alternating them holds one of each. Sharing must change no result: each kernel
    gives the same bits after the other has filled the scratch with its own data as in a fresh
    thread."""
    import threading

    from fastem.data import tilt_angles
    from fastem.kernels import _workspace, back_project, forward_project
    from fastem.kernels.back_project import BORDER, with_border
    from fastem.tomo import TomoProblem

    rng = np.random.default_rng(5)
    tilts = tilt_angles(-60.0, 60.0, 10.0)
    problem = TomoProblem(rng.random((len(tilts), 11, 13), dtype=np.float32), tilts, convention="thesis")
    coeffs = np.ascontiguousarray(problem.geometry.coefficients)
    nk, rows, cols = problem.geometry.projections_shape
    vol = rng.random(problem.geometry.volume_shape, dtype=np.float32)
    images = with_border(rng.random((nk, rows, cols), dtype=np.float32))

    def fwd():
        out = np.zeros((nk, rows + 2 * BORDER, cols + 2 * BORDER), np.float32)
        return forward_project(vol, coeffs, out, subpoints=4, border=BORDER, engine="numba")

    def back():
        out = np.empty(vol.shape, np.float32)
        return back_project(images, coeffs, out, subpoints=4, border=BORDER, engine="numba")

    def in_thread(*calls):
        res = {}

        def body():
            res["out"] = [f() for f in calls]
            res["pair"] = getattr(_workspace._LOCAL, "tilt_transposed", None)
            res["own"] = [getattr(_workspace._LOCAL, n, None) for n in ("forward_project_tilt", "back_project_tilt")]
        t = threading.Thread(target=body)
        t.start()
        t.join()
        return res

    alone_f, alone_b = in_thread(fwd)["out"][0], in_thread(back)["out"][0]
    both = in_thread(back, fwd, back, fwd)
    for got, expect in zip(both["out"], (alone_b, alone_f, alone_b, alone_f)):
        np.testing.assert_array_equal(got, expect)
    (key, (volume_t, images_t)) = both["pair"]
    assert volume_t.size == vol.size and images_t.shape[0] == nk
    for own in both["own"]:                     # each kernel's own buffers: the small tap scratch only
        assert all(a.size < vol.size for a in own[1])
