"""gather_rows (rows by element offset, e.g. from a memory-mapped file) and assign_accumulate on a
flat vector: against plain NumPy, at odd sizes, with the errors named."""

from __future__ import annotations

import numpy as np
import pytest

from fastem.errors import InputError
from fastem.kernels import assign_accumulate, gather_rows


@pytest.mark.parametrize("L,d,m", [(1, 1, 1), (1000, 7, 33), (50_001, 129, 257)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_gather_rows_against_numpy(rng, L, d, m, dtype, engine):
    flat = rng.standard_normal(L).astype(dtype)
    offsets = rng.integers(0, L - d + 1, m).astype(np.int64)       # any offsets, unaligned, repeated
    out = np.empty((m, d), dtype)
    got = gather_rows(flat, offsets, out, engine=engine)
    assert got is out
    np.testing.assert_array_equal(out, np.stack([flat[o:o + d] for o in offsets]))


def test_gather_rows_errors():
    flat = np.arange(10, dtype=np.float32)
    out = np.empty((2, 3), np.float32)
    with pytest.raises(InputError, match=r"offsets must lie in \[0, 7\]"):
        gather_rows(flat, np.array([0, 8]), out)
    with pytest.raises(InputError, match="offsets must lie in"):
        gather_rows(flat, np.array([-1, 0]), out)
    with pytest.raises(InputError, match="out must be C-contiguous float32"):
        gather_rows(flat, np.array([0, 1]), np.empty((2, 3)))
    with pytest.raises(InputError, match="offsets must be int64"):
        gather_rows(flat, np.array([0, 1], np.int32), out)
    with pytest.raises(InputError, match="out has 2 rows for 3 offsets"):
        gather_rows(flat, np.array([0, 1, 2]), out)


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_assign_on_a_flat_vector_equals_the_gathered_batch(rng, engine):
    X = rng.standard_normal((301, 37)).astype(np.float32)
    C = X[rng.choice(301, 6, replace=False)].copy()
    flat = np.concatenate([np.zeros(5, np.float32), X.ravel()])     # rows at an unaligned offset
    rows = rng.integers(0, 301, 700)
    got = assign_accumulate(flat, C, rows=5 + rows * 37, engine=engine)
    want = assign_accumulate(np.ascontiguousarray(X[rows]), C, engine=engine)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_assign_flat_errors(rng):
    flat = rng.random(100).astype(np.float32)
    C = rng.random((2, 10)).astype(np.float32)
    with pytest.raises(InputError, match=r"element offsets in \[0, 90\]"):
        assign_accumulate(flat, C, rows=np.array([91]))
    with pytest.raises(InputError, match="rows must be a 1-D integer array"):
        assign_accumulate(flat, C, rows=np.array([1.0]))
