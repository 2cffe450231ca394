"""The generic Trainer and the completion-GAN task: resume exactness, fingerprints, ALRC wiring, learning."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fastem.nn import (CompletionConfig, CompletionTask, PartialScanSource, TensorSource, Trainer,  # noqa: E402
                       load_checkpoint, make_validation_set, schedule, write_curves)

TINY = CompletionConfig(width=0.125, inner_blocks=1, outer_blocks=1, disc_input=16, replay_size=2)


def _task(steps=8, coverage=1 / 10, cfg=TINY, seed=0, val=True):
    src = PartialScanSource(synthetic=4, crop=32, batch_size=2, coverage=coverage, seed=seed)
    vs = make_validation_set(count=4, synthetic=2, crop=32, coverage=coverage, seed=seed) if val else None
    return CompletionTask(cfg, src, total_steps=steps, valset=vs, seed=seed)


def _states(task):
    out = {}
    for name, m in task.modules.items():
        for k, v in m.state_dict().items():
            if isinstance(v, torch.Tensor):
                out[f"{name}.{k}"] = v.clone()
    return out


def test_schedule_follows_the_paper():
    c = CompletionConfig()
    s = [schedule(t, 800, c) for t in range(800)]
    assert s[0]["lr_g"] == 2e-4 and s[0]["beta1_g"] == 0.9 and not s[0]["adversarial"] and not s[0]["bn_frozen"]
    assert s[200]["lr_g"] == 2e-4 and s[399]["lr_g"] == pytest.approx(2e-4 / 8)          # 8 decay steps
    assert s[399]["beta1_g"] == pytest.approx(0.9 - 0.4 * 7 / 8)
    assert len({round(x["lr_g"], 12) for x in s[200:400]}) == 8
    assert s[400]["adversarial"] and s[400]["lr_g"] == 1e-4 and s[400]["beta1_g"] == 0.5 and s[400]["bn_frozen"]
    assert s[799]["lr_g"] == pytest.approx(1e-4 / 8) and s[799]["lr_d"] == 1e-4
    assert not schedule(500, 800, CompletionConfig(adversarial=False))["adversarial"]


def test_resume_is_bit_exact(tmp_path):
    ck = tmp_path / "run.ckpt"
    full = _task()
    h_full = Trainer(full).run()
    assert full.replay.replayed > 0                    # replay exercised
    assert any("l_adv" in r for r in h_full.train)      # adversarial stage reached

    first = _task()
    tr = Trainer(first, checkpoint=ck)
    tr.run(until=4)
    tr.save()
    second = _task()
    tr2 = Trainer(second, checkpoint=ck)
    assert tr2.resume() == 4
    h2 = tr2.run()
    a, b = _states(full), _states(second)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    for k in full.optimizers:
        sa, sb = full.optimizers[k].state_dict()["state"], second.optimizers[k].state_dict()["state"]
        for i in sa:
            for n in sa[i]:
                assert torch.equal(torch.as_tensor(sa[i][n]), torch.as_tensor(sb[i][n]))
    assert h2.train == h_full.train and h2.val[-1] == h_full.val[-1]
    assert len(full.replay.items) == len(second.replay.items)
    for x, y in zip(full.replay.items, second.replay.items):
        assert all(torch.equal(u, v) for u, v in zip(x, y))


def test_resume_refused_with_other_settings(tmp_path):
    ck = tmp_path / "run.ckpt"
    tr = Trainer(_task(steps=4), checkpoint=ck)
    tr.run(until=1)
    tr.save()
    with pytest.raises(ValueError, match="cannot resume"):
        Trainer(_task(steps=4, coverage=1 / 20), checkpoint=ck).resume()
    with pytest.raises(ValueError, match="cannot resume"):
        Trainer(_task(steps=6), checkpoint=ck).resume()
    ck.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable"):
        load_checkpoint(ck)
    with pytest.raises(ValueError, match="no such"):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_alrc_clips_an_outlier_in_a_trained_step():
    torch.manual_seed(0)
    x = torch.zeros(2, 2, 32, 32)
    x[:, 1, ::4, :] = 1.0
    y = torch.zeros(2, 1, 32, 32)
    y_out = torch.ones(2, 1, 32, 32)              # an outlier target: scaled MSE ~ 200, Huberised ~ 14
    cfg = CompletionConfig(width=0.125, inner_blocks=1, outer_blocks=1, disc_input=16, alrc_mu1=1.0, alrc_mu2=1.01,
                           replay=False)
    src = TensorSource(torch.cat([x, x]), torch.cat([y, y_out]), batch_size=2)
    task = CompletionTask(cfg, src, total_steps=100, seed=0)
    m0 = task.alrc_mse.moments.clone()
    lmax = float(task.alrc_mse.threshold())
    assert lmax == pytest.approx(1.0 + 3 * math.sqrt(0.01 + 1e-8))
    out = task.train_step(1)                       # step 1 draws the outlier pair
    per = task.alrc_mse.last_losses.numpy()
    assert np.all(per > 5 * lmax)
    assert out["clipped"] == 2.0
    assert out["l_mse"] == pytest.approx(lmax, rel=1e-5)             # value clipped to L_max
    beta = cfg.alrc_beta
    m1 = task.alrc_mse.moments
    assert float(m1[0]) == pytest.approx(beta * float(m0[0]) + (1 - beta) * lmax, rel=1e-6)  # clipped loss
    assert float(m1[1]) == pytest.approx(beta * float(m0[1]) + (1 - beta) * lmax ** 2, rel=1e-6)
    # without ALRC the same step back-propagates the full outlier loss
    cfg_off = CompletionConfig(width=0.125, inner_blocks=1, outer_blocks=1, disc_input=16, alrc=False, replay=False)
    task_off = CompletionTask(cfg_off, src, total_steps=100, seed=0)
    assert task_off.train_step(1)["l_mse"] == pytest.approx(float(per.mean()), rel=1e-4)


def test_training_lowers_the_loss_and_writes_curves(tmp_path):
    torch.manual_seed(0)
    task = _task(steps=60, coverage=1 / 10)
    events = []
    tr = Trainer(task, validate_every=20, callback=events.append)
    h = tr.run(until=30)                              # the non-adversarial stage
    s, rmse = h.series("rmse")
    assert s.size == 30 and np.isfinite(rmse).all()
    assert rmse[-5:].mean() < 0.6 * rmse[:5].mean()
    _, val = h.series("rmse", "val")
    assert val[-1] < val[0]
    kinds = {e["kind"] for e in events}
    assert kinds == {"train", "val"} and all(e["total"] == 60 for e in events)
    png = write_curves(h, tmp_path / "curves.png", baselines={"linear": 0.1})
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
