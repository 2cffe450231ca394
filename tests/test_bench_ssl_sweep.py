"""bench/ssl_label_sweep.py: the report's ratios and steps per epoch come from the curves."""

from bench.ssl_label_sweep import summarise


def test_summary_ratios_from_curves():
    curves = {"16/pretrained": [[0.1, 0.2, 0.3, 0.4, 0.5], [0.1, 0.2, 0.3, 0.4, 0.7]],
              "16/random": [[0.1, 0.1, 0.1, 0.2, 0.2], [0.1, 0.1, 0.1, 0.2, 0.4]]}
    report = {"command": "x", "generator": "unet-2-44", "torch": "t", "threads": 2, "wall_s": 1.0,
              "pretraining": {}, "sizes": [16], "epochs": 5, "seeds": 2, "batch": 8, "curves": curves}
    md = summarise(report)
    assert "| 16 | 2 | pretrained | 10.0 | 20.0 | 30.0 | 40.0 | 60.0 |" in md
    assert "at epoch 5 = 2.00x (60.0 vs 30.0)" in md
    assert "best ratio over the epochs 3.00x" in md  # epoch 3: 30 vs 10


def test_summary_reports_the_trivial_all_particle_dice_and_the_contrast():
    curves = {"8/pretrained": [[0.2, 0.3]], "8/random": [[0.1, 0.1]]}
    report = {"command": "x", "generator": "unet-2-44", "torch": "t", "threads": 1, "wall_s": 1.0,
              "pretraining": {}, "sizes": [8], "epochs": 2, "seeds": 1, "batch": 8, "curves": curves,
              "amplitude_contrast": [0.1, 0.35], "all_particle_dice": 0.178}
    md = summarise(report)
    assert "calls every pixel a particle scores 17.8" in md
    assert "amplitude contrast [0.1, 0.35]" in md


def test_summary_states_the_freezing_policy():
    curves = {"8/pretrained": [[0.2, 0.3]], "8/random": [[0.1, 0.1]]}
    report = {"command": "x", "generator": "unet-2-44", "torch": "t", "threads": 1, "wall_s": 1.0,
              "pretraining": {}, "sizes": [8], "epochs": 2, "seeds": 1, "batch": 8, "curves": curves,
              "freeze": "all-but-head", "unfreeze_epoch": 1, "freeze_pretrained_only": True}
    md = summarise(report)
    assert "freeze all-but-head until epoch 1 (pretrained start only; random weights train whole)" in md
    assert "freeze" not in summarise(dict(report, freeze="none"))
    assert "learning rate 0.001, " in summarise(dict(report, lr=1e-3))
    assert "learning rate" not in md


