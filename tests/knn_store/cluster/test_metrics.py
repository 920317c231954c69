from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from knn_store import InvalidParameterError, cluster_acc, gcd_scores, split_cluster_acc
from knn_store.cluster.metrics import adjusted_rand_index, normalized_mutual_info


def test_accuracy_is_invariant_to_cluster_renaming() -> None:
    y = np.array([0, 0, 1, 1, 2, 2])
    assert cluster_acc(y, np.array([5, 5, 9, 9, -1, -1])) == 1.0
    assert cluster_acc(y, np.array([0, 0, 0, 0, 0, 0])) == pytest.approx(2 / 6)


def test_one_assignment_over_all_points_v2() -> None:
    # Cluster 7 is half class 0 (Old) and half class 1 (New); v2 maps it once for both subsets.
    y_true = np.array([0, 0, 1, 1])
    y_pred = np.array([7, 7, 7, 7])
    old = y_true == 0
    acc_all, acc_old, acc_new = split_cluster_acc(y_true, y_pred, old)
    assert acc_all == 0.5
    # A per-subset assignment (the inflated v1) would score 1.0 on both; v2 gives one of them 0.
    assert sorted([acc_old, acc_new]) == [0.0, 1.0]


def test_more_clusters_than_classes_counts_unmatched_as_wrong() -> None:
    y_true = np.array([0, 0, 0, 1])
    assert cluster_acc(y_true, np.array([0, 1, 2, 3])) == 0.5


def test_gcd_scores_use_unlabelled_points_only() -> None:
    y = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    labeled = np.array([True, False, False, True, False, False, False, False])
    pred = np.array([9, 0, 0, 9, 1, 1, 2, 2])  # labelled points wrong on purpose: they are not scored
    scores = gcd_scores(y, pred, labeled)
    assert scores == {"acc_all": 1.0, "acc_old": 1.0, "acc_new": 1.0, "ari": 1.0, "nmi": 1.0}


def test_empty_subset_gives_nan_and_shapes_are_checked() -> None:
    _, _, acc_new = split_cluster_acc(np.array([0, 1]), np.array([0, 1]), np.array([True, True]))
    assert np.isnan(acc_new)
    with pytest.raises(InvalidParameterError):
        cluster_acc(np.array([0, 1]), np.array([0]))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 4), st.integers(-1, 6)), min_size=1, max_size=60),
)
def test_ari_and_nmi_match_scikit_learn(pairs: list[tuple[int, int]]) -> None:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    y_true, y_pred = np.array(pairs).T
    assert adjusted_rand_index(y_true, y_pred) == pytest.approx(
        adjusted_rand_score(y_true, y_pred), abs=1e-12
    )
    assert normalized_mutual_info(y_true, y_pred) == pytest.approx(
        normalized_mutual_info_score(y_true, y_pred), abs=1e-12
    )
