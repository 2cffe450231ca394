"""The scalar counter-based RNG (SplitMix64, see ``_hash_rng``), written once in plain Python.

:func:`compile_for` executes this file again as a fresh module and replaces every function in
:data:`FUNCTIONS` by its compiled version for one target, so the calls between them (``word``
calls ``fmix``, ...) resolve to the same target: ``numba.njit`` for the CPU kernels
(``_hash_rng``) and ``numba.cuda.jit(device=True)`` for the Numba CUDA kernels
(``_partial_scan_numba_cuda``; an ``@njit`` function is not callable from every Numba CUDA
build, so the CUDA copy is compiled from the same source rather than called). The CUDA C twin
is ``cuda/hash_rng.cuh``; the vectorised NumPy oracle is in ``_hash_rng``. All arithmetic is
modulo 2**64 on uint64.
"""

import importlib.util
import math

import numpy as np

_U64 = np.uint64
_G = _U64(0x9E3779B97F4A7C15)
_M1 = _U64(0xBF58476D1CE4E5B9)
_M2 = _U64(0x94D049BB133111EB)
_PM = _U64(0xD1B54A32D192ED03)
_S30, _S27, _S31, _S40, _S11, _S61 = _U64(30), _U64(27), _U64(31), _U64(40), _U64(11), _U64(61)
_ZERO, _ONE = _U64(0), _U64(1)
_AUGMENT = _U64(5)
_TWO_M24 = np.float32(2.0 ** -24)
_TWO_M53 = 2.0 ** -53

FUNCTIONS = ("fmix", "stream_key", "word", "uniform32", "uniform64", "normal64", "dihedral_index")


def fmix(z):
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def stream_key(seed, example, purpose):
    """``seed``, ``example``, ``purpose``: uint64 (callers cast)."""
    ke = fmix(seed + _G * (example + _ONE))
    return fmix(ke ^ (purpose * _PM))


def word(key, index):
    return fmix(key + _G * (index + _ONE))


def uniform32(key, index):
    return np.float32(word(key, index) >> _S40) * _TWO_M24


def uniform64(key, index):
    return np.float64(word(key, index) >> _S11) * _TWO_M53


def normal64(key, index_u, index_v):
    u = uniform64(key, index_u)
    v = uniform64(key, index_v)
    return math.sqrt(-2.0 * math.log1p(-u)) * math.cos(2.0 * math.pi * v)


def dihedral_index(seed, example):
    return np.int64(word(stream_key(seed, example, _AUGMENT), _ZERO) >> _S61)


def compile_for(decorate, name: str):
    """A fresh copy of this module with every function of :data:`FUNCTIONS` wrapped by ``decorate``."""
    spec = importlib.util.spec_from_file_location(f"{__name__}_{name}", __file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for fname in FUNCTIONS:
        setattr(module, fname, decorate(getattr(module, fname)))
    return module
