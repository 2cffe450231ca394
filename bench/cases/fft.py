"""FFT throughput of the backend: fastem (pyFFTW plans / cuFFT) vs numpy.fft vs scipy.fft."""

from __future__ import annotations

import numpy as np

from fastem import fft as F
from fastem.config import settings

NAME = "fft"
DESCRIPTION = ("complex64 FFT throughput: fastem plans vs numpy.fft vs scipy.fft (2D 512^2, 3D 128^3); "
               "FFTW_ESTIMATE vs FFTW_MEASURE planning of a long real transform")


def run(ctx) -> None:
    import scipy.fft as sfft

    rng = np.random.default_rng(0)
    sizes = [(512, 512), (128, 128, 128)] if not ctx.quick else [(64, 64), (16, 16, 16)]
    for shape in sizes:
        label = "x".join(map(str, shape))
        kind = f"fft{len(shape)}d c64"
        x = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
        points = float(np.prod(shape))
        # flop count convention of FFTW's benchFFT: 5 N log2 N per complex transform
        work = 5 * points * np.log2(points)
        if ctx.device.is_gpu:
            xp = ctx.xp
            xd = xp.asarray(x)
            plan = F.new_plan(shape, np.complex64, device=ctx.device)
            plan.buffer[...] = xd
            ctx.measure(kind, label, "fastem (cuFFT plan, in place)", lambda: plan.forward(), work=work, work_unit="flop")
            ctx.measure(kind, label, "cupy.fft.fftn", lambda: xp.fft.fftn(xd), role="peer")
            continue
        plan = F.new_plan(shape, np.complex64)
        plan.buffer[...] = x
        ctx.measure(kind, label, f"fastem (pyFFTW plan, {settings.threads} thr)", lambda: plan.forward(),
                    work=work, work_unit="flop")
        ctx.measure(kind, label, "fastem.fft.fftn (allocating)", lambda: F.fftn(x), role="reference")
        ctx.measure(kind, label, "numpy.fft.fftn", lambda: np.fft.fftn(x), role="peer")
        ctx.measure(kind, label, f"scipy.fft.fftn ({settings.threads} workers)",
                    lambda: sfft.fftn(x, workers=settings.threads), role="peer")
        pair = f"fwd+inv {kind}"
        ctx.measure(pair, label, "fastem plan pair (normalised)", lambda: (plan.forward(), plan.backward()))
        ctx.measure(pair, label, "numpy ifftn(fftn)", lambda: np.fft.ifftn(np.fft.fftn(x)), role="peer")
    if not ctx.device.is_gpu:
        _planner_rows(ctx)


def _planner_rows(ctx) -> None:
    """Planning cost against run time for one long real transform (a 256x256x3x3 conv weight,
    589,824 samples: docs/optim.md): the rfft+irfft pair with an FFTW_ESTIMATE plan and with an
    FFTW_MEASURE plan (the fastem default), and the planning itself as a one-shot row. Stored FFTW
    wisdom makes MEASURE planning instant on later runs: the note says whether it was warm."""
    import time

    m = 4096 if ctx.quick else 589_824
    label = f"1x{m} f32"
    saved = settings.fft_planner
    try:
        for planner in ("FFTW_ESTIMATE", "FFTW_MEASURE"):
            settings.fft_planner = planner
            t0 = time.perf_counter()
            plan = F.new_plan((1, m), np.float32, axes=(1,), real=True)
            planning = time.perf_counter() - t0
            x = F.empty_aligned((1, m), np.float32)
            x[...] = 1.0
            out = F.empty_aligned((1, m), np.float32)

            def pair(plan=plan, x=x, out=out):
                spec = plan.forward(x)
                plan.backward(spec, out, normalise=False, overwrite_input=True)

            ctx.measure("rfft+irfft by planner", label, f"{planner} plan", pair,
                        role="fastem" if planner == "FFTW_MEASURE" else "reference")
            ctx.note(f"{planner}: planning {planning:.2f} s for length {m} (FFTW wisdom may make it instant)")
    finally:
        settings.fft_planner = saved
