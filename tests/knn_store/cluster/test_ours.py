from __future__ import annotations

import numpy as np
import pytest

from knn_store import InvalidParameterError, KNNStore, gcd_scores, load, median_density, ssddbc_sweep
from knn_store.cluster.ours import ssddbc


@pytest.fixture(scope="module")
def digits_knn(digits_gcd, tmp_path_factory):
    x, _, _ = digits_gcd
    ref = KNNStore(tmp_path_factory.mktemp("store"), backend="numpy").ensure(x, 21)
    return load(ref, 21)


def test_median_density_matches_numpy_median(digits_knn) -> None:
    nb, ds = digits_knn
    for k in (4, 5):
        expected = 1 / (np.median(ds[:, :k].astype(np.float64), axis=1) + 1e-8)
        np.testing.assert_allclose(median_density(nb[:, :k], ds[:, :k]), expected)


@pytest.mark.parametrize(("k", "percentile"), [(5, 50), (10, 60), (20, 80)])
def test_digits_gcd_split(digits_gcd, digits_knn, k: int, percentile: float) -> None:
    _x, y, labeled = digits_gcd
    res = ssddbc(None, y, labeled, k=k, density_percentile=percentile, precomputed_knn=digits_knn)
    scores = gcd_scores(y, res.labels, labeled)
    print(
        f"digits k={k} p={percentile}: {res.n_clusters} clusters, {res.new_class_clusters.size} new, {scores}"
    )
    # Digits are easy: far above chance (0.1) on both Old and New classes.
    assert scores["acc_all"] > 0.6
    assert scores["acc_old"] > 0.5
    assert scores["acc_new"] > 0.5
    assert scores["nmi"] > 0.7
    assert res.labels.shape == y.shape
    assert res.core.sum() == pytest.approx((1 - percentile / 100) * y.size, rel=0.05)
    # Cannot-link: no cluster's core holds two different given labels.
    for c in range(res.n_clusters):
        given = np.unique(y[(res.labels == c) & res.core & labeled])
        assert given.size <= 1
        if given.size:
            assert res.cluster_class[c] == given[0]
    # New-class candidates have no labelled member.
    assert not np.isin(res.labels[labeled], res.new_class_clusters).any()


def test_deterministic_and_precomputed_equals_features(digits_gcd, digits_knn) -> None:
    x, y, labeled = digits_gcd
    a = ssddbc(None, y, labeled, k=10, density_percentile=70, precomputed_knn=digits_knn)
    b = ssddbc(None, y, labeled, k=10, density_percentile=70, precomputed_knn=digits_knn)
    c = ssddbc(x, y, labeled, k=10, density_percentile=70)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.labels, c.labels)
    # Cluster ids are numbered by smallest member index.
    firsts = [np.flatnonzero(a.labels == cid)[0] for cid in range(a.n_clusters)]
    assert firsts == sorted(firsts)


def test_labels_with_arbitrary_encoding(digits_gcd, digits_knn) -> None:
    _, y, labeled = digits_gcd
    a = ssddbc(None, y, labeled, k=8, density_percentile=60, precomputed_knn=digits_knn)
    b = ssddbc(None, y * 10 + 100, labeled, k=8, density_percentile=60, precomputed_knn=digits_knn)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_bad_arguments(digits_gcd, digits_knn) -> None:
    _, y, labeled = digits_gcd
    with pytest.raises(InvalidParameterError, match="density_percentile"):
        ssddbc(None, y, labeled, k=5, density_percentile=120, precomputed_knn=digits_knn)
    with pytest.raises(InvalidParameterError, match="exceeds"):
        ssddbc(None, y, labeled, k=30, density_percentile=50, precomputed_knn=digits_knn)
    with pytest.raises(InvalidParameterError, match="features or precomputed_knn"):
        ssddbc(None, y, labeled, k=5, density_percentile=50)
    with pytest.raises(ValueError, match="shape"):
        ssddbc(None, y[:-1], labeled, k=5, density_percentile=50, precomputed_knn=digits_knn)


@pytest.mark.parametrize("fraction", [0.0, 1.0], ids=["no-labels", "all-labelled"])
def test_extreme_label_fractions(digits_gcd, digits_knn, fraction: float) -> None:
    _, y, _ = digits_gcd
    labeled = np.full(y.shape, fraction == 1.0)
    res = ssddbc(None, y, labeled, k=10, density_percentile=50, precomputed_knn=digits_knn)
    assert res.labels.shape == y.shape
    if fraction == 0.0:
        assert res.new_class_clusters.size == res.n_clusters  # nothing is known: every cluster is new
    else:
        assert res.new_class_clusters.size == 0


def test_sweep_equals_individual_calls(digits_gcd, digits_knn) -> None:
    _, y, labeled = digits_gcd
    percentiles = [40, 65, 90]
    swept = ssddbc_sweep(y, labeled, k=12, density_percentiles=percentiles, precomputed_knn=digits_knn)
    for p, res in zip(percentiles, swept, strict=True):
        single = ssddbc(None, y, labeled, k=12, density_percentile=p, precomputed_knn=digits_knn)
        np.testing.assert_array_equal(res.labels, single.labels)
        np.testing.assert_array_equal(res.cluster_class, single.cluster_class)
