"""``check_weights``: the L2 weights of the users' loss, judged by value."""

from __future__ import annotations

import numpy as np
import pytest

from knn_store import InvalidParameterError
from knn_store.cluster.loss import check_weights


@pytest.mark.parametrize(
    "weight",
    [10**400, -(10**400), float("inf"), float("nan"), "1", None, True],
    ids=["1e400-int", "-1e400-int", "inf", "nan", "text", "none", "bool"],
)
def test_bad_weight_names_l2_weights(weight: object) -> None:
    # Python ints beyond uint64 reached np.isfinite, whose TypeError named no parameter.
    with pytest.raises(InvalidParameterError, match="l2_weights"):
        check_weights({"silhouette": weight})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    "weight", [2**64, 3, 0.5, np.float32(2), np.int64(1)], ids=["2**64", "int", "float", "float32", "int64"]
)
def test_finite_weights_are_kept(weight: float) -> None:
    assert check_weights({"silhouette": weight}) == {"silhouette": weight}
