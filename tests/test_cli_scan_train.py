"""``fastem scan train``: the completion GAN from the command line on tiny settings; its errors."""

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")

from fastem.cli.main import app  # noqa: E402
from fastem.nn import load_model  # noqa: E402


TINY = ["--steps", "4", "--crop", "32", "--batch", "2", "--width", "0.1", "--val-count", "2",
        "--validate-every", "2", "--checkpoint-every", "2"]


def run(*args):
    return CliRunner().invoke(app, ["--device", "cpu", "--quiet", *args])


@pytest.fixture
def stack_h5(tmp_path):
    from fastem.data.stem import generate_stem

    imgs = generate_stem(5, 48, seed=3, dose=None)
    path = tmp_path / "imgs.h5"
    with h5py.File(path, "w") as f:
        f["stack"] = imgs
    return path


def test_train_synthetic_writes_a_model_with_its_record(tmp_path):
    out = tmp_path / "m.pt"
    r = run("scan", "train", "--synthetic", "4", "-o", str(out), "--coverage", "0.1", "--curves",
            str(tmp_path / "c.png"), *TINY)
    assert r.exit_code == 0, r.output
    model, info = load_model(out, kind="completion-gan")
    rec = info["record"]
    assert rec["path"] == "spiral" and rec["coverage"] == pytest.approx(0.1) and rec["steps"] == 4
    assert rec["crop"] == 32 and rec["data"]["source"] == "synthetic" and rec["data"]["synthetic_pool"] == 4
    assert "scan train" in rec["command"] and np.isfinite(rec["val_rmse"]) and rec["val_rmse_linear"] > 0
    assert (tmp_path / "c.png").stat().st_size > 1000
    assert (tmp_path / "m.pt.ckpt").is_file()
    # a finished run resumes to the same weights (nothing left to do); other settings are refused
    again = run("scan", "train", "--synthetic", "4", "-o", str(out), "--coverage", "0.1", "--resume", *TINY)
    assert again.exit_code == 0, again.output
    same, _ = load_model(out)
    for (k, a), (_, b) in zip(model.state_dict().items(), same.state_dict().items()):
        assert torch.equal(a, b), k
    other = run("scan", "train", "--synthetic", "4", "-o", str(out), "--coverage", "0.2", "--resume", *TINY)
    assert other.exit_code != 0 and "resume" in other.output and "Traceback" not in other.output


def test_train_on_user_images_holds_out_validation(tmp_path, stack_h5):
    out = tmp_path / "u.pt"
    r = run("scan", "train", f"{stack_h5}:/stack", "-o", str(out), "--path", "grid", "--coverage", "0.2", *TINY)
    assert r.exit_code == 0, r.output
    _, info = load_model(out)
    rec = info["record"]
    assert rec["path"] == "grid" and rec["data"]["source"] == "images" and rec["val_count"] >= 1
    before = stack_h5.read_bytes()
    assert stack_h5.read_bytes() == before   # the input is never written


@pytest.mark.parametrize("args,needle", [
    (["--synthetic", "2", "--crop", "40"], "--crop"),
    (["--synthetic", "2", "--coverage", "1"], "--coverage"),
    (["--synthetic", "2", "--coverage", "nan"], "--coverage"),
    (["--synthetic", "2", "--steps", "0"], "--steps"),
    (["--synthetic", "2", "--resume"], "no checkpoint to resume"),
    (["IN", "--synthetic", "2"], "not both"),
    (["IN", "--crop", "64"], "smaller than --crop 64"),
    (["MISSING"], "missing.h5"),
])
def test_train_errors_are_one_line(tmp_path, stack_h5, args, needle):
    args = [f"{stack_h5}:/stack" if a == "IN" else str(tmp_path / "missing.h5") if a == "MISSING" else a
            for a in args]
    r = run("scan", "train", *args, "-o", str(tmp_path / "e.pt"), "--width", "0.1", "--steps",
            *([] if "--steps" in args else ["2"]))
    assert r.exit_code != 0 and needle in r.output, r.output
    assert "Traceback" not in r.output and not (tmp_path / "e.pt").exists()


def test_train_refuses_an_existing_model_and_an_input_as_output(tmp_path, stack_h5):
    out = tmp_path / "m.pt"
    out.write_bytes(b"keep me")
    r = run("scan", "train", "--synthetic", "2", "-o", str(out), *TINY)
    assert r.exit_code != 0 and "exists" in r.output and out.read_bytes() == b"keep me"
    r = run("scan", "train", f"{stack_h5}:/stack", "-o", str(stack_h5), *TINY)
    assert r.exit_code != 0 and "input" in r.output


def test_batch_of_one_trains(tmp_path):
    """Fault case: batch 1 used to give a zero std in the weight-norm data init (1x1 deepest map)
    and a NaN loss at the first step."""
    out = tmp_path / "b1.pt"
    r = run("scan", "train", "--synthetic", "2", "-o", str(out), "--steps", "2", "--crop", "32", "--batch", "1",
            "--width", "0.1", "--val-count", "1")
    assert r.exit_code == 0, r.output
    _, info = load_model(out)
    assert np.isfinite(info["record"]["val_rmse"])
    assert info["record"]["command"].startswith("fastem scan train --output ")


