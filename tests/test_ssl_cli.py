"""``fastem ssl pretrain | finetune | apply`` end to end on tiny models; their one-line errors."""

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")

from fastem.cli.main import app  # noqa: E402
from fastem.data.ssl_synthetic import hrtem_nanoparticles, stem_restoration_set  # noqa: E402
from fastem.nn import load_model  # noqa: E402
from fastem.nn.ssl_models import MODEL_KIND  # noqa: E402


PRE = ["--width", "4", "--crop", "24", "--batch", "4", "--epochs", "2", "--disc-width", "4"]
FT = ["--crop", "24", "--batch", "2", "--epochs", "2"]


def run(*args):
    return CliRunner().invoke(app, ["--device", "cpu", "--quiet", *args])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("ssl")
    x, m = hrtem_nanoparticles(6, 32, seed=1)
    s = stem_restoration_set(5, 32, seed=2)
    with h5py.File(d / "seg.h5", "w") as f:
        f["images"], f["masks"] = x, m
        f["masks3"] = m[:3]
        f["masks_small"] = m[:, :24, :24]
    with h5py.File(d / "adf.h5", "w") as f:
        f["noisy"], f["clean"], f["high_res"] = s["noisy"], s["clean"], s["high_res"]
    with h5py.File(d / "pool.h5", "w") as f:
        f["pool"] = np.concatenate([x, s["noisy"]])
    out = d / "pre.pt"
    r = run("ssl", "pretrain", f"{d / 'pool.h5'}:/pool", "-o", str(out), "--generator", "unet-2-44", *PRE)
    assert r.exit_code == 0, r.output
    return d


def test_pretrain_writes_a_pretext_model_and_resumes_to_the_same_weights(files):
    model, info = load_model(files / "pre.pt", kind=MODEL_KIND)
    rec = info["record"]
    assert rec["task"] == "pretext" and rec["generator"] == "unet-2-44" and rec["epochs"] == 2
    assert rec["data"] == {"source": "images", "pool": 10, "size": [32, 32], "val": 1}
    assert np.isfinite(rec["val_l1"]) and "ssl pretrain" in rec["command"] and "pool 10" in rec["scaled_down"]
    assert (files / "pre.pt.ckpt").is_file()
    again = run("ssl", "pretrain", f"{files / 'pool.h5'}:/pool", "-o", str(files / "pre.pt"), "--resume", *PRE)
    assert again.exit_code == 0, again.output
    same, _ = load_model(files / "pre.pt")
    for (k, a), (_, b) in zip(model.state_dict().items(), same.state_dict().items()):
        assert torch.equal(a, b), k
    other = run("ssl", "pretrain", f"{files / 'pool.h5'}:/pool", "-o", str(files / "pre.pt"), "--resume",
                "--mix", "noise", *PRE)
    assert other.exit_code == 1 and "resume" in other.output and "Traceback" not in other.output


def test_pretrain_synthetic_hrnet_with_curves(tmp_path):
    out = tmp_path / "h.pt"
    r = run("ssl", "pretrain", "--synthetic", "6", "-o", str(out), "--generator", "hrnet", "--width", "4",
            "--crop", "32", "--batch", "3", "--epochs", "1", "--disc-width", "4", "--curves", str(tmp_path / "c.png"))
    assert r.exit_code == 0, r.output
    _, info = load_model(out)
    assert info["config"]["arch"] == "hrnet" and info["record"]["data"]["source"] == "synthetic"
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_finetune_segment_from_pretrained_then_apply_with_metrics(files, tmp_path):
    seg = tmp_path / "seg.pt"
    r = run("ssl", "finetune", f"{files / 'seg.h5'}:/images", "--targets", f"{files / 'seg.h5'}:/masks",
            "--task", "segment", "--init", str(files / "pre.pt"), "-o", str(seg), "--freeze", "encoder",
            "--unfreeze-epoch", "1", "--seg-loss", "bce+dice", *FT)
    assert r.exit_code == 0, r.output
    _, info = load_model(seg, kind=MODEL_KIND)
    rec = info["record"]
    assert rec["task"] == "segment" and rec["init"]["file"] == "pre.pt" and rec["init"]["task"] == "pretext"
    assert rec["data"]["train"] == 5 and rec["data"]["val"] == 1 and len(rec["val_curve"]) == 2
    assert 0 <= rec["val_dice"] <= 1
    before = (files / "seg.h5").read_bytes()
    out = tmp_path / "o.h5"
    r = run("ssl", "apply", str(seg), f"{files / 'seg.h5'}:/images", "--targets", f"{files / 'seg.h5'}:/masks",
            "-o", str(out), "--tile", "32", "--overlap", "8", "--task", "segment")
    assert r.exit_code == 0, r.output
    assert (files / "seg.h5").read_bytes() == before
    with h5py.File(out, "r") as f:
        mask, prob = f["ssl/output"][()], f["ssl/probability"][()]
        assert mask.shape == (6, 32, 32) and mask.dtype == np.uint8
        np.testing.assert_array_equal(mask, (prob > 0.5).astype(np.uint8))
        assert f["ssl"].attrs["task"] == "segment"
        assert 0 <= float(f["process/fastem/dice"][()]) <= 1


