"""Model files (round trip, one-line errors, use checks) and tiled inference."""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fastem.errors import InputError, OutputExistsError  # noqa: E402
from fastem.nn import (MODEL_KIND, CompletionConfig, CompletionGenerator, ModelUseWarning,  # noqa: E402
                       check_model_use, complete_partial_scans, load_model, read_model_record, register_kind,
                       save_model, tiled_apply)
from fastem.nn.inference import tile_starts  # noqa: E402

TINY = CompletionConfig(width=0.125, inner_blocks=1, outer_blocks=1, disc_input=16)


@pytest.fixture
def model_file(tmp_path):
    torch.manual_seed(0)
    g = CompletionGenerator(TINY)
    g.train()
    g(torch.randn(2, 2, 32, 32))                   # move the BN running means off zero
    path = tmp_path / "m.pt"
    save_model(path, g, kind=MODEL_KIND, config=TINY.to_dict(),
               record={"path": "spiral", "coverage": 0.05, "crop": 32, "steps": 3, "command": "fastem scan train"})
    return g, path


def test_round_trip(model_file):
    g, path = model_file
    g2, info = load_model(path, kind=MODEL_KIND)
    assert not g2.training
    assert info["kind"] == MODEL_KIND and info["record"]["coverage"] == 0.05
    assert CompletionConfig.from_dict(info["config"]) == TINY
    g.eval()
    x = torch.randn(1, 2, 40, 48)
    assert torch.equal(g.complete(x), g2.complete(x))
    assert read_model_record(path)["record"]["command"] == "fastem scan train"


def test_model_errors(model_file, tmp_path):
    g, path = model_file
    with pytest.raises(InputError, match="no such model file"):
        load_model(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(InputError, match="not a readable fastem model") as e:
        load_model(bad)
    assert "\n" not in str(e.value)
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError, match="not a readable"):
        load_model(trunc)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(InputError, match="not a fastem model file"):
        load_model(other)
    register_kind("test-dummy", lambda cfg: torch.nn.Linear(2, 2))
    dummy = tmp_path / "dummy.pt"
    save_model(dummy, torch.nn.Linear(2, 2), kind="test-dummy", config={})
    with pytest.raises(InputError, match="is a 'test-dummy' model, expected a 'completion-gan'"):
        load_model(dummy, kind=MODEL_KIND)
    wrong = tmp_path / "wrong.pt"
    save_model(wrong, torch.nn.Linear(2, 2), kind=MODEL_KIND, config=TINY.to_dict())
    with pytest.raises(InputError, match="do not fit the recorded architecture"):
        load_model(wrong)
    with pytest.raises(OutputExistsError):
        save_model(path, g, kind=MODEL_KIND, config=TINY.to_dict())
    with pytest.raises(InputError, match="unknown model kind"):
        save_model(tmp_path / "x.pt", g, kind="nope", config={})
    with pytest.raises(InputError, match="overwrite the input"):
        save_model(path, g, kind=MODEL_KIND, config=TINY.to_dict(), overwrite=True, inputs=[path])


def test_use_outside_training_conditions_warns(model_file):
    _, path = model_file
    info = read_model_record(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_model_use(info, path="spiral", coverage=0.05) == []
    with pytest.warns(ModelUseWarning, match="trained on spiral scans, applied to grid"):
        check_model_use(info, path="grid", coverage=0.05)
    with pytest.warns(ModelUseWarning, match="coverage"):
        check_model_use(info, path="spiral", coverage=0.01)


def test_tile_starts_cover_the_axis():
    assert tile_starts(100, 128, 16) == [0]
    s = tile_starts(300, 128, 32)
    assert s[0] == 0 and s[-1] == 300 - 128 and all(b - a <= 96 for a, b in zip(s, s[1:]))


def test_tiled_apply_blends_exactly_for_a_pointwise_network():
    x = np.random.default_rng(0).standard_normal((3, 2, 70, 150)).astype(np.float32)
    y = tiled_apply(lambda t: 2 * t[:, :1] + 1, x, tile=32, overlap=8, batch=5)
    assert y.shape == (3, 1, 70, 150) and y.dtype == np.float32
    assert np.allclose(y, 2 * x[:, :1] + 1, atol=1e-5)


def test_dihedral_transforms_follow_the_kernel_convention_and_invert():
    """The ensemble's torch transforms are the training augmentations' (kernels.scan_geometry.dihedral),
    and each inverse undoes its transform, on a non-square random array."""
    from fastem.kernels.scan_geometry import dihedral
    from fastem.nn.inference import dihedral_transform, inverse_dihedral_index, inverse_dihedral_transform

    a = np.random.default_rng(3).standard_normal((2, 3, 5, 7))
    for t in range(8):
        y = dihedral_transform(torch.from_numpy(a), t)
        assert np.array_equal(y.numpy(), dihedral(a, t))
        assert np.array_equal(inverse_dihedral_transform(y, t).numpy(), a)
        assert inverse_dihedral_index(inverse_dihedral_index(t)) == t
    assert [inverse_dihedral_index(t) for t in range(8)] == [0, 1, 2, 3, 4, 6, 5, 7]


@pytest.mark.parametrize("ensemble", [2, 4, 8])
@pytest.mark.parametrize("shape,tile", [((2, 2, 37, 53), 512), ((1, 2, 70, 45), 32)])
def test_tiled_apply_ensemble_is_the_mean_of_the_back_transformed_outputs(ensemble, shape, tile):
    """A network that is not equivariant (a fixed random 3x3 convolution plus a position ramp):
    ensemble=n equals the float64 mean over t < n of inverse_t(net(transform_t(x))), whole or by
    tiles, on odd non-square sizes."""
    from fastem.kernels.scan_geometry import dihedral

    rng = np.random.default_rng(ensemble)
    x = rng.standard_normal(shape).astype(np.float32)
    weight = torch.from_numpy(rng.standard_normal((1, 2, 3, 3)).astype(np.float32))

    def net(t):
        ramp = torch.arange(t.shape[-1], dtype=t.dtype) / t.shape[-1]
        return torch.nn.functional.conv2d(t, weight, padding=1) + ramp

    got = tiled_apply(net, x, tile=tile, overlap=8, batch=3, ensemble=ensemble)
    ref = np.zeros((shape[0], 1, *shape[2:]))
    inverse = [0, 1, 2, 3, 4, 6, 5, 7]
    for t in range(ensemble):
        xt = np.ascontiguousarray(dihedral(x, t))
        yt = tiled_apply(net, xt, tile=tile, overlap=8, batch=3).astype(np.float64)
        ref += dihedral(yt, inverse[t])
    ref /= ensemble
    assert got.shape == ref.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, atol=1e-5)
    single = tiled_apply(net, x, tile=tile, overlap=8, batch=3)
    assert np.abs(got - single).max() > 1e-2          # the ensemble changed something: not a no-op


