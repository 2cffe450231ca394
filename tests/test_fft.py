"""The FFT provider against numpy.fft (float64 reference), plans, batching, no-allocation reuse."""

import numpy as np
import pytest

from fastem import fft as F

from conftest import random_complex, to_numpy

CASES = [((16,), None), ((15,), None), ((8, 9), None), ((7, 12), None), ((3, 10, 11), (1, 2)),
         ((6, 5, 7), None), ((4, 5, 6, 7), (1, 2, 3)), ((5, 33), (1,))]


@pytest.mark.parametrize("shape,axes", CASES)
@pytest.mark.parametrize("norm", ["backward", "ortho", "forward"])
def test_complex_transforms(xp, rng, shape, axes, norm):
    x = random_complex(rng, shape)
    ref_f = np.fft.fftn(x, axes=axes, norm=norm)
    ref_b = np.fft.ifftn(x, axes=axes, norm=norm)
    xd = xp.asarray(x)
    np.testing.assert_allclose(to_numpy(F.fftn(xd, axes=axes, norm=norm)), ref_f, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(to_numpy(F.ifftn(xd, axes=axes, norm=norm)), ref_b, rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(to_numpy(xd), x)  # input untouched


@pytest.mark.parametrize("shape,axes", CASES)
def test_real_transforms(xp, rng, shape, axes):
    r = rng.standard_normal(shape)
    ref = np.fft.rfftn(r, axes=axes)
    got = F.rfftn(xp.asarray(r), axes=axes)
    np.testing.assert_allclose(to_numpy(got), ref, rtol=1e-10, atol=1e-10)
    ax = F._normalise_axes(r.ndim, axes)
    spec = xp.asarray(ref)
    back = F.irfftn(spec, s=[shape[a] for a in ax], axes=axes)
    np.testing.assert_allclose(to_numpy(back), r, rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(to_numpy(spec), ref)  # c2r input preserved


def test_single_precision(rng):
    x = random_complex(rng, (64, 48), np.complex64)
    got = F.fft2(x)
    assert got.dtype == np.complex64
    ref = np.fft.fft2(x.astype(np.complex128))
    assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 1e-6
    r = rng.standard_normal((10, 31)).astype(np.float32)
    assert F.rfft(r).dtype == np.complex64
    assert F.irfft(F.rfft(r), n=31).dtype == np.float32


def test_1d_2d_helpers_batch_leading_axes(rng):
    x = random_complex(rng, (3, 4, 10))
    np.testing.assert_allclose(F.fft(x), np.fft.fft(x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(F.ifft(x, axis=1), np.fft.ifft(x, axis=1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(F.fft2(x), np.fft.fft2(x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(F.ifft2(x), np.fft.ifft2(x), rtol=1e-12, atol=1e-12)
    r = rng.standard_normal((3, 9))
    np.testing.assert_allclose(F.irfft(F.rfft(r), n=9), r, rtol=1e-12, atol=1e-12)


def test_plans_are_cached_and_reused(rng):
    p1 = F.get_plan((12, 10), np.complex64)
    p2 = F.get_plan((12, 10), np.complex64, axes=(0, 1))
    assert p1 is p2
    assert F.get_plan((12, 10), np.complex128) is not p1
    assert F.get_plan((12, 10), np.float32, real=True) is not p1


def test_plan_in_place_on_own_buffer_round_trip(rng):
    plan = F.new_plan((20, 21), np.complex128)
    assert not plan.shared and plan is not F.new_plan((20, 21), np.complex128)
    x = random_complex(rng, (20, 21))
    plan.buffer[...] = x
    out = plan.forward()
    assert out is plan.buffer
    np.testing.assert_allclose(plan.buffer, np.fft.fft2(x), rtol=1e-12, atol=1e-10)
    plan.backward(normalise=False)
    np.testing.assert_allclose(plan.buffer, x * x.size, rtol=1e-12, atol=1e-9)


def test_plan_does_not_retain_caller_arrays(rng):
    import sys

    plan = F.get_plan((9, 9), np.complex128)
    x = F.empty_aligned((9, 9), np.complex128)
    x[...] = random_complex(rng, (9, 9))
    before = sys.getrefcount(x)
    plan.forward(x)
    assert sys.getrefcount(x) == before


def test_unaligned_and_out_of_place(rng):
    base = random_complex(rng, 8 * 9 + 1)
    x = base[1:].reshape(8, 9)  # deliberately offset by one element: not SIMD-aligned
    out = np.empty((8, 9), np.complex128)
    F.fftn(x, out=out)
    np.testing.assert_allclose(out, np.fft.fftn(x), rtol=1e-12, atol=1e-10)


def test_plan_rejects_wrong_arrays(rng):
    plan = F.get_plan((8, 8), np.complex64)
    with pytest.raises(ValueError, match="shape"):
        plan.forward(np.zeros((8, 9), np.complex64))
    with pytest.raises(ValueError, match="out must be"):
        F.fftn(random_complex(rng, (8, 8)), out=np.zeros((8, 9), np.complex128))
    with pytest.raises(ValueError, match="dtype"):
        plan.forward(np.zeros((8, 8), np.complex128))
    with pytest.raises(ValueError, match="norm"):
        F.fftn(random_complex(rng, (4,)), norm="nope")


def test_provider_and_wisdom(tmp_path, monkeypatch):
    assert F.provider("cpu") in ("pyfftw", "scipy")
    if F.provider("cpu") != "pyfftw":
        pytest.skip("pyFFTW not installed")
    from fastem.config import settings

    monkeypatch.setattr(settings, "cache_dir", tmp_path)
    F.get_plan((17, 19), np.complex128)
    F._wisdom_state["dirty"] = True
    F.save_wisdom()
    saved = list(tmp_path.glob("fftw-wisdom-*"))
    assert [p.suffix for p in saved] == [".bin"] and saved[0].stat().st_mode & 0o077 == 0
    parts = F.decode_wisdom(saved[0].read_bytes())  # plain FFTW wisdom text, round trip
    assert len(parts) == 3 and any(b"fftw_dft" in p or b"codelet" in p for p in parts)


def test_scipy_fallback_without_pyfftw(rng, monkeypatch):
    monkeypatch.setattr(F, "_pyfftw", None)
    F.clear_plan_cache()
    try:
        assert F.provider("cpu") == "scipy"
        x = random_complex(rng, (6, 10))
        np.testing.assert_allclose(F.fftn(x), np.fft.fftn(x), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(F.ifft2(x), np.fft.ifft2(x), rtol=1e-12, atol=1e-12)
        r = rng.standard_normal((5, 9))
        np.testing.assert_allclose(F.irfftn(F.rfftn(r), s=(5, 9)), r, rtol=1e-12, atol=1e-12)
        plan = F.new_plan((6, 10), np.complex128)
        assert plan.provider == "scipy"
        plan.buffer[...] = x
        plan.forward()
        np.testing.assert_allclose(plan.buffer, np.fft.fftn(x), rtol=1e-12, atol=1e-12)
    finally:
        F.clear_plan_cache()


def test_planning_timelimit_from_environment(monkeypatch):
    from fastem import config

    monkeypatch.setenv("FASTEM_FFT_PLANNING_TIMELIMIT", "2.5")
    assert config._timelimit_from_env() == 2.5
    monkeypatch.setenv("FASTEM_FFT_PLANNING_TIMELIMIT", "-1")
    assert config._timelimit_from_env() is None
    monkeypatch.setenv("FASTEM_FFT_PLANNING_TIMELIMIT", "soon")
    with pytest.raises(ValueError, match="FASTEM_FFT_PLANNING_TIMELIMIT"):
        config._timelimit_from_env()


def test_thread_count_from_environment(monkeypatch):
    """``$FASTEM_THREADS`` sets a process's thread count (FFTW plans, kernels, Numba): what a Dask
    worker sharing a machine with others is given; a bad value is refused by name."""
    import subprocess
    import sys

    from fastem import config

    monkeypatch.setenv("FASTEM_THREADS", "3")
    assert config._threads_from_env() == 3
    monkeypatch.delenv("FASTEM_THREADS")
    assert config._threads_from_env() == config.available_cores()
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("FASTEM_THREADS", bad)
        with pytest.raises(ValueError, match="FASTEM_THREADS"):
            config._threads_from_env()
    monkeypatch.setenv("FASTEM_THREADS", "1")
    out = subprocess.run([sys.executable, "-c", "import numba; from fastem import config, fft, kernels; "
                          "from fastem.kernels import _threads; import numpy as np; "
                          "p = fft.new_plan((4, 8), np.complex64); "
                          "print(config.settings.threads, _threads.get(), numba.get_num_threads(), p.threads)"],
                         check=True, capture_output=True, text=True).stdout.split()
    assert out == ["1", "1", "1", "1"]


def test_plan_with_planning_timelimit_is_correct(monkeypatch, rng):
    # a capped FFTW_MEASURE plan (FFTW keeps the best plan found in time) still computes the DFT
    from fastem import fft as F
    from fastem.config import settings

    monkeypatch.setattr(settings, "fft_planner", "FFTW_MEASURE")
    monkeypatch.setattr(settings, "fft_planning_timelimit", 0.01)
    x = rng.standard_normal((3, 1009))
    y = F.rfft(x)
    np.testing.assert_allclose(y, np.fft.rfft(x), rtol=1e-10, atol=1e-9)