def test_finetune_denoise_from_scratch_and_apply_in_intensity_units(files, tmp_path):
    dn = tmp_path / "dn.pt"
    r = run("ssl", "finetune", f"{files / 'adf.h5'}:/noisy", "--targets", f"{files / 'adf.h5'}:/clean",
            "--task", "denoise", "--from-scratch", "--generator", "unet-3-96", "--width", "4", "-o", str(dn), *FT)
    assert r.exit_code == 0, r.output
    _, info = load_model(dn)
    assert info["record"]["init"] == "random" and info["config"]["arch"] == "unet-3-96"
    out = tmp_path / "d.h5"
    r = run("ssl", "apply", str(dn), f"{files / 'adf.h5'}:/noisy", "--targets", f"{files / 'adf.h5'}:/clean",
            "-o", str(out), "--tile", "32")
    assert r.exit_code == 0, r.output
    with h5py.File(out, "r") as f:
        y = f["ssl/output"][()]
        noisy = f"{files / 'adf.h5'}"
        assert y.dtype == np.float32 and y.shape == (5, 32, 32)
        assert float(f["process/fastem/l1"][()]) > 0 and float(f["process/fastem/l1_input"][()]) > 0
    with h5py.File(noisy, "r") as f:
        assert abs(y.mean() - f["noisy"][()].mean()) < f["noisy"][()].std()


def test_finetune_superres_records_its_normalisation_and_apply_uses_it(files, tmp_path):
    from fastem.nn.ssl_train import predict

    sr = tmp_path / "sr.pt"
    r = run("ssl", "finetune", f"{files / 'adf.h5'}:/noisy", "--targets", f"{files / 'adf.h5'}:/high_res",
            "--task", "superres", "--from-scratch", "--width", "4", "-o", str(sr), *FT)
    assert r.exit_code == 0, r.output
    model, info = load_model(sr)
    assert info["record"]["normalisation"] == "scale"      # "auto" for a background-free target
    out = tmp_path / "sr.h5"
    r = run("ssl", "apply", str(sr), f"{files / 'adf.h5'}:/noisy", "-o", str(out), "--tile", "32")
    assert r.exit_code == 0, r.output
    with h5py.File(files / "adf.h5", "r") as f:
        noisy = f["noisy"][()]
    with h5py.File(out, "r") as f:
        got = f["ssl/output"][()]
    want = predict(model, noisy, "superres", tile=32, overlap=8, normalisation="scale")
    other = predict(model, noisy, "superres", tile=32, overlap=8, normalisation="standardise")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert np.abs(got - other).max() > 1e-3


def test_apply_self_ensemble_matches_predict_and_is_recorded(files, tmp_path):
    """--ensemble 8 writes the library's 8-transform self-ensemble (logits averaged before the
    sigmoid for segmentation) and records it in the provenance."""
    from fastem.io.process import read_process_group
    from fastem.nn.ssl_train import predict

    dn = tmp_path / "dn8.pt"
    r = run("ssl", "finetune", f"{files / 'adf.h5'}:/noisy", "--targets", f"{files / 'adf.h5'}:/clean",
            "--task", "denoise", "--from-scratch", "--width", "4", "-o", str(dn), *FT)
    assert r.exit_code == 0, r.output
    model, info = load_model(dn)
    out = tmp_path / "e8.h5"
    r = run("ssl", "apply", str(dn), f"{files / 'adf.h5'}:/noisy", "-o", str(out), "--tile", "32", "--ensemble", "8")
    assert r.exit_code == 0, r.output
    with h5py.File(files / "adf.h5", "r") as f:
        noisy = f["noisy"][()]
    with h5py.File(out, "r") as f:
        got = f["ssl/output"][()]
        prov, _, _ = read_process_group(f["process/fastem"])
    norm = info["record"]["normalisation"]
    want = predict(model, noisy, "denoise", tile=32, overlap=8, normalisation=norm, ensemble=8)
    single = predict(model, noisy, "denoise", tile=32, overlap=8, normalisation=norm)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert np.abs(got - single).max() > 1e-3
    assert prov["configuration"]["ensemble"] == 8


