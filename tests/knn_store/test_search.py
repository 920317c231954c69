from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from distributed import get_task_stream

from knn_store import (
    InvalidFeaturesError,
    InvalidNameError,
    InvalidParameterError,
    KNNStore,
    best_configurations,
    grid_search,
    run_clustering_search_on_features,
)
from knn_store.search import COLUMNS

KS = range(3, 9)
PERCENTILES = (50, 70, 90)


@pytest.fixture(scope="module")
def small_gcd(digits_gcd):
    """600 digits points and two feature sets (raw and square-rooted pixels)."""
    x, y, labeled = digits_gcd
    sel = np.arange(600)
    return {"raw": x[sel], "sqrt": np.sqrt(x[sel])}, y[sel], labeled[sel]


def _computed(caplog) -> int:
    return sum(r.getMessage().startswith("computed kNN") for r in caplog.records)


def test_cluster_gives_the_same_table_as_serial(small_gcd, dask_client, tmp_path: Path) -> None:
    sets, y, labeled = small_gcd
    store = KNNStore(tmp_path / "store")
    serial = grid_search(sets, y, labeled, KS, PERCENTILES, store=store, progress=False)
    on_cluster = grid_search(
        sets, y, labeled, KS, PERCENTILES, client=dask_client, store=store, progress=False
    )
    assert list(serial.columns) == list(COLUMNS)
    assert len(serial) == 2 * 6 * 3
    same = [c for c in COLUMNS if c != "seconds"]
    pd.testing.assert_frame_equal(serial[same], on_cluster[same])
    assert (on_cluster["seconds"] > 0).all()
    assert not dask_client.futures  # nothing left behind on the shared cluster


def test_a_missing_knn_is_computed_on_the_cluster(small_gcd, dask_client, tmp_path: Path) -> None:
    sets, y, labeled = small_gcd
    serial = grid_search(sets, y, labeled, KS, PERCENTILES, store=tmp_path / "a", progress=False)
    with get_task_stream(client=dask_client) as stream:
        on_cluster = grid_search(
            sets, y, labeled, KS, PERCENTILES, client=dask_client, store=tmp_path / "b", progress=False
        )
    tiles = {t["key"] for t in stream.data if str(t["key"]).startswith("knn-tile-")}
    assert tiles  # the kNN ran on the workers, not in this process
    same = [c for c in COLUMNS if c != "seconds"]
    pd.testing.assert_frame_equal(serial[same], on_cluster[same])
    keys = [sorted(e.key for e in KNNStore(tmp_path / s).info()) for s in "ab"]
    assert keys[0] == keys[1]  # one exact answer, one key, wherever it was computed
    assert not dask_client.futures


def test_second_run_computes_no_knn_and_writes_parquet(small_gcd, tmp_path: Path, caplog) -> None:
    sets, y, labeled = small_gcd
    store = tmp_path / "store"
    with caplog.at_level(logging.INFO, logger="knn_store.store"):
        first = grid_search(
            sets, y, labeled, KS, PERCENTILES, store=store, out=tmp_path / "out", progress=False
        )
        assert _computed(caplog) == 2  # one kNN per feature set, at max(ks), never one per k
        caplog.clear()
        second = grid_search(sets, y, labeled, [3, 5], PERCENTILES, store=store, progress=False)
        assert _computed(caplog) == 0
    assert [e.k_max for e in KNNStore(store).info()] == [(8,), (8,)]
    cols = [c for c in COLUMNS if c != "seconds"]
    pd.testing.assert_frame_equal(
        second[cols], first[first.k.isin([3, 5])][cols].reset_index(drop=True), check_dtype=True
    )
    written = pd.read_parquet(tmp_path / "out" / "results.parquet")
    pd.testing.assert_frame_equal(written, first)
    best = pd.read_parquet(tmp_path / "out" / "best.parquet")
    assert list(best.feature_set) == ["raw", "sqrt"]
    pd.testing.assert_frame_equal(best, pd.DataFrame(first.attrs["best"]))


