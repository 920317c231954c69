"""Fixtures shared by the knn_store tests: small feature matrices and a digits GCD split."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

import knn_store.store.memo


@pytest.fixture(autouse=True)
def _fresh_memo() -> Iterator[None]:
    # The per-process memo is keyed by group path; tests that corrupt files must not be served from it.
    knn_store.store.memo.clear_memo()
    yield
    knn_store.store.memo.clear_memo()


@pytest.fixture
def features() -> np.ndarray:
    """300 x 16 float32 Gaussian blobs (3 centres)."""
    rng = np.random.default_rng(42)
    centres = rng.normal(scale=4.0, size=(3, 16))
    return (centres[rng.integers(0, 3, 300)] + rng.normal(size=(300, 16))).astype(np.float32)


@pytest.fixture
def tied_features() -> np.ndarray:
    """Coarsely rounded integer features with many exact distance ties and duplicated rows."""
    rng = np.random.default_rng(7)
    x = rng.integers(0, 3, size=(200, 4)).astype(np.float32)
    return x


@pytest.fixture(scope="session")
def digits_gcd() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn digits with a GCD split: classes 0-4 are Old (half of their points labelled), 5-9 New."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    labeled = (y < 5) & (rng.random(y.size) < 0.5)
    return x.astype(np.float32), y, labeled
