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
