"""Issue 13 data: pretext corruptions (determinism per (seed, example)) and the synthetic generators."""

import numpy as np
import pytest

from fastem.data.ssl_synthetic import (POOL_KINDS, hrtem_nanoparticles, render_columns, stem_restoration_set,
                                       task_data, unlabelled_pool)
from fastem.errors import InputError

torch = pytest.importorskip("torch")

from fastem.nn.ssl_corrupt import CorruptionConfig, corrupt, corrupt_batch, corruption_params  # noqa: E402


def _clean(n=4, size=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, size, size, generator=g)


def test_corruption_depends_only_on_seed_and_example_index():
    clean = _clean()
    x1, y1 = corrupt_batch(clean, 7, [10, 11, 12, 13])
    x2, y2 = corrupt_batch(clean, 7, [10, 11, 12, 13])
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    # the same example in another batch, at another position: the same corruption
    xa, ya = corrupt(clean[2], 7, 12)
    assert torch.equal(xa, x1[2]) and torch.equal(ya, y1[2])
    xs, _ = corrupt_batch(clean[[2, 0]], 7, [12, 10])
    assert torch.equal(xs[0], x1[2]) and torch.equal(xs[1], x1[0])
    # another seed or index changes it
    assert not torch.equal(corrupt_batch(clean, 8, [10, 11, 12, 13])[0], x1)
    assert not torch.equal(corrupt(clean[2], 7, 99)[0], xa)


def test_paper_mix_applies_every_corruption_and_always_noise_or_blur():
    cfg = CorruptionConfig()
    draws = [corruption_params(0, i, cfg) for i in range(400)]
    assert all(d["noise_std"] > 0 or d["blur_sigma"] > 0 for d in draws)
    for key, lo, hi in (("noise_std", 0.5, 0.95), ("blur_sigma", 0.35, 0.75)):
        share = np.mean([d[key] > 0 for d in draws])
        assert lo < share < hi, (key, share)
    assert 0.35 < np.mean([d["flip"] for d in draws]) < 0.65
    assert {d["rot"] for d in draws} == {0, 1, 2, 3}
    noise = [d["noise_std"] for d in draws if d["noise_std"] > 0]
    assert min(noise) >= cfg.noise[0] and max(noise) <= cfg.noise[1]


def test_geometric_both_moves_the_target_input_only_keeps_it():
    clean = _clean(1, 16)[0]
    cfg = CorruptionConfig(mix="noise", noise=(0.0, 0.0), p_flip=1.0, p_rot=1.0, geometric="both")
    x, y = corrupt(clean, 0, 3, cfg)
    k = corruption_params(0, 3, cfg)["rot"]
    expect = torch.rot90(torch.flip(clean, dims=(-1,)), k, dims=(-2, -1))
    assert torch.equal(y, expect) and torch.allclose(x, expect)
    x, y = corrupt(clean, 0, 3, CorruptionConfig(mix="noise", noise=(0.0, 0.0), p_flip=1.0, p_rot=1.0,
                                                 geometric="input"))
    assert torch.equal(y, clean) and torch.allclose(x, expect)


def test_noise_and_blur_magnitudes():
    clean = torch.zeros(1, 64, 64)
    x, _ = corrupt(clean, 0, 0, CorruptionConfig(mix="noise", noise=(0.5, 0.5), p_flip=0, p_rot=0))
    assert float(x.std()) == pytest.approx(0.5, rel=0.05)
    spike = torch.zeros(1, 33, 33)
    spike[0, 16, 16] = 1.0
    x, _ = corrupt(spike, 0, 0, CorruptionConfig(mix="blur", blur=(1.5, 1.5), p_flip=0, p_rot=0))
    assert float(x.sum()) == pytest.approx(1.0, rel=1e-4)
    r2 = (torch.arange(33.0) - 16) ** 2
    var = float((x[0] * (r2[:, None])).sum())
    assert var == pytest.approx(1.5 ** 2, rel=0.02)
    with pytest.raises(InputError, match="mix"):
        CorruptionConfig(mix="salt")


