"""``grid_search`` in the users' language: the reference algorithm, their loss columns and rule, cluster_fn."""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest

from knn_store import InvalidParameterError, best_configurations, gcd_scores, grid_search, ssddbc
from knn_store.cluster.reference import reference_ssddbc

KS = [4, 9]
PS = (50, 80)


@pytest.fixture(scope="module")
def gcd300(gcd_small):
    x, y, labeled, _ = gcd_small
    return x[:300], y[:300], labeled[:300]


@pytest.fixture(scope="module")
def reference_table(gcd300) -> pd.DataFrame:
    x, y, labeled = gcd300
    return grid_search(x, y, labeled, KS, PS, progress=False)


def test_default_grid_is_theirs() -> None:
    sig = inspect.signature(grid_search).parameters
    ks, ps = sig["ks"].default, sig["density_percentiles"].default
    assert list(ks) == list(range(3, 21))
    assert list(ps) == list(range(40, 95, 5))
    assert len(ks) * len(ps) == 198
    assert sig["algorithm"].default == "reference"


def test_rows_are_the_direct_jobs_with_their_loss(gcd300, users, reference_table) -> None:
    x, y, labeled = gcd300
    assert len(reference_table) == len(KS) * len(PS)
    for row in reference_table.itertuples():
        labels = ssddbc(x, y, labeled, k=row.k, density_percentile=row.density_percentile).labels
        assert row.acc_all == gcd_scores(y, labels, labeled)["acc_all"]
        # Their job, loop for loop, scores the same clustering with the same loss (variant B weights).
        theirs = users.users_job(
            x, y, labeled, ~labeled, y < 7, k=row.k, density_percentile=row.density_percentile
        )
        assert row.n_clusters == theirs["n_clusters"]
        assert row.l1 == pytest.approx(theirs["l1"], abs=1e-12)
        assert row.l2 == pytest.approx(theirs["l2"], abs=1e-5)  # float32 distances, summed another way
        assert row.loss == pytest.approx(row.l1 + row.l2)
        assert row.score == pytest.approx(row.l2 - row.l1)


def test_variant_a_loss_has_no_l2(gcd300) -> None:
    x, y, labeled = gcd300
    df = grid_search(x, y, labeled, [5], [60], dense_method=0, assign_model=2, l2_weights={}, progress=False)
    assert (df.l2 == 0).all()
    assert (df.loss == df.l1).all()
    a = reference_ssddbc(x, y, labeled, k=5, density_percentile=60, dense_method=0, assign_model=2)
    assert df.acc_all.iloc[0] == gcd_scores(y, a.labels, labeled)["acc_all"]


def test_cluster_fn_runs_a_user_function_on_the_cached_knn(gcd300, reference_table) -> None:
    x, y, labeled = gcd300
    seen = []

    def theirs(features, labels, labeled_mask, k, params, precomputed_knn):
        nb, ds = precomputed_knn
        assert nb.shape == ds.shape == (features.shape[0], k)  # sliced to the job's k, self excluded
        assert (nb != np.arange(nb.shape[0])[:, None]).all()
        seen.append((k, params["density_percentile"]))
        return reference_ssddbc(
            features, labels, labeled_mask, k=k, density_percentile=params["density_percentile"],
            precomputed_knn=precomputed_knn,
        ).labels  # fmt: skip

    df = grid_search(x, y, labeled, KS, PS, cluster_fn=theirs, progress=False)
    assert sorted(seen) == [(k, float(p)) for k in KS for p in PS]
    cols = [c for c in df.columns if c not in ("seconds", "l2", "loss", "score")]
    pd.testing.assert_frame_equal(df[cols], reference_table[cols])
    assert df.attrs["algorithm"] == "cluster_fn"


def test_their_selection_rule_takes_the_first_best_in_k_major_order() -> None:
    table = pd.DataFrame(
        {
            "feature_set": ["f"] * 4,
            "k": [3, 3, 5, 7],
            "density_percentile": [60.0, 40.0, 40.0, 40.0],
            "acc_all": [0.9, 0.8, 0.9, 0.9],
            "nmi": [0.1, 0.1, 0.2, 0.9],
            "ari": [0.0] * 4,
            "score": [1.0, 2.0, 2.0, 0.0],
        }
    )
    assert best_configurations(table, rule="first")[["k", "density_percentile"]].values.tolist() == [
        [3, 60.0]
    ]
    assert best_configurations(table, rule="ours").k.tolist() == [7]  # ties broken by nmi
    assert best_configurations(table, by="score", rule="first")[
        ["k", "density_percentile"]
    ].values.tolist() == [[3, 40.0]]


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"cluster_fn": 3}, "cluster_fn"),
        ({"algorithm": "kmeans"}, "algorithm"),
        ({"cluster_params": {"bogus": 1}}, "bogus"),
        ({"cluster_params": {"assign_model": 9}}, "assign_model"),
        ({"assign_model": 9}, "assign_model"),
        ({"voting_k": 3, "cluster_params": {"voting_k": 4}}, "voting_k"),
        ({"metric": "cosine"}, "metric"),
        ({"select_rule": "last"}, "select_rule"),
        ({"l2_weights": {"dbcv": 1.0}}, "l2_weights"),
    ],
)
def test_bad_options_fail_before_any_work(gcd300, kwargs, word) -> None:
    x, y, labeled = gcd300
    with pytest.raises(InvalidParameterError, match=word):
        grid_search(x, y, labeled, [4], [50], progress=False, **kwargs)


def test_variant_b_is_what_the_defaults_give() -> None:
    import inspect

    from knn_store.cluster.jobs import VARIANTS
    from knn_store.cluster.loss import DEFAULT_WEIGHTS
    from knn_store.cluster.reference import reference_sweep

    params, weights = VARIANTS["B"]
    defaults = inspect.signature(reference_sweep).parameters
    assert {name: defaults[name].default for name in params} == params
    assert weights == DEFAULT_WEIGHTS
    assert set(VARIANTS["A"][0]) == set(params)  # the copies differ only in these parameters
