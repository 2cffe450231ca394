"""Fault injection for the self-supervised GAN training (issue 13).

Fault found in the reproduction: a training crop that is not a multiple of the generator's
total downsampling (U-Net_4_424: 48 px) was padded inside the network and its outputs cropped
back, so the padded border was never trained; on whole validation images (96 px, a 2x2
bottleneck) that border's outputs were used untrained and U-Net_4_424 stayed at the
all-particle Dice. Such crops are now refused with a one-line error (the API names the crop,
the CLI ``--crop``), and the default crop is rounded up to a multiple.

Fault found in the reproduction (follow-up): super-resolution and background removal targets
(background-free) were standardised with their input's mean, putting them at a per-image offset
the network learnt only slowly: super-resolution stayed worse than the best constant per image.
They are now normalised by the input's std only (``normalisation="scale"``, recorded in the
model file); ``apply`` reads the record, model files without one are applied as they were trained
(standardised) and an unknown value is a one-line error. The learning itself is tested in
``test_ssl_train.py::test_superres_fine_tuning_beats_the_best_constant_per_image``.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fastem.data.ssl_synthetic import hrtem_nanoparticles, unlabelled_pool  # noqa: E402
from fastem.errors import InputError  # noqa: E402
from fastem.nn.ssl_models import build_generator, generator_config  # noqa: E402
from fastem.nn.ssl_train import FinetuneTask, PretextTask, check_crop, fitting_crop  # noqa: E402

from fault_tools import assert_clean_error, run_cli  # noqa: E402

LARGE = generator_config("unet-4-424", width=2)


@pytest.fixture(autouse=True)
def _one_thread():
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def test_a_crop_off_the_downsampling_grid_is_refused_by_both_tasks():
    x, m = hrtem_nanoparticles(3, 96, seed=0)
    with pytest.raises(InputError, match=r"crop 64 px is not a multiple of unet-4-424's total downsampling 48 px"
                                         r".*use a crop of 48 or 96 px"):
        FinetuneTask(LARGE, "segment", x, m, crop=64, batch=2)
    with pytest.raises(InputError, match="crop 72 px is not a multiple"):
        PretextTask(LARGE, unlabelled_pool(3, 96, seed=0), crop=72, batch=2, disc_features=4)
    # crops on the grid train (and every output pixel of a crop is then a trained one)
    ft = FinetuneTask(LARGE, "segment", x, m, crop=96, batch=2, seed=0)
    loss = ft.train_step(0)["loss"]
    assert np.isfinite(loss) and loss > 0
    PretextTask(LARGE, unlabelled_pool(3, 96, seed=0), crop=48, batch=2, disc_features=4)


def test_check_crop_accepts_multiples_for_every_generator():
    for name, bad in (("unet-2-44", 30), ("unet-3-176", 64), ("unet-4-424", 64), ("hrnet", 48)):
        net = build_generator(generator_config(name, width=2))
        check_crop(net.multiple * 2, net, name)
        with pytest.raises(InputError, match=f"crop {bad} px is not a multiple of {name}'s"):
            check_crop(bad, net, name)


def test_fitting_crop_rounds_up_and_fits_the_images():
    assert fitting_crop(64, 4) == 64
    assert fitting_crop(64, 48) == 96
    assert fitting_crop(64, 24) == 72
    assert fitting_crop(64, 48, side=80) == 48          # 96 does not fit 80 px images
    assert fitting_crop(64, 32, side=200) == 64
    assert fitting_crop(24, 48, side=30) == 48          # never below one multiple (the image check then refuses)


def test_cli_names_the_crop_flag_and_writes_nothing(tmp_path):
    out = tmp_path / "m.pt"
    proc = run_cli(["ssl", "finetune", "--synthetic", "2", "--synthetic-size", "96", "--task", "segment",
                    "--from-scratch", "--generator", "unet-4-424", "--width", "2", "--crop", "64", "-o", str(out)],
                   env={"OMP_NUM_THREADS": "1"})
    assert_clean_error(proc, "--crop", "64", "multiple", "48")
    assert not out.exists() and not list(tmp_path.iterdir())


def test_cli_default_crop_is_a_multiple_of_the_downsampling(tmp_path):
    from fastem.nn import load_model

    out = tmp_path / "m.pt"
    proc = run_cli(["--quiet", "ssl", "finetune", "--synthetic", "2", "--synthetic-size", "56", "--task", "segment",
                    "--from-scratch", "--generator", "unet-4-424", "--width", "2", "--epochs", "1", "--batch", "2",
                    "-o", str(out)], env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    _, info = load_model(out)
    assert info["record"]["crop"] == 48       # 64 rounded up to 96 does not fit 56 px images -> 48


def _superres_model(path, record):
    from fastem.nn import save_model
    from fastem.nn.ssl_models import MODEL_KIND

    cfg = generator_config("unet-2-44", width=2)
    torch.manual_seed(0)
    net = build_generator(cfg)
    save_model(path, net, kind=MODEL_KIND, config=cfg, record=record)
    return net.eval()


def test_apply_uses_the_recorded_normalisation_and_old_files_stay_standardised(tmp_path):
    import h5py

    from fastem.data.ssl_synthetic import task_data
    from fastem.nn.ssl_train import predict
    from fastem.ssl import apply

    x, _ = task_data("superres", 2, 32, seed=5)
    for name, record, norm in (("old.pt", {"task": "superres"}, "standardise"),
                               ("new.pt", {"task": "superres", "normalisation": "scale"}, "scale")):
        net = _superres_model(tmp_path / name, record)
        apply(tmp_path / name, x, tmp_path / f"{name}.h5", tile=32, overlap=0)
        with h5py.File(tmp_path / f"{name}.h5", "r") as f:
            got = f["ssl/output"][()]
        np.testing.assert_allclose(got, predict(net, x, "superres", tile=32, overlap=0, normalisation=norm),
                                   rtol=1e-5, atol=1e-5)


def test_an_unknown_recorded_normalisation_is_a_one_line_error(tmp_path):
    import h5py

    from fastem.data.ssl_synthetic import task_data

    x, _ = task_data("superres", 2, 32, seed=5)
    with h5py.File(tmp_path / "in.h5", "w") as f:
        f["x"] = x
    _superres_model(tmp_path / "bad.pt", {"task": "superres", "normalisation": "minmax"})
    out = tmp_path / "o.h5"
    proc = run_cli(["ssl", "apply", str(tmp_path / "bad.pt"), f"{tmp_path / 'in.h5'}:/x", "-o", str(out)],
                   env={"OMP_NUM_THREADS": "1"})
    assert_clean_error(proc, "bad.pt", "normalisation", "minmax")
    assert not out.exists()
