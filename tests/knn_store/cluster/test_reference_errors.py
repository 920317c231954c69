"""Bad input to ``ssddbc`` / ``SSDDBC``: a specific KnnStoreError subclass naming the parameter, no result."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from knn_store import SSDDBC, InvalidFeaturesError, InvalidParameterError, KnnStoreError, ssddbc
from knn_store.errors import InvalidLabelsError


@pytest.fixture(scope="module")
def tiny() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 5)).astype(np.float32)
    y = np.repeat([0, 1, 2, 3], 10)
    return x, y, y < 2


def _nan(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    x[3, 2] = np.nan
    return x


# (name, how to break the call, expected error, word the message must contain)
BAD: list[tuple[str, Any, type[KnnStoreError], str]] = [
    ("features-1d", lambda x, y, m: {"features": x[:, 0]}, InvalidFeaturesError, "features"),
    ("features-nan", lambda x, y, m: {"features": _nan(x)}, InvalidFeaturesError, "NaN"),
    ("features-none", lambda x, y, m: {"features": None}, InvalidFeaturesError, "features"),
    ("labels-shape", lambda x, y, m: {"labels": y[:-1]}, InvalidLabelsError, "labels"),
    ("mask-shape", lambda x, y, m: {"labeled_mask": m[:-1]}, InvalidLabelsError, "labeled_mask"),
    ("mask-not-bool", lambda x, y, m: {"labeled_mask": m.astype(int)}, InvalidLabelsError, "labeled_mask"),
    ("no-labels", lambda x, y, m: {"labeled_mask": np.zeros_like(m)}, InvalidLabelsError, "labeled_mask"),
    ("one-class", lambda x, y, m: {"labeled_mask": y == 0}, InvalidLabelsError, "2 classes"),
    ("k-too-big", lambda x, y, m: {"k": 40}, InvalidParameterError, "k must"),
    ("k-zero", lambda x, y, m: {"k": 0}, InvalidParameterError, "k must"),
    ("k-float", lambda x, y, m: {"k": 3.5}, InvalidParameterError, "k must"),
    ("percentile-low", lambda x, y, m: {"density_percentile": -1}, InvalidParameterError, "density_percentile"),
    ("percentile-high", lambda x, y, m: {"density_percentile": 100.5}, InvalidParameterError, "density_percentile"),
    ("dense-method", lambda x, y, m: {"dense_method": 4}, InvalidParameterError, "dense_method"),
    ("dense-method-list", lambda x, y, m: {"dense_method": [1]}, InvalidParameterError, "dense_method"),
    ("co-mode-array", lambda x, y, m: {"co_mode": np.array([1, 2])}, InvalidParameterError, "co_mode"),
    ("assign-model", lambda x, y, m: {"assign_model": 0}, InvalidParameterError, "assign_model"),
    ("co-mode", lambda x, y, m: {"co_mode": 5}, InvalidParameterError, "co_mode"),
    ("co-manual-missing", lambda x, y, m: {"co_mode": 1}, InvalidParameterError, "co_manual"),
    ("co-manual-text", lambda x, y, m: {"co_mode": 1, "co_manual": "0.3"}, InvalidParameterError, "co_manual"),
    # Python ints beyond float range: judged by value (np.isfinite raised a TypeError naming no parameter).
    ("co-manual-huge", lambda x, y, m: {"co_mode": 1, "co_manual": 10**400}, InvalidParameterError, "co_manual"),
    ("co-manual-huge-negative", lambda x, y, m: {"co_mode": 1, "co_manual": -(10**400)}, InvalidParameterError,
     "co_manual"),
    ("ours-with-reference-param", lambda x, y, m: {"algorithm": "ours", "voting_k": 3}, InvalidParameterError,
     "voting_k"),
    ("voting-k", lambda x, y, m: {"voting_k": 0}, InvalidParameterError, "voting_k"),
    ("unknown-param", lambda x, y, m: {"relative": False}, InvalidParameterError, "relative"),
    ("unknown-algorithm", lambda x, y, m: {"algorithm": "dbscan"}, InvalidParameterError, "algorithm"),
    ("knn-narrow", lambda x, y, m: {"precomputed_knn": (np.zeros((40, 2), int), np.zeros((40, 2)))},
     InvalidParameterError, "precomputed_knn"),
    ("knn-ids", lambda x, y, m: {"precomputed_knn": (np.full((40, 5), 99), np.zeros((40, 5)))},
     InvalidParameterError, "precomputed_knn"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "change", "error", "word"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_names_the_parameter(tiny, case: str, change: Any, error: type, word: str) -> None:
    x, y, m = tiny
    call = {"features": x, "labels": y, "labeled_mask": m, "k": 5, "density_percentile": 50} | change(x, y, m)
    with pytest.raises(error, match=word):
        ssddbc(call.pop("features"), call.pop("labels"), call.pop("labeled_mask"), **call)


def test_estimator_validates_in_fit_not_init(tiny) -> None:
    x, y, m = tiny
    est = SSDDBC(k=5, density_percentile=50, assign_model=7)  # storing is fine (scikit-learn convention)
    with pytest.raises(InvalidParameterError, match="assign_model"):
        est.fit(x, y, m)
    assert not hasattr(est, "labels_")
    with pytest.raises(ValueError, match="bogus"):
        est.set_params(bogus=1)


def test_good_input_still_works(tiny) -> None:
    x, y, m = tiny
    assert ssddbc(x, y, m, k=5, density_percentile=50).labels.shape == (40,)


def test_co_manual_beyond_int64_is_a_distance(tiny) -> None:
    """A Python int beyond int64 but within float range is a valid cut-off (np.isfinite refused it)."""
    x, y, m = tiny
    got = ssddbc(x, y, m, k=5, density_percentile=50, co_mode=1, co_manual=2**64)
    want = ssddbc(x, y, m, k=5, density_percentile=50, co_mode=1, co_manual=float(2**64))
    np.testing.assert_array_equal(got.labels, want.labels)
