"""FFT throughput of the backend: fastem (pyFFTW plans / cuFFT) vs numpy.fft vs scipy.fft."""

from __future__ import annotations

import numpy as np

from fastem import fft as F
from fastem.config import settings

NAME = "fft"
DESCRIPTION = "complex64 FFT throughput: fastem plans vs numpy.fft vs scipy.fft (2D 512^2, 3D 128^3)"


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
