"""Coverage-isotropic discriminator crops (seed 000 eqs. 3-5) against their equations."""

import numpy as np
import pytest

pytest.importorskip("torch")

from fastem.nn import (coverage_counts, expected_coverage, isotropic_start_probabilities,  # noqa: E402
                       sample_crop_starts, scaled_crop_sizes)


@pytest.mark.parametrize("size,width", [(512, 70), (512, 280), (64, 9), (64, 35), (10, 10), (7, 1)])
def test_coverage_counts_match_brute_force_and_piecewise_form(size, width):
    n = coverage_counts(size, width)
    brute = np.zeros(size, int)
    for s in range(size - width + 1):
        brute[s:s + width] += 1
    assert np.array_equal(n, brute)
    if 2 * width <= size:  # the paper's three pieces
        x = np.arange(size)
        piece = np.where(x < width, x + 1, np.where(x <= size - width, width, size - x))
        assert np.array_equal(n, piece)
    assert np.allclose(expected_coverage(size, width), n / (size - width + 1))


@pytest.mark.parametrize("size,width", [(512, 70), (512, 140), (64, 9), (64, 18)])
def test_isotropic_distribution_is_flat_and_spread(size, width):
    p = isotropic_start_probabilities(size, width)
    assert p.shape == (size - width + 1,) and p.min() >= 0 and p.sum() == pytest.approx(1.0)
    c = expected_coverage(size, width, p)
    assert c.mean() == pytest.approx(width / size)
    assert c.max() / c.min() < 1.6               # uniform placement: max/min = width
    n_eff = np.exp(-np.sum(p[p > 0] * np.log(p[p > 0])))
    assert n_eff > 8                               # not a fixed tiling


def test_sampled_coverage_histogram_matches_equation():
    size, width, draws = 64, 9, 40000
    rng = np.random.default_rng(0)
    starts = sample_crop_starts(rng, (size, size), width, draws)
    assert starts.shape == (draws, 2) and starts.min() >= 0 and starts.max() <= size - width
    hist = np.zeros(size)
    for s in starts[:, 1]:
        hist[s:s + width] += 1
    expect = draws * expected_coverage(size, width, isotropic_start_probabilities(size, width))
    sd = np.sqrt(expect)
    assert np.all(np.abs(hist - expect) < 5 * sd)
    # in 2D the coverage is the product of the axis coverages (eq. 5): the corner pixel is
    # covered about as often as the centre, unlike uniform placement (width^2 = 81 x less)
    cover = np.zeros((size, size))
    for r, c in starts[:5000]:
        cover[r:r + width, c:c + width] += 1
    assert cover[0, 0] > 0.3 * cover[size // 2 - 4:size // 2 + 4, size // 2 - 4:size // 2 + 4].mean()


def test_scaled_crop_sizes():
    assert scaled_crop_sizes(512) == (70, 140, 280)
    assert scaled_crop_sizes(1024) == (140, 280, 560)
    assert scaled_crop_sizes(32) == (8, 9, 18)


def test_bad_widths():
    with pytest.raises(ValueError):
        coverage_counts(10, 11)
    with pytest.raises(ValueError):
        isotropic_start_probabilities(10, 3, spread=0)