def test_init_starts_from_a_models_weights_and_records_it(tmp_path):
    base = tmp_path / "base.pt"
    r = run("scan", "train", "--synthetic", "4", "-o", str(base), *TINY)
    assert r.exit_code == 0, r.output
    before = base.read_bytes()
    base_model, _ = load_model(base)
    # one step at learning rate ~0 would be the init itself: compare the record and the weights' start
    tiny_init = [a for a in TINY if a not in ("--width", "0.1")]
    out = tmp_path / "fine.pt"
    r = run("scan", "train", "--synthetic", "4", "-o", str(out), "--init", str(base), "--no-adversarial", *tiny_init)
    assert r.exit_code == 0, r.output
    assert base.read_bytes() == before                   # the init model is an input: never written
    model, info = load_model(out)
    rec = info["record"]
    assert rec["init"]["file"] == "base.pt" and rec["init"]["steps"] == 4 and len(rec["init"]["sha256"]) == 64
    assert info["config"]["width"] == pytest.approx(0.1)  # architecture from the init model
    assert info["config"]["adversarial"] is False
    # fine-tuned weights start from the init: 4 Adam steps move each weight by at most ~4 * lr
    for (k, a), (_, b) in zip(model.state_dict().items(), base_model.state_dict().items()):
        if a.is_floating_point() and "running" not in k:
            assert float((a - b).abs().max()) < 4 * 2e-4 * 1.5 + 1e-6, k
    # resume is refused when the init file changed
    other = tmp_path / "other.pt"
    r = run("scan", "train", "--synthetic", "4", "-o", str(other), "--seed", "1", *TINY)
    assert r.exit_code == 0, r.output
    base.write_bytes(other.read_bytes())
    again = run("scan", "train", "--synthetic", "4", "-o", str(out), "--init", str(base), "--no-adversarial",
                "--resume", *tiny_init)
    assert again.exit_code != 0 and "resume" in again.output and "Traceback" not in again.output


def test_lr_sets_both_stages_and_moves_an_init_model_less(tmp_path):
    base = tmp_path / "base.pt"
    assert run("scan", "train", "--synthetic", "4", "-o", str(base), *TINY).exit_code == 0
    base_model, _ = load_model(base)
    tiny_init = [a for a in TINY if a not in ("--width", "0.1")]
    out = tmp_path / "gentle.pt"
    r = run("scan", "train", "--synthetic", "4", "-o", str(out), "--init", str(base), "--no-adversarial",
            "--lr", "1e-6", *tiny_init)
    assert r.exit_code == 0, r.output
    model, info = load_model(out)
    assert info["config"]["lr_stage1"] == pytest.approx(1e-6) and info["config"]["lr_stage2"] == pytest.approx(5e-7)
    # 4 Adam steps at lr <= 1e-6 move each weight by at most ~4e-6 (the default 2e-4 allows 1.2e-3)
    moved = 0.0
    for (k, a), (_, b) in zip(model.state_dict().items(), base_model.state_dict().items()):
        if a.is_floating_point() and "running" not in k:
            moved = max(moved, float((a - b).abs().max()))
    assert 0 < moved < 4 * 1e-6 * 1.5
    # the learning rate is part of the run: --resume with the same one is accepted, with another refused
    same = run("scan", "train", "--synthetic", "4", "-o", str(out), "--init", str(base), "--no-adversarial",
               "--lr", "1e-6", "--resume", *tiny_init)
    assert same.exit_code == 0, same.output
    again = run("scan", "train", "--synthetic", "4", "-o", str(out), "--init", str(base), "--no-adversarial",
                "--lr", "1e-5", "--resume", *tiny_init)
    assert again.exit_code != 0 and "resume" in again.output and "Traceback" not in again.output


@pytest.mark.parametrize("value", ["0", "-1e-4", "nan", "inf", "2"])
def test_lr_out_of_range_names_the_flag(tmp_path, value):
    r = run("scan", "train", "--synthetic", "2", "-o", str(tmp_path / "x.pt"), "--lr", value, *TINY)
    assert r.exit_code == 2 and "--lr" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "x.pt").exists()


def test_completion_config_refuses_a_bad_learning_rate():
    from fastem.errors import InputError
    from fastem.nn.completion import CompletionConfig

    for name in ("lr_stage1", "lr_stage2", "lr_disc"):
        with pytest.raises(InputError, match=name):
            CompletionConfig(**{name: float("nan")})
        with pytest.raises(InputError, match=name):
            CompletionConfig(**{name: 0.0})


@pytest.mark.parametrize("args, needle", [
    (["--init", "missing.pt"], "--init"),
    (["--init", "PLACEHOLDER", "--width", "0.2"], "--width"),
])
def test_init_errors_name_the_flag(tmp_path, args, needle):
    base = tmp_path / "base.pt"
    assert run("scan", "train", "--synthetic", "4", "-o", str(base), *TINY).exit_code == 0
    args = [str(base) if a == "PLACEHOLDER" else (str(tmp_path / a) if a.endswith(".pt") else a) for a in args]
    tiny = [a for a in TINY if a not in ("--width", "0.1")]
    r = run("scan", "train", "--synthetic", "4", "-o", str(tmp_path / "x.pt"), *args, *tiny)
    assert r.exit_code != 0 and needle in r.output and "Traceback" not in r.output


def test_init_refuses_another_kind_of_model(tmp_path):
    from fastem.errors import InputError
    from fastem.nn.model import save_model
    from fastem.nn.ssl_models import MODEL_KIND, build_generator, generator_config
    from fastem.nn.train_completion import train_completion

    cfg = generator_config("unet-2-44", width=3)
    bad = save_model(tmp_path / "ssl.pt", build_generator(cfg), kind=MODEL_KIND, config=cfg)
    with pytest.raises(InputError, match="expected a 'completion-gan' model"):
        train_completion(tmp_path / "o.pt", synthetic=4, steps=1, crop=32, batch=1, init=bad)