def test_best_configuration_rule() -> None:
    table = pd.DataFrame(
        {
            "feature_set": ["a", "a", "a", "b"],
            "k": [5, 3, 4, 7],
            "density_percentile": [50.0, 60.0, 50.0, 40.0],
            "acc_all": [0.8, 0.8, 0.8, np.nan],
            "nmi": [0.5, 0.5, 0.4, 0.1],
            "ari": [0.3, 0.3, 0.9, 0.1],
        }
    )
    best = best_configurations(table)
    assert best.k.tolist() == [3, 7]  # tie on acc_all and nmi and ari: smaller k wins
    assert best_configurations(table, by="ari").k.tolist() == [4, 7]


def test_training_loop_mode_leaves_nothing_behind(small_gcd) -> None:
    sets, y, labeled = small_gcd
    before = {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("knn_store_")}
    df = run_clustering_search_on_features(
        sets["raw"], y, labeled, ks=[4, 6], density_percentiles=[60], progress=False
    )
    after = {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("knn_store_")}
    assert after <= before
    assert df.feature_set.unique().tolist() == ["features"]
    assert len(df) == 2


@pytest.mark.parametrize("name", ["../evil", "/abs", "a/b", "nul\x00", "", ".hidden", ".."])
def test_unsafe_feature_set_names_are_rejected(small_gcd, name: str) -> None:
    sets, y, labeled = small_gcd
    with pytest.raises(InvalidNameError, match="not allowed"):
        grid_search({name: sets["raw"]}, y, labeled, [3], [50], progress=False)


@pytest.mark.parametrize(
    ("percentiles", "match"),
    [
        ([0.4, 0.5, 0.9], "did you mean"),  # fractions ran the grid at the lowest densities
        ([50, float("nan")], "within \\[0, 100\\]"),  # NaN passed the range check
        ([-5, 50], "within \\[0, 100\\]"),
        ([], "non-empty"),
    ],
)
def test_bad_density_percentiles_are_refused_before_any_work(
    small_gcd, tmp_path: Path, percentiles: list[float], match: str
) -> None:
    sets, y, labeled = small_gcd
    with pytest.raises(InvalidParameterError, match=match):
        grid_search(sets, y, labeled, [3], percentiles, store=tmp_path / "s", progress=False)
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").rglob("*.json"))


def test_label_shape_mismatch(small_gcd) -> None:
    sets, y, labeled = small_gcd
    with pytest.raises(InvalidFeaturesError, match="'raw' has 600 rows"):
        grid_search(sets, y[:-1], labeled[:-1], [3], [50], progress=False)


@pytest.mark.parametrize(
    "bad_mask",
    [
        lambda y, m: y,  # the labels vector passed as the mask (swapped arguments)
        lambda y, m: m.astype(float) * 0.5,  # fractions
        lambda y, m: np.where(m, 1.0, np.nan),  # NaN for "unknown"
    ],
    ids=["labels-as-mask", "fractions", "nan"],
)
def test_a_mask_that_is_not_boolean_is_refused(small_gcd, bad_mask) -> None:
    # np.asarray(mask, dtype=bool) would turn any of these into a plausible-looking mask and a wrong table.
    from knn_store.errors import InvalidLabelsError

    sets, y, labeled = small_gcd
    with pytest.raises(InvalidLabelsError, match="labeled_mask"):
        grid_search(sets["raw"], y, bad_mask(y, labeled), [3], [50], progress=False)


def test_a_zero_one_mask_is_the_boolean_mask(small_gcd) -> None:
    sets, y, labeled = small_gcd
    as_bool = grid_search(sets["raw"], y, labeled, [3], [50], progress=False, loss=False)
    as_int = grid_search(sets["raw"], y, labeled.astype(np.int64), [3], [50], progress=False, loss=False)
    cols = [c for c in COLUMNS if c != "seconds"]
    pd.testing.assert_frame_equal(as_bool[cols], as_int[cols])
