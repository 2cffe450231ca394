"""LS optimizers (fastem.optim.LSSGD / LSRMSprop / LSAdam) against hand-written reference steps."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fastem import optim  # noqa: E402
from fastem.errors import InputError  # noqa: E402

SHAPES = [(6, 5), (30,), (2,), (4, 3, 2), (1,), (6, 5)]  # two short ones (< 3 elements), a repeated length


def ref_smooth(g: np.ndarray, sigma: float, order: int) -> np.ndarray:
    """Float64 dense solve A d = g on the flattened tensor (pass-through below 2n+1)."""
    flat = g.reshape(-1).astype(np.float64)
    m = flat.size
    if sigma == 0 or m < 2 * order + 1:
        return g.astype(np.float64)
    L = -2.0 * np.eye(m) + np.roll(np.eye(m), 1, axis=1) + np.roll(np.eye(m), -1, axis=1)
    A = np.eye(m) + (-1) ** order * sigma * np.linalg.matrix_power(L, order)
    return np.linalg.solve(A, flat).reshape(g.shape)


def make_params(seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen, dtype=dtype).requires_grad_(True) for s in SHAPES]


def set_grads(params, step, skip=()):
    gen = torch.Generator().manual_seed(1000 + step)
    for i, p in enumerate(params):
        g = torch.randn(p.shape, generator=gen, dtype=p.dtype)
        p.grad = None if i in skip else g


def test_lazy_torch_names():
    from fastem.optim import torch_optim

    assert optim.LSSGD is torch_optim.LSSGD
    assert issubclass(optim.LSAdam, torch.optim.Optimizer)


# ---------------------------------------------------------------------------------------------
# sigma = 0 is exactly the torch optimizer
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ours,theirs,kw", [
    ("LSSGD", torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True)),
    ("LSSGD", torch.optim.SGD, dict(lr=0.1, momentum=0.5, dampening=0.2)),
    ("LSRMSprop", torch.optim.RMSprop, dict(lr=0.01, momentum=0.3, centered=True, weight_decay=0.01)),
    ("LSAdam", torch.optim.Adam, dict(lr=0.01, weight_decay=0.01, amsgrad=True)),
])
def test_sigma_zero_equals_torch(ours, theirs, kw):
    pa, pb = make_params(), make_params()
    oa = getattr(optim, ours)(pa, sigma=0.0, **kw)
    ob = theirs(pb, **kw)
    for step in range(4):
        set_grads(pa, step)
        set_grads(pb, step)
        oa.step()
        ob.step()
    for a, b in zip(pa, pb):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# hand-written float64 reference steps
# ---------------------------------------------------------------------------------------------
def _groups(params):
    # group 0: order 1, sigma 1; group 1: order 2, sigma 0.5 (with its own lr)
    return [{"params": params[:3]}, {"params": params[3:], "order": 2, "sigma": 0.5, "lr": 0.05}]


def _group_of(i):
    return (1.0, 1, None) if i < 3 else (0.5, 2, 0.05)


@pytest.mark.parametrize("nesterov", [False, True])
def test_lssgd_against_reference(nesterov):
    params = make_params()
    w = [p.detach().numpy().copy() for p in params]
    lr, mom, wd = 0.1, 0.9, 0.01
    opt = optim.LSSGD(_groups(params), lr=lr, momentum=mom, weight_decay=wd, nesterov=nesterov)
    bufs = [None] * len(w)
    skip = {2}  # a parameter without gradient: untouched, no state
    for step in range(3):
        set_grads(params, step, skip=skip)
        grads = [None if p.grad is None else p.grad.numpy().copy() for p in params]
        opt.step()
        for i, g in enumerate(grads):
            if g is None:
                continue
            sigma, order, glr = _group_of(i)
            d = ref_smooth(g, sigma, order) + wd * w[i]
            bufs[i] = d.copy() if bufs[i] is None else mom * bufs[i] + d
            d = d + mom * bufs[i] if nesterov else bufs[i]
            w[i] = w[i] - (glr or lr) * d
    for i, p in enumerate(params):
        np.testing.assert_allclose(p.detach().numpy(), w[i], rtol=1e-10, atol=1e-12)
    assert params[2] not in opt.state


def test_lsrmsprop_against_reference():
    params = make_params()
    w = [p.detach().numpy().copy() for p in params]
    lr, alpha, eps = 0.01, 0.9, 1e-8
    opt = optim.LSRMSprop(_groups(params), lr=lr, alpha=alpha, eps=eps)
    v = [np.zeros_like(x) for x in w]
    for step in range(3):
        set_grads(params, step)
        grads = [p.grad.numpy().copy() for p in params]
        opt.step()
        for i, g in enumerate(grads):
            sigma, order, glr = _group_of(i)
            d = ref_smooth(g, sigma, order)
            v[i] = alpha * v[i] + (1 - alpha) * d * d  # running average of the *smoothed* gradient
            w[i] = w[i] - (glr or lr) * d / (np.sqrt(v[i]) + eps)
    for i, p in enumerate(params):
        np.testing.assert_allclose(p.detach().numpy(), w[i], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("decoupled", [False, True])
def test_lsadam_against_reference(decoupled):
    params = make_params()
    w = [p.detach().numpy().copy() for p in params]
    lr, b1, b2, eps, wd = 0.01, 0.8, 0.95, 1e-8, 0.1
    opt = optim.LSAdam(_groups(params), lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd,
                       decoupled_weight_decay=decoupled)
    m = [np.zeros_like(x) for x in w]
    v = [np.zeros_like(x) for x in w]
    for t in range(1, 4):
        set_grads(params, t)
        grads = [p.grad.numpy().copy() for p in params]
        opt.step()
        for i, g in enumerate(grads):
            sigma, order, glr = _group_of(i)
            a = glr or lr
            d = ref_smooth(g, sigma, order)
            if decoupled:
                w[i] = w[i] * (1 - a * wd)
            else:
                d = d + wd * w[i]
            m[i] = b1 * m[i] + (1 - b1) * d
            v[i] = b2 * v[i] + (1 - b2) * d * d
            mh, vh = m[i] / (1 - b1 ** t), v[i] / (1 - b2 ** t)
            w[i] = w[i] - a * mh / (np.sqrt(vh) + eps)
    for i, p in enumerate(params):
        np.testing.assert_allclose(p.detach().numpy(), w[i], rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# batching, dtypes, state
# ---------------------------------------------------------------------------------------------
def test_equal_lengths_share_one_transform(monkeypatch):
    from fastem.optim import torch_optim

    calls = []
    real = torch_optim.smooth_rows

    def counting(x, *a, **k):
        calls.append(x.shape)
        return real(x, *a, **k)

    monkeypatch.setattr(torch_optim, "smooth_rows", counting)
    gen = torch.Generator().manual_seed(3)
    params = [torch.randn(8, 4, generator=gen, dtype=torch.float64, requires_grad=True) for _ in range(10)]
    params += [torch.randn(50, generator=gen, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)
    expect = [p.detach().numpy() - 0.1 * ref_smooth(p.grad.numpy(), 1.0, 1) for p in params]
    optim.LSSGD(params, lr=0.1).step()
    assert sorted(calls) == [(3, 50), (10, 32)]
    for p, e in zip(params, expect):
        np.testing.assert_allclose(p.detach().numpy(), e, atol=1e-12)


def test_low_precision_grads_and_float32():
    gen = torch.Generator().manual_seed(4)
    p16 = torch.randn(40, generator=gen).to(torch.bfloat16).requires_grad_(True)
    p32 = torch.randn(40, generator=gen).requires_grad_(True)
    p16.grad = torch.randn(40, generator=gen).to(torch.bfloat16)
    p32.grad = torch.randn(40, generator=gen)
    before = p32.detach().numpy().astype(np.float64).copy()
    g32 = p32.grad.numpy().astype(np.float64).copy()
    optim.LSSGD([p16, p32], lr=0.5, sigma=2.0).step()
    assert p16.dtype == torch.bfloat16
    np.testing.assert_allclose(p32.detach().numpy(), before - 0.5 * ref_smooth(g32, 2.0, 1), atol=1e-6)


def test_state_dict_round_trip():
    def run(opt, params, steps):
        for s in steps:
            set_grads(params, s)
            opt.step()

    pa = make_params()
    oa = optim.LSAdam(_groups(pa), lr=0.01)
    run(oa, pa, range(3))
    pb = [p.detach().clone().requires_grad_(True) for p in pa]
    ob = optim.LSAdam(_groups(pb), lr=0.3)  # different hyper-parameters: load must restore them
    ob.load_state_dict(copy.deepcopy(oa.state_dict()))
    assert ob.param_groups[1]["order"] == 2 and ob.param_groups[1]["sigma"] == 0.5
    assert ob.param_groups[0]["lr"] == 0.01
    run(oa, pa, range(3, 6))
    run(ob, pb, range(3, 6))
    for a, b in zip(pa, pb):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("bad", [dict(sigma=-0.1), dict(order=0), dict(lr=-1.0)])
def test_bad_hyperparameters(bad):
    with pytest.raises(InputError):
        optim.LSSGD(make_params(), **{"lr": 0.1, **bad})


def test_sparse_grad_refused():
    p = torch.zeros(10, requires_grad=True)
    p.grad = torch.sparse_coo_tensor([[1]], [1.0], (10,), check_invariants=True)
    with pytest.raises(InputError):
        optim.LSSGD([p], lr=0.1).step()


def test_closure_returns_loss():
    p = torch.ones(8, requires_grad=True)
    opt = optim.LSSGD([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (p ** 2).sum()
        loss.backward()
        return loss

    assert float(opt.step(closure).detach()) == 8.0
    assert float(p.sum()) < 8.0


@pytest.mark.parametrize("name", ["LSSGD", "LSRMSprop", "LSAdam"])
def test_tiny_training_run_decreases_loss(name):
    torch.manual_seed(0)
    x = torch.randn(200, 20)
    w_true = torch.randn(20, 3)
    y = (x @ w_true).argmax(1)
    model = torch.nn.Sequential(torch.nn.Linear(20, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    kw = {"LSSGD": dict(lr=0.1, momentum=0.9), "LSRMSprop": dict(lr=0.005), "LSAdam": dict(lr=0.01)}[name]
    opt = getattr(optim, name)(model.parameters(), sigma=1.0, order=1, **kw)
    lossf = torch.nn.CrossEntropyLoss()
    with torch.no_grad():
        first = float(lossf(model(x), y))
    for _ in range(60):
        idx = torch.randint(0, 200, (32,))
        opt.zero_grad()
        lossf(model(x[idx]), y[idx]).backward()
        opt.step()
    with torch.no_grad():
        last = float(lossf(model(x), y))
    assert last < 0.6 * first, (first, last)


def test_planner_option_same_result_and_validated():
    pa, pb = make_params(), make_params()
    set_grads(pa, 0)
    set_grads(pb, 0)
    optim.LSSGD(pa, lr=0.1, planner="FFTW_ESTIMATE", fft_threads=2).step()
    optim.LSSGD(pb, lr=0.1, fft_threads=None).step()
    for a, b in zip(pa, pb):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    with pytest.raises(InputError):
        optim.LSSGD(pa, lr=0.1, planner="FFTW_SOMETHING").step()
    with pytest.raises(InputError):
        optim.LSSGD(pa, lr=0.1, fft_threads=0).step()
    from fastem.config import settings

    before = (settings.threads, settings.fft_planner)
    optim.smooth_rows(np.ones((2, 9)), 1.0, 1, planner="FFTW_ESTIMATE", threads=1)
    assert (settings.threads, settings.fft_planner) == before