def test_generators_are_seeded_per_image():
    a = unlabelled_pool(6, 32, seed=3)
    b = unlabelled_pool(3, 32, seed=3, index_base=3)
    np.testing.assert_array_equal(a[3:], b)
    assert a.dtype == np.float32 and np.isfinite(a).all() and (a.std(axis=(1, 2)) > 0).all()
    assert not np.array_equal(unlabelled_pool(2, 32, seed=4), a[:2])
    im, m = hrtem_nanoparticles(5, 48, seed=2)
    im2, m2 = hrtem_nanoparticles(2, 48, seed=2, index_base=3)
    np.testing.assert_array_equal(im[3:], im2)
    np.testing.assert_array_equal(m[3:], m2)
    d1 = stem_restoration_set(3, 32, seed=1)
    d2 = stem_restoration_set(1, 32, seed=1, index_base=2)
    for k in ("noisy", "clean", "background_free", "high_res"):
        np.testing.assert_array_equal(d1[k][2:], d2[k])
    with pytest.raises(InputError, match="size"):
        unlabelled_pool(2, 8)
    with pytest.raises(InputError, match="pool kind"):
        unlabelled_pool(2, 32, kinds=("galaxies",))
    assert set(POOL_KINDS) == {"lattice", "film", "particles", "cells"}


def test_nanoparticle_masks_are_exact_supports_with_fringes_inside():
    from scipy import ndimage

    im, m = hrtem_nanoparticles(6, 64, seed=0)
    assert m.dtype == np.uint8 and set(np.unique(m)) <= {0, 1}
    frac = m.mean(axis=(1, 2))
    assert (frac > 0.005).all() and (frac < 0.6).all()
    # inside a particle the lattice fringes concentrate the spectrum in a few peaks; the
    # amorphous speckle outside (same spatial frequencies) spreads it over a ring
    im, m = hrtem_nanoparticles(6, 128, seed=0, particles=(1, 1), radius=(0.2, 0.2))
    w = 24
    hann = np.outer(np.hanning(w), np.hanning(w))

    def concentration(patch):
        p = np.abs(np.fft.fft2((patch - patch.mean()) * hann)) ** 2
        p[0, 0] = 0
        return np.sort(p.ravel())[-4:].sum() / p.sum()

    inside, outside = [], []
    for i in range(6):
        cy, cx = (int(round(c)) - w // 2 for c in ndimage.center_of_mass(m[i]))
        assert m[i][cy:cy + w, cx:cx + w].all()            # the window lies inside the particle
        inside.append(concentration(im[i][cy:cy + w, cx:cx + w]))
        far = ndimage.binary_dilation(m[i], iterations=4)
        free = [(r, c) for r in range(0, 128 - w, 8) for c in range(0, 128 - w, 8) if not far[r:r + w, c:c + w].any()]
        r, c = free[0]
        outside.append(concentration(im[i][r:r + w, c:c + w]))
    assert np.mean(inside) > 2 * np.mean(outside)


def test_restoration_targets_relate_as_documented():
    d = stem_restoration_set(4, 48, seed=5)
    bg = d["clean"] - d["background_free"]
    assert (bg > -1e-6).all() and bg.mean() > 0.05                  # background removed
    assert np.abs(d["noisy"] - d["clean"]).mean() > 0.02              # noise present
    assert (d["high_res"].max(axis=(1, 2)) <= d["background_free"].max(axis=(1, 2)) + 1e-6).all()
    # same columns, half the width: the total intensity is a quarter
    ratio = d["high_res"].sum() / d["background_free"].sum()
    assert ratio == pytest.approx(0.25, rel=0.1)
    x, y = task_data("superres", 2, 48, seed=5)
    np.testing.assert_array_equal(x, d["noisy"][:2])
    np.testing.assert_array_equal(y, d["high_res"][:2])
    with pytest.raises(InputError, match="unknown task"):
        task_data("colourise", 2)


def test_render_columns_integrates_to_the_amplitude():
    img = render_columns([20.3], [17.8], [2.0], 1.7, (40, 40))
    assert img.sum() == pytest.approx(2.0 * 2 * np.pi * 1.7 ** 2, rel=0.01)
    cy, cx = np.unravel_index(np.argmax(img), img.shape)
    assert (cy, cx) == (18, 20)
