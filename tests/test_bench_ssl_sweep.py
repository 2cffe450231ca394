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
