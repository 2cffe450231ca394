"""ALRC fused losses: values, gradients and moments against a float64 torch-autograd reference."""

import io
import os
import subprocess
import sys

import numpy as np
import pytest

from fastem import backend
from fastem.errors import InputError
from fastem.train import ALRC, alrc_loss, alrc_loss_grad, check_moments, per_example_loss

from conftest import to_numpy

torch = pytest.importorskip("torch")

LOSS_NAMES = ["mse", "huber", "quartic", "mae"]
SHAPES = [(1, 1), (1, 7, 9), (4, 33, 17), (5, 3), (3, 2, 3, 5)]


# ---------------------------------------------------------------------------------------------
# the explicit formula, float64, differentiated by torch autograd (independent of fastem's code)
# ---------------------------------------------------------------------------------------------
def reference(pred, target, moments, loss, weight=None, scale=1.0, n=3.0, beta=0.999, clip=True):
    p = torch.tensor(np.asarray(pred, dtype=np.float64), requires_grad=True)
    t = torch.tensor(np.asarray(target, dtype=np.float64))
    b = p.shape[0]
    per = []
    for i in range(b):
        d = (p[i] - t[i]).reshape(-1)
        e = {"mse": d ** 2, "huber": d ** 2, "quartic": d ** 4, "mae": d.abs()}[loss]
        if weight is not None:
            w = np.asarray(weight, dtype=np.float64)
            w = w[i] if w.shape == p.shape else w
            e = e * torch.tensor(w.reshape(-1))
        x = scale * e.sum() / d.numel()
        per.append(torch.sqrt(x) if (loss == "huber" and x.item() > 1.0) else x)
    mu1, mu2 = (float(v) for v in moments) if clip else (0.0, 0.0)
    lmax = mu1 + n * np.sqrt(max(mu2 - mu1 * mu1, 0.0) + 1e-8)
    dyn = []
    for L in per:
        dyn.append(L * (lmax / L.detach()) if (clip and L.item() > lmax) else L)
    mean = torch.stack(dyn).mean()
    mean.backward()
    c = np.array([v.item() for v in dyn])
    new = np.array([beta * mu1 + (1 - beta) * c.mean(), beta * mu2 + (1 - beta) * np.mean(c * c)])
    return {"loss": mean.item(), "losses": np.array([v.item() for v in per]), "clipped": c,
            "grad": p.grad.numpy(), "moments": new, "lmax": lmax}


