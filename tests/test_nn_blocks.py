"""fastem.nn building blocks and completion networks: shapes, dtypes, determinism, switches."""

import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from fastem.nn import (CompletionConfig, CompletionGenerator, Discriminator, GenConv, MeanOnlyBatchNorm,  # noqa: E402
                       MultiScaleDiscriminator, ResidualBlock, SNConv2d, WNConv2d, WNConvTranspose2d, data_init,
                       freeze_batch_norm, init_normal)

TINY = CompletionConfig(width=0.125, inner_blocks=1, outer_blocks=1, disc_input=16)


def test_import_fastem_does_not_import_torch():
    code = "import sys, fastem, fastem.scan, fastem.train; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_wn_conv_is_weight_normalised_without_bias():
    torch.manual_seed(0)
    conv = WNConv2d(3, 5, 3, stride=2)
    w = conv.weight()
    norms = w.pow(2).sum(dim=(1, 2, 3)).sqrt()
    assert torch.allclose(norms, conv.g.detach().abs(), rtol=1e-5)
    assert not any("bias" in n for n, _ in conv.named_parameters())
    assert 0.04 < float(conv.v.detach().std()) < 0.06                      # init N(0, 0.05)
    y = conv(torch.randn(2, 3, 9, 10))
    assert y.shape == (2, 5, 5, 5) and y.dtype == torch.float32
    up = WNConvTranspose2d(5, 4)
    assert up(y).shape == (2, 4, 10, 10)


def test_mean_only_batch_norm_training_eval_and_freeze():
    bn = MeanOnlyBatchNorm(3, decay=0.9)
    x = torch.randn(4, 3, 5, 5) + torch.tensor([1.0, -2.0, 3.0]).view(1, 3, 1, 1)
    y = bn(x)
    assert torch.allclose(y.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(bn.running_mean, 0.1 * x.mean(dim=(0, 2, 3)), atol=1e-6)
    freeze_batch_norm(bn, True)
    before = bn.running_mean.clone()
    y = bn(x)
    assert torch.equal(bn.running_mean, before)
    assert torch.allclose(y, x - before.view(1, 3, 1, 1))
    freeze_batch_norm(bn, False)
    bn.eval()
    assert torch.allclose(bn(x), x - before.view(1, 3, 1, 1))


def test_residual_block_and_genconv_shapes():
    torch.manual_seed(0)
    block = ResidualBlock(6, n_convs=3)
    x = torch.randn(2, 6, 8, 8)
    assert block(x).shape == x.shape
    assert GenConv(6, 4, 3, 2)(x).shape == (2, 4, 4, 4)


def test_spectral_norm_conv_has_unit_spectral_norm():
    torch.manual_seed(0)
    conv = SNConv2d(2, 8, 4, 2, padding=1)
    for _ in range(30):  # power iterations run in training forwards
        conv(torch.randn(1, 2, 8, 8))
    w = conv.conv.weight.detach().reshape(8, -1)
    assert float(torch.linalg.matrix_norm(w, ord=2)) == pytest.approx(1.0, rel=0.05)


def test_init_normal():
    torch.manual_seed(0)
    m = init_normal(torch.nn.Conv2d(16, 32, 3), 0.03)
    assert 0.027 < float(m.weight.detach().std()) < 0.033 and float(m.bias.abs().max()) == 0.0


def test_data_init_gives_unit_variance_and_keeps_buffers():
    torch.manual_seed(0)
    g = CompletionGenerator(TINY)
    x = torch.randn(2, 2, 64, 64)
    bufs = {k: v.clone() for k, v in g.named_buffers()}
    data_init(g, x)
    for k, v in g.named_buffers():
        assert torch.equal(v, bufs[k])
    feats = {}
    h = g.outer.embed[0].register_forward_hook(lambda m, i, o: feats.setdefault("o", o))
    g.train()
    g(x)
    h.remove()
    assert float(feats["o"].std(dim=(0, 2, 3)).mean()) == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize("shape", [(64, 64), (50, 70), (33, 97)])
def test_generator_shapes_any_size(shape):
    torch.manual_seed(0)
    g = CompletionGenerator(TINY).eval()
    x = torch.randn(2, 2, *shape)
    out, aux = g(x)
    assert out.shape == (2, 1, *shape) and out.dtype == torch.float32
    assert aux.shape == (2, 1, (shape[0] + 1) // 2, (shape[1] + 1) // 2)
    assert torch.equal(g.complete(x), out)


def test_generator_has_no_biases_and_rejects_bad_input():
    g = CompletionGenerator(TINY)
    assert not any(n.endswith("bias") for n, _ in g.named_parameters())
    with pytest.raises(ValueError):
        g(torch.zeros(1, 3, 32, 32))


def test_networks_deterministic_for_a_seed():
    outs = []
    for _ in range(2):
        torch.manual_seed(5)
        g = CompletionGenerator(TINY)
        d = MultiScaleDiscriminator(TINY)
        x = torch.linspace(-1, 1, 2 * 2 * 64 * 64).reshape(2, 2, 64, 64)
        o, a = g(x)
        s = d([o.detach()[:, :, :16, :16]] * 3)
        outs.append((o, a, *s))
    for u, v in zip(*outs):
        assert torch.equal(u, v)


def test_discriminators_shapes_and_crops():
    import numpy as np

    torch.manual_seed(0)
    d = MultiScaleDiscriminator(TINY)
    assert d.crop_sizes(512) == (70, 140, 280)
    assert d.crop_sizes(64) == (9, 18, 35)
    img = torch.randn(3, 1, 64, 64)
    other = img * 2
    crops = d.crop(np.random.default_rng(0), img, other)
    assert len(crops) == 3
    for a, b in crops:
        assert a.shape == (3, 1, 16, 16) and torch.allclose(b, 2 * a, atol=1e-5)  # same places
    scores = d([a for a, _ in crops])
    assert [s.shape for s in scores] == [(3,)] * 3
    assert Discriminator((8, 16))(torch.randn(2, 1, 70, 70)).shape == (2,)


def test_config_round_trip_and_paper_sizes():
    c = CompletionConfig(width=0.5, adversarial=False)
    assert CompletionConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError):
        CompletionConfig.from_dict({"widht": 1})
    p = CompletionConfig.paper()
    assert p.width == 1.0 and p.inner_blocks == 6 and p.disc_input == 70 and p.disc_crops == (70, 140, 280)
