"""train_completion end to end on a tiny model: model file, record, curves, kill + resume exactness."""

import pytest

torch = pytest.importorskip("torch")

from fastem.errors import InputError, OutputExistsError  # noqa: E402
from fastem.nn import CompletionConfig, load_model, train_completion  # noqa: E402
from fastem.nn.train_completion import default_checkpoint  # noqa: E402

TINY = CompletionConfig(width=0.125, inner_blocks=1, outer_blocks=1, disc_input=16, replay_size=2)
KW = dict(synthetic=4, crop=32, batch=2, steps=6, coverage=1 / 10, config=TINY, checkpoint_every=2,
          validate_every=3, val_count=4)


class Kill(Exception):
    pass


def test_train_write_and_resume_exactly(tmp_path):
    full = tmp_path / "full.pt"
    g, hist, rec = train_completion(full, curves=tmp_path / "c.png", command="fastem scan train --steps 6", **KW)
    model, info = load_model(full, kind="completion-gan")
    r = info["record"]
    assert r["path"] == "spiral" and r["coverage"] == 0.1 and r["steps"] == 6 and r["data_seed"] == 0
    assert r["command"] == "fastem scan train --steps 6" and r["val_rmse"] > 0 and r["val_rmse_linear"] > 0
    assert "channel widths x0.125" in r["scaled_down"]
    assert (tmp_path / "c.png").stat().st_size > 1000
    with pytest.raises(OutputExistsError):
        train_completion(full, **KW)

    part = tmp_path / "part.pt"

    def killer(event):
        if event["kind"] == "train" and event["step"] == 5:
            raise Kill

    with pytest.raises(Kill):
        train_completion(part, callback=killer, **KW)
    assert not part.exists() and default_checkpoint(part).exists()
    with pytest.raises(InputError, match="cannot resume"):
        train_completion(part, resume=True, **{**KW, "coverage": 1 / 20})
    train_completion(part, resume=True, **KW)
    resumed, _ = load_model(part)
    for (k, a), (_, b) in zip(model.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k


def test_resume_without_checkpoint_is_refused(tmp_path):
    with pytest.raises(InputError, match="no checkpoint to resume"):
        train_completion(tmp_path / "m.pt", resume=True, **KW)


def test_export_checkpoint_writes_the_generator_of_that_step(tmp_path):
    from fastem.nn.train_completion import export_checkpoint

    out = tmp_path / "m.pt"
    g, _, _ = train_completion(out, **KW)
    ckpt = default_checkpoint(out)
    before = ckpt.read_bytes()
    rec = export_checkpoint(ckpt, tmp_path / "mid.pt", note="test")
    assert ckpt.read_bytes() == before                     # the checkpoint is only read
    model, info = load_model(tmp_path / "mid.pt", kind="completion-gan")
    assert rec["steps"] == 6 and rec["of_steps"] == 6 and info["record"]["note"] == "test"
    assert rec["stage"] == "adversarial"                  # the last quarter of the schedule
    assert info["record"]["path"] == "spiral" and info["record"]["coverage"] == 0.1
    for (k, a), (_, b) in zip(g.state_dict().items(), model.state_dict().items()):
        assert torch.equal(a, b), k                        # the last checkpoint holds the final weights
    with pytest.raises(OutputExistsError):
        export_checkpoint(ckpt, tmp_path / "mid.pt")
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"junk")
    with pytest.raises(InputError, match="bad.ckpt"):
        export_checkpoint(bad, tmp_path / "x.pt")