@pytest.mark.parametrize("args,needle", [
    (["finetune", "SEG", "--targets", "SEG_MASKS3", "--task", "segment", "--from-scratch"], "holds 3 images but"),
    (["finetune", "SEG", "--targets", "SEG_SMALL", "--task", "segment", "--from-scratch"], "pixel for pixel"),
    (["finetune", "SEG", "--task", "segment", "--from-scratch"], "need --targets"),
    (["finetune", "SEG", "--targets", "SEG_MASKS", "--task", "segment"], "--init PRETRAINED.pt or --from-scratch"),
    (["finetune", "SEG", "--targets", "SEG_MASKS", "--task", "segment", "--init", "PRE", "--from-scratch"],
     "one of them"),
    (["finetune", "SEG", "--targets", "SEG_MASKS", "--task", "segment", "--init", "PRE", "--generator", "hrnet"],
     "not --generator hrnet"),
    (["finetune", "SEG", "--targets", "SEG_MASKS", "--task", "segment", "--init", "BROKEN"], "not a readable"),
    (["finetune", "SEG", "--targets", "SEG_MASKS", "--task", "segment", "--init", "COMPLETION"],
     "expected a 'ssl-generator'"),
    (["finetune", "SEG", "--targets", "SEG_MASKS", "--task", "denoise", "--init", "SEGMODEL"], "a 'segment' model"),
    (["apply", "SEGMODEL", "SEG", "--task", "denoise"], "a 'segment' model, not a 'denoise' model"),
    (["apply", "BROKEN", "SEG"], "not a readable"),
    (["apply", "SEGMODEL", "SEG", "--targets", "SEG_MASKS3"], "holds 3 images but IN holds 6"),
    (["apply", "SEGMODEL", "SEG", "--ensemble", "3"], "--ensemble"),
    (["pretrain", "SEG", "--crop", "64"], "smaller than --crop 64"),
    (["pretrain", "--synthetic", "2", "--crop", "16"], "--crop"),
    (["pretrain", "SEG", "--synthetic", "2"], "not both"),
    (["pretrain", "--synthetic", "2", "--resume"], "no checkpoint to resume"),
])
def test_errors_are_one_line(files, tmp_path, args, needle):
    broken = tmp_path / "broken.pt"
    broken.write_bytes((files / "pre.pt").read_bytes()[:500])
    seg_model = files / "segmodel.pt"
    if not seg_model.exists():
        r = run("ssl", "finetune", f"{files / 'seg.h5'}:/images", "--targets", f"{files / 'seg.h5'}:/masks",
                "--task", "segment", "--init", str(files / "pre.pt"), "-o", str(seg_model), "--epochs", "1",
                "--crop", "24", "--batch", "3")
        assert r.exit_code == 0, r.output
    subs = {"SEG": f"{files / 'seg.h5'}:/images", "SEG_MASKS": f"{files / 'seg.h5'}:/masks",
            "SEG_MASKS3": f"{files / 'seg.h5'}:/masks3", "SEG_SMALL": f"{files / 'seg.h5'}:/masks_small",
            "PRE": str(files / "pre.pt"), "BROKEN": str(broken), "SEGMODEL": str(seg_model),
            "COMPLETION": str(_completion_model(files))}
    args = [subs.get(a, a) for a in args]
    out = tmp_path / ("e.h5" if args[0] == "apply" else "e.pt")
    extra = {"pretrain": PRE[:2], "finetune": ["--crop", "24"]}.get(args[0], [])
    r = run("ssl", *args, "-o", str(out), *extra)
    assert r.exit_code in (1, 2), r.output
    assert needle in r.output, r.output
    assert "Traceback" not in r.output
    assert not out.exists()


def _completion_model(files):
    path = files / "completion.pt"
    if not path.exists():
        from fastem.nn import CompletionConfig, CompletionGenerator, save_model

        cfg = CompletionConfig(width=0.1)
        save_model(path, CompletionGenerator(cfg), kind="completion-gan", config=cfg.to_dict())
    return path


def test_renamed_ssl_job_module_still_imports_with_a_warning():
    import subprocess
    import sys

    code = ("import warnings\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    import fastem.ssl.jobs as old\n"
            "import fastem.ssl.job as new\n"
            "assert old.finetune is new.finetune and old._init_from is new._init_from and old.PAPER is new.PAPER\n"
            "print(any(issubclass(x.category, DeprecationWarning) and 'fastem.ssl.job' in str(x.message) "
            "for x in w))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "True"


def test_job_messages_name_parameters_and_the_cli_names_flags():
    import re
    from pathlib import Path

    import fastem.ssl.job as job

    src = Path(job.__file__).read_text()
    raised = [ln for ln in src.splitlines() if "raise InputError(" in ln]
    assert raised and not [ln for ln in raised if re.search(r"--[a-z]", ln)], "the job API names parameters"
    assert job.cli_message("m.pt: generator width 8, not width 16") == "m.pt: generator width 8, not --width 16"
    assert job.cli_message("crop: 64 is not a multiple of 48") == "--crop: 64 is not a multiple of 48"
    assert job.cli_message("x.ckpt: no checkpoint to resume from (run without resume first)").endswith(
        "(run without --resume first)")
