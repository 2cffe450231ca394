"""``fastem scan complete --method model`` (issue 12 section 3): the completion GAN from the CLI on
a tiny model, the packaged default model, model-file errors, the trained-for warning, and real
acquisitions given as an image stack plus a ``--path-mask``."""

import hashlib

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")

from fastem.cli.main import app  # noqa: E402
from fastem.io.process import read_process_group  # noqa: E402
from fastem.nn import default_model  # noqa: E402
from fastem.nn import inference  # noqa: E402
from fastem.nn.completion import CompletionConfig  # noqa: E402
from fastem.nn.inference import complete_partial_scans  # noqa: E402
from fastem.nn.model import load_model, read_model_record  # noqa: E402
from fastem.nn.train_completion import train_completion  # noqa: E402
from fastem.scan.baselines import complete as complete_baseline  # noqa: E402
from fastem.scan.job import normalise_acquired, to_intensity  # noqa: E402
from fastem.scan.paths import spiral_path  # noqa: E402


H, W = 96, 80   # not multiples of 32: the generator pads internally


def run(*args):
    return CliRunner().invoke(app, ["--device", "cpu", "--quiet", *map(str, args)])


def one_error_line(r) -> str:
    """The run failed with exit 1 and one error line (warnings printed before it aside)."""
    lines = [ln for ln in r.output.splitlines() if ln.strip() and not ln.startswith("fastem: warning:")]
    assert r.exit_code == 1, r.output
    assert len(lines) == 1 and lines[0].startswith("fastem: error:"), r.output
    assert "Traceback" not in r.output
    return lines[0]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A completion GAN trained for 4 steps on 32 px crops (spiral, 1/20): seconds on a CPU."""
    out = tmp_path_factory.mktemp("model") / "tiny.pt"
    torch.manual_seed(0)
    train_completion(out, steps=4, crop=32, batch=2, synthetic=4, val_count=2, validate_every=2,
                     checkpoint_every=2, config=CompletionConfig(width=0.1), path="spiral", coverage=0.05)
    return out


@pytest.fixture(scope="module")
def images_h5(tmp_path_factory):
    from fastem.data.stem import generate_stem

    path = tmp_path_factory.mktemp("img") / "imgs.h5"
    with h5py.File(path, "w") as f:
        f["stack"] = generate_stem(2, max(H, W), seed=5, dose=None)[:, :H, :W]
    return path


def simulate(images_h5, out, kind="spiral", coverage=0.05):
    r = run("scan", "simulate", f"{images_h5}:/stack", "-o", out, "--path", kind, "--coverage", coverage, "--seed", 1)
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="module")
def scans_h5(images_h5, tmp_path_factory):
    return simulate(images_h5, tmp_path_factory.mktemp("scans") / "scans.h5")


def read(path, name):
    with h5py.File(path, "r") as f:
        return f[name][()]


def provenance_and_results(path):
    with h5py.File(path, "r") as f:
        prov, results, _ = read_process_group(f["process/fastem"])
    return prov, results


# --------------------------------------------------------------------------------------------
# simulated scans
# --------------------------------------------------------------------------------------------
def test_model_completion_layout_metrics_and_provenance(tmp_path, tiny_model, scans_h5):
    out = tmp_path / "done.h5"
    before = scans_h5.read_bytes()
    r = run("scan", "complete", scans_h5, "-o", out, "--method", "model", "--model", tiny_model)
    assert r.exit_code == 0, r.output
    assert scans_h5.read_bytes() == before
    done = read(out, "scan/completed")
    assert done.shape == (2, H, W) and done.dtype == np.float32
    assert np.isfinite(done).all() and done.min() >= -1 and done.max() <= 1
    # exactly what the library's inference gives on the same inputs
    model, _ = load_model(tiny_model)
    partial, path, truth = (read(scans_h5, f"scan/{k}") for k in ("partial", "path", "truth"))
    np.testing.assert_allclose(done, complete_partial_scans(model, partial, path), atol=1e-5)
    with h5py.File(out, "r") as f:
        attrs = dict(f["scan/completed"].attrs)
    digest = hashlib.sha256(tiny_model.read_bytes()).hexdigest()
    assert attrs["method"] == "model" and attrs["model"] == "tiny.pt" and attrs["model_sha256"] == digest
    prov, results = provenance_and_results(out)
    rmse = np.sqrt(np.mean((done.astype(np.float64) - truth) ** 2, axis=(1, 2))) / 2   # on [0, 1] intensities
    np.testing.assert_allclose(results["rmse"], rmse, rtol=1e-4)
    assert results["ssim"].shape == (2,) and np.all(results["ssim"] < 1)
    cfg = prov["configuration"]
    assert cfg["method"] == "model" and cfg["model"]["file"] == "tiny.pt" and cfg["model"]["sha256"] == digest
    assert cfg["model"]["record"] == read_model_record(tiny_model)["record"] and cfg["model"]["packaged"] is False


def test_tiles_and_batches_do_not_change_the_completion(tmp_path, tiny_model, scans_h5):
    """Images larger than --tile run as blended overlapping tiles (the library's tiled_apply);
    --batch only groups the work."""
    model, _ = load_model(tiny_model)
    partial, path = read(scans_h5, "scan/partial"), read(scans_h5, "scan/path")
    results = {}
    for tile, batch in ((64, 1), (64, 3), (512, 1), (512, 4)):
        out = tmp_path / f"t{tile}_{batch}.h5"
        r = run("scan", "complete", scans_h5, "-o", out, "--method", "model", "--model", tiny_model,
                "--tile", tile, "--batch", batch)
        assert r.exit_code == 0, r.output
        results[tile, batch] = read(out, "scan/completed")
    np.testing.assert_allclose(results[64, 1], complete_partial_scans(model, partial, path, tile=64), atol=1e-5)
    np.testing.assert_allclose(results[64, 1], results[64, 3], atol=1e-5)
    np.testing.assert_allclose(results[512, 1], results[512, 4], atol=1e-5)
    assert np.abs(results[64, 1] - results[512, 1]).max() > 1e-4   # tiling is really in use


def test_self_ensemble_completion_matches_the_library_and_is_recorded(tmp_path, tiny_model, scans_h5):
    """--ensemble 8: the library's 8-transform self-ensemble, recorded on the dataset and in the provenance."""
    out = tmp_path / "ens.h5"
    r = run("scan", "complete", scans_h5, "-o", out, "--method", "model", "--model", tiny_model, "--ensemble", 8)
    assert r.exit_code == 0, r.output
    model, _ = load_model(tiny_model)
    partial, path = read(scans_h5, "scan/partial"), read(scans_h5, "scan/path")
    done = read(out, "scan/completed")
    np.testing.assert_allclose(done, complete_partial_scans(model, partial, path, ensemble=8), atol=1e-5)
    assert np.abs(done - complete_partial_scans(model, partial, path)).max() > 1e-4
    with h5py.File(out, "r") as f:
        assert f["scan/completed"].attrs["ensemble"] == 8
    prov, _ = provenance_and_results(out)
    assert prov["configuration"]["ensemble"] == 8
    one = tmp_path / "one.h5"
    assert run("scan", "complete", scans_h5, "-o", one, "--method", "model", "--model", tiny_model).exit_code == 0
    with h5py.File(one, "r") as f:
        assert f["scan/completed"].attrs["ensemble"] == 1


def test_default_model_is_the_packaged_file(tmp_path, tiny_model, scans_h5, monkeypatch):
    path = default_model.default_model_path()
    assert path.name == "completion_spiral_1-20.pt" and path.parent.name == "models"
    assert (path.parent / "__init__.py").is_file()   # the package that ships it as package data
    monkeypatch.setattr(default_model, "default_model_path", lambda: tiny_model)
    out = tmp_path / "default.h5"
    r = run("scan", "complete", scans_h5, "-o", out, "--method", "model")
    assert r.exit_code == 0, r.output
    prov, _ = provenance_and_results(out)
    assert prov["configuration"]["model"]["packaged"] is True and prov["configuration"]["model"]["file"] == "tiny.pt"


def test_default_model_missing_is_a_clear_error(tmp_path, scans_h5, monkeypatch):
    monkeypatch.setattr(default_model, "default_model_path", lambda: tmp_path / "models" / "absent.pt")
    line = one_error_line(run("scan", "complete", scans_h5, "-o", tmp_path / "o.h5", "--method", "model"))
    assert "no packaged completion model" in line and "absent.pt" in line
    assert "fastem scan train" in line and "--model" in line
    assert not (tmp_path / "o.h5").exists()


def _bad_model(tmp_path, tiny_model, case):
    p = tmp_path / f"{case}.pt"
    if case == "missing":
        return p
    if case == "truncated":
        data = tiny_model.read_bytes()
        p.write_bytes(data[:len(data) // 2])
    elif case == "text":
        p.write_text("not a model\n")
    elif case == "foreign":       # a PyTorch file, not a fastem model
        torch.save({"weights": torch.zeros(3)}, p)
    elif case == "other-kind":    # a fastem model of another network kind
        torch.save({"format": "fastem-model", "version": 1, "kind": "other-net", "config": {}, "record": {},
                    "state_dict": {}}, p)
    elif case == "wrong-weights":  # the header is right, the weights do not fit the architecture
        payload = torch.load(tiny_model, weights_only=True)
        payload["state_dict"] = {k: v[..., :1] if v.dim() else v for k, v in payload["state_dict"].items()}
        torch.save(payload, p)
    return p


@pytest.mark.parametrize("case,needle", [
    ("missing", "no such model file"),
    ("truncated", "not a readable fastem model file"),
    ("text", "not a readable fastem model file"),
    ("foreign", "not a fastem model file"),
    ("other-kind", "'other-net' model, expected a 'completion-gan' model"),
    ("wrong-weights", "do not fit the recorded architecture"),
])
def test_model_file_errors_are_one_line_naming_the_file(tmp_path, tiny_model, scans_h5, case, needle):
    bad = _bad_model(tmp_path, tiny_model, case)
    out = tmp_path / "o.h5"
    line = one_error_line(run("scan", "complete", scans_h5, "-o", out, "--method", "model", "--model", bad))
    assert needle in line and bad.name in line
    assert not out.exists()


@pytest.mark.parametrize("args,needle", [
    (["--model", "MODEL"], "--model is only used with --method model"),
    (["--tile", "128"], "--tile is only used with --method model"),
    (["--batch", "2"], "--batch is only used with --method model"),
    (["--ensemble", "8"], "--ensemble is only used with --method model"),
])
def test_model_options_need_method_model(tmp_path, tiny_model, scans_h5, args, needle):
    args = [str(tiny_model) if a == "MODEL" else a for a in args]
    line = one_error_line(run("scan", "complete", scans_h5, "-o", tmp_path / "o.h5", "--method", "linear", *args))
    assert needle in line


@pytest.mark.parametrize("args,flag", [(["--tile", "16"], "--tile"), (["--batch", "0"], "--batch"),
                                       (["--model", "FOLDER"], "--model"), (["--ensemble", "3"], "--ensemble")])
def test_bad_model_options_are_usage_errors(tmp_path, tiny_model, scans_h5, args, flag):
    (tmp_path / "folder.pt").mkdir()
    args = [str(tmp_path / "folder.pt") if a == "FOLDER" else a for a in args]
    r = run("scan", "complete", scans_h5, "-o", tmp_path / "o.h5", "--method", "model", *args)
    assert r.exit_code == 2 and flag in r.output and "Traceback" not in r.output, r.output


def test_model_used_outside_its_training_warns(tmp_path, tiny_model, images_h5):
    grid = simulate(images_h5, tmp_path / "grid.h5", kind="grid", coverage=0.2)
    r = CliRunner().invoke(app, ["--device", "cpu", "--quiet", "scan", "complete", str(grid), "-o",
                                 str(tmp_path / "g.h5"), "--method", "model", "--model", str(tiny_model)])
    assert r.exit_code == 0, r.output
    warn = [ln for ln in r.output.splitlines() if ln.startswith("fastem: warning:")]
    assert any("model tiny.pt: trained on spiral scans, applied to grid scans" in ln for ln in warn), r.output
    assert any("trained at coverage 0.05, applied at 0.2" in ln for ln in warn), r.output
    assert (tmp_path / "g.h5").is_file()


def test_model_on_matching_scans_does_not_warn(tmp_path, tiny_model, scans_h5):
    r = run("scan", "complete", scans_h5, "-o", tmp_path / "m.h5", "--method", "model", "--model", tiny_model)
    assert r.exit_code == 0 and "warning" not in r.output, r.output


def test_without_torch_the_model_method_says_how_to_install(tmp_path, scans_h5, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)   # `import torch` raises ImportError
    line = one_error_line(run("scan", "complete", scans_h5, "-o", tmp_path / "o.h5", "--method", "model"))
    assert "needs PyTorch" in line and "fastem[torch]" in line


# --------------------------------------------------------------------------------------------
# real acquisitions: IN + --path-mask
# --------------------------------------------------------------------------------------------
@pytest.fixture
def acquisition(tmp_path):
    """Two 64x64 'acquired' frames in detector counts (offset 1000, ~0..400 counts), a spiral mask."""
    from fastem.data.stem import generate_stem

    rng = np.random.default_rng(7)
    frames = (1000 + 400 * generate_stem(2, 64, seed=9, dose=None) + rng.normal(0, 2, (2, 64, 64))).astype(np.float32)
    mask = spiral_path((64, 64), 0.1)[0]
    src = tmp_path / "acq.h5"
    with h5py.File(src, "w") as f:
        f["frames"] = frames
        f["mask"] = mask
        f["masks"] = np.stack([mask, mask[::-1]])
    return src, frames, mask


def _identity(model, partial, path, **kw):
    """Stub network: returns its input (the infilled partial scan), so the intensity mapping is exact."""
    return np.asarray(partial, np.float32).copy()


def test_path_mask_round_trip_of_the_intensity_scale(tmp_path, tiny_model, acquisition, monkeypatch):
    src, frames, mask = acquisition
    monkeypatch.setattr(inference, "complete_partial_scans", _identity)
    out = tmp_path / "acq_done.h5"
    r = run("scan", "complete", f"{src}:/frames", "--path-mask", f"{src}:/mask", "-o", out, "--method", "model",
            "--model", tiny_model)
    assert r.exit_code == 0, r.output
    with h5py.File(out, "r") as f:
        done, inten = f["scan/completed"][()], f["scan/completed_intensity"][()]
        scale = f["scan/completed_intensity"].attrs
        lo, hi = scale["intensity_min"], scale["intensity_max"]
        partial, path = f["scan/partial"][()], f["scan/path"][()]
        dwell = f["scan"].attrs["dwell_fraction"]
    s = mask > 0
    for i in range(2):
        assert lo[i] == pytest.approx(frames[i][s].min()) and hi[i] == pytest.approx(frames[i][s].max())
        # the sampled pixels come back exactly in the input's scale; [min, max] -> [-1, 1]
        np.testing.assert_allclose(inten[i][s], frames[i][s], rtol=1e-6, atol=1e-3)
        assert done[i][s].min() == pytest.approx(-1) and done[i][s].max() == pytest.approx(1)
        np.testing.assert_array_equal(path[i], mask)
        np.testing.assert_array_equal(partial[i], normalise_acquired(frames[i], mask)[0])
    np.testing.assert_allclose(dwell, mask.mean())
    # unsampled pixels take their nearest sample's value (the training input's infill)
    assert len(np.unique(inten[0])) <= s.sum()


def test_path_mask_all_ones_reproduces_the_input(tmp_path, tiny_model, acquisition, monkeypatch):
    src, frames, _ = acquisition
    ones = tmp_path / "ones.h5"
    with h5py.File(ones, "w") as f:
        f["m"] = np.ones((64, 64), np.float32)
    monkeypatch.setattr(inference, "complete_partial_scans", _identity)
    out = tmp_path / "ones_done.h5"
    r = run("scan", "complete", f"{src}:/frames", "--path-mask", f"{ones}:/m", "-o", out, "--method", "model",
            "--model", tiny_model)
    assert r.exit_code == 0, r.output
    np.testing.assert_allclose(read(out, "scan/completed_intensity"), frames, rtol=1e-6, atol=1e-3)


def test_path_mask_with_the_tiny_model(tmp_path, tiny_model, acquisition):
    """The real network: completion in [-1, 1] and its image in the input's scale, per-image masks."""
    src, frames, mask = acquisition
    out = tmp_path / "real.h5"
    r = run("scan", "complete", f"{src}:/frames", "--path-mask", f"{src}:/masks", "-o", out, "--method", "model",
            "--model", tiny_model)
    assert r.exit_code == 0, r.output
    with h5py.File(out, "r") as f:
        done, inten = f["scan/completed"][()], f["scan/completed_intensity"][()]
        scale = f["scan/completed_intensity"].attrs
        lo, hi = scale["intensity_min"], scale["intensity_max"]
        np.testing.assert_array_equal(f["scan/path"][1], mask[::-1])
    model, _ = load_model(tiny_model)
    p1, lo1, hi1 = normalise_acquired(frames[1], mask[::-1])
    np.testing.assert_allclose(done[1], complete_partial_scans(model, p1, mask[::-1]), atol=1e-5)
    np.testing.assert_allclose(inten[1], to_intensity(done[1], lo1, hi1), rtol=1e-6)
    assert (lo[1], hi[1]) == pytest.approx((lo1, hi1))
    assert np.all(inten >= lo[:, None, None] - 1e-3) and np.all(inten <= hi[:, None, None] + 1e-3)
    _, results = provenance_and_results(out)
    assert "rmse" not in results and results["dwell_fraction"].shape == (2,)
    # the masks' dose fraction (about 0.1) is not the model's 0.05; an acquisition has no path type
    assert "fastem: warning: model tiny.pt: trained at coverage 0.05, applied at 0.099" in r.output, r.output
    assert "trained on spiral" not in r.output


def test_path_mask_with_a_baseline_matches_the_library(tmp_path, acquisition):
    src, frames, mask = acquisition
    out = tmp_path / "lin.h5"
    r = run("scan", "complete", f"{src}:/frames", "--path-mask", f"{src}:/mask", "-o", out, "--method", "linear")
    assert r.exit_code == 0, r.output
    p0, lo0, hi0 = normalise_acquired(frames[0], mask)
    expect = complete_baseline(p0, mask, "linear")
    done = read(out, "scan/completed")
    np.testing.assert_allclose(done[0], expect, atol=1e-6)
    np.testing.assert_allclose(read(out, "scan/completed_intensity")[0], to_intensity(expect, lo0, hi0), rtol=1e-6)


def test_path_mask_tiff_binarised_with_a_warning(tmp_path, tiny_model, acquisition, monkeypatch):
    tifffile = pytest.importorskip("tifffile")
    _, frames, mask = acquisition
    img, msk = tmp_path / "frame.tif", tmp_path / "mask.tif"
    tifffile.imwrite(img, frames[0].astype(np.uint16))
    tifffile.imwrite(msk, (mask * 255).astype(np.uint8))   # a 0/255 mask image
    monkeypatch.setattr(inference, "complete_partial_scans", _identity)
    out = tmp_path / "tif.h5"
    r = CliRunner().invoke(app, ["--device", "cpu", "--quiet", "scan", "complete", str(img), "--path-mask", str(msk),
                                 "-o", str(out), "--method", "model", "--model", str(tiny_model)])
    assert r.exit_code == 0, r.output
    assert "fastem: warning:" in r.output and "binarised" in r.output and "mask.tif" in r.output
    with h5py.File(out, "r") as f:
        assert f["scan/completed"].shape == (1, 64, 64)
        np.testing.assert_array_equal(f["scan/path"][0], mask)
        s = mask > 0
        np.testing.assert_allclose(f["scan/completed_intensity"][0][s], frames[0].astype(np.uint16)[s], atol=1e-2)


def test_fractional_dwell_mask_is_used_as_dwell(tmp_path, acquisition):
    """Mask values in [0, 1] are the dwell the network (and the baselines' dwell correction) see,
    as /scan/path of a simulation; the samples' values are the detected signal as they are."""
    src, frames, mask = acquisition
    frac = tmp_path / "frac.h5"
    with h5py.File(frac, "w") as f:
        f["m"] = mask * 0.5
    out = tmp_path / "frac_done.h5"
    r = run("scan", "complete", f"{src}:/frames", "--path-mask", f"{frac}:/m", "-o", out, "--method", "nearest")
    assert r.exit_code == 0 and "warning" not in r.output, r.output
    np.testing.assert_array_equal(read(out, "scan/path")[0], mask * 0.5)
    p0, lo0, hi0 = normalise_acquired(frames[0], mask)   # the normalisation does not depend on the dwell value
    np.testing.assert_array_equal(read(out, "scan/partial")[0], p0)
    np.testing.assert_allclose(read(out, "scan/completed")[0], complete_baseline(p0, mask * 0.5, "nearest"),
                               atol=1e-6)


@pytest.mark.parametrize("case,needle", [
    ("shape", "does not match the images"),
    ("count", "does not match the images"),
    ("nan-sample", "NaN or infinite value(s) at sampled pixels"),
    ("zero", "all zero"),
    ("negative", "negative mask value"),
    ("nan-mask", "NaN or infinite mask value"),
])
def test_path_mask_refusals_name_the_flag_or_file(tmp_path, tiny_model, acquisition, case, needle):
    src, frames, mask = acquisition
    bad = tmp_path / "bad.h5"
    image_ref, mask_ref = f"{src}:/frames", f"{bad}:/m"
    with h5py.File(bad, "w") as f:
        if case == "shape":
            f["m"] = mask[:, :60]
        elif case == "count":
            f["m"] = np.stack([mask] * 3)
        elif case == "nan-sample":
            img = frames.copy()
            img[1][mask > 0] = np.where(np.arange((mask > 0).sum()) == 3, np.nan, img[1][mask > 0])
            img[0][mask == 0] = np.nan      # NaN off the path is never used: not an error
            f["img"] = img
            f["m"] = mask
            image_ref = f"{bad}:/img"
        elif case == "zero":
            f["m"] = np.zeros_like(mask)
        elif case == "negative":
            f["m"] = mask - 0.5
        elif case == "nan-mask":
            m = mask.copy()
            m[3, 3] = np.nan
            f["m"] = m
    out = tmp_path / "o.h5"
    for method in ("linear", "model"):
        extra = ["--model", str(tiny_model)] if method == "model" else []
        line = one_error_line(run("scan", "complete", image_ref, "--path-mask", mask_ref, "-o", out, "--method",
                                  method, *extra))
        assert needle in line, line
        if case == "nan-sample":
            assert "bad.h5:/img: image 1" in line and "1 NaN" in line
        else:
            assert "--path-mask" in line and "bad.h5" in line
        assert not out.exists()


def test_normalise_acquired_maps_the_samples_range(tmp_path):
    img = np.array([[5.0, 7.0], [9.0, 100.0]])
    m = np.array([[1.0, 0.0], [1.0, 0.0]])
    partial, lo, hi = normalise_acquired(img, m)
    assert (lo, hi) == (5.0, 9.0)   # the unsampled 100 is not used
    np.testing.assert_array_equal(partial, [[-1, -1], [1, 1]])   # nearest-sample infill
    np.testing.assert_allclose(to_intensity(partial, lo, hi), [[5, 5], [9, 9]])
    constant, lo, hi = normalise_acquired(np.full((3, 3), 2e-9), np.eye(3))
    assert np.all(constant == 0) and lo == hi == 2e-9
    tiny, _, _ = normalise_acquired(np.array([[0.0, 1e-9]]), np.ones((1, 2)))
    np.testing.assert_array_equal(tiny, [[-1, 1]])   # small intensity units are not 'constant'


# --------------------------------------------------------------------------------------------
# fault-injection cases: a failing network, inputs and outputs protected
# --------------------------------------------------------------------------------------------
def test_fault_non_finite_network_output_writes_nothing(tmp_path, tiny_model, scans_h5, monkeypatch):
    monkeypatch.setattr(inference, "complete_partial_scans", lambda *a, **k: np.full(a[1].shape, np.nan, np.float32))
    out = tmp_path / "nan.h5"
    out.write_bytes(b"previous result")
    line = one_error_line(run("scan", "complete", scans_h5, "-o", out, "--method", "model", "--model", tiny_model,
                              "--overwrite"))
    assert "NaN or inf" in line and "nothing was written" in line, line
    assert out.read_bytes() == b"previous result"   # an existing OUT is left intact
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("error", [torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
                                   RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't "
                                                "allocate memory: you tried to allocate 8589934592 bytes"),
                                   MemoryError()])
def test_fault_network_out_of_memory_is_one_line_and_leaves_no_output(tmp_path, tiny_model, scans_h5, monkeypatch,
                                                                      error):
    def boom(*a, **k):
        raise error

    monkeypatch.setattr(inference, "complete_partial_scans", boom)
    out = tmp_path / "oom.h5"
    line = one_error_line(run("scan", "complete", scans_h5, "-o", out, "--method", "model", "--model", tiny_model,
                              "--tile", "256", "--batch", "2"))
    assert "out of memory" in line and "tiny.pt" in line and "--tile" in line and "--batch" in line, line
    assert not out.exists()


def test_fault_other_network_errors_are_not_hidden(tmp_path, tiny_model, scans_h5, monkeypatch):
    """A bug is not dressed up as an input error: it reaches the user as the exception it is."""
    def boom(*a, **k):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(inference, "complete_partial_scans", boom)
    out = tmp_path / "bug.h5"
    r = run("scan", "complete", scans_h5, "-o", out, "--method", "model", "--model", tiny_model)
    assert r.exit_code != 0 and isinstance(r.exception, RuntimeError) and "mat1" in str(r.exception)
    assert not out.exists()


def test_fault_model_file_is_never_an_output_and_inputs_stay_untouched(tmp_path, tiny_model, scans_h5, acquisition):
    src, _, _ = acquisition
    before = {p: p.read_bytes() for p in (tiny_model, scans_h5, src)}
    line = one_error_line(run("scan", "complete", scans_h5, "-o", scans_h5, "--method", "model", "--model",
                              tiny_model, "--overwrite"))
    assert "input" in line
    line = one_error_line(run("scan", "complete", f"{src}:/frames", "--path-mask", f"{src}:/mask", "-o", src,
                              "--method", "linear", "--overwrite"))
    assert "input" in line
    assert {p: p.read_bytes() for p in before} == before


def test_fault_nan_in_simulated_scans_are_not_samples_for_the_model(tmp_path, tiny_model, scans_h5):
    """NaN pixels of /scan/partial or /scan/path are dropped from the samples (warning with the
    count), re-infilled, and the completion stays finite."""
    bad = tmp_path / "nan_scans.h5"
    bad.write_bytes(scans_h5.read_bytes())
    with h5py.File(bad, "r+") as f:
        p = f["scan/partial"][()]
        p[0, :4, :4] = np.nan
        f["scan/partial"][...] = p
    out = tmp_path / "nan_done.h5"
    r = CliRunner().invoke(app, ["--device", "cpu", "--quiet", "scan", "complete", str(bad), "-o", str(out),
                                 "--method", "model", "--model", str(tiny_model)])
    assert r.exit_code == 0, r.output
    assert "fastem: warning:" in r.output and "16 NaN or infinite pixel(s)" in r.output
    assert np.isfinite(read(out, "scan/completed")).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device for PyTorch")
@pytest.mark.parametrize("ensemble", [1, 8])
def test_model_completion_on_cuda_matches_cpu(tmp_path, tiny_model, scans_h5, ensemble):
    """One pass and --ensemble 8 (the transforms run on CUDA tensors) on the GPU give the CPU's completion."""
    outs = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / f"{device}.h5"
        r = CliRunner().invoke(app, ["--device", device, "--quiet", "scan", "complete", str(scans_h5), "-o",
                                     str(out), "--method", "model", "--model", str(tiny_model), "--tile", "64",
                                     "--ensemble", str(ensemble)])
        assert r.exit_code == 0, r.output
        outs[device] = read(out, "scan/completed")
    np.testing.assert_allclose(outs["cuda"], outs["cpu"], atol=1e-3)
    prov, _ = provenance_and_results(tmp_path / "cuda.h5")
    assert prov["configuration"]["torch_device"].startswith("cuda")
