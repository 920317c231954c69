"""The compiled pair scorer equals NumPy's float64 evaluation bit for bit (pairwise summation order)."""

from __future__ import annotations

import numpy as np
import pytest

from knn_store._kernels import _pairwise_sum, pair_d2


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 127, 128, 129, 255, 256, 767, 768, 769, 3001])
def test_pairwise_sum_equals_numpy_sum(n: int) -> None:
    rng = np.random.default_rng(n)
    for _ in range(20):
        # Wildly varying magnitudes make any change of summation order visible in the last bits.
        a = rng.standard_normal(n) * 10.0 ** rng.integers(-8, 8, n)
        assert _pairwise_sum(a) == a.sum()


def test_pair_d2_equals_numpy_rows() -> None:
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((50, 300)) * 10.0 ** rng.integers(-3, 3, 300)).astype(np.float32)
    cand = rng.integers(-1, 50, (50, 7))
    out = np.empty(cand.shape)
    v = x.astype(np.float64)
    pair_d2(v, x, cand, out)
    expected = np.where(cand >= 0, ((v[np.maximum(cand, 0)] - v[:, None, :]) ** 2).sum(axis=-1), np.inf)
    assert np.array_equal(out, expected)


def test_smallest_keeps_the_m_smallest_in_order() -> None:
    from knn_store._kernels import smallest

    rng = np.random.default_rng(2)
    a = rng.integers(0, 50, (40, 300)).astype(np.float32)  # many ties
    idx = np.empty((40, 9), dtype=np.int64)
    val = np.empty((40, 9), dtype=np.float32)
    smallest(a, 9, idx, val)
    assert np.array_equal(val, np.sort(a, axis=1)[:, :9])
    assert np.array_equal(np.take_along_axis(a, idx, axis=1), val)
    assert all(len(set(row)) == 9 for row in idx)
