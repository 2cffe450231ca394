"""Counter-based random numbers shared by every engine (NumPy, Numba CPU, CUDA C, Numba CUDA).

A random number is a pure function of ``(seed, example, purpose, index)``, so a batch of
partial scans is the same on the CPU and the GPU, whatever the batch split or thread count, and
a kernel never carries generator state. The construction is SplitMix64 (Steele, Lea & Flood,
"Fast splittable pseudorandom number generators", OOPSLA 2014), whose output function passes
BigCrush:

``fmix(z)  = z ^= z >> 30; z *= 0xBF58476D1CE4E5B9; z ^= z >> 27; z *= 0x94D049BB133111EB; z ^ z >> 31``

* example key      ``k_e = fmix(seed + GOLDEN * (example + 1))``
* stream key       ``k_s = fmix(k_e ^ (purpose * PURPOSE_MUL))``
* i-th 64-bit word ``w_i = fmix(k_s + GOLDEN * (i + 1))`` -- the SplitMix64 sequence of ``k_s``
* ``uniform32 = (w >> 40) * 2**-24`` (float32 in [0, 1), exact), ``uniform64 = (w >> 11) * 2**-53``.

Three forms, one construction: the vectorised NumPy oracle below, one scalar Python source
(``_hash_rng_scalar``) compiled for the Numba CPU kernels here and for the Numba CUDA kernels, and
the CUDA C twin ``cuda/hash_rng.cuh``; all arithmetic is modulo 2**64.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

GOLDEN = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
PURPOSE_MUL = 0xD1B54A32D192ED03

# purposes (streams) used by fastem's kernels
NOISE = 1          # per-pixel U[0,1) of the partial-scan noise model
SPIRAL = 2         # spiral rotation and centre offset (3 numbers per example)
GRID_PLACE = 3     # grid crop offset and flips (4 numbers per example)
GRID_WALK = 4      # grid random walk (3 numbers per channel and column)
AUGMENT = 5        # dihedral transform index (1 number per example)

_U64 = np.uint64
_G, _M1, _M2, _PM = _U64(GOLDEN), _U64(MIX1), _U64(MIX2), _U64(PURPOSE_MUL)
_S30, _S27, _S31, _S40, _S11 = _U64(30), _U64(27), _U64(31), _U64(40), _U64(11)
_ONE = _U64(1)
_TWO_M24 = np.float32(2.0 ** -24)
_TWO_M53 = 2.0 ** -53


# ---------------------------------------------------------------------------------------------
# NumPy (vectorised; uint64 arithmetic wraps)
# ---------------------------------------------------------------------------------------------
def _fmix_np(z):
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> _S30)) * _M1
        z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def stream_key_np(seed: int, example, purpose: int):
    """Stream keys ``k_s`` (uint64 array shaped like ``example``)."""
    example = np.asarray(example, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        ke = _fmix_np(_U64(seed % 2**64) + _G * (example + _ONE))
        return _fmix_np(ke ^ (_U64(purpose) * _PM))


def words_np(stream_key, index):
    """64-bit words ``w_i`` for ``index`` (broadcast against ``stream_key``)."""
    index = np.asarray(index, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        return _fmix_np(np.asarray(stream_key, dtype=np.uint64) + _G * (index + _ONE))


def uniform32_np(stream_key, index) -> np.ndarray:
    """float32 uniforms in [0, 1) (24 random bits, bit-identical to every kernel engine)."""
    return (words_np(stream_key, index) >> _S40).astype(np.float32) * _TWO_M24


def uniform64_np(stream_key, index) -> np.ndarray:
    """float64 uniforms in [0, 1) (53 random bits)."""
    return (words_np(stream_key, index) >> _S11).astype(np.float64) * _TWO_M53


def normal64_np(stream_key, index_u, index_v) -> np.ndarray:
    """Standard normals by Box-Muller from the uniforms at ``index_u`` and ``index_v``."""
    u = uniform64_np(stream_key, index_u)
    v = uniform64_np(stream_key, index_v)
    return np.sqrt(-2.0 * np.log1p(-u)) * np.cos(2.0 * np.pi * v)


def dihedral_indices_np(seed: int, examples) -> np.ndarray:
    """The dihedral transform index (0..7) that ``augment=True`` gives each example."""
    key = stream_key_np(seed, examples, AUGMENT)
    return (words_np(key, 0) >> _U64(61)).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Numba (scalar; inlined into the CPU kernels): one source, kernels/_hash_rng_scalar.py
# ---------------------------------------------------------------------------------------------
from . import _hash_rng_scalar  # noqa: E402

_cpu = _hash_rng_scalar.compile_for(lambda f: njit(inline="always")(f), "cpu")
fmix, stream_key, word = _cpu.fmix, _cpu.stream_key, _cpu.word
uniform32, uniform64, normal64, dihedral_index = _cpu.uniform32, _cpu.uniform64, _cpu.normal64, _cpu.dihedral_index


def seed_u64(seed: int) -> np.uint64:
    """A Python int seed as the uint64 the kernels take (negative seeds wrap)."""
    return np.uint64(int(seed) % 2**64)