def test_tiled_apply_ensemble_of_an_equivariant_network_changes_nothing():
    x = np.random.default_rng(4).standard_normal((2, 2, 41, 30)).astype(np.float32)
    y = tiled_apply(lambda t: 3 * t[:, 1:] - 0.5, x, tile=16, overlap=4, ensemble=8)
    np.testing.assert_allclose(y, 3 * x[:, 1:] - 0.5, atol=1e-5)


@pytest.mark.parametrize("bad", [0, 3, 16, 2.0, True, "8", None])
def test_tiled_apply_refuses_other_ensemble_sizes(bad):
    x = np.ones((1, 1, 8, 8), np.float32)
    with pytest.raises(InputError, match="ensemble must be one of 1, 2, 4, 8"):
        tiled_apply(lambda t: t, x, ensemble=bad)


def test_complete_partial_scans_ensemble(model_file):
    """ensemble=8 on a completion network: finite, in [-1, 1], different from one pass, and equal to
    the clipped mean of the 8 back-transformed single passes."""
    from fastem.kernels.scan_geometry import dihedral

    g, _ = model_file
    rng = np.random.default_rng(2)
    partial = rng.uniform(-1, 1, (2, 48, 40)).astype(np.float32)
    path = (rng.random((2, 48, 40)) < 0.1).astype(np.float32)
    ens = complete_partial_scans(g, partial, path, ensemble=8)
    assert ens.shape == partial.shape and np.isfinite(ens).all() and np.abs(ens).max() <= 1
    inverse = [0, 1, 2, 3, 4, 6, 5, 7]
    ref = np.mean([dihedral(complete_partial_scans(g, np.ascontiguousarray(dihedral(partial, t)),
                                                   np.ascontiguousarray(dihedral(path, t)), clip=False), inverse[t])
                   for t in range(8)], axis=0)
    single = complete_partial_scans(g, partial, path)
    scale = float(np.std(single))                      # an untrained network's outputs are small (~1e-4)
    np.testing.assert_allclose(ens, np.clip(ref, -1, 1), atol=1e-3 * scale)
    assert np.abs(ens - single).max() > scale


def test_complete_partial_scans_any_size_and_tiling(model_file):
    g, _ = model_file
    rng = np.random.default_rng(1)
    partial = rng.uniform(-1, 1, (2, 80, 120)).astype(np.float32)
    path = (rng.random((2, 80, 120)) < 0.1).astype(np.float32)
    whole = complete_partial_scans(g, partial, path, tile=512)
    assert whole.shape == (2, 80, 120) and whole.dtype == np.float32 and np.abs(whole).max() <= 1
    single = complete_partial_scans(g, partial[1], path[1], tile=512)
    assert np.allclose(single, whole[1], atol=1e-5)
    tiled = complete_partial_scans(g, partial, path, tile=64, overlap=16, batch=3)
    assert tiled.shape == whole.shape
    assert np.sqrt(np.mean((tiled - whole) ** 2)) < 0.05 * max(np.std(whole), 1e-3) + 0.05
    with pytest.raises(InputError):
        complete_partial_scans(g, partial, path[:1])


def test_half_precision_storage_round_trip(tmp_path):
    """float16 storage halves the file; the loaded float32 network equals the rounded weights."""
    from fastem.nn.model import repack_model

    torch.manual_seed(0)
    gen = CompletionGenerator(TINY)
    full = save_model(tmp_path / "f32.pt", gen, kind=MODEL_KIND, config=TINY.to_dict(), record={"a": 1})
    half = repack_model(full, tmp_path / "f16.pt")
    assert half.stat().st_size < 0.6 * full.stat().st_size
    m16, info = load_model(half, kind=MODEL_KIND)
    assert info["record"]["weights_dtype"] == "float16" and info["record"]["a"] == 1
    for (k, a), (_, b) in zip(gen.state_dict().items(), m16.state_dict().items()):
        assert b.dtype == a.dtype
        if a.is_floating_point():
            torch.testing.assert_close(b, a.half().float(), rtol=0, atol=0)
    with pytest.raises(InputError, match="weights_dtype"):
        save_model(tmp_path / "x.pt", gen, kind=MODEL_KIND, config=TINY.to_dict(), weights_dtype="int8")
