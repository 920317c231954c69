"""The compiled pair scorer equals NumPy's float64 evaluation bit for bit (pairwise summation order)."""

from __future__ import annotations

import numpy as np
import pytest

from knn_store._pairwise import _pairwise_sum, pair_d2


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
    one = np.ones(50)
    pair_d2(x, one, one, x, one, one, cand, out)
    v = x.astype(np.float64)
    expected = np.where(cand >= 0, ((v[np.maximum(cand, 0)] - v[:, None, :]) ** 2).sum(axis=-1), np.inf)
    assert np.array_equal(out, expected)