def test_finetune_curve_passes_the_freezing_policy(monkeypatch):
    """bench/reproduce_ssl.py's finetune_curve hands --freeze / --unfreeze-epoch to FinetuneTask."""
    import types

    import numpy as np
    import pytest

    pytest.importorskip("torch")
    import fastem.nn.ssl_train as ssl_train
    from bench.reproduce_ssl import finetune_curve

    seen = {}

    class Stop(Exception):
        pass

    def stand_in(*args, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(ssl_train, "FinetuneTask", stand_in)
    x = np.zeros((2, 32, 32), np.float32)
    a = types.SimpleNamespace(crop=32, ft_batch=2, device="cpu", freeze="all-but-head", unfreeze_epoch=1, lr=1e-3)
    from fastem.nn.ssl_models import generator_config

    with pytest.raises(Stop):
        finetune_curve(generator_config("unet-2-44", width=4), "segment", (x, x, x, x), None, 0, 2, a)
    assert seen["freeze"] == "all-but-head" and seen["unfreeze_epoch"] == 1 and seen["lr"] == 1e-3


def test_summary_states_the_pretext_geometry():
    curves = {"8/pretrained": [[0.2, 0.3]], "8/random": [[0.1, 0.1]]}
    report = {"command": "x", "generator": "unet-2-44", "torch": "t", "threads": 1, "wall_s": 1.0,
              "pretraining": {}, "sizes": [8], "epochs": 2, "seeds": 1, "batch": 8, "curves": curves,
              "geometric": "input"}
    assert "pretext flips / rotations of the input only, " in summarise(report)
    assert "pretext flips" not in summarise(dict(report, geometric="both"))
    assert "pretext flips" not in summarise({k: v for k, v in report.items() if k != "geometric"})


def test_pretrain_all_passes_the_pretext_geometry(monkeypatch):
    """bench/reproduce_ssl.py's pretrain_all hands --geometric to PretextTask's corruption (both by default)."""
    import types

    import pytest

    pytest.importorskip("torch")
    import fastem.nn.ssl_train as ssl_train
    from bench.reproduce_ssl import pretrain_all
    from fastem.nn.ssl_models import generator_config

    seen = []

    class Stop(Exception):
        pass

    def stand_in(*args, **kwargs):
        seen.append(kwargs["corruption"])
        raise Stop

    monkeypatch.setattr(ssl_train, "PretextTask", stand_in)
    cfg = generator_config("unet-2-44", width=4)
    for geometric, expected in ((None, "both"), ("input", "input"), ("both", "both")):
        a = types.SimpleNamespace(crop=32, pool_size=32, batch=2, disc_width=4, device="cpu", data_seed=0,
                                  pretrain_epochs=1, pool_main=4)
        if geometric is not None:
            a.geometric = geometric
        with pytest.raises(Stop):
            pretrain_all({"small": cfg}, [4], a, log=lambda m: None)
        assert seen[-1].geometric == expected


def test_the_pretrained_cache_refuses_another_pretext_geometry(tmp_path):
    """A cache made with --geometric input is not reused for the default pretext, nor the reverse."""
    import pytest

    torch = pytest.importorskip("torch")
    from bench.ssl_label_sweep import main
    from fastem.errors import InputError

    cache = tmp_path / "pre.pt"
    key = {"generator": "unet-2-44", "pool": 16, "pretrain_epochs": 1, "geometric": "input"}
    torch.save({"key": key, "state": {}, "meta": {}}, cache)
    with pytest.raises(InputError, match="geometric"):
        main(["--quick", "--pretrained-cache", str(cache), "--out", str(tmp_path)])
    torch.save({"key": {k: v for k, v in key.items() if k != "geometric"}, "state": {}, "meta": {}}, cache)
    with pytest.raises(InputError, match="pretrained-cache"):
        main(["--quick", "--geometric", "input", "--pretrained-cache", str(cache), "--out", str(tmp_path)])


def test_summary_states_the_generators_parameter_count():
    import pytest

    pytest.importorskip("torch")
    from bench.ssl_label_sweep import parameter_count
    from fastem.nn.ssl_models import build_generator, generator_config

    curves = {"8/pretrained": [[0.2, 0.3]], "8/random": [[0.1, 0.1]]}
    report = {"command": "x", "generator": "hrnet", "torch": "t", "threads": 1, "wall_s": 1.0,
              "pretraining": {}, "sizes": [8], "epochs": 2, "seeds": 1, "batch": 8, "curves": curves,
              "parameters": 1234567}
    assert "- hrnet (width 16) has 1,234,567 trainable parameters" in summarise(report)
    net = build_generator(generator_config("unet-2-44", width=16))
    assert parameter_count("unet-2-44") == sum(p.numel() for p in net.parameters() if p.requires_grad)
    assert parameter_count("unet-2-44") < parameter_count("hrnet") < parameter_count("unet-4-424")


def test_summary_and_cache_carry_the_generator_width(tmp_path):
    """--width reaches the summary's parameter line, and a cache of another width is refused."""
    import pytest

    torch = pytest.importorskip("torch")
    from bench.ssl_label_sweep import main, parameter_count
    from fastem.errors import InputError

    curves = {"8/pretrained": [[0.2, 0.3]], "8/random": [[0.1, 0.1]]}
    report = {"command": "x", "generator": "unet-2-44", "torch": "t", "threads": 1, "wall_s": 1.0,
              "pretraining": {}, "sizes": [8], "epochs": 2, "seeds": 1, "batch": 8, "curves": curves,
              "width": 32, "parameters": 4321}
    assert "- unet-2-44 (width 32) has 4,321 trainable parameters" in summarise(report)
    assert parameter_count("unet-2-44", 8) < parameter_count("unet-2-44") < parameter_count("unet-2-44", 32)
    cache = tmp_path / "pre.pt"
    torch.save({"key": {"generator": "unet-2-44", "pool": 16, "pretrain_epochs": 1}, "state": {}, "meta": {}}, cache)
    with pytest.raises(InputError, match="'width': 8"):
        main(["--quick", "--width", "8", "--pretrained-cache", str(cache), "--out", str(tmp_path)])
