"""The plateau-anchored fit of fast transitions (``tau._anchored``)."""

from __future__ import annotations

import numpy as np
import pytest

from dask_features.extractors.tau._anchored import anchored_fit, edge_delay


@pytest.mark.parametrize("delta", [0.0, 0.3, 0.9])
@pytest.mark.parametrize("k", [0.3, 1.0, 2.5])
def test_noise_free_rows_are_recovered_exactly(delta: float, k: float) -> None:
    u = np.arange(12.0)
    plateau, c = 2.0, -1.0
    y = c + (plateau - c) * np.exp(-k * (u + delta))
    pre = np.full((1, 6), plateau)
    assert edge_delay(y, plateau) == pytest.approx((delta, k), abs=1e-9)
    kk, cc, aa, sigma, _ = anchored_fit(y[None, :], pre, np.array([delta]), np.array([k * 1.7]))
    np.testing.assert_allclose(kk, k, rtol=1e-6)
    np.testing.assert_allclose(cc, c, rtol=1e-6)
    np.testing.assert_allclose(aa, (plateau - c) * np.exp(-k * delta), rtol=1e-6)
    assert sigma[0] < 1e-6


def test_rows_without_a_start_or_a_decay_are_not_fitted() -> None:
    y = np.ones((2, 10))
    out = anchored_fit(y, np.ones((2, 4)), np.array([0.5, np.nan]), np.array([np.nan, 1.0]))
    assert all(np.isnan(v).all() for v in out)
    assert np.isnan(edge_delay(np.ones(10), 1.0)[0])
