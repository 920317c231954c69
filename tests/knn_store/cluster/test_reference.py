"""The users' SS-DDBC (``algorithm="reference"``): label for label against their job, and hand-checked rules."""

from __future__ import annotations

import numpy as np
import pytest

from knn_store import SSDDBC, ssddbc
from knn_store.cluster._reference_assign import assign_non_core
from knn_store.cluster._reference_distances import Points
from knn_store.cluster.metrics import adjusted_rand_index
from knn_store.cluster.reference import reference_ssddbc, reference_sweep

# Every dense_method, co_mode and assign_model the users' code accepts, each at least once.
CONFIGS = [
    {"dense_method": 1, "assign_model": 3},  # their variant B (the default)
    {"dense_method": 0, "assign_model": 2},  # their variant A
    {"dense_method": 2, "assign_model": 1},
    {"dense_method": 3, "assign_model": 3, "co_mode": 3},
    {"dense_method": 0, "assign_model": 2, "co_mode": 1, "co_manual": 0.35, "voting_k": 3},
]


# Each configuration at one grid point, the default one at three (small k / low p makes many clusters).
CASES = [(CONFIGS[0], 3, 40), (CONFIGS[0], 20, 90)] + [
    (c, k, p) for c, (k, p) in zip(CONFIGS, [(8, 65)] + [(4, 50), (12, 80)] * 2, strict=True)
]


@pytest.mark.parametrize(
    ("params", "k", "percentile"),
    CASES,
    ids=[f"{'-'.join(f'{a}{b}' for a, b in c.items())}-k{k}-p{p}" for c, k, p in CASES],
)
def test_same_labels_as_the_users_job(gcd_small, users, params, k: int, percentile: float) -> None:
    x, y, labeled, knn = gcd_small
    theirs = users.users_labels(x, y, labeled, k=k, density_percentile=percentile, **params)
    ours = ssddbc(x, y, labeled, k=k, density_percentile=percentile, precomputed_knn=knn, **params).labels
    # Not only the same partition: their cluster ids too (creation order, renumbered after the merge).
    np.testing.assert_array_equal(ours, theirs)
    assert adjusted_rand_index(theirs, ours) == 1.0


def test_cache_width_and_fresh_knn_give_the_same_labels(gcd_small) -> None:
    """Core neighbour lists read from a wide cache row, or computed by GEMM, are the same lists."""
    x, y, labeled, knn = gcd_small
    for k, p in [(5, 50), (12, 80)]:
        narrow = reference_ssddbc(
            x, y, labeled, k=k, density_percentile=p, precomputed_knn=(knn[0][:, :k], knn[1][:, :k])
        )
        wide = reference_ssddbc(x, y, labeled, k=k, density_percentile=p, precomputed_knn=knn)
        fresh = reference_ssddbc(x, y, labeled, k=k, density_percentile=p)
        np.testing.assert_array_equal(narrow.labels, wide.labels)
        np.testing.assert_array_equal(narrow.labels, fresh.labels)


def test_sweep_equals_single_jobs(gcd_small) -> None:
    x, y, labeled, knn = gcd_small
    swept = reference_sweep(x, y, labeled, k=7, density_percentiles=[40, 70, 90], precomputed_knn=knn)
    for p, res in zip([40, 70, 90], swept, strict=True):
        single = reference_ssddbc(x, y, labeled, k=7, density_percentile=p, precomputed_knn=knn)
        np.testing.assert_array_equal(res.labels, single.labels)
        np.testing.assert_array_equal(res.core, single.core)


def _canon(labels: np.ndarray) -> np.ndarray:
    """Ids renamed in order of first appearance: equal arrays <=> identical partitions."""
    _, first, inv = np.unique(labels, return_index=True, return_inverse=True)
    return np.argsort(np.argsort(first))[inv]


def _line() -> tuple[np.ndarray, np.ndarray]:
    """16 points on a gently curved line (no distance ties); the first 8 are class 0, the last 8 class 1."""
    x = np.zeros((16, 2), dtype=np.float32)
    x[:, 0] = np.arange(16) * 0.1
    x[:, 1] = np.arange(16) ** 2 * 1e-3
    return x, np.repeat([0, 1], 8)


def test_cannot_link_is_sample_level() -> None:
    """All points core (p=0). Labelled neighbours of different classes are never linked, so with every
    point labelled the line splits between points 7 and 8; with only the two ends labelled nothing stops
    the growth (a cluster needs > 25 % labelled members to carry a class): one cluster."""
    x, y = _line()
    split = ssddbc(x, y, np.ones(16, dtype=bool), k=3, density_percentile=0)
    np.testing.assert_array_equal(_canon(split.labels), np.repeat([0, 1], 8))
    ends = np.isin(np.arange(16), [0, 15])
    joined = ssddbc(x, y, ends, k=3, density_percentile=0)
    np.testing.assert_array_equal(joined.labels, np.zeros(16))


