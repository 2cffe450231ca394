"""Coverage-isotropic random crops for the multi-scale discriminators (seed 000, eqs. 3-5).

A ``w``-pixel region placed at a uniformly random start ``s`` in ``{0, ..., L - w}`` of an
``L``-pixel axis covers pixel ``x`` in

    n(x) = min(x + 1, w, L - x, L - w + 1)                                   (eqs. 3, 4)

of the ``L - w + 1`` placements (the paper's piecewise form: ``x`` near the low edge, ``w`` in
the middle, ``L - x`` near the high edge); in 2D the count is ``n(x) n(y)`` (eq. 5). Uniform
placement therefore shows edge pixels to the discriminators up to ``w`` times less often than
central ones, scaling the generator's effective adversarial learning rate by ``n``. Seed 000
instead draws placements so that every pixel is about equally likely to be covered.

Exact isotropy is only possible with a fixed tiling (the placement probabilities ``p`` must
satisfy ``A p = const`` with ``A[x, s] = [s <= x < s + w]``, whose only non-negative solution
is a comb of placements ``w`` apart), so the sampler here draws each axis' start from

    p = argmin_{p >= 0} || A p - (w / L) 1 ||^2 + spread * || p - 1 / (L - w + 1) ||^2,
    normalised to sum 1,

the flattest coverage that stays spread over many placements (``spread`` trades the two;
default 0.1 gives a max/min coverage ratio of 1.4 for 70 px crops of 512 px images, against
70 for uniform placement). Rows and columns are drawn independently, so the 2D coverage is
the product of the axis coverages, as in eq. 5.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from fastem.errors import InputError

__all__ = ["coverage_counts", "isotropic_start_probabilities", "expected_coverage", "sample_crop_starts",
           "scaled_crop_sizes"]

DEFAULT_SPREAD = 0.1


def _check(size: int, width: int) -> tuple[int, int]:
    size, width = int(size), int(width)
    if not 1 <= width <= size:
        raise InputError(f"crop width {width} must be between 1 and the image size {size}")
    return size, width


def coverage_counts(size: int, width: int) -> np.ndarray:
    """Eqs. 3-4: ``n(x)``, the number of the ``size - width + 1`` placements covering each pixel.

    Returns an int64 array of shape ``(size,)``.
    """
    size, width = _check(size, width)
    x = np.arange(size)
    return np.minimum.reduce([x + 1, np.full(size, width), size - x, np.full(size, size - width + 1)]).astype(np.int64)


def _placement_matrix(size: int, width: int) -> np.ndarray:
    starts = size - width + 1
    a = np.zeros((size, starts))
    for s in range(starts):
        a[s:s + width, s] = 1.0
    return a


@lru_cache(maxsize=64)
def _probabilities(size: int, width: int, spread: float) -> np.ndarray:
    from scipy.optimize import lsq_linear

    starts = size - width + 1
    if starts == 1:
        return np.ones(1)
    a = _placement_matrix(size, width)
    uniform = np.full(starts, 1.0 / starts)
    lhs = np.vstack([a, np.sqrt(spread) * np.eye(starts)])
    rhs = np.concatenate([np.full(size, width / size), np.sqrt(spread) * uniform])
    p = np.clip(lsq_linear(lhs, rhs, bounds=(0.0, np.inf), method="bvls").x, 0.0, None)
    p /= p.sum()
    p.setflags(write=False)
    return p


def isotropic_start_probabilities(size: int, width: int, spread: float = DEFAULT_SPREAD) -> np.ndarray:
    """Probabilities (float64, shape ``(size - width + 1,)``, sum 1) of each crop start on one axis.

    See the module docstring for the objective. Cached per ``(size, width, spread)``.
    """
    size, width = _check(size, width)
    if not spread > 0:
        raise InputError(f"spread must be > 0, got {spread}")
    return _probabilities(size, width, float(spread))


def expected_coverage(size: int, width: int, probabilities: np.ndarray | None = None) -> np.ndarray:
    """``A p``: the probability that one crop covers each pixel of the axis (float64, ``(size,)``).

    ``probabilities=None`` means uniform placement, for which ``A p = n(x) / (size - width + 1)``.
    """
    size, width = _check(size, width)
    starts = size - width + 1
    p = np.full(starts, 1.0 / starts) if probabilities is None else np.asarray(probabilities, dtype=np.float64)
    if p.shape != (starts,):
        raise InputError(f"probabilities must have shape ({starts},), got {p.shape}")
    return _placement_matrix(size, width) @ p


def sample_crop_starts(rng: np.random.Generator, shape, width: int, count: int,
                       spread: float = DEFAULT_SPREAD) -> np.ndarray:
    """``count`` crop corners ``(row, col)`` (int64, shape ``(count, 2)``) drawn coverage-isotropically.

    ``shape`` is the image ``(rows, cols)``; rows and columns are drawn independently from
    :func:`isotropic_start_probabilities`.
    """
    rows, cols = int(shape[0]), int(shape[1])
    pr = isotropic_start_probabilities(rows, width, spread)
    pc = isotropic_start_probabilities(cols, width, spread)
    r = rng.choice(pr.size, size=int(count), p=pr)
    c = rng.choice(pc.size, size=int(count), p=pc)
    return np.stack([r, c], axis=1).astype(np.int64)


def scaled_crop_sizes(image_size: int, sizes=(70, 140, 280), reference: int = 512, minimum: int = 8) -> tuple:
    """The discriminator crop sizes for ``image_size``: ``sizes`` (given at ``reference`` px) scaled.

    Seed 000 uses 70, 140 and 280 px crops of 512 px images; training on smaller crops keeps
    the same fractions of the field of view, at least ``minimum`` and at most ``image_size`` px.
    """
    return tuple(int(min(image_size, max(minimum, round(s * image_size / reference)))) for s in sizes)
