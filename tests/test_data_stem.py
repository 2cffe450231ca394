"""Synthetic HAADF-STEM micrographs: determinism, rendering engines, noise, distortions, options."""

import numpy as np
import pytest

from fastem import backend
from fastem.data import STRUCTURES, StemGenerator, StemOptions, generate_stem
from fastem.data.stem import _pack, build_scene
from fastem.errors import InputError
from fastem.kernels.stem_render import render_stem

from conftest import to_numpy


def test_seeded_and_independent_of_the_batch_split():
    a = generate_stem(3, 64, seed=7, dose=None)
    b = generate_stem(1, 64, seed=7, index_base=2, dose=None)
    c = generate_stem(1, 64, seed=8, index_base=2, dose=None)
    assert a.shape == (3, 64, 64) and a.dtype == np.float32
    np.testing.assert_array_equal(a[2], b[0])
    assert not np.allclose(b, c)
    np.testing.assert_allclose(a.mean(axis=(1, 2)), 1.0, rtol=1e-5)   # noise-free images have mean 1


def test_rectangular_size_and_info():
    imgs, info = generate_stem(2, (48, 80), seed=1, return_info=True)
    assert imgs.shape == (2, 48, 80)
    for i in info:
        assert set(i["structures"]) <= set(STRUCTURES) and 1 <= i["grains"] <= 4 and i["columns"] > 0


@pytest.mark.parametrize("shape", [(24, 24), (31, 40)])
def test_numba_render_matches_dense_numpy(shape):
    scenes = [build_scene(shape, np.random.default_rng([3, i]), StemOptions(jitter_max=1.0, drift_max=8.0))
              for i in range(2)]
    packed, step = _pack(scenes, shape)
    a = np.empty((2, *shape), np.float32)
    b = np.empty((2, *shape), np.float32)
    render_stem(a, packed, step, engine="numba")
    render_stem(b, packed, step, engine="numpy")
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert a.std() > 0.05


def test_scan_distortions_move_the_columns():
    shape = (32, 32)
    scene = build_scene(shape, np.random.default_rng(1), StemOptions(jitter_max=0.0, drift_max=0.0, carbon=(0.0, 0.0)))
    still = np.empty((1, *shape), np.float32)
    packed, step = _pack([scene], shape)
    render_stem(still, packed, step)
    scene.jitter[:] = 0.0
    scene.jitter[10:] = 2.0                       # lines from 10 on are scanned 2 px further right
    shifted = np.empty_like(still)
    packed, step = _pack([scene], shape)
    render_stem(shifted, packed, step)
    np.testing.assert_array_equal(shifted[0, :10], still[0, :10])
    np.testing.assert_allclose(shifted[0, 10:, 2:-4], still[0, 10:, 4:-2], rtol=1e-4, atol=1e-5)


def test_poisson_shot_noise_at_dose():
    clean = generate_stem(2, 64, seed=2, dose=None)
    noisy = generate_stem(2, 64, seed=2, dose=200.0)
    assert np.allclose(noisy, np.round(noisy)) and noisy.min() >= 0
    resid = (noisy - 200.0 * clean) / np.sqrt(200.0 * clean + 1e-9)
    assert abs(resid.mean()) < 0.05 and abs(resid.std() - 1.0) < 0.05


def test_options_and_bad_input():
    imgs = generate_stem(1, 40, seed=0, structures=("hcp_0001",), max_grains=1, amorphous=0.0, vacuum=0.0)
    assert imgs.shape == (1, 40, 40)
    with pytest.raises(InputError, match="unknown structure"):
        StemOptions(structures=("quasicrystal",))
    with pytest.raises(InputError, match="at least 8x8"):
        StemGenerator(4)
    with pytest.raises(InputError, match="dose"):
        StemGenerator(32, dose=0.0)
    with pytest.raises(InputError, match=">= 1"):
        StemGenerator(32, device="cpu")(0)


@pytest.mark.gpu
def test_gpu_rendering_matches_cpu():
    cpu = StemGenerator((96, 80), seed=5, dose=None, device="cpu")(3)
    gpu = StemGenerator((96, 80), seed=5, dose=None, device="cuda")(3)
    assert backend.is_cupy_array(gpu)
    np.testing.assert_allclose(to_numpy(gpu), cpu, rtol=1e-4, atol=1e-5)
