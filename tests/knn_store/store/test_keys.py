from __future__ import annotations

import numpy as np
import pytest

from knn_store.store.keys import entry_key, feature_digest


def test_digest_ignores_memory_layout_but_not_values(features: np.ndarray) -> None:
    fortran = np.asfortranarray(features)
    assert feature_digest(features) == feature_digest(fortran) == feature_digest(features.copy())
    changed = features.copy()
    changed[17, 3] = np.nextafter(changed[17, 3], np.float32(np.inf))
    assert feature_digest(changed) != feature_digest(features)


@pytest.mark.parametrize(
    "variant",
    [
        lambda x: x.astype(np.float64),
        lambda x: x.reshape(x.shape[0] * 2, -1),
        lambda x: x[:-1],
    ],
    ids=["dtype", "shape", "rows"],
)
def test_digest_covers_dtype_and_shape(features: np.ndarray, variant) -> None:
    assert feature_digest(variant(features)) != feature_digest(features)


def test_entry_key_depends_on_every_part() -> None:
    base = {"metric": "euclidean", "backend": "numpy", "conventions": {"self": "by-index"}}
    key = entry_key("d" * 32, **base)
    assert len(key) == 32
    assert key == entry_key("d" * 32, **base)
    assert entry_key("e" * 32, **base) != key
    for field, value in [("metric", "cosine"), ("backend", "sklearn"), ("conventions", {"self": "kept"})]:
        assert entry_key("d" * 32, **{**base, field: value}) != key
