"""Laplacian smoothing (fastem.optim): smoothing throughput vs the raw rfft+irfft pair, LSSGD step
vs torch.optim.SGD step on a 10M-parameter ResNet-like parameter set, and a whole LeNet-5 training
step at batch 128 with each optimizer."""

from __future__ import annotations

import time

import numpy as np

from fastem import backend
from fastem import fft as F
from fastem import optim
from fastem.config import settings

NAME = "train"
DESCRIPTION = ("Laplacian gradient smoothing: throughput vs raw rfft+irfft; LSSGD vs SGD optimizer step "
               "(10M-param ResNet-like) and LeNet-5 training step (batch 128)")


def _resnet_like_shapes(quick: bool) -> list[tuple[int, ...]]:
    """ResNet-18-style parameter shapes (conv weights, BN weight/bias, fc), about 10M parameters."""
    if quick:
        return [(8, 3, 3, 3), (8,), (8,), (16, 8, 3, 3), (16, 16, 3, 3), (16,), (16,), (10, 16), (10,)]
    shapes: list[tuple[int, ...]] = [(64, 3, 7, 7), (64,), (64,)]
    cin = 64
    for cout, blocks in ((64, 2), (128, 2), (256, 2), (448, 2)):
        for b in range(blocks):
            shapes += [(cout, cin, 3, 3), (cout,), (cout,), (cout, cout, 3, 3), (cout,), (cout,)]
            if cin != cout:
                shapes += [(cout, cin, 1, 1), (cout,), (cout,)]
            cin = cout
    shapes += [(1000, cin), (1000,)]
    return shapes


def _smoothing_throughput(ctx) -> None:
    rng = np.random.default_rng(0)
    rep = {} if ctx.quick else dict(repeat=21, min_time=0.5)  # a busy shared machine: more samples
    geoms = [(1, 1 << 12), (16, 1000)] if ctx.quick else [(1, 1 << 18), (64, 4096), (1024, 500)]
    for b, m in geoms:
        for dt in (np.float32,):
            label = f"{b}x{m}"
            x = F.empty_aligned((b, m), dt)
            x[...] = rng.standard_normal((b, m))
            out = F.empty_aligned((b, m), dt)
            plan = F.new_plan((b, m), dt, axes=(1,), real=True)
            work = float(b * m)
            case = "smooth f32 (B, m)"
            ctx.measure(case, label, "fastem laplacian smooth_rows", lambda: optim.smooth_rows(x, 1.0, 1, out=out),
                        work=work, work_unit="sample", **rep)
            ctx.measure(case, label, "fastem smooth_rows order 2", lambda: optim.smooth_rows(x, 1.0, 2, out=out),
                        role="reference", work=work, work_unit="sample", **rep)

            def raw_pair():
                spec = plan.forward(x)
                plan.backward(spec, out, normalise=False, overwrite_input=True)

            ctx.measure(case, label, "raw rfft+irfft (same plan)", raw_pair, role="floor", work=work,
                        work_unit="sample", **rep)
            rounds = 3 if ctx.quick else 60
            ts, tr = [], []
            for r in range(rounds):  # interleaved (ABBA), paired: the load of a shared machine drifts
                for which in ((0, 1) if r % 2 == 0 else (1, 0)):
                    t0 = time.perf_counter()
                    if which == 0:
                        optim.smooth_rows(x, 1.0, 1, out=out)
                    else:
                        raw_pair()
                    (ts if which == 0 else tr).append(time.perf_counter() - t0)
            ratio = np.median(np.array(tr) / np.array(ts))
            ctx.note(f"smooth {label} interleaved ({rounds} rounds): smoothing throughput / raw rfft+irfft "
                     f"throughput = median paired ratio {ratio:.3f}, ratio of minima {min(tr) / min(ts):.3f}")
            ctx.measure(case, label, "numpy irfft(rfft(x)/den)",
                        lambda: np.fft.irfft(np.fft.rfft(x, axis=1) / optim.laplacian_denominator(m, 1, 1.0), m,
                                             axis=1),
                        role="peer", work=work, work_unit="sample")


def _optimizer_steps(ctx, torch) -> None:
    shapes = _resnet_like_shapes(ctx.quick)
    gen = torch.Generator().manual_seed(0)
    n_params = sum(int(np.prod(s)) for s in shapes)
    label = f"{n_params / 1e6:.2f}M params, {len(shapes)} tensors"

    def make():
        ps = [torch.nn.Parameter(torch.randn(s, generator=gen) * 0.01) for s in shapes]
        for p in ps:
            p.grad = torch.randn(p.shape, generator=gen) * 1e-3
        return ps

    case = "optimizer step (ResNet-like)"
    pa, pb, pc = make(), make(), make()
    # FFTW_ESTIMATE plans: FFTW_MEASURE planning of the 17 lengths (up to 2.36M) takes many minutes on
    # a busy 2-core machine; the first LSSGD step below reports the planning cost of each choice
    plan = "FFTW_ESTIMATE"
    ls = optim.LSSGD(pa, lr=1e-3, momentum=0.9, weight_decay=5e-4, sigma=1.0, order=1, planner=plan)
    sgd = torch.optim.SGD(pb, lr=1e-3, momentum=0.9, weight_decay=5e-4)
    ls2 = optim.LSSGD(pc, lr=1e-3, momentum=0.9, weight_decay=5e-4, sigma=1.0, order=2, planner=plan)
    t0 = time.perf_counter()
    ls.step()
    ctx.note(f"ResNet-like: first LSSGD step (plans {plan}) {time.perf_counter() - t0:.2f} s")
    rep = {} if ctx.quick else dict(repeat=15, min_time=1.0)
    ctx.measure(case, label, "fastem LSSGD order 1 (mom 0.9)", ls.step, work=float(n_params), work_unit="param",
                note=plan, **rep)
    ctx.measure(case, label, "fastem LSSGD order 2 (mom 0.9)", ls2.step, role="reference", work=float(n_params),
                work_unit="param", note=plan, **rep)
    ctx.measure(case, label, "torch.optim.SGD (mom 0.9)", sgd.step, role="floor", work=float(n_params),
                work_unit="param", **rep)
    grads = [p.grad for p in pa]
    sig, ords = [1.0] * len(grads), [1] * len(grads)
    from fastem.optim.torch_optim import _Workspace, smooth_gradients

    ws = _Workspace()
    ctx.measure(case, label, "smoothing only (smooth_gradients)",
                lambda: smooth_gradients(grads, sig, ords, ws, planner=plan, threads=1),
                role="reference", work=float(n_params), work_unit="param", **rep)