def moments_for(losses, mode, n=3.0):
    """Moments whose threshold lies between the losses ('some'), below all, or above all."""
    s = np.sort(losses)
    if mode == "some":
        target = 0.5 * (s[len(s) // 2 - 1] + s[len(s) // 2]) if len(s) > 1 else 0.5 * s[0]
    elif mode == "all":
        target = 0.5 * s[0]
    else:
        target = 2.0 * s[-1]
    sd = 0.01 * target
    mu1 = target - n * np.sqrt(sd * sd + 1e-8)
    return np.array([mu1, mu1 * mu1 + sd * sd], dtype=np.float64)


def make_inputs(rng, shape, dtype, weight_kind):
    pred = rng.standard_normal(shape).astype(dtype)
    target = rng.standard_normal(shape).astype(dtype)
    # spread the per-example losses (one example up to ~3x larger errors)
    pred *= (1.0 + np.arange(shape[0]) / max(shape[0] - 1, 1)).reshape((-1,) + (1,) * (len(shape) - 1)).astype(dtype)
    weight = None
    if weight_kind == "shared":
        weight = rng.uniform(0.2, 2.0, shape[1:]).astype(dtype)
    elif weight_kind == "per-example":
        weight = rng.uniform(0.2, 2.0, shape).astype(dtype)
    return pred, target, weight


# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ["numpy", "numba"])
@pytest.mark.parametrize("loss", LOSS_NAMES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mode", ["some", "all", "none"])
def test_forward_grad_moments_match_autograd(rng, engine, loss, shape, mode):
    pred, target, _ = make_inputs(rng, shape, np.float64, None)
    scale = 0.4 if loss == "huber" else 1.0  # huber: both h branches occur (scaled MSEs around 1)
    losses = reference(pred, target, None, loss, scale=scale, clip=False)["losses"]
    mom = moments_for(losses, mode)
    ref = reference(pred, target, mom, loss, scale=scale)
    m = mom.copy()
    res = alrc_loss(pred, target, m, loss=loss, scale=scale, grad=True, engine=engine)
    assert res.loss == pytest.approx(ref["loss"], rel=1e-12)
    np.testing.assert_allclose(res.losses, ref["losses"], rtol=1e-12)
    np.testing.assert_allclose(res.clipped, ref["clipped"], rtol=1e-12)
    np.testing.assert_allclose(res.grad, ref["grad"], rtol=1e-11, atol=1e-14 * np.abs(ref["grad"]).max())
    np.testing.assert_allclose(m, ref["moments"], rtol=1e-13)
    clipped = res.factor < 1
    if mode == "all":
        assert clipped.all()
    elif mode == "none":
        assert not clipped.any()
    elif shape[0] > 1:
        assert clipped.any() and not clipped.all()
    np.testing.assert_allclose(res.clipped[clipped], ref["lmax"], rtol=1e-12)


@pytest.mark.parametrize("engine", ["numpy", "numba"])
@pytest.mark.parametrize("dtype,rtol", [(np.float32, 2e-6), (np.float64, 1e-12)])
@pytest.mark.parametrize("weight_kind", ["shared", "per-example"])
@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_weights_and_float32(rng, engine, dtype, rtol, weight_kind, loss):
    shape = (3, 13, 11)
    pred, target, weight = make_inputs(rng, shape, dtype, weight_kind)
    losses = reference(pred, target, None, loss, weight=weight, clip=False)["losses"]
    mom = moments_for(losses, "some")
    ref = reference(pred, target, mom, loss, weight=weight)
    m = mom.copy()
    res = alrc_loss(pred, target, m, loss=loss, weight=weight, grad=True, engine=engine)
    assert res.grad.dtype == dtype
    assert res.loss == pytest.approx(ref["loss"], rel=1e-12)  # inputs are exact in float64; sums are float64
    np.testing.assert_allclose(res.grad, ref["grad"], rtol=rtol, atol=rtol * np.abs(ref["grad"]).max())
    np.testing.assert_allclose(m, ref["moments"], rtol=1e-13)


@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_large_example_uses_several_chunks(rng, engine):
    shape = (2, 200, 190)  # 38000 pixels > one 16384-pixel chunk
    pred, target, weight = make_inputs(rng, shape, np.float32, "shared")
    ref = reference(pred, target, None, "quartic", weight=weight, clip=False)
    res = alrc_loss(pred, target, None, loss="quartic", weight=weight, clip=False, grad=True, engine=engine)
    np.testing.assert_allclose(res.losses, ref["losses"], rtol=1e-12)
    np.testing.assert_allclose(res.grad, ref["grad"], rtol=2e-6, atol=2e-6 * np.abs(ref["grad"]).max())


def test_gout_scales_gradient_and_out_is_written(rng):
    pred, target, _ = make_inputs(rng, (3, 5, 5), np.float64, None)
    res = alrc_loss(pred, target, None, loss="mse", clip=False, grad=True)
    out = np.empty_like(pred)
    g = alrc_loss_grad(pred, target, res.gscale, loss="mse", gout=-2.5, out=out)
    assert g is out
    np.testing.assert_allclose(out, -2.5 * res.grad, rtol=1e-14)


def test_no_clip_is_plain_mean(rng):
    pred, target, _ = make_inputs(rng, (4, 6, 6), np.float64, None)
    res = alrc_loss(pred, target, None, loss="mse", clip=False, grad=True)
    np.testing.assert_allclose(res.losses, ((pred - target) ** 2).mean(axis=(1, 2)), rtol=1e-13)
    assert res.loss == pytest.approx(((pred - target) ** 2).mean(), rel=1e-13)
    np.testing.assert_allclose(res.grad, 2 * (pred - target) / pred.size, rtol=1e-13)
    np.testing.assert_allclose(per_example_loss(pred, target, "mae"), np.abs(pred - target).mean(axis=(1, 2)),
                               rtol=1e-13)


# ---------------------------------------------------------------------------------------------
# clipping branches and the moment trajectory
# ---------------------------------------------------------------------------------------------
def constant_batch(values, shape=(4, 4)):
    """pred/target whose per-example MSE is exactly ``values`` (pred = sqrt(v), target = 0)."""
    v = np.asarray(values, dtype=np.float64)
    pred = np.broadcast_to(np.sqrt(v)[:, None, None], (len(v),) + shape).copy()
    return pred, np.zeros_like(pred)


@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_per_example_clipping_only_hits_the_outlier(engine):
    alrc = ALRC("mse", mu1=1.0, mu2=1.25, beta=0.9, n=3.0, engine=engine)  # sigma = 0.5 -> L_max = 2.5
    lmax = 1.0 + 3.0 * np.sqrt(0.25 + 1e-8)
    pred, target = constant_batch([1.0, 2.0, 100.0, 0.5])
    res = alrc(pred, target, grad=True)
    np.testing.assert_allclose(res.factor, [1, 1, lmax / 100.0, 1], rtol=1e-14)
    np.testing.assert_allclose(res.clipped, [1.0, 2.0, lmax, 0.5], rtol=1e-14)
    # gradient of the outlier scaled by L_max / L, the others untouched
    plain = alrc_loss(pred, target, None, clip=False, grad=True, engine=engine).grad
    np.testing.assert_allclose(res.grad[[0, 1, 3]], plain[[0, 1, 3]], rtol=1e-14)
    np.testing.assert_allclose(res.grad[2], plain[2] * lmax / 100.0, rtol=1e-14)
    c = np.array([1.0, 2.0, lmax, 0.5])
    np.testing.assert_allclose(alrc.moments, [0.9 * 1 + 0.1 * c.mean(), 0.9 * 1.25 + 0.1 * np.mean(c * c)],
                               rtol=1e-14)


@pytest.mark.parametrize("engine", ["numpy", "numba"])
@pytest.mark.parametrize("batch", [1, 3])
def test_moment_trajectory_over_scripted_losses(engine, batch):
    """A scripted loss sequence with spikes: moments follow algorithm 1 with the clipped losses."""
    rng = np.random.default_rng(5)
    script = 1.0 + 0.2 * rng.random((40, batch))
    script[[7, 20, 21, 33]] *= 60.0  # spikes
    mu1, mu2, beta, n = 25.0, 900.0, 0.8, 3.0
    alrc = ALRC("mse", mu1=mu1, mu2=mu2, beta=beta, n=n, engine=engine)
    clipped_any = []
    for step, values in enumerate(script):
        lmax = mu1 + n * np.sqrt(max(mu2 - mu1 * mu1, 0.0) + 1e-8)
        dyn = np.minimum(values, lmax)
        mu1, mu2 = beta * mu1 + (1 - beta) * dyn.mean(), beta * mu2 + (1 - beta) * np.mean(dyn * dyn)
        res = alrc(*constant_batch(values))
        np.testing.assert_allclose(res.clipped, dyn, rtol=1e-12)
        np.testing.assert_allclose(alrc.moments, [mu1, mu2], rtol=1e-12)
        clipped_any.append(bool((values > lmax).any()))
    assert alrc.steps == len(script)
    assert any(clipped_any[15:]) and not all(clipped_any)  # later spikes are clipped, ordinary steps are not
    # updating with the raw (unclipped) losses would give a different trajectory
    raw = ALRC("mse", mu1=25.0, mu2=900.0, beta=beta, n=1e9, engine=engine)
    for values in script:
        raw(*constant_batch(values))
    assert abs(raw.mu1 - alrc.mu1) > 1e-3


def test_update_false_and_threshold():
    alrc = ALRC("mse")
    assert float(alrc.threshold()) == pytest.approx(25 + 3 * np.sqrt(900 - 625 + 1e-8), rel=1e-15)
    before = alrc.moments.copy()
    res = alrc(*constant_batch([200.0]), update=False)
    np.testing.assert_array_equal(alrc.moments, before)
    assert res.loss == pytest.approx(float(alrc.threshold()), rel=1e-14)
    assert alrc.steps == 0


def test_state_dict_roundtrip():
    a = ALRC("quartic", mu1=2.0, mu2=5.0, beta=0.5, n=2.0)
    for v in ([1.0, 3.0], [40.0, 2.0], [1.5, 1.0]):
        a(*constant_batch(v))
    b = ALRC("mse")
    b.load_state_dict(a.state_dict())
    assert (b.loss, b.n, b.beta, b.steps) == ("quartic", 2.0, 0.5, 3)
    np.testing.assert_array_equal(b.moments, a.moments)
    x = constant_batch([3.0, 0.7])
    assert a(*x).loss == b(*x).loss
    np.testing.assert_array_equal(b.moments, a.moments)


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------
def test_bad_input(rng):
    p = rng.standard_normal((2, 3, 3))
    m = np.array([25.0, 900.0])
    with pytest.raises(InputError, match="mu2 > mu1"):
        ALRC("mse", mu1=5.0, mu2=25.0)
    with pytest.raises(InputError, match="mu2 > mu1"):
        check_moments(3.0, 1.0)
    with pytest.raises(InputError, match="mu2 > mu1"):
        ALRC().load_state_dict({"mu1": 2.0, "mu2": 3.0})
    with pytest.raises(InputError, match="shape"):
        alrc_loss(p, p[:1].copy(), m)
    with pytest.raises(InputError, match="float32 or float64"):
        alrc_loss(p, p.astype(np.float32), m)
    with pytest.raises(InputError, match="float32 or float64"):
        alrc_loss(p.astype(np.int64), p.astype(np.int64), m)
    with pytest.raises(InputError, match="contiguous"):
        alrc_loss(p[:, :, ::2], p[:, :, ::2], m)
    with pytest.raises(InputError, match="weight has shape"):
        alrc_loss(p, p, m, weight=np.ones((3, 4)))
    with pytest.raises(InputError, match="unknown loss"):
        alrc_loss(p, p, m, loss="l3")
    with pytest.raises(InputError, match="moments"):
        alrc_loss(p, p, None)
    with pytest.raises(InputError, match="moments"):
        alrc_loss(p, p, np.array([25.0, 900.0], dtype=np.float32))
    with pytest.raises(InputError, match="beta"):
        alrc_loss(p, p, m, beta=1.0)
    with pytest.raises(ValueError, match="GPU"):
        alrc_loss(p, p, m, engine="cuda")


@pytest.mark.parametrize("engine", ["numpy", "numba"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_loss_raises_and_keeps_moments(rng, engine, bad):
    p = rng.standard_normal((3, 4, 4))
    t = rng.standard_normal((3, 4, 4))
    p[1, 2, 2] = bad
    alrc = ALRC("mse", engine=engine)
    with pytest.raises(InputError, match=r"NaN/Inf \(examples \[1\]\)"):
        alrc(p, t)
    np.testing.assert_array_equal(alrc.moments, [25.0, 900.0])
    res = alrc(p, t, check_finite=False)  # opt out: counted, moments still untouched
    assert res.nonfinite == 1
    np.testing.assert_array_equal(alrc.moments, [25.0, 900.0])


def test_imports_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import fastem, fastem.train as T, numpy as np\n"
            "r = T.ALRC('huber')(np.ones((2, 3)), np.zeros((2, 3)))\n"
            "assert abs(r.loss - 1.0) < 1e-12\n"
            "try:\n    T.ALRCLoss\nexcept ImportError:\n    print('lazy-ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 0, out.stderr
    assert "lazy-ok" in out.stdout


# ---------------------------------------------------------------------------------------------
# PyTorch bridge
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("loss", LOSS_NAMES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("weight_kind", [None, "shared"])
def test_torch_module_matches_autograd(rng, loss, dtype, weight_kind):
    from fastem.train import ALRCLoss

    npdt = np.float64 if dtype == torch.float64 else np.float32
    pred, target, weight = make_inputs(rng, (5, 9, 8), npdt, weight_kind)
    losses = reference(pred, target, None, loss, weight=weight, clip=False)["losses"]
    mom = moments_for(losses, "some")
    ref = reference(pred, target, mom, loss, weight=weight)
    module = ALRCLoss(loss, mu1=mom[0], mu2=mom[1])
    p = torch.tensor(pred, requires_grad=True)
    t = torch.tensor(target, requires_grad=True)
    out = module(p, t, None if weight is None else torch.tensor(weight))
    assert out.dtype == dtype and out.shape == ()
    (3.0 * out).backward()
    tol = 1e-12 if dtype == torch.float64 else 2e-6
    assert float(out.detach()) == pytest.approx(ref["loss"], rel=tol)
    np.testing.assert_allclose(p.grad.numpy(), 3.0 * ref["grad"], rtol=tol, atol=tol * 3 * np.abs(ref["grad"]).max())
    np.testing.assert_allclose(t.grad.numpy(), -3.0 * ref["grad"], rtol=tol,
                               atol=tol * 3 * np.abs(ref["grad"]).max())
    np.testing.assert_allclose(module.moments.numpy(), ref["moments"], rtol=1e-13)
    np.testing.assert_allclose(module.last_clipped.numpy(), ref["clipped"], rtol=1e-12)


@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_torch_reference_composition_matches_autograd(rng, loss):
    from fastem.train import alrc_loss_reference, alrc_loss_torch

    pred, target, weight = make_inputs(rng, (4, 7, 6), np.float64, "per-example")
    scale = 0.4 if loss == "huber" else 1.0
    losses = reference(pred, target, None, loss, weight=weight, scale=scale, clip=False)["losses"]
    mom = moments_for(losses, "some")
    ref = reference(pred, target, mom, loss, weight=weight, scale=scale)
    for fn in (alrc_loss_reference, alrc_loss_torch):
        p = torch.tensor(pred, requires_grad=True)
        m = torch.tensor(mom)
        out = fn(p, torch.tensor(target), m, loss=loss, weight=torch.tensor(weight), scale=scale)
        out = out[0] if isinstance(out, tuple) else out
        out.backward()
        assert float(out.detach()) == pytest.approx(ref["loss"], rel=1e-12)
        np.testing.assert_allclose(p.grad.numpy(), ref["grad"], rtol=1e-11, atol=1e-14 * np.abs(ref["grad"]).max())
        np.testing.assert_allclose(m.numpy(), ref["moments"], rtol=1e-13)


def test_torch_module_state_dict_eval_and_errors():
    from fastem.train import ALRCLoss

    m = ALRCLoss("quartic", mu1=2.0, mu2=5.0, beta=0.5, n=2.0)
    for v in ([1.0, 3.0], [40.0, 2.0]):
        m(*(torch.from_numpy(a) for a in constant_batch(v)))
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    m2 = ALRCLoss()
    m2.load_state_dict(torch.load(buf))
    assert (m2.loss, m2.n, m2.beta) == ("quartic", 2.0, 0.5)
    assert torch.equal(m2.moments, m.moments)
    m2.eval()
    before = m2.moments.clone()
    m2(*(torch.from_numpy(a) for a in constant_batch([500.0])))
    assert torch.equal(m2.moments, before)
    with pytest.raises(InputError, match="mu2 > mu1"):
        ALRCLoss(mu1=30.0, mu2=900.0)
    with pytest.raises(InputError, match="mu2 > mu1"):
        ALRCLoss().load_state_dict({"moments": torch.tensor([3.0, 9.0], dtype=torch.float64),
                                    "nonfinite": torch.zeros((), dtype=torch.int64)})
    with pytest.raises(InputError, match="shape"):
        m(torch.zeros(2, 3), torch.zeros(2, 4))
    p = torch.zeros(2, 3)
    p[1, 1] = float("nan")
    with pytest.raises(InputError, match="NaN/Inf"):
        ALRCLoss()(p, torch.zeros(2, 3))
    with pytest.raises(InputError, match="float32 or float64"):
        ALRCLoss()(torch.zeros(2, 3, dtype=torch.float16), torch.zeros(2, 3, dtype=torch.float16))


# ---------------------------------------------------------------------------------------------
# GPU (CuPy / CUDA tensors) and the Numba CUDA kernels under the simulator
# ---------------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("engine", ["cuda", "numba-cuda"])
@pytest.mark.parametrize("loss", LOSS_NAMES)
@pytest.mark.parametrize("shape,dtype,rtol", [((1, 1), np.float64, 1e-12), ((5, 33, 17), np.float64, 1e-12),
                                              ((3, 257, 255), np.float32, 2e-6), ((70, 5, 3), np.float64, 1e-12)])
def test_gpu_engines_match_autograd(rng, engine, loss, shape, dtype, rtol):
    cp = backend.Device("cuda").xp
    pred, target, weight = make_inputs(rng, shape, dtype, "per-example")
    losses = reference(pred, target, None, loss, weight=weight, clip=False)["losses"]
    mom = moments_for(losses, "some")
    ref = reference(pred, target, mom, loss, weight=weight)
    m = cp.asarray(mom)
    res = alrc_loss(cp.asarray(pred), cp.asarray(target), m, loss=loss, weight=cp.asarray(weight), grad=True,
                    engine=engine)
    assert backend.is_cupy_array(res.loss)  # stays on the device: no host sync
    assert float(res.loss) == pytest.approx(ref["loss"], rel=1e-11)
    np.testing.assert_allclose(to_numpy(res.grad), ref["grad"], rtol=rtol, atol=rtol * np.abs(ref["grad"]).max())
    np.testing.assert_allclose(to_numpy(m), ref["moments"], rtol=1e-12)
    assert int(res.nonfinite[0]) == 0


@pytest.mark.gpu
def test_gpu_nonfinite_is_counted_on_device(rng):
    cp = backend.Device("cuda").xp
    p = cp.asarray(rng.standard_normal((3, 8, 8)))
    p[2, 0, 0] = cp.nan
    alrc = ALRC("mse", device="cuda")
    res = alrc(p, cp.zeros_like(p))
    assert int(res.nonfinite[0]) == 1
    np.testing.assert_array_equal(to_numpy(alrc.moments), [25.0, 900.0])
    with pytest.raises(InputError, match="NaN/Inf"):
        alrc(p, cp.zeros_like(p), check_finite=True)


@pytest.mark.gpu
@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_torch_cuda_module_matches_autograd(rng, loss):
    from fastem.train import ALRCLoss

    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    pred, target, _ = make_inputs(rng, (4, 31, 29), np.float64, None)
    losses = reference(pred, target, None, loss, clip=False)["losses"]
    mom = moments_for(losses, "some")
    ref = reference(pred, target, mom, loss)
    module = ALRCLoss(loss, mu1=mom[0], mu2=mom[1]).cuda()
    p = torch.tensor(pred, device="cuda", requires_grad=True)
    out = module(p, torch.tensor(target, device="cuda"))
    out.backward()
    assert module.moments.is_cuda
    assert float(out.detach()) == pytest.approx(ref["loss"], rel=1e-11)
    np.testing.assert_allclose(p.grad.cpu().numpy(), ref["grad"], rtol=1e-11, atol=1e-14 * np.abs(ref["grad"]).max())
    np.testing.assert_allclose(module.moments.cpu().numpy(), ref["moments"], rtol=1e-12)


@pytest.mark.cudasim
@pytest.mark.parametrize("loss", LOSS_NAMES)
@pytest.mark.parametrize("shape,weight_kind", [((1, 5), None), ((3, 6, 7), "shared"), ((4, 9), "per-example")])
def test_numba_cuda_kernels_in_simulator(rng, loss, shape, weight_kind):
    pred, target, weight = make_inputs(rng, shape, np.float64, weight_kind)
    scale = 0.4 if loss == "huber" else 1.0
    losses = reference(pred, target, None, loss, weight=weight, scale=scale, clip=False)["losses"]
    mom = moments_for(losses, "some")
    ref = reference(pred, target, mom, loss, weight=weight, scale=scale)
    m = mom.copy()
    res = alrc_loss(pred, target, m, loss=loss, weight=weight, scale=scale, grad=True, gout=np.array([1.0]),
                    engine="numba-cuda")
    assert res.loss == pytest.approx(ref["loss"], rel=1e-12)
    np.testing.assert_allclose(res.clipped, ref["clipped"], rtol=1e-12)
    np.testing.assert_allclose(res.grad, ref["grad"], rtol=1e-11, atol=1e-14 * np.abs(ref["grad"]).max())
    np.testing.assert_allclose(m, ref["moments"], rtol=1e-13)


def test_torch_module_no_clip_and_dtype_casts(rng):
    from fastem.train import ALRCLoss

    pred, target, _ = make_inputs(rng, (3, 6, 5), np.float32, None)
    plain = ALRCLoss("mae", clip=False)
    p = torch.tensor(pred, requires_grad=True)
    out = plain(p, torch.tensor(target))
    out.backward()
    d = pred.astype(np.float64) - target
    assert float(out.detach()) == pytest.approx(np.abs(d).mean(), rel=1e-6)
    np.testing.assert_allclose(p.grad.numpy(), np.sign(d) / d.size, rtol=1e-6)
    assert torch.equal(plain.moments, torch.tensor([25.0, 900.0], dtype=torch.float64))  # untouched
    m = ALRCLoss("mse").float()  # module-wide casts do not leave float32 moments behind
    m(torch.tensor(pred), torch.tensor(target))
    assert m.moments.dtype == torch.float64
    assert float(m.threshold()) == pytest.approx(float(alrc_threshold_np(m.moments.numpy())), rel=1e-15)
    m.check()  # no NaN/Inf step so far


def alrc_threshold_np(mom):
    return mom[0] + 3.0 * np.sqrt(max(mom[1] - mom[0] ** 2, 0.0) + 1e-8)


@pytest.mark.cudasim
def test_numba_cuda_engine_through_torch_module_and_nan_in_simulator(rng):
    from fastem.train import ALRCLoss

    pred, target, weight = make_inputs(rng, (3, 5, 4), np.float64, "shared")
    losses = reference(pred, target, None, "quartic", weight=weight, clip=False)["losses"]
    mom = moments_for(losses, "some")
    ref = reference(pred, target, mom, "quartic", weight=weight)
    module = ALRCLoss("quartic", mu1=mom[0], mu2=mom[1], engine="numba-cuda")
    p = torch.tensor(pred, requires_grad=True)
    out = module(p, torch.tensor(target), torch.tensor(weight))
    (2.0 * out).backward()
    assert float(out.detach()) == pytest.approx(ref["loss"], rel=1e-12)
    np.testing.assert_allclose(p.grad.numpy(), 2.0 * ref["grad"], rtol=1e-11, atol=1e-14 * np.abs(ref["grad"]).max())
    np.testing.assert_allclose(module.moments.numpy(), ref["moments"], rtol=1e-13)
    bad = pred.copy()
    bad[0, 1, 1] = np.nan
    alrc = ALRC("mse", engine="numba-cuda")
    with pytest.raises(InputError, match="NaN/Inf"):
        alrc(bad, target)
    np.testing.assert_array_equal(alrc.moments, [25.0, 900.0])