def test_small_cluster_merges_by_label_before_distance() -> None:
    """Two blobs of 6 (classes 0 and 1) and a pair of core points far from both, nearer to blob 0.
    The pair (<= 3 core points) joins blob 0 by distance; once its labelled member says class 1, it joins
    blob 1 instead (label match wins)."""
    x = np.zeros((14, 2), dtype=np.float32)
    x[:6, 0] = np.arange(6) * 0.1 + np.arange(6) ** 2 * 1e-3
    x[6:12, 0] = 5 + np.arange(6) * 0.1 + np.arange(6) ** 2 * 1e-3
    x[12:, 0] = [2.0, 2.07]
    y = np.array([0] * 6 + [1] * 6 + [1, 1])
    labeled = np.zeros(14, dtype=bool)
    labeled[[0, 1, 2, 6, 7, 8]] = True
    by_distance = ssddbc(x, y, labeled, k=2, density_percentile=0)
    np.testing.assert_array_equal(_canon(by_distance.labels), [0] * 6 + [1] * 6 + [0, 0])
    labeled[12] = True
    by_label = ssddbc(x, y, labeled, k=2, density_percentile=0)
    np.testing.assert_array_equal(_canon(by_label.labels), [0] * 6 + [1] * 6 + [1, 1])


def test_each_assign_model_by_hand() -> None:
    """Core cluster 0: 11 points at 0..10 on a line; cluster 1: 3 points at 13, 13.1, 13.2; query at 9.6.

    * model 1 (nearest mean): |9.6 - 5| = 4.6 > |9.6 - 13.1| = 3.5 -> cluster 1;
    * model 3 (3 nearest members): (0.4 + 0.6 + 1.4) / 3 = 0.8 < (3.4 + 3.5 + 3.6) / 3 -> cluster 0;
    * model 2 (5 nearest vote exp(-d)): voters 10, 9, 8, 7 (cluster 0) and 13 (cluster 1) -> cluster 0;
      with voting_k=1 the single nearest voter (10, cluster 0) decides.
    """
    x = np.zeros((15, 2), dtype=np.float32)
    x[:11, 0] = np.arange(11)
    x[11:14, 0] = [13, 13.1, 13.2]
    x[14, 0] = 9.6
    core = np.array([0] * 11 + [1] * 3 + [-1])
    points = Points(x)
    got = {m: assign_non_core(points, core, m, 5)[14] for m in (1, 2, 3)}
    assert got == {1: 1, 2: 0, 3: 0}
    x[14, 0] = 12.4  # now 3 votes from cluster 1 (0.6, 0.7, 0.8) beat 2 from cluster 0 (2.4, 3.4)
    assert assign_non_core(Points(x), core, 2, 5)[14] == 1


def test_duplicate_points(gcd_small, users) -> None:
    """Exact duplicates: self is removed by index (the users drop column 0, which for the higher-index copy
    is its lower-index twin, keeping self). Documented outcome: the same partition on this data (cluster
    ids may differ: the densities of the copies differ, so seeds come in another order), and a point and its
    copy always share a cluster (they have the same distances to everything)."""
    x, y, labeled, _ = gcd_small
    dup = np.r_[np.arange(300), np.arange(0, 60, 3)]
    xd, yd, ld = x[dup], y[dup], labeled[dup]
    for k, p in [(5, 50), (10, 70)]:
        ours = ssddbc(xd, yd, ld, k=k, density_percentile=p).labels
        np.testing.assert_array_equal(ours[300:], ours[np.arange(0, 60, 3)])
        theirs = users.users_labels(xd, yd, ld, k=k, density_percentile=p)
        np.testing.assert_array_equal(_canon(ours), _canon(theirs))


def test_estimator_matches_function(gcd_small) -> None:
    x, y, labeled, knn = gcd_small
    est = SSDDBC(k=6, density_percentile=70, precomputed_knn=knn)
    np.testing.assert_array_equal(
        est.fit(x, y, labeled).labels_, ssddbc(x, y, labeled, k=6, density_percentile=70).labels
    )
    assert est.core_sample_mask_.dtype == bool
    a = SSDDBC(k=6, density_percentile=70, dense_method=0, assign_model=2)
    assert a.set_params(k=7).get_params()["k"] == 7
    from sklearn.base import clone

    assert clone(a).get_params()["dense_method"] == 0
    ours = SSDDBC(k=6, density_percentile=70, algorithm="ours").fit_predict(x, y, labeled)
    np.testing.assert_array_equal(
        ours, ssddbc(x, y, labeled, k=6, density_percentile=70, algorithm="ours").labels
    )


def test_result_reports_classes_and_new_clusters(gcd_small) -> None:
    x, y, labeled, knn = gcd_small
    res = ssddbc(x, y, labeled, k=8, density_percentile=60, precomputed_knn=knn)
    assert res.labels.min() >= 0
    assert res.n_clusters == res.labels.max() + 1
    for c in res.new_class_clusters:
        assert not labeled[res.labels == c].any()
    for c, cls in enumerate(res.cluster_class):
        members = (res.labels == c) & res.core & labeled
        if cls >= 0:  # >= 80 % of its labelled core members carry that class
            assert (y[members] == cls).mean() >= 0.8


@pytest.mark.parametrize("seed", range(4))
def test_pruned_nearest3_equals_all_clusters(seed: int) -> None:
    """assign_model 3 skips clusters that cannot win; on tie-rich integer data it must pick what scoring
    every cluster picks (lowest id on exact ties)."""
    from knn_store.cluster._reference_assign import _by_cluster, _nearest3
    from knn_store.cluster._reference_grow import nearest3_mean

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 4, size=(300, 3)).astype(np.float32)  # many exact ties and duplicates
    labels = rng.integers(-1, 9, size=300)
    pending = np.flatnonzero(labels < 0)
    points = Points(x)
    cols, starts, ends = _by_cluster(labels)
    every = np.argmin(nearest3_mean(points.distances(pending, cols), starts, ends), axis=1)
    np.testing.assert_array_equal(_nearest3(points, labels, pending, 5), every)
