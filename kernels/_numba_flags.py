"""LLVM fast-math flags shared by every Numba CPU kernel (imports nothing from ``fastem``).

Numba's boolean ``fastmath`` switch turns on LLVM's ``fast`` flag set, which includes ``nnan`` and ``ninf``: LLVM may
then assume that no value is NaN or infinite and fold away the very comparisons and arithmetic
that let a NaN or an inf reach a divergence check (an iterate that blew up would then report a
finite R-factor). The kernels use :data:`FASTMATH` instead: re-association (vectorised sums),
contraction (FMA), reciprocal approximations, approximate functions and no signed zeros, but NaN
and inf keep IEEE semantics and propagate to the checks.
"""

from __future__ import annotations

__all__ = ["FASTMATH", "FASTMATH_SUMS", "fastmath"]

#: the fast-math flags of the kernels: everything in ``fast`` except ``nnan`` and ``ninf``
FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})

#: re-association and contraction only (vectorisable sums whose results must stay bit-stable)
FASTMATH_SUMS = frozenset({"reassoc", "contract"})


def fastmath(flags=FASTMATH) -> set:
    """A fresh ``set`` of ``flags`` for ``numba.njit(fastmath=...)`` (Numba wants a ``set``)."""
    return set(flags)
