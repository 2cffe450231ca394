"""Device helpers shared by the Numba CUDA projector kernels (twins of ``cuda/projector_taps.cuh``)."""

import math

from numba import cuda


@cuda.jit(device=True, inline=True)
def axis_taps(s, subpoints):
    """``(i0, w0, w1, w2)``: see ``_projector_taps_numba.axis_taps``."""
    if subpoints == 1:
        fl = math.floor(s)
        f = s - fl
        return int(fl), 1.0 - f, f, 0.0
    t = s - 0.25
    fl = math.floor(t)
    f = t - fl
    w0 = 0.5 * (1.0 - f + max(0.5 - f, 0.0))
    w2 = 0.5 * max(f - 0.5, 0.0)
    return int(fl), w0, 1.0 - w0 - w2, w2


@cuda.jit(device=True, inline=True)
def pick(a, w0, w1, w2):
    return w0 if a == 0 else (w1 if a == 1 else w2)
