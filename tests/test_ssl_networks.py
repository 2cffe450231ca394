"""Issue 13 networks: U-Net_B_RF receptive fields, the 70x70 PatchGAN, HRNet, generator names and model files."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fastem.errors import InputError  # noqa: E402
from fastem.nn import load_model, save_model  # noqa: E402
from fastem.nn.hrnet import HRNet, HRNetConfig  # noqa: E402
from fastem.nn.patchgan import PatchGAN, conv_stack_receptive_field, patchgan_output_size  # noqa: E402
from fastem.nn.ssl_models import MODEL_KIND, build_generator, canonical_generator, generator_config  # noqa: E402
from fastem.nn.unet import UNET_VARIANTS, UNet, UNetConfig, receptive_field  # noqa: E402


@pytest.mark.parametrize("name", list(UNET_VARIANTS))
def test_unet_receptive_field_of_the_built_network_is_the_name(name):
    _, blocks, rf = name.split("-")
    net = UNet(UNetConfig.named(name, features=2))
    assert len(net.downs) == int(blocks) and len(net.ups) == int(blocks)
    assert receptive_field(net) == int(rf)


def _gradient_support(net, size=160):
    """Largest row extent, over one period of output rows, of input pixels that reach an output pixel."""
    net = net.double().eval()
    torch.manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.uniform_(0.1, 1.0)       # positive weights: no cancellation hides a path
    x = torch.rand(1, 1, size, size, dtype=torch.double, requires_grad=True)
    y = net(x)
    best = 0
    for r in range(size // 2, size // 2 + net.multiple):
        (g,) = torch.autograd.grad(y[0, 0, r, size // 2], x, retain_graph=True)
        rows = torch.nonzero(g[0, 0].abs().sum(1) > 0)
        best = max(best, int(rows.max() - rows.min() + 1))
    return best


@pytest.mark.parametrize("name,exact", [("unet-2-44", 44), ("unet-3-96", 100)])
def test_exact_receptive_field_matches_the_gradient_support(name, exact):
    net = UNet(UNetConfig.named(name, features=2))
    assert receptive_field(net, exact=True) == exact
    assert _gradient_support(net) == exact


def test_receptive_field_reads_the_layers_not_the_name():
    net = UNet(UNetConfig(pools=(2, 2), features=2))
    assert receptive_field(net) == 44
    net.pools[1] = torch.nn.MaxPool2d(4, 4)        # rebuilt layer: the number follows it
    assert receptive_field(net) == receptive_field(UNet(UNetConfig(pools=(2, 4), features=2)))
    assert receptive_field(net) != 44


@pytest.mark.parametrize("shape", [(37, 50), (64, 64)])
def test_unet_and_hrnet_take_any_size(shape):
    torch.manual_seed(0)
    x = torch.randn(2, 1, *shape)
    for net in (UNet(UNetConfig.named("unet-4-424", features=2)),
                HRNet(HRNetConfig(width=4, stem_features=8, head_features=8, blocks=1))):
        y = net.eval()(x)
        assert y.shape == (2, 1, *shape)
        assert torch.isfinite(y).all()


def test_patchgan_is_70x70_with_a_30x30_map_for_256_px():
    d = PatchGAN(in_channels=2, features=8)
    assert conv_stack_receptive_field(d) == 70
    assert patchgan_output_size(256) == 30 and patchgan_output_size(256, d) == 30
    x = torch.zeros(1, 1, 256, 256)
    assert d(x, x).shape == (1, 1, 30, 30)
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 16, 32, 64, 1]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1, 1]
    # no norm after the first convolution, leaky ReLU 0.2 everywhere but the last layer
    assert isinstance(d.layers[0][1], torch.nn.Identity) and isinstance(d.layers[1][1], torch.nn.BatchNorm2d)
    assert d.layers[0][2].negative_slope == pytest.approx(0.2)


def test_hrnet_has_four_branches_and_no_full_resolution_shortcut():
    net = HRNet(HRNetConfig(width=4, stem_features=8, head_features=8, blocks=1))
    assert net.widths == [4, 8, 16, 32]
    feats = {}

    def hook(module, inputs, output):
        feats["stem"] = output.shape

    net.stem.register_forward_hook(hook)
    net(torch.zeros(1, 1, 64, 64))
    assert feats["stem"][-2:] == (16, 16)        # the network works from 1/4 resolution on


def test_generator_names_and_config_round_trip(tmp_path):
    assert canonical_generator("U-Net_3_176") == "unet-3-176" and canonical_generator("HRNet") == "hrnet"
    with pytest.raises(InputError, match="unknown generator"):
        canonical_generator("unet-3-177")
    cfg = generator_config("unet-3-176", width=3)
    net = build_generator(cfg)
    assert receptive_field(net) == 176 and net.widths[0] == 3
    path = save_model(tmp_path / "g.pt", net, kind=MODEL_KIND, config=cfg, record={"task": "pretext"})
    back, info = load_model(path, kind=MODEL_KIND)
    assert info["record"]["task"] == "pretext"
    for (k, a), (_, b) in zip(net.state_dict().items(), back.state_dict().items()):
        assert torch.equal(a, b), k
    with pytest.raises(InputError, match="expected a 'completion-gan'"):
        load_model(path, kind="completion-gan")
    np.testing.assert_equal(sorted(generator_config("hrnet", width=6)["net"]["modules"]), [1, 1, 1])


def test_ssl_and_nn_library_code_draws_no_progress_bars():
    """Only the CLI draws bars (issue 18): fastem/ssl and fastem/nn import neither tqdm nor fastem.progress."""
    import ast
    from pathlib import Path

    import fastem

    root = Path(fastem.__file__).parent
    files = sorted((root / "ssl").glob("*.py")) + sorted((root / "nn").glob("*.py"))
    assert len(files) > 10
    offenders = []
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mod = node.module or ""
                names = [mod] + [f"{mod}.{a.name}" for a in node.names]
            if any(n.split(".")[0] == "tqdm" or n.startswith("fastem.progress") for n in names):
                offenders.append(f"{f.name}:{node.lineno}")
    assert offenders == []
