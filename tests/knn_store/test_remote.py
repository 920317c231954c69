"""Object-store roots (commit-marker protocol), exercised on fsspec's in-process ``memory://`` filesystem."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import fsspec
import numpy as np
import pytest

from knn_store import CorruptEntryError, KNNStore, load
from knn_store._knn import exact_knn, prepare_features
from knn_store.loading import clear_memo


@pytest.fixture
def url() -> Iterator[str]:
    root = f"memory://knn-tests/{uuid.uuid4().hex}"
    yield root
    fs, path = fsspec.core.url_to_fs(root)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def test_remote_round_trip_and_slicing(url: str, features: np.ndarray) -> None:
    store = KNNStore(url, backend="numpy")
    ref = store.ensure(features, 12)
    assert ref.group.startswith("memory://")
    prepared = prepare_features(features, "euclidean")
    for k in (1, 5, 12):
        nb, ds = load(ref, k)
        direct = exact_knn(prepared, k)
        np.testing.assert_array_equal(nb, direct[0])
        np.testing.assert_array_equal(ds, direct[1])
    assert store.ensure(features, 7) == ref
    [info] = store.info()
    assert info.k_max == (12,)
    assert info.bytes > 0


def test_remote_supersede_prune_clear(url: str, features: np.ndarray) -> None:
    store = KNNStore(url)
    small = store.ensure(features, 4)
    big = store.ensure(features, 9)
    assert big.group != small.group
    clear_memo()
    np.testing.assert_array_equal(load(small, 4)[0], load(big, 4)[0])  # re-resolved to the larger group
    assert store.prune(max_bytes=0, grace=3600) == []
    assert store.prune(max_bytes=0, grace=0) == [big.key]
    assert store.info() == []
    store.ensure(features + 1, 3)
    assert store.clear() == 1


def test_remote_corrupt_group_is_recomputed(url: str, features: np.ndarray) -> None:
    store = KNNStore(url)
    ref = store.ensure(features, 6)
    fs, path = fsspec.core.url_to_fs(ref.group)
    chunk = f"{path}/neighbors/c/0/0"
    fs.pipe_file(chunk, fs.cat_file(chunk)[:50])
    clear_memo()
    with pytest.raises(CorruptEntryError):
        load(ref, 6)
    ref2 = store.ensure(features, 6)
    assert ref2.group != ref.group  # a fresh writer-unique data directory
    clear_memo()
    assert load(ref2, 6)[0].shape == (300, 6)


def test_remote_racing_writers_commit_one_group(url: str, features: np.ndarray) -> None:
    store = KNNStore(url)
    with ThreadPoolExecutor(4) as pool:
        refs = list(pool.map(lambda _: store.ensure(features, 8), range(4)))
    assert len(store._layout.groups(refs[0].entry_dir)) == 1
    final = store.ensure(features, 8)
    clear_memo()
    nb, ds = load(final, 8)
    assert nb.shape == ds.shape == (300, 8)
