"""The ALRC per-example finalisation, written once in plain Python and compiled for each engine.

``_alrc_loss_numba.py`` compiles :func:`example_terms` with ``numba.njit`` and
``_alrc_loss_numba_cuda.py`` with ``numba.cuda.jit(device=True)``; ``cuda/alrc_loss.cu`` holds the
same arithmetic in CUDA C. Formulas: docs/train_alrc.md "What is computed" (seed 000, appendix A).
"""

import math


def clip_threshold(mu1, mu2, n):
    """``L_max = mu1 + n sqrt(max(mu2 - mu1^2, 0) + 1e-8)``, the ALRC clipping threshold."""
    var = mu2 - mu1 * mu1
    if var < 0.0:
        var = 0.0
    return mu1 + n * math.sqrt(var + 1e-8)


def example_terms(x, kind, clip, lmax, scale, npix, nb):
    """One example's ``(loss, clipped loss, clip factor, gradient scale, non-finite flag)``.

    ``x``: ``scale`` times the example's mean error term; ``kind`` 1 takes the square root above
    1 (Huberised MSE); ``clip``: divide losses above ``lmax`` down to it. The gradient scale is
    ``c dL/dm / (P B)`` with ``c`` the clip factor, ``P = npix``, ``B = nb``.
    """
    loss = x
    hp = 1.0
    if kind == 1 and x > 1.0:
        loss = math.sqrt(x)
        hp = 0.5 / loss
    bad = 0
    if not math.isfinite(loss):
        bad = 1
    f = 1.0
    if clip and loss > lmax:
        f = lmax / loss
    return loss, f * loss, f, f * scale * hp / (npix * nb), bad