def _lenet_step(ctx, torch) -> None:
    nn = torch.nn
    batch = 8 if ctx.quick else 128

    def lenet():
        torch.manual_seed(0)
        # thesis 5.3.2: input 28x28 -> conv(20,5)+ReLU+maxpool2 -> conv(50,5)+ReLU+maxpool2 -> fc512 -> softmax
        return nn.Sequential(nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(20, 50, 5), nn.ReLU(),
                             nn.MaxPool2d(2), nn.Flatten(), nn.Linear(800, 512), nn.ReLU(), nn.Linear(512, 10))

    gen = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 1, 28, 28, generator=gen)
    y = torch.randint(0, 10, (batch,), generator=gen)
    lossf = nn.CrossEntropyLoss()
    label = f"batch {batch}"
    case = "LeNet-5 train step"
    rep = {} if ctx.quick else dict(repeat=21, min_time=2.0)
    steps = {}
    for impl, role, mk in (
        ("fastem LSSGD sigma=1 (mom 0.9)", "fastem", lambda ps: optim.LSSGD(ps, lr=0.01, momentum=0.9,
                                                                            weight_decay=1e-4, sigma=1.0)),
        ("fastem LSSGD, ESTIMATE plans", "reference",
         lambda ps: optim.LSSGD(ps, lr=0.01, momentum=0.9, weight_decay=1e-4, sigma=1.0, planner="FFTW_ESTIMATE")),
        ("torch.optim.SGD (mom 0.9)", "floor", lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9,
                                                                          weight_decay=1e-4)),
    ):
        model = lenet()
        opt = mk(model.parameters())

        def step(model=model, opt=opt):
            opt.zero_grad(set_to_none=False)
            lossf(model(x), y).backward()
            opt.step()

        steps[impl] = step
        n = sum(p.numel() for p in model.parameters())
        t0 = time.perf_counter()
        step()
        ctx.note(f"LeNet-5: first step of {impl} (includes FFT planning) {time.perf_counter() - t0:.2f} s")
        ctx.measure(case, label, impl, step, role=role, work=float(batch), work_unit="img", note=f"{n} params", **rep)
        if role == "fastem":
            grads = [p.grad for p in model.parameters()]
            from fastem.optim.torch_optim import _Workspace, smooth_gradients

            ws = _Workspace()
            ones = [1.0] * len(grads)
            ctx.measure(case, label, "smoothing only (LeNet-5 grads)",
                        lambda: smooth_gradients(grads, ones, [1] * len(grads), ws, threads=1), role="reference",
                        **rep)
            # why the optimizers default to fft_threads=1: FFTW's threads contend with torch's pool
            ws2 = _Workspace()
            ctx.measure(case, label, "smoothing only, 2 FFTW threads",
                        lambda: smooth_gradients(grads, ones, [1] * len(grads), ws2, threads=2), role="reference",
                        **rep)
    # The rows above are measured one after the other; on a shared machine the load drifts between
    # them. Interleaving the three steps round by round gives a paired overhead estimate.
    rounds = 3 if ctx.quick else 40
    times: dict[str, list[float]] = {k: [] for k in steps}
    for r in range(rounds):
        for k in (list(steps) if r % 2 == 0 else list(steps)[::-1]):  # ABBA order
            t0 = time.perf_counter()
            steps[k]()
            times[k].append(time.perf_counter() - t0)
    names = list(steps)
    sgd = np.array(times[names[-1]])
    for k in names[:-1]:
        r = np.array(times[k]) / sgd
        ctx.note(f"LeNet-5 interleaved ({rounds} rounds): {k} median {1e3 * np.median(times[k]):.1f} ms vs SGD "
                 f"{1e3 * np.median(sgd):.1f} ms; median paired ratio {np.median(r):.3f} "
                 f"(overhead {100 * (np.median(r) - 1):+.1f} %), ratio of minima "
                 f"{min(times[k]) / sgd.min():.3f}")


def run(ctx) -> None:
    if ctx.device.is_gpu:
        ctx.note("train case: GPU timings not implemented here (no GPU was lent); CPU path measured only")
        return
    _smoothing_throughput(ctx)
    torch = backend.optional_module("torch")
    if torch is None:
        ctx.note("torch not installed: optimizer and LeNet-5 rows skipped")
        return
    ctx.note(f"torch threads {torch.get_num_threads()}, fastem threads {settings.threads}, FFT {F.provider()}")
    _optimizer_steps(ctx, torch)
    _lenet_step(ctx, torch)
