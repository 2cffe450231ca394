"""Side measurements behind docs/optim.md's speed notes (not a bench case: they change global
FFT settings and may plan with FFTW_MEASURE for minutes on a cold wisdom cache).

    .venv/bin/python bench/optim_checks.py --threads          # LeNet-5 gradient smoothing, 1 vs 2 FFTW threads
    .venv/bin/python bench/optim_checks.py --planner 262144   # ESTIMATE vs MEASURE: planning and pair time
    .venv/bin/python bench/optim_checks.py --pair             # smooth_rows vs raw rfft+irfft, back to back
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _median_ms(fn, n=30):
    fn()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return 1e3 * float(np.median(ts)), 1e3 * min(ts)


def threads_check():
    import torch
    from torch import nn

    from fastem.optim.torch_optim import _Workspace, smooth_gradients

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(20, 50, 5), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(800, 512), nn.ReLU(), nn.Linear(512, 10))
    nn.CrossEntropyLoss()(model(torch.randn(128, 1, 28, 28)), torch.randint(0, 10, (128,))).backward()
    grads = [p.grad for p in model.parameters()]
    for thr in (1, 2):
        ws = _Workspace()
        med, mn = _median_ms(lambda: smooth_gradients(grads, [1.0] * len(grads), [1] * len(grads), ws,
                                                      planner="FFTW_ESTIMATE", threads=thr))
        print(f"LeNet-5 gradient smoothing, {thr} FFTW thread(s): median {med:.2f} ms, min {mn:.2f} ms")


def planner_check(m: int):
    from fastem import fft as F
    from fastem.config import settings

    for planner in ("FFTW_ESTIMATE", "FFTW_MEASURE"):
        settings.fft_planner = planner
        t = time.perf_counter()
        plan = F.new_plan((1, m), np.float32, axes=(1,), real=True)
        tp = time.perf_counter() - t
        x = F.empty_aligned((1, m), np.float32)
        x[...] = 1.0
        out = F.empty_aligned((1, m), np.float32)

        def pair():
            s = plan.forward(x)
            plan.backward(s, out, normalise=False, overwrite_input=True)

        med, mn = _median_ms(pair)
        print(f"length {m} {planner}: planning {tp:.2f} s (wisdom cache may make this instant), "
              f"rfft+irfft median {med:.2f} ms, min {mn:.2f} ms")


def pair_check():
    from fastem import fft as F
    from fastem import optim

    for b, m in ((1, 1 << 18), (64, 4096), (1024, 500)):
        x = F.empty_aligned((b, m), np.float32)
        x[...] = np.random.default_rng(0).random((b, m))
        out = F.empty_aligned((b, m), np.float32)
        plan = F.new_plan((b, m), np.float32, axes=(1,), real=True)

        def raw():
            s = plan.forward(x)
            plan.backward(s, out, normalise=False, overwrite_input=True)

        r = _median_ms(raw, 200)[0]
        s = _median_ms(lambda: optim.smooth_rows(x, 1.0, 1, out=out), 200)[0]
        print(f"{b}x{m}: raw pair {r:.3f} ms, smooth_rows {s:.3f} ms, throughput ratio {r / s:.3f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", action="store_true")
    ap.add_argument("--planner", type=int, default=None, metavar="LENGTH")
    ap.add_argument("--pair", action="store_true")
    ap.add_argument("--fft-threads", type=int, default=None, help="FFTW threads for --planner/--pair (default: all cores)")
    a = ap.parse_args(argv)
    if a.fft_threads:
        from fastem.config import set_threads

        set_threads(a.fft_threads)
    if a.threads:
        threads_check()
    if a.planner:
        planner_check(a.planner)
    if a.pair:
        pair_check()


if __name__ == "__main__":
    main()
