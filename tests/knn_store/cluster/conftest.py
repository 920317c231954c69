"""Fixtures of the clustering tests: a small L2-normalised digits GCD split and the users' job re-implemented."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from knn_store.neighbors import exact_knn


@pytest.fixture(scope="session")
def users() -> ModuleType:
    """``benchmarks/_ssddbc_users.py``: the users' job, loop for loop (the truth the reference must match)."""
    path = Path(__file__).resolve().parents[3] / "benchmarks" / "_ssddbc_users.py"
    spec = importlib.util.spec_from_file_location("_ssddbc_users", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def gcd_small() -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """500 digits, L2-normalised float32 (as the users' features); classes 0-6 Old, half of them labelled.

    Returns features, labels, labeled_mask and the exact kNN at k_max=25 (self excluded, (distance, index)).
    """
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x, y = x[:500], y[:500]
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    labeled = (y < 7) & (np.random.default_rng(0).random(y.size) < 0.5)
    return x, y, labeled, exact_knn(x, 25)
