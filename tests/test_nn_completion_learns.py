"""A tiny completion GAN trained on 64x64 crops of a simple lattice beats linear interpolation.

``slow`` (about 2-5 minutes on 2 busy CPU cores: 300 steps of the full two-stage schedule);
the fast check that the loss decreases is in ``test_nn_training.py``.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fastem.nn import (CompletionConfig, CompletionTask, PartialScanSource, Trainer, baseline_rmse,  # noqa: E402
                       make_validation_set)


def lattice(n, size=128, period=10.0, sigma=2.0, seed=0):
    """``n`` square lattices of Gaussian columns (random rotation and phase), float32 (n, size, size)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    out = []
    for _ in range(n):
        th = rng.uniform(0, np.pi / 2)
        ph = rng.uniform(0, period, 2)
        u = np.cos(th) * xx + np.sin(th) * yy + ph[0]
        v = -np.sin(th) * xx + np.cos(th) * yy + ph[1]
        du = (u / period - np.round(u / period)) * period
        dv = (v / period - np.round(v / period)) * period
        out.append(np.exp(-(du ** 2 + dv ** 2) / (2 * sigma ** 2)))
    return np.stack(out).astype(np.float32)


@pytest.mark.slow
def test_tiny_model_beats_linear_interpolation_on_a_lattice():
    torch.manual_seed(0)
    coverage = 1 / 10
    src = PartialScanSource(lattice(16, seed=1), crop=64, batch_size=4, coverage=coverage, seed=0)
    val = make_validation_set(lattice(8, seed=2), count=16, crop=64, coverage=coverage, seed=0)
    linear = baseline_rmse(val, "linear")
    cfg = CompletionConfig(width=0.125, inner_blocks=1, outer_blocks=2, disc_input=16)
    task = CompletionTask(cfg, src, total_steps=300, valset=val, seed=0)
    history = Trainer(task, validate_every=100).run()
    _, val_rmse = history.series("rmse", "val")
    assert val_rmse[-1] < val_rmse[0]
    assert val_rmse[-1] < 0.95 * linear, (val_rmse.tolist(), linear)
